"""Identifiers the emulated gateway hands out, shaped like Alipay's: trade numbers, notify_ids, logins."""

from __future__ import annotations

import re
import secrets
import string
from datetime import datetime
from typing import Final

from django_alipay.protocol.clock import format_date

__all__ = ["LONG_NOTIFY_ID_LENGTH", "mask_login_id", "new_cashier_token", "new_notify_id", "new_trade_no"]

_DIGITS: Final = string.digits
_LOWER_ALNUM: Final = string.ascii_lowercase + string.digits
# Printable ASCII that survives a form body only when percent-encoded ("/", "+", "="), as Base64 ids would.
_LONG_ID_ALPHABET: Final = string.ascii_letters + string.digits + "/+=-_."
#: Length of a notify_id under the NOTIFY_ID_FORMAT knob's "long" value: the library's generous bound.
LONG_NOTIFY_ID_LENGTH: Final = 128
_PHONE: Final = re.compile(r"\+?[0-9-]{7,20}")


def new_trade_no(now: datetime) -> str:
    """An Alipay trade number: the Beijing date ``yyyyMMdd``, ``2200`` and 16 random digits (28 chars)."""
    return format_date(now) + "2200" + "".join(secrets.choice(_DIGITS) for _ in range(16))


def new_notify_id(*, long: bool = False) -> str:
    """A fresh notify_id: 34 lowercase characters like Alipay's (32 hex digits and a 2-character tail).

    ``long``: 128 printable ASCII characters, some of which need percent-encoding, for a gateway whose ids
    outgrow the samples.
    """
    if long:
        return "".join(secrets.choice(_LONG_ID_ALPHABET) for _ in range(LONG_NOTIFY_ID_LENGTH))
    return secrets.token_hex(16) + "".join(secrets.choice(_LOWER_ALNUM) for _ in range(2))


def new_cashier_token() -> str:
    """An unguessable token naming a trade in cashier and QR-code URLs."""
    return secrets.token_urlsafe(24)


def mask_login_id(login_id: str) -> str:
    """The buyer login as Alipay shows it to merchants: ``buy***@alitest.com``, ``138****8000``."""
    if "@" in login_id:
        local, _, domain = login_id.partition("@")
        return f"{local[:3]}***@{domain}"
    if _PHONE.fullmatch(login_id) and len(login_id) >= 7:
        return f"{login_id[:3]}****{login_id[-4:]}"
    return f"{login_id[:2]}***"
