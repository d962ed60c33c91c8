"""Outcomes settled from evidence that exists when the gateway's own answers cannot tell.

A refund resent after a lost answer gets REPEATED_REFUNDMENT_REQUEST (the documented answer for a used
out_return_no): the day's transaction file settles it. A correctly signed notification that notify_verify
calls false (a notify_id reused by every resend is past its minute) is settled by the trade's query.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from django_alipay import tasks
from django_alipay.admin.refund import RefundAdmin
from django_alipay.domain import notifications, reconciliation, refunds, settlement, trades
from django_alipay.emulator.conf import DEFAULTS
from django_alipay.enums import NotificationFlag, RefundStatus, Verification
from django_alipay.models import Merchant, Notification, Refund, Trade
from django_alipay.protocol.clock import FixedClock, beijing_date
from django_alipay.testing import EmulatorProcess, faults, post_notification

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(merchant_key=None) as process:
        yield process


@pytest.fixture
def shop(emulator: EmulatorProcess, settings: Any) -> Iterator[Merchant]:
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_URL_BASE": "http://127.0.0.1:9/alipay/notify/"}
    yield emulator.merchant()
    emulator.set_clock(None)
    emulator.clear_faults()
    emulator.configure(
        notify_id_reuse="fresh",
        repeat_refund_answer="repeated_refundment_request",
        retry_schedule=list(DEFAULTS["RETRY_SCHEDULE"]),
        notify_id_ttl=DEFAULTS["NOTIFY_ID_TTL"],
    )


def order_number() -> str:
    return "EVID-" + uuid.uuid4().hex[:12]


def paid_trade(emulator: EmulatorProcess, shop: Merchant, amount: str = "40.00") -> Trade:
    start = trades.create_trade(shop, out_trade_no=order_number(), amount=amount, subject="Lamp")
    emulator.pay(url=start.url)
    assert trades.sync_trade(start.trade) is not None
    assert start.trade.status == "TRADE_FINISHED"
    return start.trade


def unknown_refund(emulator: EmulatorProcess, trade: Trade) -> Refund:
    """A refund whose answer was lost, resent, and answered REPEATED_REFUNDMENT_REQUEST."""
    emulator.inject(faults.drop("forex_refund", limit=1))
    refund = refunds.request_refund(trade, Decimal("15.00"), reason="broken")
    assert refund.status == RefundStatus.UNKNOWN
    refund = refunds.resolve_unknown(refund)
    assert (refund.status, refund.error_code) == (RefundStatus.UNKNOWN, "REPEATED_REFUNDMENT_REQUEST")
    return refund


def test_a_resent_refund_answered_repeated_is_settled_by_the_transaction_file_that_lists_it(
    emulator: EmulatorProcess, shop: Merchant, fixed_clock: Callable[[datetime], FixedClock]
) -> None:
    trade = paid_trade(emulator, shop)
    refund = unknown_refund(emulator, trade)
    day = beijing_date(datetime.now().astimezone())
    shown = RefundAdmin(Refund, None).evidence(refund)  # type: ignore[arg-type]
    assert f"Waiting for the settlement file of {day.isoformat()}" in shown

    # Today's file does not exist yet: nothing is asked for, nothing changes.
    early = settlement.settle_from_files(merchant=shop)
    assert early.files == []
    assert early.waiting == [f"refund {refund.gateway_refund_id}: waiting for the settlement file of {day}"]
    refund.refresh_from_db()
    assert refund.status == RefundStatus.UNKNOWN

    tomorrow = datetime.now().astimezone() + timedelta(days=1)
    emulator.set_clock(tomorrow)
    fixed_clock(tomorrow)
    report = settlement.settle_from_files(merchant=shop)

    assert report.settled == [refund.gateway_refund_id], report
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.response["source"] == "forex_compare_file"
    assert RefundAdmin(Refund, None).evidence(refund) == ""  # type: ignore[arg-type]
    trade.refresh_from_db()
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("15.00"), Decimal("0.00"))
    assert emulator.trades(trade.out_trade_no)[0]["refunded"] == "15.00"


def test_the_periodic_task_settles_every_listed_refund_and_leaves_none_unknown(
    emulator: EmulatorProcess, shop: Merchant, fixed_clock: Callable[[datetime], FixedClock]
) -> None:
    first = unknown_refund(emulator, paid_trade(emulator, shop))
    second = unknown_refund(emulator, paid_trade(emulator, shop, "20.00"))
    tomorrow = datetime.now().astimezone() + timedelta(days=1)
    emulator.set_clock(tomorrow)
    fixed_clock(tomorrow)

    outcome = tasks.settle_refunds_from_files.apply(kwargs={"merchant_id": shop.pk}).get()

    assert (outcome["settled"], outcome["mismatches"], outcome["errors"]) == (2, 0, 0)
    assert not Refund.objects.filter(pk__in=[first.pk, second.pk], status=RefundStatus.UNKNOWN).exists()


def test_reconciliation_stops_resending_a_repeated_refund_and_settles_it_from_the_file_the_next_day(
    emulator: EmulatorProcess, shop: Merchant, fixed_clock: Callable[[datetime], FixedClock]
) -> None:
    refund = unknown_refund(emulator, paid_trade(emulator, shop))
    sent = len(emulator.calls("forex_refund"))

    today = reconciliation.reconcile(merchant=shop, trade_age=0, refund_age=0)

    assert len(emulator.calls("forex_refund")) == sent  # asking again could only repeat the answer
    assert (today.refunds_checked, today.mismatches, today.errors) == (0, [], [])
    tomorrow = datetime.now().astimezone() + timedelta(days=1)
    emulator.set_clock(tomorrow)
    fixed_clock(tomorrow)

    report = reconciliation.reconcile(merchant=shop, trade_age=0, refund_age=0)

    assert report.ok, (report.mismatches, report.errors)
    assert [(c.reference, c.before, c.after) for c in report.changes] == [
        (refund.gateway_refund_id, RefundStatus.UNKNOWN, RefundStatus.SUCCEEDED)
    ]
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED


def test_a_notification_refused_once_and_resent_with_the_same_notify_id_is_settled_by_the_query(
    emulator: EmulatorProcess, shop: Merchant
) -> None:
    emulator.configure(notify_id_reuse="reused", retry_schedule=[0.1] * 7, notify_id_ttl=0.1)
    start = trades.create_trade(shop, out_trade_no=order_number(), amount="9.00", subject="Cup")
    emulator.pay(url=start.url)
    [first] = emulator.notifications(start.trade.out_trade_no)  # lost: the shop's database was down
    time.sleep(0.3)
    emulator.deliver()
    resend = emulator.notifications(start.trade.out_trade_no, deliver=False)[-1]
    assert resend.notify_id == first.notify_id

    answer = notifications.receive(
        shop.notify_token, body=resend.body_bytes, content_type=resend.content_type, remote_addr="127.0.0.1"
    )

    assert (answer.status, answer.body) == (200, "success"), (answer.flag, answer.message)
    stored = Notification.objects.get(pk=answer.notification.pk)  # type: ignore[union-attr]
    assert (stored.verification, stored.outcome) == (Verification.QUERIED, "processed")
    assert stored.flag == NotificationFlag.VERIFY_FALSE_CONFIRMED
    assert "single_trade_query confirmed TRADE_FINISHED" in stored.flag_info
    assert Trade.objects.get(pk=start.trade.pk).status == "TRADE_FINISHED"


def test_a_signed_notification_the_query_contradicts_is_neither_applied_nor_acknowledged(
    emulator: EmulatorProcess, shop: Merchant, client: Any
) -> None:
    start = trades.create_trade(shop, out_trade_no=order_number(), amount="5.00", subject="Pen")
    emulator.visit(start.url)  # the trade exists at Alipay, unpaid

    # Correctly signed (the partner's key), but Alipay never sent it: notify_verify says false.
    response = post_notification(client, shop, out_trade_no=start.trade.out_trade_no)

    assert response.status_code == 400
    stored = Notification.objects.get(trade__isnull=True, out_trade_no=start.trade.out_trade_no)
    assert (stored.flag, stored.outcome) == (NotificationFlag.VERIFY_FALSE, "rejected")
    assert "single_trade_query reports WAIT_BUYER_PAY" in stored.flag_info
    assert Trade.objects.get(pk=start.trade.pk).status == "WAIT_BUYER_PAY"


def test_a_refund_notification_notify_verify_refuses_is_left_to_the_settlement_file(
    emulator: EmulatorProcess, shop: Merchant, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SYNC": False}  # the result comes by notification
    trade = paid_trade(emulator, shop)
    emulator.configure(notify_id_ttl=0.05)
    refund = refunds.request_refund(trade, Decimal("6.00"))
    assert refund.status == RefundStatus.SUBMITTED
    [delivery] = emulator.notifications(trade.out_trade_no, notify_type="refund_status_sync")
    time.sleep(0.1)  # past notify_verify's window: "false"

    answer = notifications.receive(
        shop.notify_token,
        body=delivery.body_bytes,
        content_type=delivery.content_type,
        remote_addr="127.0.0.1",
    )

    assert answer.status == 400  # no query reports a refund: not applied, not acknowledged
    day = beijing_date(datetime.now().astimezone()).isoformat()
    assert f"the settlement file of {day} settles it" in answer.message
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUBMITTED
