"""The errors shop code catches: the protocol and domain errors re-exported, plus the Django-specific ones."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation

from django_alipay.domain.errors import (
    DomainError,
    IdempotencyConflict,
    RefundAmountExceeded,
    RefundNotAllowed,
    RefundWindowClosed,
    ReverseNotAllowed,
    TradeNotAllowed,
)
from django_alipay.protocol.errors import (
    AlipayBusinessError,
    AlipayError,
    AlipayGatewayError,
    AlipaySystemError,
    AmountError,
    CharsetError,
    GatewayResponseError,
    InvalidParameterError,
    KeyFormatError,
    NotificationError,
    OutcomeUnknownError,
    SignatureError,
    TimeFormatError,
    TransportError,
)

__all__ = [
    "AlipayBusinessError",
    "AlipayConfigurationError",
    "AlipayError",
    "AlipayGatewayError",
    "AlipaySystemError",
    "AmountError",
    "CharsetError",
    "DomainError",
    "GatewayResponseError",
    "IdempotencyConflict",
    "InvalidParameterError",
    "KeyFormatError",
    "NotificationError",
    "OutcomeUnknownError",
    "RefundAmountExceeded",
    "RefundNotAllowed",
    "RefundWindowClosed",
    "ReverseNotAllowed",
    "SignatureError",
    "SuspiciousSignature",
    "TimeFormatError",
    "TradeNotAllowed",
    "TransportError",
]


class SuspiciousSignature(SignatureError, SuspiciousOperation):
    """A signature failure seen by the Django layer; Django logs it under ``django.security``."""


class AlipayConfigurationError(ImproperlyConfigured):
    """django_alipay is set up wrongly (settings, keys, optional dependencies); not an AlipayError."""
