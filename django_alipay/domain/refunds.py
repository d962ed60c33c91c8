"""Refund and reverse trades: check and reserve under a row lock, call the gateway after commit, record it.

The life of a refund::

    request_refund() / reverse()      trade row locked; rules checked; Refund row (REQUESTED) with its gateway
                                      id; the amount reserved on the trade (F() update, CheckConstraint)
      -> on commit: the dispatcher    default: submit() at once; a Celery integration swaps it by setting
    submit(refund_id)                 REQUESTED -> SUBMITTED (only one caller wins), then one gateway call
      -> record_result()              SUCCEEDED (reserved -> refunded) / FAILED (reservation released) /
                                      SUBMITTED (accepted, result by notification) / UNKNOWN
    resolve_unknown(refund)           the same request again, same gateway id (Alipay treats it as the same
                                      refund), or a query for REVERSE; never a new gateway id

Refund calls of one Alipay partner (whatever the number of Merchant rows sharing it) start at least
``ALIPAY["REFUND_SPACING"]`` seconds (Alipay asks for 3) after the previous one *answered*, since Alipay
counts from when it received the previous refund. The partner's RefundSlot row records a call under way
and when the next may start, under its row lock, on the database's clock so that every worker on every
machine reads the same one. Nobody holds the lock while waiting: ``submit`` and
``resolve_unknown`` either sleep until the slot comes (``wait=True``, the synchronous path) or raise
RefundSpacingNotReached with the seconds left (``wait=False``, the Celery tasks, which retry then).

A refund is only marked FAILED when the answer proves no money moved: the first answer to a request no
earlier attempt may have delivered, or a notification saying so. Anything less certain keeps the amount
reserved (UNKNOWN) until a query, a notification or a person settles it: releasing it too early is how
shops refund twice.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import DateTimeField, Exists, ExpressionWrapper, F, Func, OuterRef, Q, Subquery, Value
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from django_alipay import gateway, signals
from django_alipay.conf import app_settings
from django_alipay.domain import clock, rows, trades
from django_alipay.domain.errors import (
    IdempotencyConflict,
    RefundAmountExceeded,
    RefundNotAllowed,
    RefundSpacingNotReached,
    RefundWindowClosed,
    ReverseNotAllowed,
)
from django_alipay.domain.lifecycle import REFUND_FINAL, RefundEvent, check_refund_move, refund_move_allowed
from django_alipay.enums import Product, RefundKind, RefundStatus
from django_alipay.models import Merchant, Refund, RefundSlot, Trade
from django_alipay.models.refund import ERROR_CODE_MAX
from django_alipay.protocol import clock as protocol_clock
from django_alipay.protocol import money
from django_alipay.protocol.codes import OUTCOME_UNKNOWN_CODES, TradeStatus, Verdict
from django_alipay.protocol.errors import AlipayError, InvalidParameterError
from django_alipay.protocol.interpretation import verdict_of
from django_alipay.protocol.services import (
    CancelResult,
    ForexRefundResult,
    SpotRefundResult,
    SpotReverseResult,
)

__all__ = [
    "CLOCK_SKEW_FIELD",
    "UNPAID_CANCEL_GRACE",
    "RefundKindChoice",
    "call_in_flight",
    "choose_refund_kind",
    "clock_skew_of",
    "expect_task",
    "record_result",
    "refund_dispatcher",
    "refund_refusal",
    "request_full_refund",
    "request_refund",
    "resolve_unknown",
    "reverse",
    "reverse_refusal",
    "submit",
]

logger = logging.getLogger("django_alipay.refunds")

#: An unpaid in-store order may still be cancelled this long after its creation, across midnight Beijing time.
UNPAID_CANCEL_GRACE = timedelta(minutes=15)
#: Alipay does not execute synchronous refunds in this Beijing-time window; refunds sent then go asynchronous.
SYNC_REFUND_BLACKOUT = (dtime(0, 0), dtime(1, 30))

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_REASON_MAX = {True: 100, False: 128}  # forex_refund String(100), spot refund String(128)
# Codes that, on a first attempt, still do not prove the refund was not made (the protocol's table).
_INCONCLUSIVE_CODES = OUTCOME_UNKNOWN_CODES


@dataclass(frozen=True)
class RefundKindChoice:
    """Which kind of refund suits a trade and amount, and why, in words for a shop owner."""

    kind: RefundKind
    reason: str


# --- checks ----------------------------------------------------------------------------------------------


def _fmt(amount: Decimal, currency: str) -> str:
    return f"{money.format_amount(amount, currency)} {currency}"


def _exceeded(amount: Decimal, trade: Trade, left: Decimal) -> str:
    return _("This refund of %(amount)s exceeds what is still refundable on order %(order)s: %(left)s.") % {
        "amount": _fmt(amount, trade.currency),
        "order": trade.out_trade_no,
        "left": _fmt(left, trade.currency),
    }


def _refund_amount(amount: object, currency: str) -> Decimal:
    """A positive amount fitting the currency: a Decimal, or canonical ASCII text; never a float."""
    if isinstance(amount, str):
        return money.parse_amount(amount, currency, minimum=money.ONLINE_MIN, maximum=money.REFUND_MAX)
    return money.to_amount(amount, currency, minimum=money.ONLINE_MIN, maximum=money.REFUND_MAX)  # type: ignore[arg-type]


def _check_currency(trade: Trade, currency: str | None) -> None:
    if currency is None:
        return
    if currency != trade.currency:
        raise InvalidParameterError(
            _(
                "Order %(order)s was paid in %(currency)s; a refund is made in the same currency, not "
                "%(asked)s."
            )
            % {"order": trade.out_trade_no, "currency": trade.currency, "asked": repr(str(currency)[:8])},
            parameter="currency",
        )


def _check_reason(trade: Trade, reason: str) -> None:
    limit = _REASON_MAX[trade.is_online]
    if not isinstance(reason, str):
        raise InvalidParameterError(_("The refund reason must be text."), parameter="reason")
    if len(reason) > limit:
        raise InvalidParameterError(
            _("The refund reason has %(length)d characters; Alipay accepts at most %(limit)d.")
            % {"length": len(reason), "limit": limit},
            parameter="reason",
        )
    if '"' in reason or "\x00" in reason:
        raise InvalidParameterError(
            _('The refund reason cannot contain double quotes (") or NUL characters.'), parameter="reason"
        )


def _check_key(key: str | None) -> str:
    if key is None:
        return ""
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidParameterError(
            _("An idempotency key is 1 to 255 printable ASCII characters without spaces."),
            parameter="idempotency_key",
        )
    return key


def _refund_refusal(trade: Trade, now: datetime, *, reversed: bool | None = None) -> RefundNotAllowed | None:
    """Why ``trade`` (locked) cannot be refunded at all now, or None.

    ``reversed``: whether the trade has a reversal not failed, when the caller has already looked (else it
    is looked up here).
    """
    order = {"order": trade.out_trade_no}
    if reversed is None:
        reversed = (
            Refund.objects.filter(trade=trade, kind=RefundKind.REVERSE)
            .exclude(status=RefundStatus.FAILED)
            .exists()
        )
    if reversed:
        return RefundNotAllowed(
            _("Order %(order)s has been reversed (or a reversal is under way): nothing is left to refund.")
            % order
        )
    if not trade.is_paid:
        if trade.status == TradeStatus.TRADE_CLOSED:
            return RefundNotAllowed(
                _("Order %(order)s was closed without being paid: there is nothing to refund.") % order
            )
        return RefundNotAllowed(_("Order %(order)s has not been paid: there is nothing to refund.") % order)
    if trade.refunded_amount >= trade.amount:
        return RefundNotAllowed(_("Order %(order)s has already been refunded in full.") % order)
    if trade.status == TradeStatus.TRADE_CLOSED:
        return RefundNotAllowed(
            _("Order %(order)s is closed at Alipay: it can no longer be refunded.") % order
        )
    if trade.status == TradeStatus.TRADE_FINISHED and not trade.is_online:
        return RefundWindowClosed(
            _("Order %(order)s is finished at Alipay: its refund period has ended.") % order
        )
    days = app_settings.REFUND_WINDOW_DAYS
    if days is not None:
        paid_at = trade.paid_at or trade.created_at
        if now > paid_at + timedelta(days=days):
            return RefundWindowClosed(
                _(
                    "Order %(order)s was paid on %(day)s (Beijing time); refunds are accepted for %(days)s "
                    "days after payment."
                )
                % {**order, "day": protocol_clock.beijing_date(paid_at).isoformat(), "days": days}
            )
    return None


def refund_refusal(trade: Trade, now: datetime | None = None) -> str | None:
    """Why ``trade`` cannot be refunded at all at ``now`` (default: the domain clock), in words, or None.

    For display (the admin offers a refund only when this is None): :func:`request_refund` checks the same
    rules again under the trade's row lock. Refunds still on their way count as refunded, so a trade whose
    whole remaining amount is held by them cannot be refunded until they settle.
    """
    refusal = _refund_refusal(trade, now or clock.now())
    if refusal is not None:
        return refusal.message
    if trade.refundable_amount <= 0:
        return _(
            "Order %(order)s: the rest of the amount is held by refunds still in progress; wait for their "
            "result."
        ) % {"order": trade.out_trade_no}
    return None


def reverse_refusal(trade: Trade, now: datetime | None = None) -> str | None:
    """Why ``trade`` cannot be reversed at ``now`` (default: the domain clock), in plain words, or None.

    REVERSE is for in-store payments only, for the full amount with nothing refunded, and only on the Beijing
    calendar day of the payment. An unpaid in-store order may be cancelled on its creation day, or within
    15 minutes of its creation when that runs past midnight Beijing time.
    """
    now = now or clock.now()
    order = {"order": trade.out_trade_no}
    if trade.is_online:
        return (
            _("Order %(order)s was paid online; online payments cannot be reversed, refund them instead.")
            % order
        )
    if trade.status == TradeStatus.TRADE_CLOSED:
        return _("Order %(order)s is already closed.") % order
    if trade.status == TradeStatus.TRADE_FINISHED:
        return _("Order %(order)s is finished at Alipay; it can no longer be reversed.") % order
    if trade.status == TradeStatus.WAIT_BUYER_PAY:
        return _reverse_day_refusal(trade, now)
    if trade.refunded_amount > 0 or trade.refund_pending_amount > 0:
        return (
            _(
                "Order %(order)s has been partly refunded; a reversal returns the full amount only, so "
                "refund the rest instead."
            )
            % order
        )
    return _reverse_day_refusal(trade, now)


def _reverse_day_refusal(trade: Trade, now: datetime) -> str | None:
    """The same-day rule of a reversal alone: why ``now`` is too late to reverse ``trade``, or None.

    A paid trade is reversed on the Beijing calendar day of its payment; an unpaid one is cancelled on its
    creation day, or within UNPAID_CANCEL_GRACE of its creation across midnight.
    """
    order = {"order": trade.out_trade_no}
    if trade.status == TradeStatus.WAIT_BUYER_PAY:
        created = trade.created_at
        if protocol_clock.same_beijing_day(created, now) or now < created + UNPAID_CANCEL_GRACE:
            return None
        return _(
            "Order %(order)s was created on %(day)s (Beijing time) and is unpaid; it can no longer be "
            "cancelled."
        ) % {**order, "day": protocol_clock.beijing_date(created).isoformat()}
    paid_at = trade.paid_at or trade.created_at
    if not protocol_clock.same_beijing_day(paid_at, now):
        return _(
            "Order %(order)s was paid on %(day)s (Beijing time); a reversal is only possible on the day of "
            "payment, so refund it instead."
        ) % {**order, "day": protocol_clock.beijing_date(paid_at).isoformat()}
    return None


def choose_refund_kind(trade: Trade, amount: Decimal) -> RefundKindChoice:
    """REVERSE when allowed for this trade and amount (full, same Beijing day, in-store), else REFUND."""
    refusal = reverse_refusal(trade)
    if trade.status != TradeStatus.TRADE_SUCCESS and refusal is None:
        refusal = _("Order %(order)s is not paid; there is nothing to refund.") % {
            "order": trade.out_trade_no
        }
    if refusal is None and amount != trade.amount:
        refusal = _("A reversal returns the full amount only; a partial amount is refunded.")
    if refusal is None:
        return RefundKindChoice(
            RefundKind.REVERSE,
            _("Paid today (Beijing time) and not refunded: a reversal returns the full amount."),
        )
    return RefundKindChoice(RefundKind.REFUND, refusal)


# --- requesting --------------------------------------------------------------------------------------------


def _mint_gateway_id(kind: RefundKind, now: datetime) -> str:
    # Readable day prefix for support staff; 80 random bits make a collision (caught by the DB) implausible.
    prefix = "RV" if kind == RefundKind.REVERSE else "RF"
    return f"{prefix}{protocol_clock.format_date(now)}{secrets.token_hex(10).upper()}"


def _lock(trade: Trade, *, in_the_way: str | None = None) -> Trade:
    """The trade's row, locked, with its merchant: the caller's merchant when it had one loaded, else read in
    the same statement (the merchant's row is not locked).

    ``in_the_way`` (an idempotency key, "" for none): the same statement also reads what decides a new
    refund (see :func:`_refunds_in_the_way`).
    """
    rows = Trade.objects.all()
    if in_the_way is not None:
        rows = _with_refunds_in_the_way(rows, in_the_way)
    if Trade.merchant.is_cached(trade):
        if in_the_way is None:
            locked = rows.select_for_update().get(pk=trade.pk)
        else:
            # The hot path (a view has the trade with its merchant): the statement as text, composed once.
            sql, template = _lock_statement(bool(in_the_way))
            params = [trade.pk if p == _PK else in_the_way if p == _KEY else p for p in template]
            found = list(Trade.objects.raw(sql, params))
            if not found:
                raise Trade.DoesNotExist("Trade matching query does not exist.")
            locked = found[0]
        if locked.merchant_id == trade.merchant_id:
            Trade.merchant.field.set_cached_value(locked, trade.merchant)
            return locked
    return rows.select_for_update(of=("self",)).select_related("merchant").get(pk=trade.pk)


#: Values standing for the trade's pk and the idempotency key in a statement composed once
#: (:func:`_lock_statement`); no real pk is negative and no key has a space.
_PK, _KEY = -(2**62) + 1017, "idempotency key placeholder"


@functools.cache
def _lock_statement(with_key: bool) -> tuple[str, tuple[Any, ...]]:
    """The SQL of ``_lock(trade, in_the_way=key)`` for a trade whose merchant is in hand, composed by the ORM
    once per process, and its parameters with placeholders for the trade's pk and the key."""
    rows = _with_refunds_in_the_way(Trade.objects.all(), _KEY if with_key else "")
    query = rows.select_for_update().filter(pk=_PK).query
    sql, params = query.sql_with_params()
    if params.count(_PK) != 1 or params.count(_KEY) != (1 if with_key else 0):
        raise RuntimeError("the trade's locking statement lost a placeholder")  # pragma: no cover
    return sql, params


def _with_refunds_in_the_way(rows: Any, key: str) -> Any:
    """``rows`` (trades) each with ``reversal_in_the_way`` (a reversal not failed) and ``key_refund_id`` (the
    refund the idempotency ``key`` was first used for by the trade's merchant, or None), read with them."""
    reversal = Refund.objects.filter(trade=OuterRef("pk"), kind=RefundKind.REVERSE).exclude(
        status=RefundStatus.FAILED
    )
    rows = rows.annotate(reversal_in_the_way=Exists(reversal))
    if key:
        used = Refund.objects.filter(merchant_id=OuterRef("merchant_id"), idempotency_key=key)
        rows = rows.annotate(key_refund_id=Subquery(used.values("pk")[:1]))
    return rows


def _refunds_in_the_way(locked: Trade, key: str) -> tuple[Refund | None, bool]:
    """The two refunds that decide a new refund of ``locked`` (locked by ``_lock(..., in_the_way=key)``):
    the one the idempotency ``key`` was first used for (or None), and whether the trade has a reversal not
    failed.

    Read by the statement that locked the trade, so as the database was when that statement began: a
    refund committed by a transaction this one waited for is not among them. Every decision taken on them
    copes: a refusal looks at the reversal again (:func:`_refusal_now`); a key used meanwhile makes the
    insert fail on its unique constraint, and the key's refund is then replayed or refused
    (:func:`_replay_lost_race`).
    """
    replay_id = getattr(locked, "key_refund_id", None) if key else None
    replay = Refund.objects.get(pk=replay_id) if replay_id is not None else None
    return replay, bool(locked.reversal_in_the_way)  # type: ignore[attr-defined]


def _refusal_now(locked: Trade, now: datetime, value: Decimal, reversed: bool) -> RefundNotAllowed | None:
    """Why a refund of ``value`` of ``locked`` is refused, or None; a refusal is decided on a fresh look at
    the trade's reversals (they were read as of the start of the locking statement)."""
    for fresh in (False, True):
        refusal = _refund_refusal(locked, now, reversed=None if fresh else reversed)
        if refusal is None and value > locked.refundable_amount:
            refusal = RefundAmountExceeded(_exceeded(value, locked, locked.refundable_amount))
        if refusal is None:
            return None
    return refusal


_UNREAD: Any = object()


def _replay(
    merchant_id: int,
    key: str,
    *,
    trade: Trade,
    kind: RefundKind,
    amount: Decimal | None,
    reason: str,
    existing: Refund | None = _UNREAD,
) -> Refund | None:
    """The refund ``key`` was first used for, when it was for the same thing; else IdempotencyConflict.

    ``amount`` None (a full refund) matches any amount: what was left then, whatever is left now.
    ``existing``: that refund (or None) when the caller has already read it.
    """
    if existing is _UNREAD:
        existing = Refund.objects.filter(merchant_id=merchant_id, idempotency_key=key).first()
    if existing is None:
        return None
    if (existing.trade_id, existing.kind, existing.reason) != (trade.pk, kind, reason) or (
        amount is not None and existing.amount != amount
    ):
        used_for = (_("reversal %(id)s") if existing.kind == RefundKind.REVERSE else _("refund %(id)s")) % {
            "id": existing.gateway_refund_id
        }
        raise IdempotencyConflict(
            _(
                "The idempotency key %(key)s was already used for %(used_for)s with other details; use a new "
                "key for a new refund."
            )
            % {"key": repr(key[:40]), "used_for": used_for},
            out_trade_no=trade.out_trade_no,
        )
    return existing


#: The dispatcher used when ``ALIPAY["CELERY_ENABLED"]`` is True and no REFUND_DISPATCHER is set.
CELERY_DISPATCHER = "django_alipay.tasks.dispatch_refund"


def refund_dispatcher() -> Callable[[int], Any]:
    """The callable run on commit with a new refund's id to get it sent.

    ``ALIPAY["REFUND_DISPATCHER"]`` when the shop sets it; otherwise the Celery dispatcher
    (``django_alipay.tasks.dispatch_refund``) when ``ALIPAY["CELERY_ENABLED"]`` is True, else :func:`submit`,
    which sends the refund at once in the committing process.
    """
    if "REFUND_DISPATCHER" not in app_settings.user_settings and app_settings.CELERY_ENABLED:
        chosen: Any = CELERY_DISPATCHER
    else:
        chosen = app_settings.REFUND_DISPATCHER
    target: Callable[[int], Any] = chosen if callable(chosen) else import_string(str(chosen))
    return target


@dataclass
class _Handover:
    """What became of a new refund's hand-over on commit: ``sent`` is the refund as :func:`submit` left it,
    when the default dispatcher sent it in this process with the objects in hand."""

    sent: Refund | None = None


def _dispatch_on_commit(refund: Refund, locked: Trade) -> _Handover:
    handover = _Handover()
    refund_id = refund.pk

    def dispatch() -> None:
        try:
            if refund.status == RefundStatus.SUBMITTED:
                # Claimed with its creation (_claim_at_creation): this process sends it, nobody else can.
                handover.sent = _send(refund, refund.request_params, conclusive=True, slot=None)
                return
            target = refund_dispatcher()
            if target is _SUBMIT and Trade.merchant.is_cached(locked):
                # The default dispatcher: sent at once with the refund, its trade and merchant as committed
                # (nothing read again). The claim on the refund's status still decides who sends it.
                handover.sent = _submit(refund, locked, locked.merchant, wait=True)
            else:
                target(refund_id)
        except Exception as exc:
            # The refund is committed and its amount reserved: it is safe. With no task to send it, its
            # task_due_at stays empty, which is what the sweeper (and the API's queued_for_sweeper) look at.
            logger.warning(
                "refund id %s is stored but could not be handed over for sending (%s: %s); it stays "
                "requested and the sweeper sends it",
                refund_id,
                type(exc).__name__,
                str(exc)[:200],
            )

    transaction.on_commit(dispatch, robust=True)
    return handover


def expect_task(refund_id: int, within: float) -> None:
    """Record that a task is due to take the refund up within ``within`` seconds (a message was queued, or a
    task will retry then); past that, plus ``ALIPAY["STRANDED_REFUND_AFTER"]``, the sweeper sends it again.

    Only the time is written, and only on a refund still in progress; the refund's state is untouched.
    """
    due = clock.now() + timedelta(seconds=max(0.0, float(within)))
    Refund.objects.filter(pk=refund_id, status__in=RefundStatus.pending()).update(task_due_at=due)


def _create(
    locked: Trade,
    *,
    kind: RefundKind,
    amount: Decimal,
    reason: str,
    key: str,
    debits: bool,
    now: datetime,
    outermost: bool = False,
) -> tuple[Refund, _Handover]:
    """Insert the refund and reserve its amount, in the caller's transaction under :func:`_lost_race`.

    ``outermost``: the caller's transaction is not inside another, so the dispatcher runs as it commits.
    """
    refund = Refund(
        merchant_id=locked.merchant_id,
        trade=locked,
        kind=kind,
        gateway_refund_id=_mint_gateway_id(kind, now),
        amount=amount,
        currency=locked.currency,
        reason=reason,
        idempotency_key=key,
        debits_balance=debits,
        created_at=now,
    )
    if outermost:
        _claim_at_creation(refund, locked, now)
    _insert_and_reserve(refund, locked, amount if debits else None)
    if debits:
        locked.refund_pending_amount += amount
    return refund, _dispatch_on_commit(refund, locked)


def _claim_at_creation(refund: Refund, locked: Trade, now: datetime) -> None:
    """Claim the new REFUND for its first call before it is stored, when the default dispatcher will send it
    in this process as its transaction commits and no spacing applies: nobody else can ever see it
    REQUESTED, so the claim that :func:`submit` would make at once after the commit (and its round trip) is
    made here, in the same transaction. Otherwise (or when the merchant's configuration cannot make a
    call, which :func:`submit` then reports) the refund stays REQUESTED, for the dispatcher to claim.
    """
    if (
        refund.kind != RefundKind.REFUND
        or app_settings.REFUND_SPACING > 0
        or not Trade.merchant.is_cached(locked)
    ):
        return
    try:
        if refund_dispatcher() is not _SUBMIT:
            return
        gateway.check_configuration(locked.merchant, instore=not locked.is_online)
        request = _build_request(refund, locked, now, locked.merchant)
    except Exception:  # met again after the commit and reported there, the refund left REQUESTED
        return
    check_refund_move(refund.gateway_refund_id, refund.status, RefundEvent.CLAIM, RefundStatus.SUBMITTED)
    refund.status = RefundStatus.SUBMITTED
    refund.request_params = request
    refund.submitted_at = now
    refund.attempts = 1


@functools.cache
def _insert_statement() -> tuple[str, tuple[Any, ...]]:
    """One statement inserting a refund and reserving its amount on its (locked) trade (PostgreSQL)."""
    quote = connection.ops.quote_name
    meta, trade_meta = Refund._meta, Trade._meta
    fields = tuple(field for field in meta.concrete_fields if not field.primary_key)
    columns = ", ".join(quote(str(field.column)) for field in fields)
    pending = quote(str(trade_meta.get_field("refund_pending_amount").column))
    sql = (
        f"WITH inserted AS (INSERT INTO {quote(meta.db_table)} ({columns}) "  # noqa: S608 (our own names)
        f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING id), "
        f"reserved AS (UPDATE {quote(trade_meta.db_table)} SET {pending} = {pending} + %s "
        f"WHERE id = %s AND %s) "
        f"SELECT id FROM inserted"
    )
    return sql, fields


def _insert_and_reserve(refund: Refund, locked: Trade, reserve: Decimal | None) -> None:
    """Store ``refund`` and add ``reserve`` (None: nothing) to the pending amount of its trade, ``locked``;
    in one statement on PostgreSQL. A unique key or the trade's balance constraint raises IntegrityError."""
    if connection.vendor != "postgresql":
        refund.save(force_insert=True)
        if reserve is not None:
            Trade.objects.filter(pk=locked.pk).update(
                refund_pending_amount=F("refund_pending_amount") + reserve
            )
        return
    sql, fields = _insert_statement()
    values = [field.get_db_prep_save(field.pre_save(refund, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, reserve or 0, locked.pk, reserve is not None])
        (refund.pk,) = cursor.fetchone()
    refund._state.adding = False
    refund._state.db = connection.alias


@contextmanager
def _lost_race(trade: Trade, *, kind: RefundKind, amount: Decimal | None, key: str) -> Iterator[None]:
    """Around the transaction that creates a refund: a race lost at the insert (a unique key or the balance
    CheckConstraint), after that transaction has rolled back and nothing is stored, as a typed error.

    Outside the transaction rather than in a savepoint of it: the uncontended path pays no savepoint.
    """
    try:
        yield
    except IntegrityError:
        if key and Refund.objects.filter(merchant_id=trade.merchant_id, idempotency_key=key).exists():
            raise IdempotencyConflict(
                _("The idempotency key %(key)s is already used by another refund of this merchant.")
                % {"key": repr(key[:40])},
                out_trade_no=trade.out_trade_no,
            ) from None
        if kind == RefundKind.REVERSE:
            raise ReverseNotAllowed(
                _("Order %(order)s is already being reversed.") % {"order": trade.out_trade_no}
            ) from None
        # Only the CheckConstraint is left: the database itself refused to over-refund.
        now = Trade.objects.get(pk=trade.pk)
        raise RefundAmountExceeded(
            _exceeded(amount or Decimal(0), now, max(now.refundable_amount, Decimal(0))),
            out_trade_no=trade.out_trade_no,
        ) from None


def _finish(refund: Refund, trade: Trade, locked: Trade, handover: _Handover | None = None) -> Refund:
    """The refund and the caller's ``trade`` as they are once the transaction is over (and, outside an outer
    transaction, once the dispatcher has run on commit)."""
    rows.copy_into(trade, locked)
    if connection.in_atomic_block:
        return refund  # the dispatcher runs when the outer transaction commits
    sent = handover.sent if handover is not None else None
    if sent is refund:
        # Sent in this process: the refund is as recorded, its trade as locked then (no read back).
        if Refund.trade.is_cached(refund):
            rows.copy_into(trade, refund.trade)
        return refund
    refund.refresh_from_db()
    if handover is None or sent is not None or refund.status != RefundStatus.REQUESTED:
        # A replay, or a dispatcher that has already changed the refund (and so maybe the trade).
        trade.refresh_from_db()
    return refund


def request_refund(
    trade: Trade,
    amount: Decimal | str,
    *,
    reason: str = "",
    idempotency_key: str | None = None,
    currency: str | None = None,
) -> Refund:
    """Refund ``amount`` of a paid trade (a REFUND); returns the Refund (already sent outside a transaction).

    Checked under the trade's row lock: the trade is paid and not closed, reversed or fully refunded; the
    refund window is open; the amount is positive, fits the currency and, added to every refund requested,
    sent, unknown or made, does not exceed the amount paid. ``currency``, when given, must be the trade's.
    The same ``idempotency_key`` with the same details returns the first refund (nothing new is sent); with
    other details it raises IdempotencyConflict. Refusals raise RefundNotAllowed and its subclasses,
    AmountError or InvalidParameterError, with a message for the shop owner; nothing is stored then.
    """
    value = _refund_amount(amount, trade.currency)
    _check_currency(trade, currency)
    _check_reason(trade, reason)
    return _request(trade, value, reason=reason, key=_check_key(idempotency_key))


def _request(
    trade: Trade, value: Decimal | None, *, reason: str, key: str, full: str | None = None
) -> Refund:
    """Replay, check and create a REFUND of ``value`` under the trade's row lock.

    ``full`` (from :func:`request_full_refund`): why the trade could not be refunded when ``value`` was
    read, "" when it could; a replay of the key then matches any amount (what was left then), and a
    refusal read before the lock, with ``value`` None, raises RefundNotAllowed once the key is not a replay.
    """
    now = clock.now()
    try:
        return _request_locked(trade, value, reason=reason, key=key, full=full, now=now)
    except IntegrityError:
        replayed = _replay_lost_race(trade, value, reason=reason, key=key, full=full)
        if replayed is not None:
            return replayed
        with _lost_race(trade, kind=RefundKind.REFUND, amount=value, key=key):
            raise


def _replay_lost_race(
    trade: Trade, value: Decimal | None, *, reason: str, key: str, full: str | None
) -> Refund | None:
    """After the insert of a refund failed (nothing stored): the refund its idempotency ``key`` was used for
    on this trade meanwhile, when it was for the same thing (IdempotencyConflict when not); else None."""
    if not key:
        return None
    existing = Refund.objects.filter(merchant_id=trade.merchant_id, idempotency_key=key).first()
    if existing is None or existing.trade_id != trade.pk:
        return None
    amount = None if full is not None else value
    replay = _replay(
        trade.merchant_id,
        key,
        trade=trade,
        kind=RefundKind.REFUND,
        amount=amount,
        reason=reason,
        existing=existing,
    )
    if replay is not None:
        trade.refresh_from_db()
    return replay


def _request_locked(
    trade: Trade, value: Decimal | None, *, reason: str, key: str, full: str | None, now: datetime
) -> Refund:
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        locked = _lock(trade, in_the_way=key)
        replay, reversed = _refunds_in_the_way(locked, key)

        def replayed(existing: Refund | None) -> Refund | None:
            """The key's refund when this request repeats it (IdempotencyConflict when it is another's)."""
            amount = None if full is not None else value
            return _replay(
                locked.merchant_id, key, trade=locked, kind=RefundKind.REFUND, amount=amount, reason=reason,
                existing=existing,
            )  # fmt: skip

        if key and (existing := replayed(replay)) is not None:
            return _finish(existing, trade, locked)
        refusal = None if value is None else _refusal_now(locked, now, value, reversed)
        if refusal is not None or value is None:
            # The key's refund may have been committed while this transaction waited for the lock (the locking
            # statement did not see it): read again, a replay takes precedence over any refusal.
            if key and replay is None and (existing := replayed(_UNREAD)) is not None:
                return _finish(existing, trade, locked)
            refused = refusal or RefundNotAllowed(full or "")
            refused.out_trade_no = locked.out_trade_no
            raise refused
        refund, handover = _create(
            locked,
            kind=RefundKind.REFUND,
            amount=value,
            reason=reason,
            key=key,
            debits=True,
            now=now,
            outermost=outermost,
        )
    return _finish(refund, trade, locked, handover)


def request_full_refund(trade: Trade, *, reason: str = "", idempotency_key: str | None = None) -> Refund:
    """Refund everything still refundable on ``trade``: the amount less refunds made or on their way.

    The same ``idempotency_key`` again, with the same reason, returns the refund it was first used for
    (nothing new is sent), checked under the trade's row lock like :func:`request_refund`; with another
    reason, or for another trade or a reversal, it raises IdempotencyConflict. Otherwise the remaining
    amount is read afresh and checked again under the row lock, so a refund racing this one makes it fail
    (RefundAmountExceeded) rather than over-refund. Raises RefundNotAllowed with the reason of
    :func:`refund_refusal` when nothing can be refunded.
    """
    _check_reason(trade, reason)
    key = _check_key(idempotency_key)
    trade.refresh_from_db()
    refused = refund_refusal(trade)
    value = None if refused is not None else _refund_amount(trade.refundable_amount, trade.currency)
    return _request(trade, value, reason=reason, key=key, full=refused or "")


def reverse(trade: Trade, *, reason: str = "", idempotency_key: str | None = None) -> Refund:
    """Reverse (cancel) an in-store trade: full amount, on the payment's Beijing day; returns the Refund.

    An unpaid order is closed instead (no money moves). A trade that already has a reversal gets that one
    back, so asking twice sends one request. Raises ReverseNotAllowed saying why, and what to do instead.
    """
    _check_reason(trade, reason)
    key = _check_key(idempotency_key)
    now = clock.now()
    with _lost_race(trade, kind=RefundKind.REVERSE, amount=trade.amount, key=key), transaction.atomic():
        locked = _lock(trade)
        existing = (
            Refund.objects.filter(trade=locked, kind=RefundKind.REVERSE)
            .exclude(status=RefundStatus.FAILED)
            .first()
        )
        if existing is not None:
            return _finish(existing, trade, locked)
        if key:
            replay = _replay(
                locked.merchant_id,
                key,
                trade=locked,
                kind=RefundKind.REVERSE,
                amount=locked.amount,
                reason=reason,
            )
            if replay is not None:
                return _finish(replay, trade, locked)
        refusal = reverse_refusal(locked, now)
        if refusal is not None:
            raise ReverseNotAllowed(refusal, out_trade_no=locked.out_trade_no)
        paid = locked.status == TradeStatus.TRADE_SUCCESS
        refund, handover = _create(
            locked,
            kind=RefundKind.REVERSE,
            amount=locked.amount,
            reason=reason,
            key=key,
            debits=paid,
            now=now,
        )
    return _finish(refund, trade, locked, handover)


# --- sending -----------------------------------------------------------------------------------------------


def _always() -> bool:
    return True


#: Whether SYNC_REFUND_BLACKOUT applies now. Always, except where the test kit's pytest plugin says: while a
#: test runs on the real clock, so that a shop's suite does not see its refunds turn asynchronous when it
#: happens to run between 00:00 and 01:30 Beijing time (a test about that window fixes the clock).
blackout_applies: Callable[[], bool] = _always


def _sync_allowed(now: datetime) -> bool:
    start, end = SYNC_REFUND_BLACKOUT
    in_window = start <= protocol_clock.to_beijing(now).time() < end
    return app_settings.REFUND_SYNC and not (in_window and blackout_applies())


def _build_request(
    refund: Refund, trade: Trade, now: datetime, merchant: Merchant | None = None
) -> dict[str, str]:
    """The wire-named arguments of the call, as strings, stored so every resend is the very same request.

    Wire timestamps (gmt_return, timestamp) are real time: the gateway checks them against its own clock.
    """
    amount = money.format_amount(refund.amount, refund.currency)
    sync = "Y" if _sync_allowed(now) else "N"
    sent_at = timezone.now()
    if refund.kind == RefundKind.REVERSE:
        if app_settings.REVERSE_SERVICE == "spot_reverse":
            return {"partner_trans_id": trade.out_trade_no}
        return {"out_trade_no": trade.out_trade_no, "timestamp": protocol_clock.format_datetime(sent_at)}
    request = {"currency": refund.currency, "is_sync": sync}
    if trade.is_online:
        request |= {
            "out_return_no": refund.gateway_refund_id,
            "out_trade_no": trade.out_trade_no,
            "return_amount": amount,
            "gmt_return": protocol_clock.format_compact(sent_at),
            "reason": refund.reason,
            "product_code": "NEW_WAP_OVERSEAS_SELLER"
            if trade.product == Product.ONLINE_WAP
            else "NEW_OVERSEAS_SELLER",
        }
    else:
        request |= {
            "partner_trans_id": trade.out_trade_no,
            "partner_refund_id": refund.gateway_refund_id,
            "refund_amount": amount,
            "refund_reason": refund.reason,
        }
    notify = (merchant if merchant is not None else Merchant.objects.get(pk=trade.merchant_id)).notify_url()
    if notify:
        request["notify_url"] = notify
    return {name: value for name, value in request.items() if value}


#: Added to REFUND_SPACING: the gap is counted from when the previous call answered, on the database's clock,
#: and a tenth of a second keeps the gap the gateway measures at the setting or above.
SPACING_MARGIN = 0.1
#: Seconds allowed, beyond ALIPAY["HTTP_TOTAL_TIMEOUT"], between claiming a refund and recording its answer.
IN_FLIGHT_SLACK = 5.0
#: While another call of the partner is under way, a synchronous caller looks again this often (seconds).
IN_FLIGHT_POLL = 0.25
#: How a caller waiting for its partner's refund turn sleeps (seconds); a test may wait without sleeping.
send_slot_sleep: Callable[[float], None] = time.sleep


def _database_now() -> datetime:
    """The database server's wall clock: one clock for every worker on every machine."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            row = cursor.fetchone()
        if row is not None and isinstance(row[0], datetime):
            return row[0]
    return timezone.now()


def _database_clock_in_sql(plus: float = 0.0) -> Any:
    """The database server's wall clock (plus ``plus`` seconds) inside the statement that uses it, on
    PostgreSQL (no separate read); None elsewhere, where :func:`_database_now` is read instead."""
    if connection.vendor != "postgresql":
        return None
    now = Func(function="clock_timestamp", output_field=DateTimeField())
    if not plus:
        return now
    return ExpressionWrapper(now + Value(timedelta(seconds=plus)), output_field=DateTimeField())


@dataclass(frozen=True)
class _Slot:
    """A refund call's turn at one partner, taken by :func:`_take_send_slot`; given back when it answers."""

    partner: str
    claim: str


def _call_window() -> float:
    """Seconds a refund call can be under way at most: the client's total deadline, plus slack."""
    return app_settings.HTTP_TOTAL_TIMEOUT + IN_FLIGHT_SLACK


def _take_send_slot(partner: str, *, wait: bool, max_wait: float | None = None) -> _Slot | None:
    """Take the partner's turn for one refund call, REFUND_SPACING (+ SPACING_MARGIN) s after the previous
    call of the same Alipay partner *answered* (or could no longer be under way).

    Alipay counts the spacing from when it received the previous refund, which may be any moment until that
    call answered: counting from the answer is the only count that holds however slow the gateway is. The
    partner's RefundSlot row is locked only to read and write it, never while waiting. While another call of
    the partner is under way, or its gap has not passed: with ``wait`` sleep (lock released) and try again,
    at most ``max_wait`` seconds in all (None: as long as it takes), else raise RefundSpacingNotReached with
    the seconds after which asking again makes sense. Returns the slot to give back with
    :func:`_release_send_slot` once the call has ended (None when spacing is off). A time in the future
    beyond anything this code writes (a clock set back) does not block the partner for good.
    """
    spacing = app_settings.REFUND_SPACING
    if spacing <= 0:
        return None
    gap = spacing + SPACING_MARGIN
    window = _call_window()
    waited = 0.0
    clock_now = _database_clock_in_sql()
    while True:
        with transaction.atomic():
            rows = RefundSlot.objects.select_for_update().filter(partner=partner)
            # The database's clock read with the row; if the lock was waited for, possibly a little before
            # the wait, which only makes the remaining time look longer (never a shorter gap).
            found = rows.annotate(database_now=clock_now).first() if clock_now is not None else rows.first()
            if found is None:
                # The partner's first refund call: its row, then the lock again (another caller may race).
                RefundSlot.objects.bulk_create([RefundSlot(partner=partner)], ignore_conflicts=True)
                continue
            slot = found
            current = getattr(slot, "database_now", None) or _database_now()
            blocked_until, poll, longest = slot.next_call_at, False, gap
            if slot.in_flight_until is not None and slot.in_flight_until - current <= timedelta(
                seconds=window
            ):
                # Another call is (or was) under way: the next may go a gap after it ends.
                ends = slot.in_flight_until + timedelta(seconds=gap)
                blocked_until = ends if blocked_until is None else max(blocked_until, ends)
                poll, longest = current < slot.in_flight_until, gap + window
            remaining = 0.0 if blocked_until is None else (blocked_until - current).total_seconds()
            if remaining > longest:
                remaining = 0.0  # written before the database clock was set back
            if remaining <= 0:
                claim = secrets.token_hex(16)
                until = _database_clock_in_sql(window)  # the clock now, after the lock, on PostgreSQL
                RefundSlot.objects.filter(pk=slot.pk).update(
                    in_flight_until=until if until is not None else current + timedelta(seconds=window),
                    claim=claim,
                )
                return _Slot(partner, claim)
        if poll:
            # It may answer any moment: ask again after the gap (a worker) or shortly (a waiting caller).
            remaining = min(remaining, gap if not wait else IN_FLIGHT_POLL)
        if not wait or (max_wait is not None and waited + remaining > max_wait):
            raise RefundSpacingNotReached(
                _(
                    "Alipay asks for %(spacing)s seconds between refunds of one partner; the next one may go "
                    "in %(remaining).2f seconds."
                )
                % {"spacing": f"{spacing:g}", "remaining": remaining},
                retry_after=remaining,
            )
        send_slot_sleep(remaining)
        waited += remaining


def _return_unused_slot(slot: _Slot | None) -> None:
    """No call was made with ``slot`` after all (another caller claimed the refund): the partner's turn is
    free again at once, as it was before it was taken."""
    if slot is not None:
        RefundSlot.objects.filter(partner=slot.partner, claim=slot.claim).update(
            in_flight_until=None, claim=""
        )


def _release_send_slot(slot: _Slot | None) -> None:
    """The call of ``slot`` has ended (answered, failed or timed out): the partner's next call may go a gap
    from now, on the database's clock."""
    if slot is None:
        return
    gap = app_settings.REFUND_SPACING + SPACING_MARGIN
    # Computed by the database in the statement on PostgreSQL: no separate read of its clock.
    after = _database_clock_in_sql(gap)
    if after is None:
        after = _database_now() + timedelta(seconds=gap)
    with transaction.atomic():
        ours = RefundSlot.objects.filter(partner=slot.partner, claim=slot.claim)
        if not ours.update(in_flight_until=None, claim="", next_call_at=after):
            # Past our deadline another call took the turn: keep the later of the two limits.
            RefundSlot.objects.filter(partner=slot.partner).filter(
                Q(next_call_at__isnull=True) | Q(next_call_at__lt=after)
            ).update(next_call_at=after)


def call_in_flight(refund: Refund) -> float:
    """Seconds during which a gateway call for ``refund`` may still be under way (0.0 when none can be).

    A refund claimed for a call (SUBMITTED, or UNKNOWN being resolved) with no answer recorded yet is either
    waiting for the gateway or was left by a process that died. The two look the same until the client's
    total deadline (``ALIPAY["HTTP_TOTAL_TIMEOUT"]``, plus IN_FLIGHT_SLACK) has passed since the claim; a
    caller that resends before then may send the same request twice (harmless with the same gateway id,
    but needless).
    """
    if not refund.in_flight or refund.submitted_at is None:
        return 0.0
    window = app_settings.HTTP_TOTAL_TIMEOUT + IN_FLIGHT_SLACK
    left = (refund.submitted_at + timedelta(seconds=window) - clock.now()).total_seconds()
    return max(0.0, min(left, window))


def _trade_of(refund: Refund) -> Trade:
    """The refund's trade with its merchant: the ones it was loaded (or created) with, else read together."""
    if Refund.trade.is_cached(refund) and Trade.merchant.is_cached(refund.trade):
        return refund.trade
    return Trade.objects.select_related("merchant").get(pk=refund.trade_id)


def _call(refund: Refund, trade: Trade, request: Mapping[str, str]) -> Any:
    merchant = trade.merchant
    online = trade.is_online
    client = gateway.client(merchant, instore=not online)
    if refund.kind == RefundKind.REVERSE:
        if "partner_trans_id" in request:
            return client.spot_reverse(**request)
        return client.cancel(**request)
    if online:
        return client.forex_refund(**request)
    return client.spot_refund(**request)


#: The key, in a refund's stored ``response``, of the gateway's clock minus ours (seconds, e.g. "+86400") when
#: a call carrying a timestamp was refused while the two clocks differed by more than its validity.
CLOCK_SKEW_FIELD = "clock_skew_seconds"


@dataclass(frozen=True)
class _Outcome:
    """What a call's answer makes of the refund: its status, and the code, description and fields to keep."""

    status: RefundStatus
    code: str = ""
    description: str = ""
    fields: Mapping[str, str] | None = None


#: What the refund calls return. The client returns a result only when the gateway did what was asked; every
#: other answer is an error, whose meaning :func:`_outcome_of_error` reads.
_RefundAnswer = ForexRefundResult | SpotRefundResult | SpotReverseResult | CancelResult


def _interpret(refund: Refund, answer: _RefundAnswer, request: Mapping[str, str]) -> _Outcome:
    """What a successful call's answer means for the refund: made, or only accepted when it was sent
    asynchronously (its result then comes as a notification)."""
    fields = dict(answer.fields)
    if refund.kind == RefundKind.REFUND and request.get("is_sync") != "Y":
        return _Outcome(RefundStatus.SUBMITTED, fields=fields)
    return _Outcome(RefundStatus.SUCCEEDED, fields=fields)


def clock_skew_of(refund: Refund) -> timedelta | None:
    """The gateway's clock minus ours, when the refund's call was refused while the clocks disagreed by more
    than a timestamp's validity (the likely cause of the refusal); else None."""
    response = refund.response if isinstance(refund.response, dict) else {}
    try:
        return timedelta(seconds=int(str(response[CLOCK_SKEW_FIELD])))
    except (KeyError, ValueError):
        return None


def _outcome_of_error(exc: AlipayError, *, conclusive: bool) -> _Outcome:
    """What a call's error makes of the refund, by the error's verdict (``interpretation.verdict_of``).

    ``conclusive``: the call was the first for a request no earlier attempt may have delivered. Only then does
    NOT_SENT put the refund back to REQUESTED and REFUSED make it FAILED; anything else (and those two after
    an earlier attempt) keeps the amount reserved, UNKNOWN, until an answer settles it.
    """
    code = exc.code or type(exc).__name__
    description = exc.description or exc.message
    fields = {"error": exc.code or "", "description": description}
    if exc.clock_skew is not None:
        # The likely cause of the refusal: kept so that the admin can say so (see CLOCK_SKEW_FIELD).
        fields[CLOCK_SKEW_FIELD] = f"{exc.clock_skew.total_seconds():+.0f}"
    verdict = verdict_of(exc)
    if verdict is Verdict.NOT_SENT and conclusive:
        # Never sent: back to REQUESTED so the next attempt is a first attempt again. Not after an earlier
        # attempt, which may have been delivered: its refund stays UNKNOWN until an answer settles it.
        return _Outcome(RefundStatus.REQUESTED, code, description, fields)
    if verdict is Verdict.REFUSED and conclusive:
        return _Outcome(RefundStatus.FAILED, code, description, fields)
    return _Outcome(RefundStatus.UNKNOWN, code, description, fields)


def _send(refund: Refund, request: Mapping[str, str], *, conclusive: bool, slot: _Slot | None) -> Refund:
    trade = _trade_of(refund)
    try:
        answer = _call(refund, trade, request)
    except AlipayError as exc:
        outcome = _outcome_of_error(exc, conclusive=conclusive)
    else:
        outcome = _interpret(refund, answer, request)
    finally:
        # The partner's next refund call is spaced from this moment: the gateway has had this one by now.
        _release_send_slot(slot)
        if not conclusive and outcome.status == RefundStatus.FAILED:
            outcome = _Outcome(RefundStatus.UNKNOWN, outcome.code, outcome.description, outcome.fields)
    if outcome.status == RefundStatus.UNKNOWN and outcome.code in _INCONCLUSIVE_CODES:
        logger.warning(
            "%s %s: Alipay answered %s (the request arrived before); its notification or the transaction "
            "file of its day settles it",
            refund.kind,
            refund.gateway_refund_id,
            outcome.code,
        )
    elif not conclusive and outcome.status not in (RefundStatus.SUCCEEDED, RefundStatus.SUBMITTED):
        logger.error(
            "%s %s is still unresolved after a resend (%s): it needs a person to check it with Alipay",
            refund.kind,
            refund.gateway_refund_id,
            outcome.code or "no answer",
        )
    recorded = _record_answer(refund, trade, outcome)
    if recorded is not None:
        return recorded
    return record_result(
        refund,
        outcome=outcome.status,
        code=outcome.code,
        description=outcome.description,
        response=outcome.fields or {},
        event=RefundEvent.ANSWER,
    )


def submit(refund_id: int, *, wait: bool = True) -> Refund:
    """Send a REQUESTED refund to the gateway, exactly once: only the caller that moves it to SUBMITTED calls.

    Safe to run from any number of workers or retries at once; a refund in any other status is returned
    unchanged. The default ``REFUND_DISPATCHER``. The partner's refund spacing is kept first: ``wait=False``
    raises RefundSpacingNotReached instead of sleeping, with the refund still REQUESTED. ``wait=True`` sleeps
    at most ``ALIPAY["REFUND_MAX_WAIT"]`` seconds for it (a burst of refunds must not hold request threads
    for minutes); past that the refund is returned still REQUESTED, for reconciliation to send.
    """
    refund = Refund.objects.select_related("trade__merchant").get(pk=refund_id)
    if refund.status != RefundStatus.REQUESTED:
        return refund
    return _submit(refund, refund.trade, refund.trade.merchant, wait=wait)


def _submit(refund: Refund, trade: Trade, merchant: Merchant, *, wait: bool) -> Refund:
    """:func:`submit` with the REQUESTED refund, its trade and their merchant in hand (not read again)."""
    # Checked first so that a configuration error leaves the refund REQUESTED, not SUBMITTED.
    gateway.check_configuration(merchant, instore=not trade.is_online)
    budget = app_settings.REFUND_MAX_WAIT
    try:
        slot = _take_send_slot(merchant.partner, wait=wait, max_wait=budget)
    except RefundSpacingNotReached:
        if not wait:
            raise
        logger.warning(
            "refund %s left queued: the partner's refund spacing is taken for longer than REFUND_MAX_WAIT "
            "(%s s); reconciliation will send it",
            refund.gateway_refund_id,
            budget,
        )
        return refund
    try:
        now = clock.now()
        if refund.kind == RefundKind.REVERSE:
            # Checked when the reversal was asked for; checked again now, since its turn may come after
            # midnight Beijing time, when the gateway would refuse it (TRADE_STATUS_ERROR).
            trade.refresh_from_db()
            too_late = _reverse_day_refusal(trade, now)
            if too_late is not None:
                _return_unused_slot(slot)
                logger.warning("reversal %s not sent: %s", refund.gateway_refund_id, too_late)
                return record_result(
                    refund,
                    outcome=RefundStatus.FAILED,
                    code=ReverseNotAllowed.__name__,
                    description=too_late,
                    response={"error": ReverseNotAllowed.__name__, "description": too_late},
                    event=RefundEvent.EXPIRED,
                )
        request = _build_request(refund, trade, now, merchant)
        check_refund_move(refund.gateway_refund_id, refund.status, RefundEvent.CLAIM, RefundStatus.SUBMITTED)
        updated_at = timezone.now()
        claimed = Refund.objects.filter(pk=refund.pk, status=RefundStatus.REQUESTED).update(
            status=RefundStatus.SUBMITTED,
            request_params=request,
            response={},
            answered_at=None,
            submitted_at=now,
            attempts=F("attempts") + 1,
            updated_at=updated_at,
        )
    except BaseException:
        _return_unused_slot(slot)
        raise
    if not claimed:
        _return_unused_slot(slot)
        return Refund.objects.get(pk=refund.pk)
    # The claim as written, not read back: the answer is recorded from the row locked then (record_result).
    refund.status = RefundStatus.SUBMITTED
    refund.request_params = request
    refund.response = {}
    refund.answered_at = None
    refund.submitted_at = now
    refund.attempts += 1
    refund.updated_at = updated_at
    return _send(refund, request, conclusive=True, slot=slot)


_SUBMIT = submit  # the default dispatcher, sent in process with the objects in hand (see _dispatch_on_commit)


def resolve_unknown(refund: Refund, *, wait: bool = True) -> Refund:
    """Settle a refund of unknown outcome by asking again under the same gateway id; never mints a new one.

    REFUND: the stored request is sent again (Alipay identifies a refund by its out_return_no /
    partner_refund_id, so a refund already made is not made twice). REVERSE: the trade is queried first; a
    closed trade means the reversal happened, otherwise the reversal is sent again. Also sends a SUBMITTED
    refund whose call never got an answer recorded (a crash between claim and call). One caller at a time.
    The resend keeps the partner's refund spacing like :func:`submit` (``wait=False``: raise
    RefundSpacingNotReached instead of sleeping, with nothing changed).
    """
    refund.refresh_from_db()
    resendable = refund.status == RefundStatus.UNKNOWN or (
        refund.status == RefundStatus.SUBMITTED and refund.answered_at is None
    )
    if not resendable:
        return refund
    request = dict(refund.request_params)
    if refund.kind == RefundKind.REVERSE:
        trade = Trade.objects.get(pk=refund.trade_id)
        try:
            trades.sync_trade(trade)
        except AlipayError as exc:
            logger.warning(
                "query before resending %s failed (%s); resending", refund.gateway_refund_id, exc.code
            )
        if trade.status == TradeStatus.TRADE_CLOSED:
            return record_result(
                refund,
                outcome=RefundStatus.SUCCEEDED,
                response=dict(trade.gateway_response),
                event=RefundEvent.QUERY,
            )
        if "timestamp" in request:
            # cancel requests expire after 30 minutes; the resend is the same cancel with a fresh timestamp.
            request["timestamp"] = protocol_clock.format_datetime(timezone.now())
    partner = Merchant.objects.values_list("partner", flat=True).get(pk=refund.merchant_id)
    slot = _take_send_slot(partner, wait=wait)
    try:
        # The claim clears the last answer: "claimed, no answer yet" (in flight), as after submit().
        check_refund_move(refund.gateway_refund_id, refund.status, RefundEvent.RESEND, refund.status)
        claimed = Refund.objects.filter(pk=refund.pk, status=refund.status, attempts=refund.attempts).update(
            attempts=F("attempts") + 1,
            submitted_at=clock.now(),
            response={},
            answered_at=None,
            updated_at=timezone.now(),
        )
    except BaseException:
        _return_unused_slot(slot)
        raise
    if not claimed:
        _return_unused_slot(slot)
        refund.refresh_from_db()
        return refund
    refund.refresh_from_db()
    return _send(refund, request, conclusive=False, slot=slot)


# --- recording ---------------------------------------------------------------------------------------------


#: What recording an outcome writes on the refund's row (the rest of the locked row is as read).
_RECORDED = (
    "status",
    "error_code",
    "error_description",
    "response",
    "answered_at",
    "completed_at",
    "updated_at",
)


def _recorded_columns(
    refund: Refund, status: RefundStatus, code: str, description: str, raw: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """The columns recording ``status`` writes on the refund's row, with their values (the others keep
    theirs): the status and answer time always, the code and description with a code or a success, the
    response when there is one, the completion time when final."""
    columns: dict[str, Any] = {"status": status}
    if code or status in (RefundStatus.SUCCEEDED, RefundStatus.SUBMITTED):
        if len(code) > ERROR_CODE_MAX:
            logger.warning(
                "%s %s: error code of %d characters cut to %d: %r",
                refund.kind,
                refund.gateway_refund_id,
                len(code),
                ERROR_CODE_MAX,
                code,
            )
        columns["error_code"] = code[:ERROR_CODE_MAX]
        columns["error_description"] = description
    if raw:
        columns["response"] = raw
    columns["answered_at"] = now
    if status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED):
        columns["completed_at"] = now
    return columns


@functools.cache
def _record_statement(names: tuple[str, ...]) -> tuple[str, tuple[Any, ...]]:
    """One statement recording an answer on a refund still as its caller claimed it (PostgreSQL): the trade's
    row locked first, then the refund's updated only while it is in that state, then the trade's balance
    moved by it; it returns the trade's row as it is afterwards, and whether the refund was recorded.

    The refund's row is locked by its UPDATE, which can only run on a row the join with the locked trade
    has produced: the trade's lock comes first, the order of every other path that locks the two.
    """
    quote = connection.ops.quote_name
    refund_meta, trade_meta = Refund._meta, Trade._meta
    fields = tuple(refund_meta.get_field(name) for name in names)
    column = {field.name: quote(str(field.column)) for field in (*refund_meta.concrete_fields,)}
    trade_column = {field.name: quote(str(field.column)) for field in trade_meta.concrete_fields}
    pending, refunded = trade_column["refund_pending_amount"], trade_column["refunded_amount"]
    sets = ", ".join(f"{column[field.name]} = %s" for field in fields)
    # The trade's columns as they are after the statement: the balance from its update, when it moved.
    returned = ", ".join(
        f"COALESCE(moved.{name}, locked.{name}) AS {name}"
        if name in (pending, refunded)
        else f"locked.{name}"
        for name in trade_column.values()
    )
    sql = (
        f"WITH locked AS (SELECT * FROM {quote(trade_meta.db_table)} WHERE id = %s FOR UPDATE), "  # noqa: S608
        f"recorded AS (UPDATE {quote(refund_meta.db_table)} AS r SET {sets} FROM locked "
        f"WHERE r.id = %s AND r.{column['trade']} = locked.id AND r.{column['status']} = %s "
        f"AND r.{column['attempts']} = %s AND r.{column['answered_at']} IS NULL "
        f"RETURNING r.{column['amount']} AS amount, r.{column['debits_balance']} AS debits), "
        f"moved AS (UPDATE {quote(trade_meta.db_table)} AS t "
        f"SET {pending} = t.{pending} - recorded.amount * %s, "
        f"{refunded} = t.{refunded} + recorded.amount * %s "
        f"FROM recorded WHERE t.id = %s AND recorded.debits AND %s "
        f"RETURNING t.{pending}, t.{refunded}) "
        f"SELECT {returned}, (SELECT count(*) FROM recorded) AS recorded_rows "
        f"FROM locked LEFT JOIN moved ON true"
    )
    return sql, fields


def _record_answer(refund: Refund, trade: Trade, outcome: _Outcome) -> Refund | None:
    """:func:`record_result` of a call's answer in one statement (no BEGIN, COMMIT or read first), when the
    refund is still as its caller claimed it: a REFUND on PostgreSQL, SUBMITTED (or UNKNOWN being resolved)
    with ``attempts`` as claimed and no answer recorded yet. None, with nothing written, when it is not
    (another path recorded meanwhile, a life-cycle move to judge on the locked row): the caller then
    records through :func:`record_result`, which reads the row under lock and decides.
    """
    if (
        connection.vendor != "postgresql"
        or refund.kind != RefundKind.REFUND
        or refund.answered_at is not None
    ):
        return None
    status = outcome.status
    previous = RefundStatus(refund.status)
    if previous in REFUND_FINAL or not refund_move_allowed(previous, RefundEvent.ANSWER, status):
        return None  # record_result judges it on the locked row (ignored when final, else IllegalMove)
    raw = {str(k): str(v) for k, v in (outcome.fields or {}).items()}
    now = clock.now()
    columns = _recorded_columns(refund, status, outcome.code, outcome.description, raw, now)
    columns["updated_at"] = timezone.now()
    sql, fields = _record_statement(tuple(columns))
    values = [field.get_db_prep_save(columns[field.name], connection) for field in fields]
    release = 1 if status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED) else 0
    credit = 1 if status == RefundStatus.SUCCEEDED else 0
    params = [
        trade.pk,
        *values,
        refund.pk,
        previous,
        refund.attempts,
        release,
        credit,
        trade.pk,
        bool(release),
    ]
    found = list(Trade.objects.raw(sql, params))
    if not found or not getattr(found[0], "recorded_rows", 0):
        return None
    locked = found[0]
    if Trade.merchant.is_cached(trade) and trade.merchant_id == locked.merchant_id:
        Trade.merchant.field.set_cached_value(locked, trade.merchant)
    for name, value in columns.items():
        setattr(refund, name, value)
    Refund.trade.field.set_cached_value(refund, locked)
    if status == RefundStatus.SUCCEEDED:
        signals.send_on_commit(signals.refund_succeeded, Refund, refund=refund, trade=locked, params=raw)
    elif status == RefundStatus.FAILED:
        signals.send_on_commit(signals.refund_failed, Refund, refund=refund, trade=locked, params=raw)
    return refund


def record_result(
    refund: Refund,
    *,
    outcome: RefundStatus | str,
    code: str = "",
    description: str = "",
    response: Mapping[str, Any] | None = None,
    event: RefundEvent = RefundEvent.REPORT,
) -> Refund:
    """Record what became of a refund (a gateway answer, a notification, or a person's finding).

    Under the trade's and the refund's row locks. SUCCEEDED moves the amount from pending to refunded (and a
    REVERSE closes the trade); FAILED releases it; SUBMITTED (accepted) and UNKNOWN keep it reserved.
    SUCCEEDED and FAILED are final: a later, different outcome is logged as a conflict and ignored, a repeat
    of the same one changes nothing. Any other move must be in the life-cycle table for ``event``
    (:data:`~django_alipay.domain.lifecycle.REFUND_MOVES`), else IllegalMove is raised and nothing changes.
    The refund's ``answered_at`` is set: its last call is no longer in flight. An error code is kept whole
    up to ERROR_CODE_MAX characters (a longer one is cut there, with a warning; ``response`` keeps the
    answer as received). Signals are sent after the commit. Returns the refreshed refund, its trade loaded.
    """
    status = RefundStatus(outcome)
    raw = {str(k): str(v) for k, v in (response or {}).items()}
    now = clock.now()
    with transaction.atomic():
        # Both rows in one statement, the trade's locked before the refund's (PostgreSQL locks in the order
        # of FOR UPDATE OF): the order of every other path that locks the two.
        locked = rows.select_with_parent_locked(Refund, "trade", refund.pk)
        trade = locked.trade
        previous = RefundStatus(locked.status)
        if previous in REFUND_FINAL:
            if status != previous:
                logger.error(
                    "%s %s is already %s; a later report of %s (%s) was ignored",
                    locked.kind,
                    locked.gateway_refund_id,
                    previous,
                    status,
                    code or "no code",
                )
            rows.copy_into(refund, locked)
            Refund.trade.field.set_cached_value(refund, trade)
            return refund
        check_refund_move(locked.gateway_refund_id, previous, event, status)
        for name, value in _recorded_columns(locked, status, code, description, raw, now).items():
            setattr(locked, name, value)
        rows.write_columns(locked, _RECORDED)
        # The trade is locked: its balance after the update is the one read plus the change (not read back).
        if locked.debits_balance and status == RefundStatus.SUCCEEDED:
            rows.add_to_columns(
                Trade, trade.pk, refund_pending_amount=-locked.amount, refunded_amount=locked.amount
            )
            trade.refund_pending_amount -= locked.amount
            trade.refunded_amount += locked.amount
        elif locked.debits_balance and status == RefundStatus.FAILED:
            rows.add_to_columns(Trade, trade.pk, refund_pending_amount=-locked.amount)
            trade.refund_pending_amount -= locked.amount
        if locked.kind == RefundKind.REVERSE and status == RefundStatus.SUCCEEDED:
            trades.close_locked(trade, Merchant.objects.get(pk=trade.merchant_id), raw=raw, source="gateway")
        if status == RefundStatus.SUCCEEDED and previous != status:
            signals.send_on_commit(signals.refund_succeeded, Refund, refund=locked, trade=trade, params=raw)
        elif status == RefundStatus.FAILED and previous != status:
            signals.send_on_commit(signals.refund_failed, Refund, refund=locked, trade=trade, params=raw)
    rows.copy_into(refund, locked)
    Refund.trade.field.set_cached_value(refund, trade)
    return refund
