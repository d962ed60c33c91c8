"""The clock the domain reads the time from, which tests replace to stand at 23:59:59 Beijing time."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

from django_alipay.protocol import clock as protocol_clock
from django_alipay.protocol.clock import Clock

__all__ = ["get_clock", "now", "set_clock", "use_clock"]

_clock: Clock | None = None


def get_clock() -> Clock:
    """The clock in use: the one set with :func:`set_clock`, else the system clock."""
    return _clock if _clock is not None else protocol_clock.SystemClock()


def set_clock(clock: Clock | None) -> None:
    """Make every domain function read the time from ``clock`` (None: back to the system clock).

    Process-wide on purpose: threads started by a test see the same time as the test.
    """
    global _clock
    _clock = clock


@contextlib.contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Use ``clock`` inside a ``with`` block, then restore the previous one."""
    previous = _clock
    set_clock(clock)
    try:
        yield clock
    finally:
        set_clock(previous)


def now() -> datetime:
    """The current instant, timezone-aware, from the domain clock."""
    return protocol_clock.now(get_clock())
