"""Measure the refund ledger under contention: 50 concurrent partial refunds on one trade and on 50 trades.

Run from the repository root (a throwaway PostgreSQL comes from scripts/with-services):

    scripts/with-services .venv/bin/python benchmarks/bench_refunds.py
    scripts/with-services .venv/bin/python benchmarks/bench_refunds.py --rounds 3 --no-domain   # quicker
    scripts/with-services .venv/bin/python benchmarks/bench_refunds.py --rounds 0   # the floor only

Two scenarios, each a burst of ``--requests`` (50) refund requests released at once:

* **one trade**: every request refunds ``--amount`` (1.00 USD) of ONE trade paid 30.00 USD. 90% carry
  their own Idempotency-Key (45 × 1.00 = 45.00 > 30.00, so some must be refused with 409), the other
  10% resend an earlier request's key and body, as a client retrying after a timeout would;
* **50 trades**: each request refunds 1.00 of its own paid trade (nothing must be refused).

Four ways to send them (rows):

* **API, sent at once**: ``POST /alipay/api/trades/<id>/refunds/`` with a DRF token and an Idempotency-Key,
  served by gunicorn (``--workers`` × ``--threads``, gthread). The library's default dispatcher calls
  ``forex_refund`` at the standalone emulator (its own process) right after the reservation commits, inside
  the request, so the answer comes when the refund has SUCCEEDED at the gateway;
* **API, queued**: the same server code with ``REFUND_DISPATCHER`` set to a dispatcher that sends nothing
  (``benchsite.views.hold_refund``): what the request costs when refunds are queued for a worker (Celery);
  this is acceptance into the ledger alone (the refund stays REQUESTED, its amount reserved);
* **domain, sent at once** / **domain, queued**: ``django_alipay.domain.refunds.request_refund`` called
  from ``--requests`` threads of this process, each with its own database connection.

``ALIPAY["REFUND_SPACING"]`` is 0 here and the emulator's refund interval too (``--spacing`` sets both): with
Alipay's 3 s spacing per merchant, 50 refunds sent at once take at least 150 s whatever the code does (the
spacing is honoured by sleeping, outside any lock). The "sent at once" rows therefore measure the ledger
plus the gateway round trip without the spacing; the "queued" rows measure the ledger alone.

After every run: no 5xx and no error; refusals only ``refund_amount_exceeded`` (or ``refund_not_allowed``
once the trade is refunded in full); requests sharing an
Idempotency-Key got the same refund; for every trade refunded + pending ≤ paid, refunded + pending = the sum
of its refunds, and (one trade) the ledger refused only when less than one more refund was left; sent
refunds SUCCEEDED and the emulator's own ledger (refunded amount, refund rows) equals ours; queued refunds
are REQUESTED and the emulator saw none. Exits 1 when a check fails.

Then the floor (``--latency``, 200 each way; 0 skips it): uncontended refunds one at a time, alternating
``request_refund()`` sent at once with a minimal hand-written refund (raw SQL on the library's tables in 5
statements around the same ``forex_refund`` call through the merchant's kept client), with the p50 of each,
their ratio, and the SQL statements of each path (BEGIN, COMMIT, SAVEPOINT and RELEASE not counted).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

PAID: Final = Decimal("30.00")
SETUP_THREADS: Final = 4
HOLD: Final = "benchsite.views.hold_refund"
SCENARIOS: Final = ("one trade", "50 trades")
PATHS: Final = ("API, sent at once", "API, queued", "domain, sent at once", "domain, queued")
#: Transaction control, not counted as statements: the same whatever the code does between.
_CONTROL: Final = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@dataclass(frozen=True)
class Answer:
    """One refund request's outcome as the caller saw it."""

    key: str
    trade_id: int
    outcome: str  # "accepted", "refused" or "error"
    seconds: float
    refund_id: int = 0
    code: str = ""  # the refusal code, or the error


@dataclass
class Run:
    path: str
    scenario: str
    round: int
    answers: list[Answer]
    wall: float
    problems: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        """Distinct refunds the burst created."""
        return len({a.refund_id for a in self.answers if a.outcome == "accepted"})

    @property
    def refused(self) -> int:
        return sum(1 for a in self.answers if a.outcome == "refused")

    @property
    def errors(self) -> int:
        return sum(1 for a in self.answers if a.outcome == "error")

    @property
    def throughput(self) -> float:
        return len(self.answers) / self.wall if self.wall else 0.0


# --- setup --------------------------------------------------------------------------------------------------


def paid_trades(emulator: h.Emulator, merchant: Any, labels: Sequence[str]) -> list[int]:
    """Trades of 30.00 USD paid at the emulator and applied here through a query (sync_trade); their ids."""
    from django.db import connections

    from django_alipay.domain import trades
    from django_alipay.models import Trade

    def one(label: str) -> int:
        start = trades.create_trade(merchant, out_trade_no=label, amount=PAID, subject="Benchmark order")
        emulator.visit(start.url)
        emulator.pay(label)
        trade = Trade.objects.get(pk=start.trade.pk)
        trades.sync_trade(trade)
        if not trade.is_paid:
            raise RuntimeError(f"trade {label} is {trade.status} after payment")
        return int(trade.pk)

    def chunk(part: Sequence[str]) -> list[int]:
        try:
            return [one(label) for label in part]
        finally:
            connections.close_all()

    parts = [labels[i::SETUP_THREADS] for i in range(SETUP_THREADS)]
    with ThreadPoolExecutor(SETUP_THREADS) as pool:
        by_label = {}
        for part, ids in zip(parts, pool.map(chunk, parts), strict=True):
            by_label.update(dict(zip(part, ids, strict=True)))
    return [by_label[label] for label in labels]


def burst(scenario: str, trade_ids: Sequence[int], n: int, label: str) -> list[tuple[str, int]]:
    """(Idempotency-Key, trade id) of each request of the burst, in sending order."""
    if scenario == "50 trades":
        return [(f"{label}-{i}", trade_ids[i]) for i in range(n)]
    unique = n - n // 10
    originals = [(f"{label}-{i}", trade_ids[0]) for i in range(unique)]
    keys = list(originals)
    # Resends of the first keys, each two places after the previous one: some race their original.
    for j in range(n - unique):
        keys.insert(2 * j + 3, originals[j])
    return keys


# --- the two ways to call ----------------------------------------------------------------------------------


def via_api(
    port: int, token: str, burst_keys: Sequence[tuple[str, int]], amount: Decimal
) -> tuple[list[Answer], float]:
    """The burst as HTTP requests from a client process; answers classified from status and body."""
    body = json.dumps({"amount": str(amount), "reason": "benchmark"}).encode()
    requests = [
        h.Request(
            "POST",
            f"/alipay/api/trades/{trade_id}/refunds/",
            body,
            {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Token {token}",
                "Idempotency-Key": key,
            },
        )
        for key, trade_id in burst_keys
    ]
    result = h.run_load(port, requests, concurrency=len(requests))
    answers = []
    for reply, (key, trade_id) in zip(result.replies, burst_keys, strict=True):
        try:
            data = json.loads(reply.body) if reply.body else {}
        except ValueError:
            data = {}
        if reply.status == 201:
            answers.append(Answer(key, trade_id, "accepted", reply.seconds, refund_id=int(data.get("id", 0))))
        elif 400 <= reply.status < 500:
            code = str((data.get("error") or {}).get("code", f"HTTP {reply.status}"))
            answers.append(Answer(key, trade_id, "refused", reply.seconds, code=f"{reply.status} {code}"))
        else:
            error = reply.error or f"HTTP {reply.status}: {reply.body[:200]}"
            answers.append(Answer(key, trade_id, "error", reply.seconds, code=error))
    return answers, result.wall


def via_domain(burst_keys: Sequence[tuple[str, int]], amount: Decimal) -> tuple[list[Answer], float]:
    """The burst as request_refund() calls from one thread each, released together."""
    from django.db import connections

    from django_alipay.domain import refunds
    from django_alipay.domain.errors import DomainError, RefundAmountExceeded, RefundNotAllowed
    from django_alipay.models import Trade

    answers: list[Answer | None] = [None] * len(burst_keys)
    gate = threading.Barrier(len(burst_keys) + 1)

    def call(index: int) -> None:
        key, trade_id = burst_keys[index]
        try:
            trade = Trade.objects.get(pk=trade_id)
            gate.wait()
            began = time.perf_counter()
            try:
                refund = refunds.request_refund(trade, amount, reason="benchmark", idempotency_key=key)
            except DomainError as exc:
                # The API's codes for the same refusals (django_alipay.api.errors).
                if isinstance(exc, RefundAmountExceeded):
                    code = "refund_amount_exceeded"
                elif type(exc) is RefundNotAllowed:
                    code = "refund_not_allowed"
                else:
                    code = repr(exc)
                answers[index] = Answer(key, trade_id, "refused", time.perf_counter() - began, code=code)
            except Exception as exc:
                answers[index] = Answer(key, trade_id, "error", time.perf_counter() - began, code=repr(exc))
            else:
                seconds = time.perf_counter() - began
                answers[index] = Answer(key, trade_id, "accepted", seconds, refund_id=int(refund.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(burst_keys))]
    for thread in threads:
        thread.start()
    gate.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return [a for a in answers if a is not None], wall


# --- checks ------------------------------------------------------------------------------------------------


def check(run: Run, emulator: h.Emulator, amount: Decimal, *, spacing: float = 0.0) -> None:
    """Fill ``run.problems`` with every broken expectation (empty: all good)."""
    from django.db.models import F, Sum

    from django_alipay.enums import RefundStatus
    from django_alipay.models import Refund, Trade

    problems = run.problems
    if run.errors:
        first = next(a for a in run.answers if a.outcome == "error")
        problems.append(f"{run.errors} errors (5xx or exceptions), first: {first.code}")
    # Refused for want of room; "refund_not_allowed" once the trade is refunded in full (nothing left at all).
    full = Trade.objects.filter(
        pk__in={a.trade_id for a in run.answers}, refunded_amount=F("amount")
    ).exists()
    allowed = ("refund_amount_exceeded", "refund_not_allowed") if full else ("refund_amount_exceeded",)
    odd = [a.code for a in run.answers if a.outcome == "refused" and not a.code.endswith(allowed)]
    if odd:
        problems.append(f"refusals other than {' or '.join(allowed)}: {Counter(odd).most_common(3)}")
    if run.scenario == "50 trades" and run.refused:
        problems.append(f"{run.refused} refused where every trade had room")
    by_key: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for a in run.answers:
        by_key[a.key].add((a.outcome, a.refund_id))
    split = [key for key, seen in by_key.items() if len(seen) > 1]
    if split:
        problems.append(f"keys answered differently: {split[:3]}")

    trade_ids = sorted({a.trade_id for a in run.answers})
    queued = run.path.endswith("queued")
    theirs = {
        row[0]: (h.cents(row[1]), row[2])
        for row in emulator.rows(
            "SELECT t.out_trade_no, t.refunded_amount, COUNT(r.id) FROM django_alipay_emulator_trade t "
            "LEFT JOIN django_alipay_emulator_refund r ON r.trade_id = t.id GROUP BY t.id"
        )
    }
    for trade in Trade.objects.filter(pk__in=trade_ids):
        refunds = Refund.objects.filter(trade=trade)
        live = refunds.exclude(status=RefundStatus.FAILED).aggregate(s=Sum("amount"))["s"] or Decimal(0)
        held = trade.refunded_amount + trade.refund_pending_amount
        if held > trade.amount:
            problems.append(f"{trade.out_trade_no}: refunded + pending {held} > paid {trade.amount}")
        if held != live:
            problems.append(f"{trade.out_trade_no}: refunded + pending {held} ≠ Σ refunds {live}")
        statuses = Counter(refunds.values_list("status", flat=True))
        expected = {RefundStatus.REQUESTED} if queued else {RefundStatus.SUCCEEDED, RefundStatus.SUBMITTED}
        if spacing > 0 and not queued:
            # With the spacing, what cannot go within REFUND_MAX_WAIT is left requested for reconciliation.
            expected.add(RefundStatus.REQUESTED)
        if set(statuses) - expected:
            odd_refunds = refunds.exclude(status__in=expected).values_list(
                "gateway_refund_id", "status", "error_code", "error_description", "attempts"
            )
            seen = [
                emulator.rows(
                    "SELECT status_code, outcome, note FROM django_alipay_emulator_gatewaycall "
                    "WHERE service = 'forex_refund' AND params LIKE ?",
                    (f"%{row[0]}%",),
                )
                for row in odd_refunds[:2]
            ]
            problems.append(
                f"{trade.out_trade_no}: refund statuses {dict(statuses)}: {list(odd_refunds)[:2]}; "
                f"the emulator's log of those calls: {seen}"
            )
        made = {a.refund_id for a in run.answers if a.trade_id == trade.pk and a.outcome == "accepted"}
        if set(refunds.values_list("pk", flat=True)) != made:
            problems.append(f"{trade.out_trade_no}: stored refunds differ from the accepted answers")
        if run.scenario == "one trade":
            unique = len({a.key for a in run.answers})
            room = int(trade.amount // amount)
            if len(made) != min(unique, room):
                problems.append(f"{len(made)} accepted on one trade; {min(unique, room)} fitted")
        refunded_there, count_there = theirs.get(trade.out_trade_no, (Decimal(-1), -1))
        if queued and (refunded_there != 0 or count_there != 0):
            problems.append(
                f"{trade.out_trade_no}: the emulator refunded {refunded_there} of a queued refund"
            )
        if not queued:
            succeeded = refunds.filter(status=RefundStatus.SUCCEEDED)
            if refunded_there != trade.refunded_amount or count_there != succeeded.count():
                problems.append(
                    f"{trade.out_trade_no}: emulator {refunded_there} in {count_there} refunds, ours "
                    f"{trade.refunded_amount} in {succeeded.count()}"
                )


def _counted_refund(
    trade_id: int, amount: Decimal, dispatcher: str | None, key: str
) -> tuple[Counter[str], int]:
    """Queries by kind and commits of one request_refund() with ``dispatcher`` (None: the default)."""
    import re

    from django.conf import settings
    from django.db import connection
    from django.test import override_settings

    from django_alipay.domain import refunds
    from django_alipay.models import Trade

    kinds: Counter[str] = Counter()
    commits = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        verb = sql.split(None, 1)[0].upper()
        if verb in _CONTROL:
            return execute(sql, params, many, context)
        table = re.search(r'(?:FROM|UPDATE|INTO)\s+"(\w+)"', sql)
        name = table.group(1).removeprefix("django_alipay_") if table else ""
        kinds[f"{verb} {name}{' FOR UPDATE' if 'FOR UPDATE' in sql else ''}".strip()] += 1
        return execute(sql, params, many, context)

    original = connection.commit

    def counted() -> None:
        nonlocal commits
        commits += 1
        original()

    alipay = dict(settings.ALIPAY)
    if dispatcher:
        alipay["REFUND_DISPATCHER"] = dispatcher
    trade = Trade.objects.get(pk=trade_id)
    with override_settings(ALIPAY=alipay), connection.execute_wrapper(count):
        connection.commit = counted  # type: ignore[method-assign]
        try:
            refunds.request_refund(trade, amount, idempotency_key=key)
        finally:
            del connection.commit
    return kinds, commits


def queries_per_refund(trade_ids: Sequence[int], amount: Decimal) -> str:
    """Database queries and commits of one uncontended request_refund(), sent at once and queued."""
    lines = []
    for trade_id, (label, dispatcher) in zip(
        trade_ids, (("sent at once", None), ("queued", HOLD)), strict=True
    ):
        kinds, commits = _counted_refund(trade_id, amount, dispatcher, f"diagnosis-{label.replace(' ', '-')}")
        detail = ", ".join(f"{n} `{kind}`" for kind, n in kinds.most_common())
        lines.append(
            f"* {label}: {sum(kinds.values())} SQL statements, {commits} transactions committed ({detail})"
        )
    return "\n".join(lines)


# --- one uncontended refund against the minimal hand-written one ------------------------------------------


def _statements() -> Any:
    """A context counting the SQL statements of this thread's connection, less transaction control."""
    import contextlib

    from django.db import connection

    seen: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if not sql.lstrip().upper().startswith(_CONTROL):
            seen.append(sql)
        return execute(sql, params, many, context)

    @contextlib.contextmanager
    def counting() -> Any:
        with connection.execute_wrapper(count):
            yield seen

    return counting()


def minimal_refund(trade_id: int, amount: Decimal, merchant: Any) -> tuple[str, int]:
    """The floor: a hand-written refund doing only what any correct one must, in 5 statements.

    Lock the trade, insert the refund and reserve its amount (one transaction); the same ``forex_refund``
    call through the library's kept client for the merchant (same request, same signing); then record the
    answer: the refund and the trade (one transaction). No replay, refusal or spacing rules, no signals, no
    life-cycle checks. It writes the library's own tables the way the library does, so the ledger checks
    hold for its trades too. Returns the refund's status and the number of statements.
    """
    import secrets

    from django.db import connection, transaction
    from django.utils import timezone

    from django_alipay import gateway
    from django_alipay.protocol import clock as protocol_clock

    sent_at = timezone.now()
    gateway_id = "MN" + secrets.token_hex(10).upper()
    with _statements() as seen:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT out_trade_no, currency, product FROM django_alipay_trade WHERE id = %s FOR UPDATE",
                [trade_id],
            )
            out_trade_no, currency, product = cursor.fetchone()
            request = {
                "currency": currency,
                "is_sync": "Y",
                "out_return_no": gateway_id,
                "out_trade_no": out_trade_no,
                "return_amount": f"{amount:.2f}",
                "gmt_return": protocol_clock.format_compact(sent_at),
                "reason": "benchmark",
                "product_code": "NEW_WAP_OVERSEAS_SELLER" if product == "wap" else "NEW_OVERSEAS_SELLER",
            }
            notify = merchant.notify_url()
            if notify:
                request["notify_url"] = notify
            cursor.execute(
                "INSERT INTO django_alipay_refund (merchant_id, trade_id, kind, gateway_refund_id, amount, "
                "currency, reason, status, debits_balance, error_code, error_description, idempotency_key, "
                "request_params, response, attempts, created_at, submitted_at, updated_at) VALUES "
                "(%s, %s, 'REFUND', %s, %s, %s, 'benchmark', 'submitted', true, '', '', '', %s::jsonb, "
                "'{}'::jsonb, 1, %s, %s, %s) RETURNING id",
                [merchant.pk, trade_id, gateway_id, amount, currency, json.dumps(request), sent_at, sent_at,
                 sent_at],
            )  # fmt: skip
            refund_id = cursor.fetchone()[0]
            cursor.execute(
                "UPDATE django_alipay_trade SET refund_pending_amount = refund_pending_amount + %s "
                "WHERE id = %s",
                [amount, trade_id],
            )
        answer = gateway.client(merchant).forex_refund(**request)
        fields = {str(k): str(v) for k, v in answer.fields.items()}
        ok = fields.get("result_code", "") in ("", "SUCCESS")
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE django_alipay_refund SET status = %s, response = %s::jsonb, answered_at = %s, "
                "completed_at = %s, updated_at = %s WHERE id = %s",
                ["succeeded" if ok else "failed", json.dumps(fields), now, now, now, refund_id],
            )
            cursor.execute(
                "UPDATE django_alipay_trade SET refund_pending_amount = refund_pending_amount - %s, "
                "refunded_amount = refunded_amount + %s WHERE id = %s",
                [amount, amount if ok else 0, trade_id],
            )
    return ("succeeded" if ok else "failed"), len(seen)


def library_refund(trade: Any, amount: Decimal, key: str) -> tuple[str, int]:
    """One ``request_refund()`` of ``trade`` (as a view has it, with its merchant) with the default dispatcher
    (sent at once); its status and statements."""
    from django_alipay.domain import refunds

    with _statements() as seen:
        refund = refunds.request_refund(trade, amount, reason="benchmark", idempotency_key=key)
    return str(refund.status), len(seen)


@dataclass
class Latency:
    """Sequential, uncontended refunds of each way, alternated so that both see the same machine."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statements: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    problems: list[str] = field(default_factory=list)


LIBRARY: Final = "request_refund()"
MINIMAL: Final = "minimal hand-written"


def latency(emulator: h.Emulator, merchant: Any, count: int, amount: Decimal, warmup: int = 10) -> Latency:
    """``count`` refunds each way (after ``warmup`` uncounted), alternating the two; 10 per paid trade."""
    from django.db.models import Sum

    from django_alipay.models import Refund, Trade

    per_trade = int(PAID // amount) // 3 or 1
    total = count + warmup
    needed = -(-total // per_trade)
    ids = paid_trades(emulator, merchant, [f"L-{way}-{i}" for way in ("lib", "min") for i in range(needed)])
    trades = {LIBRARY: ids[:needed], MINIMAL: ids[needed:]}
    result = Latency()
    for i in range(total):
        for way in (LIBRARY, MINIMAL) if i % 2 == 0 else (MINIMAL, LIBRARY):
            trade_id = trades[way][i // per_trade]
            trade = Trade.objects.select_related("merchant").get(pk=trade_id)  # a view's read: not timed
            started = time.perf_counter()
            if way == LIBRARY:
                status, statements = library_refund(trade, amount, f"latency-{i}")
            else:
                status, statements = minimal_refund(trade_id, amount, merchant)
            elapsed = time.perf_counter() - started
            if status != "succeeded":
                result.problems.append(f"{way}: refund {i} is {status}")
            if i >= warmup:
                result.seconds[way].append(elapsed)
                result.statements[way].add(statements)
    for trade in Trade.objects.filter(pk__in=ids):
        done = Refund.objects.filter(trade=trade, status="succeeded").aggregate(s=Sum("amount"))["s"] or 0
        if (trade.refunded_amount, trade.refund_pending_amount) != (done, 0):
            result.problems.append(f"{trade.out_trade_no}: refunded {trade.refunded_amount} ≠ {done}")
    return result


def latency_table(result: Latency) -> str:
    base = h.percentile(result.seconds[MINIMAL], 50)
    rows = []
    for way in (LIBRARY, MINIMAL):
        values = result.seconds[way]
        p50 = h.percentile(values, 50)
        rows.append(
            (
                way,
                len(values),
                f"{p50 * 1000:.2f}",
                f"{h.percentile(values, 90) * 1000:.2f}",
                f"{p50 / base:.2f}x",
                "/".join(str(n) for n in sorted(result.statements[way])),
            )
        )
    return h.table(["refund", "n", "p50 ms", "p90 ms", "p50 vs minimal", "SQL statements"], rows, "lrrrrr")


def api_statements(trade_id: int, token: str, amount: Decimal) -> int:
    """SQL statements of one refund through the REST API (token, Idempotency-Key), served in this process."""
    from rest_framework.test import APIClient

    client = APIClient(HTTP_HOST="127.0.0.1")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    with _statements() as seen:
        response = client.post(
            f"/alipay/api/trades/{trade_id}/refunds/",
            {"amount": str(amount), "reason": "benchmark"},
            format="json",
            headers={"Idempotency-Key": "diagnosis-api"},
        )
    if response.status_code != 201 or response.json().get("status") != "succeeded":
        raise RuntimeError(f"API refund answered {response.status_code}: {response.content[:300]!r}")
    return len(seen)


# --- main --------------------------------------------------------------------------------------------------


def summary(runs: Sequence[Run]) -> str:
    rows = []
    for scenario in SCENARIOS:
        for path in PATHS:
            group = [r for r in runs if r.path == path and r.scenario == scenario]
            if not group:
                continue
            tput = [r.throughput for r in group]
            p50 = [h.percentile([a.seconds for a in r.answers], 50) * 1000 for r in group]
            p99 = [h.percentile([a.seconds for a in r.answers], 99) * 1000 for r in group]
            accepted = [r.accepted for r in group]
            refused = [r.refused for r in group]
            rows.append(
                (
                    scenario,
                    path,
                    len(group),
                    f"{h.median(tput):.{1 if h.median(tput) < 10 else 0}f}",
                    h.spread(tput, "{:.1f}" if min(tput) < 10 else "{:.0f}"),
                    f"{h.median(p50):.0f}",
                    f"{h.median(p99):.0f}",
                    h.spread(p99, "{:.0f}"),
                    h.spread(accepted, "{:.0f}"),
                    h.spread(refused, "{:.0f}"),
                    sum(r.errors for r in group),
                    "pass" if not any(r.problems for r in group) else "**FAIL**",
                )
            )
    return h.table(
        ["scenario", "path", "runs", "req/s median", "req/s min–max", "p50 ms", "p99 ms", "p99 min–max",
         "accepted", "refused (409)", "5xx / errors", "ledger checks"],
        rows,
        "llrrrrrrrrrl",
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="\n".join((__doc__ or "").splitlines()[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds; each runs every path and scenario once"
    )
    parser.add_argument("--requests", type=int, default=50, help="refund requests per burst")
    parser.add_argument("--amount", default="1.00", help="amount of each refund (USD; trades are 30.00)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--no-domain", action="store_true", help="skip the rows calling the domain directly")
    parser.add_argument(
        "--latency",
        type=int,
        default=200,
        help="uncontended refunds each way, request_refund() and the minimal hand-written one (0: skip)",
    )
    parser.add_argument("--no-queued", action="store_true", help="skip the rows with a dispatcher that holds")
    parser.add_argument(
        "--spacing",
        type=float,
        default=0.0,
        help="ALIPAY['REFUND_SPACING'] and the emulator's refund interval, seconds (default 0; Alipay: 3)",
    )
    args = parser.parse_args()
    amount = Decimal(args.amount)
    if args.requests < 10 or args.rounds < 0 or args.latency < 0 or not Decimal("0.01") <= amount <= PAID:
        parser.error(f"--requests must be at least 10 and --amount between 0.01 and {PAID}")

    from cryptography.fernet import Fernet

    env = {
        "BENCH_FERNET_KEY": Fernet.generate_key().decode(),
        "BENCH_REFUND_SPACING": str(args.spacing),
        "BENCH_REFUND_SYNC": "1",
    }
    paths = [
        p
        for p in PATHS
        if not (args.no_domain and p.startswith("domain")) and not (args.no_queued and p.endswith("queued"))
    ]
    runs: list[Run] = []
    with h.database("bench_refunds") as url:
        h.setup_django(url, env)
        from django.contrib.auth.models import Permission, User
        from django.test import override_settings
        from rest_framework.authtoken.models import Token

        header = h.machine()
        emulator = h.Emulator(merchant_key="RSA", refund_interval=args.spacing).start()
        servers: dict[str, h.Gunicorn] = {}
        try:
            merchant = emulator.merchant(sign_type="RSA2", name="Benchmark shop")
            user = User.objects.create_user("refunds-bench", is_staff=True)
            user.user_permissions.add(
                *Permission.objects.filter(
                    content_type__app_label="django_alipay", codename__in=["view_merchant", "refund_trade"]
                )
            )
            token = Token.objects.create(user=user).key
            server_env = {**env, "DATABASE_URL": url}
            if "API, sent at once" in paths:
                servers["API, sent at once"] = h.Gunicorn(
                    workers=args.workers, threads=args.threads, env=server_env
                ).start()
            if "API, queued" in paths:
                servers["API, queued"] = h.Gunicorn(
                    workers=args.workers,
                    threads=args.threads,
                    env={**server_env, "BENCH_REFUND_DISPATCHER": HOLD},
                ).start()
            print(f"# refund ledger under contention — {header}\n", flush=True)
            plan = [(p, s) for p in paths for s in SCENARIOS]
            n = args.requests
            started = time.perf_counter()
            labels = [
                f"R{r}-{i}-{j}" for r in range(args.rounds) for i in range(len(plan)) for j in range(n + 1)
            ]
            ids = paid_trades(emulator, merchant, labels)
            print(f"{len(ids):,} trades paid in {time.perf_counter() - started:.1f} s", flush=True)
            spare = paid_trades(emulator, merchant, ["diagnosis-1", "diagnosis-2", "diagnosis-3"])
            per_run = iter([ids[k : k + n + 1] for k in range(0, len(ids), n + 1)])

            callers: dict[str, Callable[[Sequence[tuple[str, int]]], tuple[list[Answer], float]]] = {}
            for name, server in servers.items():
                callers[name] = lambda keys, port=server.port: via_api(port, token, keys, amount)
            callers["domain, sent at once"] = lambda keys: via_domain(keys, amount)

            def held(keys: Sequence[tuple[str, int]]) -> tuple[list[Answer], float]:
                from django.conf import settings

                with override_settings(ALIPAY={**settings.ALIPAY, "REFUND_DISPATCHER": HOLD}):
                    return via_domain(keys, amount)

            callers["domain, queued"] = held

            for round_no in range(1, args.rounds + 1):
                shift = (round_no - 1) % len(plan)
                for path, scenario in plan[shift:] + plan[:shift]:
                    trade_ids = next(per_run)
                    targets = trade_ids[:1] if scenario == "one trade" else trade_ids[1:]
                    keys = burst(scenario, targets, n, f"r{round_no}-{len(runs)}")
                    answers, wall = callers[path](keys)
                    run = Run(path, scenario, round_no, answers, wall)
                    check(run, emulator, amount, spacing=args.spacing)
                    runs.append(run)
                    print(
                        f"round {round_no} {scenario:9} {path:20}: {run.throughput:6.1f} req/s, "
                        f"{run.accepted:2} accepted, {run.refused:2} refused, {run.errors} errors"
                        + (f"  PROBLEMS: {run.problems[:2]}" if run.problems else ""),
                        flush=True,
                    )
            print()
            print(summary(runs))
            print()
            print("One uncontended domain request_refund() (in this process), database work:\n")
            print(queries_per_refund(spare[:2], amount))
            counted = api_statements(spare[2], token, amount)
            print(f"* through the REST API (token, Idempotency-Key, sent at once): {counted} SQL statements")
            print("  (BEGIN, COMMIT, SAVEPOINT and RELEASE are not counted above)")
            print()
            if args.latency:
                print(f"One uncontended refund at a time, {args.latency} each way, alternated (same run):\n")
                timed = latency(emulator, merchant, args.latency, amount)
                print(latency_table(timed))
                print()
                if timed.problems:
                    runs.append(Run("latency", "uncontended", 0, [], 1.0, timed.problems))
            print()
            failed = [r for r in runs if r.problems]
            for run in failed:
                print(f"round {run.round} {run.scenario} {run.path}: {run.problems[:5]}")
            if failed:
                for name, server in servers.items():
                    print(f"\n{name} server log:\n{server.log_tail(2000)}")
            else:
                print(
                    f"All {len(runs)} runs passed the ledger checks (refunded + pending ≤ paid for every "
                    "trade, equal to its refunds and to the emulator's ledger; no 5xx)."
                )
        finally:
            for server in servers.values():
                server.stop()
            emulator.stop()
    if any(r.problems for r in runs):
        print("\nSOME CHECKS FAILED", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
