"""The Notification model: every inbound Alipay request as received, and how it was verified and processed."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_alipay.enums import NotificationFlag, NotificationKind, ProcessingOutcome, Verification

__all__ = ["Notification"]


class Notification(models.Model):
    """One delivery of a notification (or return_url visit), stored before anything else is done with it.

    The raw body is kept byte for byte (capped), so a decoding problem can be examined later. A repeated
    delivery is stored as a new row pointing at the first with ``duplicate_of``; the database allows at most
    one acknowledged (processed or ignored) row per merchant and ``notify_id``.
    """

    # The foreign keys have no full index of Django's: each is served by a partial one (see Meta.indexes).
    merchant = models.ForeignKey(
        "django_alipay.Merchant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("merchant"),
        db_index=False,
    )
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)
    kind = models.CharField(
        _("kind"), max_length=8, choices=NotificationKind.choices, default=NotificationKind.UNKNOWN
    )
    method = models.CharField(_("HTTP method"), max_length=8, default="POST")
    body = models.BinaryField(_("raw body"), blank=True, default=b"")
    body_size = models.PositiveIntegerField(_("body size"), default=0, help_text=_("Bytes received."))
    body_truncated = models.BooleanField(_("body truncated"), default=False)
    content_type = models.CharField(_("content type"), max_length=255, blank=True)
    query_string = models.TextField(_("query string"), blank=True)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    remote_addr = models.GenericIPAddressField(_("remote address"), null=True, blank=True)
    forwarded_for = models.CharField(
        _("X-Forwarded-For"), max_length=512, blank=True, help_text=_("As sent; never trusted.")
    )
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    notify_id = models.CharField(_("notify ID"), max_length=128, blank=True)
    notify_type = models.CharField(_("notify type"), max_length=64, blank=True)
    out_trade_no = models.CharField(_("order number"), max_length=128, blank=True)
    status = models.CharField(_("reported status"), max_length=64, blank=True)
    verification = models.CharField(
        _("verification"), max_length=16, choices=Verification.choices, default=Verification.PENDING
    )
    flag = models.CharField(_("flag"), max_length=32, blank=True, choices=NotificationFlag.choices)
    flag_info = models.TextField(_("flag details"), blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=ProcessingOutcome.choices, default=ProcessingOutcome.PENDING
    )
    error = models.TextField(_("error"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True)
    duplicate_of = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="duplicates",
        verbose_name=_("duplicate of"),
        db_index=False,
    )
    trade = models.ForeignKey(
        "django_alipay.Trade",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("trade"),
        db_index=False,
    )
    refund = models.ForeignKey(
        "django_alipay.Refund",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("refund"),
        db_index=False,
    )
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ("-received_at",)
        # Each index leaves out the rows it can never find, so most writes skip it: a request is stored with
        # no notify_id, trade, refund or duplicate yet, and most notifications never name a refund or
        # repeat one. The lookups always name the merchant and a non-empty notify_id (the duplicate check)
        # or a trade, refund or earlier row; unlinked notifications are found by their order number.
        indexes = (
            models.Index(
                fields=("merchant", "notify_id"),
                condition=~Q(notify_id=""),
                name="django_alipay_notif_notify_id",
            ),
            models.Index(
                fields=("trade",), condition=Q(trade__isnull=False), name="django_alipay_notif_trade"
            ),
            models.Index(
                fields=("refund",), condition=Q(refund__isnull=False), name="django_alipay_notif_refund"
            ),
            models.Index(
                fields=("duplicate_of",),
                condition=Q(duplicate_of__isnull=False),
                name="django_alipay_notif_duplicate",
            ),
            models.Index(
                fields=("merchant", "out_trade_no"),
                condition=Q(trade__isnull=True) & ~Q(out_trade_no=""),
                name="django_alipay_notif_unlinked",
            ),
        )
        constraints = (
            # Exactly-once: two deliveries of one notify_id can never both be applied. Deliveries that were
            # not applied (ignored ones included) are left out, so they never stand in for a later one.
            models.UniqueConstraint(
                fields=("merchant", "notify_id"),
                condition=Q(outcome=ProcessingOutcome.PROCESSED) & ~Q(notify_id=""),
                name="django_alipay_notification_once",
            ),
        )

    def __str__(self) -> str:
        return f"{self.kind} notification {self.notify_id or '(no notify_id)'} ({self.outcome})"

    def __repr__(self) -> str:
        return (
            f"<Notification id={self.pk} kind={self.kind} notify_id={self.notify_id!r} "
            f"verification={self.verification} outcome={self.outcome} flag={self.flag!r}>"
        )
