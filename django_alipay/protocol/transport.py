"""Transports: carry one gateway request and bring its answer back, over HTTP or in memory.

A :class:`Transport` sends one :class:`Request` and returns a :class:`Response` (status, headers, body), or
raises :class:`~django_alipay.protocol.errors.TransportError` when the request certainly never reached the
gateway and :class:`~django_alipay.protocol.errors.OutcomeUnknownError` when it may have. It knows nothing of
signatures or services: :class:`~django_alipay.protocol.client.GatewayClient` builds the request, retries and
fails over, and :mod:`django_alipay.protocol.interpretation` reads the answer.

:class:`HttpTransport` is the default (kept-alive connections of its own, or requests for a session passed
in). :class:`MockTransport` answers from a function, for tests that drive a client fully offline.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import os
import select
import ssl
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

import requests
import requests.adapters
import requests.utils
import urllib3
import urllib3.connection
import urllib3.exceptions
import urllib3.util

from django_alipay.protocol.errors import (
    AlipayError,
    GatewayResponseError,
    OutcomeUnknownError,
    TransportError,
)

__all__ = ["HttpTransport", "MockTransport", "Request", "Response", "Transport"]

logger = logging.getLogger("django_alipay.protocol.transport")

_CHUNK: Final = 16384


# --- the interface --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One HTTP request to the gateway, ready to send.

    ``timeout`` is (connect, read) seconds: the read timeout bounds each socket read. ``deadline`` is an
    absolute :func:`time.monotonic` value that bounds the whole exchange. ``max_bytes`` caps the body a
    transport may read. ``service`` and ``out_trade_no`` name the call in the errors a transport raises.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None
    timeout: tuple[float, float]
    deadline: float
    max_bytes: int
    service: str = ""
    out_trade_no: str | None = None

    @property
    def params(self) -> dict[str, str]:
        """The wire parameters: the query string and the form body merged, decoded as ``_input_charset``."""
        query = urlsplit(self.url).query
        charset = dict(parse_qsl(query, keep_blank_values=True)).get("_input_charset", "utf-8")
        merged = dict(parse_qsl(query, keep_blank_values=True, encoding=charset))
        if self.body:
            merged.update(
                parse_qsl(self.body.decode("ascii", "replace"), keep_blank_values=True, encoding=charset)
            )
        return merged

    def time_left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.deadline - time.monotonic()

    def error_context(self) -> dict[str, Any]:
        return {"service": self.service, "out_trade_no": self.out_trade_no}


@dataclass(frozen=True)
class Response:
    """The gateway's answer: HTTP status, headers and the body (a transport may leave the body of a non-200
    answer unread, as the client does not look at it)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@runtime_checkable
class Transport(Protocol):
    """Sends one request; returns the answer or raises TransportError (never sent) / OutcomeUnknownError."""

    def send(self, request: Request) -> Response: ...

    def close(self) -> None: ...


# --- in memory ------------------------------------------------------------------------------------------


class MockTransport:
    """A transport that answers every request by calling ``handler(request)``; nothing touches the network.

    The handler returns a :class:`Response`, or raises TransportError / OutcomeUnknownError to play a
    connection that failed or an answer that never came. Every request is kept in ``requests``, in order.
    Like the HTTP transport, a request whose deadline has already passed is not sent, and a body over
    ``request.max_bytes`` is refused. For example::

        def handler(request):
            assert request.params["service"] == "single_trade_query"
            return Response(200, {"Content-Type": "text/xml"}, b"<alipay>...</alipay>")

        client = GatewayClient(..., transport=MockTransport(handler))
    """

    def __init__(self, handler: Callable[[Request], Response]) -> None:
        self.handler = handler
        self.requests: list[Request] = []

    def send(self, request: Request) -> Response:
        if request.time_left() <= 0:
            raise TransportError(
                "the call's deadline passed before the request was sent", **request.error_context()
            )
        self.requests.append(request)
        response = self.handler(request)
        if not isinstance(response, Response):
            raise TypeError(f"a MockTransport handler must return a Response, not {type(response).__name__}")
        if response.status == 200 and len(response.body) > request.max_bytes:
            raise GatewayResponseError(
                f"the response is over the {request.max_bytes}-byte limit; reading stopped before parsing",
                raw_response=response.body[:4096],
                **request.error_context(),
            )
        return response

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"MockTransport({self.handler!r})"


# --- over HTTP: the deadline is enforced on the socket, before every blocking read ----------------------


class _Call:
    """The progress of the call this thread is making: its deadline and whether a connection was made."""

    __slots__ = ("connected", "ends", "instrumented")

    def __init__(self, ends: float) -> None:
        self.ends = ends
        self.instrumented = False
        self.connected = False


_state = threading.local()


def _current_call() -> _Call | None:
    call = getattr(_state, "call", None)
    return call if isinstance(call, _Call) else None


class _DeadlineReader(io.RawIOBase):
    """Reads a response from its socket with each read's timeout cut to the time left before the deadline."""

    def __init__(self, raw: Any, sock: Any, ends: float, read_timeout: float | None) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._ends = ends
        self._read_timeout = read_timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._ends - time.monotonic()
        if left <= 0:
            raise TimeoutError("the call's deadline passed")
        timeout = left if self._read_timeout is None else min(self._read_timeout, left)
        with contextlib.suppress(OSError, AttributeError):
            self._sock.settimeout(timeout)
        result: int | None = self._raw.readinto(buffer)
        return result

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineHTTPResponse(http.client.HTTPResponse):
    """An http.client response that, during a call with a deadline, reads through a :class:`_DeadlineReader`.

    The reader holds its own reference to the socket (as ``makefile`` does), so a ``Connection: close``
    answer stays readable after http.client has let go of the connection's socket.
    """

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        call = _current_call()
        if call is None:
            return
        raw = sock.makefile("rb", buffering=0)
        self.fp.close()
        self.fp = io.BufferedReader(_DeadlineReader(raw, sock, call.ends, sock.gettimeout()))


if TYPE_CHECKING:
    _Connection = urllib3.connection.HTTPConnection
else:
    _Connection = object


class _DeadlineConnection(_Connection):
    """What the HTTP and HTTPS connections share: answers read within the calling thread's deadline, and a
    note on the call of whether this connection was used (``instrumented``) and reached the gateway
    (``connected``), which tells "never sent" from "may have been sent" when the call fails."""

    response_class = _DeadlineHTTPResponse

    def connect(self) -> None:
        call = _current_call()
        if call is not None:
            call.instrumented = True
        super().connect()
        if call is not None:
            call.connected = True

    def request(self, *args: Any, **kwargs: Any) -> None:
        call = _current_call()
        if call is not None:
            call.instrumented = True
            if getattr(self, "sock", None) is not None:
                call.connected = True
        super().request(*args, **kwargs)
        if call is not None:
            call.connected = True


class _DeadlineHTTPConnection(_DeadlineConnection, urllib3.connection.HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineConnection, urllib3.connection.HTTPSConnection):
    pass


class _DeadlineHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOL_CLASSES: Final = {"http": _DeadlineHTTPConnectionPool, "https": _DeadlineHTTPSConnectionPool}


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose connections keep the calling thread's deadline; no urllib3-level retries."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is urllib3.ProxyManager:
            manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager


def _new_session() -> requests.Session:
    session = requests.Session()
    adapter = _DeadlineAdapter(max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # Never take proxies or CA bundles from the environment silently: they are passed explicitly.
    session.trust_env = False
    return session


# --- the transport's own connections: http.client, kept alive, within the deadline -------------------------

#: The schemes the transport's own connections carry, and their default ports.
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class _BareHTTPConnection(http.client.HTTPConnection):
    response_class = _DeadlineHTTPResponse


class _BareHTTPSConnection(http.client.HTTPSConnection):
    response_class = _DeadlineHTTPResponse


_Origin = tuple[str, str, int]


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection can no longer carry a request: no socket, or the gateway closed
    it (or sent something unasked): either way its socket reads as ready."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _new_tls_context(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    where = requests.utils.DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
    if os.path.isdir(where):
        return ssl.create_default_context(capath=where)
    return ssl.create_default_context(cafile=where)


class _IdleConnections:
    """The kept-alive connections not in use, per origin, the most recent first.

    At most ``per_origin`` are kept for each origin; a connection given back beyond that is closed (more
    threads than that at once simply open more). In a forked child the parent's connections are forgotten:
    two processes must never share one socket.
    """

    def __init__(self, per_origin: int) -> None:
        self._per_origin = per_origin
        self._idle: dict[_Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def take(self, origin: _Origin) -> http.client.HTTPConnection | None:
        """An idle connection to ``origin`` that is still open, or None."""
        closing: list[http.client.HTTPConnection] = []
        found = None
        with self._lock:
            if self._pid != os.getpid():
                closing = [c for idle in self._idle.values() for c in idle]
                self._idle.clear()
                self._pid = os.getpid()
            idle = self._idle.get(origin)
            while idle:
                connection = idle.pop()
                if _dropped(connection):
                    closing.append(connection)
                    continue
                found = connection
                break
        for connection in closing:
            connection.close()
        return found

    def give(self, origin: _Origin, connection: http.client.HTTPConnection) -> None:
        """Keep ``connection`` for the next request to ``origin`` (or close it if enough are kept)."""
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self._per_origin and self._pid == os.getpid():
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            closing = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for connection in closing:
            connection.close()


class HttpTransport:
    """Sends requests over kept-alive connections, within each request's deadline.

    With its own session and no proxies it sends over its own http.client connections (see
    :meth:`_send_bare`); otherwise through requests.

    The deadline needs no thread: before every blocking read the socket's timeout is set to the smaller of
    the read timeout and the time left, and a read that starts after the deadline fails at once, so a
    gateway that trickles its answer a byte at a time is cut off at the deadline.

    ``session``: a requests Session to send with instead of one of the transport's own. For each gateway
    origin it is used for, a plain ``HTTPAdapter`` mounted on it is replaced (for that origin only, with the
    same pool size and retries) by one that keeps the deadline; any other adapter is left alone and a warning
    is logged, since the deadline can then only be checked between the chunks of the body. A session passed
    in is not closed by :meth:`close`: it belongs to the caller.
    """

    def __init__(
        self,
        *,
        session: requests.Session | None = None,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str = True,
    ) -> None:
        self._owns_session = session is None
        self.session = session if session is not None else _new_session()
        self.proxies = dict(proxies) if proxies else None
        self.verify = verify
        self._checked_origins: set[str] = set()
        self._lock = threading.Lock()
        # The transport's own connections (see _send_bare), with requests' default headers.
        self._connections = _IdleConnections(requests.adapters.DEFAULT_POOLSIZE)
        weakref.finalize(self, self._connections.close)  # a transport dropped unclosed closes them too
        self._default_headers = dict(self.session.headers)
        self._ssl_context: ssl.SSLContext | None = None
        if verify is False:
            logger.warning("TLS certificates of the gateway are not verified (verify=False)")

    def __repr__(self) -> str:
        return f"HttpTransport(own_session={self._owns_session})"

    def close(self) -> None:
        """Close the kept-alive connections (only those of a session the transport created)."""
        if self._owns_session:
            self._connections.close()
            self.session.close()

    def _keep_deadline(self, url: str) -> None:
        """Make sure the session's adapter for ``url``'s origin keeps the deadline (see the class doc)."""
        if self._owns_session:
            return
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}/".lower()
        if origin in self._checked_origins:
            return
        with self._lock:
            if origin in self._checked_origins:
                return
            adapter = self.session.get_adapter(url)
            if type(adapter) is requests.adapters.HTTPAdapter:
                self.session.mount(
                    origin,
                    _DeadlineAdapter(
                        pool_connections=adapter._pool_connections,  # type: ignore[attr-defined]
                        pool_maxsize=adapter._pool_maxsize,  # type: ignore[attr-defined]
                        max_retries=adapter.max_retries,
                        pool_block=adapter._pool_block,  # type: ignore[attr-defined]
                    ),
                )
            elif not isinstance(adapter, _DeadlineAdapter):
                logger.warning(
                    "the session's adapter for %s is a %s, which cannot keep the call's deadline on the "
                    "socket: the deadline is checked only between chunks of the answer",
                    origin,
                    type(adapter).__name__,
                )
            self._checked_origins.add(origin)

    def send(self, request: Request) -> Response:
        context = request.error_context()
        remaining = request.time_left()
        if remaining <= 0:
            raise TransportError("the call's deadline passed before the request was sent", **context)
        self._keep_deadline(request.url)
        route = self._bare_route(request.url)
        call = _Call(request.deadline)
        _state.call = call
        try:
            if route is not None:
                call.instrumented = True
                return self._send_bare(request, route, call, context, remaining)
            try:
                response = self.session.request(
                    request.method,
                    request.url,
                    data=request.body,
                    headers=dict(request.headers),
                    timeout=(min(request.timeout[0], remaining), min(request.timeout[1], remaining)),
                    stream=True,
                    allow_redirects=False,
                    proxies=self.proxies,
                    verify=self.verify,
                )
            except (
                requests.RequestException,
                urllib3.exceptions.HTTPError,
                http.client.HTTPException,
                OSError,
            ) as exc:
                raise _failure(exc, call, context) from exc
            try:
                return _read_raw(response.raw, call, request.max_bytes, context)
            finally:
                response.close()
        finally:
            _state.call = None

    def _bare_route(self, url: str) -> tuple[tuple[str, str, int], str] | None:
        """The origin (scheme, host, port) and request target of a call the transport's own connections can
        carry; None when requests' full path is needed: a session passed in, proxies, or auth, params, a
        client certificate or cookies set on the session."""
        session = self.session
        if not self._owns_session or self.proxies or session.auth or session.params or session.cert:
            return None
        if session.cookies:
            return None
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            return None  # requests says what is wrong with the port
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return (scheme, parts.hostname, port), target

    def _tls_context(self) -> ssl.SSLContext:
        """The TLS settings of the transport's own HTTPS connections, made once: requests' CA bundle (or the
        ``verify`` path, a file or a directory), or no verification at all for ``verify=False``."""
        with self._lock:
            if self._ssl_context is None:
                self._ssl_context = _new_tls_context(self.verify)
            return self._ssl_context

    def _send_bare(
        self,
        request: Request,
        route: tuple[tuple[str, str, int], str],
        call: _Call,
        context: dict[str, Any],
        remaining: float,
    ) -> Response:
        """Send over one of the transport's own kept-alive connections (http.client, no requests or urllib3
        in between): the same request, timeouts, deadline and error classes as through requests.

        A connection is taken from the idle ones of its origin (one the gateway has closed meanwhile is
        dropped) or opened; a failure to open it is "never sent", anything later "may have been sent". It
        goes back only after a whole answer that leaves it open.
        """
        origin, target = route
        connection = self._connections.take(origin)
        if connection is None:
            scheme, host, port = origin
            if scheme == "https":
                try:
                    tls = self._tls_context()
                except OSError as exc:  # the CA bundle given as ``verify`` cannot be read
                    raise _failure(exc, call, context) from exc
                connection = _BareHTTPSConnection(host, port, context=tls)
            else:
                connection = _BareHTTPConnection(host, port)
        headers = dict(self._default_headers)
        headers.update(request.headers)
        answer = None
        reusable = False
        try:
            try:
                if connection.sock is None:
                    connection.timeout = min(request.timeout[0], remaining)
                    connection.connect()
                call.connected = True
                connection.sock.settimeout(min(request.timeout[1], max(request.time_left(), 0.001)))
                connection.request(request.method, target, body=request.body, headers=headers)
                answer = connection.getresponse()
            except (http.client.HTTPException, OSError) as exc:
                raise _failure(exc, call, context) from exc
            response, reusable = _read_bare(answer, call, request.max_bytes, context)
            return response
        finally:
            if reusable:
                self._connections.give(origin, connection)
            else:
                if answer is not None:
                    answer.close()  # an answer that ends the connection holds the socket itself
                connection.close()


def _failure(exc: BaseException, call: _Call, context: dict[str, Any]) -> AlipayError:
    """Classify a failure before any answer: never sent (TransportError) or maybe sent (unknown)."""
    # With an adapter that is not the transport's there is no record of progress: judge by the exception.
    maybe_sent = call.connected if call.instrumented else not _is_connect_failure(exc)
    reason = "the call's deadline passed" if time.monotonic() >= call.ends else _describe(exc)
    if not maybe_sent:
        return TransportError(f"no connection to the gateway: {reason}", **context)
    return OutcomeUnknownError(
        f"the request may have reached the gateway but no answer came back: {reason}", **context
    )


def _read_raw(raw: Any, call: _Call, max_bytes: int, context: dict[str, Any]) -> Response:
    """Read urllib3's answer (the status, the headers, and for a 200 the body up to ``max_bytes``)."""
    status = raw.status
    headers = dict(raw.headers)
    if status != 200:
        return Response(status=status, headers=headers)
    _refuse_announced(raw.headers.get("Content-Length", ""), max_bytes, context)
    pieces = raw.stream(_CHUNK, decode_content=True)
    errors = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
    return Response(status=status, headers=headers, body=_collect(pieces, call, max_bytes, context, errors))


def _read_bare(
    answer: http.client.HTTPResponse, call: _Call, max_bytes: int, context: dict[str, Any]
) -> tuple[Response, bool]:
    """Read an http.client answer as :func:`_read_raw` reads urllib3's; also whether its connection can
    carry the next request (a whole answer read, and the connection left open)."""
    status = answer.status
    headers: dict[str, str] = {}
    for name, value in answer.getheaders():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if status != 200:
        return Response(status=status, headers=headers), False
    _refuse_announced(answer.getheader("Content-Length") or "", max_bytes, context)
    inflater = _Inflater.for_encoding(answer.getheader("Content-Encoding") or "", context)
    pieces = _bare_pieces(answer, inflater, max_bytes)
    body = _collect(pieces, call, max_bytes, context, (http.client.HTTPException, OSError, zlib.error))
    return Response(status=status, headers=headers, body=body), not answer.will_close


def _bare_pieces(
    answer: http.client.HTTPResponse, inflater: _Inflater | None, max_bytes: int
) -> Iterator[bytes]:
    """The body of an http.client answer, chunk by chunk, decoded (at most one byte past ``max_bytes``)."""
    size = 0
    while True:
        data = answer.read(_CHUNK)
        if not data:
            if answer.length:  # http.client ends a read of a given size quietly where the body stops
                raise http.client.IncompleteRead(b"", answer.length)
            if inflater is not None:
                yield inflater.rest()
            return
        if inflater is not None:
            data = inflater.inflate(data, max_bytes - size)
        size += len(data)
        yield data


def _refuse_announced(announced: str, max_bytes: int, context: dict[str, Any]) -> None:
    if announced.isdigit() and int(announced) > max_bytes:
        raise GatewayResponseError(
            f"the response announces {announced} bytes, over the {max_bytes}-byte limit; not read",
            **context,
        )


def _collect(
    pieces: Iterator[bytes],
    call: _Call,
    max_bytes: int,
    context: dict[str, Any],
    errors: tuple[type[BaseException], ...],
) -> bytes:
    """The whole body from ``pieces``: cut at ``max_bytes`` and at the call's deadline; a failure of reading
    (one of ``errors``) is an unknown outcome, since the request has arrived."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in pieces:
            size += len(chunk)
            if size > max_bytes:
                raise GatewayResponseError(
                    f"the response is over the {max_bytes}-byte limit; reading stopped before parsing",
                    raw_response=b"".join(chunks)[:4096],
                    **context,
                )
            chunks.append(chunk)
            if time.monotonic() > call.ends:
                break
    except errors as exc:
        reason = "the call's deadline passed" if time.monotonic() >= call.ends else _describe(exc)
        raise OutcomeUnknownError(f"the response broke off: {reason}", **context) from exc
    if time.monotonic() > call.ends:
        raise OutcomeUnknownError(
            f"the call's deadline passed while the response was still arriving ({size} bytes read)",
            **context,
        )
    return b"".join(chunks)


class _Inflater:
    """Decodes a gzip or deflate answer (sent although ``identity`` was asked for), never more than the
    limit allows at once: a small compressed body cannot become a large one in memory."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._inflater = zlib.decompressobj(wbits)
        self._started = False

    @classmethod
    def for_encoding(cls, encoding: str, context: dict[str, Any]) -> _Inflater | None:
        coding = encoding.strip().lower()
        if coding in ("", "identity"):
            return None
        if coding in ("gzip", "x-gzip"):
            return cls(16 + zlib.MAX_WBITS)
        if coding == "deflate":
            return cls(zlib.MAX_WBITS)
        raise GatewayResponseError(
            f"the response is in the content encoding {encoding!r}, which was not asked for; not read",
            **context,
        )

    def inflate(self, data: bytes, room: int) -> bytes:
        """Up to ``room + 1`` bytes decoded from ``data`` (one more than fits says the limit is passed)."""
        try:
            out = self._inflater.decompress(data, max(room, 0) + 1)
        except zlib.error:
            if self._started or self._wbits != zlib.MAX_WBITS:
                raise
            # "deflate" is often sent without its zlib header: read it as raw deflate.
            self._wbits = -zlib.MAX_WBITS
            self._inflater = zlib.decompressobj(self._wbits)
            out = self._inflater.decompress(data, max(room, 0) + 1)
        self._started = True
        return out  # room + 1 bytes when more is waiting: over the limit

    def rest(self) -> bytes:
        return self._inflater.flush()


def _describe(exc: BaseException) -> str:
    """A short reason for a transport failure, from the innermost cause."""
    inner: BaseException = exc
    seen = 0
    while seen < 8:
        seen += 1
        nxt = getattr(inner, "reason", None) or (inner.args[0] if inner.args else None)
        if isinstance(nxt, BaseException) and nxt is not inner:
            inner = nxt
            continue
        break
    text = str(inner) or type(inner).__name__
    return f"{type(inner).__name__}: {text[:200]}"


def _is_connect_failure(exc: BaseException) -> bool:
    """True when requests says the connection itself failed (refused, DNS, TLS, connect timeout)."""
    if isinstance(
        exc,
        requests.exceptions.ConnectTimeout | requests.exceptions.SSLError | requests.exceptions.ProxyError,
    ):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        inner = exc.args[0]
        if isinstance(inner, urllib3.exceptions.MaxRetryError):
            return isinstance(
                inner.reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
            )
    return False
