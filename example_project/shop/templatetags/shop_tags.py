"""Template filters of the shop: money in the currency's own number of decimals."""

from __future__ import annotations

from decimal import Decimal

from django import template

from django_alipay.protocol import money as alipay_money

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str = "USD") -> str:
    """``42.00 USD`` (``100 JPY``): the amount as Alipay writes it, followed by the currency."""
    if amount is None:
        return ""
    return f"{alipay_money.format_amount(Decimal(amount), currency)} {currency}"
