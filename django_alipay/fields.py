"""A model field that keeps secrets (MD5 keys, private keys) encrypted at rest with Fernet / MultiFernet.

The database column holds only the Fernet token. In Python the value is a :class:`Secret`, which never shows
its plaintext in ``repr``, ``str``, f-strings, logs or pickles: code that needs the key calls
:meth:`Secret.reveal`. Decryption is lazy, so a row whose secret cannot be decrypted (a Fernet key was
removed too early) still loads, and only the code that needs the secret fails, with
:class:`~django_alipay.exceptions.AlipayConfigurationError`.

Keys come from ``ALIPAY["FERNET_KEYS"]``, newest first: the first one encrypts, every one decrypts. To rotate,
put a new key first, run :func:`rotate_token` over the stored tokens (``Merchant.objects.rotate_secrets()``),
then remove the old key.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.db import models
from django.db.models.query_utils import DeferredAttribute

from django_alipay.conf import app_settings
from django_alipay.exceptions import AlipayConfigurationError

__all__ = [
    "EncryptedTextField",
    "Secret",
    "decrypt",
    "encrypt",
    "fernet_keys",
    "rotate_token",
]

MASK: Final = "••••"
# Marks a token in dumpdata/loaddata output, so that loading it back does not encrypt the token a second time.
SERIALIZED_PREFIX: Final = "fernet:"

_lock = threading.Lock()
_cache: dict[tuple[str, ...], MultiFernet] = {}


def fernet_keys() -> list[str]:
    """The configured Fernet keys as strings, newest first ([] when none)."""
    return list(app_settings.FERNET_KEYS)


def _multi_fernet() -> MultiFernet:
    keys = tuple(fernet_keys())
    if not keys:
        raise AlipayConfigurationError(
            "ALIPAY['FERNET_KEYS'] is empty: django_alipay needs at least one Fernet key to store merchant "
            "secrets. Generate one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        )
    with _lock:
        cached = _cache.get(keys)
        if cached is None:
            try:
                cached = MultiFernet([Fernet(key) for key in keys])
            except (ValueError, TypeError) as exc:
                # The message never quotes a key.
                raise AlipayConfigurationError(
                    "ALIPAY['FERNET_KEYS'] holds a value that is not a Fernet key (32 url-safe base64 bytes)"
                ) from exc
            _cache.clear()
            _cache[keys] = cached
        return cached


def encrypt(plaintext: str) -> str:
    """Encrypt ``plaintext`` with the newest Fernet key; returns the token as text."""
    return _multi_fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    """Decrypt a token with any configured Fernet key; AlipayConfigurationError when none can."""
    try:
        return _multi_fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError) as exc:
        raise AlipayConfigurationError(
            "a stored merchant secret cannot be decrypted with ALIPAY['FERNET_KEYS']: was the key that "
            "encrypted it removed? Put it back (after the newest key) and run the secret rotation."
        ) from exc


def rotate_token(token: str) -> str:
    """Re-encrypt a token under the newest key (MultiFernet.rotate); AlipayConfigurationError if it cannot."""
    try:
        return _multi_fernet().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError) as exc:
        raise AlipayConfigurationError(
            "a stored merchant secret cannot be decrypted with ALIPAY['FERNET_KEYS'], so it cannot be rotated"
        ) from exc


class Secret:
    """A secret value that does not leak: ``repr``/``str`` say ``<Secret>``, pickles carry only the token.

    Built from plaintext (a value just entered) or from a Fernet token (a value loaded from the database).
    """

    __slots__ = ("_plaintext", "_token")

    def __init__(self, plaintext: str | None = None, *, token: str | None = None) -> None:
        if plaintext is None and token is None:
            raise ValueError("a Secret needs a plaintext or a token")
        self._plaintext = plaintext
        self._token = token

    @classmethod
    def from_token(cls, token: str) -> Secret:
        """A secret known by its stored Fernet token; decrypted only when revealed."""
        return cls(token=token)

    def reveal(self) -> str:
        """The plaintext. Call it only where the key is used; never log the result."""
        if self._plaintext is None:
            assert self._token is not None
            self._plaintext = decrypt(self._token)
        return self._plaintext

    def token(self) -> str:
        """The Fernet token stored in the database (encrypting the plaintext on first use)."""
        if self._token is None:
            assert self._plaintext is not None
            self._token = encrypt(self._plaintext)
        return self._token

    @property
    def is_decryptable(self) -> bool:
        """Whether the configured keys can decrypt this secret."""
        try:
            self.reveal()
        except AlipayConfigurationError:
            return False
        return True

    @property
    def fingerprint(self) -> str:
        """``SHA256:`` and the first 16 hex digits of the SHA-256 of the plaintext: safe to show and log."""
        return "SHA256:" + hashlib.sha256(self.reveal().encode("utf-8")).hexdigest()[:16]

    @property
    def masked(self) -> str:
        """``••••`` and the last four characters: enough for a person to recognise a short key."""
        try:
            text = self.reveal().strip()
        except AlipayConfigurationError:
            return MASK + " (cannot be decrypted)"
        # A PEM's last characters are its footer; its fingerprint tells keys apart instead.
        if "-----" in text or len(text) > 64:
            return MASK + self.fingerprint[-4:]
        return MASK + text[-4:] if len(text) >= 16 else MASK

    def __repr__(self) -> str:
        return "<Secret>"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        if self._token is not None and self._token == other._token:
            return True
        try:
            return self.reveal() == other.reveal()
        except AlipayConfigurationError:
            return False

    __hash__ = None  # type: ignore[assignment]  # equal secrets can have different tokens

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles (cache, task arguments, session data) carry the token, never the plaintext.
        return (Secret.from_token, (self.token(),))


class _SecretAttribute(DeferredAttribute):
    """Turns whatever is assigned to the field (a str, a token, None) into a Secret or None at once."""

    field: EncryptedTextField

    def __set__(self, instance: models.Model, value: Any) -> None:
        instance.__dict__[self.field.attname] = self.field.to_python(value)


class EncryptedTextField(models.TextField):
    """A TextField whose column holds a Fernet token and whose Python value is a :class:`Secret` or None.

    Empty strings are stored as NULL (``null=True`` by default). Only ``isnull`` lookups exist: tokens are
    randomised, so comparing them to a value can never match and would only invite mistakes.
    """

    description = "A secret encrypted at rest with Fernet"
    descriptor_class = _SecretAttribute

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        # Keep migrations stable whatever the defaults become.
        kwargs["null"] = self.null
        kwargs["blank"] = self.blank
        return name, path, args, kwargs

    def to_python(self, value: Any) -> Secret | None:
        if value is None or value == "":
            return None
        if isinstance(value, Secret):
            return value
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if isinstance(value, str) and value.startswith(SERIALIZED_PREFIX):
            return Secret.from_token(value[len(SERIALIZED_PREFIX) :])
        return Secret(str(value))

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Secret | None:
        if value is None or value == "":
            return None
        return Secret.from_token(value)

    def get_prep_value(self, value: Any) -> str | None:
        secret = self.to_python(value)
        return None if secret is None else secret.token()

    def value_to_string(self, obj: models.Model) -> str:
        secret = self.to_python(self.value_from_object(obj))
        return "" if secret is None else SERIALIZED_PREFIX + secret.token()

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name != "isnull":
            return None
        return super().get_lookup(lookup_name)

    def formfield(self, **kwargs: Any) -> Any:
        # Write-only: the form never shows the stored secret, and an empty input keeps it (save_form_data).
        from django import forms

        defaults: dict[str, Any] = {"widget": forms.PasswordInput(render_value=False), "required": False}
        defaults.update(kwargs)
        return super().formfield(**defaults)

    def save_form_data(self, instance: models.Model, data: Any) -> None:
        if data in (None, ""):
            return
        super().save_form_data(instance, data)
