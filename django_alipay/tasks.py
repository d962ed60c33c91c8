"""Celery tasks that take ids, call the domain to send refunds, settle notifications and reconcile, and retry.

Every task is idempotent: it re-reads its row by id and lets the domain decide, under its row locks and
conditional updates, whether anything is left to do. That is what makes ``acks_late`` safe here: a message
redelivered after a worker died, or delivered twice, never sends a refund twice and never mints a new
gateway id. Task arguments are database ids only, never secrets or amounts.

Refund calls keep Alipay's spacing (``ALIPAY["REFUND_SPACING"]``, 3 s per partner) across every worker on
every machine: the domain keeps the partner's turn in the database (counted from the previous call's
answer), and a task that comes
too early retries after the seconds left instead of sleeping in the worker (Celery's ``rate_limit`` is per
worker, so it cannot do this). Without Celery the same domain functions run synchronously (see
``docs/celery.md``).
"""

from __future__ import annotations

import logging
import random
from datetime import datetime
from typing import Any

from django.db import DatabaseError

from django_alipay.conf import app_settings
from django_alipay.domain import notifications, reconciliation, refunds, settlement, trades
from django_alipay.domain.errors import RefundSpacingNotReached, ReprocessNotAllowed
from django_alipay.enums import RefundKind, RefundStatus
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.models import Merchant, Notification, Refund, Trade
from django_alipay.protocol.errors import AlipayError

try:
    from celery import chord, group, shared_task
    from celery.backends.base import DisabledBackend
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise AlipayConfigurationError(
        "django_alipay.tasks needs Celery: pip install celery, or leave ALIPAY['CELERY_ENABLED'] False and "
        "use the synchronous path."
    ) from exc

__all__ = [
    "backoff",
    "dispatch_refund",
    "process_notification",
    "reconcile_open_trades",
    "reconcile_open_trades_in_batches",
    "reconcile_trade_range",
    "reconcile_unknown_refunds",
    "settle_refunds_from_files",
    "submit_refund",
    "submit_reverse",
    "summarize_reconciliation",
    "sweep_stranded_refunds",
    "sync_trade",
]

logger = logging.getLogger("django_alipay.tasks")

#: Seconds of the first retry's ceiling; each retry doubles it (exponential backoff with full jitter).
RETRY_BACKOFF = 2.0
#: The ceiling never grows past this many seconds: far below Redis's visibility timeout (1 hour by default),
#: past which a broker would hand a waiting message to another worker as if it were lost.
RETRY_BACKOFF_MAX = 120.0
#: Gateway calls a refund task makes for one refund before it leaves the refund to reconciliation.
MAX_GATEWAY_ATTEMPTS = 8
#: Random seconds added to a wait for the refund spacing, so that waiting tasks do not all wake at once.
SPACING_JITTER = 0.5
#: With many refunds of one merchant waiting, each waits a random part of the queue's length, up to this.
SPACING_SPREAD_MAX = 300.0
#: A hard backstop only: the HTTP client's own deadline ends a call long before this.
REFUND_TIME_LIMIT = 300

_REFUND_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    # Safe only because the task is idempotent (see the module docstring).
    "acks_late": True,
    # A worker killed mid-call gives the message back instead of acknowledging it.
    "reject_on_worker_lost": True,
    # Every retry counts here, waits for the spacing included; gateway calls are bounded separately.
    "max_retries": 100,
    "max_gateway_attempts": MAX_GATEWAY_ATTEMPTS,
    "retry_backoff": RETRY_BACKOFF,
    "retry_backoff_max": RETRY_BACKOFF_MAX,
    "time_limit": REFUND_TIME_LIMIT,
}
_FOLLOW_UP_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": 5,
    "retry_backoff": RETRY_BACKOFF,
    "retry_backoff_max": RETRY_BACKOFF_MAX,
}


def backoff(attempt: int, *, base: float = RETRY_BACKOFF, cap: float = RETRY_BACKOFF_MAX) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first): uniform in [0, min(cap, base·2ⁿ)].

    "Full jitter": spreading retries over the whole interval keeps many failed tasks from coming back
    together and failing together again.
    """
    ceiling = min(cap, base * (2 ** max(0, attempt)))
    return random.uniform(0, ceiling)


def _is_eager(task: Any) -> bool:
    return bool(getattr(task.request, "is_eager", False))


def _backoff_for(task: Any, attempt: int) -> float:
    """:func:`backoff` with the task's ``retry_backoff`` and ``retry_backoff_max`` (tunable by annotation)."""
    return backoff(attempt, base=float(task.retry_backoff), cap=float(task.retry_backoff_max))


def _retry(task: Any, countdown: float, what: str) -> None:
    """Retry ``task`` after ``countdown`` seconds; log and give up when its max_retries is spent."""
    try:
        raise task.retry(countdown=max(0.0, countdown))
    except task.MaxRetriesExceededError:
        logger.error(
            "%s: gave up after %s retries; reconciliation takes it from here", what, task.max_retries
        )


# --- refunds ------------------------------------------------------------------------------------------------


def _settled(refund: Refund) -> bool:
    """Nothing left for a task: final, accepted by Alipay with the result to come by notification, or
    answered in a way no resend can improve on (its notification or transaction file settles it)."""
    if refund.status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED):
        return True
    if refund.status == RefundStatus.UNKNOWN and refund.error_code in settlement.ANSWERS_AWAITING_FILE:
        return True
    return refund.accepted


def _label(refund: Refund) -> str:
    return f"{refund.kind.lower()} {refund.gateway_refund_id} (refund id {refund.pk})"


def _note_due(refund_id: int, seconds: float) -> None:
    """:func:`refunds.expect_task`, never failing the task: with the database down the retry matters more
    (and the sweeper, which reads the same database, is stopped too)."""
    try:
        refunds.expect_task(refund_id, seconds)
    except DatabaseError:
        logger.warning("refund id %s: could not note when its task is due (database error)", refund_id)


def _retry_refund(task: Any, refund: Refund, countdown: float) -> None:
    """Retry the refund task after ``countdown`` s, noting when it is due so the sweeper leaves it alone."""
    _note_due(refund.pk, countdown)
    _retry(task, countdown, _label(refund))  # raises Retry, unless the task's retries are spent
    _leave_to_reconciliation(refund)


def _leave_to_reconciliation(refund: Refund) -> None:
    """No task follows: the sweeper leaves the refund for ``RECONCILE_REFUND_AGE`` s, then sends it again."""
    _note_due(refund.pk, app_settings.RECONCILE_REFUND_AGE)


def _spread(refund: Refund) -> float:
    """Random extra seconds for a refund waiting its turn: jitter, plus a share of the merchant's queue.

    Ten refunds waiting for one slot every 3 s need not all wake up every 3 s: each waits a random time
    over half the queue's length (about two candidates per slot, so few slots go unused) and asks again
    then, in a fair rather than a strict order.
    """
    waiting = Refund.objects.filter(merchant_id=refund.merchant_id, status=RefundStatus.REQUESTED).count()
    half_queue = max(0, waiting - 1) * app_settings.REFUND_SPACING / 2
    return random.uniform(0, SPACING_JITTER + min(half_queue, SPACING_SPREAD_MAX))


def _drive(task: Any, refund_id: int) -> str:
    """Move one refund as far as a task can: send it, or resolve its unknown outcome, then retry or stop."""
    eager = _is_eager(task)
    try:
        refund = Refund.objects.filter(pk=refund_id).first()
    except DatabaseError:
        # The database is down (a restart, a failover): the refund is safe in it; try again later.
        logger.warning("refund id %s: database error while reading it, retrying", refund_id, exc_info=True)
        if not eager:
            countdown = _backoff_for(task, task.request.retries)
            _note_due(refund_id, countdown)
            _retry(task, countdown, f"refund id {refund_id}")
        return "database unavailable"
    if refund is None:
        logger.warning("refund id %s does not exist; nothing to send", refund_id)
        return "missing"
    if _settled(refund):
        return str(refund.status)
    busy = refunds.call_in_flight(refund)
    if busy > 0:
        # Another worker's call (or one that died with its worker) may be on the wire: resending now
        # would be a second call; after the client's deadline the two cases can be told apart.
        if not eager:
            _retry_refund(task, refund, busy + random.uniform(0, SPACING_JITTER))
        return str(refund.status)
    try:
        if refund.status == RefundStatus.REQUESTED:
            # Eager (no worker): wait for the spacing in-process, as the synchronous path does.
            refund = refunds.submit(refund_id, wait=eager)
        else:
            # UNKNOWN, or claimed and never answered: ask again under the same gateway id before anything.
            refund = refunds.resolve_unknown(refund, wait=eager)
    except RefundSpacingNotReached as exc:
        _retry_refund(task, refund, exc.retry_after + _spread(refund))
        return str(refund.status)
    except AlipayConfigurationError as exc:
        logger.error(
            "%s cannot be sent: %s. It stays %s; reconciliation sends it once the merchant is fixed.",
            _label(refund),
            exc,
            refund.status,
        )
        return str(refund.status)
    except DatabaseError:
        logger.warning("%s: database error, retrying", _label(refund), exc_info=True)
        if not eager:
            _retry_refund(task, refund, _backoff_for(task, task.request.retries))
        return str(refund.status)

    if _settled(refund):
        return str(refund.status)
    busy = refunds.call_in_flight(refund)
    if busy > 0:
        # Claimed by a concurrent delivery of this same message: check back once its call has ended.
        if not eager:
            _retry_refund(task, refund, busy + random.uniform(0, SPACING_JITTER))
        return str(refund.status)
    # REQUESTED again (the request never left) or UNKNOWN (no usable answer): ask again later, within bounds.
    if refund.attempts >= int(task.max_gateway_attempts):
        logger.error(
            "%s is still %s after %s gateway calls; the task stops here and reconciliation keeps asking",
            _label(refund),
            refund.status,
            refund.attempts,
        )
        _leave_to_reconciliation(refund)
        return str(refund.status)
    if not eager:
        _retry_refund(task, refund, _backoff_for(task, refund.attempts - 1))
    return str(refund.status)


@shared_task(name="django_alipay.tasks.submit_refund", **_REFUND_TASK_OPTIONS)
def submit_refund(self: Any, refund_id: int) -> str:
    """Send a REFUND (forex_refund / spot.refund) and record the result; resolve it if the answer was lost.

    Returns the refund's status. Retries, with exponential backoff and full jitter, while the refund is
    REQUESTED (never sent) or UNKNOWN, for at most ``max_gateway_attempts`` gateway calls; waits out the
    partner's refund spacing with short retries; leaves anything unfinished to reconciliation.
    """
    return _drive(self, refund_id)


@shared_task(name="django_alipay.tasks.submit_reverse", **_REFUND_TASK_OPTIONS)
def submit_reverse(self: Any, refund_id: int) -> str:
    """Send a REVERSE (acquire.cancel / spot.reverse) like :func:`submit_refund`; a resend queries first."""
    return _drive(self, refund_id)


def dispatch_refund(refund_id: int) -> None:
    """The REFUND_DISPATCHER for Celery: enqueue :func:`submit_refund` or :func:`submit_reverse` for a refund.

    The domain calls it on commit (so the worker finds the row), with the id only; the task goes to
    ``ALIPAY["REFUND_TASK_QUEUE"]``. Used automatically when ``ALIPAY["CELERY_ENABLED"]`` is True and no
    ``REFUND_DISPATCHER`` is set.
    """
    kind = Refund.objects.filter(pk=refund_id).values_list("kind", flat=True).first()
    task = submit_reverse if kind == RefundKind.REVERSE else submit_refund
    task.apply_async(args=(refund_id,), queue=app_settings.REFUND_TASK_QUEUE)
    # Only once the broker has the message: a refund whose hand-over failed is left for the sweeper.
    _note_due(refund_id, 0)


# --- notifications and trades -------------------------------------------------------------------------------


@shared_task(name="django_alipay.tasks.process_notification", **_FOLLOW_UP_OPTIONS)
def process_notification(self: Any, notification_id: int) -> dict[str, Any]:
    """Run a stored notification whose processing was deferred or failed through the domain again.

    A notification already acted upon is left alone (so a redelivered message does nothing). Retries, with
    backoff, while the answer is still "try later" (notify_verify unreachable, order not there yet, a
    processing error); Alipay's own resends and reconciliation cover what is left after that.
    """
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is None:
        logger.warning("notification id %s does not exist; nothing to process", notification_id)
        return {"notification": notification_id, "outcome": "missing"}
    try:
        answer = notifications.reprocess(notification)
    except ReprocessNotAllowed as exc:
        logger.info("notification %s not processed again: %s", notification_id, exc.message)
        return {"notification": notification_id, "outcome": str(notification.outcome), "skipped": True}
    outcome = str(notification.outcome)
    if answer.status in (404, 503) and not _is_eager(self):
        _retry(self, _backoff_for(self, self.request.retries), f"notification {notification_id}")
    return {"notification": notification_id, "outcome": outcome, "status": answer.status, "flag": answer.flag}


@shared_task(name="django_alipay.tasks.sync_trade", **_FOLLOW_UP_OPTIONS)
def sync_trade(self: Any, trade_id: int) -> dict[str, Any]:
    """Query one trade at Alipay and apply its status (forward only); retry transient gateway errors."""
    trade = Trade.objects.filter(pk=trade_id).first()
    if trade is None:
        logger.warning("trade id %s does not exist; nothing to query", trade_id)
        return {"trade": trade_id, "status": "missing"}
    try:
        change = trades.sync_trade(trade)
    except AlipayConfigurationError as exc:
        logger.error("trade %s cannot be queried: %s", trade.out_trade_no, exc)
        return {"trade": trade_id, "status": str(trade.status), "error": "configuration"}
    except AlipayError as exc:
        if exc.retryable and not _is_eager(self):
            _retry(self, _backoff_for(self, self.request.retries), f"query of trade {trade.out_trade_no}")
        logger.warning("query of trade %s failed: %s", trade.out_trade_no, exc.code or type(exc).__name__)
        return {"trade": trade_id, "status": str(trade.status), "error": exc.code or type(exc).__name__}
    return {
        "trade": trade_id,
        "status": str(trade.status),
        "known": change is not None,
        "changed": bool(change is not None and change.changed),
    }


# --- periodic reconciliation --------------------------------------------------------------------------------


def _merchant(merchant_id: int | None) -> Merchant | None:
    return None if merchant_id is None else Merchant.objects.get(pk=merchant_id)


def _trade_counts(report: reconciliation.ReconciliationReport) -> dict[str, Any]:
    """Log a trade reconciliation's mismatches (errors) and failed queries (warnings); return its counts."""
    for mismatch in report.mismatches:
        logger.error("reconciliation: %s %s: %s", mismatch.kind, mismatch.out_trade_no, mismatch.message)
    for error in report.errors:
        logger.warning("reconciliation could not ask Alipay: %s", error)
    return {
        "trades_checked": report.trades_checked,
        "trades_changed": report.trades_changed,
        "mismatches": len(report.mismatches),
        "errors": len(report.errors),
    }


@shared_task(name="django_alipay.tasks.reconcile_open_trades", bind=True, acks_late=True)
def reconcile_open_trades(self: Any, merchant_id: int | None = None) -> dict[str, Any]:
    """Periodic: query unpaid trades older than ``RECONCILE_TRADE_AGE`` and apply what Alipay says.

    This is what settles a trade whose notifications never arrived. Returns counts; mismatches and gateway
    errors are logged (``django_alipay.tasks``) for a person to look at.
    """
    report = reconciliation.reconcile(merchant=_merchant(merchant_id), include_refunds=False)
    return _trade_counts(report)


#: Open trades per batch task of :func:`reconcile_open_trades_in_batches` (each queried in batches of
#: ``RECONCILE_BATCH_SIZE``): a thousand batches for a million trades.
TRADES_PER_TASK = 1000


@shared_task(name="django_alipay.tasks.reconcile_open_trades_in_batches", bind=True, acks_late=True)
def reconcile_open_trades_in_batches(
    self: Any,
    merchant_id: int | None = None,
    trade_age: float | None = None,
    trades_per_task: int | None = None,
) -> dict[str, Any]:
    """What :func:`reconcile_open_trades` does, spread over every worker: the open trades are cut into key
    ranges of ``trades_per_task`` (default ``TRADES_PER_TASK``), one :func:`reconcile_trade_range` task each.

    With a result backend the batches run as a chord whose callback, :func:`summarize_reconciliation`,
    logs and returns the run's counts once every batch has ended; without one they run as a group and each
    batch logs its own counts. Returns the plan: batches, trades, ``as_of`` and the summary task's id.
    """
    merchant = _merchant(merchant_id)
    size = int(trades_per_task or TRADES_PER_TASK)
    plan = reconciliation.plan_trade_ranges(merchant=merchant, age=trade_age, size=size)
    as_of = plan.as_of.isoformat()
    batches = [
        reconcile_trade_range.si(part.after, part.through, as_of, merchant_id, trade_age)
        for part in plan.ranges
    ]
    planned = {"batches": len(batches), "trades": plan.trades, "as_of": as_of}
    logger.info("reconciliation: %s open trades in %s batches", plan.trades, len(batches))
    if not batches:
        return {**planned, "summary": summarize_reconciliation([], as_of)}
    if isinstance(self.app.backend, DisabledBackend):
        group(batches).apply_async()
        return {**planned, "summary_task": None}
    result = chord(batches)(summarize_reconciliation.s(as_of))
    return {**planned, "summary_task": result.id}


@shared_task(name="django_alipay.tasks.reconcile_trade_range", **_FOLLOW_UP_OPTIONS)
def reconcile_trade_range(
    self: Any,
    after: int,
    through: int,
    as_of: str,
    merchant_id: int | None = None,
    trade_age: float | None = None,
) -> dict[str, Any]:
    """One batch of :func:`reconcile_open_trades_in_batches`: the open trades with ``after`` < id <=
    ``through``, their ages counted from the run's ``as_of`` (ISO 8601).

    Idempotent (see :func:`~django_alipay.domain.reconciliation.reconcile_trade_range`): a redelivered or
    retried batch asks only about the trades the first run did not finish. An unexpected error (the
    database gone) retries the batch with backoff; once the retries are spent it ends as a failed batch,
    counted in the summary, and the next run takes its trades.
    """
    part: dict[str, Any] = {"after": after, "through": through, "batches": 1}
    try:
        report = reconciliation.reconcile_trade_range(
            after,
            through,
            as_of=datetime.fromisoformat(as_of),
            merchant=_merchant(merchant_id),
            age=trade_age,
        )
    except Exception:
        what = f"reconciliation of trades {after + 1}-{through}"
        logger.warning("%s failed", what, exc_info=True)
        if not _is_eager(self):
            _retry(self, _backoff_for(self, self.request.retries), what)
        return {**part, "failed_batches": 1}
    return {**part, **_trade_counts(report)}


@shared_task(name="django_alipay.tasks.summarize_reconciliation", bind=True, acks_late=True)
def summarize_reconciliation(self: Any, parts: list[dict[str, Any]], as_of: str) -> dict[str, Any]:
    """The chord callback of :func:`reconcile_open_trades_in_batches`: add up its batches' counts, log them
    (``django_alipay.tasks``) and return them (kept by the result backend under the chord's id)."""
    summary = {**reconciliation.add_up(parts), "as_of": as_of}
    trouble = summary["failed_batches"] or summary["errors"] or summary["mismatches"]
    logger.log(
        logging.WARNING if trouble else logging.INFO,
        "reconciliation of the open trades as of %s finished: %s",
        as_of,
        ", ".join(f"{name} {summary[name]}" for name in reconciliation.SUMMARY_COUNTS),
    )
    return summary


@shared_task(name="django_alipay.tasks.reconcile_unknown_refunds", bind=True, acks_late=True)
def reconcile_unknown_refunds(self: Any, merchant_id: int | None = None) -> dict[str, Any]:
    """Periodic: hand every refund left requested, unanswered or unknown past ``RECONCILE_REFUND_AGE`` to its
    refund task again, and check that each trade's refund balances add up.

    The refund tasks (on ``REFUND_TASK_QUEUE``) resend under the same gateway id and keep the spacing;
    refunds Alipay accepted whose result has not come yet are only counted. Returns counts.
    """
    merchant = _merchant(merchant_id)
    enqueued = awaiting = 0
    queue = app_settings.REFUND_TASK_QUEUE
    pending = reconciliation.pending_refunds(merchant=merchant).only("pk", "kind", "status", "answered_at")
    for refund in pending.order_by("pk").iterator():
        if refund.accepted:
            awaiting += 1
            continue
        task = submit_reverse if refund.kind == RefundKind.REVERSE else submit_refund
        task.apply_async(args=(refund.pk,), queue=queue)
        refunds.expect_task(refund.pk, 0)
        enqueued += 1
    mismatches = reconciliation.check_balances(merchant=merchant)
    for mismatch in mismatches:
        logger.error("reconciliation: order %s: %s", mismatch.out_trade_no, mismatch.message)
    return {"refunds_enqueued": enqueued, "awaiting_result": awaiting, "balance_mismatches": len(mismatches)}


@shared_task(name="django_alipay.tasks.settle_refunds_from_files", bind=True, acks_late=True)
def settle_refunds_from_files(self: Any, merchant_id: int | None = None) -> dict[str, Any]:
    """Periodic: fetch the transaction files (forex_compare_file) of the days unsettled refunds were sent,
    and settle every refund they list (see :mod:`django_alipay.domain.settlement`).

    What settles a refund whose resend only got REPEATED_REFUNDMENT_REQUEST and whose notification never
    came. Returns counts; refunds the files contradict or do not list are logged for a person.
    """
    report = settlement.settle_from_files(merchant=_merchant(merchant_id))
    for error in report.errors:
        logger.warning("settlement files could not be fetched: %s", error)
    return {
        "files": len(report.files),
        "settled": len(report.settled),
        "waiting": len(report.waiting),
        "mismatches": len(report.mismatches),
        "errors": len(report.errors),
    }


@shared_task(name="django_alipay.tasks.sweep_stranded_refunds", bind=True, acks_late=True)
def sweep_stranded_refunds(self: Any, merchant_id: int | None = None) -> dict[str, Any]:
    """Periodic (every 15 s by default): hand every refund that no task is sending to its refund task again.

    The database is the truth, not the broker: a refund requested, or claimed for a call that can no
    longer be under way, with no task due for it for ``ALIPAY["STRANDED_REFUND_AFTER"]`` seconds, lost its
    message (a dispatch that failed, a broker restarted without persistence, a killed worker's reserved
    retries). Sending it again is safe: only the task that claims a refund calls the gateway, under the
    refund's own gateway id. Returns counts.
    """
    queue = app_settings.REFUND_TASK_QUEUE
    stranded = reconciliation.stranded_refunds(merchant=_merchant(merchant_id)).only("pk", "kind")
    enqueued = 0
    for refund in stranded.order_by("pk").iterator():
        task = submit_reverse if refund.kind == RefundKind.REVERSE else submit_refund
        task.apply_async(args=(refund.pk,), queue=queue)
        refunds.expect_task(refund.pk, 0)
        logger.warning("%s had no task sending it; handed to its task again", _label(refund))
        enqueued += 1
    return {"refunds_enqueued": enqueued}
