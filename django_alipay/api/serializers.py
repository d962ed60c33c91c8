"""Parse the REST API's input strictly and render trades, refunds and notifications as JSON.

Input fields are strict about JSON types: text must be a JSON string and numbers JSON integers, so ``10.1``
(a float) is never taken for the amount ``"10.10"``. Amounts are canonical decimal strings; they are parsed by
the domain with the trade's currency (``protocol.money.parse_amount``), which also applies the ranges.
Amounts are rendered the same way, with exactly the currency's decimals. Secrets never appear here.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, ClassVar, Final

from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from django_alipay.access import allowed_merchants
from django_alipay.api.errors import error_body
from django_alipay.catalog_text import describe
from django_alipay.enums import Product, RefundKind, RefundStatus
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.models import Merchant, Notification, Refund, Trade
from django_alipay.protocol import money
from django_alipay.protocol.codes import lookup_error

__all__ = [
    "AMOUNT_PATTERN",
    "AmountField",
    "DescribedCharField",
    "ErrorSerializer",
    "MoneyField",
    "NotificationFilterSerializer",
    "NotificationSerializer",
    "QuerySerializer",
    "RefundCreateSerializer",
    "RefundFilterSerializer",
    "RefundSerializer",
    "ReverseSerializer",
    "StrictCharField",
    "StrictIntegerField",
    "SyncResultSerializer",
    "TradeCreateSerializer",
    "TradeFilterSerializer",
    "TradeSerializer",
    "TradeStartSerializer",
]

#: What an amount looks like on input and output: ASCII digits, no sign or exponent, at most 2 decimals
#: (none for JPY and KRW, which the currency check enforces).
AMOUNT_PATTERN: Final = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?$"
_AMOUNT_SCHEMA: Final = {
    "type": "string",
    "pattern": AMOUNT_PATTERN,
    "example": "10.00",
    "description": "Decimal amount as a string: ASCII digits, at most 2 decimals (none for JPY and KRW).",
}
_ORDER_NUMBER_PATTERN: Final = r"^[!#-~]{1,64}$"
_CURRENCY_PATTERN: Final = r"^[A-Z]{3}$"
_BIGINT_MAX: Final = 2**63 - 1


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class StrictCharField(serializers.CharField):
    """A CharField that takes JSON strings only (no numbers) and keeps surrounding spaces as sent."""

    default_error_messages: ClassVar[dict[str, Any]] = {"not_text": _("Must be a JSON string, not a {type}.")}

    def __init__(self, *, regex: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        if regex is not None:
            self.validators.append(
                RegexValidator(regex, message=_("Must match %(regex)s.") % {"regex": regex})
            )

    def to_internal_value(self, data: Any) -> str:
        """The string, unchanged; anything but a JSON string is refused."""
        if not isinstance(data, str):
            self.fail("not_text", type=_json_type(data))
        return str(super().to_internal_value(data))


class StrictIntegerField(serializers.IntegerField):
    """An IntegerField that takes JSON integers only (no strings, floats or booleans)."""

    default_error_messages: ClassVar[dict[str, Any]] = {
        "not_integer": _("Must be a JSON integer, not a {type}.")
    }

    def to_internal_value(self, data: Any) -> int:
        """The integer; anything but a JSON integer is refused."""
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("not_integer", type=_json_type(data))
        return int(super().to_internal_value(data))


class DescribedCharField(serializers.CharField):
    """Read-only text that may be a catalog description: rendered in the request's language."""

    def to_representation(self, value: Any) -> str:
        """The text, translated when it is a catalog text."""
        return describe(str(super().to_representation(value)))


@extend_schema_field(_AMOUNT_SCHEMA)
class AmountField(serializers.Field):
    """An amount on input: a JSON string, handed to the domain as text; a JSON number (10.1) is refused."""

    default_error_messages: ClassVar[dict[str, Any]] = {
        "not_text": _(
            'The amount must be a JSON string such as "10.00", not a {type}: numbers in JSON are binary '
            "floating point and cannot carry money exactly."
        ),
    }

    def to_internal_value(self, data: Any) -> str:
        """The text as sent; the domain parses it with the trade's currency."""
        if not isinstance(data, str):
            self.fail("not_text", type=_json_type(data))
        return data

    def to_representation(self, value: Any) -> str:
        """Plain decimal text (only used when the field is rendered back without a currency)."""
        return format(Decimal(value), "f")


@extend_schema_field(_AMOUNT_SCHEMA)
class MoneyField(serializers.Field):
    """An amount on output: ``attribute`` of the object, written with exactly its currency's decimals."""

    def __init__(self, attribute: str, **kwargs: Any) -> None:
        self.attribute = attribute
        kwargs["source"] = "*"
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str:
        """``100.00`` JPY is "100"; ``10.5`` USD is "10.50"."""
        return money.format_amount(Decimal(getattr(value, self.attribute)), value.currency)


# --- errors (for the schema) -------------------------------------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    """The inside of an error body."""

    code = serializers.CharField(help_text="This API's reason, e.g. refund_amount_exceeded.")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    alipay_code = serializers.CharField(allow_null=True, help_text="Alipay's error code, if Alipay refused.")
    description = serializers.CharField(allow_null=True, help_text="The catalog description of alipay_code.")
    field = serializers.CharField(allow_null=True, help_text="The input (body field or header) at fault.")
    details = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors: every failing input with its messages.",
    )


class ErrorSerializer(serializers.Serializer):
    """Every error answer of the API."""

    error = ErrorDetailSerializer()


class QuerySerializer(serializers.Serializer[Any]):
    """Query parameters of a list: a parameter given needs a value (``?status=`` is refused, not ignored)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        """The filters asked for; a blank one is an error."""
        blank = [name for name, _ in self.fields.items() if hasattr(data, "get") and data.get(name) == ""]
        if blank:
            raise serializers.ValidationError(
                {name: [_("This parameter may not be blank.")] for name in blank}
            )
        validated: dict[str, Any] = super().to_internal_value(data)
        return validated


# --- trades ------------------------------------------------------------------------------------------------


class TradeSerializer(serializers.ModelSerializer[Trade]):
    """A trade as the API shows it (read-only: only the domain changes a trade)."""

    amount = MoneyField("amount")
    refunded_amount = MoneyField("refunded_amount")
    refund_pending_amount = MoneyField("refund_pending_amount")
    refundable_amount = MoneyField("refundable_amount")
    merchant_name = serializers.CharField(source="merchant.name", read_only=True)
    # Free text as Alipay reports it: a new value must not break a client validating against an enum.
    payment_type = serializers.CharField(read_only=True, help_text="Alipay's payment type ('' until paid).")
    additional_status = serializers.CharField(read_only=True, help_text="Alipay's additional status, if any.")

    class Meta:
        model = Trade
        fields = (
            "id",
            "merchant",
            "merchant_name",
            "product",
            "out_trade_no",
            "trade_no",
            "amount",
            "currency",
            "subject",
            "body",
            "payment_type",
            "status",
            "additional_status",
            "paid_at",
            "closed_at",
            "buyer_id",
            "buyer_login",
            "payment_url",
            "qr_code",
            "refunded_amount",
            "refund_pending_amount",
            "refundable_amount",
            "created_at",
            "updated_at",
            "last_synced_at",
        )
        read_only_fields = fields


class TradeCreateSerializer(serializers.Serializer):
    """What it takes to start a payment; the domain (trades.create_trade) checks the rest."""

    merchant = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=_BIGINT_MAX,
        help_text="Merchant id; by default the default merchant, or the user's only active merchant.",
    )
    out_trade_no = StrictCharField(
        max_length=64, regex=_ORDER_NUMBER_PATTERN, help_text="The shop's order number, unique per merchant."
    )
    amount = AmountField(help_text="Amount in the currency, as a decimal string.")
    currency = StrictCharField(
        required=False, regex=_CURRENCY_PATTERN, help_text="ISO 4217 code; the merchant's by default."
    )
    subject = StrictCharField(max_length=256, help_text="What is bought, shown to the buyer.")
    body = StrictCharField(required=False, allow_blank=True, max_length=400, default="")
    product = serializers.ChoiceField(choices=Product.choices, default=Product.ONLINE_WEB)
    buyer_identity_code = StrictCharField(
        required=False, max_length=64, help_text="Barcode payments: the code scanned from the buyer's phone."
    )
    return_url = serializers.URLField(
        required=False, max_length=1024, help_text="Online payments: where the cashier sends the buyer back."
    )

    def validate_merchant(self, value: int) -> Merchant:
        """One of the user's merchants; any other id reads as unknown."""
        found = allowed_merchants(self.context["request"].user).filter(pk=value).first()
        if found is None:
            raise serializers.ValidationError(_("Unknown merchant."))
        return found

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Fill in the merchant when none was named."""
        if "merchant" not in attrs:
            attrs["merchant"] = self._default_merchant()
        return attrs

    def _default_merchant(self) -> Merchant:
        mine = allowed_merchants(self.context["request"].user)
        try:
            default: Merchant | None = Merchant.objects.get_default()
        except AlipayConfigurationError:
            default = None
        if default is not None and mine.filter(pk=default.pk).exists():
            return default
        active = list(mine.filter(is_active=True)[:2])
        if len(active) == 1:
            return active[0]
        raise serializers.ValidationError(
            {"merchant": [_("Name the merchant (its id): there is no default.")]}
        )


class PaymentSerializer(serializers.Serializer):
    """How the buyer pays a new trade."""

    url = serializers.CharField(help_text="Online: the cashier URL to redirect the buyer to.")
    form_html = serializers.CharField(help_text="Online: an auto-submitting form, as an alternative.")
    qr_code = serializers.CharField(help_text="QR code payments: the code to show to the buyer.")
    error = serializers.SerializerMethodField(help_text="In store: why the payment failed or is unsettled.")

    @extend_schema_field(ErrorDetailSerializer(allow_null=True))
    def get_error(self, start: Any) -> dict[str, Any] | None:
        """The gateway error in the API's error shape, or null."""
        error = start.error
        if error is None:
            return None
        description = describe(
            error.description or (lookup_error(error.code).description if error.code else "")
        )
        body: dict[str, Any] = error_body(
            "gateway_refused" if error.code else "gateway_unavailable",
            error.message,
            alipay_code=error.code,
            description=description or None,
        )["error"]
        return body


class TradeStartSerializer(serializers.Serializer):
    """The answer to creating a trade: the trade, and how it is paid."""

    trade = TradeSerializer()
    payment = PaymentSerializer(source="*")


class SyncResultSerializer(serializers.Serializer):
    """What a query at Alipay found out about a trade."""

    found = serializers.BooleanField(help_text="False when Alipay does not know the trade (never paid).")
    changed = serializers.BooleanField(help_text="True when the trade's status moved.")
    previous_status = serializers.CharField()
    status = serializers.CharField()
    flag = serializers.CharField(help_text="Why Alipay's report was not applied (empty when it was).")
    message = serializers.CharField()
    trade = TradeSerializer()


class TradeFilterSerializer(QuerySerializer):
    """Query parameters of the trade list."""

    merchant = serializers.IntegerField(required=False, min_value=1, max_value=_BIGINT_MAX)
    status = serializers.ChoiceField(required=False, choices=Trade._meta.get_field("status").choices or ())
    product = serializers.ChoiceField(required=False, choices=Product.choices)
    out_trade_no = serializers.CharField(required=False, max_length=64, trim_whitespace=False)


# --- refunds -----------------------------------------------------------------------------------------------


class RefundSerializer(serializers.ModelSerializer[Refund]):
    """A refund or reversal as the API shows it."""

    amount = MoneyField("amount")
    out_trade_no = serializers.CharField(source="trade.out_trade_no", read_only=True)
    alipay_code = serializers.CharField(source="error_code", read_only=True, help_text="Alipay's error code.")
    description = DescribedCharField(
        source="error_description", read_only=True, help_text="The catalog description of alipay_code."
    )
    queued_for_sweeper = serializers.BooleanField(
        source="awaits_sweep",
        read_only=True,
        help_text=(
            "True while the refund is requested and no task has it (handing it to the task queue failed, or "
            "its turn did not come in time): the periodic sweep sends it."
        ),
    )

    class Meta:
        model = Refund
        fields = (
            "id",
            "merchant",
            "trade",
            "out_trade_no",
            "kind",
            "gateway_refund_id",
            "amount",
            "currency",
            "reason",
            "status",
            "queued_for_sweeper",
            "alipay_code",
            "description",
            "idempotency_key",
            "attempts",
            "created_at",
            "submitted_at",
            "completed_at",
            "updated_at",
        )
        read_only_fields = fields


class RefundCreateSerializer(serializers.Serializer):
    """A refund request; the domain (refunds.request_refund) checks it against the trade."""

    amount = AmountField(help_text="Amount to refund, as a decimal string in the trade's currency.")
    currency = StrictCharField(required=False, help_text="When given, must be the trade's currency.")
    reason = StrictCharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=128,
        help_text="Shown to the buyer; up to 100 characters online, 128 in store; no double quotes.",
    )


class RefundFormSerializer(RefundCreateSerializer):
    """The browsable API's refund form: a refund request plus the key a browser cannot send as a header.

    Only HTML form posts (form-encoded) read ``idempotency_key``; JSON clients send the Idempotency-Key
    header. Each time the form is shown it carries a new key, so pressing the button twice, or the browser
    sending the form again, refunds once.
    """

    idempotency_key = StrictCharField(
        regex=r"^[!-~]{1,255}$",
        initial=lambda: str(uuid.uuid4()),
        help_text="Generated for this form: sending the same form again refunds nothing more.",
    )

    def get_initial(self) -> dict[str, Any]:
        """The form's starting values: no currency (the trade's is used) and a new key."""
        initial = dict(super().get_initial())
        if not initial.get("currency"):
            initial.pop("currency", None)
        return initial


class ReverseSerializer(serializers.Serializer):
    """A reversal request (the full amount, on the payment's Beijing day)."""

    reason = StrictCharField(required=False, allow_blank=True, default="", max_length=128)


class RefundFilterSerializer(QuerySerializer):
    """Query parameters of the refund list."""

    trade = serializers.IntegerField(required=False, min_value=1, max_value=_BIGINT_MAX)
    status = serializers.ChoiceField(required=False, choices=RefundStatus.choices)
    kind = serializers.ChoiceField(required=False, choices=RefundKind.choices)


# --- notifications -----------------------------------------------------------------------------------------


class NotificationSerializer(serializers.ModelSerializer[Notification]):
    """A stored notification: how it was received, verified and processed (the raw body is not shown)."""

    flag = serializers.CharField(read_only=True, help_text="Why it was refused or ignored ('' when not).")

    class Meta:
        model = Notification
        fields = (
            "id",
            "merchant",
            "received_at",
            "kind",
            "method",
            "body_size",
            "body_truncated",
            "content_type",
            "remote_addr",
            "forwarded_for",
            "params",
            "notify_id",
            "notify_type",
            "out_trade_no",
            "status",
            "verification",
            "flag",
            "flag_info",
            "outcome",
            "error",
            "duplicate_of",
            "trade",
            "refund",
            "processed_at",
        )
        read_only_fields = fields


class NotificationFilterSerializer(QuerySerializer):
    """Query parameters of the notification list."""

    out_trade_no = serializers.CharField(required=False, max_length=128, trim_whitespace=False)
    outcome = serializers.ChoiceField(
        required=False, choices=Notification._meta.get_field("outcome").choices or ()
    )
    flag = serializers.ChoiceField(required=False, choices=Notification._meta.get_field("flag").choices or ())
