"""What the emulated gateway remembers: partners, test buyers, trades, refunds, notifications and calls."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import F, Q

__all__ = [
    "AlipayKey",
    "Buyer",
    "Delivery",
    "GatewayCall",
    "Notification",
    "Partner",
    "Refund",
    "Trade",
]

ALL_SIGN_TYPES = ("MD5", "RSA", "RSA2", "DSA")


class Partner(models.Model):
    """A merchant account the emulated gateway knows, with its keys and contracted services."""

    partner = models.CharField(max_length=16, unique=True)
    md5_key = models.CharField(max_length=64, blank=True)
    merchant_public_key = models.TextField(blank=True)
    # Comma-separated allow-list of sign types; only those with key material are usable.
    sign_types = models.CharField(max_length=32, default="MD5,RSA,RSA2,DSA")
    # Comma-separated contracted services; empty means every service.
    services = models.TextField(blank=True)
    # Seconds between two forex_refund requests; None uses the emulator's REFUND_INTERVAL.
    refund_interval = models.FloatField(null=True, blank=True)
    # Wall-clock time of the last forex_refund request that passed the interval check.
    last_refund_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("partner",)

    def __str__(self) -> str:
        return self.partner

    def __repr__(self) -> str:
        # The MD5 key is a secret: never part of a repr.
        return f"<Partner {self.partner}>"

    @property
    def sign_type_list(self) -> list[str]:
        """The sign types allowed for this partner, in catalog order."""
        chosen = {part.strip() for part in self.sign_types.split(",") if part.strip()}
        return [name for name in ALL_SIGN_TYPES if name in chosen]

    @property
    def service_list(self) -> list[str]:
        """The contracted services; an empty list means all of them."""
        return [part.strip() for part in self.services.split(",") if part.strip()]

    def is_contracted(self, service: str) -> bool:
        """Whether the partner may call ``service``."""
        services = self.service_list
        return not services or service in services


class Buyer(models.Model):
    """A seeded test buyer: an Alipay account with a CNY balance and a fixed payment barcode."""

    user_id = models.CharField(max_length=16, unique=True)
    login_id = models.CharField(max_length=64, unique=True)
    password = models.CharField(max_length=32)
    name = models.CharField(max_length=64)
    barcode = models.CharField(max_length=24, unique=True)
    balance = models.DecimalField(max_digits=20, decimal_places=2)
    payment_inst = models.CharField(max_length=16, default="ALIPAYCN")
    enabled = models.BooleanField(default=True)
    # Spot payments of this buyer wait for a confirmation in the wallet (result_code UNKNOW).
    needs_confirmation = models.BooleanField(default=False)

    class Meta:
        ordering = ("id",)
        constraints = (models.CheckConstraint(condition=Q(balance__gte=0), name="emu_buyer_balance_gte_0"),)

    def __str__(self) -> str:
        return self.login_id


class Trade(models.Model):
    """One payment: online (create_forex_trade[_wap]) or in-store (spot.pay, precreate)."""

    ONLINE = "online"
    INSTORE = "instore"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="trades")
    channel = models.CharField(max_length=8, choices=[(ONLINE, "online"), (INSTORE, "in-store")])
    service = models.CharField(max_length=64)
    # out_trade_no of online and precreate trades, partner_trans_id of spot payments: one namespace.
    out_trade_no = models.CharField(max_length=64)
    trade_no = models.CharField(max_length=64, unique=True)
    subject = models.CharField(max_length=256, blank=True)
    body = models.CharField(max_length=400, blank=True)
    currency = models.CharField(max_length=8)
    total_fee = models.DecimalField(max_digits=20, decimal_places=2)
    rmb_fee = models.DecimalField(max_digits=20, decimal_places=2, null=True, blank=True)
    amount_cny = models.DecimalField(max_digits=20, decimal_places=2)
    exchange_rate = models.DecimalField(max_digits=20, decimal_places=8)
    product_code = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=32, default="WAIT_BUYER_PAY")
    additional_status = models.CharField(max_length=40, blank=True)
    # Why a closed trade was closed: timeout, buyer_cancel, reverse, cancel, refunded, payment_refused.
    close_reason = models.CharField(max_length=16, blank=True)
    buyer = models.ForeignKey(Buyer, null=True, blank=True, on_delete=models.SET_NULL, related_name="trades")
    buyer_identity_code = models.CharField(max_length=32, blank=True)
    refunded_amount = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("0"))
    refunded_cny = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("0"))
    notify_url = models.CharField(max_length=2048, blank=True)
    return_url = models.CharField(max_length=2048, blank=True)
    merchant_url = models.CharField(max_length=2048, blank=True)
    charset = models.CharField(max_length=8, default="utf-8")
    sign_type = models.CharField(max_length=8, default="MD5")
    request_params = models.JSONField(default=dict)
    # The original sync answer of a spot payment, replayed to an idempotent repeat.
    pay_result = models.JSONField(null=True, blank=True)
    cashier_token = models.CharField(max_length=43, unique=True)
    # Business times (the emulator clock); created_at is wall-clock time.
    gmt_create = models.DateTimeField()
    gmt_payment = models.DateTimeField(null=True, blank=True)
    gmt_close = models.DateTimeField(null=True, blank=True)
    gmt_modified = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)
        constraints = (
            models.UniqueConstraint(fields=("partner", "out_trade_no"), name="emu_trade_unique_out_trade_no"),
            # The last line of defence against over-refunds, whatever the locks did.
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("total_fee")),
                name="emu_trade_refunded_lte_total",
            ),
        )

    def __str__(self) -> str:
        return f"{self.trade_no} ({self.out_trade_no})"

    @property
    def is_online(self) -> bool:
        """True for create_forex_trade / create_forex_trade_wap trades."""
        return self.channel == self.ONLINE

    @property
    def refundable(self) -> Decimal:
        """What is left to refund, in the trade currency."""
        return self.total_fee - self.refunded_amount


class Refund(models.Model):
    """Money given back on a trade: forex_refund, spot.refund, or the full refund of a REVERSE/cancel."""

    FOREX = "forex_refund"
    SPOT = "spot_refund"
    REVERSE = "reverse"
    CANCEL = "cancel"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="refunds")
    trade = models.ForeignKey(Trade, on_delete=models.CASCADE, related_name="refunds")
    kind = models.CharField(max_length=16)
    # out_return_no (forex_refund) or partner_refund_id (spot.refund); empty for REVERSE/cancel.
    refund_id = models.CharField(max_length=64, blank=True)
    currency = models.CharField(max_length=8)
    amount = models.DecimalField(max_digits=20, decimal_places=2)
    amount_cny = models.DecimalField(max_digits=20, decimal_places=2)
    is_sync = models.BooleanField(default=False)
    reason = models.CharField(max_length=256, blank=True)
    gmt_return = models.DateTimeField(null=True, blank=True)
    gmt_refund = models.DateTimeField()
    request_params = models.JSONField(default=dict)
    response = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)
        constraints = (
            models.UniqueConstraint(
                fields=("partner", "kind", "refund_id"),
                condition=~Q(refund_id=""),
                name="emu_refund_unique_id",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="emu_refund_amount_gt_0"),
        )

    def __str__(self) -> str:
        return f"{self.kind} {self.refund_id or ''} {self.amount} {self.currency}".strip()


class Notification(models.Model):
    """One asynchronous message to a merchant's notify_url, sent until acknowledged or given up."""

    PENDING = "pending"
    ACKNOWLEDGED = "acknowledged"
    GAVE_UP = "gave_up"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="notifications")
    trade = models.ForeignKey(Trade, on_delete=models.CASCADE, related_name="notifications")
    refund = models.ForeignKey(Refund, null=True, blank=True, on_delete=models.CASCADE)
    notify_type = models.CharField(max_length=32)
    url = models.CharField(max_length=2048)
    # The business fields; notify_id, notify_time, sign and sign_type are added at each send.
    params = models.JSONField(default=dict)
    charset = models.CharField(max_length=8, default="utf-8")
    sign_type = models.CharField(max_length=8, default="MD5")
    state = models.CharField(max_length=16, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)
        indexes = (models.Index(fields=("state", "next_attempt_at"), name="emu_notification_due"),)

    def __str__(self) -> str:
        return f"{self.notify_type} #{self.pk} ({self.state})"


class Delivery(models.Model):
    """One HTTP POST of a notification (or its planned send, when a fault dropped it)."""

    SENDING = "sending"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    ERROR = "error"
    DROPPED = "dropped"

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveIntegerField()
    notify_id = models.CharField(max_length=128, db_index=True)
    notify_time = models.DateTimeField()
    url = models.CharField(max_length=2048)
    body = models.TextField()
    status_code = models.IntegerField(null=True, blank=True)
    response_text = models.TextField(blank=True)
    error = models.CharField(max_length=512, blank=True)
    outcome = models.CharField(max_length=16, default=SENDING)
    duplicate = models.BooleanField(default=False)
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.notify_id} attempt {self.attempt} ({self.outcome})"

    def as_dict(self) -> dict[str, Any]:
        """The delivery as JSON-ready data (what control/notifications lists)."""
        notification = self.notification
        return {
            "id": self.pk,
            "notification": notification.pk,
            "notify_type": notification.notify_type,
            "partner": notification.partner.partner,
            "out_trade_no": notification.trade.out_trade_no,
            "trade_no": notification.trade.trade_no,
            "state": notification.state,
            "attempt": self.attempt,
            "notify_id": self.notify_id,
            "url": self.url,
            "body": self.body,
            "status_code": self.status_code,
            "response_text": self.response_text,
            "error": self.error,
            "outcome": self.outcome,
            "duplicate": self.duplicate,
            "sent_at": self.sent_at.isoformat(),
        }


class GatewayCall(models.Model):
    """A log line per gateway.do call: what came in, what went out, and which rule or fault applied."""

    service = models.CharField(max_length=64, blank=True)
    partner = models.CharField(max_length=32, blank=True)
    method = models.CharField(max_length=8)
    params = models.JSONField(default=dict)
    status_code = models.IntegerField()
    outcome = models.CharField(max_length=64, blank=True)
    fault = models.CharField(max_length=32, blank=True)
    note = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.service} {self.outcome}"

    def as_dict(self) -> dict[str, Any]:
        """The call as JSON-ready data (what control/calls lists)."""
        return {
            "id": self.pk,
            "service": self.service,
            "partner": self.partner,
            "method": self.method,
            "params": self.params,
            "status_code": self.status_code,
            "outcome": self.outcome,
            "fault": self.fault,
            "note": self.note,
            "response_excerpt": self.response_excerpt,
            "created_at": self.created_at.isoformat(),
        }


class AlipayKey(models.Model):
    """The emulator's own "Alipay" private keys (one RSA, one DSA), generated once per database."""

    algorithm = models.CharField(max_length=8, unique=True)
    private_key_pem = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.algorithm} key"

    def __repr__(self) -> str:
        return f"<AlipayKey {self.algorithm}>"
