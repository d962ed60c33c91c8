"""The domain's refusals: typed AlipayError subclasses whose messages a shop owner understands."""

from __future__ import annotations

from typing import Any

from django_alipay.protocol.errors import AlipayError

__all__ = [
    "DomainError",
    "IdempotencyConflict",
    "RefundAmountExceeded",
    "RefundNotAllowed",
    "RefundSpacingNotReached",
    "RefundWindowClosed",
    "ReprocessNotAllowed",
    "ReverseNotAllowed",
    "TradeNotAllowed",
]


class DomainError(AlipayError):
    """An operation the app's own rules refuse before anything is sent to Alipay; nothing was changed."""


class TradeNotAllowed(DomainError):
    """A trade cannot be created or changed as asked (for example, its order number is already used)."""


class RefundNotAllowed(DomainError):
    """The trade cannot be refunded now: unpaid, closed, reversed, fully refunded, or outside the window."""


class RefundWindowClosed(RefundNotAllowed):
    """The configured refund window (``ALIPAY["REFUND_WINDOW_DAYS"]``) of the trade has ended."""


class RefundAmountExceeded(RefundNotAllowed):
    """The refund asks for more than is still refundable (pending and unknown refunds count as refunded)."""


class ReverseNotAllowed(RefundNotAllowed):
    """A REVERSE is not possible: not in-store, not the payment's Beijing day, or not the full amount."""


class IdempotencyConflict(DomainError):
    """An idempotency key already used for a refund with other parameters was sent again."""


class ReprocessNotAllowed(DomainError):
    """A stored notification cannot be processed again: it was acted upon already, or cannot be read again."""


class RefundSpacingNotReached(DomainError):
    """A refund call now would follow the merchant's previous one sooner than ``ALIPAY["REFUND_SPACING"]``.

    Raised only to callers that asked not to wait (the Celery tasks, which retry after ``retry_after``
    seconds rather than keep a worker sleeping); nothing was sent and nothing was changed.
    """

    retryable = True

    def __init__(self, message: str = "", *, retry_after: float, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)
