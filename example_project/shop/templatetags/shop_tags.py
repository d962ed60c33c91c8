"""Template filters of the shop: money in the currency's own number of decimals, times in two zones."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_alipay.protocol import clock as alipay_clock
from django_alipay.protocol import money as alipay_money

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str = "USD") -> str:
    """``42.00 USD`` (``100 JPY``): the amount as Alipay writes it, followed by the currency."""
    if amount is None:
        return ""
    return f"{alipay_money.format_amount(Decimal(amount), currency)} {currency}"


@register.filter
def when(value: datetime | None) -> SafeString:
    """An instant in Beijing time (Alipay's rules, the same-day reversal go by it) and in the shop's zone."""
    if value is None:
        return format_html("{}", "—")
    local = timezone.localtime(value)
    return format_html(
        '<span class="beijing">{} Beijing</span> <span class="muted local">({} {})</span>',
        alipay_clock.format_datetime(value)[:16],
        f"{local:%Y-%m-%d %H:%M}",
        local.tzname() or "",
    )
