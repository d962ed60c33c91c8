"""The RefundSlot model: when the next refund call of one Alipay partner may start, across all workers."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = ["RefundSlot"]


class RefundSlot(models.Model):
    """The refund spacing of one Alipay partner (several Merchant rows may share a partner).

    Alipay measures the spacing between refunds from when it received the previous one, so the gap is
    counted from when the previous call *answered* (or could no longer be under way), not from when it
    started. ``in_flight_until`` is set while a call is under way (the latest moment it can still end, by the
    client's total timeout) and cleared, with ``next_call_at`` set, when it answers. Only
    ``django_alipay.domain.refunds`` writes these rows, under a row lock, on the database server's clock.
    """

    partner = models.CharField(_("partner ID"), max_length=16, unique=True)
    next_call_at = models.DateTimeField(_("next call allowed at"), null=True, blank=True)
    in_flight_until = models.DateTimeField(_("call under way until"), null=True, blank=True)
    claim = models.CharField(_("claim"), max_length=32, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("refund slot")
        verbose_name_plural = _("refund slots")

    def __str__(self) -> str:
        return f"refund slot of partner {self.partner}"
