"""The domain's critical paths against the emulator under every setting of every open-point knob.

Each knob of ``OPEN_POINT_KNOBS`` plays one behaviour the references leave open (how a repeated refund is
answered, whether resends reuse one notify_id, ...). Knobs added there join this matrix by themselves. Under
each setting: pay online (its first notification lost, a resend handled), refund with the answer lost,
reverse an in-store payment, and reconcile a payment whose notifications never arrived; money and statuses
must end right every time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from django_alipay.domain import notifications, reconciliation, refunds, settlement, trades
from django_alipay.emulator.conf import DEFAULTS, OPEN_POINT_KNOBS
from django_alipay.enums import RefundStatus
from django_alipay.models import Merchant, Trade
from django_alipay.protocol.clock import FixedClock
from django_alipay.testing import EmulatorProcess, faults

pytestmark = pytest.mark.django_db(transaction=True)

BUYER_BARCODE = "286123456789012345"  # the emulator's default buyer
#: Nominal seconds between resends and of a notify_id's life, short so that a resend comes at once and a
#: reused notify_id is past notify_verify's window when it arrives again.
SHORT = 0.2
SETTINGS = [(knob, value) for knob, values in OPEN_POINT_KNOBS.items() for value in values]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(merchant_key=None) as process:
        yield process


@pytest.fixture
def shop(emulator: EmulatorProcess, settings: Any) -> Merchant:
    # Nothing listens on the discard port: the emulator's own sends fail, the tests hand them to the domain.
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_URL_BASE": "http://127.0.0.1:9/alipay/notify/"}
    return emulator.merchant()


@pytest.fixture
def knob(emulator: EmulatorProcess, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """Set one open-point knob (the others at their defaults) and the short resend timings."""
    name, value = request.param
    defaults = {key.lower(): values[0] for key, values in OPEN_POINT_KNOBS.items()}
    emulator.configure(**{**defaults, name.lower(): value}, retry_schedule=[SHORT] * 7, notify_id_ttl=SHORT)
    yield name, value
    emulator.set_clock(None)
    emulator.clear_faults()
    emulator.configure(
        **defaults,
        retry_schedule=list(DEFAULTS["RETRY_SCHEDULE"]),
        notify_id_ttl=DEFAULTS["NOTIFY_ID_TTL"],
    )


def order_number() -> str:
    return "MATRIX-" + uuid.uuid4().hex[:12]


def pay_online(emulator: EmulatorProcess, shop: Merchant, amount: str) -> Trade:
    """Pay; the first notification never reaches the shop (its database was down); a resend does."""
    start = trades.create_trade(shop, out_trade_no=order_number(), amount=amount, subject="Mug")
    emulator.pay(url=start.url)
    [_lost] = emulator.notifications(start.trade.out_trade_no)
    time.sleep(2 * SHORT)  # the resend falls due; a reused notify_id is past notify_verify's window
    emulator.deliver()
    sends = emulator.notifications(start.trade.out_trade_no, deliver=False)
    assert len(sends) == 2, sends
    resend = sends[-1]

    answer = notifications.receive(
        shop.notify_token,
        body=resend.body_bytes,
        content_type=resend.content_type,
        remote_addr="127.0.0.1",
    )

    assert (answer.status, answer.body) == (200, "success"), (answer.flag, answer.message)
    trade = Trade.objects.get(pk=start.trade.pk)
    assert trade.status == "TRADE_FINISHED"
    return trade


def refund_with_a_lost_answer(
    emulator: EmulatorProcess, shop: Merchant, trade: Trade, stand_at: Callable[[datetime], FixedClock]
) -> None:
    """The refund's answer is lost; asking again and, when that cannot tell, the day's file settle it."""
    emulator.inject(faults.drop("forex_refund", limit=1))
    refund = refunds.request_refund(trade, Decimal("10.00"), reason="chipped")
    assert refund.status == RefundStatus.UNKNOWN
    refund = refunds.resolve_unknown(refund)
    assert refund.status in RefundStatus.pending() or refund.status == RefundStatus.SUCCEEDED

    # The next day the transaction file of the refund's day exists: nothing stays unsettled.
    tomorrow = datetime.now().astimezone() + timedelta(days=1)
    emulator.set_clock(tomorrow)
    stand_at(tomorrow)
    report = settlement.settle_from_files(merchant=shop)
    emulator.set_clock(None)

    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED, (refund.status, refund.error_code, report)
    trade.refresh_from_db()
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("10.00"), Decimal("0.00"))
    [at_alipay] = emulator.trades(trade.out_trade_no)
    assert at_alipay["refunded"] == "10.00"  # refunded once, however the repeat was answered


def reverse_in_store(shop: Merchant) -> None:
    start = trades.create_trade(
        shop, out_trade_no=order_number(), amount="12.00", subject="Lunch", product="barcode",
        buyer_identity_code=BUYER_BARCODE,
    )  # fmt: skip
    assert start.trade.status == "TRADE_SUCCESS", start.error
    reversal = refunds.reverse(start.trade)
    assert reversal.status == RefundStatus.SUCCEEDED, (reversal.status, reversal.error_code)
    start.trade.refresh_from_db()
    assert start.trade.status == "TRADE_CLOSED"
    assert start.trade.refunded_amount == Decimal("12.00")


def reconcile_a_silent_payment(emulator: EmulatorProcess, shop: Merchant) -> None:
    """Paid at Alipay, every notification lost: reconciliation finds it; the books add up."""
    start = trades.create_trade(shop, out_trade_no=order_number(), amount="7.50", subject="Tea")
    emulator.pay(url=start.url)
    report = reconciliation.reconcile(merchant=shop, trade_age=0, refund_age=0)
    assert report.ok, (report.mismatches, report.errors)
    assert Trade.objects.get(pk=start.trade.pk).status == "TRADE_FINISHED"
    assert reconciliation.check_balances(merchant=shop) == []


@pytest.mark.parametrize("knob", SETTINGS, indirect=True, ids=[f"{k.lower()}={v}" for k, v in SETTINGS])
def test_critical_paths_end_right_under_every_open_point_setting(
    emulator: EmulatorProcess,
    shop: Merchant,
    knob: tuple[str, str],
    fixed_clock: Callable[[datetime], FixedClock],
) -> None:
    trade = pay_online(emulator, shop, "25.00")
    reverse_in_store(shop)
    reconcile_a_silent_payment(emulator, shop)
    refund_with_a_lost_answer(emulator, shop, trade, fixed_clock)


def test_every_knob_has_a_default_and_another_value() -> None:
    assert OPEN_POINT_KNOBS
    for name, values in OPEN_POINT_KNOBS.items():
        assert name in DEFAULTS, name
        assert DEFAULTS[name] == values[0], name
        assert len(values) >= 2, name
        assert len(set(values)) == len(values), name
