"""Shared pieces of the admin: money and time as a shop owner reads them, status badges, result messages."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from django_alipay.access import access_for
from django_alipay.catalog_text import describe
from django_alipay.domain import refunds as refund_domain
from django_alipay.enums import Environment, RefundKind, RefundStatus
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.models import Refund
from django_alipay.protocol import clock as protocol_clock
from django_alipay.protocol import money
from django_alipay.protocol.client import TIMESTAMP_VALIDITY
from django_alipay.protocol.errors import AlipayError

__all__ = [
    "MerchantScopedAdmin",
    "PresentValuesFilter",
    "ReadOnlyAdmin",
    "badge",
    "beijing_text",
    "both_times",
    "json_block",
    "local_text",
    "money_text",
    "nowrap",
    "refund_message",
    "report_rows",
    "short_beijing",
]

T = TypeVar("T")

_BEIJING_NAMES = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "PRC"})

#: Badge colours by meaning; white text on a solid colour reads in the admin's light and dark themes.
_TONES = {
    "ok": "#2f855a",
    "wait": "#b7791f",
    "bad": "#c53030",
    "off": "#718096",
    "info": "#2b6cb0",
    "odd": "#805ad5",
}
STATUS_TONES = {
    "WAIT_BUYER_PAY": "wait",
    "TRADE_SUCCESS": "ok",
    "TRADE_FINISHED": "ok",
    "TRADE_CLOSED": "off",
    "TRADE_PENDING": "wait",
    RefundStatus.REQUESTED: "info",
    RefundStatus.SUBMITTED: "info",
    RefundStatus.SUCCEEDED: "ok",
    RefundStatus.FAILED: "bad",
    RefundStatus.UNKNOWN: "odd",
    "verified": "ok",
    "rejected": "bad",
    "unverifiable": "wait",
    "pending": "info",
    "processed": "ok",
    "ignored": "wait",
    "duplicate": "off",
    "retry": "wait",
    "error": "bad",
}


def money_text(amount: Decimal | None, currency: str) -> str:
    """``12.50 USD`` (``100 JPY``): the amount in its currency's own decimals."""
    if amount is None:
        return "—"
    try:
        return f"{money.format_amount(amount, currency)} {currency}"
    except AlipayError:
        return f"{amount} {currency}"


def beijing_text(value: datetime | None) -> str:
    """``2024-05-01 12:00:00`` in Beijing time (the time Alipay and the same-day rule go by)."""
    return "—" if value is None else protocol_clock.format_datetime(value)


def local_text(value: datetime | None) -> str:
    """The same instant in the shop's own time zone (``settings.TIME_ZONE``), with the zone's name."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or ''}".rstrip()


def shows_two_zones() -> bool:
    """False when the shop's own time zone is Beijing time already (no need to say it twice)."""
    return str(timezone.get_current_timezone()) not in _BEIJING_NAMES


def both_times(value: datetime | None) -> SafeString:
    """An instant in Beijing time and in the shop's time, for readonly fields and lists."""
    if value is None:
        return format_html("{}", "—")
    if not shows_two_zones():
        return format_html("{} <small>(Beijing)</small>", beijing_text(value))
    return format_html(
        '{} <small>(Beijing)</small><br><span class="alipay-quiet">{}</span>',
        beijing_text(value),
        local_text(value),
    )


def nowrap(text: str) -> SafeString:
    """Text kept on one line in a list column."""
    return format_html('<span style="white-space:nowrap">{}</span>', text)


def short_beijing(value: datetime | None) -> SafeString:
    """An instant in Beijing time on one line, for list columns (pages show the shop's time as well)."""
    return nowrap(beijing_text(value))


class PresentValuesFilter(admin.SimpleListFilter):
    """A filter offering only the values the rows really have, with short labels (not the whole catalog)."""

    labels: ClassVar[dict[str, str]] = {}
    field: ClassVar[str] = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        present = model_admin.get_queryset(request).order_by().values_list(self.field, flat=True).distinct()
        values = sorted(value for value in set(present) if value)
        return [(value, str(self.labels.get(value, value))) for value in values]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


def badge(value: str, label: str | None = None) -> SafeString:
    """A small coloured label for a status, verification or outcome value (the value itself on hover)."""
    tone = _TONES[STATUS_TONES.get(value, "off")]
    return format_html(
        '<span class="alipay-badge" title="{}" style="display:inline-block;padding:1px 8px;border-radius:9px;'
        'background:{};color:#fff;font-size:11px;font-weight:600;letter-spacing:.02em;white-space:nowrap">'
        "{}</span>",
        value,
        tone,
        label or value,
    )


def json_block(value: Any) -> SafeString:
    """A JSON value pretty-printed in an escaped ``<pre>`` block (nothing in it is ever rendered as HTML)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html('<pre class="alipay-raw">{}</pre>', text)


def refund_message(refund: Refund) -> tuple[int, str]:
    """The message level and text telling a shop owner what became of a refund or reversal just asked for."""
    what = _("Reversal") if refund.kind == RefundKind.REVERSE else _("Refund")
    amount = money_text(refund.amount, refund.currency)
    order = refund.trade.out_trade_no
    subject = _("%(what)s of %(amount)s for order %(order)s") % {
        "what": what,
        "amount": amount,
        "order": order,
    }
    detail = describe(refund.error_description) or refund.error_code
    status = refund.status
    if status == RefundStatus.SUCCEEDED:
        return messages.SUCCESS, _("%(subject)s succeeded.") % {"subject": subject}
    if status == RefundStatus.SUBMITTED:
        return messages.INFO, _(
            "%(subject)s was accepted by Alipay; its result will follow by notification."
        ) % {"subject": subject}
    if status == RefundStatus.FAILED:
        return messages.ERROR, _("%(subject)s was refused by Alipay: %(detail)s (%(code)s).") % {
            "subject": subject,
            "detail": detail or _("no reason given"),
            "code": refund.error_code or "—",
        } + clock_hint(refund)
    if status == RefundStatus.UNKNOWN:
        return messages.WARNING, _(
            "%(subject)s: Alipay's answer was lost or unclear (%(detail)s). The amount stays reserved until "
            "the outcome is known; use “Ask Alipay again” on the refund, never a new refund."
        ) % {"subject": subject, "detail": detail or _("no answer")} + clock_hint(refund)
    if refund.error_code:
        return messages.WARNING, _(
            "%(subject)s could not be sent yet (%(detail)s); it stays reserved and will be sent again."
        ) % {"subject": subject, "detail": detail}
    return messages.WARNING, _(
        "%(subject)s is recorded and will be sent to Alipay once this request completes; its result appears "
        "in the refunds list."
    ) % {"subject": subject}


def clock_hint(refund: Refund) -> str:
    """When a refusal came while Alipay's clock and this server's disagreed: say so, and what to do.

    Requests that carry a time (a reversal's, a pre-created order's) expire when the two clocks differ by
    more than the timestamp's validity; Alipay then answers only a bare code such as ILLEGAL_ARGUMENT.
    """
    skew = refund_domain.clock_skew_of(refund)
    if skew is None:
        return ""
    minutes = round(abs(skew.total_seconds()) / 60)  # the Date header has whole seconds: round, not cut
    difference = _("%(hours)d h %(minutes)02d min") % {"hours": minutes // 60, "minutes": minutes % 60}
    values = {"difference": difference, "minutes": int(TIMESTAMP_VALIDITY.total_seconds() // 60)}
    if skew > timedelta(0):
        text = (
            _(
                "Alipay's clock is %(difference)s ahead of this server's; a request whose time is more than "
                "%(minutes)d minutes off is refused."
            )
            % values
        )
    else:
        text = (
            _(
                "Alipay's clock is %(difference)s behind this server's; a request whose time is more than "
                "%(minutes)d minutes off is refused."
            )
            % values
        )
    if refund.trade.merchant.environment == Environment.EMULATOR:
        advice = _(
            "The emulator's clock was moved: set it back to real time on the emulator's console, or move "
            "this server's clock with it, then try again."
        )
    else:
        advice = _("Check this server's clock (NTP), then try again.")
    return f" {text} {advice}"


def error_text(exc: Exception) -> str:
    """The message of an error the domain or the gateway raised, for a shop owner."""
    if isinstance(exc, AlipayError):
        return exc.message
    return str(exc)


#: What a per-row operation may raise and is reported as a message rather than an error page.
REPORTED_ERRORS: tuple[type[Exception], ...] = (AlipayError, AlipayConfigurationError)


@dataclass
class RowReport:
    """How many rows of a bulk action went which way, for the closing summary message."""

    done: int = 0
    refused: int = 0


def report_rows(
    request: HttpRequest,
    rows: Iterable[T],
    label: Callable[[T], str],
    run: Callable[[T], tuple[int, str]],
    *,
    verb: str,
) -> RowReport:
    """Run ``run`` for every row and show one message per row, then a summary: never a silent partial success.

    ``run`` returns a message level and text; domain refusals and gateway errors it raises become an error
    message for that row, and the next row is still tried.
    """
    summary = RowReport()
    count = 0
    for row in rows:
        count += 1
        try:
            level, text = run(row)
        except REPORTED_ERRORS as exc:
            summary.refused += 1
            messages.add_message(request, messages.ERROR, f"{label(row)}: {error_text(exc)}")
            continue
        if level >= messages.ERROR:
            summary.refused += 1
        else:
            summary.done += 1
        messages.add_message(request, level, text)
    if count > 1:
        level = messages.SUCCESS if not summary.refused else messages.WARNING
        messages.add_message(
            request,
            level,
            _("%(verb)s: %(done)d of %(count)d done, %(refused)d refused or failed (see each message).")
            % {"verb": verb, "done": summary.done, "count": count, "refused": summary.refused},
        )
    return summary


class MerchantScopedAdmin(admin.ModelAdmin):
    """An admin showing a user only the rows of merchants :mod:`django_alipay.access` lets them reach.

    Every list, page, custom view and bulk action starts from :meth:`get_queryset`, so a row outside the
    user's merchants is "not found" everywhere, as in the REST API.
    """

    #: The path from a row to its merchant (``"pk"`` for merchants themselves).
    merchant_path: ClassVar[str] = "merchant"
    #: Whether rows naming no merchant are listed (to superusers only).
    shows_unassigned: ClassVar[bool] = False

    def get_queryset(self, request: HttpRequest) -> Any:
        return access_for(request.user).scope(
            super().get_queryset(request), through=self.merchant_path, unassigned=self.shows_unassigned
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    """An admin for rows only the domain changes: viewable, never added, edited or deleted by a form.

    The changelist runs outside ``ATOMIC_REQUESTS``: its actions call the domain, which commits each step
    itself, so a refund is sent (and its result shown) within the request instead of after it.
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @transaction.non_atomic_requests
    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(request, extra_context)
