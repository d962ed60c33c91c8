"""The app's settings: one ``ALIPAY = {...}`` dict, read lazily through ``app_settings``, each key typed.

Shops configure django_alipay with a single dict in their settings module::

    ALIPAY = {
        "FERNET_KEYS": [env("ALIPAY_FERNET_KEY")],
        "REFUND_WINDOW_DAYS": 90,
    }

Every key is optional except ``FERNET_KEYS`` (a system check says so). Each key is declared once, on
:class:`AppSettings`, with its kind (the values it takes and what code gets:
``app_settings.HTTP_TOTAL_TIMEOUT`` is a ``float``, ``app_settings.REFUND_DISPATCHER`` a callable imported
from its dotted path), its default and a one-line description. Values are read from ``django.conf.settings``
the first time they are asked for, never at import time, and the cache is dropped when a test changes
``ALIPAY`` (``override_settings``, pytest-django's ``settings`` fixture). A value of the wrong kind raises
:class:`~django_alipay.exceptions.AlipayConfigurationError` naming the key and what it takes, wherever it is
read, and ``manage.py check`` reports it (``django_alipay.E005``).
Unknown keys are reported by the system check ``django_alipay.W001``. :data:`DEFAULTS` is the one table of
keys: the documentation is generated from it.
"""

from __future__ import annotations

import difflib
import math
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar, cast, overload

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

__all__ = [
    "DEFAULTS",
    "AppSettings",
    "InvalidSetting",
    "Kind",
    "Setting",
    "app_settings",
    "close_matches",
    "unknown_keys",
]

SETTING_NAME: Final = "ALIPAY"

T = TypeVar("T")

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


class InvalidSetting(ValueError):
    """A value a setting does not take; the message completes "ALIPAY['KEY'] ...": "must be ..., not '8'"."""

    def __init__(self, problem: str, expected: str | None = None) -> None:
        super().__init__(problem)
        self.expected = expected


def _wrong(expected: str, value: Any) -> InvalidSetting:
    return InvalidSetting(f"must be {expected}, not {_short.repr(value)}", expected)


@dataclass(frozen=True)
class Kind(Generic[T]):
    """What one setting takes: its type in the docs' words and the function that checks and converts a value.

    ``convert`` returns the value code gets, or raises :class:`InvalidSetting`.
    """

    text: str
    convert: Callable[[Any], T]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _seconds(*, positive: bool) -> Kind[float]:
    expected = "a positive number of seconds" if positive else "a number of seconds >= 0"

    def convert(value: Any) -> float:
        if not _is_number(value) or value < 0 or (positive and value == 0):
            raise _wrong(expected, value)
        return float(value)

    return Kind("`float` " + ("> 0" if positive else ">= 0") + " (seconds)", convert)


def _days() -> Kind[float]:
    def convert(value: Any) -> float:
        if not _is_number(value) or value < 0:
            raise _wrong("a number of days >= 0", value)
        return cast(float, value)  # an int stays an int, so that messages say "90 days"

    return Kind("number >= 0 (days)", convert)


def _integer(*, minimum: int) -> Kind[int]:
    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def convert(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise _wrong(expected, value)
        return value

    return Kind(f"`int` >= {minimum}", convert)


def _optional(kind: Kind[T], meaning: str) -> Kind[T | None]:
    def convert(value: Any) -> T | None:
        if value is None:
            return None
        try:
            return kind.convert(value)
        except InvalidSetting as exc:
            if exc.expected is None:
                raise
            raise _wrong(f"{exc.expected} or None ({meaning})", value) from None

    return Kind(f"{kind.text} or `None`", convert)


def _boolean() -> Kind[bool]:
    def convert(value: Any) -> bool:
        if not isinstance(value, bool):
            raise _wrong("True or False", value)
        return value

    return Kind("`bool`", convert)


def _text() -> Kind[str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise _wrong("a non-empty string", value)
        return value

    return Kind("`str`, not empty", convert)


def _name_or_none() -> Kind[str | None]:
    def convert(value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise _wrong("a string or None", value)
        return value or None  # "" means none, as None does

    return Kind("`str` or `None`", convert)


def _url() -> Kind[str | None]:
    def convert(value: Any) -> str | None:
        from urllib.parse import urlsplit

        if value is None:
            return None
        if not (
            isinstance(value, str) and urlsplit(value).scheme in ("http", "https") and urlsplit(value).netloc
        ):
            raise _wrong("an absolute http(s) URL or None", value)
        return value

    return Kind("`str` (absolute http(s) URL) or `None`", convert)


def _choice(*options: str) -> Kind[str]:
    expected = " or ".join(repr(option) for option in options)

    def convert(value: Any) -> str:
        if value not in options or not isinstance(value, str):
            raise _wrong(expected, value)
        return value

    return Kind(" or ".join(f'`"{option}"`' for option in options), convert)


def _strings(value: Any, expected: str) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise _wrong(expected, value)
    return list(value)


def _sign_types() -> Kind[tuple[str, ...]]:
    def convert(value: Any) -> tuple[str, ...]:
        from django_alipay.protocol.signing import SIGN_TYPES

        expected = f"a non-empty list of {', '.join(SIGN_TYPES)}"
        found = _strings(value, expected)
        if not found:
            raise _wrong(expected, value)
        wrong = [item for item in found if item not in SIGN_TYPES]
        if wrong:
            raise InvalidSetting(f"has {wrong!r}; use uppercase {', '.join(SIGN_TYPES)}")
        return tuple(found)

    return Kind("list of `str`: sign types", convert)


def _fernet_keys() -> Kind[tuple[str, ...]]:
    def convert(value: Any) -> tuple[str, ...]:
        # Never quotes a value: these are secrets.
        if value is None:
            return ()
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise InvalidSetting("must be a list of keys, newest first (write [key] rather than key)")
        keys: list[str] = []
        for position, key in enumerate(value):
            if not isinstance(key, str | bytes):
                raise InvalidSetting(
                    f"must hold keys as str or bytes; entry [{position}] is of type {type(key).__name__}"
                )
            keys.append(key.decode("ascii", "replace") if isinstance(key, bytes) else key)
        return tuple(keys)

    return Kind("list of `str` (Fernet keys)", convert)


def _imported(expected: str) -> Kind[Callable[..., Any]]:
    def convert(value: Any) -> Callable[..., Any]:
        if callable(value):
            return value
        if not isinstance(value, str):
            raise _wrong(expected, value)
        try:
            found = import_string(value)
        except ImportError as exc:
            raise InvalidSetting(f"must be {expected}; {value!r} cannot be imported ({exc})") from None
        if not callable(found):
            raise InvalidSetting(f"must be {expected}; {value!r} is not callable")
        return cast(Callable[..., Any], found)

    return Kind("callable, or its dotted path (`str`)", convert)


def _permission_classes() -> Kind[tuple[str | type, ...]]:
    expected = "a list of DRF permission classes or their dotted paths"

    def convert(value: Any) -> tuple[str | type, ...]:
        found = _strings(value, expected)
        for item in found:
            if not isinstance(item, str | type):
                raise _wrong(expected, value)
        return tuple(found)

    return Kind("list of classes or their dotted paths", convert)


class Setting(Generic[T]):
    """One key of the ``ALIPAY`` dict: its kind, default and one-line description (for the docs).

    On :class:`AppSettings` it reads as the key's checked value. ``check`` is the id of the system check
    that reports a wrong value (``E005`` unless the key has a check of its own); ``cached`` is False for
    keys imported from a dotted path, so that a replaced function is picked up on the next use.
    """

    def __init__(
        self, kind: Kind[T], default: Any, description: str, *, check: str = "E005", cached: bool = True
    ) -> None:
        self.kind = kind
        self.default = default
        self.description = description
        self.check = check
        self.cached = cached
        self.name = ""

    @property
    def takes(self) -> str:
        """What the key takes, in the docs' words."""
        return self.kind.text

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Setting[T]: ...

    @overload
    def __get__(self, instance: AppSettings, owner: type | None = None) -> T: ...

    def __get__(self, instance: AppSettings | None, owner: type | None = None) -> Setting[T] | T:
        if instance is None:
            return self
        return cast(T, instance.value(self.name))

    def convert(self, raw: Any) -> T:
        """``raw`` as code gets it; :class:`AlipayConfigurationError` naming the key when it is wrong."""
        try:
            return self.kind.convert(raw)
        except InvalidSetting as exc:
            from django_alipay.exceptions import AlipayConfigurationError

            raise AlipayConfigurationError(f"ALIPAY[{self.name!r}] {exc}.") from None

    def __repr__(self) -> str:
        return f"<Setting {self.name}: {self.takes}, default {self.default!r}>"


_SECONDS = _seconds(positive=False)
_POSITIVE_SECONDS = _seconds(positive=True)


class AppSettings:
    """Attribute access to the ``ALIPAY`` dict over the declared defaults, each value checked on first use."""

    DEFAULT_MERCHANT = Setting(
        _name_or_none(),
        None,
        "Name or partner ID of the merchant used when code does not name one (None: no default).",
    )
    FERNET_KEYS = Setting(
        _fernet_keys(),
        [],
        "Fernet keys encrypting merchant secrets at rest, newest first: the first encrypts, all decrypt.",
        check="E003",
    )
    REFUND_WINDOW_DAYS = Setting(
        _optional(_days(), "no local limit"),
        None,
        "Days after payment during which refunds are accepted (None: no local limit; Alipay's applies).",
    )
    NOTIFY_VERIFY = Setting(
        _boolean(),
        True,
        "Ask Alipay (service notify_verify) whether a notification is genuine before acting on it.",
    )
    NOTIFY_VERIFY_TIMEOUT = Setting(
        _POSITIVE_SECONDS,
        5,
        "Seconds allowed for notify_verify in total; past it the notification is answered 503 and retried.",
    )
    ALLOWED_SIGN_TYPES = Setting(
        _sign_types(),
        ["MD5", "RSA", "RSA2", "DSA"],
        "Sign types a merchant may be configured with; a notification must use its merchant's own one.",
    )
    ACKNOWLEDGEMENT = Setting(
        _text(),
        "success",
        "Body answered to a notification once it is safely processed (Alipay stops retrying).",
    )
    FAILURE_RESPONSE = Setting(
        _text(), "fail", "Body answered to a notification that is refused or must be retried."
    )
    NOTIFY_MAX_BODY_BYTES = Setting(
        _integer(minimum=1),
        65536,
        "Largest notification body stored and parsed; larger ones are refused with metadata only.",
    )
    UNKNOWN_TOKEN_ROWS_PER_MINUTE = Setting(
        _optional(_integer(minimum=0), "no limit"),
        60,
        "Requests to a notify or return URL of no merchant stored per minute (a fingerprint each: size and "
        "SHA-256, not the body); past it they are answered without a row (shared through the cache; None: "
        "no limit).",
    )
    NOTIFY_MAX_IN_FLIGHT = Setting(
        _optional(_integer(minimum=1), "no limit"),
        None,
        "Notifications one process works on at once; past it they are answered 503 at once and Alipay "
        "resends them later (None: no limit).",
    )
    NOTIFY_URL_BASE = Setting(
        _url(),
        None,
        "Absolute URL the per-merchant notify token is appended to, e.g. https://shop.example/alipay/notify/.",
    )
    RETURN_URL = Setting(
        _url(), None, "Absolute URL Alipay's cashier sends the buyer back to (None: none sent)."
    )
    RETURN_REDIRECT = Setting(
        _name_or_none(),
        None,
        "Shop page (URL name, path or URL) the return view sends the buyer on to, with out_trade_no and "
        "status added (None: the app's own page).",
    )
    HTTP_CONNECT_TIMEOUT = Setting(_POSITIVE_SECONDS, 5, "Seconds to open a connection to the gateway.")
    HTTP_READ_TIMEOUT = Setting(_POSITIVE_SECONDS, 15, "Seconds to wait for each read from the gateway.")
    HTTP_TOTAL_TIMEOUT = Setting(
        _POSITIVE_SECONDS, 30, "Seconds a whole gateway call may take, however slowly bytes trickle in."
    )
    REFUND_SYNC = Setting(
        _boolean(),
        True,
        "Ask for synchronous refund results (is_sync=Y), except 00:00-01:30 Beijing time when Alipay defers.",
    )
    REFUND_SPACING = Setting(
        _SECONDS, 3, "Seconds kept between two refund calls of one partner (Alipay asks for at least 3)."
    )
    REFUND_MAX_WAIT = Setting(
        _optional(_SECONDS, "no limit"),
        10,
        "Seconds a refund sent in the request may wait for the refund spacing; past it the refund stays "
        "requested and reconciliation sends it (None: wait as long as it takes).",
    )
    REFUND_DISPATCHER: Setting[Callable[[int], Any]] = Setting(
        _imported("a function taking a refund id, or its dotted path"),
        "django_alipay.domain.refunds.submit",
        "Dotted path (or callable) run on commit with a refund id to send it; the default sends it at once.",
        check="E022",
        cached=False,
    )
    REVERSE_SERVICE = Setting(
        cast(Kind[Literal["cancel", "spot_reverse"]], _choice("cancel", "spot_reverse")),
        "cancel",
        "Service used to REVERSE in-store payments: 'cancel' (acquire.cancel) or 'spot_reverse'.",
    )
    RECONCILE_TRADE_AGE = Setting(
        _SECONDS, 900, "Seconds an unpaid trade stays untouched before reconciliation queries it."
    )
    RECONCILE_REFUND_AGE = Setting(
        _SECONDS,
        300,
        "Seconds a refund may stay requested, submitted or unknown before reconciliation resolves it.",
    )
    STRANDED_REFUND_AFTER = Setting(
        _SECONDS,
        30,
        "Seconds a requested (or claimed, unanswered) refund may go without a task due for it before the "
        "sweeper (sweep_stranded_refunds) hands it to a task again.",
    )
    RECONCILE_MAX_AGE_DAYS = Setting(
        _days(), 7, "Trades older than this many days are no longer queried while unpaid."
    )
    RECONCILE_BATCH_SIZE = Setting(
        _integer(minimum=1), 100, "Rows loaded and queried per batch by reconciliation."
    )
    TASK_QUEUE = Setting(
        _text(), "alipay", "Celery queue for notification follow-ups and reconciliation tasks."
    )
    REFUND_TASK_QUEUE = Setting(
        _text(),
        "alipay_refunds",
        "Celery queue for refund calls (the 3 s spacing holds across all workers).",
    )
    CELERY_ENABLED = Setting(
        _boolean(), False, "Whether the Celery tasks are in use (then Celery must be installed)."
    )
    API_ENABLED = Setting(
        _boolean(),
        False,
        "Whether the REST API is in use: django_alipay.urls mounts it at api/ (then Django REST framework "
        "must be installed).",
    )
    API_PERMISSION_CLASSES = Setting(
        _permission_classes(),
        ["rest_framework.permissions.IsAdminUser"],
        "DRF permission classes (dotted paths or classes) every REST API request must pass; default: staff.",
    )
    API_MERCHANTS_FOR_USER: Setting[Callable[[Any], Any]] = Setting(
        _imported("a function taking a user, or its dotted path"),
        "django_alipay.access.merchants_for_user",
        "Dotted path (or callable) giving the merchants a user may see and act on, in the admin and the REST "
        "API alike (queryset or ids).",
        cached=False,
    )

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> Mapping[str, Any]:
        """The ``ALIPAY`` dict as written ({} when absent or not a dict; a system check reports that)."""
        from django.conf import settings

        value = getattr(settings, SETTING_NAME, {})
        return value if isinstance(value, Mapping) else {}

    def value(self, name: str) -> Any:
        """The checked value of key ``name`` (:class:`AlipayConfigurationError` when it is wrong)."""
        setting = DEFAULTS[name]
        try:
            return self._cache[name]
        except KeyError:
            pass
        value = setting.convert(self.user_settings.get(name, setting.default))
        if setting.cached:
            self._cache[name] = value
        return value

    def problem(self, name: str) -> str | None:
        """What is wrong with key ``name``'s value, as a sentence naming it (None when it is right)."""
        from django_alipay.exceptions import AlipayConfigurationError

        try:
            self.value(name)
        except AlipayConfigurationError as exc:
            return str(exc)
        return None

    if not TYPE_CHECKING:  # mypy reports unknown names; at run time the error lists the known ones

        def __getattr__(self, name: str) -> Any:
            raise AttributeError(f"ALIPAY has no setting {name!r}; known settings: {', '.join(DEFAULTS)}")

    def reload(self) -> None:
        """Forget the cached values so the next access reads the settings again."""
        self._cache = {}


DEFAULTS: Final[Mapping[str, Setting[Any]]] = MappingProxyType(
    {name: value for name, value in vars(AppSettings).items() if isinstance(value, Setting)}
)


def close_matches(key: str) -> list[str]:
    """Known keys that look like ``key`` (for the unknown-key warning)."""
    return difflib.get_close_matches(key.upper() if isinstance(key, str) else str(key), list(DEFAULTS), n=3)


def unknown_keys(user: Mapping[str, Any]) -> list[str]:
    """Keys of the user's ``ALIPAY`` dict that are not in :data:`DEFAULTS`, sorted."""
    return sorted(str(key) for key in user if key not in DEFAULTS)


app_settings = AppSettings()


@receiver(setting_changed)
def _reload_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        app_settings.reload()
