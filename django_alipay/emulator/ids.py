"""Identifiers the emulated gateway hands out, shaped like Alipay's: trade numbers, notify_ids, logins."""

from __future__ import annotations

import re
import secrets
import string
from datetime import datetime
from typing import Final

from django_alipay.protocol.clock import format_date

__all__ = ["mask_login_id", "new_cashier_token", "new_notify_id", "new_trade_no"]

_DIGITS: Final = string.digits
_LOWER_ALNUM: Final = string.ascii_lowercase + string.digits
_PHONE: Final = re.compile(r"\+?[0-9-]{7,20}")


def new_trade_no(now: datetime) -> str:
    """An Alipay trade number: the Beijing date ``yyyyMMdd``, ``2200`` and 16 random digits (28 chars)."""
    return format_date(now) + "2200" + "".join(secrets.choice(_DIGITS) for _ in range(16))


def new_notify_id() -> str:
    """A fresh notify_id: 34 lowercase characters like Alipay's (32 hex digits and a 2-character tail)."""
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
