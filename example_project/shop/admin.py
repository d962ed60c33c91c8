"""The shop's admin: products, and orders linking to their Alipay trade (where refunds are done)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from shop import payments
from shop.models import Order, OrderLine, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "price", "currency", "position")
    prepopulated_fields = {"slug": ("name",)}  # noqa: RUF012


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    readonly_fields = ("product", "name", "unit_price", "quantity")
    can_delete = False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("number", "channel", "total", "currency", "state", "trade_link", "created_at")
    list_filter = ("channel",)
    search_fields = ("number",)
    readonly_fields = (
        "number",
        "channel",
        "total",
        "currency",
        "trade_link",
        "paid_at",
        "closed_at",
        "problem",
    )
    exclude = ("trade",)
    inlines = (OrderLineInline,)

    @admin.display(description="Payment")
    def state(self, obj: Order) -> str:
        return payments.order_state(obj).label

    @admin.display(description="Alipay trade (refund / reverse there)")
    def trade_link(self, obj: Order) -> SafeString | str:
        if obj.trade_id is None:
            return "—"
        url = reverse("admin:django_alipay_trade_change", args=[obj.trade_id])
        return format_html('<a href="{}">{}</a>', url, obj.number)
