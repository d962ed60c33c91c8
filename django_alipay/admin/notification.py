"""The notification admin: every request Alipay (or anyone) sent, shown escaped, and a way to reprocess it."""

from __future__ import annotations

from functools import update_wrapper
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from django_alipay.access import access_for
from django_alipay.admin.common import (
    MerchantScopedAdmin,
    PresentValuesFilter,
    ReadOnlyAdmin,
    badge,
    both_times,
    json_block,
    nowrap,
    report_rows,
    short_beijing,
)
from django_alipay.admin.trade import PERMISSION_SYNC
from django_alipay.domain import notifications
from django_alipay.enums import NotificationFlag
from django_alipay.models import Notification

__all__ = ["NotificationAdmin"]

#: Short words for the list; the page shows the full descriptions.
KIND_WORDS = {
    "trade": gettext_lazy("Payment"),
    "refund": gettext_lazy("Refund"),
    "return": gettext_lazy("Return visit"),
}
VERIFICATION_WORDS = {
    "pending": gettext_lazy("Pending"),
    "verified": gettext_lazy("Genuine"),
    "rejected": gettext_lazy("Rejected"),
    "unverifiable": gettext_lazy("Unverified"),
}
OUTCOME_WORDS = {
    "pending": gettext_lazy("Pending"),
    "processed": gettext_lazy("Processed"),
    "ignored": gettext_lazy("Not applied"),
    "duplicate": gettext_lazy("Duplicate"),
    "rejected": gettext_lazy("Rejected"),
    "retry": gettext_lazy("Awaiting resend"),
    "error": gettext_lazy("Error"),
}


class FlagFilter(PresentValuesFilter):
    """The flags notifications really carry, in words."""

    title = gettext_lazy("flag")
    parameter_name = "flag"
    field = "flag"
    labels = {flag.value: str(flag.label) for flag in NotificationFlag}  # noqa: RUF012


#: How much of a raw body the page shows (the stored body is capped by NOTIFY_MAX_BODY_BYTES anyway).
RAW_SHOWN = 16 * 1024


def _answer_message(note: Notification, answer: notifications.NotificationAnswer) -> tuple[int, str]:
    label = _("Notification %(id)s") % {"id": note.pk}
    outcome = note.get_outcome_display()
    flag = f" ({_flag_label(note.flag)})" if note.flag else ""
    if answer.acknowledged and not note.flag:
        return messages.SUCCESS, f"{label}: {outcome}."
    if answer.acknowledged:
        return messages.WARNING, f"{label}: {outcome}{flag}."
    return (
        messages.ERROR,
        f"{label}: {outcome}{flag}. {note.flag_info.splitlines()[-1] if note.flag_info else ''}",
    )


def _flag_label(flag: str) -> str:
    try:
        return str(NotificationFlag(flag).label)
    except ValueError:
        return flag


@admin.register(Notification)
class NotificationAdmin(MerchantScopedAdmin, ReadOnlyAdmin):
    """Stored notifications and return visits: verification, outcome, flag, and the raw request, escaped."""

    change_form_template = "django_alipay/admin/notification/change_form.html"
    list_display = (
        "received_short",
        "kind_short",
        "merchant_name",
        "order",
        "status",
        "verification_short",
        "outcome_short",
        "flag_text",
    )
    list_display_links = ("received_short",)
    list_filter = (
        "kind",
        "verification",
        "outcome",
        FlagFilter,
        ("merchant", admin.RelatedOnlyFieldListFilter),
    )
    shows_unassigned = True  # requests to an unknown notify URL: superusers only (django_alipay.access)
    search_fields = ("notify_id", "out_trade_no")
    list_select_related = ("merchant",)
    actions = ("reprocess",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "received_both",
                    "kind",
                    "merchant",
                    "notify_id",
                    "notify_type",
                    "out_trade_no",
                    "status",
                )
            },
        ),
        (
            gettext_lazy("Verification and outcome"),
            {
                "fields": (
                    "verification_badge",
                    "outcome_badge",
                    "flag_text",
                    "flag_info",
                    "links",
                    "processed_both",
                    "error",
                )
            },
        ),
        (gettext_lazy("Parameters as received"), {"fields": ("params_table",)}),
        (
            gettext_lazy("Raw request"),
            {
                "fields": (
                    "method",
                    "remote_addr",
                    "forwarded_for",
                    "content_type",
                    "body_size",
                    "body_truncated",
                    "query_string",
                    "raw_body",
                    "headers_block",
                )
            },
        ),
        (gettext_lazy("Traceback"), {"classes": ("collapse",), "fields": ("traceback",)}),
    )
    readonly_fields = (
        "received_both",
        "kind",
        "merchant",
        "notify_id",
        "notify_type",
        "out_trade_no",
        "status",
        "verification_badge",
        "outcome_badge",
        "flag_text",
        "flag_info",
        "links",
        "processed_both",
        "error",
        "params_table",
        "method",
        "remote_addr",
        "forwarded_for",
        "content_type",
        "body_size",
        "body_truncated",
        "query_string",
        "raw_body",
        "headers_block",
        "traceback",
    )

    def has_sync_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return access_for(request.user).may(PERMISSION_SYNC, obj)

    # --- display (every value goes through format_html: stored text is never trusted as HTML) ---------------

    @admin.display(description=gettext_lazy("Received"), ordering="received_at")
    def received_both(self, obj: Notification) -> SafeString:
        return both_times(obj.received_at)

    @admin.display(description=gettext_lazy("Received (Beijing)"), ordering="received_at")
    def received_short(self, obj: Notification) -> SafeString:
        return short_beijing(obj.received_at)

    @admin.display(description=gettext_lazy("Kind"), ordering="kind")
    def kind_short(self, obj: Notification) -> str:
        return str(KIND_WORDS.get(obj.kind, "—"))

    @admin.display(description=gettext_lazy("Merchant"), ordering="merchant__name")
    def merchant_name(self, obj: Notification) -> str:
        return obj.merchant.name if obj.merchant else "—"

    @admin.display(description=gettext_lazy("Order number"), ordering="out_trade_no")
    def order(self, obj: Notification) -> SafeString:
        return nowrap(obj.out_trade_no[:64])

    @admin.display(description=gettext_lazy("Verification"), ordering="verification")
    def verification_short(self, obj: Notification) -> SafeString:
        return badge(obj.verification, str(VERIFICATION_WORDS.get(obj.verification, obj.verification)))

    @admin.display(description=gettext_lazy("Outcome"), ordering="outcome")
    def outcome_short(self, obj: Notification) -> SafeString:
        return badge(obj.outcome, str(OUTCOME_WORDS.get(obj.outcome, obj.outcome)))

    @admin.display(description=gettext_lazy("Processed"))
    def processed_both(self, obj: Notification) -> SafeString:
        return both_times(obj.processed_at)

    @admin.display(description=gettext_lazy("Verification"), ordering="verification")
    def verification_badge(self, obj: Notification) -> SafeString:
        return badge(obj.verification, obj.get_verification_display())

    @admin.display(description=gettext_lazy("Outcome"), ordering="outcome")
    def outcome_badge(self, obj: Notification) -> SafeString:
        return badge(obj.outcome, obj.get_outcome_display())

    @admin.display(description=gettext_lazy("Flag"), ordering="flag")
    def flag_text(self, obj: Notification) -> SafeString:
        if not obj.flag:
            return format_html("{}", "")
        return format_html('<span title="{}">{}</span>', obj.flag, _flag_label(obj.flag))

    @admin.display(description=gettext_lazy("Related"))
    def links(self, obj: Notification) -> SafeString:
        parts = []
        if obj.trade_id:
            parts.append((reverse("admin:django_alipay_trade_change", args=[obj.trade_id]), _("trade")))
        if obj.refund_id:
            parts.append((reverse("admin:django_alipay_refund_change", args=[obj.refund_id]), _("refund")))
        if obj.duplicate_of_id:
            parts.append(
                (
                    reverse("admin:django_alipay_notification_change", args=[obj.duplicate_of_id]),
                    _("first delivery (this one is a duplicate)"),
                )
            )
        if not parts:
            return format_html("{}", "—")
        return format_html_join(" · ", '<a href="{}">{}</a>', parts)

    @admin.display(description=gettext_lazy("Parameters"))
    def params_table(self, obj: Notification) -> SafeString:
        if not obj.params:
            return format_html("{}", _("None decoded."))
        rows = format_html_join(
            "", "<tr><th>{}</th><td><code>{}</code></td></tr>", sorted(obj.params.items())
        )
        return format_html('<table class="alipay-params">{}</table>', rows)

    @admin.display(description=gettext_lazy("Raw body"))
    def raw_body(self, obj: Notification) -> SafeString:
        data = bytes(obj.body or b"")
        if not data:
            return format_html("{}", _("(empty, or not kept because it was too large)"))
        charset = obj.merchant.charset if obj.merchant else "utf-8"
        text = data[:RAW_SHOWN].decode(charset, errors="backslashreplace")
        more = _(" … (%(n)d more bytes)") % {"n": len(data) - RAW_SHOWN} if len(data) > RAW_SHOWN else ""
        return format_html('<pre class="alipay-raw">{}{}</pre>', text, more)

    @admin.display(description=gettext_lazy("Headers kept"))
    def headers_block(self, obj: Notification) -> SafeString:
        return json_block(obj.headers)

    # --- reprocess ------------------------------------------------------------------------------------------

    def _reprocess_rows(self, request: HttpRequest, rows: list[Notification]) -> None:
        def run(note: Notification) -> tuple[int, str]:
            answer = notifications.reprocess(note)
            return _answer_message(note, answer)

        report_rows(
            request, rows, lambda n: _("Notification %(id)s") % {"id": n.pk}, run, verb=_("Reprocess")
        )

    @admin.action(description=gettext_lazy("Reprocess (notifications not acted upon)"), permissions=["sync"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        self._reprocess_rows(request, list(queryset.order_by("pk")))

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> HttpResponse:
                return self.admin_site.admin_view(view)(*args, **kwargs)

            return update_wrapper(wrapper, view)

        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/reprocess/", wrap(self.reprocess_view), name="{}_{}_reprocess".format(*info)
            ),
            *super().get_urls(),
        ]

    @transaction.non_atomic_requests
    def reprocess_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Reprocess one notification from its page (POST only)."""
        return require_POST(self._reprocess_one)(request, object_id)

    def _reprocess_one(self, request: HttpRequest, object_id: str) -> HttpResponse:
        note = self.get_object(request, unquote(object_id))
        if note is None:
            raise Http404(_("No such notification."))
        if not self.has_sync_permission(request, note):
            raise PermissionDenied
        self._reprocess_rows(request, [note])
        return HttpResponseRedirect(reverse("admin:django_alipay_notification_change", args=[note.pk]))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        context["can_reprocess"] = self.has_sync_permission(request)
        context["reprocess_url"] = reverse("admin:django_alipay_notification_reprocess", args=[object_id])
        return super().change_view(request, object_id, form_url, context)
