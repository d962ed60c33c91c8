"""The Trade model: one payment asked of Alipay, its status as Alipay reports it, and its refund balance."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_alipay.enums import (
    ADDITIONAL_TRADE_STATUS_CHOICES,
    PAYMENT_TYPE_CHOICES,
    TRADE_STATUS_CHOICES,
    Product,
)
from django_alipay.protocol.codes import TradeStatus

__all__ = ["AMOUNT_DECIMAL_PLACES", "AMOUNT_MAX_DIGITS", "Trade"]

#: Enough for in-store amounts (up to 100000000.00) with room to spare; the currency exponent is checked
#: by the domain (JPY/KRW amounts are whole numbers stored as N.00).
AMOUNT_MAX_DIGITS = 14
AMOUNT_DECIMAL_PLACES = 2


class Trade(models.Model):
    """A payment of ``amount`` ``currency`` under ``out_trade_no``; only the domain layer changes it.

    ``refunded_amount`` is what refunds have returned; ``refund_pending_amount`` what refunds requested, sent
    or of unknown outcome hold back. The database refuses any row where their sum exceeds ``amount``.
    """

    # No index of its own: the unique (merchant, out_trade_no) index serves every lookup by merchant.
    merchant = models.ForeignKey(
        "django_alipay.Merchant",
        on_delete=models.PROTECT,
        related_name="trades",
        verbose_name=_("merchant"),
        db_index=False,
    )
    product = models.CharField(
        _("product"), max_length=16, choices=Product.choices, default=Product.ONLINE_WEB
    )
    out_trade_no = models.CharField(
        _("order number"), max_length=64, help_text=_("The shop's number (out_trade_no / partner_trans_id).")
    )
    trade_no = models.CharField(
        _("Alipay trade number"), max_length=64, blank=True, help_text=_("trade_no / alipay_trans_id.")
    )
    amount = models.DecimalField(
        _("amount"), max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES
    )
    currency = models.CharField(_("currency"), max_length=3)
    subject = models.CharField(_("subject"), max_length=256)
    body = models.CharField(_("description"), max_length=400, blank=True)
    payment_type = models.CharField(_("payment type"), max_length=8, blank=True, choices=PAYMENT_TYPE_CHOICES)
    status = models.CharField(
        _("status"), max_length=32, choices=TRADE_STATUS_CHOICES, default=TradeStatus.WAIT_BUYER_PAY.value
    )
    additional_status = models.CharField(
        _("additional status"), max_length=64, blank=True, choices=ADDITIONAL_TRADE_STATUS_CHOICES
    )
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    buyer_id = models.CharField(_("buyer ID"), max_length=64, blank=True)
    buyer_login = models.CharField(
        _("buyer login"), max_length=128, blank=True, help_text=_("As masked by Alipay.")
    )
    payment_url = models.TextField(_("payment URL"), blank=True, help_text=_("Online: where the buyer pays."))
    qr_code = models.CharField(
        _("QR code"), max_length=512, blank=True, help_text=_("In store: code to scan.")
    )
    gateway_response = models.JSONField(
        _("last gateway answer"), default=dict, blank=True, help_text=_("The raw fields of the last answer.")
    )
    refunded_amount = models.DecimalField(
        _("refunded"),
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        default=Decimal("0"),
    )
    refund_pending_amount = models.DecimalField(
        _("refunds pending"),
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        default=Decimal("0"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    last_synced_at = models.DateTimeField(_("last queried at"), null=True, blank=True)

    class Meta:
        verbose_name = _("trade")
        verbose_name_plural = _("trades")
        ordering = ("-created_at",)
        indexes = (models.Index(fields=("status", "created_at"), name="django_alipay_trade_status_idx"),)
        # Money moves only for people given these explicitly; "change trade" is never enough (trades are
        # read-only in the admin: only the domain changes them).
        permissions = (
            ("refund_trade", _("Can refund trades")),
            ("reverse_trade", _("Can reverse trades")),
            ("sync_trade", _("Can update trades from Alipay (query, reprocess notifications)")),
        )
        constraints = (
            models.UniqueConstraint(
                fields=("merchant", "out_trade_no"), name="django_alipay_trade_out_trade_no"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="django_alipay_trade_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0), name="django_alipay_trade_refunded_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(refund_pending_amount__gte=0), name="django_alipay_trade_pending_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(refunded_amount__lte=F("amount")), name="django_alipay_trade_refunded_lte_amount"
            ),
            # The last line of defence against over-refunding: what is refunded plus what is on its way never
            # exceeds what was paid, whatever code path writes the row.
            models.CheckConstraint(
                condition=Q(refunded_amount__lte=F("amount") - F("refund_pending_amount")),
                name="django_alipay_trade_refunds_lte_amount",
            ),
        )

    def __str__(self) -> str:
        return f"{self.out_trade_no} ({self.amount} {self.currency}, {self.status})"

    def __repr__(self) -> str:
        return (
            f"<Trade id={self.pk} out_trade_no={self.out_trade_no!r} amount={self.amount} {self.currency} "
            f"status={self.status}>"
        )

    @property
    def is_online(self) -> bool:
        """True for browser payments (create_forex_trade / _wap)."""
        return Product(self.product).is_online

    @property
    def is_paid(self) -> bool:
        """True once Alipay reported the payment (TRADE_SUCCESS / TRADE_FINISHED), even if closed since."""
        return self.paid_at is not None or self.status in (
            TradeStatus.TRADE_SUCCESS,
            TradeStatus.TRADE_FINISHED,
        )

    @property
    def refundable_amount(self) -> Decimal:
        """What may still be refunded: the amount less refunds made and refunds on their way."""
        return self.amount - self.refunded_amount - self.refund_pending_amount

    @property
    def is_fully_refunded(self) -> bool:
        """True when refunds have returned the whole amount."""
        return self.refunded_amount >= self.amount
