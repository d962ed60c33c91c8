"""A tiny independent signer for notifications in the web tests: hashlib and cryptography, not django_alipay.

It follows the gateway's documented pre-sign rule (every parameter but ``sign`` / ``sign_type`` and empty
ones, sorted by name, joined as ``name=value`` with ``&``, encoded in the charset) so that the view and the
library are checked against the protocol, not against themselves.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import quote_plus

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

_HASHES = {"RSA": hashes.SHA1, "RSA2": hashes.SHA256}


def presign(params: dict[str, str]) -> str:
    return "&".join(
        f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type") and params[k]
    )


def signature(params: dict[str, str], *, sign_type: str, key: Any, charset: str = "utf-8") -> str:
    data = presign(params).encode(charset)
    if sign_type == "MD5":
        return hashlib.md5(data + key.encode(charset)).hexdigest()
    return base64.b64encode(key.sign(data, padding.PKCS1v15(), _HASHES[sign_type]())).decode("ascii")


def encode(pairs: list[tuple[str, str]] | dict[str, str], charset: str = "utf-8") -> bytes:
    """A form body the way Alipay sends one: values percent-encoded in ``charset``, spaces as ``+``."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return "&".join(
        f"{quote_plus(k, encoding=charset)}={quote_plus(v, encoding=charset)}" for k, v in items
    ).encode("ascii")


def signed_body(
    params: dict[str, str],
    *,
    key: Any,
    sign_type: str = "MD5",
    charset: str = "utf-8",
    sign_charset: str | None = None,
) -> bytes:
    """``params`` plus ``sign`` and ``sign_type``, encoded as a form body."""
    full = dict(params)
    full["sign"] = signature(params, sign_type=sign_type, key=key, charset=sign_charset or charset)
    full["sign_type"] = sign_type
    return encode(full, charset)
