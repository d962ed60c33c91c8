"""The in-store (acquire) services: spot.pay, precreate, overseas.query, spot.refund, spot.reverse and cancel.

They all answer ``is_success=T`` once the gateway accepted the call, with the business outcome in a signed
``response/alipay`` block (``result_code`` and ``error`` / ``detail_error_code``). Only missing or malformed
parameters are refused at the gateway level (``is_success=F``, ``ILLEGAL_ARGUMENT``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Final

from django.urls import reverse

from django_alipay.protocol.clock import format_compact, parse_compact, same_beijing_day
from django_alipay.protocol.codes import lookup_error
from django_alipay.protocol.errors import TimeFormatError
from django_alipay.protocol.money import INSTORE_MAX, REFUND_MAX, quantum

from .call import Call, GatewayRefusal, amount_too_precise
from .ids import mask_login_id
from .models import Buyer, Partner, Refund, Trade
from .operations import (
    CLOSED,
    FINISHED,
    SUCCESS,
    WAIT,
    PaymentRefused,
    apply_refund,
    close_trade,
    create_trade,
    enqueue_notification,
    expire_if_due,
    fmt,
    locked_partner,
    notify_status_change,
    pay_trade,
    price,
)
from .seed import RATES, ensure_buyers
from .wire import Outcome

__all__ = [
    "REVERSE_WINDOW_CLOSED",
    "acquire_cancel",
    "overseas_query",
    "precreate",
    "spot_fields",
    "spot_pay",
    "spot_refund",
    "spot_reverse",
]

SPOT_PAY: Final = "alipay.acquire.overseas.spot.pay"
PRECREATE: Final = "alipay.acquire.precreate"
#: 16-24 digits starting with 25, 26, 27, 28, 29 or 30 (spot_pay page).
BARCODE: Final = re.compile(r"(?:2[5-9]|30)[0-9]{14,22}")
#: The code of a REVERSE/cancel of a paid trade after the Beijing day of its payment. The catalog has no
#: dedicated code; TRADE_STATUS_ERROR ("not in a state that allows this operation; query it") is the entry
#: whose meaning and advice fit: the trade is fine, only a REFUND can give its money back now.
REVERSE_WINDOW_CLOSED: Final = "TRADE_STATUS_ERROR"
_IT_B_PAY: Final = re.compile(r"([1-9][0-9]{0,4})([mhd])")
_UNITS: Final = {"m": 60, "h": 3600, "d": 86400}
_DEFAULT_QR_VALIDITY: Final = "2h"


def _instore_trade(
    partner: Partner, *, out_trade_no: str | None = None, trade_no: str | None = None
) -> Trade | None:
    trades = Trade.objects.select_for_update().filter(partner=partner, channel=Trade.INSTORE)
    if trade_no is not None:
        return trades.filter(trade_no=trade_no).first()
    return trades.filter(out_trade_no=out_trade_no).first()


def _settlement_currency(call: Call, name: str = "currency", *, required: bool = True) -> str | None:
    currency = call.currency(name, required=required)
    if currency is not None and currency not in RATES:
        raise GatewayRefusal("ILLEGAL_CURRENCY", f"{currency} is not a currency of this gateway")
    return currency


def spot_fields(trade: Trade) -> dict[str, str]:
    """The SUCCESS answer of spot.pay for a paid trade."""
    buyer = trade.buyer
    assert buyer is not None
    assert trade.gmt_payment is not None
    fields = {
        "result_code": "SUCCESS",
        "alipay_buyer_login_id": mask_login_id(buyer.login_id),
        "alipay_buyer_user_id": buyer.user_id,
        "partner_trans_id": trade.out_trade_no,
        "alipay_trans_id": trade.trade_no,
        "alipay_pay_time": format_compact(trade.gmt_payment),
        "currency": trade.currency,
        "trans_amount": fmt(trade.total_fee, trade.currency),
        "exchange_rate": str(trade.exchange_rate),
        "trans_amount_cny": fmt(trade.amount_cny, "CNY"),
    }
    if buyer.payment_inst != "ALIPAYCN":
        fields["payment_inst"] = buyer.payment_inst
    return fields


def spot_pay(call: Call) -> Outcome:
    """alipay.acquire.overseas.spot.pay: the merchant scanned a buyer's barcode; pay now (or UNKNOW)."""
    seller_id = call.required("alipay_seller_id")
    trans_name = call.required("trans_name", max_length=256)
    partner_trans_id = call.required("partner_trans_id", max_length=64)
    currency = _settlement_currency(call)
    assert currency is not None
    trans_currency = call.currency("trans_currency", required=False)
    if trans_currency is not None and trans_currency != currency:
        raise GatewayRefusal("ILLEGAL_ARGUMENT", "the emulator only prices in the settlement currency")
    amount = call.amount("trans_amount", currency, minimum=quantum(currency), maximum=INSTORE_MAX)
    assert amount is not None
    code = call.required("buyer_identity_code", max_length=32)
    call.choice("identity_code_type", ("barcode", "qrcode"), required=True)
    try:
        parse_compact(call.required("trans_create_time"), parameter="trans_create_time")
    except TimeFormatError as exc:
        raise GatewayRefusal("ILLEGAL_ARGUMENT", exc.message) from None
    call.choice("biz_product", ("OVERSEAS_MBARCODE_PAY",), required=True)
    notify_url = call.url("notify_url") or ""

    def failed(error: str, trade: Trade | None = None) -> dict[str, str]:
        fields = {"result_code": "FAILED", "error": error, "partner_trans_id": partner_trans_id}
        if trade is not None:
            fields["alipay_trans_id"] = trade.trade_no
        return fields

    if seller_id != call.partner.partner:
        return call.ok("alipay", failed("SELLER_NOT_EXIST"), label="FAILED SELLER_NOT_EXIST")
    with locked_partner(call.partner) as partner:
        existing = (
            Trade.objects.select_for_update().filter(partner=partner, out_trade_no=partner_trans_id).first()
        )
        if existing is not None:
            if existing.service == SPOT_PAY and existing.buyer_identity_code == code and existing.pay_result:
                result = dict(existing.pay_result)
                return call.ok("alipay", result, note="repeat of a partner_trans_id: the original result")
            return call.ok(
                "alipay", failed("TRADE_BUYER_NOT_MATCH", existing), label="FAILED TRADE_BUYER_NOT_MATCH"
            )
        if not BARCODE.fullmatch(code):
            return call.ok(
                "alipay",
                failed("INVALID_PARAMETER"),
                label="FAILED INVALID_PARAMETER",
                note="buyer_identity_code is not 16-24 digits starting 25-30",
            )
        ensure_buyers()
        buyer = Buyer.objects.filter(barcode=code).first()
        if buyer is None:
            return call.ok("alipay", failed("BUYER_NOT_EXIST"), label="FAILED BUYER_NOT_EXIST")
        trade = create_trade(
            partner,
            channel=Trade.INSTORE,
            service=SPOT_PAY,
            out_trade_no=partner_trans_id,
            money=price(amount, currency),
            now=call.now,
            subject=trans_name,
            product_code="OVERSEAS_MBARCODE_PAY",
            notify_url=notify_url,
            charset=call.charset,
            sign_type=call.sign_type,
            request_params=call.wire.params,
            buyer=buyer,
            buyer_identity_code=code,
        )
        if buyer.enabled and buyer.needs_confirmation:
            result = {
                "result_code": "UNKNOW",
                "partner_trans_id": partner_trans_id,
                "alipay_trans_id": trade.trade_no,
            }
        else:
            try:
                trade = pay_trade(trade, buyer, now=call.now)
            except PaymentRefused as refused:
                close_trade(trade, now=call.now, reason="payment_refused", notify=False)
                result = failed(refused.code, trade)
            else:
                result = spot_fields(trade)
        trade.pay_result = result
        trade.save(update_fields=["pay_result"])
    return call.ok("alipay", result)


def _qr_fields(call: Call, trade: Trade) -> dict[str, str]:
    cashier = call.http.build_absolute_uri(
        reverse("django_alipay_emulator:cashier", args=[trade.cashier_token])
    )
    picture = call.http.build_absolute_uri(
        reverse("django_alipay_emulator:qr", args=[trade.cashier_token, "png"])
    )
    return {
        "result_code": "SUCCESS",
        "out_trade_no": trade.out_trade_no,
        "voucher_type": "qrcode",
        "qr_code": cashier,
        "pic_url": f"{picture}?picSize=M",
        "small_pic_url": f"{picture}?picSize=S",
        "big_pic_url": f"{picture}?picSize=L",
    }


def _precreate_failed(out_trade_no: str, code: str, description: str = "") -> dict[str, str]:
    return {
        "result_code": "FAIL",
        "out_trade_no": out_trade_no,
        "detail_error_code": code,
        "detail_error_des": description or lookup_error(code).description,
    }


def precreate(call: Call) -> Outcome:
    """alipay.acquire.precreate: create a QR-code trade the buyer scans (a link to the emulator's cashier)."""
    out_trade_no = call.required("out_trade_no", max_length=64)
    subject = call.required("subject", max_length=256)
    call.choice("product_code", ("OVERSEAS_MBARCODE_PAY",), required=True)
    currency = _settlement_currency(call, required=False)
    trans_currency = _settlement_currency(call, "trans_currency", required=False)
    if currency is None and trans_currency is None:
        raise GatewayRefusal("ILLEGAL_ARGUMENT", "give currency (or trans_currency)")
    if currency is not None and trans_currency is not None and currency != trans_currency:
        raise GatewayRefusal("ILLEGAL_ARGUMENT", "the emulator only prices in the settlement currency")
    pricing = trans_currency or currency
    assert pricing is not None
    amount = call.amount("total_fee", pricing, minimum=quantum(pricing), maximum=INSTORE_MAX)
    assert amount is not None
    call.timestamp(required=False)
    notify_url = call.url("notify_url") or ""
    validity = call.text("it_b_pay") or _DEFAULT_QR_VALIDITY
    match = _IT_B_PAY.fullmatch(validity)
    if match is None:
        raise GatewayRefusal("ILLEGAL_ARGUMENT", "it_b_pay must look like 30m, 2h or 1d")
    expires_at = call.now + timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])

    with locked_partner(call.partner) as partner:
        existing = (
            Trade.objects.select_for_update().filter(partner=partner, out_trade_no=out_trade_no).first()
        )
        if existing is not None:
            existing = expire_if_due(existing, call.now)
            if existing.status in (SUCCESS, FINISHED):
                fields = _precreate_failed(out_trade_no, "TRADE_HAS_SUCCESS")
            elif existing.status == CLOSED:
                fields = _precreate_failed(out_trade_no, "TRADE_HAS_CLOSE")
            elif existing.service != PRECREATE or (existing.currency, existing.total_fee) != (
                pricing,
                amount,
            ):
                fields = _precreate_failed(
                    out_trade_no, "ILLEGAL_ARGUMENT", "out_trade_no was already used for another transaction"
                )
            else:
                return call.ok("alipay", _qr_fields(call, existing), note="repeat: the same QR code")
            return call.ok("alipay", fields, label=f"FAIL {fields['detail_error_code']}")
        trade = create_trade(
            partner,
            channel=Trade.INSTORE,
            service=PRECREATE,
            out_trade_no=out_trade_no,
            money=price(amount, pricing),
            now=call.now,
            subject=subject,
            body=call.text("body", max_length=400) or "",
            product_code="OVERSEAS_MBARCODE_PAY",
            notify_url=notify_url,
            charset=call.charset,
            sign_type=call.sign_type,
            request_params=call.wire.params,
            expires_at=expires_at,
        )
    return call.ok("alipay", _qr_fields(call, trade))


def query_fields(trade: Trade) -> dict[str, str]:
    """The SUCCESS answer of alipay.acquire.overseas.query."""
    fields = {
        "result_code": "SUCCESS",
        "alipay_trans_status": trade.status,
        "partner_trans_id": trade.out_trade_no,
        "out_trade_no": trade.out_trade_no,
        "alipay_trans_id": trade.trade_no,
        "currency": trade.currency,
        "trans_amount": fmt(trade.total_fee, trade.currency),
        "forex_total_fee": fmt(trade.total_fee, trade.currency),
        "exchange_rate": str(trade.exchange_rate),
        "trans_amount_cny": fmt(trade.amount_cny, "CNY"),
        "trans_forex_rate": "1",
    }
    if trade.gmt_payment is not None:
        fields["alipay_pay_time"] = format_compact(trade.gmt_payment)
    buyer = trade.buyer
    if buyer is not None and trade.gmt_payment is not None:
        fields["alipay_buyer_login_id"] = mask_login_id(buyer.login_id)
        fields["alipay_buyer_user_id"] = buyer.user_id
        fields["payment_inst"] = buyer.payment_inst
    return fields


def overseas_query(call: Call) -> Outcome:
    """alipay.acquire.overseas.query: by alipay_trans_id (checked first) and/or partner_trans_id."""
    partner_trans_id = call.text("partner_trans_id", max_length=64)
    alipay_trans_id = call.text("alipay_trans_id", max_length=64)
    if partner_trans_id is None and alipay_trans_id is None:
        raise GatewayRefusal("ILLEGAL_ARGUMENT", "give partner_trans_id or alipay_trans_id")
    with locked_partner(call.partner) as partner:
        trade = _instore_trade(partner, out_trade_no=partner_trans_id, trade_no=alipay_trans_id)
        if trade is None:
            fields = {"result_code": "FAIL", "error": "TRANS_NOT_FOUND"}
            if partner_trans_id is not None:
                fields["partner_trans_id"] = partner_trans_id
            return call.ok("alipay", fields, label="FAIL TRANS_NOT_FOUND")
        trade = expire_if_due(trade, call.now)
    return call.ok("alipay", query_fields(trade))


def spot_refund(call: Call) -> Outcome:
    """alipay.acquire.overseas.spot.refund (REFUND): partial or full, repeatable, never beyond the paid."""
    partner_trans_id = call.required("partner_trans_id", max_length=64)
    partner_refund_id = call.required("partner_refund_id", max_length=64)
    if partner_refund_id == partner_trans_id:
        raise GatewayRefusal("ILLEGAL_ARGUMENT", "partner_refund_id must differ from partner_trans_id")
    alipay_trans_id = call.text("alipay_trans_id", max_length=64)
    currency = call.currency()
    assert currency is not None
    text = call.required("refund_amount")
    call.text("refund_reason", max_length=128)
    is_sync = call.choice("is_sync", ("Y", "N")) == "Y"
    notify_url = call.url("notify_url") or ""

    def failed(error: str, trade: Trade | None = None) -> Outcome:
        fields = {
            "result_code": "FAILED",
            "error": error,
            "partner_trans_id": partner_trans_id,
            "partner_refund_id": partner_refund_id,
        }
        if trade is not None:
            fields["alipay_trans_id"] = trade.trade_no
        return call.ok("alipay", fields, label=f"FAILED {error}")

    try:
        amount = call.amount("refund_amount", currency, minimum=quantum(currency), maximum=REFUND_MAX)
    except GatewayRefusal:
        if amount_too_precise(text):
            return failed("REFUND_AMT_RESTRICTION")
        raise
    assert amount is not None

    with locked_partner(call.partner) as partner:
        earlier = Refund.objects.filter(
            partner=partner, kind=Refund.SPOT, refund_id=partner_refund_id
        ).first()
        if earlier is not None:
            return call.ok(
                "alipay", earlier.response, note="repeat of a partner_refund_id: the original result"
            )
        trade = _instore_trade(partner, out_trade_no=partner_trans_id)
        if trade is None or (alipay_trans_id is not None and alipay_trans_id != trade.trade_no):
            return failed("TRADE_NOT_EXIST")
        trade = expire_if_due(trade, call.now)
        if trade.status == CLOSED:
            return failed("TRADE_HAS_CLOSE", trade)
        if trade.status != SUCCESS:
            return failed("TRADE_STATUS_ERROR", trade)
        if currency != trade.currency:
            return failed("CURRENCY_NOT_SAME", trade)
        if amount > trade.total_fee:
            return failed("REQUEST_AMOUNT_EXCEED", trade)
        if amount > trade.refundable:
            return failed("RETURN_AMOUNT_EXCEED", trade)
        refund = apply_refund(
            trade,
            kind=Refund.SPOT,
            refund_id=partner_refund_id,
            amount=amount,
            now=call.now,
            is_sync=is_sync,
            reason=call.text("refund_reason") or call.text("refund_reson") or "",
            request_params={"partner_trans_id": partner_trans_id, "refund_amount": str(amount)},
        )
        fields = {
            "result_code": "SUCCESS",
            "partner_trans_id": partner_trans_id,
            "partner_refund_id": partner_refund_id,
            "alipay_trans_id": trade.trade_no,
            "currency": currency,
            "refund_amount": fmt(amount, currency),
            "exchange_rate": str(trade.exchange_rate),
            "refund_amount_cny": fmt(refund.amount_cny, "CNY"),
        }
        refund.response = fields
        refund.save(update_fields=["response"])
        if not is_sync and notify_url:
            enqueue_notification(
                trade,
                notify_type="refund_status_sync",
                url=notify_url,
                refund=refund,
                params={
                    "partner_trans_id": partner_trans_id,
                    "partner_refund_id": partner_refund_id,
                    "alipay_trans_id": trade.trade_no,
                    "refund_status": "REFUND_SUCCESS",
                    "currency": currency,
                    "refund_amount": fmt(amount, currency),
                },
            )
    return call.ok("alipay", fields)


def _reverse(call: Call, trade: Trade, kind: str) -> tuple[str, str | None]:
    """Close or fully refund ``trade`` for REVERSE/cancel; returns (action, error code or None)."""
    trade = expire_if_due(trade, call.now)
    if trade.status == WAIT:
        close_trade(trade, now=call.now, reason=kind)
        return "close", None
    if trade.status == CLOSED:
        if trade.close_reason in (Refund.REVERSE, Refund.CANCEL):
            # A retried REVERSE/cancel: the trade is already reversed, which is what was asked.
            return ("refund" if trade.refunded_amount else "close"), None
        return "", "TRADE_HAS_CLOSE"
    if trade.status != SUCCESS or trade.gmt_payment is None:
        return "", "TRADE_STATUS_ERROR"
    if not same_beijing_day(trade.gmt_payment, call.now):
        return "", REVERSE_WINDOW_CLOSED
    if trade.refunded_amount > Decimal(0):
        return "", "TRADE_STATUS_ERROR"
    apply_refund(trade, kind=kind, refund_id="", amount=trade.total_fee, now=call.now)
    trade.close_reason = kind
    trade.save(update_fields=["close_reason"])
    notify_status_change(trade)
    return "refund", None


def spot_reverse(call: Call) -> Outcome:
    """alipay.acquire.overseas.spot.reverse (REVERSE): full amount, only on the payment's Beijing day."""
    partner_trans_id = call.required("partner_trans_id", max_length=64)
    with locked_partner(call.partner) as partner:
        trade = _instore_trade(partner, out_trade_no=partner_trans_id)
        if trade is None:
            fields = {
                "result_code": "FAILED",
                "error": "TRADE_NOT_EXIST",
                "partner_trans_id": partner_trans_id,
            }
            return call.ok("alipay", fields, label="FAILED TRADE_NOT_EXIST")
        _, error = _reverse(call, trade, Refund.REVERSE)
        trade.refresh_from_db()
    fields = {"partner_trans_id": partner_trans_id, "alipay_trans_id": trade.trade_no}
    if error is not None:
        fields.update(result_code="FAILED", error=error)
        return call.ok("alipay", fields, label=f"FAILED {error}")
    fields.update(result_code="SUCCESS", alipay_reverse_time=format_compact(call.now))
    return call.ok("alipay", fields)


def acquire_cancel(call: Call) -> Outcome:
    """alipay.acquire.cancel: close an unpaid trade, or refund a paid one on its Beijing day."""
    call.timestamp()
    out_trade_no = call.required("out_trade_no", max_length=64)
    trade_no = call.text("trade_no", max_length=64)

    def failed(error: str, trade: Trade | None = None) -> Outcome:
        fields = {
            "result_code": "FAIL",
            "out_trade_no": out_trade_no,
            "retry_flag": "N",
            "error": error,
            "detail_error_code": error,
            "detail_error_des": lookup_error(error).description,
        }
        if trade is not None:
            fields["trade_no"] = trade.trade_no
        return call.ok("alipay", fields, label=f"FAIL {error}")

    with locked_partner(call.partner) as partner:
        trade = _instore_trade(partner, out_trade_no=out_trade_no)
        if trade is None or (trade_no is not None and trade_no != trade.trade_no):
            return failed("TRADE_NOT_EXIST")
        action, error = _reverse(call, trade, Refund.CANCEL)
        trade.refresh_from_db()
    if error is not None:
        return failed(error, trade)
    fields = {
        "result_code": "SUCCESS",
        "out_trade_no": out_trade_no,
        "trade_no": trade.trade_no,
        "retry_flag": "N",
        "action": action,
    }
    return call.ok("alipay", fields)
