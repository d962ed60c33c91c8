"""atheris harness: arbitrary bytes through parse_form and verify_notification; only declared errors escape.

Run (from the repository root):  .venv/bin/python fuzz/fuzz_notifications.py WORKDIR fuzz/corpus/notifications
-atheris_runs=200000   (see fuzz/README.md). ``TestOneInput`` is also run by
tests/stateful/test_fuzz_harnesses.py, so it must import without atheris.

Input layout: byte 0 = flags, byte 1 = options, byte 2 = length of the query-string part, then the payload.

* flags bit 7 clear, "raw": the payload is the query string (first ``byte 2`` bytes) and the body (the rest),
  parsed with the content type, default charset and limits the flags and options choose, then verified
  with one of four key set-ups. parse_form and verify_notification may raise NotificationError and nothing
  else; a notification that verifies is a forgery (the raw-mode key signs nothing the fuzzer can see).
* flags bit 7 set, "signed": the payload is ``name=value`` lines; the harness signs them (MD5, RSA or RSA2,
  in UTF-8, GBK or GB2312), encodes the form and checks the round trip (it must verify and give back the
  very same parameters), then changes one signed value and checks that the change is refused.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django_alipay.protocol import keys, notifications, signing
from django_alipay.protocol.errors import AlipayError, InvalidParameterError, NotificationError

FORM = "application/x-www-form-urlencoded"
CONTENT_TYPES = (
    FORM,
    FORM + "; charset=GBK",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    None,
    "",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/json",
)
CHARSETS = ("utf-8", "gbk", "gb2312")
# Made-up keys for the harness only. RAW_MD5_KEY verifies raw inputs and signs nothing, so no seed or
# mutation can carry a valid signature for it; SIGNED_MD5_KEY is used by the round trip.
RAW_MD5_KEY = "rawmodekey0000000000000000000000"
SIGNED_MD5_KEY = "signedmodekey0000000000000000000"
_RSA_PRIVATE = keys.generate_private_key("RSA2")
RSA_PUBLIC = keys.public_key_pem(_RSA_PRIVATE)
RSA_PRIVATE = keys.private_key_pem(_RSA_PRIVATE)
_OTHER_PUBLIC = keys.public_key_pem(keys.generate_private_key("RSA2"))

# (key, allowed sign types) for raw inputs: MD5; RSA/RSA2 with a key rotation list; a per-type mapping;
# an MD5 key for a merchant that allows RSA2 only (the downgrade refusal).
RAW_KEYS: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (RAW_MD5_KEY, ("MD5",)),
    ([_OTHER_PUBLIC, RSA_PUBLIC], ("RSA", "RSA2")),
    ({"MD5": RAW_MD5_KEY, "RSA2": RSA_PUBLIC, "RSA": RSA_PUBLIC}, ("MD5", "RSA", "RSA2", "DSA")),
    (RAW_MD5_KEY, ("RSA2",)),
)
RESERVED = frozenset({"sign", "sign_type", "_input_charset", "notify_id"})
MAX_SIGNED_FIELDS = 40


class UndeclaredError(AssertionError):
    """An AlipayError other than the ones the function's docstring declares escaped."""


def _only(declared: tuple[type[AlipayError], ...], exc: AlipayError, where: str) -> None:
    if not isinstance(exc, declared):
        raise UndeclaredError(f"{where} raised undeclared {type(exc).__name__}: {exc.message}") from exc


def TestOneInput(data: bytes) -> None:
    """One fuzz input (see the module docstring for its layout)."""
    if len(data) < 3:
        return
    flags, options, query_length = data[0], data[1], data[2]
    payload = data[3:]
    if flags & 0x80:
        _signed_round_trip(flags, options, payload)
    else:
        _raw(flags, options, payload[:query_length], payload[query_length:])


def _raw(flags: int, options: int, query: bytes, body: bytes) -> None:
    content_type = CONTENT_TYPES[flags & 0x07]
    default_charset = CHARSETS[(flags >> 3) % 3]
    key, allowed = RAW_KEYS[(flags >> 5) & 0x03]
    # WSGI gives the query string as latin-1 text; a test client may give bytes. Both must be safe.
    query_string: str | bytes = query.decode("latin-1") if options & 0x01 else query
    max_bytes = 256 if options & 0x02 else notifications.DEFAULT_MAX_BYTES
    max_fields = 4 if options & 0x04 else notifications.DEFAULT_MAX_FIELDS
    try:
        parsed = notifications.parse_form(
            body,
            content_type=content_type,
            query_string=query_string,
            max_bytes=max_bytes,
            max_fields=max_fields,
            default_charset=default_charset,
        )
    except AlipayError as exc:
        _only((NotificationError,), exc, "parse_form")
        return
    if not all(isinstance(n, str) and isinstance(v, str) for n, v in parsed.params.items()):
        raise AssertionError("parse_form returned a parameter that is not text")
    override = (None, "utf-8", "GBK", "gb2312")[(options >> 3) & 0x03]
    try:
        verified = notifications.verify_notification(
            parsed,
            key=key,
            allowed_sign_types=allowed,
            charset=override,
            require_notify_id=not options & 0x20,
        )
    except AlipayError as exc:
        _only((NotificationError,), exc, "verify_notification")
        return
    raise AssertionError(f"a raw input verified with a key that signs nothing: {verified.params!r}")


def _signed_params(payload: bytes) -> dict[str, str]:
    params: dict[str, str] = {}
    for line in payload.decode("utf-8", "replace").split("\n")[:MAX_SIGNED_FIELDS]:
        name, _, value = line.partition("=")
        # NUL bytes are refused on purpose (flag nul_byte), so they cannot make a round trip.
        if name in RESERVED or "\x00" in line:
            continue
        params[name] = value
    return params


def _encode(form: Mapping[str, str], charset: str) -> bytes:
    return urlencode(form, encoding=charset).encode("ascii")


def _signed_round_trip(flags: int, options: int, payload: bytes) -> None:
    charset = CHARSETS[(flags & 0x03) % 3]
    sign_type = ("MD5", "MD5", "RSA", "RSA2")[(flags >> 2) & 0x03]
    signing_key = SIGNED_MD5_KEY if sign_type == "MD5" else RSA_PRIVATE
    verifying_key = SIGNED_MD5_KEY if sign_type == "MD5" else RSA_PUBLIC
    declare_charset = not options & 0x01
    params = _signed_params(payload)
    params["notify_id"] = "fuzzn0tify1d0000000000000000000000"[: 10 + options % 24]
    if declare_charset:
        params["_input_charset"] = charset
    try:
        sign = signing.sign(params, sign_type=sign_type, key=signing_key, charset=charset)
    except InvalidParameterError:
        return  # a value the charset cannot carry cannot be signed in it (declared: CharsetError)
    form = {**params, "sign": sign, "sign_type": sign_type}
    try:
        body = _encode(form, charset)
    except UnicodeEncodeError:
        return  # an empty value is not signed, but its name must still be sent in the charset
    parsed = notifications.parse_form(body, content_type=FORM, default_charset=charset)
    verified = notifications.verify_notification(parsed, key=verifying_key, allowed_sign_types=[sign_type])
    if verified.params != form:
        raise AssertionError(f"the round trip changed the parameters: {form!r} -> {verified.params!r}")

    # Any change to a signed value must be refused.
    names = sorted(n for n in params if n != "_input_charset")
    target = names[options % len(names)]
    tampered = dict(form)
    tampered[target] = form[target] + ("0" if form[target].endswith("1") else "1")
    parsed = notifications.parse_form(_encode(tampered, charset), content_type=FORM, default_charset=charset)
    try:
        notifications.verify_notification(parsed, key=verifying_key, allowed_sign_types=[sign_type])
    except NotificationError as exc:
        if exc.flag not in ("bad_signature", "bad_notify_id"):
            raise AssertionError(
                f"a changed {target!r} was refused for {exc.flag}, not its signature"
            ) from exc
        return
    raise AssertionError(f"a notification with a changed {target!r} still verified")


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
