"""Time at the protocol edge: an injectable clock and the gateway's Beijing-time wire formats."""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from django_alipay.protocol.errors import TimeFormatError

__all__ = [
    "BEIJING",
    "Clock",
    "FixedClock",
    "SystemClock",
    "beijing_date",
    "beijing_now",
    "epoch_millis",
    "format_compact",
    "format_date",
    "format_datetime",
    "from_epoch_millis",
    "now",
    "parse_any_datetime",
    "parse_compact",
    "parse_date",
    "parse_datetime",
    "parse_epoch_millis",
    "same_beijing_day",
    "to_beijing",
]

#: The gateway's time zone: every wire time and the same-day rule of REVERSE/cancel are in Beijing time.
BEIJING: Final = ZoneInfo("Asia/Shanghai")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
# [0-9] rather than \d: a full-width or Arabic-Indic digit must not pass for a time.
_DATETIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})")
_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_MILLIS = re.compile(r"0|[1-9][0-9]{0,15}")
_MAX_SHOWN = 40


def _shown(value: object) -> str:
    text = ascii(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _is_aware(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() is not None


def _require_aware(value: object, parameter: str) -> datetime:
    """``value`` if it is an aware datetime; TimeFormatError otherwise (a naive one is no defined instant)."""
    if not isinstance(value, datetime):
        raise TimeFormatError(
            f"{parameter} must be a timezone-aware datetime, not {type(value).__name__}", parameter=parameter
        )
    if not _is_aware(value):
        raise TimeFormatError(
            f"{parameter} {value.isoformat()} is a naive datetime: give it a time zone, the server's local "
            "zone is never assumed",
            parameter=parameter,
        )
    return value


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the current time as an aware datetime."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    """The real clock (UTC)."""

    def now(self) -> datetime:
        """The current instant in UTC."""
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock:
    """A clock that stands still until told to move, so tests can stand at 23:59:59 Beijing time.

    Safe to share between threads: reads and moves are serialised.
    """

    def __init__(self, dt: datetime) -> None:
        self._lock = threading.Lock()
        self._now = _require_aware(dt, "dt")

    def now(self) -> datetime:
        """The instant the clock is set to."""
        with self._lock:
            return self._now

    def set(self, dt: datetime) -> None:
        """Move the clock to ``dt`` (aware), forwards or backwards."""
        aware = _require_aware(dt, "dt")
        with self._lock:
            self._now = aware

    def advance(
        self,
        *,
        days: float = 0,
        seconds: float = 0,
        microseconds: float = 0,
        milliseconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        weeks: float = 0,
    ) -> datetime:
        """Move the clock by a timedelta built from the arguments; returns the new time."""
        step = timedelta(
            days=days,
            seconds=seconds,
            microseconds=microseconds,
            milliseconds=milliseconds,
            minutes=minutes,
            hours=hours,
            weeks=weeks,
        )
        with self._lock:
            self._now = self._now + step
            return self._now

    def __repr__(self) -> str:
        return f"FixedClock({self.now().isoformat()})"


_SYSTEM_CLOCK: Final = SystemClock()


def now(clock: Clock | None = None) -> datetime:
    """The current instant from ``clock``, or from the system clock when none is given; always aware."""
    current = (clock if clock is not None else _SYSTEM_CLOCK).now()
    return _require_aware(current, "clock.now()")


def beijing_now(clock: Clock | None = None) -> datetime:
    """The current instant expressed in Beijing time."""
    return now(clock).astimezone(BEIJING)


def to_beijing(dt: datetime, *, parameter: str = "datetime") -> datetime:
    """The same instant as ``dt`` (aware) expressed in Beijing time."""
    aware = _require_aware(dt, parameter)
    try:
        return aware.astimezone(BEIJING)
    except OverflowError:
        raise TimeFormatError(
            f"{parameter} {aware.isoformat()} has no Beijing time in the datetime range", parameter=parameter
        ) from None


def beijing_date(dt: datetime, *, parameter: str = "datetime") -> date:
    """The calendar date in Beijing at the instant ``dt``, whatever zone ``dt`` carries."""
    return to_beijing(dt, parameter=parameter).date()


def same_beijing_day(a: datetime, b: datetime) -> bool:
    """True when the two instants fall on the same Beijing calendar day (the REVERSE/cancel rule)."""
    return beijing_date(a, parameter="a") == beijing_date(b, parameter="b")


def format_datetime(dt: datetime, *, parameter: str = "datetime") -> str:
    """``dt`` as Beijing time "yyyy-MM-dd HH:mm:ss" (notify_time, gmt_*, order_gmt_create, timestamp)."""
    b = to_beijing(dt, parameter=parameter)
    return f"{b.year:04d}-{b.month:02d}-{b.day:02d} {b.hour:02d}:{b.minute:02d}:{b.second:02d}"


def format_compact(dt: datetime, *, parameter: str = "datetime") -> str:
    """``dt`` as Beijing time "yyyyMMddHHmmss" (trans_create_time, gmt_return)."""
    b = to_beijing(dt, parameter=parameter)
    return f"{b.year:04d}{b.month:02d}{b.day:02d}{b.hour:02d}{b.minute:02d}{b.second:02d}"


def format_date(value: date | datetime, *, parameter: str = "date") -> str:
    """A date as "yyyyMMdd" (start_date, end_date); an aware datetime is first converted to Beijing time."""
    if isinstance(value, datetime):
        value = beijing_date(value, parameter=parameter)
    elif not isinstance(value, date):
        raise TimeFormatError(
            f"{parameter} must be a date or an aware datetime, not {type(value).__name__}",
            parameter=parameter,
        )
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def _fields(text: object, pattern: re.Pattern[str], shape: str, parameter: str) -> tuple[int, ...]:
    if not isinstance(text, str) or not (match := pattern.fullmatch(text)):
        raise TimeFormatError(f"{parameter} {_shown(text)} is not in the form {shape}", parameter=parameter)
    return tuple(int(group) for group in match.groups())


def _beijing(fields: tuple[int, ...], text: str, shape: str, parameter: str) -> datetime:
    try:
        year, month, day, hour, minute, second = fields
        return datetime(year, month, day, hour, minute, second, tzinfo=BEIJING)
    except ValueError:
        raise TimeFormatError(
            f"{parameter} {_shown(text)} is not a real date and time ({shape}, Beijing time)",
            parameter=parameter,
        ) from None


def parse_datetime(text: str, *, parameter: str = "datetime") -> datetime:
    """Parse Beijing time "yyyy-MM-dd HH:mm:ss" into an aware datetime in BEIJING; strict."""
    shape = "yyyy-MM-dd HH:mm:ss"
    return _beijing(_fields(text, _DATETIME, shape, parameter), text, shape, parameter)


def parse_compact(text: str, *, parameter: str = "datetime") -> datetime:
    """Parse Beijing time "yyyyMMddHHmmss" into an aware datetime in BEIJING; strict (TimeFormatError)."""
    shape = "yyyyMMddHHmmss"
    return _beijing(_fields(text, _COMPACT, shape, parameter), text, shape, parameter)


def parse_any_datetime(text: str, *, parameter: str = "datetime") -> datetime:
    """Parse either Beijing form, "yyyy-MM-dd HH:mm:ss" or "yyyyMMddHHmmss" (gmt_return is seen in both)."""
    if isinstance(text, str) and _DATETIME.fullmatch(text):
        return parse_datetime(text, parameter=parameter)
    if isinstance(text, str) and _COMPACT.fullmatch(text):
        return parse_compact(text, parameter=parameter)
    raise TimeFormatError(
        f"{parameter} {_shown(text)} is not in the form yyyy-MM-dd HH:mm:ss or yyyyMMddHHmmss",
        parameter=parameter,
    )


def parse_date(text: str, *, parameter: str = "date") -> date:
    """Parse "yyyyMMdd" into a date; strict (TimeFormatError)."""
    fields = _fields(text, _DATE, "yyyyMMdd", parameter)
    try:
        return date(*fields)
    except ValueError:
        raise TimeFormatError(
            f"{parameter} {_shown(text)} is not a real date (yyyyMMdd)", parameter=parameter
        ) from None


def epoch_millis(dt: datetime, *, parameter: str = "datetime") -> int:
    """Milliseconds since 1970-01-01T00:00:00Z of the aware ``dt`` (the HK ``timestamp`` form), floored."""
    return (_require_aware(dt, parameter) - _EPOCH) // _ONE_MS


def from_epoch_millis(ms: int, *, tz: tzinfo = UTC, parameter: str = "timestamp") -> datetime:
    """The aware datetime ``ms`` milliseconds after the Unix epoch, expressed in ``tz`` (UTC by default)."""
    if isinstance(ms, bool) or not isinstance(ms, int):
        raise TimeFormatError(
            f"{parameter} must be an int of milliseconds, not {type(ms).__name__}", parameter=parameter
        )
    try:
        return (_EPOCH + ms * _ONE_MS).astimezone(tz)
    except (OverflowError, ValueError):
        raise TimeFormatError(f"{parameter} {ms} is out of the datetime range", parameter=parameter) from None


def parse_epoch_millis(text: str, *, tz: tzinfo = UTC, parameter: str = "timestamp") -> datetime:
    """Parse epoch milliseconds written as ASCII digits (e.g. "1456507704121") into an aware datetime."""
    if not isinstance(text, str) or not _MILLIS.fullmatch(text):
        raise TimeFormatError(
            f"{parameter} {_shown(text)} is not epoch milliseconds (ASCII digits)", parameter=parameter
        )
    return from_epoch_millis(int(text), tz=tz, parameter=parameter)
