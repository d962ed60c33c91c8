"""A Hypothesis state machine drives the refund ledger on PostgreSQL and checks its books after every step.

Rules: open a paid (or unpaid in-store) trade; request refunds of random amounts, valid and invalid, with
idempotency keys drawn from a small pool so that replays and conflicts are common; send a refund with a
scripted gateway answer; record an outcome as a notification or a person would; resolve unknown outcomes
(for a REVERSE with a query first); reverse; move the domain clock (across Beijing midnight, into the
00:00-01:30 asynchronous-refund window, past the refund window); reconcile. A small model predicts what
each call must do, from the documented rules, and the invariants compare the database with it.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from django_alipay.domain import clock as domain_clock
from django_alipay.domain import reconciliation, refunds
from django_alipay.domain.errors import (
    IdempotencyConflict,
    RefundAmountExceeded,
    RefundNotAllowed,
    RefundWindowClosed,
    ReverseNotAllowed,
)
from django_alipay.enums import RefundKind, RefundStatus
from django_alipay.models import Merchant, Refund, Trade
from django_alipay.protocol.clock import FixedClock
from django_alipay.protocol.errors import AlipayError, AmountError, InvalidParameterError
from tests.domain.fakegateway import Call, FakeGateway, Reply

pytestmark = pytest.mark.django_db(transaction=True)

# --- the rules, written down from the docs (not read back from the code) ------------------------------------

# Beijing time, taken straight from the zone database rather than from the library under test.
SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2024, 5, 1, 22, 30, tzinfo=SHANGHAI)
WINDOW_DAYS = 30
UNPAID_GRACE = timedelta(minutes=15)
ASYNC_WINDOW = (dtime(0, 0), dtime(1, 30))  # Alipay defers synchronous refunds in this Beijing window
ONLINE = {"web", "wap"}

REQUESTED, SUBMITTED, SUCCEEDED, FAILED, UNKNOWN = (
    RefundStatus.REQUESTED,
    RefundStatus.SUBMITTED,
    RefundStatus.SUCCEEDED,
    RefundStatus.FAILED,
    RefundStatus.UNKNOWN,
)
PENDING = {REQUESTED, SUBMITTED, UNKNOWN}
FINAL = {SUCCEEDED, FAILED}
# What a status may be seen to become between two looks (the closure of the documented moves): final
# statuses never move, and a refund that may have reached the gateway (UNKNOWN) never becomes a fresh
# first attempt (REQUESTED) again.
REACHABLE: dict[str, set[str]] = {
    REQUESTED: {REQUESTED, SUBMITTED, UNKNOWN, SUCCEEDED, FAILED},
    SUBMITTED: {REQUESTED, SUBMITTED, UNKNOWN, SUCCEEDED, FAILED},
    UNKNOWN: {SUBMITTED, UNKNOWN, SUCCEEDED, FAILED},
    SUCCEEDED: {SUCCEEDED},
    FAILED: {FAILED},
}

FOREX_REFUND = "forex_refund"
SPOT_REFUND = "alipay.acquire.overseas.spot.refund"
CANCEL = "alipay.acquire.cancel"
INSTORE_QUERY = "alipay.acquire.overseas.query"
REFUND_SERVICES = (FOREX_REFUND, SPOT_REFUND, CANCEL)
TRANSACTION_FILE = "forex_compare_file"
EMPTY_FILE = b"No balance account data in the period"
# The gateway answers each service can give in this model, and the outcome class of each.
ANSWERS: dict[str, tuple[str, ...]] = {
    FOREX_REFUND: ("ok", "refused", "lost"),
    SPOT_REFUND: ("ok", "refused", "retry", "unknown", "lost"),
    CANCEL: ("ok", "refused", "retry", "lost"),
}
QUERY_ANSWERS = ("closed", "open", "not_found")

# (product, status, currency, amount) of the trades the machine opens.
TRADE_KINDS = (
    ("web", "TRADE_SUCCESS", "USD", Decimal("100.00")),
    ("web", "TRADE_FINISHED", "USD", Decimal("0.03")),
    ("wap", "TRADE_SUCCESS", "JPY", Decimal("3")),
    ("barcode", "TRADE_SUCCESS", "USD", Decimal("50.00")),
    ("barcode", "TRADE_SUCCESS", "JPY", Decimal("500")),
    ("qrcode", "TRADE_SUCCESS", "USD", Decimal("0.05")),
    ("barcode", "WAIT_BUYER_PAY", "USD", Decimal("20.00")),
    ("barcode", "TRADE_FINISHED", "USD", Decimal("10.00")),
)
_KEY_SHAPE = re.compile(r"[\x21-\x7e]{1,255}")


GOOD_KEYS = (None, "key-1", "key-2", "key-3")
BAD_KEYS = ("", "has space", "k" * 256, "ключ")
GOOD_REASONS = ("", "damaged", "退货 returned", "r" * 101)  # 101 characters: too long online only
BAD_REASONS = ('says "broken"', "r" * 129, "nul\x00byte")
BAD_CURRENCIES = ("EUR", "usd")
# Amounts no refund may carry, whatever the currency (plus currency-dependent ones drawn below).
BAD_AMOUNTS: tuple[Any, ...] = (
    Decimal("0"),
    Decimal("-0"),
    Decimal("-1.00"),
    Decimal("0.001"),
    Decimal("NaN"),
    Decimal("sNaN"),
    Decimal("Infinity"),
    Decimal("1E+30"),
    Decimal("1000000.01"),
    1.5,
    10,
    True,
    None,
    "0",
    "-1.00",
    "01.00",
    " 1.00",
    "1.00 ",
    "1e2",
    "１.00",
    "1,000.00",
    "",
    "1.",
    ".5",
    "1.005",
    "1000000.01",
    "1_000",
)


def places(currency: str) -> int:
    return 0 if currency in ("JPY", "KRW") else 2


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-places(currency))


def amount_value(value: object, currency: str) -> Decimal | None:
    """The refund amount ``value`` stands for, or None when it must be refused (spec: money rules)."""
    if isinstance(value, str):
        pattern = r"(0|[1-9][0-9]*)" if places(currency) == 0 else r"(0|[1-9][0-9]*)(\.[0-9]{1,2})?"
        if not re.fullmatch(pattern, value):
            return None
        number = Decimal(value)
    elif type(value) is Decimal:
        if not value.is_finite() or value.is_signed():
            return None
        number = value
    else:
        return None  # floats, ints and bools are never money
    if not Decimal("0.01") <= number <= Decimal("1000000.00"):
        return None
    exact = number.quantize(quantum(currency))
    return exact if exact == number else None


def wire(amount: Decimal, currency: str) -> str:
    return f"{amount:.{places(currency)}f}"


def beijing_day(moment: datetime) -> Any:
    return moment.astimezone(SHANGHAI).date()


def sync_at(moment: datetime) -> bool:
    start, end = ASYNC_WINDOW
    return not start <= moment.astimezone(SHANGHAI).time() < end


def amounts(currency: str, refundable: Decimal) -> st.SearchStrategy[Any]:
    """Well-formed amounts, as Decimal and as text: small ones, all that is left, and a little more."""
    q = quantum(currency)
    small = st.integers(1, 6).map(lambda k: q * k)
    edge = st.sampled_from([refundable, refundable + q] if refundable > 0 else [q])
    decimals = st.one_of(small, edge)
    return st.one_of(
        decimals,
        decimals.map(lambda d: wire(d, currency)),
        decimals.map(lambda d: format(d.normalize(), "f")),  # "1" or "0.5" for USD: still canonical
        small.map(lambda d: d.quantize(Decimal("0.001"))),  # Decimal("1.000"): exact, so accepted
    )


# Amounts whose fate depends on the currency: fine in USD, refused in JPY.
CURRENCY_BOUND_AMOUNTS = (Decimal("0.5"), "100.00", Decimal("2.50"))


# --- the model -------------------------------------------------------------------------------------------


@dataclass
class ModelTrade:
    pk: int
    instance: Trade  # kept stale on purpose: the domain must re-read what it relies on
    product: str
    currency: str
    amount: Decimal
    status: str
    paid_at: datetime | None
    created_at: datetime

    @property
    def online(self) -> bool:
        return self.product in ONLINE


@dataclass
class ModelRefund:
    pk: int
    instance: Refund
    trade_pk: int
    kind: str
    amount: Decimal
    reason: str
    key: str
    gateway_id: str
    debits: bool
    status: str = REQUESTED
    sync: bool | None = None  # is_sync of the request, fixed at the first send


@dataclass
class Expect:
    errors: set[type[AlipayError]] = field(default_factory=set)
    replay: int | None = None
    kind: str = ""
    amount: Decimal = Decimal(0)
    debits: bool = True


class ScriptedGateway:
    """The domain tests' fake gateway, answering each refund service as the current step scripts it."""

    def __init__(self) -> None:
        self.fake = FakeGateway()
        self.script: dict[str, Callable[[dict[str, str]], Reply]] = {}
        for service in (*REFUND_SERVICES, INSTORE_QUERY):
            self.fake.on(service, lambda params, service=service: self._answer(service, params))
        # Reconciliation also reads the transaction files of past days for refunds still awaiting an
        # outcome; this model settles refunds from answers and notifications only, so every file is empty.
        self.fake.on(
            TRANSACTION_FILE,
            lambda params: Reply(EMPTY_FILE, content_type="text/plain; charset=utf-8"),
        )

    @property
    def url(self) -> str:
        return self.fake.url

    @property
    def calls(self) -> list[Call]:
        return self.fake.calls

    def close(self) -> None:
        self.fake.close()

    def _answer(self, service: str, params: dict[str, str]) -> Reply:
        scripted = self.script.get(service)
        if scripted is not None:
            return scripted(params)
        if service == INSTORE_QUERY:
            return self.reply(service, "not_found", params)
        return self.reply(service, "ok", params)

    def reply(self, service: str, answer: str, params: dict[str, str]) -> Reply:
        fake = self.fake
        if answer == "lost":
            return Reply(b"", status=502)
        if service == FOREX_REFUND:
            return fake.accepted() if answer == "ok" else fake.refused("RETURN_AMOUNT_EXCEED")
        if service == SPOT_REFUND:
            fields = {
                "ok": {
                    "result_code": "SUCCESS",
                    "partner_trans_id": params.get("partner_trans_id", ""),
                    "partner_refund_id": params.get("partner_refund_id", ""),
                    "refund_amount": params.get("refund_amount", ""),
                    "currency": params.get("currency", ""),
                },
                "refused": {"result_code": "FAIL", "error": "REFUND_AMT_RESTRICTION"},
                "retry": {"result_code": "FAIL", "error": "SYSTEM_ERROR", "retry_flag": "Y"},
                "unknown": {"result_code": "UNKNOW"},
            }[answer]
            return fake.signed(fields)
        if service == CANCEL:
            fields = {
                "ok": {
                    "result_code": "SUCCESS",
                    "out_trade_no": params.get("out_trade_no", ""),
                    "retry_flag": "N",
                },
                "refused": {"result_code": "FAIL", "error": "TRADE_STATUS_ERROR", "retry_flag": "N"},
                "retry": {"result_code": "FAIL", "error": "SYSTEM_ERROR", "retry_flag": "Y"},
            }[answer]
            return fake.signed(fields)
        if service == INSTORE_QUERY and answer == "not_found":
            return fake.signed({"result_code": "FAIL", "error": "TRANS_NOT_FOUND"})
        raise AssertionError(f"no scripted answer {answer} for {service}")


def query_reply(
    gateway: ScriptedGateway, trade: ModelTrade, status: str
) -> Callable[[dict[str, str]], Reply]:
    def answer(params: dict[str, str]) -> Reply:
        return gateway.fake.signed(
            {
                "result_code": "SUCCESS",
                "partner_trans_id": trade.instance.out_trade_no,
                "alipay_trans_status": status,
                "trans_amount": wire(trade.amount, trade.currency),
                "currency": trade.currency,
            }
        )

    return answer


class RefundLedger(RuleBasedStateMachine):
    """One merchant's trades and refunds, driven through the domain API and compared with the model."""

    examples = 0
    steps = 0
    refusals = 0
    calls_seen = 0
    outcomes: ClassVar[Counter[str]] = Counter()
    rules: ClassVar[Counter[str]] = Counter()

    def __init__(self, merchant: Merchant, gateway: ScriptedGateway, dispatched: list[int]) -> None:
        super().__init__()
        Refund.objects.all().delete()
        Trade.objects.all().delete()
        dispatched.clear()
        gateway.script = {}
        self.merchant = merchant
        self.gateway = gateway
        self.dispatched = dispatched
        self.clock = FixedClock(START)
        domain_clock.set_clock(self.clock)
        self.trades: dict[int, ModelTrade] = {}
        self.refunds: dict[int, ModelRefund] = {}
        self.keys: dict[str, int] = {}
        self.seen: dict[int, str] = {}
        self.numbers = itertools.count(1)
        type(self).examples += 1

    def teardown(self) -> None:
        type(self).outcomes.update(f"{r.kind} {r.status}" for r in self.refunds.values())
        domain_clock.set_clock(None)

    # --- model queries -----------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def of_trade(self, trade: ModelTrade) -> list[ModelRefund]:
        return [r for r in self.refunds.values() if r.trade_pk == trade.pk]

    def refunded(self, trade: ModelTrade) -> Decimal:
        return sum((r.amount for r in self.of_trade(trade) if r.debits and r.status == SUCCEEDED), Decimal(0))

    def pending(self, trade: ModelTrade) -> Decimal:
        return sum((r.amount for r in self.of_trade(trade) if r.debits and r.status in PENDING), Decimal(0))

    def refundable(self, trade: ModelTrade) -> Decimal:
        return trade.amount - self.refunded(trade) - self.pending(trade)

    def live_reverse(self, trade: ModelTrade) -> ModelRefund | None:
        found = [r for r in self.of_trade(trade) if r.kind == RefundKind.REVERSE and r.status != FAILED]
        assert len(found) <= 1
        return found[0] if found else None

    def input_errors(self, trade: ModelTrade, reason: str, key: str | None) -> set[type[AlipayError]]:
        errors: set[type[AlipayError]] = set()
        limit = 100 if trade.online else 128
        if len(reason) > limit or '"' in reason or "\x00" in reason:
            errors.add(InvalidParameterError)
        if key is not None and not _KEY_SHAPE.fullmatch(key):
            errors.add(InvalidParameterError)
        return errors

    def keyed(
        self, key: str | None, trade: ModelTrade, kind: str, amount: Decimal, reason: str
    ) -> Expect | None:
        if not key or key not in self.keys:
            return None
        earlier = self.refunds[self.keys[key]]
        if (earlier.trade_pk, earlier.kind, earlier.amount, earlier.reason) == (
            trade.pk,
            kind,
            amount,
            reason,
        ):
            return Expect(replay=earlier.pk)
        return Expect(errors={IdempotencyConflict})

    def refund_refusals(self, trade: ModelTrade) -> set[type[AlipayError]]:
        found: set[type[AlipayError]] = set()
        paid = trade.paid_at is not None or trade.status in ("TRADE_SUCCESS", "TRADE_FINISHED")
        if self.live_reverse(trade) is not None or not paid or trade.status == "TRADE_CLOSED":
            found.add(RefundNotAllowed)
        if self.refunded(trade) >= trade.amount:
            found.add(RefundNotAllowed)
        if trade.status == "TRADE_FINISHED" and not trade.online:
            found.add(RefundWindowClosed)
        if trade.paid_at is not None and self.now() > trade.paid_at + timedelta(days=WINDOW_DAYS):
            found.add(RefundWindowClosed)
        return found

    def expect_refund(
        self, trade: ModelTrade, amount: object, currency: str | None, reason: str, key: str | None
    ) -> Expect:
        errors = self.input_errors(trade, reason, key)
        value = amount_value(amount, trade.currency)
        if value is None:
            errors.add(AmountError)
        if currency is not None and currency != trade.currency:
            errors.add(InvalidParameterError)
        if errors:
            return Expect(errors=errors)
        assert value is not None
        replay = self.keyed(key, trade, RefundKind.REFUND, value, reason)
        if replay is not None:
            return replay
        refusals = self.refund_refusals(trade)
        if refusals:
            return Expect(errors=refusals)
        if value > self.refundable(trade):
            return Expect(errors={RefundAmountExceeded})
        return Expect(kind=RefundKind.REFUND, amount=value)

    def reverse_allowed(self, trade: ModelTrade) -> bool:
        now = self.now()
        if trade.online or trade.status in ("TRADE_CLOSED", "TRADE_FINISHED"):
            return False
        if trade.status == "WAIT_BUYER_PAY":
            return beijing_day(trade.created_at) == beijing_day(now) or now < trade.created_at + UNPAID_GRACE
        if self.refunded(trade) > 0 or self.pending(trade) > 0:
            return False
        assert trade.paid_at is not None
        return beijing_day(trade.paid_at) == beijing_day(now)

    def reverse_day_passed(self, refund: ModelRefund) -> bool:
        """A reversal's first send comes after its day (Beijing): it fails locally, nothing is sent."""
        if refund.kind != RefundKind.REVERSE:
            return False
        trade, now = self.trades[refund.trade_pk], self.now()
        if trade.status == "WAIT_BUYER_PAY":
            return not (
                beijing_day(trade.created_at) == beijing_day(now) or now < trade.created_at + UNPAID_GRACE
            )
        return beijing_day(trade.paid_at or trade.created_at) != beijing_day(now)

    def expect_reverse(self, trade: ModelTrade, reason: str, key: str | None) -> Expect:
        errors = self.input_errors(trade, reason, key)
        if errors:
            return Expect(errors=errors)
        existing = self.live_reverse(trade)
        if existing is not None:
            return Expect(replay=existing.pk)
        replay = self.keyed(key, trade, RefundKind.REVERSE, trade.amount, reason)
        if replay is not None:
            return replay
        if not self.reverse_allowed(trade):
            return Expect(errors={ReverseNotAllowed})
        return Expect(kind=RefundKind.REVERSE, amount=trade.amount, debits=trade.status == "TRADE_SUCCESS")

    def pick_refund(self, data: st.DataObject, prefer: str) -> ModelRefund:
        """A refund in status ``prefer`` (where the action is), or any refund (where nothing must happen)."""
        preferred = sorted(pk for pk, r in self.refunds.items() if r.status == prefer)
        pool = preferred if data.draw(st.booleans(), label="prefer") else sorted(self.refunds)
        return self.refunds[data.draw(st.sampled_from(pool), label="refund")]

    def service_of(self, refund: ModelRefund) -> str:
        if refund.kind == RefundKind.REVERSE:
            return CANCEL
        return FOREX_REFUND if self.trades[refund.trade_pk].online else SPOT_REFUND

    def settle(self, refund: ModelRefund, status: str) -> None:
        """The model's side of a status change: a successful REVERSE closes its trade."""
        if refund.status in FINAL:
            return
        refund.status = status
        if refund.kind == RefundKind.REVERSE and status == SUCCEEDED:
            self.trades[refund.trade_pk].status = "TRADE_CLOSED"

    def answered(self, refund: ModelRefund, answer: str, *, first: bool) -> str:
        """The status a refund call's answer leads to (``first``: no earlier call may have arrived)."""
        if answer == "ok":
            if refund.kind == RefundKind.REVERSE or refund.sync:
                return SUCCEEDED
            return SUBMITTED  # accepted: the result comes later
        if answer == "refused" and first:
            return FAILED
        return UNKNOWN  # lost, retry, unknown, or a refusal of a resend (the first may have worked)

    # --- running a domain call ---------------------------------------------------------------------------

    def snapshot(self) -> tuple[Any, ...]:
        trades = list(
            Trade.objects.order_by("pk").values_list(
                "pk", "status", "refunded_amount", "refund_pending_amount", "updated_at"
            )
        )
        rows = list(Refund.objects.order_by("pk").values_list("pk", "status", "attempts", "updated_at"))
        return trades, rows, len(self.dispatched), len(self.gateway.calls)

    def attempt(self, call: Callable[[], Refund], expect: Expect) -> None:
        before = self.snapshot()
        if expect.errors:
            with pytest.raises(AlipayError) as caught:
                call()
            assert type(caught.value) in expect.errors, (type(caught.value), expect.errors)
            assert caught.value.message  # a message for the shop owner
            assert self.snapshot() == before, "a refusal changed something"
            type(self).refusals += 1
            type(self).outcomes[f"refused: {type(caught.value).__name__}"] += 1
            return
        refund = call()
        if expect.replay is not None:
            assert refund.pk == expect.replay
            assert self.snapshot() == before, "a replay changed something"
            return
        assert refund.pk not in self.refunds
        assert (refund.kind, refund.amount, refund.status, refund.debits_balance) == (
            expect.kind,
            expect.amount,
            REQUESTED,
            expect.debits,
        )
        assert self.dispatched[before[2] :] == [refund.pk], "dispatched once, on commit"
        assert len(self.gateway.calls) == before[3], "the dispatcher sends, not the request"
        gateway_id = refund.gateway_refund_id
        assert 0 < len(gateway_id) <= 64
        assert _KEY_SHAPE.fullmatch(gateway_id)
        self.refunds[refund.pk] = ModelRefund(
            pk=refund.pk,
            instance=refund,
            trade_pk=refund.trade_id,
            kind=refund.kind,
            amount=refund.amount,
            reason=refund.reason,
            key=refund.idempotency_key,
            gateway_id=gateway_id,
            debits=refund.debits_balance,
        )
        if refund.idempotency_key:
            self.keys[refund.idempotency_key] = refund.pk

    def new_calls(self, mark: int) -> list[Call]:
        return list(self.gateway.calls[mark:])

    def check_refund_call(self, refund: ModelRefund, call: Call) -> None:
        assert call.service == self.service_of(refund)
        if refund.kind == RefundKind.REFUND:
            sent_id = call.params.get("out_return_no") or call.params.get("partner_refund_id")
            assert sent_id == refund.gateway_id, "a refund is always sent under its own gateway id"
            assert call.params.get("is_sync") == ("Y" if refund.sync else "N")
        else:
            assert call.params.get("out_trade_no") == self.trades[refund.trade_pk].instance.out_trade_no
        type(self).calls_seen += 1

    # --- rules -------------------------------------------------------------------------------------------

    def opened(self, kind: tuple[str, str, str, Decimal], paid_ago: int) -> None:
        product, status, currency, amount = kind
        paid_at = self.now() - timedelta(seconds=paid_ago)
        trade = Trade.objects.create(
            merchant=self.merchant,
            out_trade_no=f"ORDER-{next(self.numbers)}",
            amount=amount,
            currency=currency,
            subject="Stateful order",
            product=product,
            status=status,
            paid_at=None if status == "WAIT_BUYER_PAY" else paid_at,
            created_at=paid_at,
        )
        self.trades[trade.pk] = ModelTrade(
            trade.pk, trade, product, currency, amount, status, trade.paid_at, paid_at
        )

    @initialize(kind=st.sampled_from(TRADE_KINDS), paid_ago=st.sampled_from([0, 1800, 3 * 3600]))
    def first_trade(self, kind: tuple[str, str, str, Decimal], paid_ago: int) -> None:
        self.opened(kind, paid_ago)

    @precondition(lambda self: len(self.trades) < 4)
    @rule(kind=st.sampled_from(TRADE_KINDS), paid_ago=st.sampled_from([0, 1800, 3 * 3600]))
    def open_trade(self, kind: tuple[str, str, str, Decimal], paid_ago: int) -> None:
        type(self).steps += 1
        type(self).rules["open_trade"] += 1
        self.opened(kind, paid_ago)

    @rule(data=st.data())
    def request(self, data: st.DataObject) -> None:
        type(self).steps += 1
        trade = self.trades[data.draw(st.sampled_from(sorted(self.trades)), label="trade")]
        if data.draw(st.booleans(), label="bad input"):
            self.bad_input(data, trade)
            return
        type(self).rules["request"] += 1
        amount = data.draw(amounts(trade.currency, self.refundable(trade)), label="amount")
        reason = data.draw(st.sampled_from(GOOD_REASONS), label="reason")
        key = data.draw(st.sampled_from(GOOD_KEYS), label="key")
        currency = data.draw(st.sampled_from((None, trade.currency)), label="currency")
        expect = self.expect_refund(trade, amount, currency, reason, key)
        self.attempt(
            lambda: refunds.request_refund(
                trade.instance, amount, reason=reason, idempotency_key=key, currency=currency
            ),
            expect,
        )

    def bad_input(self, data: st.DataObject, trade: ModelTrade) -> None:
        """A refund or reverse with at least one unusable argument: a typed error, and nothing changes."""
        type(self).rules["bad_input"] += 1
        wrong = data.draw(st.sampled_from(["amount", "reason", "key", "currency"]), label="wrong")
        amount = data.draw(
            st.sampled_from(BAD_AMOUNTS + CURRENCY_BOUND_AMOUNTS)
            if wrong == "amount"
            else amounts(trade.currency, self.refundable(trade)),
            label="amount",
        )
        reason = data.draw(
            st.sampled_from(BAD_REASONS if wrong == "reason" else GOOD_REASONS), label="reason"
        )
        key = data.draw(st.sampled_from(BAD_KEYS if wrong == "key" else GOOD_KEYS), label="key")
        currency = data.draw(
            st.sampled_from(BAD_CURRENCIES if wrong == "currency" else (None, trade.currency)),
            label="currency",
        )
        if wrong in ("reason", "key") and data.draw(st.booleans(), label="reverse"):
            expect = self.expect_reverse(trade, reason, key)
            self.attempt(lambda: refunds.reverse(trade.instance, reason=reason, idempotency_key=key), expect)
            return
        expect = self.expect_refund(trade, amount, currency, reason, key)
        self.attempt(
            lambda: refunds.request_refund(
                trade.instance, amount, reason=reason, idempotency_key=key, currency=currency
            ),
            expect,
        )

    @precondition(lambda self: any(r.key for r in self.refunds.values()))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """The same request again under its idempotency key: the first refund comes back, nothing else."""
        type(self).steps += 1
        type(self).rules["replay"] += 1
        keyed = sorted(r.pk for r in self.refunds.values() if r.key)
        refund = self.refunds[data.draw(st.sampled_from(keyed), label="refund")]
        trade = self.trades[refund.trade_pk]
        if refund.kind == RefundKind.REVERSE:
            expect = self.expect_reverse(trade, refund.reason, refund.key)
            self.attempt(
                lambda: refunds.reverse(trade.instance, reason=refund.reason, idempotency_key=refund.key),
                expect,
            )
        else:
            expect = self.expect_refund(trade, refund.amount, None, refund.reason, refund.key)
            assert expect.replay == refund.pk
            self.attempt(
                lambda: refunds.request_refund(
                    trade.instance, refund.amount, reason=refund.reason, idempotency_key=refund.key
                ),
                expect,
            )

    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        type(self).steps += 1
        type(self).rules["reverse"] += 1
        trade = self.trades[data.draw(st.sampled_from(sorted(self.trades)), label="trade")]
        reason = data.draw(st.sampled_from(GOOD_REASONS), label="reason")
        key = data.draw(st.sampled_from(GOOD_KEYS), label="key")
        known = set(self.refunds)
        expect = self.expect_reverse(trade, reason, key)
        self.attempt(lambda: refunds.reverse(trade.instance, reason=reason, idempotency_key=key), expect)
        for pk in set(self.refunds) - known:
            self.follow_up(self.refunds[pk], data)

    def follow_up(self, refund: ModelRefund, data: st.DataObject) -> None:
        """Maybe send a new refund at once, as the default dispatcher would, and maybe resolve it then."""
        if data.draw(st.booleans(), label="send now"):
            self.send(refund, data.draw(st.sampled_from(ANSWERS[self.service_of(refund)]), label="answer"))
            if refund.status == UNKNOWN and data.draw(st.booleans(), label="resolve now"):
                self.resolve_one(refund, data)

    def send(self, refund: ModelRefund, answer: str) -> None:
        """submit() with the gateway answering ``answer``: one call for a REQUESTED refund, else none."""
        service = self.service_of(refund)
        self.gateway.script = {service: lambda p: self.gateway.reply(service, answer, p)}
        mark = len(self.gateway.calls)
        result = refunds.submit(refund.pk)
        calls = self.new_calls(mark)
        if refund.status != REQUESTED:
            assert calls == [], "only a REQUESTED refund is sent by submit"
        elif self.reverse_day_passed(refund):
            assert calls == [], "a reversal after its day is failed locally, never sent"
            self.settle(refund, FAILED)
        else:
            refund.sync = sync_at(self.now())
            [call] = calls
            self.check_refund_call(refund, call)
            self.settle(refund, self.answered(refund, answer, first=True))
        assert result.status == refund.status

    @precondition(lambda self: any(r.status == REQUESTED for r in self.refunds.values()))
    @rule(data=st.data())
    def submit(self, data: st.DataObject) -> None:
        type(self).steps += 1
        type(self).rules["submit"] += 1
        refund = self.pick_refund(data, REQUESTED)
        self.send(refund, data.draw(st.sampled_from(ANSWERS[self.service_of(refund)]), label="answer"))

    @rule(data=st.data())
    def refund_and_send(self, data: st.DataObject) -> None:
        """What the default dispatcher does: a small refund, sent at once (the gateway answers as drawn),
        and, when the answer left it unknown, maybe resolved at once."""
        type(self).steps += 1
        type(self).rules["refund_and_send"] += 1
        trade = self.trades[data.draw(st.sampled_from(sorted(self.trades)), label="trade")]
        amount = data.draw(st.integers(1, 3).map(lambda k: quantum(trade.currency) * k), label="amount")
        known = set(self.refunds)
        self.attempt(
            lambda: refunds.request_refund(trade.instance, amount),
            self.expect_refund(trade, amount, None, "", None),
        )
        for pk in set(self.refunds) - known:
            refund = self.refunds[pk]
            self.send(refund, data.draw(st.sampled_from(ANSWERS[self.service_of(refund)]), label="answer"))
            if refund.status == UNKNOWN and data.draw(st.booleans(), label="resolve now"):
                self.resolve_one(refund, data)

    @precondition(lambda self: self.refunds)
    @rule(data=st.data())
    def record(self, data: st.DataObject) -> None:
        """An outcome reported from outside (a notification, a person): final outcomes are never undone."""
        type(self).steps += 1
        type(self).rules["record"] += 1
        refund = self.refunds[data.draw(st.sampled_from(sorted(self.refunds)), label="refund")]
        choices = [SUCCEEDED, FAILED] + ([UNKNOWN] if refund.status in (SUBMITTED, UNKNOWN) else [])
        outcome = data.draw(st.sampled_from(choices), label="outcome")
        mark = len(self.gateway.calls), len(self.dispatched)
        result = refunds.record_result(refund.instance, outcome=outcome, code="NOTIFIED")
        assert (len(self.gateway.calls), len(self.dispatched)) == mark
        self.settle(refund, outcome)
        assert result.status == refund.status

    @precondition(lambda self: any(r.status == UNKNOWN for r in self.refunds.values()))
    @rule(data=st.data())
    def resolve(self, data: st.DataObject) -> None:
        type(self).steps += 1
        type(self).rules["resolve"] += 1
        self.resolve_one(self.pick_refund(data, UNKNOWN), data)

    def resolve_one(self, refund: ModelRefund, data: st.DataObject) -> None:
        """resolve_unknown() with drawn gateway answers (a query first for a REVERSE)."""
        type(self).rules["resolve_unknown calls"] += 1
        trade = self.trades[refund.trade_pk]
        service = self.service_of(refund)
        answer = data.draw(st.sampled_from(ANSWERS[service]), label="answer")
        script: dict[str, Callable[[dict[str, str]], Reply]] = {
            service: lambda p: self.gateway.reply(service, answer, p)
        }
        query = "not_found"
        if refund.kind == RefundKind.REVERSE:
            query = data.draw(st.sampled_from(QUERY_ANSWERS), label="query")
            if query != "not_found":
                status = "TRADE_CLOSED" if query == "closed" else trade.status
                script[INSTORE_QUERY] = query_reply(self.gateway, trade, status)
        self.gateway.script = script
        stored = dict(Refund.objects.get(pk=refund.pk).request_params)
        mark = len(self.gateway.calls)
        result = refunds.resolve_unknown(refund.instance)
        calls = self.new_calls(mark)
        if refund.status != UNKNOWN:
            assert calls == [], "only an unknown outcome is resolved"
        elif refund.kind == RefundKind.REFUND:
            [call] = calls
            self.check_refund_call(refund, call)
            assert {name: call.params.get(name) for name in stored} == stored, "the very same request"
            self.settle(refund, self.answered(refund, answer, first=False))
        else:
            assert calls[0].service == INSTORE_QUERY
            if query == "closed":
                assert len(calls) == 1, "a closed trade means the reversal happened: nothing is resent"
                self.settle(refund, SUCCEEDED)
            else:
                [call] = calls[1:]
                self.check_refund_call(refund, call)
                self.settle(refund, self.answered(refund, answer, first=False))
        assert result.status == refund.status

    @rule(
        step=st.sampled_from(["1s", "10min", "2h", "end_of_day", "next_midnight", "small_hours", "1d", "31d"])
    )
    def advance_clock(self, step: str) -> None:
        type(self).steps += 1
        type(self).rules["advance_clock"] += 1
        now = self.now().astimezone(SHANGHAI)
        midnight = datetime.combine(now.date() + timedelta(days=1), dtime(0, 0), tzinfo=SHANGHAI)
        target = {
            "1s": now + timedelta(seconds=1),
            "10min": now + timedelta(minutes=10),
            "2h": now + timedelta(hours=2),
            "end_of_day": max(midnight - timedelta(seconds=1), now + timedelta(seconds=1)),
            "next_midnight": midnight,
            "small_hours": midnight + timedelta(minutes=45),  # refunds are asynchronous until 01:30
            "1d": now + timedelta(days=1),
            "31d": now + timedelta(days=WINDOW_DAYS + 1),
        }[step]
        self.clock.set(target)

    @precondition(lambda self: any(r.status in PENDING for r in self.refunds.values()))
    @rule()
    def reconcile(self) -> None:
        """Reconciliation sends what was never sent and resolves what is unknown; the gateway says yes."""
        type(self).steps += 1
        type(self).rules["reconcile"] += 1
        self.gateway.script = {}
        due = [self.refunds[pk] for pk in sorted(self.refunds) if self.refunds[pk].status in PENDING]
        mark = len(self.gateway.calls)
        report = reconciliation.reconcile(refund_age=0, include_trades=False)
        calls = [call for call in self.new_calls(mark) if call.service != TRANSACTION_FILE]
        assert report.refunds_checked == len(due)
        assert report.errors == []
        assert [m for m in report.mismatches if m.kind == "balance"] == []
        for refund in due:
            if refund.status == REQUESTED and self.reverse_day_passed(refund):
                self.settle(refund, FAILED)  # failed locally: its day is over, nothing is sent
            elif refund.status == REQUESTED:
                refund.sync = sync_at(self.now())
                call = calls.pop(0)
                self.check_refund_call(refund, call)
                self.settle(refund, self.answered(refund, "ok", first=True))
            elif refund.status == UNKNOWN:
                if refund.kind == RefundKind.REVERSE:
                    assert calls.pop(0).service == INSTORE_QUERY  # not found: the reversal is resent
                call = calls.pop(0)
                self.check_refund_call(refund, call)
                self.settle(refund, self.answered(refund, "ok", first=False))
        assert calls == []

    # --- invariants --------------------------------------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        rows = {row.pk: row for row in Refund.objects.all()}
        assert set(rows) == set(self.refunds)
        for pk, row in rows.items():
            mine = self.refunds[pk]
            assert row.gateway_refund_id == mine.gateway_id, "a refund's gateway id never changes"
            assert (row.kind, row.amount, row.debits_balance, row.trade_id) == (
                mine.kind,
                mine.amount,
                mine.debits,
                mine.trade_pk,
            )
            before = self.seen.get(pk, REQUESTED)
            assert row.status in REACHABLE[before], f"refund {pk} moved {before} -> {row.status}"
            self.seen[pk] = row.status
            assert row.status == mine.status, f"refund {pk} is {row.status}, the model says {mine.status}"
            if mine.sync is not None:
                assert row.request_params.get("is_sync", "Y" if mine.sync else "N") == (
                    "Y" if mine.sync else "N"
                )
        for trade in Trade.objects.all():
            model = self.trades[trade.pk]
            of_trade = [row for row in rows.values() if row.trade_id == trade.pk]
            made = sum((r.amount for r in of_trade if r.debits_balance and r.status == SUCCEEDED), Decimal(0))
            held = sum((r.amount for r in of_trade if r.debits_balance and r.status in PENDING), Decimal(0))
            assert made <= trade.amount, "more refunded than paid"
            assert made + held <= trade.amount, "more refunded and reserved than paid"
            assert (trade.refunded_amount, trade.refund_pending_amount) == (made, held)
            assert trade.status == model.status
            reverses = [r for r in of_trade if r.kind == RefundKind.REVERSE and r.status != FAILED]
            assert len(reverses) <= 1
            for reversal in reverses:
                assert trade.product not in ONLINE
                assert all(r.status == FAILED for r in of_trade if r.kind == RefundKind.REFUND), (
                    "a reversed trade has no refund that did not fail"
                )
                if trade.paid_at is not None:
                    assert beijing_day(reversal.created_at) == beijing_day(trade.paid_at)
                else:
                    assert beijing_day(reversal.created_at) == beijing_day(trade.created_at) or (
                        reversal.created_at < trade.created_at + UNPAID_GRACE
                    )
        assert self.dispatched == sorted(self.refunds), "each refund dispatched exactly once"
        assert reconciliation.check_balances() == []


SETTINGS = settings(
    max_examples=int(os.environ.get("STATEFUL_MAX_EXAMPLES", "40")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles"])
def test_the_refund_ledger_keeps_its_books_whatever_happens(
    zone: str, postgresql: None, make_merchant: Callable[..., Merchant], settings: Any
) -> None:
    # Two server time zones: the Beijing-day rules must not depend on the server's.
    settings.TIME_ZONE = zone
    dispatched: list[int] = []
    settings.ALIPAY = {
        **settings.ALIPAY,
        "REFUND_DISPATCHER": dispatched.append,
        "REFUND_WINDOW_DAYS": WINDOW_DAYS,
        "REFUND_SYNC": True,
        "REVERSE_SERVICE": "cancel",
    }
    gateway = ScriptedGateway()
    merchant = make_merchant(gateway_url=gateway.url)
    RefundLedger.examples = RefundLedger.steps = RefundLedger.refusals = RefundLedger.calls_seen = 0
    RefundLedger.outcomes = Counter()
    RefundLedger.rules = Counter()
    try:
        run_state_machine_as_test(lambda: RefundLedger(merchant, gateway, dispatched), settings=SETTINGS)
    finally:
        gateway.close()
        domain_clock.set_clock(None)
    print(
        f"\nrefund ledger [{zone}]: {RefundLedger.examples} runs, {RefundLedger.steps} steps, "
        f"{RefundLedger.refusals} refusals, {RefundLedger.calls_seen} gateway refund calls checked; "
        f"refunds left: {dict(sorted(RefundLedger.outcomes.items()))}; rules run: {dict(RefundLedger.rules)}"
    )
    assert RefundLedger.steps > 0
