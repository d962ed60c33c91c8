"""notifications.reprocess: a stored notification not acted upon is verified and processed again, once."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from django_alipay.domain import clock as domain_clock
from django_alipay.domain import notifications
from django_alipay.domain.errors import ReprocessNotAllowed
from django_alipay.models import Merchant, Notification, Trade
from tests.conftest import TEST_MD5_KEY
from tests.domain.fakegateway import FakeGateway, Reply

pytestmark = pytest.mark.django_db(transaction=True)

FORM = "application/x-www-form-urlencoded"


def body(out_trade_no: str, notify_id: str = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e") -> bytes:
    params = {
        "notify_id": notify_id,
        "notify_type": "trade_status_sync",
        "out_trade_no": out_trade_no,
        "total_fee": "100.00",
        "currency": "USD",
        "trade_status": "TRADE_FINISHED",
    }
    presign = "&".join(f"{k}={params[k]}" for k in sorted(params))
    signed = {
        **params,
        "sign": hashlib.md5((presign + TEST_MD5_KEY).encode()).hexdigest(),
        "sign_type": "MD5",
    }
    return urlencode(signed).encode()


def deliver(merchant: Merchant, data: bytes) -> Notification:
    answer = notifications.receive(merchant.notify_token, body=data, content_type=FORM)
    assert answer.notification is not None
    return answer.notification


def test_an_order_created_after_its_notification_is_paid_by_reprocessing(
    merchant: Merchant, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    early = deliver(merchant, body("LATE-1"))
    assert (early.outcome, early.flag, early.verification) == ("retry", "unknown_order", "verified")
    trade = make_trade(out_trade_no="LATE-1", status="WAIT_BUYER_PAY", paid_at=None)

    answer = notifications.reprocess(early)

    assert (answer.status, answer.body) == (200, "success")
    assert (early.outcome, early.flag, early.trade_id) == ("processed", "", trade.pk)
    assert early.flag_info.startswith("Reprocessed at ")
    assert Trade.objects.get(pk=trade.pk).status == "TRADE_FINISHED"
    # Verified with Alipay when it arrived; an old notify_id is not sent to notify_verify again.
    assert len(gateway.called("notify_verify")) == 1


def test_a_notification_never_verified_is_verified_with_alipay_again(
    merchant: Merchant, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    gateway.on("notify_verify", lambda p: Reply(b"", status=503))
    pending = deliver(merchant, body(trade.out_trade_no))
    assert (pending.outcome, pending.verification) == ("retry", "unverifiable")
    gateway.on("notify_verify", lambda p: Reply(b"false", content_type="text/plain"))

    answer = notifications.reprocess(pending)

    assert (answer.status, answer.flag) == (400, "verify_false")
    assert pending.outcome == "rejected"
    assert "before: Left for Alipay to send again (verify_pending)" in pending.flag_info
    assert Trade.objects.get(pk=trade.pk).status == "WAIT_BUYER_PAY"


def test_a_processed_notification_cannot_be_reprocessed(
    merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    done = deliver(merchant, body(trade.out_trade_no))
    with pytest.raises(ReprocessNotAllowed, match="already acted upon"):
        notifications.reprocess(done)


def test_a_return_visit_and_an_oversized_body_cannot_be_reprocessed(
    merchant: Merchant, settings: Any
) -> None:
    visit = notifications.receive_return(merchant.notify_token, query_string="out_trade_no=X").notification
    with pytest.raises(ReprocessNotAllowed, match="return visit"):
        notifications.reprocess(visit)
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_MAX_BODY_BYTES": 10}
    too_big = deliver(merchant, body("X"))
    with pytest.raises(ReprocessNotAllowed, match="too large"):
        notifications.reprocess(too_big)


def test_a_row_being_processed_is_left_alone_until_it_is_abandoned(
    merchant: Merchant, make_trade: Callable[..., Trade], fixed_clock: Any
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    now = domain_clock.now()
    stuck = Notification.objects.create(
        merchant=merchant, body=body(trade.out_trade_no), content_type=FORM, received_at=now
    )
    fixed_clock(now)
    with pytest.raises(ReprocessNotAllowed, match="right now"):
        notifications.reprocess(stuck)
    fixed_clock(now + notifications.ABANDONED_AFTER + timedelta(seconds=1))
    assert notifications.reprocess(stuck).status == 200
    assert Trade.objects.get(pk=trade.pk).status == "TRADE_FINISHED"
