"""The app's settings: one ``ALIPAY = {...}`` dict, read lazily through ``app_settings``, documented defaults.

Shops configure django_alipay with a single dict in their settings module::

    ALIPAY = {
        "FERNET_KEYS": [env("ALIPAY_FERNET_KEY")],
        "REFUND_WINDOW_DAYS": 90,
    }

Every key is optional except ``FERNET_KEYS`` (a system check says so). Values are read from
``django.conf.settings`` the first time they are asked for, never at import time, and the cache is dropped
when a test changes ``ALIPAY`` with ``override_settings``. Unknown keys are reported by the system check
``django_alipay.W001``. :data:`DEFAULTS` is the one table of keys: the documentation is generated from it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from django.core.signals import setting_changed
from django.dispatch import receiver

__all__ = ["DEFAULTS", "AppSettings", "Setting", "app_settings", "close_matches", "unknown_keys"]

SETTING_NAME: Final = "ALIPAY"


@dataclass(frozen=True)
class Setting:
    """One key of the ``ALIPAY`` dict: its default and a one-line description for the docs."""

    default: Any
    description: str


DEFAULTS: Final[Mapping[str, Setting]] = {
    "DEFAULT_MERCHANT": Setting(
        None, "Name or partner ID of the merchant used when code does not name one (None: no default)."
    ),
    "FERNET_KEYS": Setting(
        [],
        "Fernet keys encrypting merchant secrets at rest, newest first: the first encrypts, all decrypt.",
    ),
    "REFUND_WINDOW_DAYS": Setting(
        None,
        "Days after payment during which refunds are accepted (None: no local limit; Alipay's applies).",
    ),
    "NOTIFY_VERIFY": Setting(
        True, "Ask Alipay (service notify_verify) whether a notification is genuine before acting on it."
    ),
    "NOTIFY_VERIFY_TIMEOUT": Setting(
        5, "Seconds allowed for notify_verify in total; past it the notification is answered 503 and retried."
    ),
    "ALLOWED_SIGN_TYPES": Setting(
        ["MD5", "RSA", "RSA2", "DSA"],
        "Sign types a merchant may be configured with; a notification must use its merchant's own one.",
    ),
    "ACKNOWLEDGEMENT": Setting(
        "success", "Body answered to a notification once it is safely processed (Alipay stops retrying)."
    ),
    "FAILURE_RESPONSE": Setting(
        "fail", "Body answered to a notification that is refused or must be retried."
    ),
    "NOTIFY_MAX_BODY_BYTES": Setting(
        65536, "Largest notification body stored and parsed; larger ones are refused with metadata only."
    ),
    "UNKNOWN_TOKEN_ROWS_PER_MINUTE": Setting(
        60,
        "Requests to a notify or return URL of no merchant stored per minute (a fingerprint each: size and "
        "SHA-256, not the body); past it they are answered without a row (shared through the cache).",
    ),
    "NOTIFY_MAX_IN_FLIGHT": Setting(
        None,
        "Notifications one process works on at once; past it they are answered 503 at once and Alipay "
        "resends them later (None: no limit).",
    ),
    "NOTIFY_URL_BASE": Setting(
        None,
        "Absolute URL the per-merchant notify token is appended to, e.g. https://shop.example/alipay/notify/.",
    ),
    "RETURN_URL": Setting(None, "Absolute URL Alipay's cashier sends the buyer back to (None: none sent)."),
    "RETURN_REDIRECT": Setting(
        None,
        "Shop page (URL name, path or URL) the return view sends the buyer on to, with out_trade_no and "
        "status added (None: the app's own page).",
    ),
    "HTTP_CONNECT_TIMEOUT": Setting(5, "Seconds to open a connection to the gateway."),
    "HTTP_READ_TIMEOUT": Setting(15, "Seconds to wait for each read from the gateway."),
    "HTTP_TOTAL_TIMEOUT": Setting(
        30, "Seconds a whole gateway call may take, however slowly bytes trickle in."
    ),
    "REFUND_SYNC": Setting(
        True,
        "Ask for synchronous refund results (is_sync=Y), except 00:00-01:30 Beijing time when Alipay defers.",
    ),
    "REFUND_SPACING": Setting(
        3, "Seconds kept between two refund calls of one partner (Alipay asks for at least 3)."
    ),
    "REFUND_MAX_WAIT": Setting(
        10,
        "Seconds a refund sent in the request may wait for the refund spacing; past it the refund stays "
        "requested and reconciliation sends it (None: wait as long as it takes).",
    ),
    "REFUND_DISPATCHER": Setting(
        "django_alipay.domain.refunds.submit",
        "Dotted path (or callable) run on commit with a refund id to send it; the default sends it at once.",
    ),
    "REVERSE_SERVICE": Setting(
        "cancel", "Service used to REVERSE in-store payments: 'cancel' (acquire.cancel) or 'spot_reverse'."
    ),
    "RECONCILE_TRADE_AGE": Setting(
        900, "Seconds an unpaid trade stays untouched before reconciliation queries it."
    ),
    "RECONCILE_REFUND_AGE": Setting(
        300, "Seconds a refund may stay requested, submitted or unknown before reconciliation resolves it."
    ),
    "STRANDED_REFUND_AFTER": Setting(
        30,
        "Seconds a requested (or claimed, unanswered) refund may go without a task due for it before the "
        "sweeper (sweep_stranded_refunds) hands it to a task again.",
    ),
    "RECONCILE_MAX_AGE_DAYS": Setting(
        7, "Trades older than this many days are no longer queried while unpaid."
    ),
    "RECONCILE_BATCH_SIZE": Setting(100, "Rows loaded and queried per batch by reconciliation."),
    "TASK_QUEUE": Setting("alipay", "Celery queue for notification follow-ups and reconciliation tasks."),
    "REFUND_TASK_QUEUE": Setting(
        "alipay_refunds", "Celery queue for refund calls (the 3 s spacing holds across all workers)."
    ),
    "CELERY_ENABLED": Setting(False, "Whether the Celery tasks are in use (then Celery must be installed)."),
    "API_ENABLED": Setting(
        False, "Whether the REST API is in use (then Django REST framework must be installed)."
    ),
    "API_PERMISSION_CLASSES": Setting(
        ["rest_framework.permissions.IsAdminUser"],
        "DRF permission classes (dotted paths or classes) every REST API request must pass; default: staff.",
    ),
    "API_MERCHANTS_FOR_USER": Setting(
        "django_alipay.access.merchants_for_user",
        "Dotted path (or callable) giving the merchants a user may see and act on, in the admin and the REST "
        "API alike (queryset or ids).",
    ),
}


def close_matches(key: str) -> list[str]:
    """Known keys that look like ``key`` (for the unknown-key warning)."""
    return difflib.get_close_matches(key.upper() if isinstance(key, str) else str(key), list(DEFAULTS), n=3)


def unknown_keys(user: Mapping[str, Any]) -> list[str]:
    """Keys of the user's ``ALIPAY`` dict that are not in :data:`DEFAULTS`, sorted."""
    return sorted(str(key) for key in user if key not in DEFAULTS)


class AppSettings:
    """Attribute access to the ``ALIPAY`` dict merged over :data:`DEFAULTS`, read on first use."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None

    @property
    def user_settings(self) -> Mapping[str, Any]:
        """The ``ALIPAY`` dict as written ({} when absent or not a dict; a system check reports that)."""
        from django.conf import settings

        value = getattr(settings, SETTING_NAME, {})
        return value if isinstance(value, Mapping) else {}

    def _merged(self) -> dict[str, Any]:
        if self._cache is None:
            user = self.user_settings
            self._cache = {key: user.get(key, setting.default) for key, setting in DEFAULTS.items()}
        return self._cache

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"ALIPAY has no setting {name!r}; known settings: {', '.join(DEFAULTS)}")
        return self._merged()[name]

    def reload(self) -> None:
        """Forget the cached values so the next access reads the settings again."""
        self._cache = None


app_settings = AppSettings()


@receiver(setting_changed)
def _reload_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        app_settings.reload()
