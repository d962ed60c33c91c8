"""The refund admin: a read-only ledger of refunds and reversals, and a way to settle unknown outcomes."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from django_alipay.access import access_for
from django_alipay.admin.common import (
    MerchantScopedAdmin,
    PresentValuesFilter,
    ReadOnlyAdmin,
    badge,
    both_times,
    json_block,
    money_text,
    nowrap,
    refund_message,
    report_rows,
    short_beijing,
)
from django_alipay.admin.trade import PERMISSION_REFUND
from django_alipay.catalog_text import describe
from django_alipay.domain import refunds, settlement
from django_alipay.enums import RefundStatus
from django_alipay.models import Refund

__all__ = ["RefundAdmin"]

#: Short words for the list; the refund's page shows the full description of its status.
STATUS_WORDS = {
    RefundStatus.REQUESTED: gettext_lazy("Requested"),
    RefundStatus.SUBMITTED: gettext_lazy("Sent, awaiting result"),
    RefundStatus.SUCCEEDED: gettext_lazy("Succeeded"),
    RefundStatus.FAILED: gettext_lazy("Failed"),
    RefundStatus.UNKNOWN: gettext_lazy("Outcome unknown"),
}


class RefundStatusFilter(PresentValuesFilter):
    """The statuses refunds really have, in short words."""

    title = gettext_lazy("status")
    parameter_name = "status"
    field = "status"
    labels = {str(status): str(words) for status, words in STATUS_WORDS.items()}  # noqa: RUF012


@admin.register(Refund)
class RefundAdmin(MerchantScopedAdmin, ReadOnlyAdmin):
    """Every refund and reversal with its gateway id, status and what the gateway said."""

    list_display = (
        "created_beijing",
        "trade_link",
        "kind",
        "amount_text",
        "status_short",
        "gateway_said",
        "gateway_refund_id",
    )
    list_display_links = ("created_beijing",)
    list_filter = (RefundStatusFilter, "kind", ("merchant", admin.RelatedOnlyFieldListFilter))
    search_fields = ("gateway_refund_id", "trade__out_trade_no", "trade__trade_no")
    list_select_related = ("trade", "merchant")
    actions = ("ask_alipay_again",)
    fieldsets = (
        (None, {"fields": ("gateway_refund_id", "trade_link", "merchant", "kind", "amount_text", "reason")}),
        (
            gettext_lazy("Outcome"),
            {"fields": ("status_badge", "gateway_said", "evidence", "attempts", "idempotency_key")},
        ),
        (
            gettext_lazy("Times"),
            {"fields": ("created_both", "submitted_both", "answered_both", "completed_both")},
        ),
        (
            gettext_lazy("Technical details"),
            {"classes": ("collapse",), "fields": ("request_block", "response_block")},
        ),
    )
    readonly_fields = (
        "gateway_refund_id",
        "trade_link",
        "merchant",
        "kind",
        "amount_text",
        "reason",
        "status_badge",
        "gateway_said",
        "evidence",
        "attempts",
        "idempotency_key",
        "created_both",
        "submitted_both",
        "answered_both",
        "completed_both",
        "request_block",
        "response_block",
    )

    def has_refund_permission(self, request: HttpRequest, obj: Refund | None = None) -> bool:
        return access_for(request.user).may(PERMISSION_REFUND, obj)

    @admin.display(description=gettext_lazy("Trade"), ordering="trade__out_trade_no")
    def trade_link(self, obj: Refund) -> SafeString:
        url = reverse("admin:django_alipay_trade_change", args=[obj.trade_id])
        return format_html('<a href="{}" style="white-space:nowrap">{}</a>', url, obj.trade.out_trade_no)

    @admin.display(description=gettext_lazy("Amount"), ordering="amount")
    def amount_text(self, obj: Refund) -> SafeString:
        return nowrap(money_text(obj.amount, obj.currency))

    @admin.display(description=gettext_lazy("Status"), ordering="status")
    def status_badge(self, obj: Refund) -> SafeString:
        return badge(obj.status, obj.get_status_display())

    @admin.display(description=gettext_lazy("Status"), ordering="status")
    def status_short(self, obj: Refund) -> SafeString:
        return badge(obj.status, str(STATUS_WORDS.get(RefundStatus(obj.status), obj.status)))

    @admin.display(description=gettext_lazy("Gateway said"))
    def gateway_said(self, obj: Refund) -> str:
        if not obj.error_code:
            return ""
        description = describe(obj.error_description)
        return f"{obj.error_code}: {description}" if description else obj.error_code

    @admin.display(description=gettext_lazy("Evidence awaited"))
    def evidence(self, obj: Refund) -> str:
        """What will settle a refund the gateway's answers left open: its notification, or the day's file."""
        day = settlement.awaiting_file(obj)
        if day is None:
            return ""
        return _(
            "Waiting for the settlement file of %(day)s, or for its notification, whichever comes first."
        ) % {"day": day.isoformat()}

    @admin.display(description=gettext_lazy("Requested (Beijing)"), ordering="created_at")
    def created_beijing(self, obj: Refund) -> SafeString:
        return short_beijing(obj.created_at)

    @admin.display(description=gettext_lazy("Requested"))
    def created_both(self, obj: Refund) -> SafeString:
        return both_times(obj.created_at)

    @admin.display(description=gettext_lazy("Last sent"))
    def submitted_both(self, obj: Refund) -> SafeString:
        return both_times(obj.submitted_at)

    @admin.display(description=gettext_lazy("Answered"))
    def answered_both(self, obj: Refund) -> SafeString:
        if obj.in_flight:
            return format_html("{}", _("Not yet: its call is under way, or the process making it stopped."))
        return both_times(obj.answered_at)

    @admin.display(description=gettext_lazy("Completed"))
    def completed_both(self, obj: Refund) -> SafeString:
        return both_times(obj.completed_at)

    @admin.display(description=gettext_lazy("Request sent"))
    def request_block(self, obj: Refund) -> SafeString:
        return json_block(obj.request_params)

    @admin.display(description=gettext_lazy("Last answer"))
    def response_block(self, obj: Refund) -> SafeString:
        return json_block(obj.response)

    @admin.action(
        description=gettext_lazy("Ask Alipay again (refunds of unknown outcome)"), permissions=["refund"]
    )
    def ask_alipay_again(self, request: HttpRequest, queryset: QuerySet[Refund]) -> None:
        def run(refund: Refund) -> tuple[int, str]:
            if not refund.is_pending:
                return messages.INFO, _("%(id)s is settled (%(status)s): nothing to ask.") % {
                    "id": refund.gateway_refund_id,
                    "status": refund.get_status_display().lower(),
                }
            settled = refunds.resolve_unknown(refund)
            return refund_message(settled)

        report_rows(
            request,
            list(queryset.select_related("trade").order_by("pk")),
            lambda r: r.gateway_refund_id,
            run,
            verb=_("Ask Alipay again"),
        )
