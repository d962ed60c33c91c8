"""Canned gateway answers for the client tests, played in memory through MockTransport or, for the tests of
the wire (faults, timeouts, connections), by a tiny threaded HTTP server on loopback; plus XML builders."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from django_alipay.protocol.transport import MockTransport, Request, Response

PARTNER = "2088101122136241"
MD5_KEY = "760bdzec6y9goq7ctyx96ezkz78287de"


@dataclass
class Canned:
    """One answer of the stub.

    ``action``: ``respond`` (status, headers, body), ``close`` (drop the connection without answering),
    ``reset`` (RST after reading the request), ``hang`` (say nothing for ``hang_seconds``), ``stream``
    (``stream_bytes`` of filler, with or without Content-Length). ``trickle`` sends the body (``"body"``) or
    the whole answer (``"all"``) one byte per ``trickle_interval`` seconds. ``length`` overrides the
    Content-Length header (``None``: the body's length; ``-1``: no header).
    """

    body: bytes = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": "text/xml; charset=utf-8"})
    action: str = "respond"
    trickle: str | None = None
    trickle_interval: float = 1.0
    hang_seconds: float = 30.0
    stream_bytes: int = 0
    length: int | None = None


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def params(self) -> dict[str, str]:
        """Query and form body merged (the body decoded as the declared _input_charset)."""
        charset = self.query.get("_input_charset", "utf-8")
        merged = dict(self.query)
        merged.update(parse_qsl(self.body.decode("ascii"), keep_blank_values=True, encoding=charset))
        return merged


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True, encoding="latin-1"))
        stub = self.server.stub
        stub.record(Received(self.command, parts.path, query, dict(self.headers.items()), body))
        canned = stub.next_answer()
        # The client may give up mid-answer: that is what several faults are about.
        with contextlib.suppress(OSError):
            self._answer(canned)

    def _answer(self, canned: Canned) -> None:
        stop = self.server.stub.stopping
        if canned.action == "close":
            self.close_connection = True
            return
        if canned.action == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if canned.action == "hang":
            stop.wait(canned.hang_seconds)
            self.close_connection = True
            return
        head = [f"HTTP/1.1 {canned.status} Canned"]
        head.extend(f"{k}: {v}" for k, v in canned.headers.items())
        if canned.action == "stream":
            if canned.length != -1:
                head.append(f"Content-Length: {canned.stream_bytes}")
            head.append("Connection: close")
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            block = b"x" * 65536
            sent = 0
            while sent < canned.stream_bytes and not stop.is_set():
                piece = block[: canned.stream_bytes - sent]
                self.wfile.write(piece)
                sent += len(piece)
            self.close_connection = True
            return
        length = len(canned.body) if canned.length is None else canned.length
        if length != -1:
            head.append(f"Content-Length: {length}")
        head.append("Connection: close")
        header_bytes = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if canned.trickle == "all":
            self._trickle(header_bytes + canned.body, canned.trickle_interval)
        elif canned.trickle == "body":
            self.wfile.write(header_bytes)
            self.wfile.flush()
            self._trickle(canned.body, canned.trickle_interval)
        else:
            self.wfile.write(header_bytes + canned.body)
        self.close_connection = True

    def _trickle(self, data: bytes, interval: float) -> None:
        stop = self.server.stub.stopping
        for i in range(len(data)):
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            if stop.wait(interval):
                return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: StubGateway


class _Script:
    """Answers in order (the last one repeats) and the requests received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: list[Canned] = []
        self.requests: list[Received] = []

    def answer(self, *answers: Canned) -> Self:
        with self._lock:
            self._answers = list(answers)
        return self

    def next_answer(self) -> Canned:
        with self._lock:
            if not self._answers:
                return Canned(b"", status=500)
            return self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]

    def record(self, received: Received) -> None:
        with self._lock:
            self.requests.append(received)


class InMemoryGateway(_Script):
    """Plays ``answers`` to a real GatewayClient through the public MockTransport: no socket, no thread.

    Only plain answers (``respond``, no ``trickle``): a fault of the connection needs :class:`StubGateway`.
    ``requests`` holds what the client handed its transport: method, path, query, the headers the client set
    (not those the HTTP library adds, such as Host) and the body.
    """

    base = "http://gateway.invalid/"
    url = base + "gateway.do"

    def __init__(self) -> None:
        super().__init__()
        self.transport = MockTransport(self._send)

    def _send(self, request: Request) -> Response:
        parts = urlsplit(request.url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True, encoding="latin-1"))
        self.record(Received(request.method, parts.path, query, dict(request.headers), request.body or b""))
        canned = self.next_answer()
        if canned.action != "respond" or canned.trickle is not None or canned.length is not None:
            raise AssertionError(f"an in-memory gateway cannot play {canned!r}: use the stub on a socket")
        return Response(canned.status, dict(canned.headers), canned.body)

    def close(self) -> None:
        """Nothing to release."""


class StubGateway(_Script):
    """Serves ``answers`` on a loopback socket in order (the last one repeats); records every request."""

    def __init__(self) -> None:
        super().__init__()
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def url(self) -> str:
        return self.base + "gateway.do"

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


def dead_url() -> str:
    """A loopback URL on a port nothing listens on (bound, then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/gateway.do"


# --- XML answers, built by hand from the documented answer shapes, signed independently of the library ----


def presign(fields: Mapping[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v and k not in ("sign", "sign_type"))


def md5_sign(fields: Mapping[str, str], key: str = MD5_KEY, encoding: str = "utf-8") -> str:
    return hashlib.md5((presign(fields) + key).encode(encoding)).hexdigest()


def rsa_sign(fields: Mapping[str, str], private_key: rsa.RSAPrivateKey, sha256: bool = True) -> str:
    algorithm: hashes.HashAlgorithm = hashes.SHA256() if sha256 else hashes.SHA1()  # noqa: S303
    signature = private_key.sign(presign(fields).encode("utf-8"), padding.PKCS1v15(), algorithm)
    return base64.b64encode(signature).decode("ascii")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def xml_success(
    fields: Mapping[str, str] | None = None,
    *,
    element: str = "alipay",
    sign: str | None = "md5",
    sign_type: str = "MD5",
    key: str = MD5_KEY,
    encoding: str = "utf-8",
    declare: str | None = None,
    extra_envelope: str = "",
) -> bytes:
    """``<alipay><is_success>T</is_success><response><element>fields</element></response><sign>...``.

    ``sign="md5"`` signs the fields with ``key`` in ``encoding``; any other string is used as the sign value;
    None leaves the signature out.
    """
    parts = ["<alipay><is_success>T</is_success>", extra_envelope]
    if fields is not None:
        inner = "".join(f"<{k}>{_escape(v)}</{k}>" for k, v in fields.items())
        parts.append(f"<response><{element}>{inner}</{element}></response>")
        if sign is not None:
            value = md5_sign(fields, key, encoding) if sign == "md5" else sign
            parts.append(f"<sign>{value}</sign><sign_type>{sign_type}</sign_type>")
    parts.append("</alipay>")
    label = declare or encoding
    return (f'<?xml version="1.0" encoding="{label}"?>' + "".join(parts)).encode(encoding)


def xml_failure(code: str) -> bytes:
    envelope = f"<alipay><is_success>F</is_success><error>{code}</error></alipay>"
    return ('<?xml version="1.0" encoding="GBK"?>' + envelope).encode("gbk")


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if predicate():
            return
        time.sleep(0.01)
