"""The online services: create_forex_trade(_wap) to the cashier, single_trade_query and forex_refund."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Final

from django.http import HttpResponseRedirect
from django.urls import reverse

from django_alipay.protocol.clock import format_datetime
from django_alipay.protocol.money import ONLINE_MAX, ONLINE_MIN, REFUND_MAX, quantum

from .call import Call, GatewayRefusal
from .conf import runtime
from .ids import mask_login_id
from .models import Partner, Refund, Trade
from .operations import (
    CLOSED,
    FINISHED,
    SUCCESS,
    apply_refund,
    create_trade,
    enqueue_notification,
    expire_if_due,
    fmt,
    locked_partner,
    price,
)
from .seed import RATES, rate
from .wire import Outcome, http_outcome

__all__ = ["create_forex_trade", "forex_refund", "single_trade_query", "trade_fields"]

_PRODUCT_CODES: Final = {
    "create_forex_trade": "NEW_OVERSEAS_SELLER",
    "create_forex_trade_wap": "NEW_WAP_OVERSEAS_SELLER",
}
# timeout_rule values per service (create_forex_trade_cn / _wap_cn pages); default 12h.
_TIMEOUT_RULES: Final = {
    "create_forex_trade": ("5m", "10m", "15m", "30m", "1h", "2h", "3h", "5h", "10h", "12h", "1d"),
    "create_forex_trade_wap": (
        "5m",
        "10m",
        "15m",
        "30m",
        "1h",
        "2h",
        "3h",
        "5h",
        "10h",
        "12h",
        "1d",
        "3d",
        "7d",
        "15d",
    ),
}
_DEFAULT_TIMEOUT: Final = "12h"
_UNITS: Final = {"m": 60, "h": 3600, "d": 86400}
_SECONDS: Final = re.compile(r"[1-9][0-9]{0,6}")
# order_create on the WAP page is long(10): epoch seconds; ORDER_CREATE_FORMAT can also take milliseconds.
_ORDER_CREATE: Final = {
    "seconds": re.compile(r"[0-9]{10}"),
    "seconds_or_millis": re.compile(r"[0-9]{10}|[0-9]{13}"),
}
_ORDER_VALID_MAX: Final = 2592000


def _duration(rule: str) -> timedelta:
    return timedelta(seconds=int(rule[:-1]) * _UNITS[rule[-1]])


def _find_trade(partner: Partner, *, trade_no: str | None, out_trade_no: str | None) -> Trade | None:
    """trade_no wins over out_trade_no when both are given (single_trade_query rule)."""
    trades = Trade.objects.select_related("buyer", "partner").filter(partner=partner)
    if trade_no is not None:
        return trades.filter(trade_no=trade_no).first()
    return trades.filter(out_trade_no=out_trade_no).first()


def create_forex_trade(call: Call) -> Outcome:
    """create_forex_trade(_wap): validate, create (or find) the trade, send the browser to the cashier."""
    service = call.service
    out_trade_no = call.required("out_trade_no", max_length=64)
    subject = call.required("subject", max_length=256)
    body = call.text("body", max_length=400) or ""
    currency = call.currency()
    assert currency is not None
    if currency not in RATES or currency == "CNY":
        raise GatewayRefusal("ILLEGAL_CURRENCY", f"{currency} is not a settlement currency of this gateway")
    product_code = call.required("product_code")
    if product_code != _PRODUCT_CODES[service]:
        raise GatewayRefusal(
            "ILLEGAL_ARGUMENT", f"product_code must be {_PRODUCT_CODES[service]} for {service}"
        )
    has_total, has_rmb = "total_fee" in call.params, "rmb_fee" in call.params
    if has_total == has_rmb:
        raise GatewayRefusal("ILLEGAL_ARGUMENT", "give exactly one of total_fee and rmb_fee")
    total_fee = call.amount("total_fee", currency, minimum=ONLINE_MIN, maximum=ONLINE_MAX, required=has_total)
    rmb_fee = call.amount("rmb_fee", "CNY", minimum=ONLINE_MIN, maximum=ONLINE_MAX, required=has_rmb)
    notify_url = call.url("notify_url") or ""
    return_url = call.url("return_url") or ""
    call.url("refer_url")
    merchant_url = call.text("merchant_url") or call.text("refer_url") or ""
    timeout_rule = call.text("timeout_rule") or _DEFAULT_TIMEOUT
    if timeout_rule not in _TIMEOUT_RULES[service]:
        raise GatewayRefusal(
            "ILLEGAL_TIMEOUT_RULE", f"timeout_rule {timeout_rule!r} is not allowed for {service}"
        )
    if service == "create_forex_trade_wap":
        order_create = call.text("order_create")
        pattern = _ORDER_CREATE[runtime().get("ORDER_CREATE_FORMAT")]
        if order_create is not None and not pattern.fullmatch(order_create):
            raise GatewayRefusal(
                "ILLEGAL_ARGUMENT", "order_create must be epoch seconds, long(10), such as 1704081600"
            )
        if order_create is None:
            # The WAP page: timeout_rule only takes effect together with order_create.
            timeout_rule = _DEFAULT_TIMEOUT
    expires_at = call.now + _duration(timeout_rule)
    order_gmt_create = call.beijing_time("order_gmt_create", required=False)
    order_valid_time = call.text("order_valid_time")
    if (order_gmt_create is None) != (order_valid_time is None):
        raise GatewayRefusal("ILLEGAL_ARGUMENT", "order_gmt_create and order_valid_time go together")
    if order_gmt_create is not None and order_valid_time is not None:
        if not _SECONDS.fullmatch(order_valid_time) or int(order_valid_time) > _ORDER_VALID_MAX:
            raise GatewayRefusal(
                "ILLEGAL_ARGUMENT", f"order_valid_time must be 1 to {_ORDER_VALID_MAX} seconds"
            )
        expires_at = min(expires_at, order_gmt_create + timedelta(seconds=int(order_valid_time)))
    money = price(total_fee, currency, rmb_fee=rmb_fee)

    with locked_partner(call.partner) as partner:
        trade = Trade.objects.select_for_update().filter(partner=partner, out_trade_no=out_trade_no).first()
        if trade is not None:
            trade = expire_if_due(trade, call.now)
            if trade.status in (SUCCESS, FINISHED):
                raise GatewayRefusal("TRADE_HAS_SUCCESS", f"out_trade_no {out_trade_no} is already paid")
            if trade.status == CLOSED:
                raise GatewayRefusal("TRADE_HAS_CLOSE", f"out_trade_no {out_trade_no} is closed")
            if runtime().get("DUPLICATE_TRADE") == "refuse":
                # create_forex_trade page: a duplicate out_trade_no makes the payment fail ("duplicated").
                raise GatewayRefusal("ILLEGAL_ARGUMENT", f"out_trade_no {out_trade_no} is duplicated")
            if (trade.currency, trade.total_fee, trade.rmb_fee) != (
                money.currency,
                money.amount,
                money.rmb_fee,
            ):
                raise GatewayRefusal(
                    "ILLEGAL_ARGUMENT",
                    f"out_trade_no {out_trade_no} was already used for another amount "
                    f"({fmt(trade.total_fee, trade.currency)} {trade.currency})",
                )
        else:
            trade = create_trade(
                partner,
                channel=Trade.ONLINE,
                service=service,
                out_trade_no=out_trade_no,
                money=money,
                now=call.now,
                subject=subject,
                body=body,
                product_code=product_code,
                notify_url=notify_url,
                return_url=return_url,
                merchant_url=merchant_url,
                charset=call.charset,
                sign_type=call.sign_type,
                request_params=call.wire.params,
                expires_at=expires_at,
            )
    target = reverse("django_alipay_emulator:cashier", args=[trade.cashier_token])
    return http_outcome(HttpResponseRedirect(target), label="cashier", note=f"trade {trade.trade_no}")


def single_trade_query(call: Call) -> Outcome:
    """single_trade_query: the trade by trade_no (wins) or out_trade_no, as a signed response/trade block."""
    trade_no = call.text("trade_no", max_length=64)
    out_trade_no = call.text("out_trade_no", max_length=64)
    if trade_no is None and out_trade_no is None:
        raise GatewayRefusal("ILLEGAL_ARGUMENT", "give trade_no or out_trade_no")
    trade = _find_trade(call.partner, trade_no=trade_no, out_trade_no=out_trade_no)
    if trade is None:
        raise GatewayRefusal("TRADE_NOT_EXIST")
    with locked_partner(call.partner):
        trade = expire_if_due(Trade.objects.select_for_update().get(pk=trade.pk), call.now)
    return call.ok("trade", trade_fields(trade))


def trade_fields(trade: Trade) -> dict[str, str]:
    """The response/trade fields of single_trade_query."""
    zero = fmt(Decimal(0), trade.currency)
    total = fmt(trade.total_fee, trade.currency)
    paid = trade.status in (SUCCESS, FINISHED)
    fields = {
        "body": trade.body,
        "discount": zero,
        "flag_trade_locked": "0",
        "gmt_create": format_datetime(trade.gmt_create),
        "gmt_last_modified_time": format_datetime(trade.gmt_modified),
        "is_total_fee_adjust": "F",
        "operator_role": "B",
        "out_trade_no": trade.out_trade_no,
        "payment_type": "100",
        "price": total,
        "quantity": "1",
        "seller_id": trade.partner.partner,
        "subject": trade.subject,
        "to_buyer_fee": fmt(trade.refunded_amount, trade.currency),
        "to_seller_fee": total if paid else zero,
        "total_fee": total,
        "trade_no": trade.trade_no,
        "trade_status": trade.status,
        "use_coupon": "F",
    }
    if trade.additional_status:
        fields["additional_trade_status"] = trade.additional_status
    if trade.buyer is not None:
        fields["buyer_email"] = mask_login_id(trade.buyer.login_id)
        fields["buyer_id"] = trade.buyer.user_id
    if trade.gmt_payment is not None:
        fields["gmt_payment"] = format_datetime(trade.gmt_payment)
    if trade.gmt_close is not None:
        fields["gmt_close"] = format_datetime(trade.gmt_close)
    return {name: value for name, value in sorted(fields.items()) if value}


def _refund_interval_violation(partner: Partner) -> str | None:
    """Check the 3-second spacing of one partner's refunds; note the violation, or record this request."""
    state = runtime()
    nominal = partner.refund_interval if partner.refund_interval is not None else state.get("REFUND_INTERVAL")
    now = state.real_now()
    if partner.last_refund_at is not None and nominal:
        elapsed = (now - partner.last_refund_at).total_seconds()
        needed = state.real_seconds(float(nominal))
        if elapsed < needed:
            return (
                f"refund interval violated: {elapsed * state.time_scale:.3f}s after the previous refund of "
                f"partner {partner.partner}; at least {float(nominal):g}s required"
            )
    partner.last_refund_at = now
    partner.save(update_fields=["last_refund_at"])
    return None


def forex_refund(call: Call) -> Outcome:
    """forex_refund: refund an online payment, in full or in part, once per out_return_no."""
    out_return_no = call.required("out_return_no", max_length=64)
    out_trade_no = call.required("out_trade_no", max_length=64)
    currency = call.currency()
    assert currency is not None
    gmt_return = call.beijing_time("gmt_return")
    call.text("reason", max_length=100)
    call.choice("product_code", ("NEW_OVERSEAS_SELLER", "NEW_WAP_OVERSEAS_SELLER"))
    is_sync = call.choice("is_sync", ("Y", "N")) == "Y"
    has_amount, has_rmb = "return_amount" in call.params, "return_rmb_amount" in call.params
    if has_amount == has_rmb:
        raise GatewayRefusal("ILLEGAL_ARGUMENT", "give exactly one of return_amount and return_rmb_amount")
    amount = call.amount(
        "return_amount", currency, minimum=quantum(currency), maximum=REFUND_MAX, required=has_amount
    )
    rmb_amount = call.amount(
        "return_rmb_amount", "CNY", minimum=ONLINE_MIN, maximum=REFUND_MAX, required=has_rmb
    )
    identity = {
        "out_trade_no": out_trade_no,
        "currency": currency,
        "return_amount": str(amount) if amount is not None else "",
        "return_rmb_amount": str(rmb_amount) if rmb_amount is not None else "",
    }

    with locked_partner(call.partner) as partner:
        violation = _refund_interval_violation(partner)
        if violation is not None:
            raise GatewayRefusal("SYSTEM_ERROR", violation)
        earlier = Refund.objects.filter(partner=partner, kind=Refund.FOREX, refund_id=out_return_no).first()
        if earlier is not None:
            # The forex_refund page documents REPEATED_REFUNDMENT_REQUEST for an out_return_no already used;
            # whether an exact repeat gets the first answer instead is open (knob REPEAT_REFUND_ANSWER).
            exact = earlier.request_params == identity
            if exact and runtime().get("REPEAT_REFUND_ANSWER") == "original_result":
                return call.bare_success(
                    note=f"exact repeat of out_return_no {out_return_no}: original result"
                )
            raise GatewayRefusal(
                "REPEATED_REFUNDMENT_REQUEST", f"out_return_no {out_return_no} is already used"
            )
        trade = (
            Trade.objects.select_for_update()
            .filter(partner=partner, out_trade_no=out_trade_no, channel=Trade.ONLINE)
            .first()
        )
        if trade is None or trade.status != FINISHED:
            raise GatewayRefusal("PURCHASE_TRADE_NOT_EXIST", f"no paid online trade {out_trade_no}")
        if currency != trade.currency:
            raise GatewayRefusal("CURRENCY_NOT_SAME", f"the trade is in {trade.currency}")
        if rmb_amount is not None:
            if trade.rmb_fee is None:
                raise GatewayRefusal(
                    "ILLEGAL_ARGUMENT", "return_rmb_amount is only for trades priced in rmb_fee"
                )
            room_cny = trade.amount_cny - trade.refunded_cny
            if rmb_amount > room_cny:
                raise GatewayRefusal(
                    "RETURN_AMOUNT_EXCEED", f"only {fmt(room_cny, 'CNY')} CNY is left to refund"
                )
            if rmb_amount == room_cny:
                amount = trade.refundable
            else:
                converted = (rmb_amount / rate(currency)).quantize(quantum(currency))
                amount = min(trade.refundable, max(quantum(currency), converted))
            amount_cny: Decimal | None = rmb_amount
        else:
            assert amount is not None
            if amount > trade.refundable:
                raise GatewayRefusal(
                    "RETURN_AMOUNT_EXCEED",
                    f"only {fmt(trade.refundable, currency)} {currency} is left to refund",
                )
            amount_cny = None
        refund = apply_refund(
            trade,
            kind=Refund.FOREX,
            refund_id=out_return_no,
            amount=amount,
            amount_cny=amount_cny,
            now=call.now,
            is_sync=is_sync,
            reason=call.text("reason") or "",
            gmt_return=gmt_return,
            request_params=identity,
        )
        refund.response = {"is_success": "T"}
        refund.save(update_fields=["response"])
        if not is_sync:
            params = {
                "out_trade_no": trade.out_trade_no,
                "out_return_no": out_return_no,
                "refund_status": "REFUND_SUCCESS",
                "currency": currency,
                "return_amount": fmt(refund.amount, currency),
            }
            if rmb_amount is not None:
                params["return_rmb_amount"] = fmt(rmb_amount, "CNY")
            enqueue_notification(trade, notify_type="refund_status_sync", params=params, refund=refund)
    return call.bare_success(note=f"refund {out_return_no} of {fmt(refund.amount, currency)} {currency}")
