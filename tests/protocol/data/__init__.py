"""Access to the signing test data: golden vectors (signing_vectors.json) and the key files under keys/.

The key files were made once with the openssl command line (see keys/README.md) and are committed as data;
tests never regenerate them from django_alipay's own output.
"""

from __future__ import annotations

import base64
import json
import pathlib
from typing import Any

DATA_DIR = pathlib.Path(__file__).parent
KEYS_DIR = DATA_DIR / "keys"


def vectors() -> dict[str, Any]:
    """The golden signing vectors."""
    return json.loads((DATA_DIR / "signing_vectors.json").read_text(encoding="utf-8"))


def key_text(name: str) -> str:
    """One key file as text, exactly as stored (trailing newline included when the file has one)."""
    return (KEYS_DIR / name).read_text(encoding="ascii")


def key_a_private_der() -> bytes:
    """Key A's PKCS#8 DER, decoded from the one-line Base64 openssl produced."""
    return base64.b64decode(key_text("key_a_pkcs8_one_line.txt"))


def key_a_public_der() -> bytes:
    """Key A's SubjectPublicKeyInfo DER, decoded from the one-line Base64 openssl produced."""
    return base64.b64decode(key_text("key_a_public_one_line.txt"))


def base64_body(pem_or_base64: str) -> str:
    """The Base64 characters of a PEM or bare Base64 text: what an error message must never contain."""
    lines = [line for line in pem_or_base64.replace("-----", "\n-----").splitlines() if "-----" not in line]
    return "".join("".join(lines).split())
