"""Fault helpers: the plans they build are the emulator's format; alipay_faults reaches a mounted emulator."""

from __future__ import annotations

from typing import Any

import pytest

from django_alipay.emulator import api
from django_alipay.emulator.conf import runtime
from django_alipay.emulator.faults import FaultPlan
from django_alipay.protocol import envelope
from django_alipay.protocol.errors import InvalidParameterError
from django_alipay.testing import faults, sign_form
from django_alipay.testing.faults import FaultInjector, build_plan

PARTNER = "2088101122136241"
MD5_KEY = "m0unted4faultTestsOnly32charsAbc"


def test_each_helper_sets_its_rate_on_the_right_rule() -> None:
    plan = build_plan(
        faults.drop("forex_refund", limit=1),
        faults.latency(0.2, "forex_refund"),
        faults.system_error(rate=0.25),
        faults.http_502("single_trade_query"),
        faults.truncate("alipay.acquire.overseas.query", rate=0.5),
        faults.unsigned("alipay.acquire.precreate"),
        faults.exempt("notify_verify"),
        faults.drop_notifications(rate=0.5, limit=3),
        faults.duplicate_notifications(rate=0.1, limit=3),
        faults.notifications_out_of_order(hold=1.5),
        seed=7,
    )

    assert plan == {
        "seed": 7,
        "global": {"system_error_rate": 0.25},
        "services": {
            "forex_refund": {"drop_rate": 1.0, "limit": 1, "latency": 0.2},
            "single_trade_query": {"http_502_rate": 1.0},
            "alipay.acquire.overseas.query": {"truncate_rate": 0.5},
            "alipay.acquire.precreate": {"unsigned_rate": 1.0},
            "notify_verify": {},
        },
        "notifications": {
            "drop_rate": 0.5,
            "duplicate_rate": 0.1,
            "limit": 3,
            "out_of_order": True,
            "hold": 1.5,
        },
    }
    parsed = FaultPlan.parse(plan)  # the emulator's own reader accepts it
    assert (parsed.services["forex_refund"].drop_rate, parsed.services["forex_refund"].limit) == (1.0, 1)
    assert parsed.global_rule is not None
    assert parsed.global_rule.system_error_rate == 0.25
    assert (parsed.notifications.out_of_order, parsed.hold) == (True, 1.5)


def test_a_raw_fragment_merges_with_helpers_and_base_plans_are_not_changed() -> None:
    base = {"services": {"forex_refund": {"drop_rate": 1.0}}}

    plan = build_plan(
        {"services": {"forex_refund": {"limit": 2}}}, faults.unsigned("forex_refund"), base=base
    )

    assert plan == {"services": {"forex_refund": {"drop_rate": 1.0, "limit": 2, "unsigned_rate": 1.0}}}
    assert base == {"services": {"forex_refund": {"drop_rate": 1.0}}}


@pytest.mark.parametrize(
    ("make", "parameter"),
    [
        (
            lambda: build_plan(
                faults.drop("forex_refund", limit=1), faults.truncate("forex_refund", limit=2)
            ),
            "limit",
        ),
        (lambda: faults.system_error(rate=1.5), "rate"),
        (lambda: faults.latency(601), "seconds"),
        (lambda: faults.Fault("meteor"), "kind"),
        (lambda: build_plan(faults.Fault("exempt")), "service"),
        (lambda: build_plan("drop"), "faults"),
    ],
)
def test_bad_faults_are_refused_naming_the_parameter(make: Any, parameter: str) -> None:
    with pytest.raises(InvalidParameterError) as raised:
        make()
    assert raised.value.parameter == parameter


def test_the_injector_accumulates_and_clears() -> None:
    sent: list[dict[str, Any] | None] = []

    def apply(plan: dict[str, Any] | None) -> dict[str, Any]:
        sent.append(plan)
        return {"echo": plan}

    injector = FaultInjector(apply)
    injector.inject(faults.drop("forex_refund"))
    injector.inject(faults.system_error("single_trade_query"), seed=3)
    injector.clear()

    assert sent == [
        {"services": {"forex_refund": {"drop_rate": 1.0}}},
        {
            "services": {
                "forex_refund": {"drop_rate": 1.0},
                "single_trade_query": {"system_error_rate": 1.0},
            },
            "seed": 3,
        },
        None,
    ]
    assert injector.plan == {}


def _query_mounted(client: Any, out_trade_no: str) -> envelope.GatewayResponse:
    params = {"service": "single_trade_query", "partner": PARTNER, "_input_charset": "utf-8"}
    form = sign_form({**params, "out_trade_no": out_trade_no}, key=MD5_KEY)
    response = client.get("/emulator/gateway.do?" + form.body.decode("ascii"))
    return envelope.parse_response(response.content)


@pytest.mark.django_db
def test_alipay_faults_reach_the_emulator_mounted_in_the_project(
    client: Any, settings: Any, alipay_faults: FaultInjector
) -> None:
    # In-process, the notifier thread would outlive the test's database access; no notification is needed.
    settings.ALIPAY_EMULATOR = {"NOTIFIER_THREAD": False}
    api.register_partner(PARTNER, md5_key=MD5_KEY)

    alipay_faults.inject(faults.system_error("single_trade_query", limit=1))

    assert _query_mounted(client, "NO-SUCH-ORDER").error == "SYSTEM_ERROR"
    assert _query_mounted(client, "NO-SUCH-ORDER").error == "TRADE_NOT_EXIST"  # the limit of 1 is spent
    assert runtime().faults.services["single_trade_query"].fired == 1
    alipay_faults.clear()
    assert runtime().faults.services == {}
