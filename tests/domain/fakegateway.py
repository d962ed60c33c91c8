"""A tiny mapi gateway over real HTTP for domain tests: canned, signed envelopes and injectable faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django_alipay import gateway as alipay_gateway
from django_alipay.protocol import envelope
from django_alipay.protocol.transport import HttpTransport, MockTransport, Request, Response
from tests.conftest import TEST_MD5_KEY


@dataclass
class Reply:
    """One HTTP answer."""

    body: bytes
    status: int = 200
    content_type: str = "text/xml; charset=utf-8"
    #: The Date header (the gateway's clock), when not now.
    date: datetime | None = None


@dataclass
class Call:
    """One request the gateway received."""

    service: str
    params: dict[str, str]
    at: float = field(default_factory=time.monotonic)


Answer = Callable[[dict[str, str]], Reply]


class FakeGateway:
    """Answers each service by default, or as queued with :meth:`once` / set with :meth:`on`.

    ``trades`` maps an order number to the fields the query services report for it. ``over_http`` False:
    no server; :meth:`reply_to` answers in memory (see :class:`Routed`), for tests in this process only.
    """

    def __init__(self, md5_key: str = TEST_MD5_KEY, *, over_http: bool = True) -> None:
        self.md5_key = md5_key
        self.calls: list[Call] = []
        self.trades: dict[str, dict[str, str]] = {}
        self._queued: dict[str, list[Answer]] = {}
        self._fixed: dict[str, Answer] = {}
        self._lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8")
                query = urlsplit(self.path).query
                params = dict(parse_qsl(query, keep_blank_values=True)) | dict(
                    parse_qsl(body, keep_blank_values=True)
                )
                reply = gateway._answer(params)
                if reply.date is None:
                    self.send_response(reply.status)
                else:
                    self.send_response_only(reply.status)
                    self.send_header("Date", format_datetime(reply.date.astimezone(UTC), usegmt=True))
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server: ThreadingHTTPServer | None = None
        if not over_http:
            return
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        if self.server is None:
            return IN_MEMORY_URL
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/gateway.do"

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def reply_to(self, request: Request) -> Response:
        """The answer to ``request`` without HTTP: what the server would send (a Date header included)."""
        reply = self._answer(request.params)
        date = format_datetime((reply.date or datetime.now(UTC)).astimezone(UTC), usegmt=True)
        return Response(reply.status, {"Content-Type": reply.content_type, "Date": date}, reply.body)

    # --- scripting ---------------------------------------------------------------------------------------

    def once(self, service: str, answer: Answer) -> None:
        """Answer the next call of ``service`` with ``answer`` (queued, first in first out)."""
        with self._lock:
            self._queued.setdefault(service, []).append(answer)

    def on(self, service: str, answer: Answer) -> None:
        """Answer every call of ``service`` with ``answer``."""
        with self._lock:
            self._fixed[service] = answer

    def called(self, service: str) -> list[Call]:
        """The calls of one service, in order."""
        with self._lock:
            return [c for c in self.calls if c.service == service]

    # --- answers -----------------------------------------------------------------------------------------

    def signed(self, fields: dict[str, str], element: str = "alipay") -> Reply:
        return Reply(
            envelope.render_response(
                is_success=True, response_element=element, fields=fields, sign_type="MD5", key=self.md5_key
            )
        )

    @staticmethod
    def refused(error: str) -> Reply:
        return Reply(envelope.render_response(is_success=False, error=error))

    @staticmethod
    def accepted() -> Reply:
        return Reply(envelope.render_response(is_success=True))

    def _answer(self, params: dict[str, str]) -> Reply:
        service = params.get("service", "")
        with self._lock:
            self.calls.append(Call(service, params))
            queue = self._queued.get(service)
            answer = queue.pop(0) if queue else self._fixed.get(service)
        if answer is not None:
            return answer(params)
        return self._default(service, params)

    def _default(self, service: str, params: dict[str, str]) -> Reply:
        if service == "notify_verify":
            return Reply(b"true", content_type="text/plain")
        if service == "forex_refund":
            return self.accepted()
        if service == "alipay.acquire.overseas.spot.refund":
            return self.signed(
                {
                    "result_code": "SUCCESS",
                    "partner_trans_id": params["partner_trans_id"],
                    "partner_refund_id": params["partner_refund_id"],
                    "refund_amount": params["refund_amount"],
                    "currency": params["currency"],
                }
            )
        if service == "alipay.acquire.cancel":
            return self.signed(
                {"result_code": "SUCCESS", "out_trade_no": params["out_trade_no"], "retry_flag": "N"}
            )
        if service == "alipay.acquire.overseas.spot.reverse":
            return self.signed({"result_code": "SUCCESS", "partner_trans_id": params["partner_trans_id"]})
        if service == "single_trade_query":
            found = self.trades.get(params.get("out_trade_no", ""))
            return self.signed(found, element="trade") if found else self.refused("TRADE_NOT_EXIST")
        if service == "alipay.acquire.overseas.query":
            found = self.trades.get(params.get("partner_trans_id", ""))
            if found is None:
                return self.signed({"result_code": "FAIL", "error": "TRANS_NOT_FOUND"})
            return self.signed({"result_code": "SUCCESS", **found})
        if service == "alipay.acquire.overseas.spot.pay":
            return self.signed(
                {
                    "result_code": "SUCCESS",
                    "partner_trans_id": params["partner_trans_id"],
                    "alipay_trans_id": "2024050122001400000000000001",
                    "alipay_pay_time": "20240501120000",
                    "alipay_buyer_user_id": "2088000000000001",
                    "alipay_buyer_login_id": "bu***@example.com",
                    "currency": params["currency"],
                    "trans_amount": params["trans_amount"],
                }
            )
        if service == "alipay.acquire.precreate":
            return self.signed(
                {
                    "result_code": "SUCCESS",
                    "out_trade_no": params["out_trade_no"],
                    "voucher_type": "qrcode",
                    "qr_code": "https://qr.alipay.com/bax0000test",
                }
            )
        return self.refused("ILLEGAL_SERVICE")


#: The gateway URL of an in-memory FakeGateway: nothing resolves it, only :class:`Routed` answers it.
IN_MEMORY_URL = "http://fake-gateway.invalid/gateway.do"


class Routed:
    """A transport for ``gateway.use_transport``: calls to an in-memory FakeGateway's URL are answered by it
    (through a MockTransport, so deadlines and size limits still apply); every other URL (an emulator, the
    discard port) goes over HTTP as usual."""

    def __init__(self, fake: FakeGateway) -> None:
        self.memory = MockTransport(fake.reply_to)
        self.http = HttpTransport()

    def send(self, request: Request) -> Response:
        if request.url.startswith(IN_MEMORY_URL):
            return self.memory.send(request)
        return self.http.send(request)

    def close(self) -> None:
        self.http.close()


@contextmanager
def in_memory(md5_key: str = TEST_MD5_KEY) -> Iterator[FakeGateway]:
    """A FakeGateway answering this process's gateway calls in memory (no socket, no server thread) for the
    block: the fixture of tests whose calls are all made here (a worker in another process needs
    ``FakeGateway()`` over HTTP, or the emulator)."""
    fake = FakeGateway(md5_key, over_http=False)
    route = Routed(fake)
    previous = alipay_gateway.use_transport(route)
    try:
        yield fake
    finally:
        alipay_gateway.use_transport(previous)
        route.close()
