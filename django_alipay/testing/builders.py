"""Build correctly signed notifications, return_url queries and gateway responses for a shop's tests.

Everything here is pure Python (no Django import), signs with :mod:`django_alipay.protocol.signing` and
renders envelopes with :func:`django_alipay.protocol.envelope.render_response`, so what a test feeds its
code has the very bytes Alipay (or the emulator) would send. Defaults fill in what a test rarely cares
about: a fresh ``notify_id``, ``notify_time`` now in Beijing time (from the domain clock, so
``alipay_clock`` moves it), an Alipay ``trade_no`` of today's date. Pass a field to override a default;
pass it as None to leave it out.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Final, NamedTuple
from urllib.parse import urlencode

from django_alipay.protocol import clock as protocol_clock
from django_alipay.protocol import envelope, money, signing
from django_alipay.protocol.errors import InvalidParameterError
from django_alipay.protocol.notifications import parse_form

__all__ = [
    "FORM_CONTENT_TYPE",
    "SignedForm",
    "build_refund_notification",
    "build_response",
    "build_return_query",
    "build_trade_notification",
    "encode_form",
    "form_content_type",
    "new_notify_id",
    "new_trade_no",
    "sign_form",
    "sign_params",
]

FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
#: How the charset is spelled in a Content-Type header (the gateway's own spellings).
_CHARSET_LABELS: Final = {"utf-8": "utf-8", "gbk": "GBK", "gb2312": "GB2312"}
_LOWER_ALNUM: Final = string.ascii_lowercase + string.digits

#: A field value a builder accepts: text as sent, a Decimal amount (formatted for the currency), an aware
#: datetime (written as Beijing time), or None to leave the field out.
FieldValue = str | Decimal | datetime | None


class SignedForm(NamedTuple):
    """A signed form body and the Content-Type to send it with; unpacks as ``body, content_type``."""

    body: bytes
    content_type: str

    @property
    def params(self) -> dict[str, str]:
        """The decoded fields (``sign`` and ``sign_type`` included), read back the way a receiver would."""
        charset = self.content_type.partition("charset=")[2] or "gbk"
        return parse_form(self.body, content_type=self.content_type, default_charset=charset).params


def new_notify_id() -> str:
    """A fresh notify_id shaped like Alipay's: 32 hex digits and a two-character tail (34 characters)."""
    return secrets.token_hex(16) + "".join(secrets.choice(_LOWER_ALNUM) for _ in range(2))


def new_trade_no(when: datetime | None = None) -> str:
    """An Alipay trade number: the Beijing date ``yyyyMMdd``, ``2200``, then 16 random digits."""
    day = protocol_clock.format_date(when or _now())
    return day + "2200" + "".join(secrets.choice(string.digits) for _ in range(16))


def form_content_type(charset: str = "utf-8") -> str:
    """``application/x-www-form-urlencoded; charset=...`` as the gateway labels ``charset``."""
    return f"{FORM_CONTENT_TYPE}; charset={_CHARSET_LABELS[signing.normalize_charset(charset)]}"


def sign_params(
    params: Mapping[str, str | None],
    *,
    key: signing.SigningKey,
    sign_type: str = "MD5",
    charset: str = "utf-8",
) -> dict[str, str]:
    """``params`` (None values left out) with ``sign`` and ``sign_type`` added, signed in ``charset``.

    ``key`` is the MD5 secret, or the private key Alipay signs with (for a test: the emulator's, or one the
    test generated and configured as "Alipay's public key" of its merchant).
    """
    kind = signing.normalize_sign_type(sign_type)
    present = {name: value for name, value in params.items() if value is not None}
    signed = dict(present)
    signed["sign"] = signing.sign(present, sign_type=kind, key=key, charset=charset)
    signed["sign_type"] = kind
    return signed


def encode_form(params: Mapping[str, str], charset: str = "utf-8") -> bytes:
    """Form-encode ``params`` in ``charset`` as the gateway does: spaces as ``+``, a ``+`` as ``%2B``."""
    return urlencode(dict(params), encoding=signing.normalize_charset(charset)).encode("ascii")


def sign_form(
    params: Mapping[str, str | None],
    *,
    key: signing.SigningKey,
    sign_type: str = "MD5",
    charset: str = "utf-8",
) -> SignedForm:
    """Sign ``params`` exactly as given (no defaults added) and form-encode them: the low-level builder."""
    signed = sign_params(params, key=key, sign_type=sign_type, charset=charset)
    return SignedForm(encode_form(signed, charset), form_content_type(charset))


def _now() -> datetime:
    # The domain clock module is Django-free; reading it makes notify_time follow the alipay_clock fixture.
    from django_alipay.domain import clock as domain_clock

    return domain_clock.now()


def _text(name: str, value: FieldValue, currency: str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return protocol_clock.format_datetime(value, parameter=name)
    if isinstance(value, Decimal):
        currency = "CNY" if name.endswith(("rmb_fee", "rmb_amount", "_cny")) else currency
        if not currency:
            raise InvalidParameterError(
                f"{name} is a Decimal but no currency says how to write it", parameter=name
            )
        return money.format_amount(value, currency, parameter=name)
    raise InvalidParameterError(
        f"{name} must be a str, Decimal, aware datetime or None, not {type(value).__name__}", parameter=name
    )


def _fields(defaults: dict[str, FieldValue], overrides: Mapping[str, FieldValue]) -> dict[str, str]:
    merged = {**defaults, **overrides}
    currency = merged.get("currency")
    currency_text = currency if isinstance(currency, str) else None
    texts = {name: _text(name, value, currency_text) for name, value in merged.items()}
    return {name: value for name, value in texts.items() if value is not None}


def build_trade_notification(
    out_trade_no: str,
    *,
    key: signing.SigningKey,
    sign_type: str = "MD5",
    charset: str = "utf-8",
    total_fee: str | Decimal = "100.00",
    currency: str = "USD",
    trade_status: str = "TRADE_FINISHED",
    **fields: FieldValue,
) -> SignedForm:
    """A signed payment notification (``notify_type=trade_status_sync``) as Alipay POSTs it to notify_url.

    Defaults: a fresh ``notify_id``, ``notify_time`` now (Beijing), a ``trade_no`` of today. In-store
    notifications add fields such as ``notify_action_type``, ``gmt_payment``, ``buyer_id``: pass them.
    Returns ``(body, content_type)``.
    """
    defaults: dict[str, FieldValue] = {
        "notify_id": new_notify_id(),
        "notify_time": _now(),
        "notify_type": "trade_status_sync",
        "trade_no": new_trade_no(),
        "out_trade_no": out_trade_no,
        "total_fee": total_fee,
        "currency": currency,
        "trade_status": trade_status,
    }
    return sign_form(_fields(defaults, fields), key=key, sign_type=sign_type, charset=charset)


def build_refund_notification(
    out_trade_no: str,
    out_return_no: str,
    amount: str | Decimal,
    *,
    key: signing.SigningKey,
    sign_type: str = "MD5",
    charset: str = "utf-8",
    currency: str = "USD",
    refund_status: str = "REFUND_SUCCESS",
    instore: bool = False,
    **fields: FieldValue,
) -> SignedForm:
    """A signed refund notification (``notify_type=refund_status_sync``) for an asynchronous refund.

    Online (``forex_refund``): ``out_trade_no``, ``out_return_no``, ``return_amount``. In-store
    (``instore=True``, ``spot.refund``): ``partner_trans_id``, ``partner_refund_id``, ``refund_amount``.
    ``out_return_no`` is the refund's gateway id (``Refund.gateway_refund_id``). Returns ``(body,
    content_type)``.
    """
    defaults: dict[str, FieldValue] = {
        "notify_id": new_notify_id(),
        "notify_time": _now(),
        "notify_type": "refund_status_sync",
        "currency": currency,
        "refund_status": refund_status,
    }
    if instore:
        defaults |= {
            "partner_trans_id": out_trade_no,
            "partner_refund_id": out_return_no,
            "refund_amount": amount,
        }
    else:
        defaults |= {"out_trade_no": out_trade_no, "out_return_no": out_return_no, "return_amount": amount}
    return sign_form(_fields(defaults, fields), key=key, sign_type=sign_type, charset=charset)


def build_return_query(
    out_trade_no: str,
    *,
    key: signing.SigningKey,
    sign_type: str = "MD5",
    charset: str = "utf-8",
    total_fee: str | Decimal = "100.00",
    currency: str = "USD",
    trade_status: str = "TRADE_FINISHED",
    **fields: FieldValue,
) -> str:
    """The signed query string Alipay's cashier appends to return_url after a payment (no ``?``).

    Default ``trade_no``: one of today. Use it as ``client.get(f"{return_path}?{query}")`` or hand it to
    ``domain.notifications.receive_return``.
    """
    defaults: dict[str, FieldValue] = {
        "out_trade_no": out_trade_no,
        "trade_no": new_trade_no(),
        "total_fee": total_fee,
        "currency": currency,
        "trade_status": trade_status,
    }
    return sign_form(_fields(defaults, fields), key=key, sign_type=sign_type, charset=charset).body.decode(
        "ascii"
    )


def _response_element(service: str) -> str:
    # In-store services answer inside <alipay>, the online query inside <trade>.
    return "alipay" if service.startswith("alipay.") else "trade"


def build_response(
    service: str,
    fields: Mapping[str, FieldValue] | None = None,
    *,
    key: signing.SigningKey | None = None,
    sign_type: str = "MD5",
    charset: str = "utf-8",
    error: str | None = None,
    is_success: bool | None = None,
    request: Mapping[str, str] | None = None,
    response_element: str | None = None,
) -> bytes:
    """The XML envelope the gateway answers ``service`` with; signed over ``fields`` when ``key`` is given.

    ``fields`` go in ``<response><trade>`` for single_trade_query and ``<response><alipay>`` for the
    ``alipay.acquire.*`` services (override with ``response_element``); with no fields the answer is a bare
    ``is_success`` (forex_refund's success). ``error`` makes it ``is_success=F`` (unless ``is_success`` says
    otherwise). ``request`` is the echo; by default ``service`` and ``_input_charset``. ``key`` is the MD5
    secret or Alipay's private key, as in :func:`sign_params`.
    """
    texts = _fields({}, fields or {})
    element = (
        response_element if response_element is not None else (_response_element(service) if texts else None)
    )
    echo = dict(request) if request is not None else {"_input_charset": charset, "service": service}
    return envelope.render_response(
        is_success=(error is None) if is_success is None else is_success,
        error=error,
        request=echo,
        response_element=element,
        fields=texts or None,
        sign_type=None if key is None else signing.normalize_sign_type(sign_type),
        key=key,
        charset=charset,
    )
