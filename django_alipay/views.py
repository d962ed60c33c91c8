"""The endpoints Alipay and the buyer's browser reach: each merchant's notify URL and return URL."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, UnreadablePostError
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from django_alipay.conf import app_settings
from django_alipay.domain import notifications
from django_alipay.models import Trade
from django_alipay.protocol import money
from django_alipay.protocol.codes import TradeStatus

__all__ = ["BuyerState", "notify", "return_page"]

logger = logging.getLogger("django_alipay.views")

#: What the return page tells the buyer: paid, still confirming, closed, or "checking" when the visit's own
#: data could not be trusted (a forged or unsigned return never says "paid").
BuyerState = Literal["paid", "confirming", "closed", "checking"]


def _plain(body: str, status: int) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


def _read_capped(request: HttpRequest, cap: int) -> bytes:
    """At most ``cap + 1`` bytes of the body, read from the stream: enough to know it is too large.

    ``request.body`` is never touched, so Django's own size check (RequestDataTooBig, a 500 here) cannot fire
    and a hostile body is not read into memory.
    """
    return request.read(cap + 1)


@login_not_required
@transaction.non_atomic_requests
@csrf_exempt
@require_POST
def notify(request: HttpRequest, token: str) -> HttpResponse:
    """Alipay's asynchronous notification for the merchant of ``token``, answered ``success`` or ``fail``.

    The raw request goes to :func:`django_alipay.domain.notifications.receive`, which stores, verifies and
    processes it and decides the answer; this view only reads the body (capped at
    ``ALIPAY["NOTIFY_MAX_BODY_BYTES"]``) and renders that answer as plain text. Exempt from CSRF (Alipay has
    no token), from ``LoginRequiredMiddleware`` and from ``ATOMIC_REQUESTS`` (the audit row must survive).
    """
    try:
        body = _read_capped(request, app_settings.NOTIFY_MAX_BODY_BYTES)
    except UnreadablePostError:
        logger.warning("notification for token %.8s... broke off while its body was read", token)
        return _plain(app_settings.FAILURE_RESPONSE, 400)
    with _admission() as admitted:
        if not admitted:
            return _shed(token)
        return _receive(request, token, body)


def _receive(request: HttpRequest, token: str, body: bytes) -> HttpResponse:
    try:
        answer = notifications.receive(
            token,
            body=body,
            content_type=request.META.get("CONTENT_TYPE", ""),
            query_string=request.META.get("QUERY_STRING", ""),
            remote_addr=request.META.get("REMOTE_ADDR"),
            headers=request.headers,
            method=request.method or "POST",
        )
    except DatabaseError:
        # The database is down or refused the row: a passing failure Alipay's retries will get past.
        logger.exception("notification for token %.8s... could not be stored", token)
        response = _plain(app_settings.FAILURE_RESPONSE, 503)
        response["Retry-After"] = "30"
        return response
    return _plain(answer.body, answer.status)


_in_flight = 0
_in_flight_lock = threading.Lock()


@contextmanager
def _admission() -> Iterator[bool]:
    """Whether this process takes one more notification now (``ALIPAY["NOTIFY_MAX_IN_FLIGHT"]``)."""
    global _in_flight
    limit = app_settings.NOTIFY_MAX_IN_FLIGHT
    with _in_flight_lock:
        admitted = limit is None or _in_flight < limit
        if admitted:
            _in_flight += 1
    try:
        yield admitted
    finally:
        if admitted:
            with _in_flight_lock:
                _in_flight -= 1


def _shed(token: str) -> HttpResponse:
    """Too many notifications at once: a quick 503 so Alipay sends this one again later, nothing stored.

    Nothing is lost (Alipay keeps resending until it reads ``success``) and the ones being worked on keep
    their time instead of all waiting in one queue.
    """
    logger.warning(
        "notification for token %.8s... answered 503: %s already in progress (NOTIFY_MAX_IN_FLIGHT)",
        token,
        app_settings.NOTIFY_MAX_IN_FLIGHT,
    )
    response = _plain(app_settings.FAILURE_RESPONSE, 503)
    response["Retry-After"] = "60"
    return response


def _buyer_state(visit: notifications.ReturnVisit) -> BuyerState:
    trade = visit.trade
    if not visit.genuine or trade is None:
        return "checking"
    if trade.status == TradeStatus.TRADE_CLOSED:
        return "closed"
    if trade.is_paid:
        return "paid"
    return "confirming"


def _shop_page(target: str, params: dict[str, str]) -> str | None:
    """The configured shop page (a URL, a path, or a URL name) with ``params`` added; None if unusable."""
    if target.startswith(("https://", "http://", "/")):
        url = target
    else:
        try:
            url = reverse(target)
        except NoReverseMatch:
            logger.error("ALIPAY['RETURN_REDIRECT'] = %r is not a URL, a path or a URL name", target)
            return None
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


@login_not_required
@transaction.non_atomic_requests
@never_cache
@require_GET
def return_page(request: HttpRequest, token: str) -> HttpResponse:
    """Where Alipay's cashier sends the buyer back: shows (or forwards) the trade's current status.

    The signature of the visit is checked by :func:`django_alipay.domain.notifications.receive_return`,
    which stores the visit and never changes a trade: only notifications and queries do. A visit whose
    signature does not verify says "checking" and names no order, whatever its parameters claim.
    """
    trade: Trade | None = None
    try:
        visit = notifications.receive_return(
            token,
            query_string=request.META.get("QUERY_STRING", ""),
            remote_addr=request.META.get("REMOTE_ADDR"),
            headers=request.headers,
        )
    except DatabaseError:
        logger.exception("return visit for token %.8s... could not be stored", token)
        state: BuyerState = "checking"
    else:
        state = _buyer_state(visit)
        trade = visit.trade if state != "checking" else None
    target = app_settings.RETURN_REDIRECT
    if target:
        params: dict[str, str] = {"status": state}
        if trade is not None:
            params = {"out_trade_no": trade.out_trade_no, **params}
        url = _shop_page(target, params)
        if url is not None:
            return HttpResponseRedirect(url)
    amount = "" if trade is None else f"{money.format_amount(trade.amount, trade.currency)} {trade.currency}"
    return render(request, "django_alipay/return.html", {"state": state, "trade": trade, "amount": amount})
