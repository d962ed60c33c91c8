"""An independent mapi signer for the emulator tests: hashlib and cryptography, not django_alipay."""

from __future__ import annotations

import base64
import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HASHES = {"RSA": hashes.SHA1, "RSA2": hashes.SHA256, "DSA": hashes.SHA1}


def presign(params: dict[str, str]) -> str:
    """Every parameter but sign/sign_type and empty ones, sorted by name, joined as name=value with &."""
    return "&".join(
        f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type") and params[k] != ""
    )


def sign(params: dict[str, str], sign_type: str, key: Any, charset: str = "utf-8") -> str:
    data = presign(params).encode(charset)
    if sign_type == "MD5":
        return hashlib.md5(data + key.encode(charset)).hexdigest()
    if isinstance(key, rsa.RSAPrivateKey):
        return base64.b64encode(key.sign(data, padding.PKCS1v15(), HASHES[sign_type]())).decode()
    return base64.b64encode(key.sign(data, HASHES[sign_type]())).decode()


def verify(params: dict[str, str], sign_type: str, key: Any, charset: str = "utf-8") -> bool:
    data = presign(params).encode(charset)
    if sign_type == "MD5":
        return params.get("sign") == hashlib.md5(data + key.encode(charset)).hexdigest()
    raw = base64.b64decode(params["sign"])
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, data, padding.PKCS1v15(), HASHES[sign_type]())
        else:
            key.verify(raw, data, HASHES[sign_type]())
    except InvalidSignature:
        return False
    return True


_DECLARATION = re.compile(rb'<\?xml[^>]*encoding="([^"]+)"[^>]*\?>')


@dataclass
class Envelope:
    """A gateway XML answer, parsed with the standard library."""

    is_success: bool
    error: str | None
    element: str | None
    fields: dict[str, str]
    request: dict[str, str]
    sign: str | None
    sign_type: str | None
    charset: str
    raw: bytes = field(repr=False)

    def signed_params(self) -> dict[str, str]:
        """The response block's fields plus sign, ready for verify()."""
        return {**self.fields, "sign": self.sign or ""}


def parse_envelope(raw: bytes) -> Envelope:
    match = _DECLARATION.match(raw)
    assert match, raw[:200]
    charset = match.group(1).decode().lower()
    root = ET.fromstring(raw[match.end() :].decode(charset))
    assert root.tag == "alipay"
    response = root.find("response")
    block = next(iter(response)) if response is not None else None
    return Envelope(
        is_success=root.findtext("is_success") == "T",
        error=root.findtext("error"),
        element=block.tag if block is not None else None,
        fields={child.tag: child.text or "" for child in block} if block is not None else {},
        request={p.get("name", ""): p.text or "" for p in root.iter("param")},
        sign=root.findtext("sign"),
        sign_type=root.findtext("sign_type"),
        charset=charset,
        raw=raw,
    )
