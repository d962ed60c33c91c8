"""Measure reconciliation over many open trades in PostgreSQL: gateway queries, DB queries, memory and time.

Run from the repository root (a throwaway PostgreSQL comes from scripts/with-services):

    scripts/with-services .venv/bin/python benchmarks/bench_reconciliation.py
    scripts/with-services .venv/bin/python benchmarks/bench_reconciliation.py --trades 10000 --transport stub

It creates a test database (``test_<name>`` of DATABASE_URL, dropped at the end), bulk-creates ``--trades``
unpaid trades old enough to be reconciled, and runs ``domain.reconciliation.reconcile`` against

* ``--transport http`` (default): a fake gateway in a child process (so that its memory is not counted),
  answering single_trade_query and alipay.acquire.overseas.query over loopback HTTP with MD5-signed
  envelopes: the whole path, client and envelope parsing included;
* ``--transport stub``: a stand-in for ``gateway.client_for`` returning answers in memory: the domain and
  database cost alone.

Answers by order number n: n % 10 == 0 paid (TRADE_SUCCESS), 1 closed, 2 unknown to Alipay, else still
unpaid. One in five trades is in-store (queried with overseas_query).

Counted: gateway queries (by the fake gateway), DB queries (a connection.execute_wrapper that counts by
kind and keeps nothing; BEGIN/COMMIT of autocommit transactions do not go through it), time, peak RSS of
the reconcile phase (VmHWM after resetting it through /proc/self/clear_refs; ru_maxrss is the whole
process) and, in a second run over a fresh copy of the same rows, the tracemalloc peak. Baselines in the
same run, over the same rows: ``for trade in stale_trades().iterator(): pass`` (stream the rows and do
nothing) and ``list(stale_trades())`` (every row in memory at once).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import multiprocessing
import os
import platform
import re
import resource
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import OPEN_TRADE_AMOUNT, bulk_create_open_trades, reconciliation_answer

MD5_KEY = "benchkey000000000000000000000000"
PARTNER = "2088000000000001"
AMOUNT = OPEN_TRADE_AMOUNT
NOW = dt.datetime(2024, 5, 8, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


# --- the fake gateway (a child process) --------------------------------------------------------------------


def serve(port_pipe: Any, counts: Any) -> None:
    """Answer the two query services with signed envelopes until killed; count requests per service."""
    from django_alipay.protocol import envelope

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else every keep-alive call waits out a delayed ACK (~40 ms)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            params = dict(parse_qsl(urlsplit(self.path).query)) | dict(
                parse_qsl(self.rfile.read(length).decode("utf-8"))
            )
            service = params.get("service", "")
            order = params.get("out_trade_no") or params.get("partner_trans_id") or "X-0"
            status = reconciliation_answer(int(order.rsplit("-", 1)[1]))
            if service == "single_trade_query":
                counts[0] += 1
                if status == "not_found":
                    body = envelope.render_response(is_success=False, error="TRADE_NOT_EXIST")
                else:
                    fields = {
                        "out_trade_no": order,
                        "trade_status": status,
                        "total_fee": AMOUNT,
                        "currency": "USD",
                    }
                    body = envelope.render_response(
                        is_success=True, response_element="trade", fields=fields, sign_type="MD5", key=MD5_KEY
                    )
            elif service == "alipay.acquire.overseas.query":
                counts[1] += 1
                if status == "not_found":
                    fields = {"result_code": "FAIL", "error": "TRANS_NOT_FOUND"}
                else:
                    fields = {
                        "result_code": "SUCCESS",
                        "partner_trans_id": order,
                        "alipay_trans_status": status,
                        "trans_amount": AMOUNT,
                        "currency": "USD",
                    }
                body = envelope.render_response(
                    is_success=True, response_element="alipay", fields=fields, sign_type="MD5", key=MD5_KEY
                )
            else:
                counts[2] += 1
                body = envelope.render_response(is_success=False, error="ILLEGAL_SERVICE")
            self.send_response(200)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def process_request(self, request: Any, client_address: Any) -> None:
            counts[3] += 1  # one per TCP connection accepted
            super().process_request(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
    port_pipe.send(server.server_address[1])
    server.serve_forever()


# --- Django ------------------------------------------------------------------------------------------------


def configure_django() -> None:
    from cryptography.fernet import Fernet
    from django.conf import settings

    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        sys.exit("DATABASE_URL must name a PostgreSQL server: run through scripts/with-services")
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_alipay"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": parts.path.lstrip("/") or "postgres",
                "USER": parts.username or "postgres",
                "PASSWORD": parts.password or "",
                "HOST": parts.hostname or "127.0.0.1",
                "PORT": str(parts.port or 5432),
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        ALIPAY={"FERNET_KEYS": [Fernet.generate_key().decode()], "REFUND_SPACING": 0},
    )
    import django

    django.setup()


@dataclass
class QueryCounter:
    """Counts DB queries by kind without keeping them (CaptureQueriesContext would keep every SQL string)."""

    total: int = 0
    commits: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        self.total += 1
        self.kinds[self.kind(sql)] += 1
        return execute(sql, params, many, context)

    @staticmethod
    def kind(sql: str) -> str:
        verb = sql.split(None, 1)[0].upper()
        table = re.search(r'(?:FROM|UPDATE|INTO)\s+"(\w+)"', sql)
        name = table.group(1).removeprefix("django_alipay_") if table else ""
        extra = []
        if " IN (" in sql:
            extra.append("IN (batch)")
        if " LIMIT " in sql:
            extra.append("LIMIT")
        if "FOR UPDATE" in sql:
            extra.append("FOR UPDATE")
        return " ".join([verb, name, *extra]).strip()


@contextmanager
def counting() -> Iterator[QueryCounter]:
    """Count queries, and commits (a transaction's BEGIN and COMMIT do not pass the execute wrapper)."""
    from django.db import connection

    counter = QueryCounter()
    commit = connection.commit

    def counted_commit() -> None:
        counter.commits += 1
        commit()

    connection.commit = counted_commit  # type: ignore[method-assign]
    try:
        with connection.execute_wrapper(counter):
            yield counter
    finally:
        del connection.commit


RSS_RESET = "not tried"


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark of this process (VmHWM), where the kernel allows it."""
    global RSS_RESET
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError as exc:
        RSS_RESET = f"no ({exc.strerror}): peak RSS is the process's so far"
    else:
        RSS_RESET = "yes"


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def create_trades(merchant: Any, count: int) -> None:
    """``count`` unpaid trades, 30 minutes to 6 days old, one in five in-store; bulk inserts of 5,000."""
    from django_alipay.models import Refund, Trade

    Refund.objects.all().delete()
    Trade.objects.all().delete()
    bulk_create_open_trades(merchant, count, now=NOW, span=dt.timedelta(days=6), chunk=5000)


@dataclass
class Phase:
    name: str
    seconds: float
    queries: QueryCounter
    rss_mb: float
    traced_mb: float | None = None
    gateway_queries: int = 0
    fds_after: int = 0
    start_rss_mb: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_phase(name: str, work: Callable[[], Any], *, traced: bool) -> tuple[Phase, Any]:
    gc.collect()
    start_rss = current_rss_mb()
    reset_peak_rss()
    if traced:
        tracemalloc.start()
    with counting() as counter:
        started = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - started
    traced_mb = None
    if traced:
        traced_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    phase = Phase(name, seconds, counter, peak_rss_mb(), traced_mb, fds_after=open_fds())
    phase.start_rss_mb = start_rss
    return phase, result


class StubClient:
    """Stands in for GatewayClient: answers the two query services from answer_for, counting calls."""

    calls = 0

    def close(self) -> None:
        """Nothing to release (GatewayClient closes its connections here)."""

    def _status(self, order: str) -> str:
        type(self).calls += 1
        return reconciliation_answer(int(order.rsplit("-", 1)[1]))

    def single_trade_query(self, *, out_trade_no: str) -> Any:
        from django_alipay.protocol.errors import AlipayGatewayError

        status = self._status(out_trade_no)
        if status == "not_found":
            raise AlipayGatewayError("TRADE_NOT_EXIST", code="TRADE_NOT_EXIST")
        return SimpleNamespace(
            fields={
                "out_trade_no": out_trade_no,
                "trade_status": status,
                "total_fee": AMOUNT,
                "currency": "USD",
            }
        )

    def overseas_query(self, *, partner_trans_id: str) -> Any:
        status = self._status(partner_trans_id)
        if status == "not_found":
            return SimpleNamespace(fields={"result_code": "FAIL", "error": "TRANS_NOT_FOUND"})
        return SimpleNamespace(
            fields={
                "result_code": "SUCCESS",
                "alipay_trans_status": status,
                "trans_amount": AMOUNT,
                "currency": "USD",
            }
        )


def machine() -> str:
    import django
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{dt.date.today().isoformat()}, nproc {os.cpu_count()} ({cpu}), Python {platform.python_version()}, "
        f"Django {django.get_version()}, PostgreSQL {pg}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: ALIPAY['RECONCILE_BATCH_SIZE']"
    )
    parser.add_argument("--transport", choices=("http", "stub"), default="http")
    parser.add_argument("--no-traced-run", action="store_true", help="skip the second run under tracemalloc")
    args = parser.parse_args()

    counts = None
    child = None
    port = 0
    if args.transport == "http":
        context = multiprocessing.get_context("spawn")
        counts = context.Array("q", 4)
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=serve, args=(send, counts), daemon=True)
        child.start()
        port = receive.recv()

    configure_django()
    from django.db import connection

    from django_alipay import gateway
    from django_alipay.conf import app_settings
    from django_alipay.domain import clock as domain_clock
    from django_alipay.domain import reconciliation
    from django_alipay.models import Merchant, Trade
    from django_alipay.protocol.clock import FixedClock

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        print(f"# reconciliation benchmark — {machine()}\n")
        domain_clock.set_clock(FixedClock(NOW))
        merchant = Merchant.objects.create(
            name="Bench shop",
            partner=PARTNER,
            environment="emulator",
            gateway_url=f"http://127.0.0.1:{port or 9}/gateway.do",
            sign_type="MD5",
            md5_key=MD5_KEY,
            currency="USD",
        )
        if args.transport == "stub":
            gateway.client_for = lambda merchant, instore=False: StubClient()  # type: ignore[assignment]
        batch = int(args.batch_size or app_settings.RECONCILE_BATCH_SIZE)
        n = args.trades

        started = time.perf_counter()
        create_trades(merchant, n)
        setup_seconds = time.perf_counter() - started
        print(f"{n:,} trades bulk-created in {setup_seconds:.1f} s; batch size {batch}; {args.transport}\n")

        # Reconcile runs before the all-rows reference: memory freed by one phase stays in the process's RSS.
        phases: list[Phase] = []
        iterate, _ = run_phase(
            "baseline: stale_trades().iterator(), no work",
            lambda: sum(1 for _ in reconciliation.stale_trades().iterator(chunk_size=2000)),
            traced=False,
        )
        phases.append(iterate)

        before_http = list(counts) if counts is not None else [0, 0, 0, 0]
        StubClient.calls = 0
        phase, report = run_phase(
            "reconcile(include_refunds=False)",
            lambda: reconciliation.reconcile(batch_size=batch, include_refunds=False),
            traced=False,
        )
        if counts is not None:
            phase.gateway_queries = sum(counts[:3]) - sum(before_http[:3])
            phase.notes["TCP connections"] = counts[3] - before_http[3]
        else:
            phase.gateway_queries = StubClient.calls
        phase.notes |= {
            "checked": report.trades_checked,
            "changed": report.trades_changed,
            "errors": len(report.errors),
            "mismatches": len(report.mismatches),
        }
        phases.append(phase)
        statuses = Counter(Trade.objects.values_list("status", flat=True))
        expected = Counter(
            {
                "TRADE_SUCCESS": sum(1 for i in range(n) if i % 10 == 0),
                "TRADE_CLOSED": sum(1 for i in range(n) if i % 10 == 1),
                "WAIT_BUYER_PAY": sum(1 for i in range(n) if i % 10 > 1),
            }
        )
        assert statuses == expected, f"reconciliation left {statuses}, expected {expected}"
        assert report.trades_checked == n
        del report

        create_trades(merchant, n)  # reconciled trades are no longer stale
        loaded, rows = run_phase(
            "reference: list(stale_trades()), all rows at once",
            lambda: list(reconciliation.stale_trades()),
            traced=False,
        )
        assert len(rows) == n
        del rows
        phases.append(loaded)

        if not args.no_traced_run:
            for name, work in (
                (
                    "reconcile, second run under tracemalloc",
                    lambda: reconciliation.reconcile(batch_size=batch, include_refunds=False).trades_checked,
                ),
                (
                    "baseline iterator under tracemalloc",
                    lambda: sum(1 for _ in reconciliation.stale_trades().iterator(chunk_size=2000)),
                ),
                ("list(stale_trades()) under tracemalloc", lambda: len(list(reconciliation.stale_trades()))),
            ):
                create_trades(merchant, n)
                traced, checked = run_phase(name, work, traced=True)
                assert checked == n
                phases.append(traced)

        report_phases(phases, n, batch, iterate.seconds, phase)
        whole = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\nru_maxrss of the whole process (setup included): {whole:.0f} MB")
    finally:
        domain_clock.set_clock(None)
        connection.creation.destroy_test_db(old_name, verbosity=0)
        if child is not None:
            child.kill()


def report_phases(phases: list[Phase], n: int, batch: int, baseline: float, main_phase: Phase) -> None:
    print(
        "| phase | s | s per 10,000 trades | × baseline | DB queries | per trade | RSS MB at start → peak "
        "| tracemalloc peak MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for phase in phases:
        traced = f"{phase.traced_mb:.1f}" if phase.traced_mb is not None else "—"
        print(
            f"| {phase.name} | {phase.seconds:.2f} | {phase.seconds / n * 10_000:.2f} | "
            f"{phase.seconds / baseline:.1f} | {phase.queries.total:,} | {phase.queries.total / n:.2f} | "
            f"{phase.start_rss_mb:.0f} → {phase.rss_mb:.0f} | {traced} |"
        )
    batches = -(-n // batch)
    print(
        f"\nreconcile: {main_phase.notes}; gateway queries {main_phase.gateway_queries:,} "
        f"({main_phase.gateway_queries / n:.2f} per trade); {batches:,} batches of {batch}; "
        f"transactions committed {main_phase.queries.commits:,} "
        f"({main_phase.queries.commits / n:.2f} per trade); "
        f"open file descriptors afterwards {main_phase.fds_after}; peak RSS reset per phase: {RSS_RESET}"
    )
    print("\nDB queries of the reconcile run by kind (per trade / per batch):\n")
    print("| kind | count | per trade | per batch |")
    print("|---|---:|---:|---:|")
    for kind, count in main_phase.queries.kinds.most_common():
        print(f"| `{kind}` | {count:,} | {count / n:.3f} | {count / batches:.2f} |")


if __name__ == "__main__":
    main()
