"""atheris harness: arbitrary bytes through envelope.parse_response, with and without keys.

Run (from the repository root):  .venv/bin/python fuzz/fuzz_envelope.py WORKDIR fuzz/corpus/envelope
-atheris_runs=200000   (see fuzz/README.md). ``TestOneInput`` is also run by
tests/stateful/test_fuzz_harnesses.py, so it must import without atheris.

Input layout: byte 0 = flags, then the payload.

* flags bit 7 clear, "raw": the payload is a response body, parsed without a key, with an MD5 key (the
  body's sign_type), with an RSA public key (RSA2 forced), with a rotation list of RSA keys, or under a
  small size cap. parse_response may raise GatewayResponseError, and SignatureError when a key is given;
  nothing else. A body whose signature verifies is a forgery (the raw-mode keys sign nothing).
* flags bit 7 set, "signed": the payload is ``name=value`` lines; the harness renders a signed envelope
  (MD5 or RSA2; UTF-8, GBK or GB2312; <alipay> or <trade>), parses it back (fields and signature must
  survive), then changes one field under the old signature, which must raise SignatureError.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django_alipay.protocol import envelope, keys
from django_alipay.protocol.errors import (
    AlipayError,
    GatewayResponseError,
    InvalidParameterError,
    SignatureError,
)

CHARSETS = ("utf-8", "gbk", "gb2312")
# Made-up keys for the harness only; the raw-mode ones sign nothing, so no input can carry their signature.
RAW_MD5_KEY = "rawmodekey0000000000000000000000"
SIGNED_MD5_KEY = "signedmodekey0000000000000000000"
_RSA_PRIVATE = keys.generate_private_key("RSA2")
RSA_PUBLIC = keys.public_key_pem(_RSA_PRIVATE)
RSA_PRIVATE = keys.private_key_pem(_RSA_PRIVATE)
_RAW_RSA_PUBLIC = keys.public_key_pem(keys.generate_private_key("RSA2"))

# (sign_type argument, key, max_bytes) for raw bodies.
RAW_SETUPS: tuple[tuple[str | None, Any, int], ...] = (
    (None, None, envelope.MAX_RESPONSE_BYTES),
    (None, RAW_MD5_KEY, envelope.MAX_RESPONSE_BYTES),
    ("RSA2", _RAW_RSA_PUBLIC, envelope.MAX_RESPONSE_BYTES),
    (None, [_RAW_RSA_PUBLIC, RSA_PUBLIC], envelope.MAX_RESPONSE_BYTES),
    ("MD5", RAW_MD5_KEY, 64),
)
MAX_SIGNED_FIELDS = 40


class UndeclaredError(AssertionError):
    """An AlipayError other than the ones parse_response declares escaped."""


def TestOneInput(data: bytes) -> None:
    """One fuzz input (see the module docstring for its layout)."""
    if not data:
        return
    flags, payload = data[0], data[1:]
    if flags & 0x80:
        _signed_round_trip(flags, payload)
    else:
        _raw(flags, payload)


def _raw(flags: int, body: bytes) -> None:
    sign_type, key, max_bytes = RAW_SETUPS[(flags & 0x7F) % len(RAW_SETUPS)]
    declared: tuple[type[AlipayError], ...] = (
        (GatewayResponseError,) if key is None else (GatewayResponseError, SignatureError)
    )
    try:
        parsed = envelope.parse_response(body, sign_type=sign_type, key=key, max_bytes=max_bytes)
    except AlipayError as exc:
        if not isinstance(exc, declared):
            raise UndeclaredError(
                f"parse_response raised undeclared {type(exc).__name__}: {exc.message}"
            ) from exc
        return
    if parsed.sign_verified:
        raise AssertionError("a raw body verified with a key that signs nothing")
    if not all(isinstance(n, str) and isinstance(v, str) for n, v in parsed.fields.items()):
        raise AssertionError("parse_response returned a field that is not text")
    if key is None and parsed.sign_verified is not None:
        raise AssertionError("sign_verified is set although no key was given")


def _fields(payload: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in payload.decode("utf-8", "replace").split("\n")[:MAX_SIGNED_FIELDS]:
        name, _, value = line.partition("=")
        fields[name] = value
    return fields


def _signed_round_trip(flags: int, payload: bytes) -> None:
    charset = CHARSETS[(flags & 0x03) % 3]
    sign_type = "RSA2" if flags & 0x04 else "MD5"
    element = "trade" if flags & 0x08 else "alipay"
    signing_key = RSA_PRIVATE if sign_type == "RSA2" else SIGNED_MD5_KEY
    verifying_key = RSA_PUBLIC if sign_type == "RSA2" else SIGNED_MD5_KEY
    fields = _fields(payload)
    try:
        body = envelope.render_response(
            is_success=True,
            response_element=element,
            fields=fields,
            sign_type=sign_type,
            key=signing_key,
            charset=charset,
        )
    except InvalidParameterError:
        return  # names XML cannot carry, characters it cannot hold, text the charset cannot encode
    parsed = envelope.parse_response(body, sign_type=sign_type, key=verifying_key)
    kept = {name: value for name, value in fields.items() if value != ""}
    if parsed.fields != kept or parsed.sign_verified is not True or parsed.response_element != element:
        raise AssertionError(f"the round trip changed the envelope: {kept!r} -> {parsed.fields!r}")

    # The same signature over a changed field must not verify.
    signed = [name for name in kept if name not in ("sign", "sign_type")]
    if not signed:
        return
    target = signed[flags % len(signed)]
    changed = dict(kept)
    changed[target] = kept[target] + ("0" if kept[target].endswith("1") else "1")
    unsigned = envelope.render_response(
        is_success=True, response_element=element, fields=changed, charset=charset
    )
    tail = f"<sign>{parsed.sign}</sign><sign_type>{sign_type}</sign_type></alipay>".encode(charset)
    forged = unsigned[: -len(b"</alipay>")] + tail
    try:
        envelope.parse_response(forged, sign_type=sign_type, key=verifying_key)
    except SignatureError:
        return
    raise AssertionError(f"an envelope with a changed {target!r} still verified")


# Coverage feedback comes from the code under test and the parsers it relies on, not the whole stdlib.
INSTRUMENTED = ("django_alipay", "defusedxml", "xml.etree", "urllib.parse")


def main() -> None:
    import gc
    import types

    import atheris

    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and str(obj.__module__).startswith(INSTRUMENTED):
            atheris.instrument_func(obj)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
