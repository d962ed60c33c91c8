"""manage.py alipay_reconcile: the progress it shows, the table of what changed, and its exit status."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from django_alipay.domain import refunds
from django_alipay.enums import RefundStatus
from django_alipay.models import Refund, Trade
from tests.commands.conftest import NOW, Ran
from tests.domain.fakegateway import FakeGateway, Reply

pytestmark = pytest.mark.usefixtures("midday")


def paid(trade: Trade) -> dict[str, str]:
    return {
        "out_trade_no": trade.out_trade_no,
        "trade_no": "2024050222001332950500389140",
        "trade_status": "TRADE_FINISHED",
        "total_fee": "100.00",
        "currency": "USD",
        "gmt_payment": "2024-05-02 10:00:00",
    }


@pytest.fixture
def unknown_refund(settings: Any, make_trade: Callable[..., Trade], gateway: FakeGateway) -> Refund:
    """A refund whose answer was lost an hour ago (a 502 from a proxy), its amount held back."""
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_DISPATCHER": lambda refund_id: None}
    trade = make_trade(out_trade_no="R-1", status="TRADE_FINISHED", paid_at=NOW - timedelta(days=1))
    gateway.once("forex_refund", lambda params: Reply(b"<html>Bad Gateway</html>", status=502))
    refund = refunds.submit(refunds.request_refund(trade, Decimal("15.00")).pk)
    assert refund.status == RefundStatus.UNKNOWN
    Refund.objects.filter(pk=refund.pk).update(submitted_at=NOW - timedelta(hours=1))
    return refund


def test_it_settles_orders_and_refunds_and_tables_what_changed(
    run_command: Callable[..., Ran],
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
    unknown_refund: Refund,
) -> None:
    stale = make_trade(out_trade_no="P-1", created_at=NOW - timedelta(hours=1))
    make_trade(out_trade_no="P-2", created_at=NOW - timedelta(hours=1))  # Alipay has not heard of it
    make_trade(out_trade_no="P-3", created_at=NOW)  # too recent to ask about
    gateway.trades[stale.out_trade_no] = paid(stale)

    ran = run_command("alipay_reconcile")

    assert not ran.failed, ran
    lines = [line.rstrip() for line in ran.out.splitlines()]
    assert lines[0] == "Checking 2 unpaid orders and 1 unfinished refund with Alipay..."
    assert any(line.startswith("Orders ") and line.endswith("2/2") for line in lines), ran.out
    assert any(line.startswith("Refunds") and line.endswith("1/1") for line in lines), ran.out
    assert "What changed" in ran.out
    rows = [" ".join(line.replace("│", " ").split()) for line in lines if "│" in line]
    assert "order P-1 - waiting for payment paid" in rows
    assert f"refund R-1 {unknown_refund.gateway_refund_id} outcome unknown (money held back) refunded" in rows
    summary = (
        "Summary: 2 orders checked, 1 updated; 1 refund checked, 1 settled; 0 items to look at, 0 errors."
    )
    assert summary in ran.out
    assert lines[-1] == "All good."


def test_with_nothing_to_do_it_says_so(run_command: Callable[..., Ran], merchant: Any) -> None:
    ran = run_command("alipay_reconcile")
    assert not ran.failed, ran
    assert "Checking 0 unpaid orders and 0 unfinished refunds with Alipay..." in ran.out
    assert "Nothing changed: everything checked already matched Alipay." in ran.out


def test_what_needs_a_person_is_listed_and_the_exit_status_says_so(
    run_command: Callable[..., Ran], make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    wrong = make_trade(out_trade_no="M-1", created_at=NOW - timedelta(hours=1))
    gateway.trades[wrong.out_trade_no] = {**paid(wrong), "total_fee": "99.00"}  # not what the order costs
    ran = run_command("alipay_reconcile", "--orders-only")
    assert ran.failed
    assert "Needs a look" in ran.out
    rows = [" ".join(line.replace("│", " ").split()) for line in ran.out.splitlines() if "│" in line]
    assert "order M-1 Alipay reported 99.00 USD for order M-1 of 100.00 USD." in rows
    assert ran.error == "1 thing needs a look; see above."


def test_the_halves_and_the_ages_can_be_chosen(
    run_command: Callable[..., Ran],
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
    unknown_refund: Refund,
) -> None:
    make_trade(out_trade_no="Q-1", created_at=NOW - timedelta(minutes=2))
    refunds_only = run_command("alipay_reconcile", "--refunds-only")
    assert refunds_only.out.startswith("Checking 0 unpaid orders and 1 unfinished refund")
    assert gateway.called("single_trade_query") == []
    recent = run_command("alipay_reconcile", "--orders-only", "--trade-age", "60")
    assert recent.out.startswith("Checking 1 unpaid order and 0 unfinished refunds")
    negative = run_command("alipay_reconcile", "--trade-age", "-1")
    assert negative.error == "--trade-age must be 0 seconds or more."


def test_without_rich_installed_it_says_what_to_install(
    run_command: Callable[..., Ran], merchant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rich.console", None)  # as if rich were not installed
    ran = run_command("alipay_reconcile")
    assert ran.failed
    assert ran.error == "alipay_reconcile draws its progress and tables with rich: pip install rich"
