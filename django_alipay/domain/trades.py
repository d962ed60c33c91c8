"""Create trades and move their status forward, from notifications and queries alike, under a row lock."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from django_alipay import gateway, signals
from django_alipay.conf import app_settings
from django_alipay.domain import clock, lifecycle, rows
from django_alipay.domain.errors import TradeNotAllowed
from django_alipay.enums import NotificationFlag, Product
from django_alipay.models import Merchant, Trade
from django_alipay.protocol import money, services
from django_alipay.protocol.client import PageRequest
from django_alipay.protocol.codes import TradeStatus, Verdict
from django_alipay.protocol.errors import (
    AlipayBusinessError,
    AlipayError,
    AlipayGatewayError,
    AmountError,
    InvalidParameterError,
)
from django_alipay.protocol.interpretation import verdict_of
from django_alipay.protocol.services import SpotPayResult

__all__ = [
    "StatusChange",
    "StatusReport",
    "TradeStart",
    "TradeSync",
    "apply_report_locked",
    "apply_status",
    "close_locked",
    "create_trade",
    "reported_amount",
    "sync_trade",
    "sync_trades",
]

logger = logging.getLogger("django_alipay.trades")

_ORDER_NUMBER = re.compile(r"[\x21-\x7e]{1,64}")
_DETAIL_LENGTHS = {
    "trade_no": 64,
    "buyer_id": 64,
    "buyer_login": 128,
    "additional_status": 64,
    "payment_type": 8,
}
_TWO_DECIMALS = re.compile(r"(0|[1-9][0-9]{0,11})\.[0-9]{2}")
# Answers meaning "Alipay has no such trade": the buyer never reached the cashier, nothing to apply.
_NOT_FOUND_CODES = frozenset({"TRADE_NOT_EXIST", "TRANS_NOT_FOUND", "PURCHASE_TRADE_NOT_EXIST"})


@dataclass(frozen=True)
class TradeStart:
    """What :func:`create_trade` produced: the trade, and how the buyer pays it.

    Online: ``url`` to redirect the buyer to (or ``form_html`` to render). QR code: ``qr_code`` to show.
    Barcode: the trade's status says whether it is paid. ``error`` is the gateway error of an in-store call
    whose outcome is not known yet (the trade stays WAIT_BUYER_PAY until a query or notification says more).
    """

    trade: Trade
    url: str = ""
    form_html: str = ""
    qr_code: str = ""
    error: AlipayError | None = None


@dataclass(frozen=True)
class StatusChange:
    """The result of :func:`apply_status`.

    ``applied`` is True when the report was accepted (a transition, or a repeat of the current status);
    ``flag`` (a :class:`~django_alipay.enums.NotificationFlag` value) says why it was not, with ``message``.
    """

    trade: Trade
    previous_status: str
    status: str
    applied: bool
    flag: str = ""
    message: str = ""

    @property
    def changed(self) -> bool:
        """True when the trade's status moved."""
        return self.previous_status != self.status


def _amount_of(
    value: Decimal | str, currency: str, *, maximum: Decimal, parameter: str = "amount"
) -> Decimal:
    if isinstance(value, str):
        return money.parse_amount(
            value, currency, minimum=money.ONLINE_MIN, maximum=maximum, parameter=parameter
        )
    return money.to_amount(value, currency, minimum=money.ONLINE_MIN, maximum=maximum, parameter=parameter)


def reported_amount(value: Decimal | str, currency: str) -> Decimal:
    """An amount Alipay reported (a trade's or a refund's), in ``currency``.

    Strict shape, but "100.00" JPY is read as 100 (zeros carry no value). Raises AmountError or
    InvalidParameterError for anything else.
    """
    if isinstance(value, Decimal):
        return money.to_amount(value, currency, minimum=money.ONLINE_MIN, maximum=money.INSTORE_MAX)
    try:
        return money.parse_amount(value, currency, minimum=money.ONLINE_MIN, maximum=money.INSTORE_MAX)
    except AmountError:
        if isinstance(value, str) and _TWO_DECIMALS.fullmatch(value):
            return money.to_amount(
                Decimal(value), currency, minimum=money.ONLINE_MIN, maximum=money.INSTORE_MAX
            )
        raise


def create_trade(
    merchant: Merchant,
    *,
    out_trade_no: str,
    amount: Decimal | str,
    currency: str | None = None,
    subject: str,
    product: Product | str = Product.ONLINE_WEB,
    body: str = "",
    buyer_identity_code: str | None = None,
    return_url: str | None = None,
    notify_url: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> TradeStart:
    """Create a Trade (WAIT_BUYER_PAY) and start its payment.

    Online products get a signed cashier URL and form (no gateway call). In-store products call the gateway
    after the row is committed: spot pay with the buyer's barcode (``buyer_identity_code``), or precreate
    for a QR code; their answer is applied with :func:`apply_status`. ``currency`` defaults to the
    merchant's; ``amount`` is a Decimal or canonical text in the currency's exponent. ``extra`` passes
    further wire parameters of the service (``timeout_rule``, ``trade_information`` ...).

    The same unpaid online order asked for again (same product, amount and currency) is not an error: the
    buyer is sent back to the payment URL stored the first time, since the gateway refuses a second
    create_forex_trade for an out_trade_no it already knows with other data. A WAP payment with a
    ``timeout_rule`` also sends ``order_create`` (the trade's creation time), without which the WAP page
    says the rule does not take effect.

    Raises InvalidParameterError / AmountError for bad input and TradeNotAllowed for an inactive merchant
    or an order number already used for another payment, before anything is stored.
    """
    product = Product(product)
    currency = currency or merchant.currency
    money.exponent(currency)  # validates the code
    maximum = money.ONLINE_MAX if product.is_online else money.INSTORE_MAX
    amount = _amount_of(amount, currency, maximum=maximum)
    if not isinstance(out_trade_no, str) or not _ORDER_NUMBER.fullmatch(out_trade_no) or '"' in out_trade_no:
        raise InvalidParameterError(
            _("out_trade_no must be 1 to 64 printable ASCII characters without spaces or quotes"),
            parameter="out_trade_no",
        )
    if not subject or len(subject) > 256:
        raise InvalidParameterError(_("subject must be 1 to 256 characters"), parameter="subject")
    if product == Product.IN_STORE_BARCODE and not buyer_identity_code:
        raise InvalidParameterError(
            _("a barcode payment needs the buyer's payment code"), parameter="buyer_identity_code"
        )
    if not merchant.is_active:
        raise TradeNotAllowed(
            _("Merchant %(merchant)s is not active: it cannot take payments.") % {"merchant": merchant.name}
        )

    notify = notify_url if notify_url is not None else merchant.notify_url()
    fields: dict[str, Any] = {
        "merchant": merchant,
        "product": product,
        "out_trade_no": out_trade_no,
        "amount": amount,
        "currency": currency,
        "subject": subject,
        "body": body,
        "created_at": clock.now(),
    }
    service, request = _payment_request(fields, notify, return_url, buyer_identity_code, dict(extra or {}))
    # Checked before the row exists: a bad parameter must not use up the order number.
    services.build_request(service, request, partner=merchant.partner, charset=merchant.charset)
    try:
        if product.is_online:
            with transaction.atomic():
                trade = Trade.objects.create(**fields)
        else:
            # The in-store call must follow the commit: the answer (or its notification) must find the row.
            with transaction.atomic(durable=True):
                trade = Trade.objects.create(**fields)
    except IntegrityError:
        resumed = _resume(merchant, fields)
        if resumed is not None:
            return resumed
        raise TradeNotAllowed(
            _("Order %(order)s already exists for merchant %(merchant)s: use a new order number.")
            % {"order": out_trade_no, "merchant": merchant.name},
            out_trade_no=out_trade_no,
        ) from None

    if product.is_online:
        return _start_online(trade, service, request)
    if product == Product.IN_STORE_BARCODE:
        return _start_spot_pay(trade, request)
    return _start_precreate(trade, request)


def _resume(merchant: Merchant, fields: Mapping[str, Any]) -> TradeStart | None:
    """The stored payment of the same unpaid online order, or None when the order number means another one."""
    earlier = Trade.objects.filter(merchant=merchant, out_trade_no=fields["out_trade_no"]).first()
    if (
        earlier is None
        or not earlier.payment_url
        or earlier.product != fields["product"]
        or not earlier.is_online
        or (earlier.amount, earlier.currency) != (fields["amount"], fields["currency"])
        or earlier.status != TradeStatus.WAIT_BUYER_PAY
    ):
        return None
    parts = urlsplit(earlier.payment_url)
    page = PageRequest(
        action=urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
        params=dict(parse_qsl(parts.query, keep_blank_values=True, encoding=merchant.charset)),
        charset=merchant.charset,
    )
    logger.info(
        "order %s asked for again: the buyer goes back to its stored payment URL", earlier.out_trade_no
    )
    return TradeStart(trade=earlier, url=earlier.payment_url, form_html=page.form_html())


def _payment_request(
    fields: Mapping[str, Any],
    notify: str | None,
    return_url: str | None,
    buyer_identity_code: str | None,
    extra: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    """The service and business parameters that start the payment of the trade ``fields`` describe."""
    product = fields["product"]
    if product.is_online:
        wap = product == Product.ONLINE_WAP
        return services.CREATE_FOREX_TRADE_WAP.name if wap else services.CREATE_FOREX_TRADE.name, {
            "out_trade_no": fields["out_trade_no"],
            "subject": fields["subject"],
            "body": fields["body"] or None,
            "currency": fields["currency"],
            "total_fee": fields["amount"],
            "notify_url": notify,
            "return_url": return_url if return_url is not None else app_settings.RETURN_URL,
            "product_code": "NEW_WAP_OVERSEAS_SELLER" if wap else "NEW_OVERSEAS_SELLER",
            # The WAP page: timeout_rule "only takes effect together with order_create" (long(10)).
            **({"order_create": fields["created_at"]} if wap and extra.get("timeout_rule") else {}),
            **extra,
        }
    if product == Product.IN_STORE_BARCODE:
        return services.SPOT_PAY.name, {
            "partner_trans_id": fields["out_trade_no"],
            "trans_name": fields["subject"],
            "currency": fields["currency"],
            "trans_amount": fields["amount"],
            "buyer_identity_code": buyer_identity_code,
            "trans_create_time": fields["created_at"],
            "notify_url": notify,
            **extra,
        }
    return services.PRECREATE.name, {
        "out_trade_no": fields["out_trade_no"],
        "subject": fields["subject"],
        "currency": fields["currency"],
        "total_fee": fields["amount"],
        "notify_url": notify,
        **extra,
    }


def _start_online(trade: Trade, service: str, request: dict[str, Any]) -> TradeStart:
    page = gateway.client(trade.merchant).call(service, **request)
    trade.payment_url = page.url
    trade.save(update_fields=["payment_url", "updated_at"])
    return TradeStart(trade=trade, url=page.url, form_html=page.form_html())


def _start_spot_pay(trade: Trade, request: dict[str, Any]) -> TradeStart:
    client = gateway.client(trade.merchant, instore=True)
    try:
        result = client.spot_pay(**request)
    except AlipayError as exc:
        # Only a refusal proves the buyer was not charged; other errors leave the trade waiting for a query.
        if verdict_of(exc) is Verdict.REFUSED:
            _close_refused(trade, exc.code or "", exc.description or "")
        else:
            logger.warning(
                "spot pay of %s has an unknown outcome (%s); it will be queried", trade.out_trade_no, exc.code
            )
        return TradeStart(trade=trade, error=exc)
    _apply_instore_result(trade, result)
    return TradeStart(trade=trade)


def _apply_instore_result(trade: Trade, result: SpotPayResult) -> None:
    """Apply a spot pay answer: the client returns one only when the payment was made (a refusal or an
    unknown outcome raises), so the trade is paid unless the answer names another status."""
    status = result.fields.get("alipay_trans_status") or TradeStatus.TRADE_SUCCESS
    apply_status(
        trade,
        status=status,
        amount=result.fields.get("trans_amount"),
        currency=result.fields.get("currency"),
        trade_no=result.fields.get("alipay_trans_id"),
        paid_at=_time(result, "alipay_pay_time"),
        buyer_id=result.fields.get("alipay_buyer_user_id"),
        buyer_login=result.fields.get("alipay_buyer_login_id"),
        params=result.fields,
        source="gateway",
    )


def _close_refused(trade: Trade, code: str, description: str) -> None:
    """A definitive refusal ends this payment attempt; another attempt needs a new order number."""
    apply_status(
        trade,
        status=TradeStatus.TRADE_CLOSED,
        params={"error": code, "description": description},
        source="gateway",
    )


def _start_precreate(trade: Trade, request: dict[str, Any]) -> TradeStart:
    client = gateway.client(trade.merchant, instore=True)
    try:
        result = client.precreate(**request)
    except AlipayError as exc:
        logger.warning("precreate of %s failed (%s)", trade.out_trade_no, exc.code)
        return TradeStart(trade=trade, error=exc)
    trade.qr_code = str(result.fields.get("qr_code", ""))[:512]
    trade.gateway_response = dict(result.fields)
    trade.save(update_fields=["qr_code", "gateway_response", "updated_at"])
    return TradeStart(trade=trade, qr_code=trade.qr_code)


def _time(result: Any, name: str) -> datetime | None:
    value = getattr(result, name, None)
    return value if isinstance(value, datetime) else None


def _jsonable(fields: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in fields.items()}


def _refusal(trade: Trade, flag: NotificationFlag, message: str) -> StatusChange:
    logger.warning("trade %s: %s", trade.out_trade_no, message)
    return StatusChange(trade, trade.status, trade.status, applied=False, flag=flag.value, message=message)


def apply_status(
    trade: Trade,
    *,
    status: TradeStatus | str,
    amount: Decimal | str | None = None,
    currency: str | None = None,
    partner: str | None = None,
    trade_no: str | None = None,
    paid_at: datetime | None = None,
    buyer_id: str | None = None,
    buyer_login: str | None = None,
    additional_status: str | None = None,
    payment_type: str | None = None,
    params: Mapping[str, Any] | None = None,
    source: str = "query",
) -> StatusChange:
    """Apply a status Alipay reported (notification, query or call answer) to ``trade``, forward only.

    Under a row lock: the reported ``currency``, ``amount`` and ``partner`` (when given) must equal the
    trade's, the status must be a known lifecycle status, and it must move the trade forward
    (WAIT_BUYER_PAY -> TRADE_SUCCESS / TRADE_FINISHED / TRADE_CLOSED, TRADE_SUCCESS -> TRADE_FINISHED /
    TRADE_CLOSED). A repeat of the current status is accepted and changes nothing (idempotent); a report
    that would move it backwards is refused with flag ``stale_transition`` and changes nothing. Signals are
    sent after the commit. ``trade`` is refreshed from the locked row. Never raises for bad reported data:
    the result's ``flag`` says what was wrong.
    """
    raw = _jsonable(params or {})
    with transaction.atomic():
        locked = Trade.objects.select_for_update().get(pk=trade.pk)
        if Trade.merchant.is_cached(trade) and trade.merchant.pk == locked.merchant_id:
            merchant = trade.merchant  # loaded with the trade (a batch's select_related): no second read
        else:
            merchant = Merchant.objects.get(pk=locked.merchant_id)
        result = apply_report_locked(
            locked,
            merchant,
            StatusReport(
                status=str(status),
                amount=amount,
                currency=currency,
                partner=partner,
                trade_no=trade_no,
                paid_at=paid_at,
                buyer_id=buyer_id,
                buyer_login=buyer_login,
                additional_status=additional_status,
                payment_type=payment_type,
                raw=raw,
                source=source,
            ),
        )
    rows.copy_into(trade, locked)
    return StatusChange(
        trade, result.previous_status, result.status, result.applied, result.flag, result.message
    )


@dataclass(frozen=True)
class StatusReport:
    """What Alipay reported about a trade (a notification, a query answer or a call's answer), to apply.

    Only ``status`` is required; a field left None was not reported and is not checked or filled in.
    ``raw`` keeps the reported parameters for the audit trail; ``source`` says where the report came from
    ("notification", "query", "gateway" ...): a notification's parameters are kept on the notification,
    any other report's in the trade's ``gateway_response``.
    """

    status: str
    amount: Decimal | str | None = None
    currency: str | None = None
    partner: str | None = None
    trade_no: str | None = None
    paid_at: datetime | None = None
    buyer_id: str | None = None
    buyer_login: str | None = None
    additional_status: str | None = None
    payment_type: str | None = None
    raw: dict[str, str] = field(default_factory=dict)
    source: str = "query"


def close_locked(
    trade: Trade, merchant: Merchant, *, raw: dict[str, str], source: str = "gateway"
) -> StatusChange:
    """Close ``trade`` (locked by the caller, inside its transaction) because Alipay said it is closed.

    For a successful reverse/cancel: the same rules as any report (a closed trade stays closed).
    """
    return apply_report_locked(
        trade, merchant, StatusReport(status=TradeStatus.TRADE_CLOSED.value, raw=raw, source=source)
    )


def apply_report_locked(trade: Trade, merchant: Merchant, report: StatusReport) -> StatusChange:
    """Apply ``report`` to ``trade``, which the caller has locked (SELECT ... FOR UPDATE) in its transaction.

    The rules of :func:`apply_status`, without its lock, transaction and refresh of the caller's instance:
    for domain code that already holds the trade's row lock (a notification, a reverse's answer).
    """
    status, amount, currency, partner = report.status, report.amount, report.currency, report.partner
    trade_no, paid_at, buyer_id, buyer_login = (
        report.trade_no,
        report.paid_at,
        report.buyer_id,
        report.buyer_login,
    )
    additional_status, payment_type = report.additional_status, report.payment_type
    raw, source = report.raw, report.source
    try:
        new = TradeStatus(status)
    except ValueError:
        return _refusal(
            trade, NotificationFlag.UNKNOWN_STATUS, f"Alipay reported an unknown status {status[:64]!r}."
        )
    if new.rank is None:
        return _refusal(
            trade,
            NotificationFlag.UNKNOWN_STATUS,
            f"Status {new.value} is not part of a cross-border payment.",
        )
    if currency is not None and currency != trade.currency:
        return _refusal(
            trade,
            NotificationFlag.CURRENCY_MISMATCH,
            f"Alipay reported currency {str(currency)[:16]!r} for order {trade.out_trade_no} "
            f"in {trade.currency}.",
        )
    if amount is not None:
        try:
            reported = reported_amount(amount, trade.currency)
        except (AmountError, InvalidParameterError):
            return _refusal(
                trade,
                NotificationFlag.BAD_AMOUNT,
                f"Alipay reported an unusable amount {str(amount)[:32]!r}.",
            )
        if reported != trade.amount:
            return _refusal(
                trade,
                NotificationFlag.AMOUNT_MISMATCH,
                f"Alipay reported {money.format_amount(reported, trade.currency)} {trade.currency} for order "
                f"{trade.out_trade_no} of {money.format_amount(trade.amount, trade.currency)} "
                f"{trade.currency}.",
            )
    if partner is not None and partner != merchant.partner:
        return _refusal(
            trade,
            NotificationFlag.PARTNER_MISMATCH,
            f"The payment names partner {partner[:32]!r}, not this merchant.",
        )

    previous = trade.status
    now = clock.now()
    updates: dict[str, Any] = {}
    if new.value != previous:
        if not lifecycle.trade_move_allowed(previous, new):
            return StatusChange(
                trade,
                previous,
                previous,
                applied=False,
                flag=NotificationFlag.STALE_TRANSITION.value,
                message=f"{new.value} arrived after {previous}; the trade keeps {previous}.",
            )
        updates["status"] = new.value
        if new.is_paid and trade.paid_at is None:
            updates["paid_at"] = paid_at or now
        if new == TradeStatus.TRADE_CLOSED:
            updates["closed_at"] = now
    # Details are filled in, never overwritten with different values from a later report.
    for name, value in (
        ("trade_no", trade_no),
        ("buyer_id", buyer_id),
        ("buyer_login", buyer_login),
        ("additional_status", additional_status),
        ("payment_type", payment_type),
    ):
        if value and not getattr(trade, name):
            updates[name] = str(value)[: _DETAIL_LENGTHS[name]]
    if source != "notification" and raw:
        updates["gateway_response"] = raw
    if source != "notification":
        updates["last_synced_at"] = now
    for name, value in updates.items():
        setattr(trade, name, value)
    if updates:
        rows.write_columns(trade, (*updates, "updated_at"))

    if "status" in updates:
        signals.send_on_commit(
            signals.trade_status_changed,
            Trade,
            trade=trade,
            previous_status=previous,
            status=new.value,
            params=raw,
        )
        if "paid_at" in updates:
            signals.send_on_commit(signals.trade_paid, Trade, trade=trade, params=raw)
        if new == TradeStatus.TRADE_CLOSED:
            signals.send_on_commit(signals.trade_closed, Trade, trade=trade, params=raw)
    return StatusChange(trade, previous, trade.status, applied=True)


@dataclass(frozen=True)
class TradeSync:
    """What :func:`sync_trades` made of one trade: its ``change`` (None when Alipay does not know the trade),
    or the gateway ``error`` that kept it from being queried."""

    trade: Trade
    change: StatusChange | None = None
    error: AlipayError | None = None


def sync_trade(trade: Trade, *, clients: gateway.ClientPool | None = None) -> StatusChange | None:
    """Query the trade at the gateway and apply what it says; None when Alipay does not know the trade.

    Online trades use single_trade_query, in-store ones alipay.acquire.overseas.query. Gateway errors other
    than "no such trade" propagate (a retryable one can simply be tried again later). Every call uses the
    process's kept client of the merchant (:func:`django_alipay.gateway.client`), or ``clients``'s when a
    :class:`~django_alipay.gateway.ClientPool` is passed (an older way).
    """
    (result,) = sync_trades([trade], clients=clients)
    if result.error is not None:
        raise result.error
    return result.change


def sync_trades(
    batch: Iterable[Trade],
    *,
    clients: gateway.ClientPool | None = None,
    on_result: Callable[[TradeSync], None] | None = None,
) -> list[TradeSync]:
    """Query each trade of ``batch`` at the gateway and apply the answers; one :class:`TradeSync` per trade.

    An answer that moves a trade (or is refused) goes through :func:`apply_status` under the row lock at
    once. An answer that only repeats what the trade already says is written for the whole batch in one
    UPDATE at the end, and only to rows whose status has not moved meanwhile, so checking many unchanged
    trades costs a query per batch rather than several per trade. Load the trades with
    ``select_related("merchant")``; gateway errors are returned in ``error``, never raised. The queries go
    through the process's kept client of each merchant, or ``clients``'s when a pool is passed.
    """
    results: list[TradeSync] = []
    repeats: list[Trade] = []
    unknown: list[int] = []
    try:
        for trade in batch:
            try:
                report = _query(trade, clients)
            except AlipayError as exc:
                result = TradeSync(trade, error=exc)
            else:
                if report is None:
                    unknown.append(trade.pk)
                    result = TradeSync(trade)
                elif _is_repeat(trade, report):
                    trade.gateway_response = _jsonable(report["params"])
                    repeats.append(trade)
                    result = TradeSync(trade, StatusChange(trade, trade.status, trade.status, applied=True))
                else:
                    result = TradeSync(trade, apply_status(trade, **report))
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        _touch(repeats, unknown)
    return results


def _query(trade: Trade, pool: gateway.ClientPool | None) -> dict[str, Any] | None:
    """The gateway's report on ``trade`` as :func:`apply_status` arguments; None for "no such trade"."""
    merchant = trade.merchant
    online = trade.is_online
    if pool is None:
        client = gateway.client(merchant, instore=not online)
    else:
        client = pool.client(merchant, instore=not online)
    result: Any
    try:
        if online:
            result = client.single_trade_query(out_trade_no=trade.out_trade_no)
        else:
            result = client.overseas_query(partner_trans_id=trade.out_trade_no)
    except (AlipayBusinessError, AlipayGatewayError) as exc:
        if exc.code in _NOT_FOUND_CODES:
            return None
        raise
    fields = result.fields
    if online:
        return {
            "status": fields.get("trade_status", ""),
            "amount": fields.get("total_fee"),
            "currency": fields.get("currency"),
            "trade_no": fields.get("trade_no"),
            "paid_at": _time(result, "gmt_payment"),
            "buyer_id": fields.get("buyer_id"),
            "buyer_login": fields.get("buyer_email"),
            "additional_status": fields.get("additional_trade_status"),
            "payment_type": fields.get("payment_type"),
            "params": fields,
            "source": "query",
        }
    if not fields.get("alipay_trans_status"):
        if fields.get("error") in _NOT_FOUND_CODES:
            return None
        raise AlipayBusinessError(
            "the in-store query did not succeed",
            code=fields.get("error") or None,
            out_trade_no=trade.out_trade_no,
        )
    return {
        "status": fields["alipay_trans_status"],
        "amount": fields.get("trans_amount"),
        "currency": fields.get("currency"),
        "trade_no": fields.get("alipay_trans_id"),
        "paid_at": _time(result, "alipay_pay_time"),
        "buyer_id": fields.get("alipay_buyer_user_id"),
        "buyer_login": fields.get("alipay_buyer_login_id"),
        "params": fields,
        "source": "query",
    }


def _is_repeat(trade: Trade, report: Mapping[str, Any]) -> bool:
    """True when applying ``report`` could only record the answer: same status, same money, no new detail.

    Judged on the unlocked row; anything else (or any doubt) takes the locked path of apply_status.
    """
    if str(report["status"]) != trade.status or report.get("partner") is not None:
        return False
    currency = report.get("currency")
    if currency is not None and currency != trade.currency:
        return False
    amount = report.get("amount")
    if amount is not None:
        try:
            if reported_amount(amount, trade.currency) != trade.amount:
                return False
        except (AmountError, InvalidParameterError):
            return False
    return not any(report.get(name) and not getattr(trade, name) for name in _DETAIL_LENGTHS)


def _touch(repeats: list[Trade], unknown: list[int]) -> None:
    """Record the answers that changed nothing: one UPDATE per status, skipping rows that moved meanwhile."""
    now = clock.now()
    if unknown:
        Trade.objects.filter(pk__in=unknown).update(last_synced_at=now)
    by_status: dict[str, list[Trade]] = {}
    for trade in repeats:
        trade.last_synced_at = trade.updated_at = now
        by_status.setdefault(trade.status, []).append(trade)
    for status, group in by_status.items():
        Trade.objects.filter(status=status).bulk_update(
            group, ["gateway_response", "last_synced_at", "updated_at"]
        )
