"""A client's kept-alive connections: released when it is closed or merely dropped, never used once the
gateway has closed them or by two processes, and as many as its threads need."""

from __future__ import annotations

import gc
import gzip
import logging
import os
import threading
import warnings
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from django_alipay.protocol.client import GatewayClient
from django_alipay.protocol.errors import GatewayResponseError
from tests.client.stub import MD5_KEY, PARTNER, xml_success

QUERY_OK = {
    "out_trade_no": "T1",
    "trade_no": "2018110922001332950500389138",
    "trade_status": "TRADE_FINISHED",
    "total_fee": "0.01",
    "subject": "test",
}


class _KeepAliveHandler(BaseHTTPRequestHandler):
    """Answers every request with a signed query result and keeps the connection open, as the gateway does.

    What the server is set to changes that: ``delay`` seconds before each answer, ``encoding`` (and
    ``encoded``, the body sent) for a compressed answer, ``close_after`` to close the connection after the
    answer without saying so. ``peers`` records each request's client port; ``closed`` is set once a
    connection has been closed by the server.
    """

    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        server = self.server
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with server.lock:
            server.peers.append(self.client_address[1])
        if server.delay:
            server.release.wait(server.delay)
        body = xml_success(QUERY_OK)
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        if server.encoding:
            body = server.encoded
            self.send_header("Content-Encoding", server.encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = server.close_after

    do_GET = do_POST

    def finish(self) -> None:
        super().finish()
        if self.close_connection:
            self.server.closed.set()


@pytest.fixture
def keep_alive_server() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveHandler)
    server.daemon_threads = True
    server.delay, server.encoding, server.encoded, server.close_after = 0.0, "", b"", False
    server.peers, server.lock = [], threading.Lock()
    server.closed, server.release = threading.Event(), threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def keep_alive_gateway(keep_alive_server: Any) -> str:
    return f"http://127.0.0.1:{keep_alive_server.server_address[1]}/gateway.do"


def _client(url: str, **options: Any) -> GatewayClient:
    return GatewayClient(
        partner=PARTNER, sign_type="MD5", key=MD5_KEY, gateway_url=url, timeout=(2.0, 3.0), **options
    )


def _unclosed_sockets(caught: list[warnings.WarningMessage]) -> list[str]:
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    return [str(w.message) for w in leaks if "socket" in str(w.message)]


def test_a_client_that_is_dropped_without_close_leaves_no_socket_open(keep_alive_gateway: str) -> None:
    client = _client(keep_alive_gateway)
    assert client.single_trade_query(out_trade_no="T1").fields["trade_status"] == "TRADE_FINISHED"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del client
        gc.collect()
    assert _unclosed_sockets(caught) == []


def test_a_closed_client_leaves_no_socket_open_and_closing_twice_is_harmless(keep_alive_gateway: str) -> None:
    client = _client(keep_alive_gateway)
    client.single_trade_query(out_trade_no="T1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client.close()
        client.close()
        del client
        gc.collect()
    assert _unclosed_sockets(caught) == []


def test_a_session_passed_in_is_left_open_for_its_owner(keep_alive_gateway: str) -> None:
    with requests.Session() as session:
        client = GatewayClient(
            partner=PARTNER, sign_type="MD5", key=MD5_KEY, gateway_url=keep_alive_gateway, session=session
        )
        client.single_trade_query(out_trade_no="T1")
        del client
        gc.collect()
        # Still usable by its owner: the dropped client did not close it.
        answer = session.post(keep_alive_gateway, data={"x": "1"}, timeout=5)
        assert answer.status_code == 200


# --- which connection carries a call ----------------------------------------------------------------------


def test_a_connection_the_gateway_closed_while_idle_is_not_used_again(
    keep_alive_server: Any, keep_alive_gateway: str
) -> None:
    # The gateway may close a kept-alive connection at any time without saying so: a refund sent on it would
    # end in "outcome unknown". The next call opens a new connection instead, and is sent once.
    keep_alive_server.close_after = True
    client = _client(keep_alive_gateway, retries=0)
    try:
        client.single_trade_query(out_trade_no="T1")
        assert keep_alive_server.closed.wait(5)
        client.single_trade_query(out_trade_no="T1")
    finally:
        client.close()
    assert len(keep_alive_server.peers) == 2
    assert keep_alive_server.peers[0] != keep_alive_server.peers[1]


def test_a_connection_left_open_carries_the_next_call(
    keep_alive_server: Any, keep_alive_gateway: str
) -> None:
    client = _client(keep_alive_gateway)
    try:
        for _ in range(3):
            client.single_trade_query(out_trade_no="T1")
    finally:
        client.close()
    assert len(set(keep_alive_server.peers)) == 1


def test_more_threads_than_kept_connections_are_served_without_warnings(
    keep_alive_server: Any, keep_alive_gateway: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Sixteen calls at once on one client (a threaded worker, a gevent pool): each gets a connection, and the
    # ones beyond what is kept are closed afterwards, quietly.
    keep_alive_server.delay = 0.5
    client = _client(keep_alive_gateway)
    results: list[str] = []
    barrier = threading.Barrier(16)

    def call() -> None:
        barrier.wait()
        results.append(client.single_trade_query(out_trade_no="T1").out_trade_no)

    threads = [threading.Thread(target=call) for _ in range(16)]
    try:
        with caplog.at_level(logging.DEBUG):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
    finally:
        client.close()
    assert results == ["T1"] * 16
    assert len(set(keep_alive_server.peers)) == 16
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_forked_process_never_uses_its_parents_connection(
    keep_alive_server: Any, keep_alive_gateway: str
) -> None:
    # A client made before a fork (a preloading web server, a prefork worker pool): a socket shared by two
    # processes would mix their requests and answers.
    client = _client(keep_alive_gateway)
    try:
        client.single_trade_query(out_trade_no="T1")
        reader, writer = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: "fork with threads running"
            child = os.fork()
        if child == 0:  # pragma: no cover (the child reports through the pipe)
            try:
                outcome = client.single_trade_query(out_trade_no="T1").out_trade_no
            except BaseException as exc:
                outcome = repr(exc)
            os.write(writer, outcome.encode())
            os._exit(0)
        os.close(writer)
        _, status = os.waitpid(child, 0)
        with os.fdopen(reader, "rb") as pipe:
            assert pipe.read() == b"T1"
        assert status == 0
        client.single_trade_query(out_trade_no="T1")
    finally:
        client.close()
    parent, child_port, parent_again = keep_alive_server.peers
    assert child_port != parent
    assert parent_again == parent


# --- compressed answers (sent although identity was asked for) --------------------------------------------


def _deflate_raw(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", _deflate_raw)],
    ids=["gzip", "deflate", "raw-deflate"],
)
def test_a_compressed_answer_is_read(keep_alive_server: Any, keep_alive_gateway: str, encoding, pack) -> None:
    keep_alive_server.encoding, keep_alive_server.encoded = encoding, pack(xml_success(QUERY_OK))
    client = _client(keep_alive_gateway)
    try:
        assert client.single_trade_query(out_trade_no="T1").out_trade_no == "T1"
    finally:
        client.close()


def test_a_compressed_answer_is_cut_at_the_limit_before_it_is_inflated_whole(
    keep_alive_server: Any, keep_alive_gateway: str
) -> None:
    keep_alive_server.encoding, keep_alive_server.encoded = "gzip", gzip.compress(b"<" * 50_000_000)
    assert len(keep_alive_server.encoded) < 100_000
    client = _client(keep_alive_gateway, max_response_bytes=65_536, retries=0)
    try:
        with pytest.raises(GatewayResponseError, match="65536-byte limit"):
            client.single_trade_query(out_trade_no="T1")
    finally:
        client.close()


def test_an_answer_in_an_encoding_not_asked_for_is_not_trusted(
    keep_alive_server: Any, keep_alive_gateway: str
) -> None:
    keep_alive_server.encoding, keep_alive_server.encoded = "br", b"\x0b\x02\x80abc\x03"
    client = _client(keep_alive_gateway, retries=0)
    try:
        with pytest.raises(GatewayResponseError):
            client.single_trade_query(out_trade_no="T1")
    finally:
        client.close()
