"""A fixed clock a test sets in Beijing time, and a context manager that makes the domain read it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

from django_alipay.domain import clock as domain_clock
from django_alipay.protocol import clock as protocol_clock
from django_alipay.protocol.clock import FixedClock
from django_alipay.protocol.errors import TimeFormatError

__all__ = ["BeijingClock", "parse_when", "standing_at"]

#: What a test may pass as a point in time.
When = datetime | str


def parse_when(when: When) -> datetime:
    """An aware datetime from ``when``: an aware datetime, Beijing text ``yyyy-MM-dd HH:mm:ss`` or
    ``yyyyMMddHHmmss``, or ISO-8601 with a UTC offset (``2024-03-01T15:59:59+00:00``).

    A naive datetime or ISO text without an offset raises TimeFormatError: the time zone is never guessed.
    """
    if isinstance(when, datetime):
        return protocol_clock.to_beijing(when, parameter="when")
    if not isinstance(when, str):
        raise TimeFormatError(
            f"a time must be a datetime or text, not {type(when).__name__}", parameter="when"
        )
    try:
        return protocol_clock.parse_any_datetime(when, parameter="when")
    except TimeFormatError:
        pass
    try:
        parsed = datetime.fromisoformat(when)
    except ValueError:
        raise TimeFormatError(
            f"{when!r} is neither Beijing time (yyyy-MM-dd HH:mm:ss) nor ISO-8601 with an offset",
            parameter="when",
        ) from None
    return protocol_clock.to_beijing(parsed, parameter="when")


class BeijingClock(FixedClock):
    """A FixedClock that is set and read in Beijing time: ``clock.set_beijing("2024-03-01 23:59:59")``.

    ``advance(seconds=1)`` and ``set(dt)`` work as on FixedClock. Without a start time it stands at the
    current second.
    """

    def __init__(self, when: When | None = None) -> None:
        start = parse_when(when) if when is not None else protocol_clock.beijing_now().replace(microsecond=0)
        super().__init__(start)

    def set_beijing(self, when: When) -> datetime:
        """Stand at ``when`` (Beijing text, ISO with offset, or an aware datetime); returns the new time."""
        moment = parse_when(when)
        self.set(moment)
        return moment

    @property
    def beijing(self) -> str:
        """The time as Beijing wall-clock text, ``yyyy-MM-dd HH:mm:ss``."""
        return protocol_clock.format_datetime(self.now())

    def __repr__(self) -> str:
        return f"BeijingClock({self.beijing!r})"


@contextlib.contextmanager
def standing_at(when: When | None = None) -> Iterator[BeijingClock]:
    """Make every domain function read the time from a BeijingClock at ``when`` inside the block.

    The previous domain clock is restored afterwards, however the block ends.
    """
    clock = BeijingClock(when)
    with domain_clock.use_clock(clock):
        yield clock
