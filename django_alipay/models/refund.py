"""The Refund model: one REFUND or REVERSE of a trade, with the gateway id it keeps for its whole life."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_alipay.enums import RefundKind, RefundStatus
from django_alipay.models.trade import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS

__all__ = ["ERROR_CODE_MAX", "Refund"]

#: Characters kept of an error code: far above any code Alipay documents (the longest is about 40).
ERROR_CODE_MAX = 255


class Refund(models.Model):
    """A refund or reversal; ``gateway_refund_id`` is minted once and reused by every retry and query.

    ``gateway_refund_id`` is sent as ``out_return_no`` (forex_refund) or ``partner_refund_id`` (spot refund);
    for a REVERSE it only identifies the attempt locally, since reverse/cancel name the payment itself.
    ``debits_balance`` is False only for the cancel of an unpaid in-store trade, which returns no money.
    """

    # No index of its own: the unique (merchant, gateway_refund_id) index serves every lookup by merchant.
    merchant = models.ForeignKey(
        "django_alipay.Merchant",
        on_delete=models.PROTECT,
        related_name="refunds",
        verbose_name=_("merchant"),
        db_index=False,
    )
    trade = models.ForeignKey(
        "django_alipay.Trade", on_delete=models.PROTECT, related_name="refunds", verbose_name=_("trade")
    )
    kind = models.CharField(_("kind"), max_length=8, choices=RefundKind.choices, default=RefundKind.REFUND)
    gateway_refund_id = models.CharField(
        _("gateway refund ID"),
        max_length=64,
        help_text=_("out_return_no / partner_refund_id; never changes."),
    )
    amount = models.DecimalField(
        _("amount"), max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES
    )
    currency = models.CharField(_("currency"), max_length=3)
    reason = models.CharField(_("reason"), max_length=128, blank=True)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=RefundStatus.choices,
        default=RefundStatus.REQUESTED,
        db_index=True,
    )
    debits_balance = models.BooleanField(default=True, editable=False)
    error_code = models.CharField(_("error code"), max_length=ERROR_CODE_MAX, blank=True)
    error_description = models.TextField(_("error description"), blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, blank=True)
    request_params = models.JSONField(_("request"), default=dict, blank=True)
    response = models.JSONField(_("last response"), default=dict, blank=True)
    attempts = models.PositiveIntegerField(_("gateway calls"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    submitted_at = models.DateTimeField(_("last sent at"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    # When the outcome of the last gateway call was recorded: its answer, or a timeout or other unknown
    # outcome, or a notification or file that settled it. None while the call claimed last (submitted_at)
    # has no outcome recorded yet: the call is in flight, or its process died (see ``in_flight``).
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True, editable=False)
    # When a task is due to take this requested (or claimed, unanswered) refund up; None while no task is
    # known to have it (the hand-over to the queue failed, or no queue is used): the sweeper sends it then.
    task_due_at = models.DateTimeField(_("task due at"), null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ("-created_at",)
        constraints = (
            models.CheckConstraint(condition=Q(amount__gt=0), name="django_alipay_refund_amount_positive"),
            models.UniqueConstraint(
                fields=("merchant", "gateway_refund_id"), name="django_alipay_refund_gateway_id"
            ),
            models.UniqueConstraint(
                fields=("merchant", "idempotency_key"),
                condition=~Q(idempotency_key=""),
                name="django_alipay_refund_idempotency_key",
            ),
            # A trade is reversed at most once: a second REVERSE returns the first (unless that one failed).
            models.UniqueConstraint(
                fields=("trade",),
                condition=Q(kind=RefundKind.REVERSE) & ~Q(status=RefundStatus.FAILED),
                name="django_alipay_refund_one_reverse",
            ),
        )

    def __str__(self) -> str:
        return f"{self.kind} {self.gateway_refund_id} ({self.amount} {self.currency}, {self.status})"

    def __repr__(self) -> str:
        return (
            f"<Refund id={self.pk} kind={self.kind} gateway_refund_id={self.gateway_refund_id!r} "
            f"amount={self.amount} {self.currency} status={self.status}>"
        )

    @property
    def is_pending(self) -> bool:
        """True while the outcome is not final (requested, submitted, unknown)."""
        return self.status in RefundStatus.pending()

    @property
    def in_flight(self) -> bool:
        """Claimed for a gateway call (submitted, or unknown and being asked again) with no outcome recorded
        yet: the call is under way, or the process making it died."""
        return self.status in (RefundStatus.SUBMITTED, RefundStatus.UNKNOWN) and self.answered_at is None

    @property
    def accepted(self) -> bool:
        """Submitted and answered: Alipay accepted the refund, and its result comes by notification."""
        return self.status == RefundStatus.SUBMITTED and self.answered_at is not None

    @property
    def awaits_sweep(self) -> bool:
        """Requested, and no task is known to have it: the periodic sweep (reconciliation) sends it."""
        return self.status == RefundStatus.REQUESTED and self.task_due_at is None
