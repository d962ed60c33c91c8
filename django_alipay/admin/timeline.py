"""The life of a trade as a list of dated events a shop owner can read at a glance (display only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext as _

from django_alipay.admin.common import beijing_text, local_text, money_text
from django_alipay.catalog_text import describe
from django_alipay.enums import (
    NotificationFlag,
    NotificationKind,
    ProcessingOutcome,
    Product,
    RefundKind,
    RefundStatus,
    Verification,
)
from django_alipay.models import Notification, Refund, Trade

__all__ = ["Event", "build_timeline"]


@dataclass(frozen=True)
class Event:
    """One dated line of the timeline; ``tone`` (ok, wait, bad, off, info, odd) colours its marker."""

    at: datetime
    tone: str
    title: str
    detail: str = ""
    link: str = ""
    rank: int = 0

    @property
    def beijing(self) -> str:
        """When, in Beijing time."""
        return beijing_text(self.at)

    @property
    def local(self) -> str:
        """When, in the shop's time zone."""
        return local_text(self.at)


def _flag_label(flag: str) -> str:
    try:
        return str(NotificationFlag(flag).label)
    except ValueError:
        return flag


def _notification_event(note: Notification) -> Event:
    link = reverse("admin:django_alipay_notification_change", args=[note.pk])
    reported = note.status or _("no status")
    if note.kind == NotificationKind.RETURN:
        genuine = note.verification == Verification.VERIFIED
        return Event(
            note.received_at,
            "info" if genuine else "off",
            _("The buyer came back from Alipay's cashier"),
            _("Its signature verified (shown to the buyer; it changes nothing).")
            if genuine
            else _("Its signature did not verify: ignored."),
            link,
            rank=2,
        )
    what = _("refund result") if note.kind == NotificationKind.REFUND else _("payment status")
    flag = _flag_label(note.flag) if note.flag else ""
    details = " — ".join(
        part for part in (flag, note.flag_info.splitlines()[0] if note.flag_info else "") if part
    )
    outcome = note.outcome
    if outcome == ProcessingOutcome.PROCESSED:
        tone, title = "ok", _("Alipay reported %(status)s: applied") % {"status": reported}
        detail = _("Notification about the %(what)s, verified.") % {"what": what}
        if note.flag:
            detail += " " + flag + "."
    elif outcome == ProcessingOutcome.DUPLICATE:
        tone, title = "off", _("Alipay repeated %(status)s") % {"status": reported}
        detail = _("A repeat of an earlier notification; nothing changed.")
    elif outcome == ProcessingOutcome.IGNORED:
        tone, title = "wait", _("Alipay reported %(status)s: not applied") % {"status": reported}
        detail = details or _("Genuine, but it could not be applied.")
    elif outcome == ProcessingOutcome.REJECTED:
        tone, title = "bad", _("A notification was rejected")
        detail = details or _("It could not be verified as coming from Alipay.")
    elif outcome == ProcessingOutcome.RETRY:
        tone, title = "wait", _("A notification is waiting for Alipay to send it again")
        detail = details
    elif outcome == ProcessingOutcome.ERROR:
        tone, title = "bad", _("A notification failed with an error")
        detail = note.error.splitlines()[0] if note.error else details
    else:
        tone, title, detail = "info", _("A notification is being processed"), ""
    return Event(note.received_at, tone, title, detail, link, rank=2)


def _refund_events(refund: Refund) -> list[Event]:
    link = reverse("admin:django_alipay_refund_change", args=[refund.pk])
    reversal = refund.kind == RefundKind.REVERSE
    what = _("Reversal") if reversal else _("Refund")
    amount = money_text(refund.amount, refund.currency)
    reason = _("Reason: %(reason)s") % {"reason": refund.reason} if refund.reason else ""
    events = [
        Event(
            refund.created_at,
            "info",
            _("%(what)s of %(amount)s requested") % {"what": what, "amount": amount},
            " ".join(part for part in (refund.gateway_refund_id + ".", reason) if part),
            link,
            rank=3,
        )
    ]
    later = refund.completed_at or refund.submitted_at or refund.updated_at
    description = describe(refund.error_description) or refund.error_code
    if refund.status == RefundStatus.SUCCEEDED:
        events.append(
            Event(
                later,
                "ok",
                _("%(what)s of %(amount)s succeeded") % {"what": what, "amount": amount},
                "",
                link,
                4,
            )
        )
    elif refund.status == RefundStatus.FAILED:
        events.append(
            Event(
                later,
                "bad",
                _("%(what)s of %(amount)s refused") % {"what": what, "amount": amount},
                f"{description} ({refund.error_code})" if refund.error_code else description,
                link,
                4,
            )
        )
    elif refund.status == RefundStatus.UNKNOWN:
        events.append(
            Event(
                later,
                "odd",
                _("%(what)s outcome unknown") % {"what": what},
                _(
                    "Alipay's answer was lost or unclear (%(detail)s); the amount stays reserved until it is "
                    "known."
                )
                % {"detail": description or _("no answer")},
                link,
                4,
            )
        )
    elif refund.status == RefundStatus.SUBMITTED and refund.submitted_at is not None:
        events.append(
            Event(
                refund.submitted_at,
                "info",
                _("%(what)s sent to Alipay") % {"what": what},
                _("Accepted; the result comes by notification."),
                link,
                4,
            )
        )
    return events


def build_timeline(trade: Trade) -> list[Event]:
    """Everything that happened to ``trade``, oldest first: created, notifications, paid, refunds, closed."""
    events = [
        Event(
            trade.created_at,
            "info",
            _("Order created"),
            _("%(amount)s for “%(subject)s”, %(product)s.")
            % {
                "amount": money_text(trade.amount, trade.currency),
                "subject": trade.subject,
                "product": Product(trade.product).label,
            },
            rank=0,
        )
    ]
    if trade.paid_at is not None:
        buyer = trade.buyer_login or trade.buyer_id
        detail = (
            _("Alipay trade number %(trade_no)s.") % {"trade_no": trade.trade_no} if trade.trade_no else ""
        )
        if buyer:
            detail = (_("Paid by %(buyer)s. ") % {"buyer": buyer} + detail).strip()
        events.append(Event(trade.paid_at, "ok", _("Paid"), detail, rank=1))
    # Linked notifications by their trade, the others by the order number they named (each by its index).
    notes = Notification.objects.filter(
        Q(trade=trade) | Q(trade__isnull=True, merchant_id=trade.merchant_id, out_trade_no=trade.out_trade_no)
    ).order_by("received_at", "pk")
    events.extend(_notification_event(note) for note in notes)
    for refund in Refund.objects.filter(trade=trade).order_by("created_at", "pk"):
        events.extend(_refund_events(refund))
    if trade.closed_at is not None:
        events.append(Event(trade.closed_at, "off", _("Closed"), _("Alipay closed the trade."), rank=5))
    if trade.last_synced_at is not None:
        events.append(
            Event(
                trade.last_synced_at,
                "info",
                _("Checked with Alipay"),
                _("Last query of the trade's status at Alipay."),
                rank=6,
            )
        )
    # Alipay's times are to the second and ours to the microsecond: within one second, the sequence of a
    # trade's life (created, paid, notified, refunded, closed) decides, not the sub-second parts.
    return sorted(events, key=lambda event: (event.at.replace(microsecond=0), event.rank, event.at))
