"""A Django app for the load test: logs each django_alipay signal, and the answer and work of each notify.

Two append-only files, shared by the shop's processes (each line is one ``os.write`` with O_APPEND, atomic
for lines this short):

* ``LOADTEST_SIGNAL_LOG``: ``<signal> <out_trade_no> <notification id or -> <pid>`` per signal sent, so the
  run can check that no effect was applied twice;
* ``LOADTEST_QUERY_LOG``, per request to the notify URL: ``<tag> <status> <shed> <queries> <seconds in
  queries> <connections opened> <started> <seconds in Django>``. *tag* is the request's
  ``X-Loadtest-Tag`` header (``-`` without one), so run.py can match the line to the request it sent;
  *shed* is 1 for a 503 with ``Retry-After`` (the in-flight limit's answer; no other 503 of the notify view
  carries it), as :class:`ProbeMiddleware`, first of the middleware, saw it; *started* is the epoch time
  of Django's ``request_started`` (the same clock as Locust's, on the same machine: the gap from the send is
  the time spent before Django, in the connection and gunicorn's queue). Queries are counted by a
  ``connection.execute_wrapper``; BEGIN and COMMIT do not go through it, so they count in the total only.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from django.apps import AppConfig

#: The signals logged, by their name in django_alipay.signals.
SIGNALS = (
    "trade_paid",
    "trade_status_changed",
    "trade_closed",
    "notification_received",
    "notification_rejected",
)

_request = threading.local()


def _append(variable: str, line: str) -> None:
    path = os.environ.get(variable)
    if not path:
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, line.encode("ascii", "replace"))
    finally:
        os.close(descriptor)


def _signal_logger(name: str) -> Callable[..., None]:
    def receive(sender: type, **kwargs: Any) -> None:
        trade = kwargs.get("trade")
        notification = kwargs.get("notification")
        order = getattr(trade, "out_trade_no", "") or getattr(notification, "out_trade_no", "") or "-"
        row = getattr(notification, "pk", None) or "-"
        _append("LOADTEST_SIGNAL_LOG", f"{name} {order} {row} {os.getpid()}\n")

    receive.__name__ = f"log_{name}"
    return receive


def _timed_execute(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        stats = getattr(_request, "stats", None)
        if stats is not None:
            stats[0] += 1
            stats[1] += time.perf_counter() - started


def _connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _timed_execute not in connection.execute_wrappers:
        connection.execute_wrappers.append(_timed_execute)
    stats = getattr(_request, "stats", None)
    if stats is not None:
        stats[2] += 1


def _request_started(sender: Any, environ: dict[str, Any] | None = None, **kwargs: Any) -> None:
    notify = environ is not None and str(environ.get("PATH_INFO", "")).startswith("/alipay/notify/")
    if not notify or environ is None:
        _request.stats = None
        return
    tag = "".join(c for c in str(environ.get("HTTP_X_LOADTEST_TAG", "")) if c.isalnum() or c in "-_.")
    # queries, seconds in queries, connections opened, perf_counter at start, tag, status, shed, epoch start
    _request.stats = [0, 0.0, 0, time.perf_counter(), tag[:40] or "-", 0, 0, time.time()]


def _request_finished(sender: Any, **kwargs: Any) -> None:
    stats = getattr(_request, "stats", None)
    _request.stats = None
    if stats is not None:
        total = time.perf_counter() - stats[3]
        _append(
            "LOADTEST_QUERY_LOG",
            f"{stats[4]} {stats[5]} {stats[6]} {stats[0]} {stats[1]:.6f} {stats[2]} {stats[7]:.6f} "
            f"{total:.6f}\n",
        )


class ProbeMiddleware:
    """Notes the status of each notify answer, and whether it was shed (503 with Retry-After)."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        """Pass the request on; note what came back."""
        response = self.get_response(request)
        stats = getattr(_request, "stats", None)
        if stats is not None:
            stats[5] = int(response.status_code)
            stats[6] = int(response.status_code == 503 and response.has_header("Retry-After"))
        return response


class LoadTestProbe(AppConfig):
    """Connects the signal loggers and the per-request database counters."""

    name = "loadtest_probe"
    label = "loadtest_probe"

    def ready(self) -> None:
        """Connect the receivers (strong references: they live as long as the process)."""
        from django.core.signals import request_finished, request_started
        from django.db import connections
        from django.db.backends.signals import connection_created

        from django_alipay import signals

        for name in SIGNALS:
            getattr(signals, name).connect(
                _signal_logger(name), weak=False, dispatch_uid=f"loadtest_probe.{name}"
            )
        request_started.connect(_request_started, dispatch_uid="loadtest_probe.started")
        request_finished.connect(_request_finished, dispatch_uid="loadtest_probe.finished")
        connection_created.connect(_connection_created, dispatch_uid="loadtest_probe.connection")
        for connection in connections.all(initialized_only=True):
            _connection_created(None, connection)
