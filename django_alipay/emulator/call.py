"""One authenticated gateway call as the services see it: its parameters, validators and answer builders."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final
from urllib.parse import urlsplit

from django.http import HttpRequest

from django_alipay.protocol.clock import parse_any_datetime, parse_epoch_millis
from django_alipay.protocol.errors import AmountError, InvalidParameterError, TimeFormatError
from django_alipay.protocol.money import exponent, parse_amount

from . import alipay_keys
from .conf import runtime
from .models import Partner
from .wire import Outcome, WireRequest, echo_params, xml_outcome

__all__ = ["Call", "GatewayRefusal", "amount_too_precise"]

_CURRENCY: Final = re.compile(r"[A-Z]{3}")
_GBK: Final = "gbk"
_MAX_URL: Final = 200


class GatewayRefusal(Exception):
    """Stop the call and answer ``is_success=F`` with ``code`` (an HTML error page for page services)."""

    def __init__(self, code: str, note: str = "") -> None:
        super().__init__(f"{code}: {note}" if note else code)
        self.code = code
        self.note = note


def _encodable(text: str, codec: str) -> bool:
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def amount_too_precise(text: str) -> bool:
    """True for a well-formed amount that only fails because its currency takes fewer decimals (JPY 1.50)."""
    try:
        parse_amount(text, "USD")
    except AmountError:
        return False
    return True


@dataclass
class Call:
    """A gateway call that passed the gateway checks (service, partner, sign, contract, charset)."""

    http: HttpRequest
    wire: WireRequest
    service: str
    partner: Partner
    sign_type: str
    now: datetime

    @property
    def charset(self) -> str:
        """The charset of the request, which the answer is written in too."""
        return self.wire.response_charset

    @property
    def params(self) -> dict[str, str]:
        """The parameters with a value (empty ones count as absent, as in the signature)."""
        return {name: value for name, value in self.wire.params.items() if value != ""}

    # --- reading parameters

    def text(self, name: str, *, max_length: int | None = None) -> str | None:
        """An optional parameter; ILLEGAL_ARGUMENT when longer than ``max_length`` characters."""
        value = self.params.get(name)
        if value is not None and max_length is not None and len(value) > max_length:
            raise GatewayRefusal("ILLEGAL_ARGUMENT", f"{name} is longer than {max_length} characters")
        return value

    def required(self, name: str, *, max_length: int | None = None) -> str:
        """A required parameter; ILLEGAL_ARGUMENT when missing or empty."""
        value = self.text(name, max_length=max_length)
        if value is None:
            raise GatewayRefusal("ILLEGAL_ARGUMENT", f"{name} is required")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], *, required: bool = False) -> str | None:
        """A parameter that must be one of ``allowed``."""
        value = self.required(name) if required else self.text(name)
        if value is not None and value not in allowed:
            raise GatewayRefusal("ILLEGAL_ARGUMENT", f"{name} must be one of {', '.join(allowed)}")
        return value

    def currency(self, name: str = "currency", *, required: bool = True) -> str | None:
        """A currency code: three uppercase letters (ILLEGAL_ARGUMENT otherwise)."""
        value = self.required(name) if required else self.text(name)
        if value is not None and not _CURRENCY.fullmatch(value):
            raise GatewayRefusal("ILLEGAL_ARGUMENT", f"{name} must be three uppercase letters")
        return value

    def amount(
        self, name: str, currency: str, *, minimum: Decimal, maximum: Decimal, required: bool = True
    ) -> Decimal | None:
        """An amount in ``currency``'s exponent within the range; ILLEGAL_ARGUMENT otherwise."""
        value = self.required(name) if required else self.text(name)
        if value is None:
            return None
        try:
            exponent(currency)
            return parse_amount(value, currency, minimum=minimum, maximum=maximum, parameter=name)
        except (AmountError, InvalidParameterError) as exc:
            raise GatewayRefusal("ILLEGAL_ARGUMENT", str(exc.message)) from None

    def url(self, name: str, *, required: bool = False) -> str | None:
        """A notify_url/return_url: absolute http(s), at most 200 characters, no query string."""
        value = self.required(name) if required else self.text(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise GatewayRefusal("ILLEGAL_ARGUMENT", f"{name} must be an absolute http(s) URL")
        if len(value) > _MAX_URL:
            raise GatewayRefusal("ILLEGAL_ARGUMENT", f"{name} is longer than {_MAX_URL} characters")
        if parts.query or parts.fragment:
            # The docs forbid custom parameters such as ?id=123 in notify_url and return_url.
            raise GatewayRefusal("ILLEGAL_ARGUMENT", f"{name} must not carry a query string")
        return value

    def beijing_time(self, name: str, *, required: bool = True) -> datetime | None:
        """A Beijing time in either wire form ("yyyy-MM-dd HH:mm:ss" or "yyyyMMddHHmmss")."""
        value = self.required(name) if required else self.text(name)
        if value is None:
            return None
        try:
            return parse_any_datetime(value, parameter=name)
        except TimeFormatError as exc:
            raise GatewayRefusal("ILLEGAL_ARGUMENT", exc.message) from None

    def timestamp(self, name: str = "timestamp", *, required: bool = True) -> datetime | None:
        """A request ``timestamp`` (epoch milliseconds or Beijing "yyyy-MM-dd HH:mm:ss") close to the clock.

        The global pages say such a request expires after 30 minutes; a timestamp further than
        TIMESTAMP_TOLERANCE seconds from the emulator clock is refused with ILLEGAL_ARGUMENT.
        """
        value = self.required(name) if required else self.text(name)
        if value is None:
            return None
        try:
            when = parse_epoch_millis(value, parameter=name) if value.isdigit() else self.beijing_time(name)
        except TimeFormatError as exc:
            raise GatewayRefusal("ILLEGAL_ARGUMENT", exc.message) from None
        assert when is not None
        tolerance = runtime().get("TIMESTAMP_TOLERANCE")
        if tolerance is not None and abs(when - self.now) > timedelta(seconds=float(tolerance)):
            raise GatewayRefusal(
                "ILLEGAL_ARGUMENT",
                f"{name} is more than {tolerance:g} seconds away from the gateway clock (request expired)",
            )
        return when

    # --- answers

    def ok(self, element: str, fields: Mapping[str, str], *, label: str = "", note: str = "") -> Outcome:
        """``is_success=T`` with a signed ``response/<element>`` block and the request echo.

        Written and signed in the request's charset, or, as the RESPONSE_CHARSET knob says, declared GBK and
        signed in GBK or in the request's charset (when every field can be written in GBK).
        """
        charset, sign_charset = self.charset, None
        mode = runtime().get("RESPONSE_CHARSET")
        if mode != "request" and all(_encodable(value, _GBK) for value in fields.values()):
            charset = _GBK
            sign_charset = _GBK if mode == "gbk_signed_as_declared" else self.charset
        return xml_outcome(
            charset=charset,
            is_success=True,
            echo=echo_params(self.wire.params, charset),
            response_element=element,
            fields=fields,
            sign_type=self.sign_type,
            key=alipay_keys.signing_key(self.sign_type, self.partner),
            sign_charset=sign_charset,
            label=label or fields.get("result_code", "T"),
            note=note,
        )

    def bare_success(self, *, note: str = "") -> Outcome:
        """The bare ``<alipay><is_success>T</is_success></alipay>`` of forex_refund."""
        return xml_outcome(charset=self.charset, is_success=True, label="T", note=note)
