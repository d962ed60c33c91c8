"""Measure reconciliation spread over 1, 2 and 4 Celery worker processes: trades/s, queries, memory, locks.

Run from the repository root (a throwaway PostgreSQL and Redis come from scripts/with-services):

    scripts/with-services .venv/bin/python benchmarks/bench_fanout.py                  # 1,000,000 trades
    scripts/with-services .venv/bin/python benchmarks/bench_fanout.py --trades 20000   # quick look
    scripts/with-services .venv/bin/python benchmarks/bench_fanout.py --trades 20000 --gateway-ms 5

It creates its own database, bulk-creates ``--trades`` unpaid trades (bulk_create, 10,000 a statement), old
enough to be due, and for each worker count (``--workers``, default 1 2 4) starts that many Celery worker
processes (``--pool solo``: one process each, this very script with ``--worker``), sends
``tasks.reconcile_open_trades_in_batches`` once and waits for its summary (the chord's callback). Between
worker counts the trades are put back as they were.

The gateway is a stub in each worker: ``gateway.client_for`` builds the real GatewayClient (signing, envelope
parsing and signature check all run), but with an in-memory transport (:class:`FakeGateway`, the library's
Transport protocol, like ``protocol.transport.MockTransport`` without keeping every request) that answers
``single_trade_query`` and ``alipay.acquire.overseas.query`` with MD5-signed envelopes after
``--gateway-ms`` ms (a round trip to Alipay: a sleep, no CPU). Answers by order number n as in
bench_reconciliation.py: n % 10 == 0 paid, 1 closed, 2 unknown to Alipay, else still unpaid; one in five
in-store.

Reported per worker count: wall time from sending the task to the summary, trades/s, DB statements per
trade (counted in the workers by wrapping Django's cursor), gateway queries, peak RSS of each worker
(VmHWM of /proc/<pid>/status), CPU seconds of the workers and of PostgreSQL, how busy the machine's cores
were (/proc/stat), and lock waits: pg_stat_activity / pg_locks sampled every 0.2 s during the run.
Baseline in the same run (``--baseline``, default on up to 100,000 trades): the single-process
``reconcile(include_refunds=False)`` of today over the same rows and the same stub.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent), str(BENCH_DIR)]

from _harness import (  # noqa: E402
    OPEN_TRADE_AMOUNT,
    bulk_create_open_trades,
    cpu_seconds,
    database,
    reconciliation_answer,
    table,
)

MD5_KEY = "benchkey000000000000000000000000"
PARTNER = "2088000000000001"
AMOUNT = OPEN_TRADE_AMOUNT
QUEUE = "alipay"


# --- the stub gateway ------------------------------------------------------------------------------------


class FakeGateway:
    """An in-memory Transport answering the two query services with signed envelopes; counts its calls."""

    calls = 0

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def send(self, request: Any) -> Any:
        from django_alipay.protocol import envelope
        from django_alipay.protocol.transport import Response

        type(self).calls += 1
        if self.delay:
            time.sleep(self.delay)
        params = request.params
        service = params.get("service", "")
        order = params.get("out_trade_no") or params.get("partner_trans_id") or "X-0"
        status = reconciliation_answer(int(order.rsplit("-", 1)[1]))
        if service == "single_trade_query":
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
        elif status == "not_found":
            fields = {"result_code": "FAIL", "error": "TRANS_NOT_FOUND"}
            body = envelope.render_response(
                is_success=True, response_element="alipay", fields=fields, sign_type="MD5", key=MD5_KEY
            )
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
        return Response(200, {"Content-Type": "text/xml; charset=utf-8"}, body)

    def close(self) -> None:
        """Nothing to release."""


def use_fake_gateway(delay: float) -> None:
    """Every client the library builds in this process talks to :class:`FakeGateway`."""
    from django_alipay import gateway

    build = gateway.client_for

    def client_for(*args: Any, **kwargs: Any) -> Any:
        client = build(*args, **kwargs)
        client.close()
        client.transport = FakeGateway(delay)
        client._owns_transport = False
        return client

    gateway.client_for = client_for  # type: ignore[assignment]


class Statements:
    """Counts every SQL statement Django sends in this process (cursor execute / executemany)."""

    count = 0

    @classmethod
    def install(cls) -> None:
        from django.db.backends import utils

        for name in ("execute", "executemany"):
            original = getattr(utils.CursorWrapper, name)

            def counted(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
                cls.count += 1
                return _original(self, *args, **kwargs)

            setattr(utils.CursorWrapper, name, counted)


# --- Django and Celery -----------------------------------------------------------------------------------


def configure_django(database_url: str) -> None:
    from django.conf import settings

    parts = urlsplit(database_url)
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_alipay"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": parts.path.lstrip("/"),
                "USER": parts.username or "postgres",
                "PASSWORD": parts.password or "",
                "HOST": parts.hostname or "127.0.0.1",
                "PORT": str(parts.port or 5432),
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        ALIPAY={
            "FERNET_KEYS": [os.environ["BENCH_FERNET_KEY"]],
            "REFUND_SPACING": 0,
            "CELERY_ENABLED": True,
            "TASK_QUEUE": QUEUE,
        },
        LOGGING={"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}},
    )
    import django

    django.setup()


def celery_app(name: str) -> Any:
    from celery import Celery

    from django_alipay import schedule

    redis_url = os.environ["REDIS_URL"]
    app = Celery(name)
    app.conf.update(
        broker_url=redis_url,
        result_backend=redis_url,
        task_routes=schedule.task_routes(),
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.set_current()
    app.set_default()
    return app


def worker(name: str, directory: Path, delay: float) -> None:
    """The body of one worker process (``--worker``): a solo-pool Celery worker with the stub gateway."""
    configure_django(os.environ["BENCH_DATABASE_URL"])
    use_fake_gateway(delay)
    Statements.install()
    app = celery_app("bench_fanout_worker")
    from celery.signals import task_postrun, worker_ready

    import django_alipay.tasks  # noqa: F401  (registers the tasks with the app)

    stats = directory / f"{name}.json"

    def write(**kwargs: Any) -> None:
        tasks_done = json.loads(stats.read_text())["tasks"] + 1 if stats.exists() else 1
        stats.write_text(
            json.dumps({"statements": Statements.count, "gateway": FakeGateway.calls, "tasks": tasks_done})
        )

    task_postrun.connect(write, weak=False)
    worker_ready.connect(lambda **kwargs: (directory / f"{name}.ready").touch(), weak=False)
    app.worker_main(
        ["worker", "-n", f"{name}@%h", "--pool", "solo", "-Q", QUEUE, "-l", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"]
    )  # fmt: skip


# --- measuring -------------------------------------------------------------------------------------------


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class LockSampler(threading.Thread):
    """Samples the run's database sessions every ``every`` s: waiting on a lock, active, lock requests
    not granted."""

    def __init__(self, database_url: str, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.url = database_url
        self.every = every
        self.stop_event = threading.Event()
        self.samples = 0
        self.lock_waiting = 0  # sessions waiting on a lock, summed over samples
        self.samples_with_wait = 0
        self.max_not_granted = 0
        self.active = 0
        self.wait_events: dict[str, int] = {}
        self.states: dict[str, int] = {}

    def run(self) -> None:
        import psycopg

        name = urlsplit(self.url).path.lstrip("/")
        parts = urlsplit(self.url)
        with psycopg.connect(
            host=parts.hostname,
            port=parts.port,
            user=parts.username or "postgres",
            dbname=name,
            autocommit=True,
        ) as conn:
            while not self.stop_event.wait(self.every):
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                    (name,),
                ).fetchall()
                (not_granted,) = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
                self.samples += 1
                waiting = sum(1 for row in rows if row[1] == "Lock")
                self.lock_waiting += waiting
                self.samples_with_wait += waiting > 0
                self.max_not_granted = max(self.max_not_granted, int(not_granted))
                for state, kind, event in rows:
                    self.states[state] = self.states.get(state, 0) + 1
                    if state == "active":
                        self.active += 1
                        label = f"{kind}:{event}" if kind else "CPU (no wait)"
                        self.wait_events[label] = self.wait_events.get(label, 0) + 1

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)


def create_trades(merchant: Any, count: int, now: dt.datetime) -> float:
    """``count`` unpaid trades up to 5 days old, 10,000 a statement; the seconds it took."""
    return bulk_create_open_trades(merchant, count, now=now, span=dt.timedelta(days=5), chunk=10_000)


def reset_trades() -> None:
    """Every trade unpaid and never queried again, as created; then VACUUM so each run starts alike."""
    from django.db import connection

    from django_alipay.models import Trade

    Trade.objects.exclude(status="WAIT_BUYER_PAY", last_synced_at__isnull=True).update(
        status="WAIT_BUYER_PAY", last_synced_at=None, paid_at=None, closed_at=None, gateway_response={}
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE django_alipay_trade")


def outcome() -> dict[str, int]:
    from django.db.models import Count

    from django_alipay.models import Trade

    return dict(Trade.objects.values_list("status").annotate(n=Count("pk")).order_by())


@contextlib.contextmanager
def workers_running(count: int, directory: Path, env: dict[str, str], delay: float) -> Iterator[list[Any]]:
    started = []
    for number in range(count):
        name = f"w{count}-{number + 1}"
        log = (directory / f"{name}.log").open("wb")
        argv = [sys.executable, __file__, "--worker", name, "--stats", str(directory), "--gateway-ms",
                str(delay * 1000)]  # fmt: skip
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        started.append((name, process))
    try:
        deadline = time.monotonic() + 120
        while not all((directory / f"{name}.ready").exists() for name, _ in started):
            for name, process in started:
                if process.poll() is not None:
                    raise SystemExit(
                        f"worker {name} exited:\n{(directory / f'{name}.log').read_text()[-3000:]}"
                    )
            if time.monotonic() > deadline:
                raise SystemExit("workers not ready after 120 s")
            time.sleep(0.1)
        yield started
    finally:
        for _, process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _, process in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def postgres_pids(database_url: str) -> list[int]:
    """The PostgreSQL server's processes (postmaster and children), for their CPU time."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])
    parent = status_kb(backend, "PPid")
    return [parent]


def run_fanout(count: int, args: argparse.Namespace, env: dict[str, str], url: str) -> dict[str, Any]:
    from django_alipay import tasks

    root = postgres_pids(url)[0]
    directory = Path(tempfile.mkdtemp(prefix=f"fanout-{count}-"))
    with workers_running(count, directory, env, args.gateway_ms / 1000) as started:
        sampler = LockSampler(url)
        pg_cpu = cpu_seconds(root)
        busy0, total0 = cpu_busy()
        sampler.start()
        began = time.perf_counter()
        planned = tasks.reconcile_open_trades_in_batches.apply_async(
            kwargs={"trades_per_task": args.trades_per_task}
        ).get(timeout=3600)
        summary = tasks.summarize_reconciliation.AsyncResult(planned["summary_task"]).get(timeout=4 * 3600)
        seconds = time.perf_counter() - began
        sampler.stop()
        busy1, total1 = cpu_busy()
        pg_cpu = cpu_seconds(root) - pg_cpu
        per_worker = []
        for name, process in started:
            stats = json.loads((directory / f"{name}.json").read_text())
            per_worker.append(
                {
                    "name": name,
                    "hwm_mb": status_kb(process.pid, "VmHWM") / 1024,
                    "cpu": cpu_seconds(process.pid),
                    **stats,
                }
            )
    return {
        "workers": count,
        "seconds": seconds,
        "planned": planned,
        "summary": summary,
        "per_worker": per_worker,
        "pg_cpu": pg_cpu,
        "machine_busy": (busy1 - busy0) / max(1, total1 - total0),
        "locks": sampler,
    }


def run_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """Today's single process: reconcile(include_refunds=False) here, with the same stub gateway."""
    from django_alipay.domain import reconciliation

    use_fake_gateway(args.gateway_ms / 1000)
    before, calls = Statements.count, FakeGateway.calls
    busy0, total0 = cpu_busy()
    began = time.perf_counter()
    report = reconciliation.reconcile(include_refunds=False)
    seconds = time.perf_counter() - began
    busy1, total1 = cpu_busy()
    return {
        "seconds": seconds,
        "checked": report.trades_checked,
        "changed": report.trades_changed,
        "errors": len(report.errors),
        "statements": Statements.count - before,
        "gateway": FakeGateway.calls - calls,
        "machine_busy": (busy1 - busy0) / max(1, total1 - total0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--trades-per-task", type=int, default=1000)
    parser.add_argument("--gateway-ms", type=float, default=0.0, help="the stub gateway's answer time")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, Path(args.stats), args.gateway_ms / 1000)
        return
    if not os.environ.get("REDIS_URL"):
        sys.exit("REDIS_URL must name a Redis server: run under scripts/with-services")

    from cryptography.fernet import Fernet

    os.environ["BENCH_FERNET_KEY"] = Fernet.generate_key().decode()
    with database("bench_fanout") as url:
        os.environ["BENCH_DATABASE_URL"] = url
        configure_django(url)
        Statements.install()
        from django.core.management import call_command
        from django.utils import timezone

        from django_alipay.models import Merchant

        call_command("migrate", verbosity=0)
        celery_app("bench_fanout_client")
        import redis

        with redis.Redis.from_url(os.environ["REDIS_URL"]) as client:
            client.flushdb()
        merchant = Merchant.objects.create(
            name="Bench shop", partner=PARTNER, environment="emulator", gateway_url="http://127.0.0.1:9/gateway.do",
            sign_type="MD5", md5_key=MD5_KEY, currency="USD",
        )  # fmt: skip
        created = create_trades(merchant, args.trades, timezone.now())
        reset_trades()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH_DIR.parent), env.get("PYTHONPATH", "")]))
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        print(f"# reconciliation over Celery workers — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
        print(f"\n{args.trades:,} open trades created in {created:.1f} s; load average before: {load}; "
              f"nproc {os.cpu_count()}; stub gateway answer time {args.gateway_ms:g} ms; "
              f"{args.trades_per_task} trades per task\n")  # fmt: skip

        expected = {"TRADE_SUCCESS": 0, "TRADE_CLOSED": 0, "WAIT_BUYER_PAY": 0}
        for n in range(args.trades):
            status = reconciliation_answer(n)
            expected["WAIT_BUYER_PAY" if status == "not_found" else status] += 1

        rows = []
        baseline = None
        if args.baseline or (args.baseline is None and args.trades <= 100_000):
            baseline = run_baseline(args)
            assert outcome() == expected, outcome()
            reset_trades()
            rows.append(
                [
                    "today: `reconcile()` in one process (baseline)",
                    f"{baseline['seconds']:.1f}",
                    f"{baseline['checked'] / baseline['seconds']:.0f}",
                    "1.00",
                    f"{baseline['statements'] / baseline['checked']:.3f}",
                    "—",
                    f"{baseline['machine_busy']:.0%}",
                    "—",
                    "—",
                ]
            )
        results = []
        for count in args.workers:
            result = run_fanout(count, args, env, url)
            summary = result["summary"]
            assert summary["trades_checked"] == args.trades, summary
            assert summary["failed_batches"] == summary["errors"] == 0, summary
            assert outcome() == expected, outcome()
            reset_trades()
            results.append(result)
        first = results[0]["seconds"] if results else 0
        base_rate = baseline["checked"] / baseline["seconds"] if baseline else None
        for result in results:
            statements = sum(w["statements"] for w in result["per_worker"])
            rate = args.trades / result["seconds"]
            locks = result["locks"]
            rows.append(
                [
                    f"{result['workers']} worker process{'es' if result['workers'] > 1 else ''}",
                    f"{result['seconds']:.1f}",
                    f"{rate:.0f}",
                    f"{rate / base_rate:.2f}" if base_rate else "—",
                    f"{statements / args.trades:.3f}",
                    " / ".join(f"{w['hwm_mb']:.0f}" for w in result["per_worker"]),
                    f"{result['machine_busy']:.0%}",
                    f"{sum(w['cpu'] for w in result['per_worker']):.1f} / {result['pg_cpu']:.1f}",
                    f"{locks.samples_with_wait}/{locks.samples} (max {locks.max_not_granted})",
                ]
            )
        print(
            table(
                [
                    "run",
                    "s",
                    "trades/s",
                    "× one process",
                    "DB statements per trade",
                    "peak RSS MB per worker",
                    "cores busy",
                    "CPU s workers / PostgreSQL",
                    "samples with a lock wait (max not granted)",
                ],
                rows,
            )
        )
        print()
        for result in results:
            speed = first / result["seconds"]
            shares = ", ".join(f"{w['name']} {w['tasks']} tasks" for w in result["per_worker"])
            locks = result["locks"]
            events = sorted(locks.wait_events.items(), key=lambda item: -item[1])[:4]
            counts = {
                k: result["summary"][k] for k in ("batches", "trades_checked", "trades_changed", "errors")
            }
            states = ", ".join(f"{k} {v}" for k, v in sorted(locks.states.items()))
            print(
                f"* {result['workers']} workers: speed-up ×{speed:.2f} over 1 worker; "
                f"{result['planned']['batches']} batches ({shares}); summary {json.dumps(counts)}; "
                f"sessions sampled by state: {states or 'none'}; active ones by wait: "
                f"{', '.join(f'{k} {v}' for k, v in events) or 'none'}; "
                f"waiting on a lock: {locks.lock_waiting}"
            )
        print(f"\nload average after: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
