"""A client's kept-alive connections are released when it is closed and also when it is merely dropped."""

from __future__ import annotations

import gc
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from django_alipay.protocol.client import GatewayClient
from tests.client.stub import MD5_KEY, PARTNER, xml_success

QUERY_OK = {
    "out_trade_no": "T1",
    "trade_no": "2018110922001332950500389138",
    "trade_status": "TRADE_FINISHED",
    "total_fee": "0.01",
    "subject": "test",
}


class _KeepAliveHandler(BaseHTTPRequestHandler):
    """Answers every request with a signed query result and keeps the connection open, as the gateway does."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = xml_success(QUERY_OK)
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST


@pytest.fixture
def keep_alive_gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/gateway.do"
    finally:
        server.shutdown()
        server.server_close()


def _client(url: str) -> GatewayClient:
    return GatewayClient(partner=PARTNER, sign_type="MD5", key=MD5_KEY, gateway_url=url, timeout=(2.0, 3.0))


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
