"""Answer the library's gateway calls in memory for a test: every client sends through a MockTransport."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django_alipay.protocol.transport import MockTransport, Request, Response

__all__ = ["mock_gateway"]

Handler = Callable[[Request], "Response | bytes"]


def _as_response(answer: Response | bytes) -> Response:
    if isinstance(answer, bytes):
        return Response(200, {"Content-Type": "text/xml; charset=utf-8"}, answer)
    return answer


@contextmanager
def mock_gateway(handler: Handler) -> Iterator[MockTransport]:
    """Inside the block, every gateway call the library makes (queries, refunds, reversals, notify_verify)
    is answered by ``handler(request)`` in memory instead of over HTTP; yields the ``MockTransport``, whose
    ``requests`` lists the calls made.

    ``handler`` returns a ``Response``, or the bytes of a 200 XML answer (``build_response(...)``); it may
    raise ``TransportError`` or ``OutcomeUnknownError`` to play a failed connection or a lost answer.
    ``request.params`` holds the call's parameters (``service``, ``out_trade_no``, ...). Needs Django (it
    swaps the transport of ``django_alipay.gateway``); the previous transport is back after the block.
    """
    from django_alipay import gateway

    transport = MockTransport(lambda request: _as_response(handler(request)))
    previous = gateway.use_transport(transport)
    try:
        yield transport
    finally:
        gateway.use_transport(previous)
