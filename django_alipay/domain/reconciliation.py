"""Find trades and refunds left open or unknown, ask Alipay about them, and report what does not add up."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet, Sum

from django_alipay.conf import app_settings
from django_alipay.domain import clock, refunds, settlement, trades
from django_alipay.enums import RefundKind, RefundStatus
from django_alipay.models import Merchant, Refund, Trade
from django_alipay.protocol.codes import TradeStatus

__all__ = [
    "Change",
    "Mismatch",
    "ReconciliationReport",
    "TradePlan",
    "TradeRange",
    "add_up",
    "check_balances",
    "pending_refunds",
    "plan_trade_ranges",
    "reconcile",
    "reconcile_trade_range",
    "stale_trades",
    "stranded_refunds",
]

logger = logging.getLogger("django_alipay.reconciliation")


@dataclass(frozen=True)
class Mismatch:
    """Something a person should look at: what (``kind``: trade, refund or balance), which, and why."""

    kind: str
    object_id: int
    out_trade_no: str
    message: str


@dataclass(frozen=True)
class Change:
    """A status that reconciliation changed: a trade's (``kind`` "trade") or a refund's ("refund").

    ``reference`` is the refund's gateway id (empty for a trade); ``before`` and ``after`` are the statuses.
    """

    kind: str
    object_id: int
    out_trade_no: str
    reference: str
    before: str
    after: str


@dataclass
class ReconciliationReport:
    """What one :func:`reconcile` run did and found."""

    started_at: datetime
    finished_at: datetime | None = None
    trades_checked: int = 0
    trades_changed: int = 0
    refunds_checked: int = 0
    refunds_settled: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing needs a person."""
        return not self.mismatches and not self.errors


def _batches(queryset: QuerySet[Trade] | QuerySet[Refund], size: int) -> Iterator[list[int]]:
    """Primary keys in ascending batches, re-querying each time so rows changed meanwhile are seen fresh."""
    last = 0
    while True:
        ids = list(queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:size])
        if not ids:
            return
        yield ids
        last = ids[-1]


def stale_trades(
    *, merchant: Merchant | None = None, age: float | None = None, as_of: datetime | None = None
) -> QuerySet[Trade]:
    """Unpaid trades older than ``age`` seconds (default ``RECONCILE_TRADE_AGE``), not queried since.

    ``as_of`` is the moment the ages are counted from (default: now); the batches of one fanned-out run all
    count from the moment the run was planned, so that they agree on which trades are stale.
    """
    now = clock.now() if as_of is None else as_of
    cutoff = now - timedelta(seconds=app_settings.RECONCILE_TRADE_AGE if age is None else float(age))
    oldest = now - timedelta(days=app_settings.RECONCILE_MAX_AGE_DAYS)
    queryset = Trade.objects.filter(
        status=TradeStatus.WAIT_BUYER_PAY.value, created_at__lte=cutoff, created_at__gte=oldest
    ).filter(Q(last_synced_at__isnull=True) | Q(last_synced_at__lte=cutoff))
    return queryset.filter(merchant=merchant) if merchant is not None else queryset


def pending_refunds(*, merchant: Merchant | None = None, age: float | None = None) -> QuerySet[Refund]:
    """Refunds requested, submitted or unknown and untouched for ``age`` s (default RECONCILE_REFUND_AGE).

    Not the unknown refunds whose resend was answered REPEATED_REFUNDMENT_REQUEST: asking again cannot tell
    more; their notification or the day's transaction file settles them (:mod:`.settlement`).
    """
    cutoff = clock.now() - timedelta(seconds=app_settings.RECONCILE_REFUND_AGE if age is None else float(age))
    queryset = (
        Refund.objects.filter(status__in=RefundStatus.pending())
        .filter(Q(submitted_at__isnull=True, created_at__lte=cutoff) | Q(submitted_at__lte=cutoff))
        .exclude(
            kind=RefundKind.REFUND,
            status=RefundStatus.UNKNOWN,
            error_code__in=settlement.ANSWERS_AWAITING_FILE,
        )
    )
    return queryset.filter(merchant=merchant) if merchant is not None else queryset


def stranded_refunds(*, merchant: Merchant | None = None, after: float | None = None) -> QuerySet[Refund]:
    """Refunds that no task is sending: lost with a message, a dispatch or a killed worker.

    Requested, or claimed for a call that can no longer be under way (past the client's deadline) with no
    answer recorded, and with no task due for them for ``after`` seconds (default
    ``ALIPAY["STRANDED_REFUND_AFTER"]``). Handing them to a task again is safe: only the caller that claims a
    refund calls the gateway, under the refund's own gateway id.
    """
    now = clock.now()
    grace = timedelta(seconds=app_settings.STRANDED_REFUND_AFTER if after is None else float(after))
    call_over = now - grace - timedelta(seconds=app_settings.HTTP_TOTAL_TIMEOUT + refunds.IN_FLIGHT_SLACK)
    no_task = Q(task_due_at__isnull=True) | Q(task_due_at__lte=now - grace)
    requested = Q(status=RefundStatus.REQUESTED, created_at__lte=now - grace)
    unanswered = Q(status=RefundStatus.SUBMITTED, answered_at__isnull=True, submitted_at__lte=call_over)
    queryset = Refund.objects.filter(no_task & (requested | unanswered))
    return queryset.filter(merchant=merchant) if merchant is not None else queryset


def check_balances(*, merchant: Merchant | None = None) -> list[Mismatch]:
    """Trades whose refunded / pending columns disagree with the sum of their refunds."""
    debiting = Q(refunds__debits_balance=True)
    queryset = Trade.objects.filter(refunds__isnull=False).distinct()
    if merchant is not None:
        queryset = queryset.filter(merchant=merchant)
    annotated = queryset.annotate(
        made=Sum("refunds__amount", filter=debiting & Q(refunds__status=RefundStatus.SUCCEEDED)),
        held=Sum("refunds__amount", filter=debiting & Q(refunds__status__in=RefundStatus.pending())),
    )
    found = []
    for trade in annotated:
        made = trade.made or Decimal(0)
        held = trade.held or Decimal(0)
        if made != trade.refunded_amount or held != trade.refund_pending_amount:
            found.append(
                Mismatch(
                    "balance",
                    trade.pk,
                    trade.out_trade_no,
                    f"refunded {trade.refunded_amount} / pending {trade.refund_pending_amount} on the trade, "
                    f"but its refunds add up to {made} / {held}",
                )
            )
    return found


def reconcile(
    *,
    merchant: Merchant | None = None,
    trade_age: float | None = None,
    refund_age: float | None = None,
    batch_size: int | None = None,
    include_trades: bool = True,
    include_refunds: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> ReconciliationReport:
    """Query stale unpaid trades and unsettled refunds, apply the answers, and report mismatches.

    Trades are synced with :func:`~django_alipay.domain.trades.sync_trade`. Refunds still REQUESTED are
    submitted (their dispatch was lost); UNKNOWN ones, and SUBMITTED ones that never got an answer, are
    resolved with :func:`~django_alipay.domain.refunds.resolve_unknown`; refunds Alipay accepted and has not
    settled yet are reported. Then the transaction files settle the refunds they list
    (:func:`~django_alipay.domain.settlement.settle_from_files`). Gateway errors are collected in the
    report, never raised.

    ``include_trades`` / ``include_refunds`` limit the run to one half (the periodic tasks run them apart);
    ``on_progress`` is called with "trade" or "refund" after each one is handled (for a progress bar). Each
    status changed is listed in ``report.changes``; the balance check runs with the refunds.
    """
    size = int(batch_size or app_settings.RECONCILE_BATCH_SIZE)
    report = ReconciliationReport(started_at=clock.now())

    def progress(kind: str) -> None:
        if on_progress is not None:
            on_progress(kind)

    def record(result: trades.TradeSync) -> None:
        report.trades_checked += 1
        _record_sync(result, report)
        progress("trade")

    if include_trades:
        _sync_stale(stale_trades(merchant=merchant, age=trade_age), size, record)

    if not include_refunds:
        report.finished_at = clock.now()
        return report

    for ids in _batches(pending_refunds(merchant=merchant, age=refund_age), size):
        for refund in Refund.objects.filter(pk__in=ids).select_related("trade").order_by("pk"):
            report.refunds_checked += 1
            _settle_one(refund, report)
            progress("refund")

    _settle_from_files(merchant, report)
    report.mismatches.extend(check_balances(merchant=merchant))
    report.finished_at = clock.now()
    return report


def _sync_stale(queryset: QuerySet[Trade], size: int, record: Callable[[trades.TradeSync], None]) -> None:
    """Query the trades of ``queryset`` in batches of ``size`` and hand each result to ``record``."""
    # The process's kept gateway client per merchant; per batch: one read (merchants joined), the gateway
    # queries, and one write for all the trades whose answer changed nothing.
    for ids in _batches(queryset, size):
        batch = Trade.objects.filter(pk__in=ids).select_related("merchant").order_by("pk")
        trades.sync_trades(batch, on_result=record)


# --- one run spread over many workers -----------------------------------------------------------------------


@dataclass(frozen=True)
class TradeRange:
    """The stale trades whose primary key is above ``after`` and at most ``through``: one batch of a run."""

    after: int
    through: int


@dataclass(frozen=True)
class TradePlan:
    """The open trades of one run, cut into key ranges that cover each of them exactly once.

    ``as_of`` is the moment the run counts trade ages from; every batch passes it to
    :func:`reconcile_trade_range`. ``trades`` is how many were stale when the plan was made.
    """

    as_of: datetime
    ranges: list[TradeRange]
    trades: int


def plan_trade_ranges(
    *,
    merchant: Merchant | None = None,
    age: float | None = None,
    size: int,
    as_of: datetime | None = None,
) -> TradePlan:
    """Cut the stale trades (as :func:`stale_trades` finds them at ``as_of``, default now) into ranges of
    ``size`` trades each (the last one fewer), by primary key.

    Ranges, not lists of ids: a task message stays two numbers long however many trades it stands for. The
    ranges touch end to end, so a trade is in exactly one; the last one ends at the highest stale key at
    planning time, so trades created during the run are left to the next run (they are not stale yet
    anyway). One query per range finds its upper end, by walking the primary key index.
    """
    if size < 1:
        raise ValueError(f"a range holds at least one trade, not {size}")
    as_of = clock.now() if as_of is None else as_of
    stale = stale_trades(merchant=merchant, age=age, as_of=as_of).order_by("pk").values_list("pk", flat=True)
    ranges: list[TradeRange] = []
    counted = 0
    after = 0
    while True:
        end = next(iter(stale.filter(pk__gt=after)[size - 1 : size]), None)
        if end is not None:
            ranges.append(TradeRange(after, end))
            counted += size
            after = end
            continue
        rest = list(stale.filter(pk__gt=after))
        if rest:
            ranges.append(TradeRange(after, rest[-1]))
            counted += len(rest)
        return TradePlan(as_of, ranges, counted)


def reconcile_trade_range(
    after: int,
    through: int,
    *,
    as_of: datetime,
    merchant: Merchant | None = None,
    age: float | None = None,
    batch_size: int | None = None,
) -> ReconciliationReport:
    """Query the stale trades with ``after`` < primary key <= ``through`` and apply the answers, as
    :func:`reconcile` does for its trades; ``as_of`` is the run's :attr:`TradePlan.as_of`.

    Safe to run again, whole or after dying halfway: a trade whose answer was recorded at or after
    ``as_of`` was handled by this run already and is skipped, and applying an answer only ever moves a
    trade forward. Only the trades whose query failed (listed in ``errors``) are asked again.
    """
    size = int(batch_size or app_settings.RECONCILE_BATCH_SIZE)
    report = ReconciliationReport(started_at=clock.now())

    def record(result: trades.TradeSync) -> None:
        report.trades_checked += 1
        _record_sync(result, report)

    queryset = (
        stale_trades(merchant=merchant, age=age, as_of=as_of)
        .filter(pk__gt=after, pk__lte=through)
        .exclude(last_synced_at__gte=as_of)
    )
    _sync_stale(queryset, size, record)
    report.finished_at = clock.now()
    return report


#: The counts :func:`add_up` adds, in the order a summary lists them.
SUMMARY_COUNTS = ("batches", "failed_batches", "trades_checked", "trades_changed", "mismatches", "errors")


def add_up(parts: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The summary of a fanned-out run: the counts of each batch's summary (see :data:`SUMMARY_COUNTS`),
    added up; a missing count counts 0, anything else in a part is ignored."""
    total = dict.fromkeys(SUMMARY_COUNTS, 0)
    for part in parts:
        for name in SUMMARY_COUNTS:
            total[name] += int(part.get(name, 0) or 0)
    return total


def _settle_from_files(merchant: Merchant | None, report: ReconciliationReport) -> None:
    """Settle what the transaction files list (refunds the gateway's answers left open)."""
    found = settlement.settle_from_files(merchant=merchant)
    for refund in found.settled_refunds:
        report.refunds_settled += 1
        report.changes.append(
            Change(
                "refund",
                refund.pk,
                refund.trade.out_trade_no,
                refund.gateway_refund_id,
                refund.status,
                RefundStatus.SUCCEEDED,
            )
        )
    for refund, message in found.problems:
        report.mismatches.append(Mismatch("refund", refund.pk, refund.trade.out_trade_no, message))
    report.errors.extend(found.errors)


def _record_sync(result: trades.TradeSync, report: ReconciliationReport) -> None:
    trade, change, exc = result.trade, result.change, result.error
    if exc is not None:
        report.errors.append(f"trade {trade.out_trade_no}: {type(exc).__name__} {exc.code or ''}".strip())
        return
    if change is None:
        return
    if change.changed:
        report.trades_changed += 1
        report.changes.append(
            Change("trade", trade.pk, trade.out_trade_no, "", change.previous_status, change.status)
        )
    if change.flag:
        report.mismatches.append(Mismatch("trade", trade.pk, trade.out_trade_no, change.message))


def _settle_one(refund: Refund, report: ReconciliationReport) -> None:
    before = refund.status
    out_trade_no = refund.trade.out_trade_no
    if refund.accepted:
        report.mismatches.append(
            Mismatch(
                "refund",
                refund.pk,
                out_trade_no,
                f"{refund.kind} {refund.gateway_refund_id} was accepted by Alipay and its result "
                "has not arrived yet",
            )
        )
        return
    try:
        if refund.status == RefundStatus.REQUESTED:
            refund = refunds.submit(refund.pk)
        else:
            refund = refunds.resolve_unknown(refund)
    except Exception as exc:
        logger.exception("reconciling refund %s failed", refund.pk)
        report.errors.append(f"refund {refund.gateway_refund_id}: {type(exc).__name__}")
        return
    if refund.status != before:
        report.changes.append(
            Change("refund", refund.pk, out_trade_no, refund.gateway_refund_id, before, refund.status)
        )
    if refund.status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED) and refund.status != before:
        report.refunds_settled += 1
    elif refund.status == RefundStatus.UNKNOWN:
        report.mismatches.append(
            Mismatch(
                "refund",
                refund.pk,
                out_trade_no,
                f"{refund.kind} {refund.gateway_refund_id} is still unknown "
                f"({refund.error_code or 'no answer'})",
            )
        )
