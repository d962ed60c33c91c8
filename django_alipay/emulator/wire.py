"""Bytes in and out of gateway.do: decoding form data in the request's charset, and rendering the answers."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote_to_bytes, urlencode

from django.http import HttpRequest, HttpResponse

from django_alipay.protocol.envelope import render_response
from django_alipay.protocol.errors import CharsetError
from django_alipay.protocol.keys import KeyMaterial
from django_alipay.protocol.signing import normalize_charset

from .conf import runtime

__all__ = [
    "CONTENT_LABELS",
    "SOCKET_ENVIRON_KEY",
    "Outcome",
    "WireRequest",
    "drop_connection",
    "form_encode",
    "laid_out",
    "parse_request",
    "render",
    "text_outcome",
    "xml_outcome",
]

#: Where the standalone server puts the client socket in the WSGI environ, so a fault can cut it.
SOCKET_ENVIRON_KEY: Final = "django_alipay_emulator.socket"
#: Canonical charset -> the label used in Content-Type headers and XML declarations.
CONTENT_LABELS: Final = {"utf-8": "utf-8", "gbk": "GBK", "gb2312": "GB2312"}
#: The charset the gateway assumes when a request names none (HK pages: "The default value is GBK").
DEFAULT_CHARSET: Final = "gbk"

_FORM_TYPES: Final = ("", "application/x-www-form-urlencoded")
# Line width of Base64 signatures under SIGNATURE_LAYOUT "wrapped" (Ruby's Base64.encode64, used by one SDK).
_WRAP_WIDTH: Final = 60
_XML_ILLEGAL: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass
class WireRequest:
    """The parameters of one gateway.do call, from the URL and the form body merged, decoded once."""

    params: dict[str, str]
    method: str
    declared_charset: str | None
    # The supported charset the request named (or the GBK default); None when it named another one.
    charset: str | None
    # The codec the bytes were decoded with: the request's charset when supported, else GBK.
    codec: str
    # Names given twice with different values: a verifier and a business layer could read different ones.
    conflicts: list[str] = field(default_factory=list)
    # Some bytes were not valid in ``codec``; they are kept as surrogate escapes and cannot verify.
    undecodable: bool = False

    @property
    def response_charset(self) -> str:
        """The charset answers are written in: the request's, or GBK when it named an unsupported one."""
        return self.charset or DEFAULT_CHARSET


def _pairs(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split an x-www-form-urlencoded byte string into raw (name, value) bytes, percent-decoded only.

    urllib's parse_qsl decodes to text on the way; the gateway must see the bytes before choosing a charset.
    """
    pairs = []
    for chunk in data.split(b"&"):
        if not chunk:
            continue
        name, _, value = chunk.partition(b"=")
        pairs.append(
            (unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" ")))
        )
    return pairs


def _declared_charset(pairs: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in pairs:
        if name == b"_input_charset":
            return value.decode("latin-1")
    return None


def _is_form(request: HttpRequest) -> bool:
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    return content_type in _FORM_TYPES


def parse_request(request: HttpRequest) -> WireRequest:
    """Read the raw query string and form body, find ``_input_charset``, and decode every pair with it.

    Django's ``request.GET``/``POST`` would decode as UTF-8 whatever the request's charset; the gateway
    decodes in ``_input_charset`` (from the URL, where the POST rule puts it, or from the body), GBK when
    absent. Undecodable bytes are kept as surrogate escapes, so nothing is silently replaced.
    """
    query = request.META.get("QUERY_STRING", "").encode("latin-1", errors="replace")
    pairs = _pairs(query)
    if request.method == "POST" and _is_form(request):
        pairs += _pairs(request.body)
    declared = _declared_charset(pairs)
    charset: str | None
    if declared is None:
        charset = DEFAULT_CHARSET
    else:
        try:
            charset = normalize_charset(declared)
        except CharsetError:
            charset = None
    codec = charset or DEFAULT_CHARSET
    params: dict[str, str] = {}
    conflicts: list[str] = []
    undecodable = False
    for raw_name, raw_value in pairs:
        name = raw_name.decode(codec, errors="surrogateescape")
        value = raw_value.decode(codec, errors="surrogateescape")
        if _has_surrogates(name) or _has_surrogates(value):
            undecodable = True
        if name in params and params[name] != value:
            if name not in conflicts:
                conflicts.append(name)
            continue
        params[name] = value
    return WireRequest(
        params=params,
        method=request.method or "GET",
        declared_charset=declared,
        charset=charset,
        codec=codec,
        conflicts=conflicts,
        undecodable=undecodable,
    )


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)


def _renderable(value: str, codec: str) -> bool:
    if _XML_ILLEGAL.search(value):
        return False
    try:
        value.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def echo_params(params: Mapping[str, str], codec: str) -> dict[str, str]:
    """The request echo: every received parameter except sign and sign_type, minus what XML cannot carry."""
    return {
        name: value
        for name, value in params.items()
        if name not in ("sign", "sign_type") and _renderable(name, codec) and _renderable(value, codec)
    }


@dataclass
class Outcome:
    """A gateway answer before it becomes bytes, so faults can still change it (drop the signature ...)."""

    kind: str  # "xml" | "text" | "http"
    charset: str = DEFAULT_CHARSET
    is_success: bool = False
    error: str | None = None
    echo: dict[str, str] = field(default_factory=dict)
    response_element: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    sign_type: str | None = None
    key: KeyMaterial | None = None
    # The charset the signature is computed in when it is not the one the body declares (RESPONSE_CHARSET).
    sign_charset: str | None = None
    text: str = ""
    response: HttpResponse | None = None
    # What happened, for the call log (an error code, result_code, "cashier" ...).
    label: str = ""
    note: str = ""

    @property
    def signed(self) -> bool:
        """Whether rendering will add a signature."""
        return self.kind == "xml" and self.key is not None and self.response_element is not None


def xml_outcome(
    *,
    charset: str,
    is_success: bool,
    error: str | None = None,
    echo: Mapping[str, str] | None = None,
    response_element: str | None = None,
    fields: Mapping[str, str] | None = None,
    sign_type: str | None = None,
    key: KeyMaterial | None = None,
    sign_charset: str | None = None,
    label: str = "",
    note: str = "",
) -> Outcome:
    """An XML envelope answer."""
    return Outcome(
        kind="xml",
        charset=charset,
        is_success=is_success,
        error=error,
        echo=dict(echo or {}),
        response_element=response_element,
        fields=dict(fields or {}),
        sign_type=sign_type if key is not None else None,
        key=key,
        sign_charset=sign_charset,
        label=label or (error or "T"),
        note=note,
    )


def text_outcome(text: str, *, charset: str, label: str = "", note: str = "") -> Outcome:
    """A plain-text answer (notify_verify, the reconciliation files)."""
    return Outcome(kind="text", charset=charset, text=text, label=label or text[:40], note=note)


def http_outcome(response: HttpResponse, *, label: str, note: str = "") -> Outcome:
    """An answer that is already an HTTP response (cashier redirect, HTML error page)."""
    return Outcome(kind="http", response=response, label=label, note=note)


def render(outcome: Outcome, *, unsigned: bool = False) -> HttpResponse:
    """Turn an outcome into the HTTP response the gateway sends; ``unsigned`` leaves the signature out."""
    if outcome.kind == "http":
        assert outcome.response is not None
        return outcome.response
    label = CONTENT_LABELS[outcome.charset]
    if outcome.kind == "text":
        return HttpResponse(
            outcome.text.encode(outcome.charset, errors="replace"),
            content_type=f"text/plain; charset={label}",
        )
    sign = outcome.signed and not unsigned
    body = render_response(
        is_success=outcome.is_success,
        error=outcome.error,
        request=outcome.echo or None,
        response_element=outcome.response_element,
        fields=outcome.fields or None,
        sign_type=outcome.sign_type if sign else None,
        key=outcome.key if sign else None,
        charset=outcome.charset,
        sign_charset=outcome.sign_charset if sign else None,
    )
    if sign and outcome.sign_type not in (None, "MD5"):
        body = _wrap_xml_signature(body, outcome.sign_type or "")
    return HttpResponse(body, content_type=f"text/xml; charset={label}")


def _wrap_xml_signature(body: bytes, sign_type: str) -> bytes:
    """The envelope with its <sign> laid out as the SIGNATURE_LAYOUT knob says (Base64 is ASCII)."""
    start, end = body.find(b"<sign>"), body.find(b"</sign>")
    if start < 0 or end < start:
        return body
    signature = body[start + len(b"<sign>") : end].decode("ascii")
    return body[: start + len(b"<sign>")] + laid_out(signature, sign_type).encode("ascii") + body[end:]


def laid_out(signature: str, sign_type: str) -> str:
    """An RSA/RSA2/DSA signature as the SIGNATURE_LAYOUT knob writes it (MD5 hex is never wrapped)."""
    if sign_type == "MD5" or runtime().get("SIGNATURE_LAYOUT") != "wrapped":
        return signature
    return "\n".join(signature[i : i + _WRAP_WIDTH] for i in range(0, len(signature), _WRAP_WIDTH))


def form_encode(params: Mapping[str, str], charset: str) -> str:
    """A form body or query string in ``charset``; ``+`` in values goes out as ``%2B``, spaces as ``+``."""
    return urlencode(list(params.items()), encoding=charset)


def _client_socket(environ: Mapping[str, Any]) -> socket.socket | None:
    """The client connection behind a WSGI request, where the server lets us reach it."""
    for key in (SOCKET_ENVIRON_KEY, "gunicorn.socket"):
        candidate = environ.get(key)
        if isinstance(candidate, socket.socket):
            return candidate
    # Django's runserver and live_server: wsgi.input wraps the socket's buffered reader.
    stream: Any = environ.get("wsgi.input")
    for _ in range(4):
        if stream is None:
            return None
        if isinstance(stream, socket.socket):
            return stream
        found = getattr(stream, "_sock", None)
        if isinstance(found, socket.socket):
            return found
        reader = getattr(stream, "_read", None)
        stream = getattr(reader, "__self__", None) or getattr(stream, "raw", None)
    return None


def drop_connection(request: HttpRequest) -> HttpResponse:
    """Close the client's connection without answering (the request has been read and acted on).

    The client sees the connection end with no response at all, the way a gateway that crashes or a
    proxy that times out leaves it: it cannot know whether the call took effect.
    """
    sock = _client_socket(request.META)
    if sock is None:
        # No socket to cut (Django's test client): raise what a client would see.
        raise ConnectionResetError("emulator fault: the gateway dropped the connection without answering")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    # Never reaches the client; the server's write fails quietly as a broken pipe.
    return HttpResponse(b"", status=200)


def truncated(response: HttpResponse) -> HttpResponse:
    """The same response with its body cut in the middle (Content-Length matches what is sent)."""
    body = response.content
    cut = HttpResponse(body[: max(1, len(body) // 2)], status=response.status_code)
    cut["Content-Type"] = response["Content-Type"]
    return cut


BAD_GATEWAY_PAGE: Final = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>Tengine</center></body></html>\n"
)


def bad_gateway() -> HttpResponse:
    """The HTML page a load balancer in front of the gateway answers when the gateway behind it fails."""
    return HttpResponse(BAD_GATEWAY_PAGE, status=502, content_type="text/html; charset=utf-8")
