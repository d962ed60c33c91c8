"""The trade admin: the list, the trade's timeline, and refund, reverse and sync, each calling the domain."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from functools import update_wrapper
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from django_alipay.access import access_for
from django_alipay.admin.common import (
    REPORTED_ERRORS,
    MerchantScopedAdmin,
    ReadOnlyAdmin,
    badge,
    beijing_text,
    both_times,
    error_text,
    json_block,
    local_text,
    money_text,
    nowrap,
    refund_message,
    report_rows,
    shows_two_zones,
)
from django_alipay.admin.timeline import build_timeline
from django_alipay.catalog_text import describe
from django_alipay.domain import clock, refunds, trades
from django_alipay.domain.errors import RefundAmountExceeded
from django_alipay.enums import Product, RefundKind, RefundStatus
from django_alipay.forms import BulkReasonForm, RefundForm, new_form_key
from django_alipay.models import Refund, Trade
from django_alipay.protocol import clock as protocol_clock

__all__ = ["RefundInline", "TradeAdmin"]

PERMISSION_REFUND = "django_alipay.refund_trade"
PERMISSION_REVERSE = "django_alipay.reverse_trade"
PERMISSION_SYNC = "django_alipay.sync_trade"

#: Short names for the list (the product's full label names the Alipay service, for the detail page).
PRODUCT_SHORT = {
    Product.ONLINE_WEB: gettext_lazy("Website"),
    Product.ONLINE_WAP: gettext_lazy("Mobile web"),
    Product.IN_STORE_BARCODE: gettext_lazy("In store, barcode"),
    Product.IN_STORE_QR: gettext_lazy("In store, QR code"),
}
#: What the statuses a trade really goes through mean to a shop owner (other catalog codes show as is).
STATUS_WORDS = {
    "WAIT_BUYER_PAY": gettext_lazy("Waiting for payment"),
    "TRADE_SUCCESS": gettext_lazy("Paid"),
    "TRADE_FINISHED": gettext_lazy("Paid (finished)"),
    "TRADE_CLOSED": gettext_lazy("Closed"),
}
#: A closed trade whose payment was reversed: the buyer got the money back, unlike a trade never paid.
REVERSED_WORDS = gettext_lazy("Reversed")


class StatusFilter(admin.SimpleListFilter):
    """The statuses trades actually have, in plain words (not all thirty codes of the catalog)."""

    title = gettext_lazy("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        present = set(
            model_admin.get_queryset(request).order_by().values_list("status", flat=True).distinct()
        )
        ordered = [code for code in STATUS_WORDS if code in present] + sorted(present - set(STATUS_WORDS))
        return [
            (code, f"{STATUS_WORDS[code]} ({code})" if code in STATUS_WORDS else code) for code in ordered
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Trade]) -> QuerySet[Trade]:
        value = self.value()
        return queryset.filter(status=value) if value else queryset


class RefundInline(admin.TabularInline):
    """The trade's refunds and reversals, read-only (each links to its ledger row)."""

    model = Refund
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("kind", "amount_text", "status_badge", "error_text", "reason", "created_display")
    readonly_fields = fields
    verbose_name_plural = gettext_lazy("Refunds and reversals")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("Amount"))
    def amount_text(self, obj: Refund) -> str:
        return money_text(obj.amount, obj.currency)

    @admin.display(description=gettext_lazy("Status"))
    def status_badge(self, obj: Refund) -> SafeString:
        return badge(obj.status, obj.get_status_display())

    @admin.display(description=gettext_lazy("Gateway said"))
    def error_text(self, obj: Refund) -> str:
        if not obj.error_code:
            return ""
        description = describe(obj.error_description)
        return f"{obj.error_code}: {description}" if description else obj.error_code

    @admin.display(description=gettext_lazy("Requested (Beijing)"))
    def created_display(self, obj: Refund) -> str:
        return beijing_text(obj.created_at)


class ProductFilter(admin.SimpleListFilter):
    """The four products, by their short names."""

    title = gettext_lazy("product")
    parameter_name = "product"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(product.value, str(label)) for product, label in PRODUCT_SHORT.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Trade]) -> QuerySet[Trade]:
        value = self.value()
        return queryset.filter(product=value) if value else queryset


def _was_reversed(trade: Trade) -> bool:
    """True when a reversal of ``trade`` succeeded (the list annotates it; a single trade asks)."""
    known = getattr(trade, "was_reversed", None)
    if known is not None:
        return bool(known)
    return trade.refunds.filter(kind=RefundKind.REVERSE, status=RefundStatus.SUCCEEDED).exists()


#: How long after a refund the same amount on the same trade asks "again?" before it is sent.
REPEAT_WARNING = timedelta(minutes=10)


def _recent_same_refund(trade: Trade, amount: str, key: str) -> Refund | None:
    """A refund of ``amount`` on ``trade`` made within :data:`REPEAT_WARNING` (not failed), if any.

    The form's own refund (its key: the same form sent twice) is not a repeat: the domain answers with it.
    """
    return (
        trade.refunds.exclude(idempotency_key=key)
        .filter(
            kind=RefundKind.REFUND,
            amount=Decimal(amount),
            created_at__gte=clock.now() - REPEAT_WARNING,
            status__in=RefundStatus.debiting(),
        )
        .order_by("-created_at")
        .first()
    )


@admin.register(Trade)
class TradeAdmin(MerchantScopedAdmin, ReadOnlyAdmin):
    """Trades as Alipay reported them; money moves only through the refund and reverse pages and actions."""

    change_form_template = "django_alipay/admin/trade/change_form.html"
    change_list_template = "django_alipay/admin/trade/change_list.html"
    list_display = (
        "order",
        "status_badge",
        "amount_text",
        "refunded_text",
        "product_short",
        "merchant_name",
        "paid_beijing",
    )
    list_display_links = ("order",)
    list_filter = (StatusFilter, ProductFilter, ("merchant", admin.RelatedOnlyFieldListFilter))
    search_fields = ("out_trade_no", "trade_no")
    list_select_related = ("merchant",)
    actions = ("refund_in_full", "refund_partially", "reverse_trades", "sync_from_alipay")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Trade]:
        """The trades, each marked with whether it was reversed (its status then reads "Reversed")."""
        reversal = Refund.objects.filter(
            trade=OuterRef("pk"), kind=RefundKind.REVERSE, status=RefundStatus.SUCCEEDED
        )
        return super().get_queryset(request).annotate(was_reversed=Exists(reversal))

    inlines = (RefundInline,)
    fieldsets = (
        (
            gettext_lazy("Order"),
            {"fields": ("out_trade_no", "merchant", "product", "subject", "body", "amount_text")},
        ),
        (
            gettext_lazy("At Alipay"),
            {
                "fields": (
                    "status",
                    "trade_no",
                    "additional_status",
                    "payment_type",
                    "buyer_login",
                    "buyer_id",
                )
            },
        ),
        (
            gettext_lazy("Times"),
            {"fields": ("created_both", "paid_both", "closed_both", "synced_both")},
        ),
        (
            gettext_lazy("Technical details"),
            {"classes": ("collapse",), "fields": ("payment_url", "qr_code", "gateway_response_block")},
        ),
    )
    readonly_fields = (
        "out_trade_no",
        "merchant",
        "product",
        "subject",
        "body",
        "amount_text",
        "status",
        "trade_no",
        "additional_status",
        "payment_type",
        "buyer_login",
        "buyer_id",
        "created_both",
        "paid_both",
        "closed_both",
        "synced_both",
        "payment_url",
        "qr_code",
        "gateway_response_block",
    )

    # --- permissions ------------------------------------------------------------------------------------

    # The model permission, and for one trade its merchant within the user's reach (django_alipay.access).

    def has_refund_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access_for(request.user).may(PERMISSION_REFUND, obj)

    def has_reverse_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access_for(request.user).may(PERMISSION_REVERSE, obj)

    def has_sync_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access_for(request.user).may(PERMISSION_SYNC, obj)

    # --- list and fields --------------------------------------------------------------------------------

    @admin.display(description=gettext_lazy("Order number"), ordering="out_trade_no")
    def order(self, obj: Trade) -> SafeString:
        return nowrap(obj.out_trade_no)

    @admin.display(description=gettext_lazy("Merchant"), ordering="merchant__name")
    def merchant_name(self, obj: Trade) -> str:
        return obj.merchant.name

    @admin.display(description=gettext_lazy("Status"), ordering="status")
    def status_badge(self, obj: Trade) -> SafeString:
        if obj.status == "TRADE_CLOSED" and _was_reversed(obj):
            return badge(obj.status, str(REVERSED_WORDS))
        return badge(obj.status, str(STATUS_WORDS.get(obj.status, obj.status)))

    @admin.display(description=gettext_lazy("Amount"), ordering="amount")
    def amount_text(self, obj: Trade) -> SafeString:
        return nowrap(money_text(obj.amount, obj.currency))

    @admin.display(description=gettext_lazy("Product"), ordering="product")
    def product_short(self, obj: Trade) -> str:
        return str(PRODUCT_SHORT.get(Product(obj.product), obj.product))

    @admin.display(description=gettext_lazy("Refunded"), ordering="refunded_amount")
    def refunded_text(self, obj: Trade) -> SafeString:
        if not obj.refunded_amount and not obj.refund_pending_amount:
            return format_html('<span class="alipay-quiet">{}</span>', "—")
        text = money_text(obj.refunded_amount, obj.currency)
        if obj.refund_pending_amount:
            pending = money_text(obj.refund_pending_amount, obj.currency)
            return format_html(
                '<span style="white-space:nowrap">{}</span> <small>(+{} {})</small>',
                text,
                pending,
                _("pending"),
            )
        return nowrap(text)

    @admin.display(description=gettext_lazy("Paid (Beijing)"), ordering="paid_at")
    def paid_beijing(self, obj: Trade) -> SafeString:
        # Minutes are enough in a list; the trade's page shows the seconds and the shop's own time.
        return nowrap(beijing_text(obj.paid_at)[:16])

    @admin.display(description=gettext_lazy("Created"))
    def created_both(self, obj: Trade) -> SafeString:
        return both_times(obj.created_at)

    @admin.display(description=gettext_lazy("Paid"))
    def paid_both(self, obj: Trade) -> SafeString:
        return both_times(obj.paid_at)

    @admin.display(description=gettext_lazy("Closed"))
    def closed_both(self, obj: Trade) -> SafeString:
        return both_times(obj.closed_at)

    @admin.display(description=gettext_lazy("Last checked with Alipay"))
    def synced_both(self, obj: Trade) -> SafeString:
        return both_times(obj.last_synced_at)

    @admin.display(description=gettext_lazy("Last gateway answer"))
    def gateway_response_block(self, obj: Trade) -> SafeString:
        return json_block(obj.gateway_response)

    # --- change page --------------------------------------------------------------------------------------

    def _urls(self, trade: Trade) -> dict[str, str]:
        return {
            name: reverse(f"admin:django_alipay_trade_{name}", args=[trade.pk])
            for name in ("refund", "reverse", "sync")
        }

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        trade = self.get_object(request, unquote(object_id))
        if trade is not None:
            context.update(self._summary(request, trade))
        return super().change_view(request, object_id, form_url, context)

    def _summary(self, request: HttpRequest, trade: Trade) -> dict[str, Any]:
        now = clock.now()
        return {
            "trade": trade,
            "status_badge": badge(trade.status),
            "money": {
                "amount": money_text(trade.amount, trade.currency),
                "refunded": money_text(trade.refunded_amount, trade.currency),
                "pending": money_text(trade.refund_pending_amount, trade.currency)
                if trade.refund_pending_amount
                else "",
                "refundable": money_text(max(trade.refundable_amount, Decimal(0)), trade.currency),
            },
            "refund_refusal": refunds.refund_refusal(trade, now),
            "reverse_refusal": refunds.reverse_refusal(trade, now),
            "can_refund": self.has_refund_permission(request, trade),
            "can_reverse": self.has_reverse_permission(request, trade),
            "can_sync": self.has_sync_permission(request, trade),
            "action_urls": self._urls(trade),
            "timeline": build_timeline(trade),
            "two_zones": shows_two_zones(),
            "now_beijing": beijing_text(now),
            "now_local": local_text(now),
            "beijing_day": protocol_clock.beijing_date(now).isoformat(),
        }

    # --- extra pages ------------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> HttpResponse:
                return self.admin_site.admin_view(view)(*args, **kwargs)

            wrapper.model_admin = self  # type: ignore[attr-defined]
            return update_wrapper(wrapper, view)

        info = self.opts.app_label, self.opts.model_name
        return [
            path("<path:object_id>/refund/", wrap(self.refund_view), name="{}_{}_refund".format(*info)),
            path("<path:object_id>/reverse/", wrap(self.reverse_view), name="{}_{}_reverse".format(*info)),
            path("<path:object_id>/sync/", wrap(self.sync_view), name="{}_{}_sync".format(*info)),
            *super().get_urls(),
        ]

    def _trade_or_404(self, request: HttpRequest, object_id: str) -> Trade:
        # get_queryset decides what a user may see: a trade outside it is "not found", whoever asks.
        trade = self.get_object(request, unquote(object_id))
        if trade is None:
            raise Http404(_("No such trade."))
        return trade

    def _page(
        self, request: HttpRequest, template: str, trade: Trade | None, **context: Any
    ) -> TemplateResponse:
        base = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "trade": trade,
            "title": context.pop("title", ""),
        }
        if trade is not None:
            base["change_url"] = reverse("admin:django_alipay_trade_change", args=[trade.pk])
            base["money"] = self._summary(request, trade)["money"]
        return TemplateResponse(request, template, {**base, **context})

    def _back(self, trade: Trade) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:django_alipay_trade_change", args=[trade.pk]))

    @transaction.non_atomic_requests
    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Ask the amount and reason of one refund, showing what is still refundable; send it on submit."""
        trade = self._trade_or_404(request, object_id)
        if not self.has_refund_permission(request, trade):
            raise PermissionDenied
        refusal = refunds.refund_refusal(trade)
        form = RefundForm(
            request.POST if request.method == "POST" else None,
            currency=trade.currency,
            refundable=trade.refundable_amount,
            initial={"idempotency_key": new_form_key()},
        )
        sent = request.method == "POST" and refusal is None and form.is_valid()
        asked = sent and not form.cleaned_data["repeat"]
        repeated = (
            _recent_same_refund(trade, form.cleaned_data["amount"], form.cleaned_data["idempotency_key"])
            if asked
            else None
        )
        if repeated is not None:
            form.add_error(
                None,
                _(
                    "A refund of %(amount)s was made on this order %(minutes)s minute(s) ago. Refund the "
                    "same amount again? Tick the box below and press Refund; otherwise go back to the order."
                )
                % {
                    "amount": money_text(repeated.amount, repeated.currency),
                    "minutes": max(1, round((clock.now() - repeated.created_at).total_seconds() / 60)),
                },
            )
        elif sent:
            try:
                refund = refunds.request_refund(
                    trade,
                    form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    idempotency_key=form.cleaned_data["idempotency_key"],
                    currency=trade.currency,
                )
            except REPORTED_ERRORS as exc:
                field = "amount" if isinstance(exc, RefundAmountExceeded) else getattr(exc, "parameter", None)
                form.add_error(field if field in ("amount", "reason") else None, error_text(exc))
            else:
                level, text = refund_message(refund)
                messages.add_message(request, level, text)
                return self._back(trade)
            trade.refresh_from_db()
            refusal = refunds.refund_refusal(trade)
        return self._page(
            request,
            "django_alipay/admin/trade/refund_form.html",
            trade,
            title=_("Refund order %(order)s") % {"order": trade.out_trade_no},
            form=form,
            refusal=refusal,
            ask_repeat=repeated is not None,
        )

    @transaction.non_atomic_requests
    def reverse_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirm and send a reversal, or say why the trade cannot be reversed and offer a refund."""
        trade = self._trade_or_404(request, object_id)
        if not self.has_reverse_permission(request, trade):
            raise PermissionDenied
        refusal = refunds.reverse_refusal(trade)
        # Reversed from another tab, or a moment ago: say so, rather than "closed" or "partly refunded".
        reversed_already = trade.refunds.filter(
            kind=RefundKind.REVERSE, status__in=RefundStatus.debiting()
        ).exists()
        if reversed_already:
            refusal = _("Order %(order)s has already been reversed: the buyer gets the full amount back.") % {
                "order": trade.out_trade_no
            }
        form = BulkReasonForm(
            request.POST if request.method == "POST" else None, initial={"idempotency_key": new_form_key()}
        )
        if request.method == "POST" and refusal is None and form.is_valid():
            try:
                refund = refunds.reverse(
                    trade,
                    reason=form.cleaned_data["reason"],
                    idempotency_key=form.cleaned_data["idempotency_key"],
                )
            except REPORTED_ERRORS as exc:
                messages.error(request, f"{trade.out_trade_no}: {error_text(exc)}")
            else:
                level, text = refund_message(refund)
                messages.add_message(request, level, text)
            return self._back(trade)
        return self._page(
            request,
            "django_alipay/admin/trade/reverse.html",
            trade,
            title=_("Reverse order %(order)s") % {"order": trade.out_trade_no},
            form=form,
            refusal=refusal,
            refund_url=reverse("admin:django_alipay_trade_refund", args=[trade.pk]),
            can_refund=self.has_refund_permission(request, trade) and not reversed_already,
            paid=trade.is_paid,
            beijing_day=protocol_clock.beijing_date(clock.now()).isoformat(),
        )

    @transaction.non_atomic_requests
    def sync_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Query the trade at Alipay and apply what it says (POST only)."""
        return require_POST(self._sync_one)(request, object_id)

    def _sync_one(self, request: HttpRequest, object_id: str) -> HttpResponse:
        trade = self._trade_or_404(request, object_id)
        if not self.has_sync_permission(request, trade):
            raise PermissionDenied
        report_rows(request, [trade], lambda t: t.out_trade_no, _sync_message, verb=_("Check with Alipay"))
        return self._back(trade)

    # --- actions ----------------------------------------------------------------------------------------

    def _bulk_refunds(
        self,
        request: HttpRequest,
        queryset: QuerySet[Trade],
        *,
        action: str,
        title: str,
        button: str,
        explanation: str,
        verb: str,
        perform: Callable[[Trade, str, str], Refund],
        row: Callable[[Trade], dict[str, Any]],
    ) -> HttpResponse | None:
        """Confirm, then run: the flow the bulk refund and reversal actions share.

        ``row(trade)`` describes a trade on the confirmation page (``allowed``, ``note``, ``amount``);
        ``perform(trade, reason, idempotency_key)`` asks the domain once the reason is confirmed, and every
        trade gets its own result message. Each trade's key is the form's key plus its id, so a resubmitted
        confirmation repeats nothing.
        """
        chosen = list(queryset.select_related("merchant").order_by("pk"))
        form = BulkReasonForm(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            key = form.cleaned_data["idempotency_key"]
            reason = form.cleaned_data["reason"]

            def run(trade: Trade) -> tuple[int, str]:
                return refund_message(perform(trade, reason, f"{key}-{trade.pk}"))

            report_rows(request, chosen, lambda t: t.out_trade_no, run, verb=verb)
            return None
        rows = [row(trade) for trade in chosen]
        return self._page(
            request,
            "django_alipay/admin/trade/confirm_bulk.html",
            None,
            title=title,
            rows=rows,
            form=BulkReasonForm(initial={"idempotency_key": new_form_key()}),
            action=action,
            button=button,
            explanation=explanation,
            selected=[str(trade.pk) for trade in queryset],
            action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
            any_allowed=any(r["allowed"] for r in rows),
        )

    @admin.action(description=gettext_lazy("Refund in full…"), permissions=["refund"])
    def refund_in_full(self, request: HttpRequest, queryset: QuerySet[Trade]) -> HttpResponse | None:
        def row(trade: Trade) -> dict[str, Any]:
            refusal = refunds.refund_refusal(trade)
            return {
                "trade": trade,
                "allowed": refusal is None,
                "note": refusal
                or _("Refund %(amount)s (everything still refundable).")
                % {"amount": money_text(trade.refundable_amount, trade.currency)},
                "amount": money_text(trade.amount, trade.currency),
            }

        return self._bulk_refunds(
            request,
            queryset,
            action="refund_in_full",
            title=_("Refund in full"),
            button=_("Refund these trades"),
            explanation=_(
                "Each trade is refunded whatever is still refundable on it. Trades that cannot be refunded "
                "are left alone, and every trade gets its own result message."
            ),
            verb=_("Full refunds"),
            perform=lambda trade, reason, key: refunds.request_full_refund(
                trade, reason=reason, idempotency_key=key
            ),
            row=row,
        )

    @admin.action(description=gettext_lazy("Refund part of the amount…"), permissions=["refund"])
    def refund_partially(self, request: HttpRequest, queryset: QuerySet[Trade]) -> HttpResponse | None:
        chosen = list(queryset[:2])
        if len(chosen) != 1:
            messages.error(request, _("Choose exactly one trade for a partial refund."))
            return None
        return HttpResponseRedirect(reverse("admin:django_alipay_trade_refund", args=[chosen[0].pk]))

    @admin.action(description=gettext_lazy("Reverse (same Beijing day only)…"), permissions=["reverse"])
    def reverse_trades(self, request: HttpRequest, queryset: QuerySet[Trade]) -> HttpResponse | None:
        def row(trade: Trade) -> dict[str, Any]:
            refusal = refunds.reverse_refusal(trade)
            what = (
                _("Reverse: returns the full %(amount)s and closes the trade.")
                if trade.is_paid
                else _("Cancel the unpaid order (no money moves).")
            )
            refundable = refusal is not None and trade.is_paid
            offer_refund = refundable and self.has_refund_permission(request, trade)
            refund_url = reverse("admin:django_alipay_trade_refund", args=[trade.pk])
            return {
                "trade": trade,
                "allowed": refusal is None,
                "note": refusal or what % {"amount": money_text(trade.amount, trade.currency)},
                "amount": money_text(trade.amount, trade.currency),
                "refund_url": refund_url if offer_refund else "",
            }

        return self._bulk_refunds(
            request,
            queryset,
            action="reverse_trades",
            title=_("Reverse trades"),
            button=_("Reverse these trades"),
            explanation=_(
                "A reversal undoes an in-store payment in full, and only on the day it was paid, Beijing "
                "time (until 23:59:59). After that, refund it instead."
            ),
            verb=_("Reversals"),
            perform=lambda trade, reason, key: refunds.reverse(trade, reason=reason, idempotency_key=key),
            row=row,
        )

    @admin.action(description=gettext_lazy("Check with Alipay (sync status)"), permissions=["sync"])
    def sync_from_alipay(self, request: HttpRequest, queryset: QuerySet[Trade]) -> None:
        report_rows(
            request, list(queryset.order_by("pk")), lambda t: t.out_trade_no, _sync_message, verb=_("Sync")
        )


def _sync_message(trade: Trade) -> tuple[int, str]:
    """Query one trade at Alipay through the domain and describe the result."""
    change = trades.sync_trade(trade)
    order = trade.out_trade_no
    if change is None:
        return messages.INFO, _(
            "%(order)s: Alipay has no record of it (the buyer never reached the cashier)."
        ) % {"order": order}
    if change.flag:
        return messages.WARNING, _("%(order)s: Alipay's answer could not be applied: %(why)s") % {
            "order": order,
            "why": change.message,
        }
    if change.changed:
        return messages.SUCCESS, _("%(order)s: status moved from %(old)s to %(new)s.") % {
            "order": order,
            "old": change.previous_status,
            "new": change.status,
        }
    return messages.SUCCESS, _("%(order)s is up to date (%(status)s).") % {
        "order": order,
        "status": change.status,
    }
