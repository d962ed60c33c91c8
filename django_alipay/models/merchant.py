"""The Merchant model: one Alipay partner account with its gateway, sign type and encrypted credentials."""

from __future__ import annotations

import re
import secrets
from typing import Any, Final

from django.core.validators import RegexValidator
from django.db import models, transaction
from django.db.models.functions import Cast
from django.utils.translation import gettext_lazy as _

from django_alipay.conf import app_settings
from django_alipay.enums import SIGN_TYPE_CHOICES, Charset, Environment
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.fields import EncryptedTextField, Secret, rotate_token
from django_alipay.protocol import keys
from django_alipay.protocol.errors import KeyFormatError

__all__ = [
    "ENCRYPTED_FIELDS",
    "NOTIFY_VERIFY_GATEWAY",
    "PRODUCTION_INSTORE_GATEWAY",
    "PRODUCTION_ONLINE_GATEWAY",
    "SANDBOX_GATEWAY",
    "Merchant",
    "MerchantQuerySet",
    "new_notify_token",
    "split_public_keys",
]

PARTNER_PATTERN: Final = r"^2088[0-9]{12}$"
#: Online services in production (create_forex_trade, forex_refund, single_trade_query).
PRODUCTION_ONLINE_GATEWAY: Final = "https://intlmapi.alipay.com/gateway.do"
#: In-store services in production (spot pay, precreate, query, refund, cancel); intlmapi is the backup.
PRODUCTION_INSTORE_GATEWAY: Final = "https://globalmapi.alipay.com/gateway.do"
#: Alipay's sandbox, for every service; it signs with MD5 only.
SANDBOX_GATEWAY: Final = "https://mapi.alipaydev.com/gateway.do"
#: Where notify_verify is asked in production: every reference (Alipay's demos, the SDKs) sends a GET here.
NOTIFY_VERIFY_GATEWAY: Final = "https://mapi.alipay.com/gateway.do"
#: The model fields that hold secrets (encrypted at rest).
ENCRYPTED_FIELDS: Final = ("md5_key", "private_key", "alipay_public_key")

_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?-----END [A-Z0-9 ]+-----", re.DOTALL)


def new_notify_token() -> str:
    """A random, URL-safe token naming a merchant in its notify URL (256 bits)."""
    return secrets.token_urlsafe(32)


def split_public_keys(text: str) -> list[str]:
    """Split the Alipay public key setting into its keys: several PEM blocks, or one Base64 key per line.

    More than one key is accepted during a rotation by Alipay: a signature verifying with any of them counts.
    """
    text = text.strip()
    if not text:
        return []
    if "-----BEGIN" in text:
        return _PEM_BLOCK.findall(text) or [text]
    return [line.strip() for line in text.splitlines() if line.strip()]


class MerchantQuerySet(models.QuerySet["Merchant"]):
    """Queries over merchants."""

    def active(self) -> MerchantQuerySet:
        """Merchants that may take payments."""
        return self.filter(is_active=True)

    def get_default(self) -> Merchant:
        """The merchant named by ``ALIPAY["DEFAULT_MERCHANT"]`` (name or partner), or the only active one."""
        wanted = app_settings.DEFAULT_MERCHANT
        if wanted:
            found = list(self.filter(models.Q(name=wanted) | models.Q(partner=wanted))[:2])
            if len(found) != 1:
                raise AlipayConfigurationError(
                    f"ALIPAY['DEFAULT_MERCHANT'] = {wanted!r} names {len(found) or 'no'} merchants; "
                    "use a unique merchant name"
                )
            return found[0]
        active = list(self.active()[:2])
        if len(active) != 1:
            raise AlipayConfigurationError(
                "no merchant was named and there is not exactly one active merchant: "
                "set ALIPAY['DEFAULT_MERCHANT']"
            )
        return active[0]

    def rotate_secrets(self) -> int:
        """Re-encrypt the stored secrets of these merchants under the newest Fernet key; returns rows changed.

        Runs in one transaction with the rows locked, so a crash leaves either all old or all new tokens.
        Tokens are rotated as tokens: the plaintext is never built into a query or a log.
        """
        changed = 0
        raw_columns = {
            f"_raw_{name}": Cast(name, output_field=models.TextField()) for name in ENCRYPTED_FIELDS
        }
        with transaction.atomic():
            rows = self.select_for_update().annotate(**raw_columns).values("pk", *raw_columns)
            for row in rows:
                updates: dict[str, Any] = {}
                for name in ENCRYPTED_FIELDS:
                    token = row[f"_raw_{name}"]
                    if token:
                        updates[name] = Secret.from_token(rotate_token(token))
                if updates:
                    Merchant.objects.filter(pk=row["pk"]).update(**updates)
                    changed += 1
        return changed


class Merchant(models.Model):
    """An Alipay partner account: where to send requests, how to sign them, and the keys to do it."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    partner = models.CharField(
        _("partner ID"),
        max_length=16,
        validators=[RegexValidator(PARTNER_PATTERN, _("A partner ID is 16 digits starting with 2088."))],
        help_text=_("16 digits starting with 2088, from the Alipay portal."),
    )
    environment = models.CharField(
        _("environment"), max_length=16, choices=Environment.choices, default=Environment.SANDBOX
    )
    gateway_url = models.URLField(
        _("gateway URL"),
        blank=True,
        help_text=_("Leave empty for the environment's gateway; required for the emulator."),
    )
    instore_gateway_url = models.URLField(
        _("in-store gateway URL"),
        blank=True,
        help_text=_("Gateway for in-store services; empty: the environment's (or the gateway URL above)."),
    )
    notify_verify_url = models.URLField(
        _("notify_verify URL"),
        blank=True,
        help_text=_(
            "Where notifications are confirmed (notify_verify); empty: https://mapi.alipay.com/gateway.do in "
            "production, as every reference shows, else the gateway URL."
        ),
    )
    notify_verify_method = models.CharField(
        _("notify_verify method"),
        max_length=4,
        choices=(("GET", "GET"), ("POST", "POST")),
        default="GET",
        help_text=_("GET, as every reference sends notify_verify; POST only if Alipay asks you to."),
    )
    sign_type = models.CharField(_("sign type"), max_length=8, choices=SIGN_TYPE_CHOICES, default="MD5")
    charset = models.CharField(_("charset"), max_length=8, choices=Charset.choices, default=Charset.UTF8)
    md5_key = EncryptedTextField(_("MD5 key"), help_text=_("32 letters and digits from the Alipay portal."))
    private_key = EncryptedTextField(
        _("merchant private key"), help_text=_("RSA/DSA private key (PEM or one-line Base64).")
    )
    alipay_public_key = EncryptedTextField(
        _("Alipay public key"),
        help_text=_("Alipay's public key; several (one per line or PEM block) during a rotation."),
    )
    public_key = models.TextField(
        _("merchant public key"),
        blank=True,
        help_text=_("The merchant's own public key as submitted to Alipay (for reference and checks)."),
    )
    currency = models.CharField(
        _("settlement currency"),
        max_length=3,
        default="USD",
        validators=[RegexValidator(r"^[A-Z]{3}$", _("Three uppercase letters, such as USD."))],
    )
    is_active = models.BooleanField(_("active"), default=True)
    notify_token = models.CharField(
        _("notify URL token"), max_length=64, unique=True, default=new_notify_token, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MerchantQuerySet.as_manager()

    class Meta:
        verbose_name = _("merchant")
        verbose_name_plural = _("merchants")
        ordering = ("name",)
        constraints = (
            models.UniqueConstraint(
                fields=("partner", "environment"), name="django_alipay_merchant_partner_env"
            ),
            models.CheckConstraint(
                condition=models.Q(partner__regex=PARTNER_PATTERN),
                name="django_alipay_merchant_partner_format",
            ),
        )

    def __str__(self) -> str:
        return f"{self.name} ({self.partner}, {self.environment})"

    def __repr__(self) -> str:
        # Secrets are deliberately absent; the default repr would be safe too, but this one is useful.
        return (
            f"<Merchant id={self.pk} name={self.name!r} partner={self.partner} "
            f"environment={self.environment} sign_type={self.sign_type}>"
        )

    # --- gateway ------------------------------------------------------------------------------------------

    def resolved_gateway_url(self, *, instore: bool = False) -> str:
        """The gateway URL requests go to, for online or in-store services."""
        if instore and self.instore_gateway_url:
            return self.instore_gateway_url
        if self.gateway_url:
            return self.gateway_url
        if self.environment == Environment.PRODUCTION:
            return PRODUCTION_INSTORE_GATEWAY if instore else PRODUCTION_ONLINE_GATEWAY
        if self.environment == Environment.SANDBOX:
            return SANDBOX_GATEWAY
        raise AlipayConfigurationError(f"merchant {self.name!r} uses the emulator but has no gateway URL")

    def resolved_notify_verify_url(self) -> str:
        """Where notify_verify is asked: the merchant's own setting, mapi in production, else the gateway."""
        if self.notify_verify_url:
            return self.notify_verify_url
        if self.environment == Environment.PRODUCTION and not self.gateway_url:
            return NOTIFY_VERIFY_GATEWAY
        return self.resolved_gateway_url()

    def notify_url(self) -> str | None:
        """The merchant's absolute notify URL, from ``ALIPAY["NOTIFY_URL_BASE"]`` (None if that is unset)."""
        base = app_settings.NOTIFY_URL_BASE
        if not base:
            return None
        return f"{base.rstrip('/')}/{self.notify_token}/"

    def regenerate_notify_token(self) -> str:
        """Give the merchant a new notify token (the old notify URL stops working); returns it."""
        self.notify_token = new_notify_token()
        self.save(update_fields=["notify_token", "updated_at"])
        return self.notify_token

    # --- keys ---------------------------------------------------------------------------------------------

    def _require(self, field: str, label: str) -> str:
        secret = getattr(self, field)
        if secret is None:
            raise AlipayConfigurationError(
                f"merchant {self.name!r} signs with {self.sign_type} but has no {label}"
            )
        assert isinstance(secret, Secret)
        return secret.reveal()

    def signing_key(self) -> str:
        """The key requests are signed with: the MD5 key, or the merchant's private key."""
        if self.sign_type == "MD5":
            return self._require("md5_key", "MD5 key")
        return self._require("private_key", "private key")

    def verification_keys(self) -> list[str]:
        """The keys Alipay's signatures are checked with: the MD5 key, or Alipay's public key(s)."""
        if self.sign_type == "MD5":
            return [self._require("md5_key", "MD5 key")]
        found = split_public_keys(self._require("alipay_public_key", "Alipay public key"))
        if not found:
            raise AlipayConfigurationError(f"merchant {self.name!r} has an empty Alipay public key")
        return found

    def masked(self, field: str) -> str:
        """A display of a secret field that hides it: ``••••1a2b`` (or "" when the field is empty)."""
        if field not in ENCRYPTED_FIELDS:
            raise ValueError(f"{field!r} is not a secret field of Merchant")
        secret = getattr(self, field)
        return "" if secret is None else secret.masked

    def fingerprint(self, field: str) -> str:
        """A safe identifier of a secret: a key's SHA-256 fingerprint, or a hash prefix of the MD5 key."""
        if field not in ENCRYPTED_FIELDS:
            raise ValueError(f"{field!r} is not a secret field of Merchant")
        secret: Secret | None = getattr(self, field)
        if secret is None:
            return ""
        if field == "md5_key":
            return secret.fingerprint
        try:
            return ", ".join(keys.fingerprint(key) for key in split_public_keys(secret.reveal()))
        except (KeyFormatError, AlipayConfigurationError):
            return "(unreadable key)"
