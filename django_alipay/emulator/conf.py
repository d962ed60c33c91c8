"""The emulator's settings and its run-time state: clock, time scale, knobs, faults and partner locks."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from django_alipay.protocol.clock import Clock, FixedClock, SystemClock

from . import CONTROL_TOKEN_ENV, CONTROL_TOKEN_HEADER
from .faults import FaultPlan

__all__ = [
    "CONTROL_TOKEN_ENV",
    "CONTROL_TOKEN_HEADER",
    "DEFAULTS",
    "OPEN_POINT_KNOBS",
    "RETRY_SCHEDULE",
    "Runtime",
    "control_token",
    "emulator_allowed",
    "runtime",
    "setting",
]

#: Alipay's documented resend gaps after the first notification: 2m, 10m, 10m, 1h, 2h, 6h, 15h (8 sends).
RETRY_SCHEDULE: Final[tuple[float, ...]] = (120.0, 600.0, 600.0, 3600.0, 7200.0, 21600.0, 54000.0)

#: The points Alipay's references leave open, each a knob naming the behaviours the emulator can play: knob ->
#: its allowed values, the default first (the references' answer where they give one). docs/emulator.md has
#: the evidence for each value; the library's critical paths are tested under every one.
OPEN_POINT_KNOBS: Final[Mapping[str, tuple[str, ...]]] = {
    # The charset an XML answer declares and the one its signature is computed in: the request's for both;
    # or GBK declared (a real answer to a UTF-8 request did) and signed in GBK, or in the request's charset.
    "RESPONSE_CHARSET": ("request", "gbk_signed_as_declared", "gbk_signed_as_request"),
    # notify_ids like the published samples (34 characters), or 128 printable ASCII characters.
    "NOTIFY_ID_FORMAT": ("short", "long"),
    # notify_verify answered for GET and POST, or for GET only (what every reference sends).
    "NOTIFY_VERIFY_METHOD": ("any", "get_only"),
    # order_create on create_forex_trade_wap: long(10) epoch seconds only, or 13-digit milliseconds too.
    "ORDER_CREATE_FORMAT": ("seconds", "seconds_or_millis"),
    # Play Alipay's sandbox, which signs with MD5 only and refuses RSA, RSA2 and DSA.
    "SANDBOX": ("off", "on"),
    # RSA/RSA2/DSA signatures in notifications and answers: one Base64 line, or wrapped every 60 characters.
    "SIGNATURE_LAYOUT": ("single_line", "wrapped"),
    # Where a notification names its charset: the Content-Type header, a signed _input_charset field, or
    # nowhere (the receiver must know it).
    "NOTIFY_CHARSET": ("content_type", "form_field", "none"),
    # A second create_forex_trade(_wap) for an out_trade_no the gateway knows: refused as duplicated, or the
    # same unpaid order (same amount) taken back to its cashier.
    "DUPLICATE_TRADE": ("refuse", "resume_identical"),
    # The text of a file request with missing or invalid dates: the recorded "Illegal Date period!", or the
    # listed but never reproduced "Date format incorrect YYYYMMDD".
    "FILE_DATE_ERROR": ("illegal_date_period", "date_format_incorrect"),
    # forex_refund sent again with an out_return_no already used for the very same refund: the documented
    # error code ("repeated_refundment_request") or the first answer again ("original_result").
    "REPEAT_REFUND_ANSWER": ("repeated_refundment_request", "original_result"),
    # notify_id of a notification's resends: a new one per send ("fresh") or the first one every time
    # ("reused"; notify_verify then answers false once the first send is older than NOTIFY_ID_TTL).
    "NOTIFY_ID_REUSE": ("fresh", "reused"),
}

#: Keys of ``settings.ALIPAY_EMULATOR`` and their defaults.
DEFAULTS: Final[Mapping[str, Any]] = {
    # Durations (notification retries, notify_id lifetime, refund spacing) run this many times faster.
    "TIME_SCALE": 1.0,
    # Start the background notifier thread lazily; tests that use the Django test client turn it off and
    # call deliver_due_notifications() themselves.
    "NOTIFIER_THREAD": True,
    # Seconds between two forex_refund requests of one partner (forex_refund page: "at least 3 seconds").
    "REFUND_INTERVAL": 3.0,
    # Seconds a notify_id stays verifiable after it was sent.
    "NOTIFY_ID_TTL": 60.0,
    "RETRY_SCHEDULE": RETRY_SCHEDULE,
    # Largest difference, in seconds, between a request's ``timestamp`` and the emulator clock (None: off).
    "TIMESTAMP_TOLERANCE": 1800.0,
    # Seconds the notifier waits for a merchant's notify_url to answer.
    "NOTIFY_TIMEOUT": 10.0,
    # PEM of the emulator's own Alipay private keys; generated (and stored in the database) when None.
    "RSA_PRIVATE_KEY": None,
    "DSA_PRIVATE_KEY": None,
    # Partners registered on first use: dicts with the arguments of api.register_partner().
    "PARTNERS": (),
    # Seed of the fault-injection random generator when a fault plan gives none.
    "FAULT_SEED": 0,
    # The open points (OPEN_POINT_KNOBS), each at the references' answer.
    **{name: values[0] for name, values in OPEN_POINT_KNOBS.items()},
    # What scripts send in the X-Emulator-Token header to POST to control/ (browsers send a CSRF token
    # instead). None: $ALIPAY_EMULATOR_CONTROL_TOKEN, else a random token made once per process.
    "CONTROL_TOKEN": None,
}

_generated_token: list[str] = []
_token_lock = threading.Lock()

_CONFIG_KEYS: Final = (
    "REFUND_INTERVAL",
    "NOTIFY_ID_TTL",
    "RETRY_SCHEDULE",
    "TIMESTAMP_TOLERANCE",
    "NOTIFY_TIMEOUT",
    *OPEN_POINT_KNOBS,
)


def setting(name: str) -> Any:
    """The value of one ``ALIPAY_EMULATOR`` key, falling back to its default; read at call time."""
    configured = getattr(settings, "ALIPAY_EMULATOR", None) or {}
    if name not in DEFAULTS:
        raise KeyError(f"unknown ALIPAY_EMULATOR setting {name!r}")
    return configured.get(name, DEFAULTS[name])


def control_token() -> str:
    """The token a script must send (header ``X-Emulator-Token``) to change the emulator through control/.

    ``ALIPAY_EMULATOR["CONTROL_TOKEN"]``, else ``$ALIPAY_EMULATOR_CONTROL_TOKEN``, else a random token made
    once per process (then only code in this process, such as a test using Django's test client, knows it).
    """
    configured = setting("CONTROL_TOKEN") or os.environ.get(CONTROL_TOKEN_ENV)
    if configured:
        return str(configured)
    with _token_lock:
        if not _generated_token:
            _generated_token.append(secrets.token_urlsafe(32))
        return _generated_token[0]


def emulator_allowed() -> bool:
    """Whether the emulator may serve requests: only with DEBUG, or with ALIPAY_EMULATOR_ALLOW = True."""
    return bool(settings.DEBUG or getattr(settings, "ALIPAY_EMULATOR_ALLOW", False))


@dataclass
class Runtime:
    """Everything about the emulator that changes while it runs, shared by the threads of one process.

    The business clock (Beijing day, gmt_* times) and the duration scale are separate on purpose: a test can
    stand the clock at 23:59:59 Beijing time while the notifier replays 24 hours of retries in seconds.
    """

    clock: Clock = field(default_factory=SystemClock)
    time_scale: float = 1.0
    config: dict[str, Any] = field(default_factory=dict)
    faults: FaultPlan = field(default_factory=FaultPlan)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _partner_locks: dict[str, threading.Lock] = field(default_factory=dict)

    @classmethod
    def from_settings(cls) -> Runtime:
        """A fresh state with the defaults of ``settings.ALIPAY_EMULATOR``."""
        state = cls(time_scale=float(setting("TIME_SCALE")))
        state.config = {name: _knob(name, setting(name)) for name in _CONFIG_KEYS}
        state.faults = FaultPlan(seed=int(setting("FAULT_SEED")))
        return state

    # --- clock and durations

    def now(self) -> datetime:
        """The emulator's business time (aware)."""
        return self.clock.now()

    def set_clock(self, when: datetime | None) -> None:
        """Stand the business clock at ``when`` (aware), or go back to the real clock with None."""
        with self.lock:
            self.clock = SystemClock() if when is None else FixedClock(when)

    def advance_clock(self, seconds: float) -> datetime:
        """Move a standing clock forward (a running one is first frozen at the current time)."""
        with self.lock:
            if not isinstance(self.clock, FixedClock):
                self.clock = FixedClock(self.clock.now())
            return self.clock.advance(seconds=seconds)

    def set_time_scale(self, scale: float) -> None:
        """Make durations run ``scale`` times faster (must be positive)."""
        if not scale > 0:
            raise ValueError("time_scale must be a positive number")
        with self.lock:
            self.time_scale = float(scale)

    def real_seconds(self, nominal: float) -> float:
        """How many real seconds a protocol duration of ``nominal`` seconds lasts at the current scale."""
        return nominal / self.time_scale

    @staticmethod
    def real_now() -> datetime:
        """Wall-clock time, used for scheduling and expiry (never for business dates)."""
        return datetime.now(UTC)

    # --- knobs

    def get(self, name: str) -> Any:
        """The current value of a run-time knob (REFUND_INTERVAL, NOTIFY_ID_TTL, an open-point knob ...)."""
        with self.lock:
            return self.config[name]

    def configure(self, **values: Any) -> None:
        """Change run-time knobs; names as in ``ALIPAY_EMULATOR`` (case-insensitive). ValueError if invalid.

        Numbers may come as text (a form post); RETRY_SCHEDULE as a list or a comma-separated string.
        """
        updates = {name.upper(): _knob(name.upper(), value) for name, value in values.items()}
        with self.lock:
            self.config.update(updates)

    # --- per-partner serialisation

    @contextlib.contextmanager
    def partner_lock(self, partner: str) -> Iterator[None]:
        """Serialise business mutations of one partner inside this process.

        SQLite ignores SELECT ... FOR UPDATE, so the row locks taken as well only protect other databases;
        this lock is what keeps two threads of one emulator from refunding the same money twice.
        """
        with self.lock:
            lock = self._partner_locks.setdefault(partner, threading.Lock())
        with lock:
            yield


def _seconds(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name.lower()} must be a number of seconds") from None
    if not number >= 0:
        raise ValueError(f"{name.lower()} must be 0 or more seconds")
    return number


def _knob(name: str, value: Any) -> Any:
    """Check and convert one run-time knob."""
    if name not in _CONFIG_KEYS:
        known = ", ".join(key.lower() for key in _CONFIG_KEYS)
        raise ValueError(f"unknown setting {name.lower()!r}; known: {known}")
    if name in OPEN_POINT_KNOBS:
        allowed = OPEN_POINT_KNOBS[name]
        choice = value.strip().lower() if isinstance(value, str) else value
        if choice not in allowed:
            raise ValueError(f"{name.lower()} must be one of {', '.join(allowed)}, not {value!r}")
        return choice
    if name == "RETRY_SCHEDULE":
        gaps = value.split(",") if isinstance(value, str) else value
        if not isinstance(gaps, list | tuple) or not gaps:
            raise ValueError("retry_schedule must be a list of seconds between sends")
        return [_seconds(name, gap) for gap in gaps]
    if name == "TIMESTAMP_TOLERANCE" and value in (None, "", "none", "null"):
        return None
    return _seconds(name, value)


_state: Runtime | None = None
_state_lock = threading.Lock()


def runtime() -> Runtime:
    """The process-wide run-time state, created from settings on first use."""
    global _state
    state = _state
    if state is None:
        with _state_lock:
            if _state is None:
                _state = Runtime.from_settings()
            state = _state
    return state


def reset_runtime() -> Runtime:
    """Forget clock, scale, knobs and faults, and start again from settings."""
    global _state
    with _state_lock:
        _state = Runtime.from_settings()
        return _state


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: object) -> None:
    if setting == "ALIPAY_EMULATOR":
        reset_runtime()
