"""A Django app for the chaos run: logs each payment, refund and notification signal of django_alipay.

Each line of ``CHAOS_SIGNAL_LOG`` is ``<signal> <key> <pid>``: the trade's out_trade_no for ``trade_paid``,
the refund's id for ``refund_succeeded`` / ``refund_failed``, the notification's id for
``notification_received``. The shop's processes share the file; each line is one ``os.write`` with
O_APPEND (atomic for lines this short).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from django.apps import AppConfig


def _append(line: str) -> None:
    path = os.environ.get("CHAOS_SIGNAL_LOG")
    if not path:
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, line.encode("ascii", "replace"))
    finally:
        os.close(descriptor)


def _logger(name: str, key: Callable[[dict[str, Any]], object]) -> Callable[..., None]:
    def receive(sender: type, **kwargs: Any) -> None:
        _append(f"{name} {key(kwargs)} {os.getpid()}\n")

    receive.__name__ = f"log_{name}"
    return receive


class ChaosProbe(AppConfig):
    """Connects the signal loggers."""

    name = "chaos_probe"
    label = "chaos_probe"

    def ready(self) -> None:
        from django_alipay import signals

        keys: dict[str, Callable[[dict[str, Any]], object]] = {
            "trade_paid": lambda kw: kw["trade"].out_trade_no,
            "refund_succeeded": lambda kw: kw["refund"].pk,
            "refund_failed": lambda kw: kw["refund"].pk,
            "notification_received": lambda kw: kw["notification"].pk,
        }
        for name, key in keys.items():
            getattr(signals, name).connect(_logger(name, key), weak=False, dispatch_uid=f"chaos-{name}")
