"""The refund and trade life cycles as tables: which event may move which status where, checked by the domain.

A refund's status only changes in :mod:`django_alipay.domain.refunds`, and each change names its event; a
move the table does not list is a bug in this library and raises :class:`IllegalMove` (an internal error,
never shown to a buyer). A report that arrives after a refund's outcome is final (a late or conflicting
notification, a second answer) is not a move: the domain logs it and ignores it. The trade table is the
protocol's forward-only rule (:func:`django_alipay.protocol.codes.can_transition`); a report against it is
stale, not a bug: :func:`~django_alipay.domain.trades.apply_status` flags it and never raises.

``docs/refunds.md`` shows both tables, rendered by :func:`render_refund_moves` and
:func:`render_trade_moves`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from django_alipay.enums import RefundStatus
from django_alipay.protocol.codes import TradeStatus, can_transition

__all__ = [
    "REFUND_FINAL",
    "REFUND_MOVES",
    "TRADE_MOVES",
    "IllegalMove",
    "Move",
    "RefundEvent",
    "TradeEvent",
    "check_refund_move",
    "refund_move_allowed",
    "render_refund_moves",
    "render_trade_moves",
    "trade_move_allowed",
]


class RefundEvent(StrEnum):
    """What moves a refund's status; ``meaning`` says it in words, for the docs."""

    CLAIM = "claim"
    RESEND = "resend"
    ANSWER = "answer"
    EXPIRED = "expired"
    NOTIFICATION = "notification"
    FILE = "settlement file"
    QUERY = "query"
    REPORT = "report"

    @property
    def meaning(self) -> str:
        """The event in words, for the docs."""
        return _REFUND_EVENT_MEANINGS[self]


_REFUND_EVENT_MEANINGS = {
    RefundEvent.CLAIM: "`submit` claims a requested refund for its first gateway call (only one caller "
    "wins); the default dispatcher, sending a new refund at once in its own process, claims it as it is "
    "stored",
    RefundEvent.RESEND: "`resolve_unknown` claims an unknown refund, or one whose call never got an answer, "
    "to send the same request again",
    RefundEvent.ANSWER: "the outcome of a gateway call is recorded: its answer, a timeout or an error "
    "(`requested` again when the request never left)",
    RefundEvent.EXPIRED: "a reversal whose turn came after its Beijing day is not sent",
    RefundEvent.NOTIFICATION: "Alipay's refund notification reports the result",
    RefundEvent.FILE: "the day's transaction file lists the refund as made",
    RefundEvent.QUERY: "a query finds the reversed trade closed",
    RefundEvent.REPORT: "`record_result` called without an event (the shop's own code, a person's finding)",
}


class TradeEvent(StrEnum):
    """What moves a trade's status."""

    REPORT = "report"

    @property
    def meaning(self) -> str:
        """The event in words, for the docs."""
        return _TRADE_EVENT_MEANINGS[self]


_TRADE_EVENT_MEANINGS = {
    TradeEvent.REPORT: "Alipay reports the status: a trade notification, a query, the answer to an in-store "
    "payment call, or a reversal that closed the trade",
}


@dataclass(frozen=True)
class Move:
    """One allowed move: ``event`` takes a refund (or trade) in ``source`` to ``target``."""

    source: str
    event: str
    target: str


class IllegalMove(RuntimeError):
    """The domain tried a move its life-cycle table does not allow: a bug in django_alipay, not bad input."""


_R = RefundStatus
_PENDING = (_R.REQUESTED, _R.SUBMITTED, _R.UNKNOWN)


def _moves(sources: Iterable[str], event: RefundEvent, targets: Iterable[str]) -> tuple[Move, ...]:
    return tuple(Move(str(source), event.value, str(target)) for source in sources for target in targets)


#: Every move a refund's status may make. SUCCEEDED and FAILED are final: nothing leaves them.
REFUND_MOVES: tuple[Move, ...] = (
    *_moves([_R.REQUESTED], RefundEvent.CLAIM, [_R.SUBMITTED]),
    *_moves([_R.SUBMITTED], RefundEvent.RESEND, [_R.SUBMITTED]),
    *_moves([_R.UNKNOWN], RefundEvent.RESEND, [_R.UNKNOWN]),
    # A claim's own answer finds the refund submitted; a slow first call's answer may come after another
    # caller's "never sent" made it requested again.
    *_moves([_R.REQUESTED, _R.SUBMITTED], RefundEvent.ANSWER, [*_PENDING, _R.SUCCEEDED, _R.FAILED]),
    *_moves([_R.UNKNOWN], RefundEvent.ANSWER, [_R.SUBMITTED, _R.UNKNOWN, _R.SUCCEEDED, _R.FAILED]),
    *_moves([_R.REQUESTED], RefundEvent.EXPIRED, [_R.FAILED]),
    *_moves(_PENDING, RefundEvent.NOTIFICATION, [_R.SUCCEEDED, _R.FAILED]),
    *_moves(_PENDING, RefundEvent.FILE, [_R.SUCCEEDED]),
    *_moves([_R.SUBMITTED, _R.UNKNOWN], RefundEvent.QUERY, [_R.SUCCEEDED]),
    *_moves([_R.REQUESTED, _R.SUBMITTED], RefundEvent.REPORT, [*_PENDING, _R.SUCCEEDED, _R.FAILED]),
    *_moves([_R.UNKNOWN], RefundEvent.REPORT, [_R.SUBMITTED, _R.UNKNOWN, _R.SUCCEEDED, _R.FAILED]),
)

_REFUND_ALLOWED = frozenset((move.source, move.event, move.target) for move in REFUND_MOVES)
#: Statuses no move leaves.
REFUND_FINAL = frozenset(str(status) for status in RefundStatus) - {move.source for move in REFUND_MOVES}


def refund_move_allowed(source: str, event: RefundEvent, target: str) -> bool:
    """True when the table lets ``event`` move a refund from ``source`` to ``target``."""
    return (str(source), event.value, str(target)) in _REFUND_ALLOWED


def check_refund_move(gateway_refund_id: str, source: str, event: RefundEvent, target: str) -> None:
    """Raise IllegalMove unless the table lets ``event`` move the refund from ``source`` to ``target``."""
    if not refund_move_allowed(source, event, target):
        raise IllegalMove(
            f"refund {gateway_refund_id}: the refund life cycle has no move from {source} to {target} on "
            f"{event.value!r} (see django_alipay.domain.lifecycle.REFUND_MOVES)"
        )


_T = TradeStatus
_TRADE_STATUSES = (_T.WAIT_BUYER_PAY, _T.TRADE_SUCCESS, _T.TRADE_FINISHED, _T.TRADE_CLOSED)

#: Every move a trade's status may make: forward only, the protocol's rule (``codes.can_transition``).
TRADE_MOVES: tuple[Move, ...] = tuple(
    Move(source.value, TradeEvent.REPORT.value, target.value)
    for source in _TRADE_STATUSES
    for target in _TRADE_STATUSES
    if can_transition(source, target)
)
_TRADE_ALLOWED = frozenset((move.source, move.target) for move in TRADE_MOVES)


def trade_move_allowed(source: str, target: str) -> bool:
    """True when a report may move a trade from ``source`` to ``target`` (forward only)."""
    return (str(source), str(target)) in _TRADE_ALLOWED


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _render(moves: tuple[Move, ...], events: list[RefundEvent] | list[TradeEvent], final: list[str]) -> str:
    lines = ["| Event | From | To |", "|---|---|---|"]
    for event in events:
        rows: dict[str, list[str]] = {}
        for move in moves:
            if move.event == event.value:
                rows.setdefault(move.source, []).append(move.target)
        for source, targets in rows.items():
            to = ", ".join(f"`{target}`" for target in targets)
            lines.append(f"| {event.value} | `{source}` | {to} |")
    lines.append("")
    lines.append("| Event | Meaning |")
    lines.append("|---|---|")
    lines.extend(f"| {event.value} | {_cell(event.meaning)} |" for event in events)
    lines.append("")
    lines.append("Final (no move leaves them): " + ", ".join(f"`{status}`" for status in final) + ".")
    return "\n".join(lines)


def render_refund_moves() -> str:
    """REFUND_MOVES as Markdown tables, for docs/refunds.md."""
    final = [str(status) for status in RefundStatus if str(status) in REFUND_FINAL]
    return _render(REFUND_MOVES, list(RefundEvent), final)


def render_trade_moves() -> str:
    """TRADE_MOVES as Markdown tables, for docs/refunds.md."""
    sources = {move.source for move in TRADE_MOVES}
    final = [status.value for status in _TRADE_STATUSES if status.value not in sources]
    return _render(TRADE_MOVES, list(TradeEvent), final)
