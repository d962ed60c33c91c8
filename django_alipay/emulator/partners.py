"""Registering merchant accounts with the emulated gateway: keys, allowed sign types, contracted services."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import rsa

from django_alipay.protocol import dsa
from django_alipay.protocol.errors import KeyFormatError
from django_alipay.protocol.keys import load_public_key, public_key_pem

from .conf import setting
from .gateway import NOTIFY_VERIFY, SERVICES
from .models import ALL_SIGN_TYPES, Partner

__all__ = [
    "KNOWN_SERVICES",
    "PartnerError",
    "ensure_configured_partners",
    "partner_summary",
    "register_partner",
]

KNOWN_SERVICES: Final = (*SERVICES, NOTIFY_VERIFY)
_PARTNER_ID: Final = re.compile(r"[0-9]{16}")
_MD5_KEY: Final = re.compile(r"[\x21-\x7e]{1,64}")


class PartnerError(ValueError):
    """A partner registration is not valid; the message says why (and never quotes a key)."""


def _names(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part).strip() for part in value if str(part).strip()]


def register_partner(
    partner: str,
    *,
    md5_key: str = "",
    merchant_public_key: str = "",
    sign_types: str | Iterable[str] | None = None,
    services: str | Iterable[str] | None = None,
    refund_interval: float | None = None,
) -> Partner:
    """Create or replace the configuration of merchant ``partner`` (16 digits).

    ``sign_types`` defaults to every type the given keys allow (MD5 with ``md5_key``; RSA and RSA2 with an
    RSA ``merchant_public_key``; DSA with a DSA one). ``services`` defaults to all services. Raises
    PartnerError for a malformed id or key, or a sign type without the key it needs.
    """
    if not isinstance(partner, str) or not _PARTNER_ID.fullmatch(partner):
        raise PartnerError("partner must be 16 digits (Alipay partner ids start with 2088)")
    if md5_key and not _MD5_KEY.fullmatch(md5_key):
        raise PartnerError("md5_key must be 1 to 64 printable ASCII characters without spaces")
    pem = ""
    key = None
    if merchant_public_key:
        try:
            key = load_public_key(merchant_public_key)
        except KeyFormatError as exc:
            raise PartnerError(f"merchant_public_key: {exc.message}") from None
        pem = public_key_pem(key)
    available = []
    if md5_key:
        available.append("MD5")
    if isinstance(key, rsa.RSAPublicKey):
        available += ["RSA", "RSA2"]
    if isinstance(key, dsa.DSAPublicKey):
        available.append("DSA")
    chosen = _names(sign_types)
    if chosen is None:
        chosen = available
    for name in chosen:
        if name not in ALL_SIGN_TYPES:
            raise PartnerError(f"unknown sign type {name!r}; use {', '.join(ALL_SIGN_TYPES)}")
        if name not in available:
            need = (
                "md5_key" if name == "MD5" else f"a {'DSA' if name == 'DSA' else 'RSA'} merchant_public_key"
            )
            raise PartnerError(f"sign type {name} needs {need}")
    contracted = _names(services) or []
    unknown = [name for name in contracted if name not in KNOWN_SERVICES]
    if unknown:
        raise PartnerError(f"unknown service(s): {', '.join(unknown)}")
    if refund_interval is not None and (isinstance(refund_interval, bool) or not refund_interval >= 0):
        raise PartnerError("refund_interval must be a number of seconds, 0 or more")
    record, _ = Partner.objects.update_or_create(
        partner=partner,
        defaults={
            "md5_key": md5_key,
            "merchant_public_key": pem,
            "sign_types": ",".join(chosen),
            "services": ",".join(contracted),
            "refund_interval": None if refund_interval is None else float(refund_interval),
        },
    )
    return record


def partner_summary(partner: Partner) -> dict[str, Any]:
    """A partner as JSON-ready data, without its MD5 key."""
    return {
        "partner": partner.partner,
        "has_md5_key": bool(partner.md5_key),
        "merchant_public_key": partner.merchant_public_key or None,
        "sign_types": partner.sign_type_list,
        "services": partner.service_list or "all",
        "refund_interval": partner.refund_interval,
    }


def ensure_configured_partners() -> None:
    """Register the partners of ``ALIPAY_EMULATOR["PARTNERS"]`` that the database does not know yet."""
    for entry in setting("PARTNERS") or ():
        data = dict(entry)
        partner_id = data.pop("partner")
        if not Partner.objects.filter(partner=partner_id).exists():
            register_partner(partner_id, **data)
