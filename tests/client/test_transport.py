"""Transports: a client driven offline by MockTransport, and the HTTP transport's deadline without threads."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from typing import Any

import pytest
import requests
import requests.adapters
import urllib3

from django_alipay.protocol.client import GatewayClient
from django_alipay.protocol.errors import (
    AlipayBusinessError,
    GatewayResponseError,
    InvalidParameterError,
    OutcomeUnknownError,
    TransportError,
)
from django_alipay.protocol.transport import MockTransport, Request, Response, Transport
from tests.client.stub import MD5_KEY, PARTNER, Canned, md5_sign, xml_success
from tests.client.test_faults import HANG_GUARD, QUERY_OK, REFUND

FIRST = "https://first.example/gateway.do"
SECOND = "https://second.example/gateway.do"


def _offline_client(transport: Transport, **overrides: Any) -> GatewayClient:
    options: dict[str, Any] = {
        "partner": PARTNER,
        "sign_type": "MD5",
        "key": MD5_KEY,
        "gateway_url": FIRST,
        "sleep": lambda seconds: None,
        "rng": random.Random(7),
        "transport": transport,
    }
    options.update(overrides)
    return GatewayClient(**options)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an offline client touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def _query_answer(request: Request) -> Response:
    return Response(200, {"Content-Type": "text/xml; charset=utf-8"}, xml_success(QUERY_OK, element="trade"))


# --- the in-memory transport -----------------------------------------------------------------------------


def test_a_client_on_a_mock_transport_queries_without_a_network(no_network: None) -> None:
    transport = MockTransport(_query_answer)
    with _offline_client(transport) as client:
        result = client.single_trade_query(out_trade_no="T1")
    assert result.trade_no == QUERY_OK["trade_no"]
    assert result.sign_verified is True
    (sent,) = transport.requests
    params = sent.params
    assert params["service"] == "single_trade_query"
    assert params["out_trade_no"] == "T1"
    assert params["partner"] == PARTNER
    signed = {k: v for k, v in params.items() if k not in ("sign", "sign_type")}
    assert params["sign"] == md5_sign(signed)
    assert sent.method == "POST"
    assert sent.service == "single_trade_query"
    assert sent.out_trade_no == "T1"
    assert sent.deadline > time.monotonic() - HANG_GUARD


def test_a_mock_transport_refusing_the_connection_makes_the_client_fail_over(no_network: None) -> None:
    def handler(request: Request) -> Response:
        if request.url.startswith(FIRST):
            raise TransportError("connection refused", service=request.service)
        return _query_answer(request)

    transport = MockTransport(handler)
    client = _offline_client(transport, gateway_url=[FIRST, SECOND])
    assert client.single_trade_query(out_trade_no="T1").out_trade_no == "T1"
    assert [r.url.split("?")[0] for r in transport.requests] == [FIRST, SECOND]


def test_a_refund_answered_503_by_a_mock_transport_is_outcome_unknown_and_sent_once(no_network: None) -> None:
    transport = MockTransport(lambda request: Response(503))
    with pytest.raises(OutcomeUnknownError):
        _offline_client(transport, retries=3).forex_refund(**REFUND)
    assert len(transport.requests) == 1


def test_a_lost_answer_played_by_a_mock_transport_retries_a_query(no_network: None) -> None:
    answers: list[Any] = [OutcomeUnknownError("no answer came back"), _query_answer]

    def handler(request: Request) -> Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        response: Response = answer(request)
        return response

    transport = MockTransport(handler)
    assert _offline_client(transport, retries=1).single_trade_query(out_trade_no="T1").out_trade_no == "T1"
    assert len(transport.requests) == 2


def test_a_mock_transport_refuses_a_body_over_the_limit(no_network: None) -> None:
    transport = MockTransport(lambda request: Response(200, {}, b"<alipay>" + b" " * 5000 + b"</alipay>"))
    with pytest.raises(GatewayResponseError):
        _offline_client(transport, max_response_bytes=1000, retries=0).single_trade_query(out_trade_no="T1")


def test_a_mock_transport_handler_must_return_a_response() -> None:
    transport = MockTransport(lambda request: b"true")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError):
        _offline_client(transport, retries=0).notify_verify("abc")


def test_a_transport_passed_in_is_left_to_its_owner() -> None:
    closed: list[bool] = []

    class Owned(MockTransport):
        def close(self) -> None:
            closed.append(True)

    _offline_client(Owned(_query_answer)).close()
    assert closed == []


@pytest.mark.parametrize(
    "conflict",
    [{"session": requests.Session()}, {"proxies": {"https": "http://proxy:3128"}}, {"verify": False}],
)
def test_a_transport_and_http_settings_together_are_refused(conflict: dict[str, Any]) -> None:
    try:
        with pytest.raises(InvalidParameterError):
            _offline_client(MockTransport(_query_answer), **conflict)
    finally:
        session = conflict.get("session")
        if session is not None:
            session.close()


def test_something_that_is_not_a_transport_is_refused() -> None:
    with pytest.raises(InvalidParameterError):
        _offline_client(object())  # type: ignore[arg-type]


# --- the HTTP transport: no thread per call, and the deadline on any session -----------------------------


@pytest.fixture
def threads_started_here(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """Threads started by the test's own thread (the stub's server threads start from the server)."""
    started: list[threading.Thread] = []
    caller = threading.current_thread()
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if threading.current_thread() is caller:
            started.append(self)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


@pytest.mark.wire
def test_calls_over_http_start_no_thread(stub, make_client, threads_started_here) -> None:
    stub.answer(
        Canned(xml_success(QUERY_OK, element="trade")),
        Canned(b"<alipay><is_success>T</is_success></alipay>"),
        Canned(b"true"),
    )
    client = make_client()
    client.single_trade_query(out_trade_no="T1")
    client.forex_refund(**REFUND)
    assert client.notify_verify("abc") is True
    assert threads_started_here == []


@pytest.mark.wire
def test_the_deadline_holds_on_a_session_passed_in(stub, make_client) -> None:
    # The whole answer, headers included, arrives a byte at a time: each read is quick, the total is not.
    stub.answer(Canned(xml_success(QUERY_OK, element="trade"), trickle="all", trickle_interval=0.1))
    with requests.Session() as session:
        client = make_client(session=session, timeout=(2.0, 5.0), deadline=1.0, retries=0)
        started = time.monotonic()
        with pytest.raises(OutcomeUnknownError) as caught:
            client.single_trade_query(out_trade_no="T1")
        assert time.monotonic() - started < HANG_GUARD
    assert "deadline" in caught.value.message


@pytest.mark.wire
def test_a_session_adapter_that_cannot_keep_the_deadline_is_reported(stub, make_client, caplog) -> None:
    class ShopAdapter(requests.adapters.HTTPAdapter):
        pass

    stub.answer(Canned(xml_success(QUERY_OK, element="trade")))
    with requests.Session() as session:
        session.mount("http://", ShopAdapter())
        client = make_client(session=session)
        with caplog.at_level(logging.WARNING, logger="django_alipay.protocol.transport"):
            assert client.single_trade_query(out_trade_no="T1").out_trade_no == "T1"
        assert isinstance(session.get_adapter(stub.url), ShopAdapter)
    assert any("cannot keep the call's deadline" in r.getMessage() for r in caplog.records)


@pytest.mark.wire
def test_the_transports_own_connections_send_without_requests_or_urllib3(
    stub, make_client, monkeypatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("requests or urllib3 ran for a call the transport's own connections can carry")

    monkeypatch.setattr(requests.Session, "request", refuse)
    monkeypatch.setattr(urllib3.HTTPConnectionPool, "urlopen", refuse)
    stub.answer(Canned(xml_success(QUERY_OK, element="trade")), Canned(b"true"))
    client = make_client()
    assert client.single_trade_query(out_trade_no="T1").out_trade_no == "T1"
    assert client.notify_verify("abc") is True


@pytest.mark.wire
def test_the_own_pool_sends_the_same_request_as_requests_does(stub, make_client) -> None:
    # The transport's own session goes straight to its pool; a session passed in goes through requests.
    calls = 3
    stub.answer(*[Canned(xml_success(QUERY_OK, element="trade")), Canned(b"true")] * calls * 2)
    own = make_client()
    with requests.Session() as session:
        passed = make_client(session=session)
        for client in (own, passed):
            for _ in range(calls):
                assert client.single_trade_query(out_trade_no="T1").out_trade_no == "T1"
                assert client.notify_verify("abc") is True
    sent = stub.requests
    assert len(sent) == calls * 4
    for mine, theirs in zip(sent[: calls * 2], sent[calls * 2 :], strict=True):
        assert (mine.method, mine.path) == (theirs.method, theirs.path)
        assert mine.params.keys() == theirs.params.keys()
        assert {k.lower(): v for k, v in mine.headers.items() if k.lower() != "content-length"} == {
            k.lower(): v for k, v in theirs.headers.items() if k.lower() != "content-length"
        }
        assert ("content-length" in {k.lower() for k in mine.headers}) == (
            "content-length" in {k.lower() for k in theirs.headers}
        )


def test_a_shop_fakes_the_gateway_with_a_mock_transport_and_the_test_kit(no_network: None) -> None:
    from django_alipay.testing import build_response

    def gateway(request: Request) -> Response:
        if request.params["service"] == "forex_refund":
            return Response(200, {}, build_response("forex_refund", error="PURCHASE_TRADE_NOT_EXIST"))
        fields = {"out_trade_no": request.params["out_trade_no"], "trade_status": "TRADE_FINISHED"}
        return Response(200, {}, build_response("single_trade_query", fields, key=MD5_KEY))

    client = _offline_client(MockTransport(gateway))
    assert client.single_trade_query(out_trade_no="ORDER-1").trade_status == "TRADE_FINISHED"
    with pytest.raises(AlipayBusinessError) as caught:
        client.forex_refund(**REFUND)
    assert caught.value.code == "PURCHASE_TRADE_NOT_EXIST"
