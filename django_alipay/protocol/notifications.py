"""Read an inbound notification or return_url request from its raw bytes and check that Alipay signed it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal
from urllib.parse import unquote_to_bytes

from django_alipay.protocol import clock as clock_mod
from django_alipay.protocol import money, signing
from django_alipay.protocol.codes import RefundStatus, TradeStatus
from django_alipay.protocol.errors import AlipayError, CharsetError, InvalidParameterError, NotificationError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FIELDS",
    "FLAGS",
    "NOTIFY_ID_MAX_LENGTH",
    "REFUND_FIELDS",
    "ParsedForm",
    "VerifiedNotification",
    "names_a_refund",
    "parse_form",
    "read_notification",
    "read_return",
    "signed_fields",
    "verify_notification",
]

#: Notifications are a few hundred bytes; anything near this cap is not one (Django's own default is 2.5 MB).
DEFAULT_MAX_BYTES: Final = 64 * 1024
#: Alipay sends a few dozen fields at most (Django's default cap is 1000).
DEFAULT_MAX_FIELDS: Final = 200
#: Longest notify_id accepted. Alipay's samples are 34 characters, but no page promises a length; a longer id
#: refused here would drop every notification, so the bound is generous.
NOTIFY_ID_MAX_LENGTH: Final = 128
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"

#: Every ``NotificationError.flag`` this module raises, with what it means.
FLAGS: Final[Mapping[str, str]] = {
    "too_large": "the body (with the query string) is larger than the cap",
    "too_many_fields": "more fields than the cap",
    "unsupported_content_type": "not application/x-www-form-urlencoded",
    "nul_byte": "a NUL byte in a name or value",
    "duplicate_param": "a parameter name appears more than once",
    "bad_charset": "the declared charset is unsupported, or the bytes are not valid in it",
    "missing_sign": "no sign parameter",
    "missing_sign_type": "no sign_type parameter",
    "bad_sign_type": "sign_type is not exactly MD5, RSA, RSA2 or DSA (lowercase is refused)",
    "sign_type_not_allowed": "sign_type is not one the merchant accepts (no MD5 downgrade)",
    "bad_sign_format": "sign is not 32 hex digits (MD5) or Base64 (RSA, RSA2, DSA)",
    "missing_notify_id": "no notify_id parameter",
    "bad_notify_id": "notify_id is longer than 128 characters or not printable ASCII",
    "bad_signature": "the signature does not verify with the merchant's key",
}

#: Soft flags on a verified notification: the data is genuine but a value could not be typed.
SOFT_FLAGS: Final[Mapping[str, str]] = {
    "bad_amount": "an amount is not a canonical amount of its currency (kept as text)",
    "bad_time": "a time is not in a Beijing wire format (kept as text)",
    "unknown_status": "a trade or refund status is not in the catalog (kept as text)",
}

#: Fields that make a notification a refund notification, when they carry a value.
REFUND_FIELDS: Final = ("refund_status", "out_return_no", "partner_refund_id")

_MD5_SIGN = re.compile(r"[0-9A-Fa-f]{32}")
_BASE64_SIGN = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_NOTIFY_ID = re.compile(r"[\x21-\x7e]+")
_SIGN_LAYOUT = str.maketrans("", "", "\r\n\t")
_CONTENT_TYPE_CHARSET = re.compile(r";\s*charset\s*=\s*[\"']?([A-Za-z0-9_.-]+)", re.IGNORECASE)
_MAX_SHOWN = 40

# Amount fields and where their currency comes from: a field name, or a fixed currency.
_AMOUNT_FIELDS: Final[Mapping[str, tuple[str | None, str | None]]] = {
    "total_fee": ("currency", None),
    "price": ("currency", None),
    "forex_total_fee": ("currency", None),
    "return_amount": ("currency", None),
    "refund_amount": ("currency", None),
    "refund_fee": ("currency", None),
    "trans_amount": ("currency", None),
    "rmb_fee": (None, "CNY"),
    "return_rmb_amount": (None, "CNY"),
    "trans_amount_cny": (None, "CNY"),
    "refund_amount_cny": (None, "CNY"),
}
_TIME_FIELDS: Final = frozenset(
    {
        "notify_time",
        "gmt_create",
        "gmt_payment",
        "gmt_close",
        "gmt_refund",
        "gmt_return",
        "alipay_pay_time",
        "alipay_reverse_time",
    }
)
_STATUS_FIELDS: Final[Mapping[str, type[TradeStatus] | type[RefundStatus]]] = {
    "trade_status": TradeStatus,
    "alipay_trans_status": TradeStatus,
    "refund_status": RefundStatus,
}


def _shown(value: object) -> str:
    text = ascii(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _reject(flag: str, message: str, *, raw: bytes | None = None) -> NotificationError:
    """A NotificationError carrying the machine-readable ``flag`` (never a value that could be a secret)."""
    return NotificationError(f"{message} [{flag}]", flag=flag, raw_response=raw[:4096] if raw else None)


@dataclass(frozen=True)
class ParsedForm:
    """A form decoded from raw bytes, before any trust: names and values in the order they arrived.

    ``charset`` is the one the bytes were decoded with, ``charset_source`` says where it came from: the form's
    own ``_input_charset`` (``"form"``), the request's ``Content-Type`` ``charset=`` (``"content_type"``) or
    the merchant default (``"default"``). ``pairs`` keeps the
    percent-decoded bytes so the same form can be decoded again with another charset.
    """

    params: dict[str, str]
    charset: str
    charset_source: Literal["form", "content_type", "default"]
    pairs: tuple[tuple[bytes, bytes], ...] = field(repr=False)
    body: bytes = field(repr=False)
    query_string: str = ""
    content_type: str | None = None

    def decoded_with(self, charset: str) -> dict[str, str]:
        """The parameters decoded with another charset (NotificationError ``bad_charset`` if invalid)."""
        return _decode_pairs(self.pairs, signing.normalize_charset(charset), self.body)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _query_bytes(query_string: str | bytes) -> bytes:
    if isinstance(query_string, bytes):
        return query_string
    # WSGI hands the query string over as latin-1 decoded text; anything beyond that came in as UTF-8.
    try:
        return query_string.encode("latin-1")
    except UnicodeEncodeError:
        return query_string.encode("utf-8")


def _split(data: bytes) -> list[tuple[bytes, bytes]]:
    pairs: list[tuple[bytes, bytes]] = []
    for segment in data.split(b"&"):
        if not segment:
            continue
        name, _, value = segment.partition(b"=")
        # A '+' in a form means a space; percent-decoding then happens exactly once (%252F stays %2F).
        pairs.append(
            (unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" ")))
        )
    return pairs


def _decode_pairs(pairs: tuple[tuple[bytes, bytes], ...], charset: str, raw: bytes) -> dict[str, str]:
    params: dict[str, str] = {}
    for name_bytes, value_bytes in pairs:
        try:
            name = name_bytes.decode(charset)
            value = value_bytes.decode(charset)
        except UnicodeDecodeError:
            raise _reject(
                "bad_charset",
                f"parameter {_shown(name_bytes)} holds bytes that are not valid {charset}",
                raw=raw,
            ) from None
        if name in params:
            raise _reject("duplicate_param", f"parameter {_shown(name)} appears more than once", raw=raw)
        params[name] = value
    return params


def parse_form(
    body: bytes,
    *,
    content_type: str | None,
    query_string: str | bytes = "",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_fields: int = DEFAULT_MAX_FIELDS,
    default_charset: str = "gbk",
) -> ParsedForm:
    """Decode a notification (POST form body) or a return_url request (query string) from its raw bytes.

    The query string and the body are read together, so nothing the sender added escapes the signature
    check. The charset is the form's own ``_input_charset``, else the ``charset=`` of ``content_type``, else
    ``default_charset`` (the merchant's; the gateway's documented default is GBK). Raises NotificationError
    with ``.flag``: ``too_large``, ``too_many_fields``, ``unsupported_content_type`` (a body that is not a
    urlencoded form), ``nul_byte``, ``duplicate_param`` (any name twice, ``sign`` and ``notify_id``
    included), ``bad_charset``.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise InvalidParameterError(f"body must be bytes, not {type(body).__name__}", parameter="body")
    body = bytes(body)
    query = _query_bytes(query_string)
    fallback = signing.normalize_charset(default_charset)
    if len(body) + len(query) > max_bytes:
        raise _reject(
            "too_large", f"the request carries {len(body) + len(query)} bytes, over the {max_bytes} cap"
        )
    media = _media_type(content_type)
    if media and media != FORM_CONTENT_TYPE:
        raise _reject("unsupported_content_type", f"content type {_shown(media)} is not {FORM_CONTENT_TYPE}")
    if body and not media:
        raise _reject(
            "unsupported_content_type", f"a body arrived without the content type {FORM_CONTENT_TYPE}"
        )
    # Counted before splitting, so a hostile body cannot make us build a huge list.
    segments = query.count(b"&") + body.count(b"&") + 2
    if segments > max_fields * 4 + 2:
        raise _reject("too_many_fields", f"more than {max_fields} fields")
    if b"\x00" in body or b"\x00" in query:
        raise _reject("nul_byte", "the request contains a NUL byte", raw=body)
    pairs = tuple(_split(query) + _split(body))
    if len(pairs) > max_fields:
        raise _reject("too_many_fields", f"{len(pairs)} fields, over the cap of {max_fields}")
    for name_bytes, value_bytes in pairs:
        if b"\x00" in name_bytes or b"\x00" in value_bytes:
            raise _reject("nul_byte", f"parameter {_shown(name_bytes)} contains a NUL byte (%00)", raw=body)

    declared = [value for name, value in pairs if name == b"_input_charset"]
    if len(declared) > 1:
        raise _reject("duplicate_param", "parameter '_input_charset' appears more than once", raw=body)
    source: Literal["form", "content_type", "default"] = "default"
    charset: str = fallback
    header_charset = _CONTENT_TYPE_CHARSET.search(content_type or "")
    if not declared and header_charset is not None:
        # A header naming another charset (added by a proxy, say) is not the signer's word: ignored.
        with contextlib.suppress(CharsetError):
            charset = signing.normalize_charset(header_charset.group(1))
            source = "content_type"
    if declared:
        try:
            charset = signing.normalize_charset(declared[0].decode("ascii"))
        except (UnicodeDecodeError, CharsetError):
            raise _reject(
                "bad_charset", f"_input_charset {_shown(declared[0])} is not utf-8, gbk or gb2312", raw=body
            ) from None
        source = "form"
    params = _decode_pairs(pairs, charset, body)
    return ParsedForm(
        params=params,
        charset=charset,
        charset_source=source,
        pairs=pairs,
        body=body,
        query_string=query.decode("latin-1"),
        content_type=content_type,
    )


def signed_fields(params: Mapping[str, str]) -> dict[str, str]:
    """The parameters a signature covers: every one but ``sign`` and ``sign_type`` that carries a value.

    An empty parameter is outside the signature, so anyone can add or remove it: what a notification is and
    whether two deliveries say the same thing must be decided from these fields only.
    """
    return {name: value for name, value in params.items() if value and name not in ("sign", "sign_type")}


def names_a_refund(params: Mapping[str, str]) -> bool:
    """True when a signed field (one with a value) names a refund or a refund status."""
    return any(params.get(name) for name in REFUND_FIELDS)


@dataclass(frozen=True)
class VerifiedNotification:
    """A notification (or return_url request) whose signature verified with the merchant's key.

    ``params`` are the decoded strings exactly as received and signed, in arrival order (``sign`` included);
    ``fields`` the same names with typed values: amounts as Decimal (where a currency is present), times as
    aware datetimes, ``trade_status`` / ``refund_status`` as codes enums. A value that cannot be typed stays
    a string and raises a soft flag in ``flags`` (``bad_amount``, ``bad_time``, ``unknown_status``): the data
    is genuine but needs a human. ``checked`` lists the checks that passed, in order.

    Only the signature is checked here. The caller still calls notify_verify for asynchronous notifications,
    and compares amount, currency and partner with its own order.
    """

    params: dict[str, str]
    fields: dict[str, Any]
    sign_type: str
    charset: str
    charset_source: str
    flags: frozenset[str]
    checked: tuple[str, ...]

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        """The typed value of ``name``, or ``default``."""
        return self.fields.get(name, default)

    @property
    def notify_id(self) -> str | None:
        """The notification id to pass to notify_verify (None on a return_url request without one)."""
        return self.params.get("notify_id")

    @property
    def notify_type(self) -> str | None:
        """``trade_status_sync`` and friends."""
        return self.params.get("notify_type")

    @property
    def notify_time(self) -> datetime | str | None:
        """When Alipay sent it (aware datetime), or the raw text when malformed."""
        value: datetime | str | None = self.fields.get("notify_time")
        return value

    @property
    def out_trade_no(self) -> str | None:
        """The merchant's order number (``out_trade_no``, or ``partner_trans_id`` in-store)."""
        return self.params.get("out_trade_no") or self.params.get("partner_trans_id")

    @property
    def trade_status(self) -> TradeStatus | str | None:
        """The trade status as TradeStatus, the raw text when unknown, None when absent."""
        value: TradeStatus | str | None = self.fields.get(
            "trade_status", self.fields.get("alipay_trans_status")
        )
        return value

    @property
    def refund_status(self) -> RefundStatus | str | None:
        """The refund status as RefundStatus, the raw text when unknown, None when absent."""
        value: RefundStatus | str | None = self.fields.get("refund_status")
        return value

    @property
    def is_refund(self) -> bool:
        """True for a refund notification: a signed field (one with a value) names a refund or its status."""
        return names_a_refund(self.params)

    @property
    def currency(self) -> str | None:
        """The ``currency`` field."""
        return self.params.get("currency")

    @property
    def total_fee(self) -> Decimal | str | None:
        """``total_fee`` as Decimal (raw text when malformed or when no currency says how to read it)."""
        value: Decimal | str | None = self.fields.get("total_fee")
        return value


def _check_sign_format(sign_type: str, sign: str) -> bool:
    if not sign.isascii():
        return False
    if sign_type == "MD5":
        return _MD5_SIGN.fullmatch(sign) is not None
    # Line breaks and tabs are layout (wrapped Base64); a space is a "+" lost to form decoding, or layout.
    compact = sign.translate(_SIGN_LAYOUT)
    return any(
        len(candidate) % 4 == 0 and _BASE64_SIGN.fullmatch(candidate) is not None
        for candidate in (compact.replace(" ", "+"), compact.replace(" ", ""))
    )


def _typed_fields(params: Mapping[str, str]) -> tuple[dict[str, Any], set[str]]:
    fields: dict[str, Any] = {}
    flags: set[str] = set()
    for name, text in params.items():
        value: Any = text
        if text and name in _AMOUNT_FIELDS:
            currency_field, fixed = _AMOUNT_FIELDS[name]
            currency = fixed or (params.get(currency_field) if currency_field else None)
            if currency:
                try:
                    value = money.parse_amount(text, currency, parameter=name)
                except (AlipayError, ValueError):
                    flags.add("bad_amount")
        elif text and name in _TIME_FIELDS:
            try:
                value = clock_mod.parse_any_datetime(text, parameter=name)
            except (AlipayError, ValueError):
                flags.add("bad_time")
        elif text and name in _STATUS_FIELDS:
            try:
                value = _STATUS_FIELDS[name](text)
            except ValueError:
                flags.add("unknown_status")
        fields[name] = value
    return fields, flags


def verify_notification(
    parsed: ParsedForm,
    *,
    key: Any,
    allowed_sign_types: Collection[str],
    charset: str | None = None,
    require_notify_id: bool = True,
) -> VerifiedNotification:
    """Check the signature of a parsed form with the merchant's key material and allowed sign types.

    ``key`` is what verifies the received ``sign_type``: the MD5 secret, or Alipay's public key (or a list of
    them during a rotation); or a mapping from sign type to such key when a merchant accepts several.
    ``allowed_sign_types`` is the merchant's allow-list: a notification signed MD5 for a merchant configured
    for RSA2 is refused, as is a lowercase ``md5``. ``charset`` re-decodes the form when given; by default the
    charset it was parsed with is used for the signed bytes. ``require_notify_id`` is for asynchronous
    notifications (return_url requests carry none).

    Raises NotificationError with ``.flag``: ``missing_sign``, ``missing_sign_type``, ``bad_sign_type``,
    ``sign_type_not_allowed``, ``bad_sign_format``, ``missing_notify_id``, ``bad_notify_id``,
    ``bad_signature`` (or ``bad_charset`` / ``duplicate_param`` when re-decoding). A malformed signature never
    raises anything else. Unusable key material raises KeyFormatError: that is configuration, not input.
    """
    used_charset = parsed.charset
    params = parsed.params
    if charset is not None and signing.normalize_charset(charset) != parsed.charset:
        used_charset = signing.normalize_charset(charset)
        params = parsed.decoded_with(used_charset)
    raw = parsed.body
    checked = ["content_type", "size", "field_count", "nul_bytes", "duplicates", "charset"]

    sign = params.get("sign", "")
    if not sign:
        raise _reject("missing_sign", "the request carries no sign", raw=raw)
    sign_type = params.get("sign_type", "")
    if not sign_type:
        raise _reject("missing_sign_type", "the request carries no sign_type", raw=raw)
    if sign_type not in signing.SIGN_TYPES:
        raise _reject("bad_sign_type", f"sign_type {_shown(sign_type)} is not MD5, RSA, RSA2 or DSA", raw=raw)
    allowed = {signing.normalize_sign_type(name) for name in allowed_sign_types}
    verifying_key = key.get(sign_type) if isinstance(key, Mapping) else key
    if sign_type not in allowed or verifying_key is None:
        raise _reject(
            "sign_type_not_allowed",
            f"sign_type {sign_type} is not accepted here (allowed: {', '.join(sorted(allowed))})",
            raw=raw,
        )
    checked.append("sign_type")
    if not _check_sign_format(sign_type, sign):
        shape = "32 hex digits" if sign_type == "MD5" else "Base64"
        raise _reject("bad_sign_format", f"sign is not {shape}", raw=raw)
    checked.append("sign_format")
    if require_notify_id:
        notify_id = params.get("notify_id", "")
        if not notify_id:
            raise _reject("missing_notify_id", "the notification carries no notify_id", raw=raw)
        if len(notify_id) > NOTIFY_ID_MAX_LENGTH or not _NOTIFY_ID.fullmatch(notify_id):
            raise _reject(
                "bad_notify_id",
                f"notify_id is not at most {NOTIFY_ID_MAX_LENGTH} printable ASCII characters",
                raw=raw,
            )
        checked.append("notify_id")
    try:
        genuine = signing.verify(params, key=verifying_key, sign_type=sign_type, charset=used_charset)
    except InvalidParameterError:
        # Values the charset cannot carry cannot have been signed in it; KeyFormatError is not caught here.
        genuine = False
    if not genuine:
        raise _reject("bad_signature", f"the {sign_type} signature does not verify", raw=raw)
    checked.append("signature")
    fields, flags = _typed_fields(params)
    return VerifiedNotification(
        params=dict(params),
        fields=fields,
        sign_type=sign_type,
        charset=used_charset,
        charset_source=parsed.charset_source if used_charset == parsed.charset else "override",
        flags=frozenset(flags),
        checked=tuple(checked),
    )


def read_notification(
    body: bytes,
    *,
    content_type: str | None,
    key: Any,
    allowed_sign_types: Collection[str],
    query_string: str | bytes = "",
    default_charset: str = "gbk",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_fields: int = DEFAULT_MAX_FIELDS,
) -> VerifiedNotification:
    """parse_form then verify_notification, for an asynchronous notification (POST to notify_url)."""
    parsed = parse_form(
        body,
        content_type=content_type,
        query_string=query_string,
        max_bytes=max_bytes,
        max_fields=max_fields,
        default_charset=default_charset,
    )
    return verify_notification(parsed, key=key, allowed_sign_types=allowed_sign_types)


def read_return(
    query_string: str | bytes,
    *,
    key: Any,
    allowed_sign_types: Collection[str],
    default_charset: str = "gbk",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_fields: int = DEFAULT_MAX_FIELDS,
) -> VerifiedNotification:
    """Parse and verify a return_url GET request; it needs no notify_id, and its data never changes state."""
    parsed = parse_form(
        b"",
        content_type=None,
        query_string=query_string,
        max_bytes=max_bytes,
        max_fields=max_fields,
        default_charset=default_charset,
    )
    return verify_notification(
        parsed, key=key, allowed_sign_types=allowed_sign_types, require_notify_id=False
    )
