"""Trades through the REST API: create (online, QR code, barcode), list, get, sync, against the emulator."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.db import connections
from rest_framework.test import APIClient

from django_alipay.models import Merchant, Trade
from django_alipay.protocol.codes import lookup_error
from django_alipay.testing import build_response, mock_gateway
from tests.api.conftest import API, BUYER_BARCODE, control, order_number
from tests.conftest import TEST_PARTNER

pytestmark = pytest.mark.django_db(transaction=True)

FROZEN_BUYER_BARCODE = "270000000000000005"  # the emulator's restricted account: every payment is refused


def create(api: APIClient, **fields: Any) -> Any:
    body = {"out_trade_no": order_number(), "amount": "25.00", "subject": "Mug", **fields}
    return api.post(f"{API}trades/", body, format="json")


def test_an_online_trade_answers_with_the_cashier_url_and_a_form(
    api: APIClient, shop: Merchant, emulator: str
) -> None:
    response = create(api, amount="25.00", currency="USD", return_url="https://shop.example/done")

    assert response.status_code == 201, response.content
    body = response.json()
    trade = Trade.objects.get()
    assert response["Location"] == f"http://testserver{API}trades/{trade.pk}/"
    assert body["trade"]["id"] == trade.pk
    assert body["trade"]["status"] == "WAIT_BUYER_PAY"
    assert (body["trade"]["amount"], body["trade"]["currency"]) == ("25.00", "USD")
    assert body["payment"]["url"].startswith(emulator + "gateway.do?")
    assert "service=create_forex_trade&" in body["payment"]["url"]
    assert body["payment"]["form_html"].startswith("<form")
    assert (body["payment"]["qr_code"], body["payment"]["error"]) == ("", None)
    assert requests.get(body["payment"]["url"], timeout=10).status_code == 200  # the cashier opens


def test_a_mobile_trade_uses_the_wap_service(api: APIClient, shop: Merchant) -> None:
    response = create(api, product="wap")
    assert response.status_code == 201, response.content
    assert "service=create_forex_trade_wap&" in response.json()["payment"]["url"]
    assert response.json()["trade"]["product"] == "wap"


def test_a_qr_code_trade_answers_with_the_code_to_show(api: APIClient, shop: Merchant) -> None:
    response = create(api, product="qrcode")
    assert response.status_code == 201, response.content
    payment = response.json()["payment"]
    assert payment["qr_code"]
    assert payment["error"] is None
    assert payment["qr_code"] == Trade.objects.get().qr_code
    assert response.json()["trade"]["status"] == "WAIT_BUYER_PAY"


def test_a_barcode_trade_answers_with_the_spot_pay_result(api: APIClient, shop: Merchant) -> None:
    response = create(api, product="barcode", buyer_identity_code=BUYER_BARCODE, amount="12.00")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["payment"]["error"] is None
    assert body["trade"]["status"] == "TRADE_SUCCESS"
    assert body["trade"]["paid_at"] is not None
    assert body["trade"]["trade_no"]


def test_a_refused_barcode_payment_carries_alipay_s_code_and_description(
    api: APIClient, shop: Merchant
) -> None:
    response = create(api, product="barcode", buyer_identity_code=FROZEN_BUYER_BARCODE)

    assert response.status_code == 201, response.content  # the trade exists, closed, for the audit trail
    body = response.json()
    assert body["trade"]["status"] == "TRADE_CLOSED"
    error = body["payment"]["error"]
    assert error["code"] == "gateway_refused"
    assert error["alipay_code"]
    assert error["description"] == lookup_error(error["alipay_code"]).description
    assert set(error) == {"code", "message", "alipay_code", "description", "field"}


def test_a_barcode_trade_needs_the_buyer_s_code(api: APIClient, shop: Merchant) -> None:
    response = create(api, product="barcode")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "buyer_identity_code"
    assert not Trade.objects.exists()


@pytest.mark.parametrize(
    ("amount", "currency", "shown"), [("100", "JPY", "100"), ("100", "KRW", "100"), ("0.01", "USD", "0.01")]
)
def test_amounts_are_written_in_the_currency_s_exponent(
    api: APIClient, shop: Merchant, amount: str, currency: str, shown: str
) -> None:
    response = create(api, amount=amount, currency=currency)
    assert response.status_code == 201, response.content
    assert response.json()["trade"]["amount"] == shown
    assert Trade.objects.get().amount == Decimal(amount)


@pytest.mark.parametrize(
    ("amount", "currency", "words"),
    [
        ("100.5", "JPY", "too many decimals for JPY"),
        ("10.001", "USD", "too many decimals for USD"),
        ("0", "USD", "out of range"),
        ("1000000.01", "USD", "out of range"),
        ("1e3", "USD", "not a plain decimal amount"),
        (" 10.00", "USD", "not a plain decimal amount"),
        ("１０", "USD", "not a plain decimal amount"),
    ],
)
def test_a_trade_amount_must_be_canonical_and_in_range(
    api: APIClient, shop: Merchant, amount: str, currency: str, words: str
) -> None:
    response = create(api, amount=amount, currency=currency)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_amount", "amount")
    assert words in error["message"]
    assert not Trade.objects.exists()


@pytest.mark.parametrize("amount", [25, 25.0, 10.1, None, True, ["25.00"]])
def test_a_trade_amount_must_be_a_json_string(api: APIClient, shop: Merchant, amount: Any) -> None:
    response = create(api, amount=amount)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "amount"
    assert not Trade.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", 5),
        ("subject", ""),
        ("subject", "x" * 257),
        ("out_trade_no", "has space"),
        ("out_trade_no", 'quote"d'),
        ("out_trade_no", "x" * 65),
        ("out_trade_no", 12345),
        ("currency", "usd"),
        ("product", "cash"),
        ("body", "x" * 401),
        ("merchant", "1"),
        ("return_url", "not a url"),
    ],
)
def test_malformed_fields_are_refused_naming_the_field(
    api: APIClient, shop: Merchant, field: str, value: Any
) -> None:
    response = create(api, **{field: value})
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert not Trade.objects.exists()


def test_an_order_number_is_used_once(api: APIClient, shop: Merchant) -> None:
    number = order_number()
    assert create(api, out_trade_no=number).status_code == 201
    again = create(api, out_trade_no=number, amount="99.99")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "trade_not_allowed"
    assert number in again.json()["error"]["message"]
    assert Trade.objects.count() == 1


def test_the_same_unpaid_order_asked_again_answers_its_stored_payment(api: APIClient, shop: Merchant) -> None:
    number = order_number()
    first = create(api, out_trade_no=number)
    again = create(api, out_trade_no=number)
    assert (first.status_code, again.status_code) == (201, 201), again.content
    assert again.json()["trade"]["id"] == first.json()["trade"]["id"]
    assert Trade.objects.count() == 1


def test_an_inactive_merchant_takes_no_payment(api: APIClient, shop: Merchant) -> None:
    Merchant.objects.filter(pk=shop.pk).update(is_active=False)
    response = create(api, merchant=shop.pk)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "trade_not_allowed"
    assert not Trade.objects.exists()


def test_the_merchant_is_named_when_there_is_no_default(
    api: APIClient, shop: Merchant, make_merchant: Callable[..., Merchant]
) -> None:
    other = make_merchant(name="Other shop")
    unnamed = create(api)
    assert unnamed.status_code == 400
    assert unnamed.json()["error"]["field"] == "merchant"
    named = create(api, merchant=other.pk)
    assert named.status_code == 201, named.content
    assert named.json()["trade"]["merchant"] == other.pk
    assert create(api, merchant=999_999).json()["error"]["message"] == "Unknown merchant."


def test_list_filter_and_page_trades(api: APIClient, shop: Merchant) -> None:
    first = create(api, amount="1.00").json()["trade"]
    create(api, amount="2.00", product="wap")
    create(api, amount="3.00")

    listing = api.get(f"{API}trades/").json()
    assert listing["count"] == 3
    assert [t["amount"] for t in listing["results"]] == ["3.00", "2.00", "1.00"]  # newest first
    assert [t["amount"] for t in api.get(f"{API}trades/?product=wap").json()["results"]] == ["2.00"]
    found = api.get(f"{API}trades/", {"out_trade_no": first["out_trade_no"]}).json()["results"]
    assert [t["id"] for t in found] == [first["id"]]
    assert api.get(f"{API}trades/?status=TRADE_SUCCESS").json()["count"] == 0
    page = api.get(f"{API}trades/?limit=1&offset=1").json()
    assert ([t["amount"] for t in page["results"]], page["count"]) == (["2.00"], 3)
    assert page["next"]
    assert page["previous"]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=501", "limit=abc", "offset=-1", "status=PAID", "status=", "product=", "merchant=x"],
)
def test_malformed_list_parameters_are_refused(api: APIClient, shop: Merchant, query: str) -> None:
    response = api.get(f"{API}trades/?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == query.split("=")[0]


def test_get_a_trade(api: APIClient, shop: Merchant) -> None:
    created = create(api).json()["trade"]
    response = api.get(f"{API}trades/{created['id']}/")
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize("trade_id", ["999999", "99999999999999999999999", "abc", "-1"])
def test_an_unknown_trade_is_a_json_404(api: APIClient, shop: Merchant, trade_id: str) -> None:
    for url in (f"{API}trades/{trade_id}/", f"{API}trades/{trade_id}/refunds/"):
        response = api.get(url)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "not_found"


def test_any_other_url_under_the_api_is_a_json_404(api: APIClient, shop: Merchant) -> None:
    for url in (f"{API}nothing/", f"{API}trades", f"{API}trades/1/nothing/"):
        response = api.options(url)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_sync_applies_what_alipay_reports(api: APIClient, shop: Merchant, emulator: str) -> None:
    created = create(api, amount="7.00").json()
    requests.get(created["payment"]["url"], timeout=10)  # the buyer opens the cashier
    trade_id = created["trade"]["id"]

    unpaid = api.post(f"{API}trades/{trade_id}/sync/")
    assert unpaid.status_code == 200, unpaid.content
    assert (unpaid.json()["found"], unpaid.json()["changed"]) == (True, False)

    control(emulator, "pay", partner=TEST_PARTNER, out_trade_no=created["trade"]["out_trade_no"])
    paid = api.post(f"{API}trades/{trade_id}/sync/").json()
    assert (paid["found"], paid["changed"], paid["previous_status"], paid["status"]) == (
        True,
        True,
        "WAIT_BUYER_PAY",
        "TRADE_FINISHED",
    )
    assert (paid["flag"], paid["trade"]["status"]) == ("", "TRADE_FINISHED")
    assert paid["trade"]["paid_at"] is not None
    assert api.post(f"{API}trades/{trade_id}/sync/").json()["changed"] is False


def test_sync_of_a_trade_alipay_never_saw(api: APIClient, shop: Merchant) -> None:
    trade_id = create(api).json()["trade"]["id"]  # the buyer never reached the cashier
    response = api.post(f"{API}trades/{trade_id}/sync/")
    assert response.status_code == 200, response.content
    assert (response.json()["found"], response.json()["status"]) == (False, "WAIT_BUYER_PAY")


def test_a_gateway_refusal_is_a_502_with_alipay_s_code_and_description(
    api: APIClient, shop: Merchant
) -> None:
    trade_id = create(api).json()["trade"]["id"]
    # A key the emulator does not know: it refuses every signature.
    merchant = Merchant.objects.get(pk=shop.pk)
    merchant.md5_key = "wrongwrongwrongwrongwrongwrong12"
    merchant.save()

    response = api.post(f"{API}trades/{trade_id}/sync/")

    assert response.status_code == 502, response.content
    error = response.json()["error"]
    assert (error["code"], error["alipay_code"]) == ("gateway_refused", "ILLEGAL_SIGN")
    assert error["description"] == lookup_error("ILLEGAL_SIGN").description
    assert "wrongwrong" not in response.content.decode()


@pytest.mark.parametrize("code", ["NOT_IN_ANY_CATALOG", "SYSTEM_ERROR"])
def test_an_answer_that_is_not_a_refusal_is_a_503_not_a_refused_502(
    api: APIClient, shop: Merchant, code: str
) -> None:
    # An error code in no catalog proves nothing; a system error may pass: neither is "Alipay refused".
    trade_id = create(api).json()["trade"]["id"]
    with mock_gateway(lambda request: build_response("single_trade_query", error=code)):
        response = api.post(f"{API}trades/{trade_id}/sync/")

    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert (error["code"], error["alipay_code"]) == ("gateway_unavailable", code)
    assert response["Retry-After"]


def test_an_unreachable_gateway_is_a_503_to_try_again(
    api: APIClient, make_merchant: Callable[..., Merchant]
) -> None:
    merchant = make_merchant(name="Offline", gateway_url="http://127.0.0.1:9/gateway.do")
    trade_id = create(api, merchant=merchant.pk).json()["trade"]["id"]
    response = api.post(f"{API}trades/{trade_id}/sync/")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "gateway_unavailable"
    assert response["Retry-After"]


def test_in_store_payments_work_under_atomic_requests(api: APIClient, shop: Merchant) -> None:
    # The domain commits before it calls the gateway; the API's views opt out of ATOMIC_REQUESTS for that.
    connection = connections["default"]
    connection.settings_dict["ATOMIC_REQUESTS"] = True
    try:
        response = create(api, product="barcode", buyer_identity_code=BUYER_BARCODE)
        assert response.status_code == 201, response.content
        trade_id = response.json()["trade"]["id"]
        refund = api.post(
            f"{API}trades/{trade_id}/refunds/",
            {"amount": "1.00"},
            format="json",
            headers={"Idempotency-Key": "atomic-requests-1"},
        )
    finally:
        connection.settings_dict["ATOMIC_REQUESTS"] = False
    assert response.json()["trade"]["status"] == "TRADE_SUCCESS"
    assert refund.status_code == 201, refund.content
    assert refund.json()["status"] == "succeeded"


def test_the_browsable_api_renders(api: APIClient, shop: Merchant) -> None:
    create(api)
    for url in (API, f"{API}trades/", f"{API}trades/{Trade.objects.get().pk}/"):
        response = api.get(url, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, url
        assert response["Content-Type"].startswith("text/html")
        assert b"Django REST framework" in response.content
    form = api.get(f"{API}trades/", HTTP_ACCEPT="text/html").content.decode()
    assert "out_trade_no" in form  # the form to create a trade
    root = api.get(API).json()
    assert set(root) == {"trades", "refunds", "notifications", "schema", "docs"}  # docs: with the sidecar


def test_browsable_breadcrumbs_lead_only_to_real_pages(api: APIClient, shop: Merchant) -> None:
    create(api)
    page = api.get(f"{API}trades/{Trade.objects.get().pk}/", HTTP_ACCEPT="text/html").content.decode()
    crumbs = page[page.index('class="breadcrumb"') : page.index("</ul>", page.index('class="breadcrumb"'))]
    assert "Not Found" not in crumbs
    assert "Trade List" in crumbs
    assert "Trade Instance" in crumbs
