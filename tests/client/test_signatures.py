"""The service methods of GatewayClient name exactly the parameters of their service in services.py."""

from __future__ import annotations

import inspect
from decimal import Decimal

import pytest

from django_alipay.protocol import services
from django_alipay.protocol.client import GatewayClient
from django_alipay.protocol.errors import InvalidParameterError
from tests.client.stub import MD5_KEY, PARTNER

METHODS = {
    "create_forex_trade": services.CREATE_FOREX_TRADE,
    "create_forex_trade_wap": services.CREATE_FOREX_TRADE_WAP,
    "single_trade_query": services.SINGLE_TRADE_QUERY,
    "forex_refund": services.FOREX_REFUND,
    "spot_pay": services.SPOT_PAY,
    "precreate": services.PRECREATE,
    "overseas_query": services.OVERSEAS_QUERY,
    "spot_refund": services.SPOT_REFUND,
    "spot_reverse": services.SPOT_REVERSE,
    "cancel": services.CANCEL,
    "notify_verify": services.NOTIFY_VERIFY,
    "forex_rate_file": services.FOREX_RATE_FILE,
    "forex_compare_file": services.FOREX_COMPARE_FILE,
    "forex_liquidation_file": services.FOREX_LIQUIDATION_FILE,
}
#: Options of a call that are not wire parameters.
CALL_OPTIONS = {"notify_verify": {"deadline"}}


def test_every_service_has_a_method() -> None:
    assert {d.name for d in METHODS.values()} == {d.name for d in services.SERVICES.values()}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_method_names_exactly_its_service_s_parameters(method: str) -> None:
    signature = inspect.signature(getattr(GatewayClient, method))
    named = [name for name in signature.parameters if name != "self"]
    expected = [p.name for p in METHODS[method].params]
    assert [n for n in named if n not in CALL_OPTIONS.get(method, set())] == expected
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_method_requires_exactly_the_parameters_its_service_requires(method: str) -> None:
    """A parameter services.py marks required and fills from nothing (no ``default``) has no default in the
    signature, so Python, an IDE and mypy say it is missing; its type does not take None ("leave it out")."""
    parameters = inspect.signature(getattr(GatewayClient, method)).parameters
    must_give = {p.name for p in METHODS[method].params if p.required and p.default is None}

    without_default = {
        n for n, p in parameters.items() if n != "self" and p.default is inspect.Parameter.empty
    }
    assert without_default == must_give
    for name in must_give:
        assert "None" not in str(parameters[name].annotation), name
        assert parameters[name].kind in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        )
    for name in set(parameters) - must_give - {"self"} - CALL_OPTIONS.get(method, set()):
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, name


def test_a_missing_required_parameter_is_a_type_error_before_anything_is_sent() -> None:
    with pytest.raises(TypeError, match="partner_refund_id"):
        _client().spot_refund(  # type: ignore[call-arg]
            partner_trans_id="P1", refund_amount=Decimal("1.00"), currency="USD"
        )
    with pytest.raises(TypeError, match="out_trade_no"):
        _client().cancel()  # type: ignore[call-arg]


def _client() -> GatewayClient:
    return GatewayClient(
        partner=PARTNER, sign_type="MD5", key=MD5_KEY, gateway_url="https://gw.test/gateway.do"
    )


def test_a_parameter_not_passed_keeps_its_default_and_none_leaves_it_out() -> None:
    page = _client().create_forex_trade(subject="Tea", out_trade_no="O1", currency="USD", total_fee="1.00")
    assert page.params["product_code"] == "NEW_OVERSEAS_SELLER"
    assert page.params["total_fee"] == "1.00"
    page = _client().create_forex_trade(
        subject="Tea", out_trade_no="O1", currency="USD", total_fee=Decimal("1.00"), product_code=None
    )
    assert "product_code" not in page.params


def test_an_unknown_parameter_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(TypeError):
        _client().single_trade_query(out_trade_no="T1", trade_number="x")  # type: ignore[call-arg]
    with pytest.raises(InvalidParameterError):
        _client().call("single_trade_query", out_trade_no="T1", trade_number="x")
