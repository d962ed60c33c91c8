"""System checks that catch a wrong django_alipay setup at start-up instead of at the first payment.

Checks tagged ``database`` read the merchants; Django runs them with ``manage.py check --database default``
and before ``migrate``. They never fail because the tables do not exist yet. ``manage.py check --deploy``
adds what a reviewer flags before going live: a notify URL base that is not https, and (reading the default
database when ``--database`` is not given) active merchants on the emulator or Alipay's sandbox.

==========================  =======  =====================================================================
ID                          Tag      Problem
==========================  =======  =====================================================================
django_alipay.E001          config   ``ALIPAY`` is not a dict.
django_alipay.W001          config   ``ALIPAY`` has a key the app does not know (close matches are named).
django_alipay.E002          config   No Fernet key in ``ALIPAY["FERNET_KEYS"]``: secrets cannot be stored.
django_alipay.E003          config   A ``FERNET_KEYS`` entry is not a Fernet key.
django_alipay.E004          database A stored merchant secret cannot be decrypted with ``FERNET_KEYS``.
django_alipay.E005          config   A setting has a value of the wrong type or out of range.
django_alipay.W002          config   ``NOTIFY_VERIFY`` is off while ``DEBUG`` is False.
django_alipay.W003          database ``DEFAULT_MERCHANT`` names no merchant (or several).
django_alipay.E010          database A merchant lacks the key its sign type needs.
django_alipay.E011          database A merchant's MD5 key is not 32 letters and digits.
django_alipay.E012          database A merchant's private key cannot be loaded or does not suit its sign type.
django_alipay.E013          database A merchant's Alipay public key cannot be loaded or does not suit it.
django_alipay.E014          database A merchant's private key does not match its own public key.
django_alipay.E015          database The merchant's own public key is configured as Alipay's public key.
django_alipay.E016          database A merchant on Alipay's sandbox uses a sign type other than MD5.
django_alipay.E017          database A merchant's sign type is not in ``ALLOWED_SIGN_TYPES``.
django_alipay.E018          database A merchant on the emulator has no gateway URL.
django_alipay.W010          database An active merchant talks to Alipay's sandbox while ``DEBUG`` is False.
django_alipay.W011          database An active merchant talks to the emulator while ``DEBUG`` is False.
django_alipay.W012          deploy   ``NOTIFY_URL_BASE`` is not https while ``DEBUG`` is False.
django_alipay.E020          config   ``CELERY_ENABLED`` is True but Celery cannot be imported.
django_alipay.E021          config   ``API_ENABLED`` is True but DRF is missing or not in INSTALLED_APPS.
django_alipay.W013          config   'rest_framework' is installed but ``API_ENABLED`` is not set: no API.
django_alipay.E022          config   ``REFUND_DISPATCHER`` cannot be imported or is not callable.
==========================  =======  =====================================================================
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DEFAULT_DB_ALIAS, DatabaseError, transaction

from django_alipay.conf import DEFAULTS, SETTING_NAME, app_settings, close_matches, unknown_keys
from django_alipay.enums import Environment
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.protocol import dsa, keys, signing
from django_alipay.protocol.errors import AlipayError

__all__ = ["check_merchants", "check_optional_parts", "check_settings"]

SANDBOX_HOSTS = frozenset({"mapi.alipaydev.com"})
_MD5_KEY_LENGTH = 32


def _id(number: str) -> str:
    return f"django_alipay.{number}"


@register("django_alipay")
def check_settings(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Check the ``ALIPAY`` dict: its shape, unknown keys, Fernet keys and value types."""
    raw = getattr(settings, SETTING_NAME, {})
    if not isinstance(raw, dict):
        return [
            Error(
                f"settings.{SETTING_NAME} must be a dict, not {type(raw).__name__}.",
                hint="Write ALIPAY = {'FERNET_KEYS': [...], ...} in your settings.",
                id=_id("E001"),
            )
        ]
    messages: list[CheckMessage] = []
    for key in unknown_keys(raw):
        matches = close_matches(key)
        hint = f"Did you mean {' or '.join(matches)}?" if matches else "See the settings table in the docs."
        messages.append(
            Warning(f"ALIPAY[{key!r}] is not a django_alipay setting.", hint=hint, id=_id("W001"))
        )
    messages.extend(_check_fernet_keys(raw.get("FERNET_KEYS")))
    messages.extend(_check_values())
    if not _setting("NOTIFY_VERIFY", True) and not settings.DEBUG:
        messages.append(
            Warning(
                "ALIPAY['NOTIFY_VERIFY'] is off: notifications are trusted on their signature alone.",
                hint="notify_verify is the only defence against replayed notifications; turn it back on.",
                id=_id("W002"),
            )
        )
    return messages


def _check_fernet_keys(value: Any) -> list[CheckMessage]:
    if not value:
        return [
            Error(
                "ALIPAY['FERNET_KEYS'] is empty: merchant secrets cannot be encrypted or decrypted.",
                hint='Add a key made with: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())" (keep it out of version control).',
                id=_id("E002"),
            )
        ]
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return [
            Error(
                "ALIPAY['FERNET_KEYS'] must be a list of keys, newest first.",
                hint="Write FERNET_KEYS: [key] rather than FERNET_KEYS: key.",
                id=_id("E003"),
            )
        ]
    messages: list[CheckMessage] = []
    for position, key in enumerate(value):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            # The message names the position only, never the value.
            messages.append(
                Error(
                    f"ALIPAY['FERNET_KEYS'][{position}] is not a Fernet key (32 url-safe base64 bytes).",
                    hint="Generate keys with cryptography.fernet.Fernet.generate_key().",
                    id=_id("E003"),
                )
            )
    return messages


def _setting(name: str, fallback: Any) -> Any:
    """The checked value of key ``name``, or ``fallback`` when it is wrong (E005 or E022 says so)."""
    return fallback if app_settings.problem(name) else app_settings.value(name)


def _check_values() -> list[CheckMessage]:
    """E005 for every key whose value is not what it takes (the keys with checks of their own aside)."""
    messages: list[CheckMessage] = []
    for name, setting in DEFAULTS.items():
        problem = app_settings.problem(name) if setting.check == "E005" else None
        if problem:
            messages.append(Error(problem, hint=setting.description, id=_id("E005")))
    return messages


@register("django_alipay")
def check_optional_parts(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Check that the optional parts switched on have their dependencies, and that no emulator runs live."""
    messages: list[CheckMessage] = []
    if _setting("CELERY_ENABLED", False) and importlib.util.find_spec("celery") is None:
        messages.append(
            Error(
                "ALIPAY['CELERY_ENABLED'] is True but Celery is not installed.",
                hint="pip install celery, or set CELERY_ENABLED to False.",
                id=_id("E020"),
            )
        )
    api_enabled = _setting("API_ENABLED", False)
    if api_enabled and importlib.util.find_spec("rest_framework") is None:
        messages.append(
            Error(
                "ALIPAY['API_ENABLED'] is True but Django REST framework is not installed.",
                hint="pip install djangorestframework and add 'rest_framework' to INSTALLED_APPS.",
                id=_id("E021"),
            )
        )
    elif api_enabled and not apps.is_installed("rest_framework"):
        messages.append(
            Error(
                "ALIPAY['API_ENABLED'] is True and Django REST framework is installed, but 'rest_framework' "
                "is not in INSTALLED_APPS (the browsable API cannot render its pages).",
                hint="Add 'rest_framework' to INSTALLED_APPS.",
                id=_id("E021"),
            )
        )
    configured = getattr(settings, SETTING_NAME, None)
    if (
        isinstance(configured, dict)
        and "API_ENABLED" not in configured
        and apps.is_installed("rest_framework")
    ):
        # The API used to be mounted whenever DRF could be imported: an upgrade must not lose it silently.
        messages.append(
            Warning(
                "'rest_framework' is in INSTALLED_APPS but ALIPAY has no 'API_ENABLED': django_alipay.urls "
                "does not mount the REST API.",
                hint="Set ALIPAY['API_ENABLED'] = True to serve the API at api/ (it was mounted by default "
                "before), or False if you do not use it.",
                id=_id("W013"),
            )
        )
    problem = app_settings.problem("REFUND_DISPATCHER")
    if problem:
        messages.append(
            Error(problem, hint="Use a dotted path to a function taking a refund id.", id=_id("E022"))
        )
    return messages


@register(Tags.database)
def check_merchants(
    app_configs: Sequence[Any] | None = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Check every merchant's keys, sign type and gateway; silent when the tables do not exist yet."""
    if not databases:
        return []
    from django_alipay.models import Merchant

    messages: list[CheckMessage] = []
    for alias in databases:
        try:
            # A savepoint, so a missing table does not break a surrounding transaction (tests).
            with transaction.atomic(using=alias):
                merchants = list(Merchant.objects.using(alias).all())
                messages.extend(_check_default_merchant(alias))
        except DatabaseError:
            continue
        for merchant in merchants:
            messages.extend(_check_merchant(merchant))
    return messages


@register(Tags.security, deploy=True)
def check_deployment(
    app_configs: Sequence[Any] | None = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """``check --deploy``: a notify URL base that is not https, and live merchants on the emulator or sandbox.

    The merchants are read from the default database unless ``--database`` names some, in which case
    :func:`check_merchants` reports them already.
    """
    messages: list[CheckMessage] = []
    base = _setting("NOTIFY_URL_BASE", None)
    if not settings.DEBUG and isinstance(base, str) and urlsplit(base).scheme != "https":
        messages.append(
            Warning(
                f"ALIPAY['NOTIFY_URL_BASE'] is {base!r}, not https, while DEBUG is False.",
                hint=(
                    "Alipay posts every notification, with its signed payment data, to this URL: serve it "
                    "over https (and set NOTIFY_URL_BASE to the https address)."
                ),
                id=_id("W012"),
            )
        )
    if databases:
        return messages
    from django_alipay.models import Merchant

    try:
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            merchants = list(Merchant.objects.using(DEFAULT_DB_ALIAS).filter(is_active=True))
    except DatabaseError:
        return messages
    for merchant in merchants:
        messages.extend(_check_environment(merchant, f"Merchant {merchant.name!r}"))
    return messages


def _check_default_merchant(alias: str) -> list[CheckMessage]:
    from django_alipay.models import Merchant

    wanted = _setting("DEFAULT_MERCHANT", None)
    if not wanted:
        return []
    try:
        Merchant.objects.using(alias).get_default()
    except AlipayConfigurationError as exc:
        return [Warning(str(exc), hint="Set it to the name of one merchant.", id=_id("W003"))]
    return []


def _reveal(merchant: Any, field: str, messages: list[CheckMessage]) -> str | None:
    secret = getattr(merchant, field)
    if secret is None:
        return None
    try:
        return str(secret.reveal())
    except AlipayConfigurationError:
        messages.append(
            Error(
                f"Merchant {merchant.name!r}: the stored {field.replace('_', ' ')} cannot be decrypted with "
                "ALIPAY['FERNET_KEYS'].",
                hint="Put back the Fernet key that encrypted it (after the newest) and rotate the secrets.",
                obj=merchant,
                id=_id("E004"),
            )
        )
        return None


def _check_merchant(merchant: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    label = f"Merchant {merchant.name!r}"
    md5_key = _reveal(merchant, "md5_key", messages)
    private_key = _reveal(merchant, "private_key", messages)
    alipay_public = _reveal(merchant, "alipay_public_key", messages)
    sign_type = merchant.sign_type

    def error(number: str, message: str, hint: str) -> None:
        messages.append(Error(f"{label}: {message}", hint=hint, obj=merchant, id=_id(number)))

    if sign_type not in _setting("ALLOWED_SIGN_TYPES", signing.SIGN_TYPES):
        error("E017", f"sign type {sign_type} is not allowed.", "Change the sign type or ALLOWED_SIGN_TYPES.")
    if merchant.environment == Environment.SANDBOX and sign_type != "MD5":
        error("E016", f"Alipay's sandbox supports MD5 only, not {sign_type}.", "Use MD5 with the sandbox.")
    if merchant.environment == Environment.EMULATOR and not merchant.gateway_url:
        error(
            "E018", "the emulator needs a gateway URL.", "Enter the URL the emulator prints (…/gateway.do)."
        )

    if md5_key is not None and not (
        len(md5_key) == _MD5_KEY_LENGTH and md5_key.isascii() and md5_key.isalnum()
    ):
        error("E011", "the MD5 key is not 32 letters and digits.", "Copy it again from the Alipay portal.")
    private = _load(keys.load_private_key, private_key, sign_type)
    if isinstance(private, str):
        error("E012", f"the private key cannot be used: {private}", "Paste the PEM or generate a new pair.")
        private = None
    alipay_keys = [] if alipay_public is None else _split(alipay_public)
    loaded_alipay = []
    for key in alipay_keys:
        loaded = _load(keys.load_public_key, key, sign_type)
        if isinstance(loaded, str):
            error("E013", f"the Alipay public key cannot be used: {loaded}", "Paste Alipay's key again.")
        elif loaded is not None:
            loaded_alipay.append(loaded)

    if sign_type == "MD5" and md5_key is None:
        error("E010", "sign type MD5 needs an MD5 key.", "Enter the MD5 key from the Alipay portal.")
    if sign_type != "MD5":
        if private_key is None:
            error(
                "E010", f"sign type {sign_type} needs a private key.", "Run manage.py alipay_generate_keys."
            )
        if alipay_public is None:
            error(
                "E010", f"sign type {sign_type} needs Alipay's public key.", "Paste the key Alipay gave you."
            )

    if private is not None and merchant.public_key:
        own = _load(keys.load_public_key, merchant.public_key, None)
        if isinstance(own, str) or (own is not None and not keys.is_key_pair(private, own)):
            error(
                "E014",
                "the private key does not match the merchant public key on record.",
                "Submit the public key of this private key to Alipay, or restore the matching private key.",
            )
    if private is not None:
        for loaded in loaded_alipay:
            if keys.is_own_public_key(loaded, private):
                error(
                    "E015",
                    "the Alipay public key is the merchant's own public key.",
                    "Paste the public key Alipay gave you, not the one you submitted to Alipay.",
                )

    messages.extend(_check_environment(merchant, label))
    return messages


def _check_environment(merchant: Any, label: str) -> list[CheckMessage]:
    """W011 and W010: an active merchant on the emulator or on Alipay's sandbox while DEBUG is False."""
    messages: list[CheckMessage] = []
    if merchant.is_active and not settings.DEBUG:
        try:
            host = urlsplit(merchant.resolved_gateway_url()).hostname or ""
        except AlipayConfigurationError:
            host = ""
        if merchant.environment == Environment.EMULATOR:
            messages.append(
                Warning(
                    f"{label} talks to the emulator while DEBUG is False.",
                    hint="Point production merchants at Alipay, or deactivate this one.",
                    obj=merchant,
                    id=_id("W011"),
                )
            )
        elif merchant.environment == Environment.SANDBOX or host in SANDBOX_HOSTS:
            messages.append(
                Warning(
                    f"{label} talks to Alipay's sandbox while DEBUG is False.",
                    hint="Switch it to production, or deactivate it.",
                    obj=merchant,
                    id=_id("W010"),
                )
            )
    return messages


def _split(text: str) -> list[str]:
    from django_alipay.models.merchant import split_public_keys

    return split_public_keys(text)


def _load(loader: Any, material: str | None, sign_type: str | None) -> Any:
    """The loaded key, None when absent, or a message (str) saying why it cannot be used."""
    if material is None:
        return None
    try:
        key = loader(material)
    except AlipayError as exc:
        return exc.message
    if sign_type in ("RSA", "RSA2", "DSA"):
        is_dsa = isinstance(key, dsa.DSAPrivateKey | dsa.DSAPublicKey)
        if (sign_type == "DSA") != is_dsa:
            return f"sign type {sign_type} needs {'a DSA' if sign_type == 'DSA' else 'an RSA'} key"
    return key
