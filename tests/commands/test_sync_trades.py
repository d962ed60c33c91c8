"""manage.py alipay_sync_trades: which orders it asks Alipay about, and what it tells the shop owner."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from django_alipay.models import Merchant, Trade
from tests.commands.conftest import NOW, Ran
from tests.domain.fakegateway import FakeGateway

pytestmark = pytest.mark.usefixtures("midday")


def paid(trade: Trade) -> dict[str, str]:
    """What single_trade_query reports for the trade once its buyer has paid."""
    return {
        "out_trade_no": trade.out_trade_no,
        "trade_no": "2024050222001332950500389139",
        "trade_status": "TRADE_FINISHED",
        "total_fee": "100.00",
        "currency": "USD",
        "gmt_payment": "2024-05-02 11:30:00",
    }


def test_it_updates_paid_orders_and_says_what_became_of_each(
    run_command: Callable[..., Ran], make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    now_paid = make_trade(out_trade_no="A-100")
    still_open = make_trade(out_trade_no="A-101")
    never_seen = make_trade(out_trade_no="A-102")
    gateway.trades[now_paid.out_trade_no] = paid(now_paid)
    gateway.trades[still_open.out_trade_no] = {**paid(still_open), "trade_status": "WAIT_BUYER_PAY"}

    ran = run_command("alipay_sync_trades")

    assert not ran.failed, ran
    assert "Asking Alipay about 3 orders (status WAIT_BUYER_PAY (waiting for payment))..." in ran.out
    assert "A-100  waiting for payment -> paid (WAIT_BUYER_PAY -> TRADE_FINISHED)" in ran.out
    assert "A-101  unchanged: waiting for payment" in ran.out
    assert "A-102  unknown to Alipay (the buyer never reached the payment page)" in ran.out
    assert "Checked 3 orders: 1 updated, 1 unchanged, 1 unknown to Alipay." in ran.out
    now_paid.refresh_from_db()
    never_seen.refresh_from_db()
    assert (now_paid.status, never_seen.status) == ("TRADE_FINISHED", "WAIT_BUYER_PAY")


def test_dry_run_lists_the_orders_and_asks_nothing(
    run_command: Callable[..., Ran], make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    make_trade(out_trade_no="B-1")
    make_trade(out_trade_no="B-2", status="TRADE_FINISHED")
    ran = run_command("alipay_sync_trades", "--dry-run")
    assert ran.out.splitlines() == [
        "Would ask Alipay about 1 order (status WAIT_BUYER_PAY (waiting for payment)):",
        "  B-1  WAIT_BUYER_PAY (waiting for payment)",
        "Nothing was asked or changed (--dry-run).",
    ]
    assert gateway.calls == []


def test_the_filters_pick_merchant_status_age_and_count(
    run_command: Callable[..., Ran],
    make_trade: Callable[..., Trade],
    make_merchant: Callable[..., Merchant],
    merchant: Merchant,
    gateway: FakeGateway,
) -> None:
    other = make_merchant(name="Coffee Corner", gateway_url=gateway.url)
    make_trade(out_trade_no="OLD", created_at=NOW - timedelta(days=10), status="TRADE_SUCCESS")
    make_trade(out_trade_no="NEW-1", created_at=NOW - timedelta(hours=2), status="TRADE_SUCCESS")
    make_trade(out_trade_no="NEW-2", created_at=NOW - timedelta(hours=1), status="TRADE_SUCCESS")
    make_trade(out_trade_no="THEIRS", merchant=other, status="TRADE_SUCCESS")

    ran = run_command(
        "alipay_sync_trades", "--merchant", merchant.partner, "--status", "trade_success",
        "--since", (NOW - timedelta(days=1)).date().isoformat(), "--limit", "1", "--dry-run",
    )  # fmt: skip

    assert not ran.failed, ran
    assert ran.out.splitlines()[1:2] == ["  NEW-2  TRADE_SUCCESS (paid)"]
    assert "merchant Tea House" in ran.out
    assert "created since 2024-05-01 00:00" in ran.out
    everything = run_command("alipay_sync_trades", "--status", "any", "--dry-run").out
    assert everything.startswith("Would ask Alipay about 4 orders:")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--status", "PAID"], "--status 'PAID' is not an Alipay trade status; use one of WAIT_BUYER_PAY"),
        (["--since", "yesterday"], "--since 'yesterday' is not a date: write it as 2024-05-01"),
        (["--merchant", "Nobody"], "No merchant is called 'Nobody'. Merchants: Tea House."),
        (["--limit", "0"], "--limit must be a whole number of orders, 1 or more."),
    ],
)
def test_mistakes_in_the_options_are_explained(
    run_command: Callable[..., Ran], merchant: Merchant, arguments: list[str], message: str
) -> None:
    ran = run_command("alipay_sync_trades", *arguments)
    assert ran.failed
    assert message in ran.error


def test_an_order_that_cannot_be_checked_is_named_and_the_command_fails(
    run_command: Callable[..., Ran], merchant: Merchant, make_trade: Callable[..., Trade], settings: Any
) -> None:
    make_trade(out_trade_no="C-1")
    merchant.gateway_url = "http://127.0.0.1:9/gateway.do"  # nothing listens there
    merchant.save()
    ran = run_command("alipay_sync_trades")
    assert ran.failed
    assert "C-1  could not be checked: Alipay's gateway could not be reached" in ran.out
    assert "Checked 1 order: 0 updated, 0 unchanged, 0 unknown to Alipay, 1 could not be checked." in ran.out
    assert ran.error == "1 order could not be brought up to date; see above."


def test_an_answer_that_contradicts_the_order_is_not_applied(
    run_command: Callable[..., Ran], make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade(out_trade_no="D-1")
    gateway.trades[trade.out_trade_no] = {**paid(trade), "total_fee": "1.00"}
    ran = run_command("alipay_sync_trades")
    assert ran.failed
    assert "D-1  not updated:" in ran.out
    assert "1 needs a look" in ran.out
    trade.refresh_from_db()
    assert trade.status == "WAIT_BUYER_PAY"
