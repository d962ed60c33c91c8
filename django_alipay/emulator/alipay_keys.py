"""The emulator's own "Alipay" key pairs: made once per database, used to sign, published to merchants."""

from __future__ import annotations

import threading
from typing import Any, Final

from django.db import IntegrityError, transaction

from django_alipay.protocol.keys import (
    KeyMaterial,
    PrivateKey,
    fingerprint,
    generate_private_key,
    load_private_key,
    private_key_pem,
    public_key_one_line,
    public_key_pem,
)

from .conf import setting
from .models import AlipayKey, Partner

__all__ = ["private_key", "public_keys", "signing_key"]

# RSA serves both RSA (SHA-1) and RSA2 (SHA-256). DSA is 1024-bit: SHA1withDSA, the gateway's algorithm, is
# only defined for 160-bit subgroups, and Java's verifier refuses larger ones.
_GENERATE: Final = {"RSA": ("RSA2", 2048), "DSA": ("DSA", 1024)}
_FAMILY: Final = {"RSA": "RSA", "RSA2": "RSA", "DSA": "DSA"}
_generate_lock = threading.Lock()


def private_key(algorithm: str) -> PrivateKey:
    """The emulator's ``"RSA"`` or ``"DSA"`` private key, from settings or the database (made if missing)."""
    configured = setting(f"{algorithm}_PRIVATE_KEY")
    if configured:
        return load_private_key(configured)
    row = AlipayKey.objects.filter(algorithm=algorithm).first()
    if row is None:
        with _generate_lock:
            row = AlipayKey.objects.filter(algorithm=algorithm).first()
            if row is None:
                sign_type, bits = _GENERATE[algorithm]
                pem = private_key_pem(generate_private_key(sign_type, bits=bits))
                try:
                    with transaction.atomic():
                        row = AlipayKey.objects.create(algorithm=algorithm, private_key_pem=pem)
                except IntegrityError:
                    row = AlipayKey.objects.get(algorithm=algorithm)
    return load_private_key(row.private_key_pem)


def signing_key(sign_type: str, partner: Partner) -> KeyMaterial:
    """The key the emulator signs with for ``sign_type``: the partner's MD5 secret or its own private key."""
    if sign_type == "MD5":
        return partner.md5_key
    return private_key(_FAMILY[sign_type])


def public_keys() -> dict[str, dict[str, Any]]:
    """The emulator's public keys per sign type: PEM, one-line Base64, fingerprint."""
    published: dict[str, dict[str, Any]] = {}
    for sign_type, family in _FAMILY.items():
        key = private_key(family)
        published[sign_type] = {
            "algorithm": family,
            "public_key_pem": public_key_pem(key),
            "public_key": public_key_one_line(key),
            "fingerprint": fingerprint(key),
            "key_size": key.key_size,
        }
    return published
