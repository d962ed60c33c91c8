"""Django choices for the models: the gateway catalogs of protocol/codes.py and the app's own vocabularies."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_alipay.catalog_text import describe_lazy
from django_alipay.protocol import codes

__all__ = [
    "ADDITIONAL_TRADE_STATUS_CHOICES",
    "PAYMENT_TYPE_CHOICES",
    "SIGN_TYPE_CHOICES",
    "TRADE_STATUS_CHOICES",
    "Charset",
    "Environment",
    "NotificationFlag",
    "NotificationKind",
    "ProcessingOutcome",
    "Product",
    "RefundKind",
    "RefundStatus",
    "Verification",
]


def _translated(choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The catalog's (value, English description) pairs with labels shown in the active language."""
    return [(value, describe_lazy(label)) for value, label in choices]


# Derived from the catalogs so that a code added there is a choice here (and a migration) without a copy.
TRADE_STATUS_CHOICES: list[tuple[str, str]] = _translated(codes.TradeStatus.choices())
ADDITIONAL_TRADE_STATUS_CHOICES: list[tuple[str, str]] = _translated(codes.AdditionalTradeStatus.choices())
PAYMENT_TYPE_CHOICES: list[tuple[str, str]] = _translated(codes.PaymentType.choices())
SIGN_TYPE_CHOICES: list[tuple[str, str]] = _translated(codes.SignType.choices())


class Environment(models.TextChoices):
    """Which gateway a merchant talks to."""

    PRODUCTION = "production", _("Production (Alipay)")
    SANDBOX = "sandbox", _("Sandbox (Alipay's test gateway, MD5 only)")
    EMULATOR = "emulator", _("Emulator (local, for development and tests)")


class Charset(models.TextChoices):
    """The ``_input_charset`` values the gateway accepts."""

    UTF8 = "utf-8", "UTF-8"
    GBK = "gbk", "GBK"
    GB2312 = "gb2312", "GB2312"


class Product(models.TextChoices):
    """How the buyer pays: online (browser to Alipay's cashier) or in-store (barcode or QR code)."""

    ONLINE_WEB = "web", _("Online, website (create_forex_trade)")
    ONLINE_WAP = "wap", _("Online, mobile browser (create_forex_trade_wap)")
    IN_STORE_BARCODE = "barcode", _("In store, merchant scans the buyer's barcode (spot.pay)")
    IN_STORE_QR = "qrcode", _("In store, buyer scans a QR code (precreate)")

    @property
    def is_online(self) -> bool:
        """True for the two browser products, whose refunds go through forex_refund."""
        return self in (Product.ONLINE_WEB, Product.ONLINE_WAP)


class RefundKind(models.TextChoices):
    """REFUND returns part or all of a payment; REVERSE undoes an in-store payment on its Beijing day."""

    REFUND = "REFUND", _("Refund")
    REVERSE = "REVERSE", _("Reverse")


class RefundStatus(models.TextChoices):
    """Where a refund is: money is debited from the refundable balance in every status but FAILED."""

    REQUESTED = "requested", _("Requested (not sent yet)")
    SUBMITTED = "submitted", _("Submitted (sent, or accepted by Alipay and awaiting the result)")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    UNKNOWN = "unknown", _("Unknown (the answer was lost: resolved by a query, never a new refund)")

    @classmethod
    def debiting(cls) -> tuple[RefundStatus, ...]:
        """Statuses whose amount counts against what is still refundable."""
        return (cls.REQUESTED, cls.SUBMITTED, cls.UNKNOWN, cls.SUCCEEDED)

    @classmethod
    def pending(cls) -> tuple[RefundStatus, ...]:
        """Statuses that still wait for an outcome."""
        return (cls.REQUESTED, cls.SUBMITTED, cls.UNKNOWN)


class NotificationKind(models.TextChoices):
    """What a stored inbound request is about."""

    TRADE = "trade", _("Trade status")
    REFUND = "refund", _("Refund result")
    RETURN = "return", _("Return URL (browser redirect; never changes state)")
    UNKNOWN = "unknown", _("Not determined")


class Verification(models.TextChoices):
    """Outcome of checking that a notification comes from Alipay."""

    PENDING = "pending", _("Not verified yet")
    VERIFIED = "verified", _("Genuine")
    REJECTED = "rejected", _("Rejected (forged, malformed or not allowed)")
    UNVERIFIABLE = "unverifiable", _("Could not be verified now (Alipay will retry)")
    QUERIED = "queried", _("notify_verify said false; the status was confirmed by a query")


class ProcessingOutcome(models.TextChoices):
    """What was done with a notification."""

    PENDING = "pending", _("Not processed yet")
    PROCESSED = "processed", _("Processed")
    IGNORED = "ignored", _("Acknowledged without effect (see flag)")
    DUPLICATE = "duplicate", _("Duplicate of an earlier notification")
    REJECTED = "rejected", _("Rejected")
    RETRY = "retry", _("Left for Alipay to send again")
    ERROR = "error", _("Failed with an error")


class NotificationFlag(models.TextChoices):
    """Why a notification was rejected or acknowledged without effect."""

    UNKNOWN_MERCHANT = "unknown_merchant", _("The notify URL's token names no merchant")
    BODY_TOO_LARGE = "body_too_large", _("The body is larger than the limit")
    BAD_CONTENT_TYPE = "bad_content_type", _("The body is not a form")
    BAD_CHARSET = "bad_charset", _("The body cannot be decoded in the merchant's charset")
    TOO_MANY_FIELDS = "too_many_fields", _("More fields than a notification has")
    NUL_BYTE = "nul_byte", _("A NUL byte in a name or value")
    DUPLICATE_PARAM = "duplicate_param", _("A parameter appears more than once")
    MALFORMED = "malformed", _("The notification lacks what it needs to be used")
    MISSING_SIGN = "missing_sign", _("No sign parameter")
    MISSING_SIGN_TYPE = "missing_sign_type", _("No sign_type parameter")
    BAD_SIGN_TYPE = "bad_sign_type", _("sign_type is not exactly MD5, RSA, RSA2 or DSA")
    SIGN_TYPE_NOT_ALLOWED = "sign_type_not_allowed", _("sign_type is not the merchant's")
    BAD_SIGN_FORMAT = "bad_sign_format", _("The signature is not in the sign type's format")
    BAD_SIGNATURE = "bad_signature", _("The signature does not verify with the merchant's key")
    MISSING_NOTIFY_ID = "missing_notify_id", _("notify_id is missing")
    BAD_NOTIFY_ID = "bad_notify_id", _("notify_id is too long or not printable ASCII")
    VERIFY_FALSE = "verify_false", _("notify_verify said the notification is not genuine")
    VERIFY_PENDING = "verify_pending", _("notify_verify could not be reached in time")
    VERIFY_FALSE_CONFIRMED = (
        "verify_false_confirmed",
        _("notify_verify said false; a query confirmed the reported status, applied from the query"),
    )
    UNKNOWN_ORDER = "unknown_order", _("out_trade_no names no trade of this merchant")
    UNKNOWN_REFUND = "unknown_refund", _("out_return_no names no refund of this merchant")
    BAD_AMOUNT = "bad_amount", _("The amount is not a valid amount of the currency")
    AMOUNT_MISMATCH = "amount_mismatch", _("The amount differs from the order's")
    CURRENCY_MISMATCH = "currency_mismatch", _("The currency differs from the order's")
    PARTNER_MISMATCH = "partner_mismatch", _("The seller/partner is not this merchant")
    UNKNOWN_STATUS = "unknown_status", _("The status is not one the app knows")
    STALE_TRANSITION = "stale_transition", _("The status would move the trade backwards")
    STALE_NOTIFY_TIME = "stale_notify_time", _("notify_time is far from now (heuristic only)")
    CONFLICTING_RESULT = "conflicting_result", _("The result contradicts an earlier final result")
    VERIFY_ERROR = "verify_error", _("The merchant's keys could not verify anything (configuration)")
    PROCESSING_ERROR = "processing_error", _("Processing raised an error")
