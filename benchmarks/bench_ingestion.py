"""Measure notification ingestion end to end: signed Alipay notifications POSTed to the notify view.

Run from the repository root (a throwaway PostgreSQL comes from scripts/with-services):

    scripts/with-services .venv/bin/python benchmarks/bench_ingestion.py
    scripts/with-services .venv/bin/python benchmarks/bench_ingestion.py --no-verify-variant
    scripts/with-services .venv/bin/python benchmarks/bench_ingestion.py --count 300 --verify-latency 0.1
    scripts/with-services .venv/bin/python benchmarks/bench_ingestion.py --count 400 --rounds 2 --diagnose 0

What runs, all on this machine:

* **the server**: gunicorn with ``--workers`` sync workers serving ``benchsite`` on PostgreSQL, with three
  endpoints: the library's notify view (``/alipay/notify/<token>/``: store, decode, check the RSA2 signature,
  ask ``notify_verify``, apply under the trade's row lock, answer ``success``); a **baseline** view that
  stores the raw body with one INSERT and answers ``success`` (the least an endpoint can do, not a correct
  handler); and a **minimal correct handler** (``benchsite.views.minimal_notify``): the least any correct
  implementation must do per notification, hand-written with raw SQL on tables of its own (no ORM model, no
  library code but the protocol layer's signature check): INSERT the body; decode the form and check the
  RSA2 signature; one SELECT (on a partial unique index) for an earlier applied delivery of the notify_id,
  answered ``success`` at once; ``notify_verify`` over one kept-alive ``http.client`` connection per worker
  (TCP_NODELAY), expecting ``true``; then one transaction: the trade ``SELECT ... FOR UPDATE`` by (merchant,
  out_trade_no), its status and payment fields UPDATEd if the notification moves it forward (for a refund
  result: the refund settled and the trade's refunded amount moved), the stored row UPDATEd as processed
  with its notify_id (the partial unique index catches a concurrent duplicate), COMMIT;
* **the gateway**: the standalone emulator (``python -m django_alipay.emulator``, its own process and SQLite
  database), which the merchant's gateway URL points at, so every ``notify_verify`` is a real HTTP round
  trip to a process that is not the server;
* **the client**: a separate process with ``--concurrency`` threads, one connection per notification.

The notifications are the emulator's own. Trades are created through the library, visited and paid at the
emulator (online trades end TRADE_FINISHED, in-store QR trades TRADE_SUCCESS), and some earlier paid trades
are partly refunded with ``is_sync=N`` (the result comes as a refund_status_sync notification). The
emulator's notifier sends each notification once to a notify URL where nothing listens (the shop was
unreachable); its signed body, notify_id and send are recorded by the emulator, so ``notify_verify`` answers
``true`` for it. The benchmark then POSTs exactly those bodies (Alipay's retries) to the server under test,
~``--duplicates`` of them twice (the same notify_id again), in a random order with every resend behind its
original. The emulator's notify_id lifetime and retry schedule are set to a day so neither interferes.
The minimal handler serves a second shop (another partner at the emulator, its own merchant): its orders
are created and paid the same way, then copied, unpaid, into the minimal handler's own tables (refunds
SUBMITTED with their amount pending), so that its run and the library's never touch the same rows.

``--no-verify-variant`` adds a third variant, the library with ``ALIPAY["NOTIFY_VERIFY"]`` off (a second,
otherwise identical gunicorn server; a diagnostic, never a production setting), to show what the
notify_verify round trip costs; ``--verify-latency S`` makes the emulator wait S seconds before each
notify_verify answer, as a gateway across a border does.

Rounds rotate the order of the variants (baseline first, then minimal first ...); the baseline gets the
same bodies as the library in its round, the minimal handler as many of its own shop, of the same kinds.
Reported per variant: requests/s, p50/p95/p99 latency, the throughput ratios library/baseline,
library/minimal and minimal/baseline (median and min–max over rounds), CPU seconds per request of every
process (gunicorn, emulator, PostgreSQL, client) and of the rest of the machine ("others"). Then the
database is checked: every answer ``success`` (no 5xx), one stored Notification per POST, each distinct
notification applied exactly once (one PROCESSED row, its resends DUPLICATE of it), trades in the status
the emulator paid them with and the emulator's trade number, refunds SUCCEEDED with the trade's refunded
amount equal to its refunds and nothing left pending, the emulator's own ledger (status, refunded amount)
equal to ours; the same for the minimal handler on its tables (one row per POST, exactly one processed row
per notify_id, trades, refunds, the emulator's ledger of its partner). Exits 1 when a check fails.
``--diagnose N`` finally runs N more notifications of each shop in this process, through
``notifications.receive`` and through the minimal handler, with queries counted, phases timed and
cProfile on, and puts the five steps side by side: where the library spends more than the minimal handler.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import os
import pstats
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

AMOUNT: Final = Decimal("12.34")
REFUND_AMOUNT: Final = Decimal("1.00")
CONTENT_TYPE: Final = "application/x-www-form-urlencoded; charset=utf-8"
SETUP_THREADS: Final = 4


# --- preparing notifications ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """One distinct notification the emulator sent: what it says and its exact body."""

    kind: str  # "online", "instore" or "refund"
    out_trade_no: str
    notify_id: str
    body: bytes
    status: str  # trade_status or refund_status
    trade_no: str = ""
    out_return_no: str = ""


def _in_threads(work: Callable[[Any], Any], items: Sequence[Any], threads: int = SETUP_THREADS) -> list[Any]:
    """Run ``work`` over ``items`` in a few threads, each closing its own database connection afterwards."""
    from django.db import connections

    def run(chunk: Sequence[Any]) -> list[Any]:
        try:
            return [work(item) for item in chunk]
        finally:
            connections.close_all()

    chunks = [items[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        return [result for part in pool.map(run, chunks) for result in part]


def prepare(
    gateway: h.Emulator, merchant: Any, label: str, distinct: int, pool: list[int], args: argparse.Namespace
) -> list[Notice]:
    """Create, pay (and refund) trades at the emulator so that it sends ``distinct`` notifications.

    Trades are created through the library for ``merchant``; the trades refunded come from ``pool`` (paid
    trades of that merchant, earlier rounds'). A pool trade the library has not applied the payment of (the
    minimal handler's shop: its notifications went to the minimal handler's tables) is synchronised with
    the emulator first (``sync_trade``), since the library refunds only a trade it knows to be paid.
    """
    from django_alipay.domain import refunds, trades
    from django_alipay.enums import RefundStatus
    from django_alipay.models import Trade

    n_refunds = min(round(distinct * args.refunds), len(pool))
    n_trades = distinct - n_refunds
    n_instore = round(n_trades * args.instore)
    orders = [(f"{label}-W{i}", "web") for i in range(n_trades - n_instore)]
    orders += [(f"{label}-Q{i}", "qrcode") for i in range(n_instore)]

    def pay(order: tuple[str, str]) -> None:
        out_trade_no, product = order
        start = trades.create_trade(
            merchant, out_trade_no=out_trade_no, amount=AMOUNT, subject="Benchmark order", product=product
        )
        if product == "web":
            gateway.visit(start.url)
        gateway.pay(out_trade_no, partner=merchant.partner)

    def refund(trade_id: int) -> None:
        trade = Trade.objects.get(pk=trade_id)
        if trade.paid_at is None:
            trades.sync_trade(trade)
            trade = Trade.objects.get(pk=trade_id)
        made = refunds.request_refund(trade, REFUND_AMOUNT, idempotency_key=f"{label}-{trade_id}")
        if made.status != RefundStatus.SUBMITTED:
            raise RuntimeError(f"refund {made.gateway_refund_id} is {made.status}, expected submitted")

    _in_threads(pay, orders)
    chosen = [pool.pop(0) for _ in range(n_refunds)]
    _in_threads(refund, chosen)
    pool.extend(chosen)  # refunded trades go to the back of the pool: each round takes others first

    notices: list[Notice] = []
    while True:
        made = gateway.control("deliver", {})["deliveries"]
        if not made:
            break
        for delivery in made:
            if delivery["attempt"] != 1 or delivery["duplicate"]:
                continue
            params = dict(parse_qsl(delivery["body"]))
            refund_notice = delivery["notify_type"] == "refund_status_sync"
            order = params["out_trade_no"]
            notices.append(
                Notice(
                    kind="refund" if refund_notice else ("instore" if "-Q" in order else "online"),
                    out_trade_no=order,
                    notify_id=params["notify_id"],
                    body=delivery["body"].encode("ascii"),
                    status=params["refund_status"] if refund_notice else params["trade_status"],
                    trade_no=params.get("trade_no", ""),
                    out_return_no=params.get("out_return_no", ""),
                )
            )
    if len(notices) != distinct:
        raise RuntimeError(f"the emulator sent {len(notices)} notifications, expected {distinct}")
    return notices


def schedule(notices: Sequence[Notice], sends: int, concurrency: int, rng: random.Random) -> list[int]:
    """Indices into ``notices``: each once in a random order, plus ``sends - len(notices)`` resends.

    A resend goes somewhere after its original, at least ``concurrency`` places later, so that it usually
    arrives after the original was answered (Alipay resends after a missing acknowledgement); some still
    overlap it, which exercises the race between two deliveries of one notify_id.
    """
    order = list(range(len(notices)))
    rng.shuffle(order)
    keyed = [(float(position), index) for position, index in enumerate(order)]
    extra = sends - len(notices)
    for position in rng.sample(range(len(order)), extra):
        low = position + concurrency
        keyed.append((rng.uniform(low, max(low, len(order) + concurrency)), order[position]))
    keyed.sort()
    return [index for _, index in keyed]


def requests_for(notices: Sequence[Notice], plan: Sequence[int], path: str) -> list[h.Request]:
    headers = {"Content-Type": CONTENT_TYPE, "User-Agent": "Mozilla/4.0"}
    return [h.Request("POST", path, notices[index].body, headers) for index in plan]


# --- timed runs --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One timed run of one variant."""

    variant: str
    round: int
    position: int
    result: h.LoadResult
    cpu: dict[str, float]
    notify_verify_calls: int = 0
    distinct: int = 0

    @property
    def failures(self) -> list[h.Reply]:
        return [r for r in self.result.replies if r.status != 200 or r.body.strip() != "success"]

    @property
    def server_errors(self) -> int:
        return sum(1 for r in self.result.replies if r.status >= 500)


@dataclass
class Shop:
    """One merchant's notifications so far: how often each was POSTed, what each said, trades to refund."""

    merchant: Any
    sent: Counter[str] = field(default_factory=Counter)
    notices: dict[str, Notice] = field(default_factory=dict)
    pool: list[int] = field(default_factory=list)
    posts: int = 0

    def record(self, notices: Sequence[Notice], plan: Sequence[int]) -> None:
        """Count the sends of ``plan``; the online trades paid become candidates for later refunds."""
        from django_alipay.models import Trade

        for index in plan:
            self.sent[notices[index].notify_id] += 1
        self.notices.update({n.notify_id: n for n in notices})
        orders = [n.out_trade_no for n in notices if n.kind == "online"]
        found = Trade.objects.filter(merchant=self.merchant, out_trade_no__in=orders)
        self.pool.extend(found.values_list("pk", flat=True))


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy so far (all cores), from /proc/stat."""
    # user nice system idle iowait irq softirq steal: busy is all but idle, iowait and steal.
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields[:7]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def timed_run(
    variant: str,
    round_no: int,
    position: int,
    requests: list[h.Request],
    args: argparse.Namespace,
    pids: dict[str, int],
    server: h.Gunicorn,
) -> Run:
    before = {name: h.cpu_seconds(pid) for name, pid in pids.items()}
    busy = _machine_busy()
    result = h.run_load(server.port, requests, concurrency=args.concurrency)
    busy = _machine_busy() - busy
    cpu = {name: h.cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    cpu["client"] = result.client_cpu
    # The client process is gone when it is counted here: its CPU is our own child's, not "others".
    cpu["others"] = max(0.0, busy - sum(cpu.values()))
    return Run(variant, round_no, position, result, cpu)


# --- checks ------------------------------------------------------------------------------------------------


@dataclass
class Checks:
    """Named correctness checks; each passes or fails with a note."""

    results: list[tuple[str, bool, str]] = field(default_factory=list)

    def add(self, name: str, ok: bool, note: str = "") -> None:
        self.results.append((name, ok, note))

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.results)

    def render(self) -> str:
        rows = [(name, "pass" if ok else "**FAIL**", note) for name, ok, note in self.results]
        return h.table(["check", "result", "details"], rows, "lll")


def check_database(
    merchant: Any,
    sent: dict[str, int],
    notices: dict[str, Notice],
    library_posts: int,
    baseline_posts: int,
    gateway: h.Emulator,
    checks: Checks,
) -> None:
    """Compare the database with what was sent: stored, applied once, duplicates marked, ledgers equal."""
    from benchsite.views import BASELINE_TABLE
    from django.db import connection
    from django.db.models import Count, Sum

    from django_alipay.enums import NotificationKind, ProcessingOutcome, RefundStatus, Verification
    from django_alipay.models import Notification, Refund, Trade

    rows = list(
        Notification.objects.filter(merchant=merchant).values_list(
            "id", "notify_id", "outcome", "duplicate_of_id", "verification", "trade_id", "refund_id"
        )
    )
    checks.add(
        "one Notification row per library POST",
        len(rows) == library_posts,
        f"{len(rows):,} rows, {library_posts:,} POSTs",
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {BASELINE_TABLE}")  # noqa: S608 (a constant)
        stored = int(cursor.fetchone()[0])
    checks.add(
        "one baseline row per baseline POST", stored == baseline_posts, f"{stored:,} rows, {baseline_posts:,}"
    )

    by_id: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        by_id[row[1]].append(row)
    wrong_count, not_once, bad_duplicates, unverified = [], [], [], []
    for notify_id, times in sent.items():
        found = by_id.get(notify_id, [])
        if len(found) != times:
            wrong_count.append(notify_id)
        processed = [row for row in found if row[2] == ProcessingOutcome.PROCESSED]
        if len(processed) != 1:
            not_once.append(notify_id)
            continue
        first = processed[0][0]
        others = [row for row in found if row[0] != first]
        if any(row[2] != ProcessingOutcome.DUPLICATE or row[3] != first for row in others):
            bad_duplicates.append(notify_id)
        if any(row[4] != Verification.VERIFIED for row in found):
            unverified.append(notify_id)
    resent = sum(times - 1 for times in sent.values())
    checks.add(
        "every delivery of a notify_id stored",
        not wrong_count,
        f"{len(sent):,} notify_ids, {resent:,} resends; wrong row count: {wrong_count[:3]}",
    )
    checks.add(
        "each distinct notification processed exactly once",
        not not_once,
        f"{len(sent) - len(not_once):,} of {len(sent):,}; not once: {not_once[:3]}",
    )
    checks.add(
        "every resend flagged DUPLICATE of the processed row",
        not bad_duplicates,
        f"{resent:,} resends; wrong: {bad_duplicates[:3]}",
    )
    checks.add("every delivery verified", not unverified, f"unverified: {unverified[:3]}")

    twice = list(
        Notification.objects.filter(
            merchant=merchant, kind=NotificationKind.TRADE, outcome=ProcessingOutcome.PROCESSED
        )
        .values("trade_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("trade_id", flat=True)
    )
    checks.add("no trade applied twice", not twice, f"trades with 2+ processed notifications: {twice[:3]}")
    twice_refund = list(
        Notification.objects.filter(
            merchant=merchant, kind=NotificationKind.REFUND, outcome=ProcessingOutcome.PROCESSED
        )
        .values("refund_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("refund_id", flat=True)
    )
    checks.add("no refund applied twice", not twice_refund, f"refunds twice: {twice_refund[:3]}")

    trades = {t.out_trade_no: t for t in Trade.objects.filter(merchant=merchant)}
    wrong_trades = []
    for notice in notices.values():
        if notice.kind == "refund":
            continue
        trade = trades.get(notice.out_trade_no)
        if (
            trade is None
            or trade.status != notice.status
            or trade.trade_no != notice.trade_no
            or trade.paid_at is None
            or trade.amount != AMOUNT
        ):
            wrong_trades.append(notice.out_trade_no)
    n_trades = sum(1 for n in notices.values() if n.kind != "refund")
    checks.add(
        "trades in the notified status, with Alipay's trade_no",
        not wrong_trades,
        f"{n_trades:,} trades; wrong: {wrong_trades[:3]}",
    )

    refund_notices = [n for n in notices.values() if n.kind == "refund"]
    refunds = {r.gateway_refund_id: r for r in Refund.objects.filter(merchant=merchant)}
    not_succeeded = [
        n.out_return_no
        for n in refund_notices
        if n.out_return_no not in refunds or refunds[n.out_return_no].status != RefundStatus.SUCCEEDED
    ]
    checks.add(
        "refunds notified REFUND_SUCCESS are SUCCEEDED",
        not not_succeeded and len(refunds) == len(refund_notices),
        f"{len(refund_notices):,} refund notifications, {len(refunds):,} refunds; wrong: {not_succeeded[:3]}",
    )
    sums = dict(
        Refund.objects.filter(merchant=merchant, status=RefundStatus.SUCCEEDED)
        .values_list("trade_id")
        .annotate(total=Sum("amount"))
    )
    ledger_wrong = [
        t.out_trade_no
        for t in trades.values()
        if t.refunded_amount != sums.get(t.pk, Decimal(0))
        or t.refund_pending_amount != 0
        or t.refunded_amount + t.refund_pending_amount > t.amount
    ]
    checks.add(
        "refunded = Σ succeeded refunds, nothing pending, ≤ paid",
        not ledger_wrong,
        f"{len(sums):,} refunded trades; wrong: {ledger_wrong[:3]}",
    )

    theirs = {
        row[0]: (row[1], h.cents(row[2]))
        for row in gateway.rows(
            "SELECT out_trade_no, status, refunded_amount FROM django_alipay_emulator_trade"
        )
    }
    mismatch = [
        t.out_trade_no
        for t in trades.values()
        if t.out_trade_no in theirs
        and (theirs[t.out_trade_no][0] != t.status or theirs[t.out_trade_no][1] != t.refunded_amount)
    ]
    compared = sum(1 for t in trades.values() if t.out_trade_no in theirs)
    checks.add(
        "the emulator's ledger equals ours (status, refunded)",
        not mismatch and compared == len(trades),
        f"{compared:,} of {len(trades):,} trades compared; different: {mismatch[:3]}",
    )


# --- the minimal correct handler's shop ---------------------------------------------------------------------


def register_minimal(merchant: Any) -> None:
    """Give the minimal handler its merchant: token, partner, sign type, gateway and Alipay's public key."""
    from benchsite.views import MINIMAL_MERCHANT_TABLE
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {MINIMAL_MERCHANT_TABLE} (id, notify_token, partner, sign_type, charset, "  # noqa: S608
            "gateway_url, alipay_public_key) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                merchant.pk,
                merchant.notify_token,
                merchant.partner,
                merchant.sign_type,
                merchant.charset,
                merchant.resolved_gateway_url(),
                merchant.verification_keys()[0],
            ],
        )


def seed_minimal(merchant: Any, notices: Sequence[Notice]) -> None:
    """Copy the orders and refunds ``notices`` are about into the minimal handler's own tables.

    They were created through the library (for the minimal handler's own merchant and partner, so the
    library's shop is not touched); the copies are as the library stored them before any notification:
    orders unpaid, refunds SUBMITTED with their amount pending on the trade (paid by an earlier run's
    notification to the minimal handler).
    """
    from benchsite.views import MINIMAL_REFUND_TABLE, MINIMAL_TRADE_TABLE
    from django.db import connection

    from django_alipay.models import Refund, Trade

    orders = [n.out_trade_no for n in notices if n.kind != "refund"]
    rows = Trade.objects.filter(merchant=merchant, out_trade_no__in=orders).values_list(
        "out_trade_no", "amount", "currency", "status"
    )
    returns = [n.out_return_no for n in notices if n.kind == "refund"]
    refund_rows = Refund.objects.filter(merchant=merchant, gateway_refund_id__in=returns).values_list(
        "gateway_refund_id", "amount", "trade__out_trade_no"
    )
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {MINIMAL_TRADE_TABLE} (merchant_id, out_trade_no, amount, currency, status) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s)",
            [(merchant.pk, *row) for row in rows],
        )
        for out_return_no, amount, out_trade_no in refund_rows:
            cursor.execute(
                f"UPDATE {MINIMAL_TRADE_TABLE} SET refund_pending_amount = refund_pending_amount + %s "  # noqa: S608
                "WHERE merchant_id = %s AND out_trade_no = %s RETURNING id",
                [amount, merchant.pk, out_trade_no],
            )
            (trade_id,) = cursor.fetchone()
            cursor.execute(
                f"INSERT INTO {MINIMAL_REFUND_TABLE} (trade_id, out_return_no, amount, status) "  # noqa: S608
                "VALUES (%s, %s, %s, 'SUBMITTED')",
                [trade_id, out_return_no, amount],
            )
    if len(rows) != len(orders) or len(refund_rows) != len(returns):
        raise RuntimeError(f"seeding the minimal handler: {len(rows)} of {len(orders)} orders found")


def check_minimal(
    merchant: Any,
    sent: dict[str, int],
    notices: dict[str, Notice],
    posts: int,
    gateway: h.Emulator,
    checks: Checks,
) -> None:
    """The same correctness checks for the minimal handler, on its own tables."""
    from benchsite.views import MINIMAL_NOTIFICATION_TABLE, MINIMAL_REFUND_TABLE, MINIMAL_TRADE_TABLE
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT body, processed, notify_id FROM {MINIMAL_NOTIFICATION_TABLE} WHERE token = %s",  # noqa: S608
            [merchant.notify_token],
        )
        rows = [(bytes(body), processed, notify_id) for body, processed, notify_id in cursor.fetchall()]
        cursor.execute(
            f"SELECT id, out_trade_no, status, trade_no, paid_at, amount, refunded_amount, "  # noqa: S608
            f"refund_pending_amount FROM {MINIMAL_TRADE_TABLE} WHERE merchant_id = %s",
            [merchant.pk],
        )
        trades = {row[1]: row for row in cursor.fetchall()}
        cursor.execute(
            f"SELECT r.out_return_no, r.status, r.trade_id, r.amount FROM {MINIMAL_REFUND_TABLE} r "  # noqa: S608
            f"JOIN {MINIMAL_TRADE_TABLE} t ON t.id = r.trade_id WHERE t.merchant_id = %s",
            [merchant.pk],
        )
        refunds = {row[0]: row for row in cursor.fetchall()}
    checks.add("minimal: one stored row per POST", len(rows) == posts, f"{len(rows):,} rows, {posts:,} POSTs")

    by_id: dict[str, list[tuple[bool, str | None]]] = defaultdict(list)
    for body, processed, notify_id in rows:
        by_id[dict(parse_qsl(body.decode("ascii"))).get("notify_id", "")].append((processed, notify_id))
    wrong_count = [nid for nid, times in sent.items() if len(by_id.get(nid, [])) != times]
    not_once = [
        nid
        for nid in sent
        if [(p, stored) for p, stored in by_id.get(nid, []) if p or stored] != [(True, nid)]
    ]
    resent = sum(times - 1 for times in sent.values())
    checks.add(
        "minimal: every delivery of a notify_id stored",
        not wrong_count and len(by_id) == len(sent),
        f"{len(sent):,} notify_ids, {resent:,} resends; wrong row count: {wrong_count[:3]}",
    )
    checks.add(
        "minimal: each distinct notification processed exactly once, every resend recognised",
        not not_once,
        f"{len(sent) - len(not_once):,} of {len(sent):,}; not once: {not_once[:3]}",
    )

    wrong_trades = []
    for notice in notices.values():
        if notice.kind == "refund":
            continue
        row = trades.get(notice.out_trade_no)
        if (
            row is None
            or row[2] != notice.status
            or row[3] != notice.trade_no
            or row[4] is None
            or row[5] != AMOUNT
        ):
            wrong_trades.append(notice.out_trade_no)
    n_trades = sum(1 for n in notices.values() if n.kind != "refund")
    checks.add(
        "minimal: trades in the notified status, with Alipay's trade_no",
        not wrong_trades,
        f"{n_trades:,} trades; wrong: {wrong_trades[:3]}",
    )
    refund_notices = [n for n in notices.values() if n.kind == "refund"]
    not_succeeded = [
        n.out_return_no
        for n in refund_notices
        if n.out_return_no not in refunds or refunds[n.out_return_no][1] != "SUCCEEDED"
    ]
    checks.add(
        "minimal: refunds notified REFUND_SUCCESS are SUCCEEDED",
        not not_succeeded and len(refunds) == len(refund_notices),
        f"{len(refund_notices):,} refund notifications, {len(refunds):,} refunds; wrong: {not_succeeded[:3]}",
    )
    sums: dict[int, Decimal] = defaultdict(Decimal)
    for _, status, trade_id, amount in refunds.values():
        if status == "SUCCEEDED":
            sums[trade_id] += amount
    ledger_wrong = [
        row[1] for row in trades.values() if row[6] != sums.get(row[0], 0) or row[7] != 0 or row[6] > row[5]
    ]
    checks.add(
        "minimal: refunded = Σ succeeded refunds, nothing pending, ≤ paid",
        not ledger_wrong,
        f"{len(sums):,} refunded trades; wrong: {ledger_wrong[:3]}",
    )
    theirs = {
        row[0]: (row[1], h.cents(row[2]))
        for row in gateway.rows(
            "SELECT t.out_trade_no, t.status, t.refunded_amount FROM django_alipay_emulator_trade t "
            "JOIN django_alipay_emulator_partner p ON p.id = t.partner_id WHERE p.partner = ?",
            (merchant.partner,),
        )
    }
    mismatch = [
        order for order, row in trades.items() if order not in theirs or theirs[order] != (row[2], row[6])
    ]
    checks.add(
        "minimal: the emulator's ledger equals the minimal handler's (status, refunded)",
        not mismatch and len(theirs) == len(trades),
        f"{len(trades):,} trades, {len(theirs):,} at the emulator; different: {mismatch[:3]}",
    )


# --- diagnosis --------------------------------------------------------------------------------------------


@dataclass
class Phase:
    calls: int = 0
    seconds: float = 0.0
    cpu: float = 0.0


@contextmanager
def _patched(target: Any, name: str, phases: dict[str, Phase], label: str) -> Any:
    original = getattr(target, name)

    @functools.wraps(original)
    def timed(*a: Any, **k: Any) -> Any:
        began, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(*a, **k)
        finally:
            phase = phases[label]
            phase.calls += 1
            phase.seconds += time.perf_counter() - began
            phase.cpu += time.thread_time() - cpu

    setattr(target, name, timed)
    try:
        yield
    finally:
        setattr(target, name, original)


def _query_kind(sql: str) -> str:
    import re

    verb = sql.split(None, 1)[0].upper()
    if verb == "WITH" and "INSERT INTO" in sql:  # one statement: find the merchant, store, read earlier rows
        verb = "WITH SELECT merchant, INSERT"
        sql = sql[sql.index("INSERT INTO") :]
    table = re.search(r'(?:FROM|UPDATE|INTO)\s+"?(\w+)"?', sql)
    name = table.group(1).removeprefix("django_alipay_").removeprefix("bench_") if table else ""
    extra = " FOR UPDATE" if "FOR UPDATE" in sql else ""
    return f"{verb} {name}{extra}".strip()


#: The steps every correct handler takes, for the side-by-side table of the library and the minimal handler.
STEPS: Final = (
    "1. store the raw body (and find the merchant)",
    "2. decode the form, check the RSA2 signature",
    "3. an earlier acknowledged delivery? (SELECT)",
    "4. notify_verify: client and round trip",
    "5. apply under the trade's row lock, record the outcome",
)


@dataclass
class Diagnosis:
    """What an in-process diagnosis found: its text, and per-notification figures for the comparison."""

    text: str
    ok: bool
    n: int
    wall: float
    cpu: float
    queries: float
    steps: dict[str, Phase]


def _diagnose(
    label: str,
    notices: Sequence[Notice],
    one: Callable[[Notice], bool],
    patches: Sequence[tuple[Any, str, str, str]],
    note: str,
    top: str,
) -> Diagnosis:
    """Run ``one`` over ``notices`` in this process: queries and phases over the first half, cProfile after.

    ``patches`` are (object, attribute, phase label, step of :data:`STEPS` or ""): the callables timed;
    ``top`` a regular expression of the file names whose functions are listed by cumulative CPU time.
    """
    from django.db import connection

    kinds: Counter[str] = Counter()
    commits = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        kinds[_query_kind(sql)] += 1
        return execute(sql, params, many, context)

    phases: dict[str, Phase] = defaultdict(Phase)
    original_commit = connection.commit

    def counted_commit() -> None:
        nonlocal commits
        commits += 1
        original_commit()

    half = len(notices) // 2
    # Whatever of these the code calls (it changes); a phase never called is left out of the table.
    patches = [patch for patch in patches if hasattr(patch[0], patch[1])]
    ok = True
    began, cpu_began = time.perf_counter(), time.thread_time()
    with connection.execute_wrapper(count):
        connection.commit = counted_commit  # type: ignore[method-assign]
        try:
            stack = [_patched(target, name, phases, text) for target, name, text, _ in patches]
            for manager in stack:
                manager.__enter__()
            try:
                for notice in notices[:half]:
                    ok = one(notice) and ok
            finally:
                for manager in reversed(stack):
                    manager.__exit__(None, None, None)
        finally:
            del connection.commit
    total, total_cpu = time.perf_counter() - began, time.thread_time() - cpu_began
    n = max(half, 1)

    # CPU time, not wall time: waits for PostgreSQL and the gateway are not charged to the code that waits.
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    began = time.perf_counter()
    for notice in notices[half:]:
        ok = one(notice) and ok
    profiled = time.perf_counter() - began
    profile.disable()

    order = [text for _, _, text, _ in patches]
    lines = [f"### In-process diagnosis ({label})", ""]
    lines.append(
        f"{total / n * 1000:.2f} ms per notification (one at a time, no HTTP server), of which "
        f"{total_cpu / n * 1000:.2f} ms CPU in this thread; {sum(kinds.values()) / n:.1f} queries and "
        f"{commits / n:.1f} transactions (atomic blocks) per notification ({note})."
    )
    lines.append("")
    lines.append(
        h.table(
            ["phase (some nest in others)", "calls per notification", "wall ms", "share of wall",
             "CPU ms", "share of CPU"],
            [
                (name, f"{p.calls / n:.1f}", f"{p.seconds / n * 1000:.3f}", f"{p.seconds / total:.0%}",
                 f"{p.cpu / n * 1000:.3f}", f"{p.cpu / total_cpu:.0%}")
                for name, p in sorted(phases.items(), key=lambda item: order.index(item[0]))
            ],
            "lrrrrr",
        )
    )  # fmt: skip
    lines.append("")
    lines.append(
        h.table(
            ["query kind", "per notification"],
            [(f"`{kind}`", f"{c / n:.2f}") for kind, c in kinds.most_common()],
            "lr",
        )
    )
    stats = pstats.Stats(profile, stream=io.StringIO())
    buckets: Counter[str] = Counter()
    for (filename, _line, _func), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        buckets[_bucket(filename)] += tottime
    total_self = sum(buckets.values()) or 1.0
    m = max(len(notices) - half, 1)
    lines.append("")
    lines.append(
        f"cProfile (CPU time of this process) over the other {m} notifications ({profiled / m * 1000:.2f} ms "
        "wall each under the profiler, whose own cost inflates code making many small calls, such as the "
        "ORM: read the shares as a ranking), own CPU time by where the code lives:"
    )
    lines.append("")
    lines.append(
        h.table(
            ["code", "share of own time"],
            [(name, f"{seconds / total_self:.0%}") for name, seconds in buckets.most_common(10)],
            "lr",
        )
    )
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(top, 18)
    lines.append("")
    lines.append(f"Top functions of `{top}` by cumulative CPU time:")
    lines.append("")
    lines.append("```")
    lines.extend(
        line for line in out.getvalue().splitlines() if line.strip() and "function calls" not in line
    )
    lines.append("```")
    steps: dict[str, Phase] = defaultdict(Phase)
    for _, _, text, step in patches:
        if step and text in phases:
            steps[step].calls += phases[text].calls
            steps[step].seconds += phases[text].seconds / n
            steps[step].cpu += phases[text].cpu / n
    return Diagnosis("\n".join(lines), ok, n, total / n, total_cpu / n, sum(kinds.values()) / n, dict(steps))


def diagnose(merchant: Any, notices: Sequence[Notice], label: str) -> Diagnosis:
    """Run ``notices`` through notifications.receive in this process: queries, phases, profile."""
    from django_alipay import gateway
    from django_alipay.domain import merchants, notifications
    from django_alipay.models import Merchant
    from django_alipay.protocol import notifications as wire
    from django_alipay.protocol.client import GatewayClient

    def one(notice: Notice) -> bool:
        answer = notifications.receive(
            merchant.notify_token,
            body=notice.body,
            content_type=CONTENT_TYPE,
            remote_addr="127.0.0.1",
            headers={"Content-Type": CONTENT_TYPE},
        )
        return answer.status == 200 and answer.body == "success"

    patches = [
        (
            notifications,
            "_store_known",
            "store the raw request, resolve the merchant, read earlier deliveries (one statement)",
            STEPS[0],
        ),
        (merchants, "read_for_notify_token", "of which reading the merchant (not cached, or changed)", ""),
        (notifications, "_store", "store the raw request the old way (merchant lookup + INSERT)", STEPS[0]),
        (wire, "parse_form", "decode the form", STEPS[1]),
        (notifications, "_update", "_update(): autocommit UPDATE of the row", ""),
        (Merchant, "verification_keys", "decrypt Alipay's public key (Fernet)", ""),
        (wire, "verify_notification", "check the RSA2 signature", STEPS[1]),
        (
            notifications,
            "_same_delivery",
            "_same_delivery(): an earlier acknowledged delivery? (read with the INSERT)",
            STEPS[2],
        ),
        (gateway, "client", "get the gateway client (gateway.client)", STEPS[3]),
        (gateway, "client_for", "build a gateway client (client_for: keys decrypted, new session)", ""),
        (GatewayClient, "notify_verify", "notify_verify round trip to the gateway", STEPS[3]),
        (notifications, "_process", "apply under the trade's row lock (one transaction)", STEPS[4]),
    ]
    found = _diagnose(
        f"library, {label}: `notifications.receive`",
        notices,
        one,
        patches,
        "the baseline view: 1 query",
        "django_alipay",
    )
    found.text += "\n\n" + "\n".join(_plans(merchant, notices[-1]))
    return found


def diagnose_minimal(merchant: Any, notices: Sequence[Notice], label: str) -> Diagnosis:
    """Run ``notices`` through the minimal handler in this process, with the same instruments."""
    from benchsite import views

    from django_alipay.protocol import signing

    def one(notice: Notice) -> bool:
        status, text = views.handle_minimal(merchant.notify_token, notice.body, CONTENT_TYPE.split(";")[0])
        return status == 200 and text == "success"

    patches = [
        (views, "_m_store", "store the raw body (INSERT)", STEPS[0]),
        (views, "_merchant", "find the merchant (cached per process)", STEPS[0]),
        (views, "_m_parse_and_check", "decode the form and check the signature", STEPS[1]),
        (signing, "verify", "of which the RSA2 signature check (signing.verify)", ""),
        (views, "_m_acknowledged", "an earlier acknowledged delivery? (SELECT)", STEPS[2]),
        (
            views,
            "_m_notify_verify",
            "notify_verify round trip (http.client, kept-alive connection)",
            STEPS[3],
        ),
        (views, "_m_apply", "apply under the trade's row lock, mark processed (one transaction)", STEPS[4]),
    ]
    found = _diagnose(
        f"minimal correct handler, {label}", notices, one, patches, "the baseline view: 1 query", "benchsite"
    )
    found.text += "\n\n" + "\n".join(_minimal_plan(notices[-1]))
    return found


def compare(library: Diagnosis, minimal: Diagnosis) -> str:
    """The steps side by side: where the library spends more than the minimal handler, per notification."""
    rows = []
    for step in STEPS:
        a, b = library.steps.get(step, Phase()), minimal.steps.get(step, Phase())
        rows.append(
            (step, f"{a.cpu * 1000:.3f}", f"{b.cpu * 1000:.3f}", f"{(a.cpu - b.cpu) * 1000:+.3f}",
             f"{a.seconds * 1000:.3f}", f"{b.seconds * 1000:.3f}")
        )  # fmt: skip
    rest_a = library.cpu - sum(p.cpu for p in library.steps.values())
    rest_b = minimal.cpu - sum(p.cpu for p in minimal.steps.values())
    wall_a = library.wall - sum(p.seconds for p in library.steps.values())
    wall_b = minimal.wall - sum(p.seconds for p in minimal.steps.values())
    rows.append(
        ("everything else (the code between the steps)", f"{rest_a * 1000:.3f}", f"{rest_b * 1000:.3f}",
         f"{(rest_a - rest_b) * 1000:+.3f}", f"{wall_a * 1000:.3f}", f"{wall_b * 1000:.3f}")
    )  # fmt: skip
    rows.append(
        ("**whole notification**", f"**{library.cpu * 1000:.3f}**", f"**{minimal.cpu * 1000:.3f}**",
         f"**{(library.cpu - minimal.cpu) * 1000:+.3f}**", f"**{library.wall * 1000:.3f}**",
         f"**{minimal.wall * 1000:.3f}**")
    )  # fmt: skip
    lines = [
        "### Library against the minimal correct handler, step by step (in process, per notification)",
        "",
        f"Queries per notification: library {library.queries:.1f}, minimal handler {minimal.queries:.1f}. "
        "CPU is this thread's (the handler's own Python and driver work); wall includes the waits for "
        "PostgreSQL and the gateway.",
        "",
        h.table(
            ["step", "library CPU ms", "minimal CPU ms", "difference", "library wall ms", "minimal wall ms"],
            rows,
            "lrrrrr",
        ),
    ]
    return "\n".join(lines)


def _plans(merchant: Any, notice: Notice) -> list[str]:
    """EXPLAIN ANALYZE of the two duplicate lookups every notification makes, as the table is now."""
    from django_alipay.enums import ProcessingOutcome
    from django_alipay.models import Notification, Trade

    rows = Notification.objects.count()
    acknowledged = (
        Notification.objects.filter(
            merchant=merchant,
            notify_id=notice.notify_id,
            outcome__in=[ProcessingOutcome.PROCESSED, ProcessingOutcome.IGNORED],
        )
        .exclude(pk=0)
        .order_by("pk")[:1]
    )
    lines = [f"Query plans with {rows:,} notifications stored:", ""]
    lines.append("```")
    lines.append("-- _same_delivery(): an acknowledged delivery of this notify_id (in the store statement)")
    lines.extend(acknowledged.explain(analyze=True).splitlines())
    trade = Trade.objects.filter(merchant=merchant).exclude(trade_no="").first()
    if trade is not None:
        same = (
            Notification.objects.filter(
                merchant=merchant, outcome=ProcessingOutcome.PROCESSED, trade=trade, status=trade.status
            )
            .exclude(pk=0)
            .order_by("pk")[:1]
        )
        lines.append("-- _duplicate(): an earlier processed notification of this trade and status")
        lines.extend(same.explain(analyze=True).splitlines())
    lines.append("```")
    return lines


def _minimal_plan(notice: Notice) -> list[str]:
    """EXPLAIN ANALYZE of the minimal handler's duplicate lookup, as its table is now."""
    from benchsite.views import MINIMAL_NOTIFICATION_TABLE
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {MINIMAL_NOTIFICATION_TABLE}")  # noqa: S608 (a constant)
        rows = int(cursor.fetchone()[0])
        cursor.execute(
            f"EXPLAIN ANALYZE SELECT 1 FROM {MINIMAL_NOTIFICATION_TABLE} "  # noqa: S608 (a constant)
            "WHERE notify_id = %s AND processed LIMIT 1",
            [notice.notify_id],
        )
        plan = [row[0] for row in cursor.fetchall()]
    return [f"Query plan with {rows:,} rows stored:", "", "```", *plan, "```"]


def _bucket(filename: str) -> str:
    for marker, name in (
        ("benchsite/", "benchsite (the minimal handler)"),
        ("django_alipay/protocol", "django_alipay.protocol (parse, sign check, HTTP client)"),
        ("django_alipay/", "django_alipay (domain, models, fields)"),
        ("django/db", "django.db (ORM, SQL compiler)"),
        ("django/", "django (other)"),
        ("psycopg", "psycopg (driver)"),
        ("requests", "requests / urllib3"),
        ("urllib3", "requests / urllib3"),
        ("cryptography", "cryptography (Fernet, RSA)"),
        ("http/client", "http.client / socket"),
        ("socket", "http.client / socket"),
        ("ssl", "http.client / socket"),
    ):
        if marker in filename:
            return name
    if filename.startswith("~") or filename == "~":
        return "built-ins (C: socket I/O, hashing ...)"
    return "other Python"


# --- main --------------------------------------------------------------------------------------------------


LIBRARY: Final = "library"
BASELINE: Final = "baseline"
MINIMAL: Final = "minimal correct handler"
NO_VERIFY: Final = "library, NOTIFY_VERIFY off"
#: Throughput ratios reported per round (numerator, denominator), when both variants ran.
RATIOS: Final = (
    (LIBRARY, BASELINE),
    (LIBRARY, MINIMAL),
    (MINIMAL, BASELINE),
    (NO_VERIFY, BASELINE),
    (NO_VERIFY, MINIMAL),
)


def summarize(runs: Sequence[Run], variants: Sequence[str]) -> str:
    lines = []
    by_variant: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_variant[run.variant].append(run)
    rows: list[tuple[Any, ...]] = []
    for variant in variants:
        group = by_variant[variant]
        tput = [r.result.throughput for r in group]
        rows.append(
            (
                variant,
                len(group),
                f"{h.median(tput):.1f}",
                h.spread(tput, "{:.1f}"),
                f"{h.median([h.percentile(r.result.latencies, 50) for r in group]) * 1000:.1f}",
                f"{h.median([h.percentile(r.result.latencies, 95) for r in group]) * 1000:.1f}",
                f"{h.median([h.percentile(r.result.latencies, 99) for r in group]) * 1000:.1f}",
                sum(r.server_errors for r in group),
                sum(len(r.failures) for r in group),
            )
        )
    lines.append(
        h.table(
            ["variant", "runs", "req/s median", "req/s min–max", "p50 ms", "p95 ms", "p99 ms", "5xx",
             "not success"],
            rows,
        )
    )  # fmt: skip
    lines.append("")
    for top, bottom in RATIOS:
        if top not in variants or bottom not in variants:
            continue
        ratios = []
        for round_no in sorted({r.round for r in runs}):
            pair = {r.variant: r for r in runs if r.round == round_no}
            ratios.append(pair[top].result.throughput / pair[bottom].result.throughput)
        goal = " (goal ≥ 0.5x for the library)" if (top, bottom) == (LIBRARY, BASELINE) else ""
        lines.append(
            f"**{top} / {bottom} throughput: {h.median(ratios):.2f}x median, {h.spread(ratios)} over "
            f"{len(ratios)} rounds**{goal}."
        )
        lines.append("")
    rows = []
    for run in sorted(runs, key=lambda r: (r.round, r.position)):
        lat = run.result.latencies
        verify = f"{run.notify_verify_calls:,}" if run.variant != BASELINE else "—"
        rows.append(
            (
                run.round,
                run.position,
                run.variant,
                len(lat),
                f"{run.result.wall:.1f}",
                f"{run.result.throughput:.1f}",
                f"{h.percentile(lat, 50) * 1000:.1f}",
                f"{h.percentile(lat, 95) * 1000:.1f}",
                f"{h.percentile(lat, 99) * 1000:.1f}",
                f"{max(lat) * 1000:.0f}",
                verify,
                f"{run.cpu['others'] / len(lat) * 1000:.1f}",
            )
        )
    lines.append(
        h.table(
            ["round", "order", "variant", "POSTs", "s", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
             "notify_verify calls", "others' CPU ms/req"],
            rows,
            "rrlrrrrrrrrr",
        )
    )  # fmt: skip
    lines.append("")
    names = ["gunicorn", "emulator", "postgres", "client", "others"]
    rows = []
    for variant in variants:
        group = by_variant[variant]
        per = {name: h.median([r.cpu[name] / len(r.result.replies) * 1000 for r in group]) for name in names}
        ours = sum(per[name] for name in names[:4])
        rows.append(
            (
                variant,
                *(f"{per[name]:.2f}" for name in names),
                f"{ours:.2f}",
                f"{(os.cpu_count() or 1) / ours * 1000:.0f}" if ours else "—",
            )
        )
    lines.append(
        "CPU milliseconds per request (median over rounds; `others` = every other process on the machine "
        "meanwhile, steal time excluded):"
    )
    lines.append("")
    lines.append(
        h.table(
            ["variant", "gunicorn", "emulator", "PostgreSQL", "client", "others", "ours total",
             f"req/s if our CPU alone limited ({os.cpu_count()} cores)"],
            rows,
        )
    )  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="\n".join((__doc__ or "").splitlines()[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=int, default=1000, help="POSTs per timed run, resends included")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every variant once")
    parser.add_argument("--concurrency", type=int, default=16, help="connections at once (client threads)")
    parser.add_argument("--duplicates", type=float, default=0.2, help="share of POSTs that are resends")
    parser.add_argument("--refunds", type=float, default=0.1, help="share of notifications about refunds")
    parser.add_argument("--instore", type=float, default=0.25, help="share of trade notifications in-store")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--warmup", type=int, default=300, help="POSTs per variant before the timed rounds")
    parser.add_argument(
        "--conn-max-age", type=int, default=60, help="Django CONN_MAX_AGE (0: a connection per request)"
    )
    parser.add_argument(
        "--no-verify-variant",
        action="store_true",
        help="also time the library with NOTIFY_VERIFY off (a second, otherwise identical server): how much "
        "the notify_verify round trip costs",
    )
    parser.add_argument(
        "--verify-latency",
        type=float,
        default=0.0,
        help="seconds the emulator waits before answering each notify_verify (Alipay's gateway is far away "
        "from most shops); default 0",
    )
    parser.add_argument(
        "--diagnose", type=int, default=200, help="notifications run in-process with a profiler (0: none)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the send order")
    args = parser.parse_args()
    if not 0 <= args.duplicates < 0.5 or args.count < 10:
        parser.error("--duplicates must be in [0, 0.5) and --count at least 10")

    from cryptography.fernet import Fernet

    rng = random.Random(args.seed)
    env = {
        "BENCH_FERNET_KEY": Fernet.generate_key().decode(),
        "BENCH_CONN_MAX_AGE": str(args.conn_max_age),
        "BENCH_REFUND_SYNC": "0",  # refunds answered by notification (is_sync=N)
        "BENCH_REFUND_SPACING": "0",
        # The emulator's notifier sends each notification once to this address, where nothing listens.
        "BENCH_NOTIFY_URL_BASE": f"http://127.0.0.1:{h.free_port()}/alipay/notify/",
    }
    variants = [BASELINE, MINIMAL, LIBRARY] + ([NO_VERIFY] if args.no_verify_variant else [])
    checks = Checks()
    with h.database("bench_ingestion") as url:
        h.setup_django(url, env)
        from benchsite.views import CREATE_BASELINE_TABLE, CREATE_MINIMAL_TABLES
        from django.db import connection

        with connection.cursor() as cursor:
            for statement in (CREATE_BASELINE_TABLE, *CREATE_MINIMAL_TABLES):
                cursor.execute(statement)
        header = h.machine()
        emulator = h.Emulator(merchant_key="RSA", refund_interval=0.0).start()
        servers: dict[str, h.Gunicorn] = {}
        try:
            emulator.control("config", {"notify_id_ttl": 86400, "retry_schedule": [86400] * 7})
            gateway = emulator
            if args.verify_latency:
                faults = {"services": {"notify_verify": {"latency": args.verify_latency}}}
                emulator.control("faults", faults)
            merchant = emulator.merchant(sign_type="RSA2", name="Benchmark shop")
            # The minimal handler's shop: another partner at the emulator, its own orders and tables.
            minimal_merchant = emulator.second_merchant(merchant, "Benchmark shop (minimal handler)")
            register_minimal(minimal_merchant)
            library_shop, minimal_shop = Shop(merchant), Shop(minimal_merchant)
            shops = {LIBRARY: library_shop, NO_VERIFY: library_shop, MINIMAL: minimal_shop}
            servers[LIBRARY] = h.Gunicorn(workers=args.workers, env={**env, "DATABASE_URL": url}).start()
            servers[BASELINE] = servers[MINIMAL] = servers[LIBRARY]
            if args.no_verify_variant:
                servers[NO_VERIFY] = h.Gunicorn(
                    workers=args.workers, env={**env, "DATABASE_URL": url, "BENCH_NOTIFY_VERIFY": "0"}
                ).start()
            emulator_pid = emulator.pid
            postgres_pid = h.postgres_root()
            paths = {
                LIBRARY: f"/alipay/notify/{merchant.notify_token}/",
                NO_VERIFY: f"/alipay/notify/{merchant.notify_token}/",
                BASELINE: f"/baseline/notify/{merchant.notify_token}/",
                MINIMAL: f"/minimal/notify/{minimal_merchant.notify_token}/",
            }
            labels = {LIBRARY: "", NO_VERIFY: "n", MINIMAL: "m"}
            print(f"# notification ingestion — {header}\n", flush=True)
            distinct = args.count - round(args.count * args.duplicates)
            baseline_posts = 0
            runs: list[Run] = []

            def batch(variant: str, label: str, size: int) -> list[Notice]:
                shop = shops[variant]
                made = prepare(gateway, shop.merchant, label + labels[variant], size, shop.pool, args)
                if variant == MINIMAL:
                    seed_minimal(shop.merchant, made)
                return made

            # Warm-up: every path of every server once, untimed; its paid trades are the first to refund.
            warm_distinct = max(10, args.warmup - round(args.warmup * args.duplicates))
            started = time.perf_counter()
            for variant in variants[1:]:
                notices = batch(variant, "warm", warm_distinct)
                plan = schedule(notices, args.warmup, args.concurrency, rng)
                for target in (BASELINE, variant) if variant == LIBRARY else (variant,):
                    result = h.run_load(
                        servers[target].port,
                        requests_for(notices, plan, paths[target]),
                        concurrency=args.concurrency,
                    )
                    bad = [r for r in result.replies if r.status != 200 or r.body.strip() != "success"]
                    checks.add(
                        f"warm-up {target}: every answer success", not bad, f"{len(bad)} not: {bad[:2]}"
                    )
                    if target == BASELINE:
                        baseline_posts += len(plan)
                    else:
                        shops[target].posts += len(plan)
                shops[variant].record(notices, plan)
            print(f"warm-up done in {time.perf_counter() - started:.1f} s")

            for round_no in range(1, args.rounds + 1):
                started = time.perf_counter()
                batches = {variant: batch(variant, f"r{round_no}", distinct) for variant in variants[1:]}
                batches[BASELINE] = batches[LIBRARY]
                plans = {
                    name: schedule(made, args.count, args.concurrency, rng) for name, made in batches.items()
                }
                plans[BASELINE] = plans[LIBRARY]
                kinds = Counter(n.kind for n in batches[LIBRARY])
                print(
                    f"round {round_no}: {distinct} notifications per run ({dict(kinds)}), "
                    f"{args.count} POSTs, prepared in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
                shift = (round_no - 1) % len(variants)
                order = variants[shift:] + variants[:shift]
                for position, variant in enumerate(order, 1):
                    verify_before = gateway.count_calls("notify_verify")
                    server = servers[variant]
                    pids = {"gunicorn": server.pid, "emulator": emulator_pid, "postgres": postgres_pid}
                    requests = requests_for(batches[variant], plans[variant], paths[variant])
                    run = timed_run(variant, round_no, position, requests, args, pids, server)
                    run.notify_verify_calls = gateway.count_calls("notify_verify") - verify_before
                    run.distinct = len(batches[variant])
                    runs.append(run)
                    if variant == BASELINE:
                        baseline_posts += len(requests)
                    else:
                        shops[variant].posts += len(requests)
                    print(
                        f"  {variant}: {run.result.throughput:.1f} req/s, "
                        f"p50 {h.percentile(run.result.latencies, 50) * 1000:.1f} ms, "
                        f"{len(run.failures)} not success, others' CPU "
                        f"{run.cpu['others'] / len(run.result.replies) * 1000:.1f} ms/req",
                        flush=True,
                    )
                for variant in variants[1:]:
                    shops[variant].record(batches[variant], plans[variant])

            print()
            print(summarize(runs, variants))
            print()
            for run in runs:
                checks.add(
                    f"round {run.round} {run.variant}: every answer 200 success",
                    not run.failures,
                    f"{len(run.failures)} not success, {run.server_errors} 5xx"
                    + (f"; first: {run.failures[0]}" if run.failures else ""),
                )
                if run.variant in (LIBRARY, MINIMAL):
                    checks.add(
                        f"round {run.round} {run.variant}: notify_verify asked once per notification at most",
                        run.distinct <= run.notify_verify_calls <= len(run.result.replies),
                        f"{run.notify_verify_calls:,} calls for {run.distinct:,} notifications and "
                        f"{len(run.result.replies) - run.distinct:,} resends",
                    )
            check_database(
                merchant,
                dict(library_shop.sent),
                library_shop.notices,
                library_shop.posts,
                baseline_posts,
                gateway,
                checks,
            )
            check_minimal(
                minimal_merchant,
                dict(minimal_shop.sent),
                minimal_shop.notices,
                minimal_shop.posts,
                gateway,
                checks,
            )
            print(checks.render())
            if not checks.ok:
                print("\n" + servers[LIBRARY].log_tail(3000))

            if args.diagnose:
                label = f"{args.diagnose} notifications"
                notices = batch(LIBRARY, "diag", args.diagnose)
                library = diagnose(merchant, notices, label)
                notices = batch(MINIMAL, "diag", args.diagnose)
                minimal = diagnose_minimal(minimal_merchant, notices, label)
                for found in (library, minimal):
                    print()
                    print(found.text)
                print()
                print(compare(library, minimal))
                checks.add("diagnosis of the library: every answer success", library.ok)
                checks.add("diagnosis of the minimal handler: every answer success", minimal.ok)
        finally:
            for server in set(servers.values()):
                server.stop()
            emulator.stop()
    if not checks.ok:
        print("\nSOME CHECKS FAILED", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
