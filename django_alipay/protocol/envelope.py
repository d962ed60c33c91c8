"""Read and write the XML envelope of the gateway's server-to-server answers, and check its signature."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as defused_et
from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from django_alipay.protocol import signing
from django_alipay.protocol.errors import (
    CharsetError,
    GatewayResponseError,
    InvalidParameterError,
    KeyFormatError,
    SignatureError,
)

__all__ = ["MAX_RESPONSE_BYTES", "GatewayResponse", "parse_response", "render_response"]

MAX_RESPONSE_BYTES = 1_048_576
"""Default cap on a response body; real envelopes are a few kilobytes, anything near this is not one."""

# Canonical codec name -> the label written in the XML declaration (the spellings seen in real captures).
_DECLARATION_LABELS = {"utf-8": "utf-8", "gbk": "GBK", "gb2312": "GB2312"}

_ENVELOPE_TAGS = frozenset({"is_success", "error", "request", "response", "sign", "sign_type"})
_UNSIGNED_NAMES = frozenset({"sign", "sign_type"})

_DECLARATION = re.compile(
    rb"<\?xml\s+version\s*=\s*(?P<vq>[\"'])1\.[0-9]+(?P=vq)"
    rb"(?:\s+encoding\s*=\s*(?P<eq>[\"'])(?P<encoding>[A-Za-z][A-Za-z0-9._-]*)(?P=eq))?"
    rb"(?:\s+standalone\s*=\s*(?P<sq>[\"'])(?:yes|no)(?P=sq))?\s*\?>"
)
_DECLARATION_START = re.compile(rb"<\?xml[\s?]")
_ANY_DECLARATION = re.compile(rb"<\?xml[^>]*>")

_UTF8_BOM = b"\xef\xbb\xbf"
_XML_WHITESPACE = b" \t\r\n"

# How the codecs report bytes that stop in the middle of a multi-byte character.
_INCOMPLETE_CHARACTER_REASONS = ("unexpected end of data", "incomplete multibyte sequence")
# Expat errors raised when the input stops before the document does.
_TRUNCATION_MESSAGES = ("no element found", "unclosed token", "unclosed CDATA section")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_XML_ILLEGAL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
# In attributes a parser turns raw tab/newline/CR into spaces, so they travel as character references.
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)

_EXCERPT_CHARS = 120
_OVERSIZE_KEPT_BYTES = 4096


@dataclass(frozen=True, kw_only=True)
class GatewayResponse:
    """One parsed gateway envelope.

    ``is_success`` only says the gateway accepted the call, never that the business succeeded: look at
    ``result_code`` (acquire services) or the trade status for that. ``fields`` are the children of the single
    element inside ``<response>`` (``response_element``, e.g. ``"alipay"`` or ``"trade"``), XML-unescaped and
    unstripped, exactly the values the signature covers. ``request`` is the gateway's unsigned echo of the
    request. ``sign_type`` is the value the body carried. ``sign_verified`` is True when the signature was
    checked and holds, None when nothing was checked (no key given, no signature, no response block, or
    ``is_success=F``); a signature that fails never produces a GatewayResponse. ``sign_charset`` is the
    charset the verified signature was computed in: the declared one, or the request's ``_input_charset``
    when only that one verifies (None when nothing was verified). ``charset`` is the declared encoding
    (``"utf-8"`` when the body declares none) and ``raw`` the body as received.
    """

    is_success: bool
    error: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    response_element: str | None = None
    request: dict[str, str] = field(default_factory=dict)
    sign: str | None = None
    sign_type: str | None = None
    sign_verified: bool | None = None
    sign_charset: str | None = None
    charset: str = "utf-8"
    raw: bytes = field(default=b"", repr=False)

    @property
    def result_code(self) -> str | None:
        """The business ``result_code`` of acquire services (``SUCCESS``, ``FAIL`` ...), if present."""
        return self.fields.get("result_code")

    @property
    def detail_error_code(self) -> str | None:
        """The business ``detail_error_code`` that accompanies a failed ``result_code``, if present."""
        return self.fields.get("detail_error_code")


def parse_response(
    body: bytes,
    *,
    sign_type: str | None = None,
    key: signing.VerifyingKey | None = None,
    max_bytes: int = MAX_RESPONSE_BYTES,
    request_charset: str | None = None,
) -> GatewayResponse:
    """Parse a gateway XML body and, when ``key`` is given, verify its signature.

    ``sign_type`` forces the algorithm (otherwise the body's ``<sign_type>`` is used); ``key`` is the MD5
    secret or Alipay's public key(s), as ``signing.verify`` accepts them. The signature is checked only for
    ``is_success=T`` bodies that carry both a ``<response>`` block and a ``<sign>``, over the response block's
    fields encoded in the body's declared charset, then, when that fails, in ``request_charset`` (the
    request's ``_input_charset``): a real answer to a UTF-8 request declared GBK, and no source says which
    of the two the gateway signs in. No third charset is ever tried.

    Raises GatewayResponseError for a body that is empty, larger than ``max_bytes``, HTML, not well-formed,
    hostile (DTD, entities, external references), in an unsupported or wrong encoding, or not shaped like an
    envelope; SignatureError when a checked signature does not hold, or when the body names a sign type that
    is unknown, missing, or one ``key`` cannot serve. A ``sign_type`` argument that is not a sign type raises
    InvalidParameterError, and an unusable ``key`` for a forced ``sign_type`` raises KeyFormatError: those
    are the caller's configuration, not the gateway's doing. Clients should pass the merchant's configured
    ``sign_type`` rather than trust the body's.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise InvalidParameterError(
            f"the response body must be bytes, not {type(body).__name__}", parameter="body"
        )
    if max_bytes <= 0:
        raise InvalidParameterError("max_bytes must be a positive number of bytes", parameter="max_bytes")
    raw = bytes(body)
    # The size cap comes first so an attacker-sized body never reaches the decoder or the parser.
    if len(raw) > max_bytes:
        raise GatewayResponseError(
            f"the response body is {len(raw)} bytes, over the {max_bytes}-byte limit; it was not parsed",
            raw_response=raw[:_OVERSIZE_KEPT_BYTES],
        )
    # Checked before the body so a misconfigured caller learns it even from an unsigned answer.
    forced_sign_type = signing.normalize_sign_type(sign_type) if sign_type is not None else None
    fallback_charset = signing.normalize_charset(request_charset) if request_charset is not None else None

    text, charset = _decode(raw)
    root = _parse_xml(text, raw)
    if root.tag != "alipay":
        if isinstance(root.tag, str) and root.tag.lower() == "html":
            raise GatewayResponseError(_html_message(raw), raw_response=raw)
        raise GatewayResponseError(
            f"the root element of the response is <{root.tag}>, not <alipay>", raw_response=raw
        )

    envelope = _envelope_children(root, raw)
    is_success = _parse_is_success(envelope.get("is_success"), raw)
    error = _scalar(envelope.get("error"), raw)
    sign = _scalar(envelope.get("sign"), raw)
    body_sign_type = _scalar(envelope.get("sign_type"), raw)
    request = _parse_request(envelope.get("request"), raw)
    response_element, fields = _parse_response_block(envelope.get("response"), raw)

    sign_verified: bool | None = None
    sign_charset: str | None = None
    if is_success and response_element is not None and sign is not None and key is not None:
        sign_charset = _verify(
            fields,
            sign=sign,
            sign_type=forced_sign_type or body_sign_type,
            forced=forced_sign_type is not None,
            key=key,
            charsets=(charset,) if fallback_charset in (None, charset) else (charset, fallback_charset),
            raw=raw,
            service=request.get("service"),
            out_trade_no=fields.get("out_trade_no") or request.get("out_trade_no"),
        )
        sign_verified = True

    return GatewayResponse(
        is_success=is_success,
        error=error,
        fields=fields,
        response_element=response_element,
        request=request,
        sign=sign,
        sign_type=body_sign_type,
        sign_verified=sign_verified,
        sign_charset=sign_charset,
        charset=charset,
        raw=raw,
    )


def render_response(
    *,
    is_success: bool,
    error: str | None = None,
    request: Mapping[str, str] | None = None,
    response_element: str | None = None,
    fields: Mapping[str, str] | None = None,
    sign_type: str | None = None,
    key: signing.SigningKey | None = None,
    charset: str = "utf-8",
    sign_charset: str | None = None,
) -> bytes:
    """Build the XML envelope a gateway would answer with: the inverse of ``parse_response``.

    Elements come in the gateway's order: ``is_success``, ``error``, ``request`` (``<param name=...>`` echo),
    ``response`` (``<response_element>`` holding ``fields``), ``sign``, ``sign_type``. Empty field values are
    left out, as they are left out of the signature. With ``sign_type`` and ``key`` (an MD5 secret or a
    private key) and a response block, the fields are signed in ``charset`` and ``<sign>``/``<sign_type>``
    appended; without a response block there is nothing to sign and none is added. The result is encoded in
    ``charset`` (utf-8, GBK or GB2312) and declares it; the signature is computed in ``sign_charset`` when
    given (a gateway that declares one charset and signs in the request's), else in ``charset``. A value
    ``charset`` cannot encode raises CharsetError.
    """
    codec = _codec_for(charset)
    signing_codec = _codec_for(sign_charset) if sign_charset is not None else codec
    if fields and response_element is None:
        raise InvalidParameterError("fields need a response_element to live in", parameter="response_element")
    if (sign_type is None) != (key is None):
        raise InvalidParameterError("sign_type and key must be given together", parameter="sign_type")

    parts = ["<alipay>", f"<is_success>{'T' if is_success else 'F'}</is_success>"]
    if error:
        parts.append(_text_element("error", error, codec))
    if request:
        parts.append("<request>")
        for name, value in request.items():
            _check_value(name, name, codec)
            _check_value(name, value, codec)
            parts.append(
                f'<param name="{name.translate(_ATTRIBUTE_ESCAPES)}">{value.translate(_TEXT_ESCAPES)}</param>'
            )
        parts.append("</request>")
    if response_element is not None:
        _check_name(response_element)
        rendered = {name: value for name, value in (fields or {}).items() if value != ""}
        parts.append(f"<response><{response_element}>")
        parts.extend(_text_element(name, value, codec) for name, value in rendered.items())
        parts.append(f"</{response_element}></response>")
        if sign_type is not None and key is not None:
            normalized = signing.normalize_sign_type(sign_type)
            signed = {name: value for name, value in rendered.items() if name not in _UNSIGNED_NAMES}
            signature = signing.sign(signed, sign_type=normalized, key=key, charset=signing_codec)
            parts.append(_text_element("sign", signature, codec))
            parts.append(_text_element("sign_type", normalized, codec))
    parts.append("</alipay>")
    declaration = f'<?xml version="1.0" encoding="{_DECLARATION_LABELS[codec]}"?>'
    return (declaration + "".join(parts)).encode(codec)


# --- parsing helpers


def _decode(raw: bytes) -> tuple[str, str]:
    """Turn the body into text with its declared charset, strictly, and drop the declaration."""
    data = raw
    has_bom = data.startswith(_UTF8_BOM)
    if has_bom:
        data = data[len(_UTF8_BOM) :]
    # Leading whitespace before the declaration is not XML, but harmless: tolerate it.
    data = data.lstrip(_XML_WHITESPACE)
    if not data:
        raise GatewayResponseError("the response body is empty", raw_response=raw)
    if _looks_like_html(data):
        raise GatewayResponseError(_html_message(raw), raw_response=raw)
    if not data.startswith(b"<"):
        raise GatewayResponseError(f"the response body is not XML: {_excerpt(raw)}", raw_response=raw)

    codec = "utf-8"
    declaration = _DECLARATION.match(data)
    if declaration is not None:
        declared = declaration.group("encoding")
        if declared is not None:
            label = declared.decode("ascii")
            if label.lower() not in _DECLARATION_LABELS:
                raise GatewayResponseError(
                    f"the response declares encoding {label!r}; only UTF-8, GBK and GB2312 are accepted",
                    raw_response=raw,
                )
            codec = label.lower()
        # Expat cannot decode multi-byte charsets such as GBK, so the text is decoded here and the
        # declaration, which would contradict the already-decoded text, is dropped.
        data = data[declaration.end() :]
    elif _DECLARATION_START.match(data):
        raise GatewayResponseError("the response has a malformed XML declaration", raw_response=raw)
    if has_bom and codec != "utf-8":
        raise GatewayResponseError(
            f"the response starts with a UTF-8 byte-order mark but declares {_DECLARATION_LABELS[codec]}",
            raw_response=raw,
        )

    try:
        return data.decode(codec), codec
    except UnicodeDecodeError as exc:
        label = _DECLARATION_LABELS[codec]
        if exc.end == len(data) and exc.reason in _INCOMPLETE_CHARACTER_REASONS:
            message = f"the response body ends with an incomplete {label} character (truncated body?)"
        else:
            message = (
                f"the response body is not valid {label}, the encoding it declares "
                f"(bad bytes {exc.object[exc.start : exc.end]!r})"
            )
        raise GatewayResponseError(message, raw_response=raw) from exc


def _parse_xml(text: str, raw: bytes) -> Element:
    """Parse with defusedxml: no DTD, no entity declarations, no external references, ever."""
    try:
        return defused_et.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden as exc:
        message = "the response contains a DTD (<!DOCTYPE ...>), refused: entity-expansion and XXE risk"
        raise GatewayResponseError(message, raw_response=raw) from exc
    except EntitiesForbidden as exc:
        message = "the response declares an XML entity, refused: entity-expansion risk"
        raise GatewayResponseError(message, raw_response=raw) from exc
    except ExternalReferenceForbidden as exc:
        message = "the response refers to an external resource, refused: XXE risk"
        raise GatewayResponseError(message, raw_response=raw) from exc
    except DefusedXmlException as exc:
        raise GatewayResponseError(
            f"the response was refused as hostile XML: {exc}", raw_response=raw
        ) from exc
    except ParseError as exc:
        if str(exc).startswith(_TRUNCATION_MESSAGES):
            message = f"the response XML stops before the document is complete (truncated body): {exc}"
        else:
            message = f"the response is not well-formed XML: {exc}"
        raise GatewayResponseError(message, raw_response=raw) from exc


def _envelope_children(root: Element, raw: bytes) -> dict[str, Element]:
    """The envelope's known top-level elements by name; unknown ones are not signed and are ignored."""
    found: dict[str, Element] = {}
    for child in root:
        if child.tag not in _ENVELOPE_TAGS:
            continue
        if child.tag in found:
            raise GatewayResponseError(
                f"the response has more than one <{child.tag}> element", raw_response=raw
            )
        found[child.tag] = child
    return found


def _parse_is_success(element: Element | None, raw: bytes) -> bool:
    value = _scalar(element, raw)
    if value is None:
        raise GatewayResponseError("the response has no <is_success> element", raw_response=raw)
    if value not in ("T", "F"):
        raise GatewayResponseError(f"<is_success> is {value!r}, expected T or F", raw_response=raw)
    return value == "T"


def _scalar(element: Element | None, raw: bytes) -> str | None:
    """Text of an envelope element (is_success, error, sign, sign_type), stripped; None when absent or empty.

    These values are never signed, so surrounding whitespace is layout, not data.
    """
    if element is None:
        return None
    value = _leaf_text(element, raw, where="")
    return value.strip() or None


def _parse_request(element: Element | None, raw: bytes) -> dict[str, str]:
    if element is None:
        return {}
    echo: dict[str, str] = {}
    for param in element:
        name = param.get("name")
        if param.tag != "param" or name is None:
            continue
        if name in echo:
            raise GatewayResponseError(
                f"the request echo has more than one parameter named {name!r}", raw_response=raw
            )
        echo[name] = _leaf_text(param, raw, where=" in the request echo")
    return echo


def _parse_response_block(element: Element | None, raw: bytes) -> tuple[str | None, dict[str, str]]:
    if element is None:
        return None, {}
    inner = list(element)
    if len(inner) != 1:
        raise GatewayResponseError(
            f"<response> holds {len(inner)} elements; exactly one (<alipay> or <trade>) is expected",
            raw_response=raw,
        )
    block = inner[0]
    fields: dict[str, str] = {}
    for child in block:
        if child.tag in fields:
            raise GatewayResponseError(
                f"the response field <{child.tag}> appears more than once", raw_response=raw
            )
        # Unknown fields are kept: they are covered by the signature and may be new gateway features.
        fields[child.tag] = _leaf_text(child, raw, where=f" in <response><{block.tag}>")
    return block.tag, fields


def _leaf_text(element: Element, raw: bytes, *, where: str) -> str:
    """An element's text, refusing nested elements: no rule says how such a value would be signed."""
    if len(element):
        raise GatewayResponseError(
            f"<{element.tag}>{where} contains child elements; the gateway's fields are flat text",
            raw_response=raw,
        )
    return element.text or ""


def _verify(
    fields: Mapping[str, str],
    *,
    sign: str,
    sign_type: str | None,
    forced: bool,
    key: signing.VerifyingKey,
    charsets: tuple[str, ...],
    raw: bytes,
    service: str | None,
    out_trade_no: str | None,
) -> str:
    """Check the response signature over the response block's fields in each of ``charsets`` in turn.

    Returns the charset that verified, or raises SignatureError when none does.
    """
    context: dict[str, Any] = {"raw_response": raw, "service": service, "out_trade_no": out_trade_no}
    if sign_type is None:
        raise SignatureError("the response is signed but names no <sign_type> and none was given", **context)
    if not forced:
        try:
            sign_type = signing.normalize_sign_type(sign_type)
        except InvalidParameterError:
            raise SignatureError(
                f"the response names an unknown sign_type {sign_type!r}", **context
            ) from None
    # A field that happens to be called sign or sign_type is never signed (pre-sign rule), and must not be
    # mistaken for the envelope's own values.
    params = {name: value for name, value in fields.items() if name not in _UNSIGNED_NAMES}
    params["sign"] = sign
    for charset in charsets:
        try:
            verified = signing.verify(params, key=key, sign_type=sign_type, charset=charset)
        except KeyFormatError as exc:
            if forced:
                raise
            # The body chose the algorithm and the caller's key cannot serve it: the body is what is wrong.
            message = f"the response names sign_type {sign_type}, which the key given cannot verify"
            raise SignatureError(f"{message} ({exc.message})", **context) from exc
        if verified:
            return charset
    tried = " or ".join(_DECLARATION_LABELS[charset] for charset in charsets)
    raise SignatureError(f"the response {sign_type} signature does not verify (in {tried})", **context)


def _looks_like_html(data: bytes) -> bool:
    head = data[:1024]
    declaration = _ANY_DECLARATION.match(head)
    if declaration is not None:
        head = head[declaration.end() :]
    head = head.lstrip(_XML_WHITESPACE).lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _html_message(raw: bytes) -> str:
    return f"the gateway answered with an HTML page, not XML: {_excerpt(raw)}"


def _excerpt(raw: bytes) -> str:
    """A short, log-safe (repr-escaped) start of the body for error messages."""
    text = raw[: _EXCERPT_CHARS * 4].decode("utf-8", errors="replace").lstrip("\ufeff")
    text = " ".join(text.split())
    if len(text) > _EXCERPT_CHARS:
        text = text[:_EXCERPT_CHARS] + "..."
    return repr(text)


# --- rendering helpers


def _codec_for(charset: str) -> str:
    codec = charset.lower() if isinstance(charset, str) else ""
    if codec not in _DECLARATION_LABELS:
        raise CharsetError(
            f"charset {charset!r} is not supported; use utf-8, GBK or GB2312", parameter="charset"
        )
    return codec


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidParameterError(f"{name!r} cannot be an XML element name", parameter=str(name))


def _check_value(name: str, value: str, codec: str) -> None:
    if not isinstance(value, str):
        raise InvalidParameterError(
            f"the value of {name!r} must be a str, not {type(value).__name__}", parameter=name
        )
    if _XML_ILLEGAL_CHARS.search(value):
        raise InvalidParameterError(
            f"the value of {name!r} holds a character XML cannot carry", parameter=name
        )
    try:
        value.encode(codec)
    except UnicodeEncodeError as exc:
        raise CharsetError(
            f"the value of {name!r} cannot be encoded in {_DECLARATION_LABELS[codec]}"
            f" ({exc.object[exc.start : exc.end]!r})",
            parameter=name,
        ) from None


def _text_element(name: str, value: str, codec: str) -> str:
    _check_name(name)
    _check_value(name, value, codec)
    return f"<{name}>{value.translate(_TEXT_ESCAPES)}</{name}>"
