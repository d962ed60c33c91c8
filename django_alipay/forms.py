"""Forms of the admin: merchant credentials (write-only secrets) and the refund amount and reason."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any, ClassVar

from django import forms
from django.db import models
from django.utils.translation import gettext_lazy as _

from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.models import Merchant
from django_alipay.models.merchant import ENCRYPTED_FIELDS, split_public_keys
from django_alipay.protocol import keys, money
from django_alipay.protocol.errors import AmountError, KeyFormatError

__all__ = ["BulkReasonForm", "MerchantAdminForm", "RefundForm", "new_form_key"]


def new_form_key() -> str:
    """An idempotency key for one rendering of a form: submitting it twice sends one refund."""
    return "admin-" + secrets.token_hex(16)


def _stored_note(merchant: Merchant | None, field: str) -> str:
    if merchant is None or merchant.pk is None or getattr(merchant, field) is None:
        return str(_("Not set."))
    try:
        print_ = merchant.fingerprint(field)
    except AlipayConfigurationError:
        print_ = str(_("cannot be decrypted with ALIPAY['FERNET_KEYS']"))
    return str(
        _("Stored: %(masked)s · %(fingerprint)s. Leave empty to keep it; type a new value to replace it.")
    ) % {
        "masked": merchant.masked(field),
        "fingerprint": print_,
    }


def _formfield(db_field: models.Field[Any, Any], **kwargs: Any) -> forms.Field | None:
    """Model fields as form fields; gateway URLs typed without a scheme are read as https://."""
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


class MerchantAdminForm(forms.ModelForm):
    """A merchant with its secrets write-only: never shown back, kept when left empty, checked when typed.

    The checks are the ones a shop owner trips over: an MD5 key of the wrong shape, a key that cannot be read,
    Alipay's public key field holding the merchant's own public key, a private key that is not the pair of
    the public key on record, and the keys a sign type needs.
    """

    class Meta:
        model = Merchant
        formfield_callback = _formfield
        fields = (
            "name",
            "partner",
            "environment",
            "gateway_url",
            "instore_gateway_url",
            "notify_verify_url",
            "notify_verify_method",
            "sign_type",
            "charset",
            "currency",
            "is_active",
            "md5_key",
            "private_key",
            "alipay_public_key",
            "public_key",
        )
        widgets: ClassVar[dict[str, forms.Widget]] = {
            "public_key": forms.Textarea(attrs={"rows": 4, "spellcheck": "false"})
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        base_help = {
            "md5_key": _("32 letters and digits, from the Alipay portal."),
            "private_key": _("Your RSA or DSA private key (PEM or one-line Base64)."),
            "alipay_public_key": _(
                "Alipay's public key from the portal; during a rotation, paste both (PEM blocks or Base64)."
            ),
        }
        for name in ENCRYPTED_FIELDS:
            field = self.fields.get(name)
            if field is None:  # a view-only page: the admin shows the masked key instead (MerchantAdmin)
                continue
            field.widget = forms.PasswordInput(
                render_value=False, attrs={"autocomplete": "new-password", "spellcheck": "false", "size": 60}
            )
            field.required = False
            field.strip = True  # type: ignore[attr-defined]
            field.help_text = f"{base_help[name]} {_stored_note(self.instance, name)}"
        method = self.fields.get("notify_verify_method")
        if method is not None:  # absent on a view-only page, like every field
            method.required = False

    # --- one field at a time ------------------------------------------------------------------------------

    def clean_notify_verify_method(self) -> str:
        # Left out of a form (an older template, a script), it is what every reference sends.
        value: str = self.cleaned_data.get("notify_verify_method") or "GET"
        return value

    def clean_md5_key(self) -> str:
        value: str = self.cleaned_data.get("md5_key") or ""
        if value and not (len(value) == 32 and value.isascii() and value.isalnum()):
            raise forms.ValidationError(
                _("An MD5 key is exactly 32 letters and digits, as the portal shows it.")
            )
        return value

    def clean_private_key(self) -> str:
        value: str = self.cleaned_data.get("private_key") or ""
        if value:
            try:
                keys.load_private_key(value)
            except KeyFormatError as exc:
                raise forms.ValidationError(exc.message) from None
        return value

    def clean_alipay_public_key(self) -> str:
        value: str = self.cleaned_data.get("alipay_public_key") or ""
        if not value:
            return value
        if "-----BEGIN" not in value:
            # A password box drops line breaks: Base64 keys pasted one per line arrive space-separated.
            value = "\n".join(value.split())
        for text in split_public_keys(value):
            try:
                keys.load_public_key(text)
            except KeyFormatError as exc:
                raise forms.ValidationError(exc.message) from None
        return value

    def clean_public_key(self) -> str:
        value: str = (self.cleaned_data.get("public_key") or "").strip()
        if value:
            try:
                keys.load_public_key(value)
            except KeyFormatError as exc:
                raise forms.ValidationError(exc.message) from None
        return value

    # --- together -----------------------------------------------------------------------------------------

    def _effective(self, name: str) -> str:
        """The value the merchant will have: the one typed, else the stored one ("" when neither)."""
        typed = self.cleaned_data.get(name)
        if typed:
            return str(typed)
        stored = getattr(self.instance, name, None) if self.instance.pk else None
        if stored is None:
            return ""
        try:
            return str(stored.reveal())
        except AlipayConfigurationError:
            return ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        sign_type = cleaned.get("sign_type") or self.instance.sign_type
        private = self._effective("private_key")
        alipay = self._effective("alipay_public_key")
        if sign_type == "MD5" and not self._effective("md5_key"):
            self.add_error("md5_key", _("Sign type MD5 needs the MD5 key from the Alipay portal."))
        if sign_type != "MD5":
            if not private:
                self.add_error("private_key", _("Sign type %(t)s needs your private key.") % {"t": sign_type})
            if not alipay:
                self.add_error(
                    "alipay_public_key", _("Sign type %(t)s needs Alipay's public key.") % {"t": sign_type}
                )
        if not private:
            return cleaned
        try:
            private_key = keys.load_private_key(private)
            alipay_keys = [keys.load_public_key(text) for text in split_public_keys(alipay)]
        except KeyFormatError:
            return cleaned  # a stored key that no longer loads: reported by the system check
        if any(keys.is_own_public_key(key, private_key) for key in alipay_keys):
            self.add_error(
                "alipay_public_key",
                _(
                    "This is your own public key (the one you gave Alipay), not Alipay's. Paste the key the "
                    "portal shows as Alipay's public key."
                ),
            )
        recorded = cleaned.get("public_key") or ""
        if recorded and not keys.is_key_pair(private_key, keys.load_public_key(recorded)):
            self.add_error(
                "public_key",
                _(
                    "This public key is not the pair of the private key (fingerprint %(fp)s): record the "
                    "public key you uploaded to Alipay for this private key."
                )
                % {"fp": keys.fingerprint(private_key)},
            )
        return cleaned


class RefundForm(forms.Form):
    """The amount (canonical text of the trade's currency, parsed strictly) and reason of one refund.

    Spaces around what was typed are dropped (a pasted " 10.00 " is 10.00); the amount must then be plain
    decimal text of the currency, at least its smallest refund and at most ``refundable`` when given.
    ``repeat`` is the owner's answer to "the same amount was refunded a moment ago: again?".
    """

    amount = forms.CharField(
        label=_("Amount to refund"),
        max_length=24,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 12}),
    )
    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        max_length=128,
        help_text=_("Shown to the buyer by Alipay. No double quotes; at most 100 characters online."),
        widget=forms.TextInput(attrs={"size": 50}),
    )
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=255)
    repeat = forms.BooleanField(label=_("Yes, refund this amount again"), required=False)

    def __init__(self, *args: Any, currency: str, refundable: Decimal | None = None, **kwargs: Any) -> None:
        self.currency = currency
        self.refundable = refundable
        super().__init__(*args, **kwargs)
        places = money.exponent(currency)
        self.fields["amount"].widget.attrs["placeholder"] = "100" if places == 0 else "10.00"
        self.fields["amount"].help_text = (
            _("Whole %(currency)s, digits only, e.g. 100.") if places == 0 else
            _("%(currency)s with at most 2 decimals, digits and a point only, e.g. 10.50.")
        ) % {"currency": currency}  # fmt: skip

    def clean_amount(self) -> str:
        text: str = self.cleaned_data["amount"]
        try:  # the form of the text first; its size below, in the owner's terms
            value = money.parse_amount(text, self.currency, maximum=Decimal("1e30"))
        except AmountError as exc:
            raise forms.ValidationError(exc.message) from None
        smallest = Decimal(1).scaleb(-money.exponent(self.currency))
        if value < smallest:
            raise forms.ValidationError(
                _("The smallest refund is %(amount)s %(currency)s.")
                % {"amount": money.format_amount(smallest, self.currency), "currency": self.currency}
            )
        if self.refundable is not None and value > self.refundable:
            left = money.format_amount(max(self.refundable, Decimal(0)), self.currency)
            raise forms.ValidationError(
                _("At most %(amount)s %(currency)s is left to refund on this order.")
                % {"amount": left, "currency": self.currency}
            )
        return text


class BulkReasonForm(forms.Form):
    """The reason given to every refund or reversal of a bulk action, and its one-time key."""

    reason = forms.CharField(label=_("Reason"), required=False, max_length=128)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=255)
