"""The emulated Alipay's ledger: paying, closing and refunding trades atomically, queueing notifications.

Every mutation runs inside :func:`locked_partner`: a process-level lock per partner (SQLite ignores row
locks) around a transaction that also takes ``SELECT ... FOR UPDATE`` row locks (PostgreSQL honours them),
so concurrent refunds can never give back more than was paid. A database constraint backs that up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from django.db import transaction
from django.db.models import F

from django_alipay.protocol.clock import format_compact, format_datetime
from django_alipay.protocol.money import format_amount, quantum
from django_alipay.protocol.signing import sign

from . import alipay_keys
from .conf import runtime
from .ids import mask_login_id, new_cashier_token, new_trade_no
from .models import Buyer, Notification, Partner, Refund, Trade
from .seed import rate, to_cny
from .wire import form_encode, laid_out

__all__ = [
    "CLOSED",
    "FINISHED",
    "INSUFFICIENT_BALANCE",
    "SUCCESS",
    "WAIT",
    "PaymentRefused",
    "apply_refund",
    "close_trade",
    "create_trade",
    "expire_if_due",
    "fmt",
    "locked_partner",
    "pay_trade",
    "return_url_for",
]

WAIT: Final = "WAIT_BUYER_PAY"
SUCCESS: Final = "TRADE_SUCCESS"
FINISHED: Final = "TRADE_FINISHED"
CLOSED: Final = "TRADE_CLOSED"

#: The catalog has no "balance not enough" code; BUYER_ENABLE_STATUS_FORBID ("the buyer's account cannot
#: pay"; ask the buyer to pay another way) is the catalog entry whose words and advice fit.
INSUFFICIENT_BALANCE: Final = "BUYER_ENABLE_STATUS_FORBID"
BUYER_DISABLED: Final = "BUYER_ENABLE_STATUS_FORBID"

_TRADE_NO_ATTEMPTS: Final = 5


class PaymentRefused(Exception):
    """A payment, close or refund is not possible; ``code`` is the catalog code to answer with."""

    def __init__(self, code: str, note: str = "") -> None:
        super().__init__(f"{code}: {note}" if note else code)
        self.code = code
        self.note = note


def fmt(amount: Decimal, currency: str) -> str:
    """An amount as the wire writes it in ``currency``."""
    return format_amount(amount, currency)


@contextlib.contextmanager
def locked_partner(partner: Partner) -> Iterator[Partner]:
    """Serialise one partner's business mutations: process lock, transaction and the partner row lock."""
    with runtime().partner_lock(partner.partner), transaction.atomic():
        yield Partner.objects.select_for_update().get(pk=partner.pk)


def lock_trade(trade: Trade) -> Trade:
    """Re-read ``trade`` under a row lock (inside locked_partner)."""
    return Trade.objects.select_for_update().get(pk=trade.pk)


@dataclass(frozen=True)
class Money:
    """A trade amount in its currency and in CNY, with the rate used."""

    amount: Decimal
    currency: str
    amount_cny: Decimal
    exchange_rate: Decimal
    rmb_fee: Decimal | None = None


def price(amount: Decimal | None, currency: str, *, rmb_fee: Decimal | None = None) -> Money:
    """Price a trade given either its foreign ``amount`` or its CNY ``rmb_fee`` (create_forex_trade)."""
    fx = rate(currency)
    if rmb_fee is not None:
        foreign = (rmb_fee / fx).quantize(quantum(currency), rounding=ROUND_HALF_UP)
        return Money(max(foreign, quantum(currency)), currency, rmb_fee, fx, rmb_fee)
    assert amount is not None
    return Money(amount, currency, to_cny(amount, currency), fx)


def create_trade(
    partner: Partner,
    *,
    channel: str,
    service: str,
    out_trade_no: str,
    money: Money,
    now: datetime,
    subject: str = "",
    body: str = "",
    product_code: str = "",
    notify_url: str = "",
    return_url: str = "",
    merchant_url: str = "",
    charset: str,
    sign_type: str,
    request_params: Mapping[str, str],
    expires_at: datetime | None = None,
    buyer: Buyer | None = None,
    buyer_identity_code: str = "",
) -> Trade:
    """Insert a new WAIT_BUYER_PAY trade with a fresh 28-character trade number (inside locked_partner)."""
    for _ in range(_TRADE_NO_ATTEMPTS):
        trade_no = new_trade_no(now)
        if not Trade.objects.filter(trade_no=trade_no).exists():
            break
    return Trade.objects.create(
        partner=partner,
        channel=channel,
        service=service,
        out_trade_no=out_trade_no,
        trade_no=trade_no,
        subject=subject,
        body=body,
        currency=money.currency,
        total_fee=money.amount,
        rmb_fee=money.rmb_fee,
        amount_cny=money.amount_cny,
        exchange_rate=money.exchange_rate,
        product_code=product_code,
        status=WAIT,
        notify_url=notify_url,
        return_url=return_url,
        merchant_url=merchant_url,
        charset=charset,
        sign_type=sign_type,
        request_params=dict(request_params),
        cashier_token=new_cashier_token(),
        gmt_create=now,
        gmt_modified=now,
        expires_at=expires_at,
        buyer=buyer,
        buyer_identity_code=buyer_identity_code,
    )


# --- notifications


def payment_notification_params(trade: Trade) -> dict[str, str]:
    """The business fields of a trade_status_sync notification for the trade's current status."""
    params = {
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "currency": trade.currency,
        "total_fee": fmt(trade.total_fee, trade.currency),
        "trade_status": trade.status,
    }
    if trade.rmb_fee is not None:
        params["rmb_fee"] = fmt(trade.rmb_fee, "CNY")
    if not trade.is_online:
        # In-store notifications carry more (the fields of the QR-code notification).
        action = {SUCCESS: "payByAccountAction", CLOSED: "closeTradeAction"}.get(trade.status, "")
        if trade.status == CLOSED and trade.close_reason in ("reverse", "cancel") and trade.refunded_amount:
            action = "reverseAction"
        params.update(
            notify_action_type=action,
            subject=trade.subject,
            seller_id=trade.partner.partner,
            gmt_create=format_datetime(trade.gmt_create),
        )
        if trade.gmt_payment is not None:
            params["gmt_payment"] = format_datetime(trade.gmt_payment)
        if trade.gmt_close is not None:
            params["gmt_close"] = format_datetime(trade.gmt_close)
        if trade.buyer is not None:
            params["buyer_id"] = trade.buyer.user_id
            params["buyer_email"] = mask_login_id(trade.buyer.login_id)
    return {name: value for name, value in params.items() if value}


def enqueue_notification(
    trade: Trade,
    *,
    notify_type: str,
    params: Mapping[str, str],
    url: str | None = None,
    refund: Refund | None = None,
) -> Notification | None:
    """Queue a notification to ``url`` (default: the trade's notify_url); nothing without a URL."""
    target = url if url is not None else trade.notify_url
    if not target:
        return None
    state = runtime()
    notification = Notification.objects.create(
        partner=trade.partner,
        trade=trade,
        refund=refund,
        notify_type=notify_type,
        url=target,
        params=dict(params),
        charset=trade.charset,
        sign_type=trade.sign_type,
        # With the out-of-order fault, first sends wait a little so that several can be sent newest first.
        next_attempt_at=state.real_now() + timedelta(seconds=state.faults.hold),
    )
    from . import notifier  # the notifier imports this module

    transaction.on_commit(notifier.wake)
    return notification


def notify_status_change(trade: Trade) -> None:
    """Queue the trade_status_sync notification of the trade's new status."""
    enqueue_notification(trade, notify_type="trade_status_sync", params=payment_notification_params(trade))


# --- state changes (all inside locked_partner)


def expire_if_due(trade: Trade, now: datetime) -> Trade:
    """Close an unpaid trade whose time limit has passed (Alipay's expiry job, run lazily)."""
    if trade.status == WAIT and trade.expires_at is not None and now > trade.expires_at:
        trade.status = CLOSED
        trade.close_reason = "timeout"
        trade.additional_status = "DAEMON_CONFIRM_CLOSE"
        trade.gmt_close = trade.expires_at
        trade.gmt_modified = now
        trade.save(update_fields=["status", "close_reason", "additional_status", "gmt_close", "gmt_modified"])
        notify_status_change(trade)
    return trade


def pay_trade(trade: Trade, buyer: Buyer, *, now: datetime, notify: bool = True) -> Trade:
    """The buyer pays: debit the buyer's CNY balance, mark the trade paid, queue the notification.

    Online trades go straight to TRADE_FINISHED, in-store ones to TRADE_SUCCESS.
    Raises PaymentRefused with TRADE_HAS_SUCCESS, TRADE_HAS_CLOSE or a buyer code.
    """
    trade = expire_if_due(lock_trade(trade), now)
    if trade.status in (SUCCESS, FINISHED):
        raise PaymentRefused("TRADE_HAS_SUCCESS", "the trade is already paid")
    if trade.status == CLOSED:
        raise PaymentRefused("TRADE_HAS_CLOSE", "the trade is closed")
    if not buyer.enabled:
        raise PaymentRefused(BUYER_DISABLED, "the buyer's account is restricted")
    debited = Buyer.objects.filter(pk=buyer.pk, balance__gte=trade.amount_cny).update(
        balance=F("balance") - trade.amount_cny
    )
    if not debited:
        raise PaymentRefused(INSUFFICIENT_BALANCE, "the buyer's balance is not enough")
    trade.status = FINISHED if trade.is_online else SUCCESS
    trade.buyer = buyer
    trade.gmt_payment = now
    trade.gmt_modified = now
    trade.save(update_fields=["status", "buyer", "gmt_payment", "gmt_modified"])
    if notify:
        notify_status_change(trade)
    return trade


def close_trade(trade: Trade, *, now: datetime, reason: str, notify: bool = True) -> Trade:
    """Close an unpaid trade (buyer cancelled, merchant cancelled/reversed, payment refused)."""
    trade.status = CLOSED
    trade.close_reason = reason
    trade.gmt_close = now
    trade.gmt_modified = now
    if reason == "timeout":
        trade.additional_status = "DAEMON_CONFIRM_CLOSE"
    trade.save(update_fields=["status", "close_reason", "gmt_close", "gmt_modified", "additional_status"])
    if notify:
        notify_status_change(trade)
    return trade


def apply_refund(
    trade: Trade,
    *,
    kind: str,
    refund_id: str,
    amount: Decimal,
    now: datetime,
    amount_cny: Decimal | None = None,
    is_sync: bool = False,
    reason: str = "",
    gmt_return: datetime | None = None,
    request_params: Mapping[str, str] | None = None,
) -> Refund:
    """Give ``amount`` back to the buyer (inside locked_partner, on a locked trade whose room was checked).

    An in-store trade refunded in full becomes TRADE_CLOSED; an online one stays TRADE_FINISHED.
    """
    if amount_cny is None:
        if amount == trade.refundable:
            amount_cny = trade.amount_cny - trade.refunded_cny
        else:
            amount_cny = min(to_cny(amount, trade.currency), trade.amount_cny - trade.refunded_cny)
    refund = Refund.objects.create(
        partner=trade.partner,
        trade=trade,
        kind=kind,
        refund_id=refund_id,
        currency=trade.currency,
        amount=amount,
        amount_cny=amount_cny,
        is_sync=is_sync,
        reason=reason,
        gmt_return=gmt_return,
        gmt_refund=now,
        request_params=dict(request_params or {}),
    )
    # Summed in Decimal here (SQLite would add in floating point: 0.10 three times is not 0.30 there), and
    # written only over the values just read, so a refund that slipped past a lock is refused, not lost.
    written = Trade.objects.filter(
        pk=trade.pk, refunded_amount=trade.refunded_amount, refunded_cny=trade.refunded_cny
    ).update(
        refunded_amount=trade.refunded_amount + amount,
        refunded_cny=trade.refunded_cny + amount_cny,
        gmt_modified=now,
    )
    if written != 1:
        raise RuntimeError(f"trade {trade.pk} was refunded concurrently; the partner lock was not held")
    trade.refresh_from_db(fields=["refunded_amount", "refunded_cny", "gmt_modified"])
    if not trade.is_online and trade.refunded_amount >= trade.total_fee:
        trade.status = CLOSED
        trade.close_reason = trade.close_reason or "refunded"
        trade.gmt_close = now
        trade.save(update_fields=["status", "close_reason", "gmt_close"])
    if trade.buyer_id is not None:
        Buyer.objects.filter(pk=trade.buyer_id).update(balance=F("balance") + amount_cny)
    return refund


# --- the browser's way back to the shop


def return_params(trade: Trade) -> dict[str, str]:
    """The signed parameters of the return_url redirect after an online payment."""
    params = {
        "out_trade_no": trade.out_trade_no,
        "trade_no": trade.trade_no,
        "currency": trade.currency,
        "total_fee": fmt(trade.total_fee, trade.currency),
        "trade_status": trade.status,
    }
    if trade.rmb_fee is not None:
        params["rmb_fee"] = fmt(trade.rmb_fee, "CNY")
    key = alipay_keys.signing_key(trade.sign_type, trade.partner)
    signature = sign(params, sign_type=trade.sign_type, key=key, charset=trade.charset)
    params["sign"] = laid_out(signature, trade.sign_type)
    params["sign_type"] = trade.sign_type
    return params


def return_url_for(trade: Trade) -> str | None:
    """The full return_url with its signed query string, or None when the trade has no return_url."""
    if not trade.return_url:
        return None
    parts = urlsplit(trade.return_url)
    query = form_encode(return_params(trade), trade.charset)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def trade_times(trade: Trade) -> dict[str, str]:
    """Wire renderings of the trade's times that are set."""
    times = {"gmt_create": format_datetime(trade.gmt_create)}
    if trade.gmt_payment is not None:
        times["gmt_payment"] = format_datetime(trade.gmt_payment)
        times["alipay_pay_time"] = format_compact(trade.gmt_payment)
    if trade.gmt_close is not None:
        times["gmt_close"] = format_datetime(trade.gmt_close)
    return times
