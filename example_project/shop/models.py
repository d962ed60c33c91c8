"""The shop's own records: products and orders; the payment itself is django_alipay's Trade."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.db import models
from django.utils import timezone

from django_alipay.models import Trade

__all__ = ["Order", "OrderLine", "Product", "new_order_number"]


def new_order_number(prefix: str = "SHOP") -> str:
    """A fresh order number, also the trade's ``out_trade_no``: printable ASCII, no spaces, unique."""
    return f"{prefix}-{timezone.now():%Y%m%d}-{secrets.token_hex(4).upper()}"


class Product(models.Model):
    """Something the shop sells, at a price in the shop's currency."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)
    description = models.CharField(max_length=300, blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    #: A CSS colour for the product's tile (the demo has no product photos).
    colour = models.CharField(max_length=20, default="#2b6cb0")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("position", "name")

    def __str__(self) -> str:
        return self.name

    @property
    def initials(self) -> str:
        """Two letters for the product tile."""
        words = [word for word in self.name.replace(",", " ").split() if word[:1].isalpha()]
        return "".join(word[0] for word in words[:2]).upper()


class Order(models.Model):
    """A customer's order; ``number`` is the Alipay ``out_trade_no`` of its payment."""

    class Channel(models.TextChoices):
        WEB = "web", "Online (website)"
        WAP = "wap", "Online (mobile)"
        BARCODE = "barcode", "In store (barcode)"
        QRCODE = "qrcode", "In store (QR code)"

    number = models.CharField(max_length=64, unique=True)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.WEB)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    trade = models.OneToOneField(
        Trade, null=True, blank=True, on_delete=models.PROTECT, related_name="shop_order"
    )
    #: Set by the trade_paid signal receiver: when the shop learnt the payment (then it ships the goods).
    paid_at = models.DateTimeField(null=True, blank=True)
    #: Set by the trade_closed signal receiver: unpaid and abandoned, reversed, or refunded in full.
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    #: Why the payment could not start (gateway unreachable, barcode refused ...), for the order page.
    problem = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ("-created_at", "-pk")

    def __str__(self) -> str:
        return self.number

    @property
    def is_in_store(self) -> bool:
        """True for point-of-sale orders."""
        return self.channel in (self.Channel.BARCODE, self.Channel.QRCODE)

    @property
    def subject(self) -> str:
        """What the buyer sees at the cashier: the first line's product, and how many more."""
        lines = list(self.lines.all())
        if not lines:
            return f"Order {self.number}"
        first = lines[0].name if lines[0].quantity == 1 else f"{lines[0].quantity} x {lines[0].name}"
        return first if len(lines) == 1 else f"{first} and {len(lines) - 1} more"


class OrderLine(models.Model):
    """One product of an order, at the price it had when ordered."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.SET_NULL)
    name = models.CharField(max_length=100)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ("pk",)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.name}"

    @property
    def amount(self) -> Decimal:
        """The line's price."""
        return self.unit_price * self.quantity
