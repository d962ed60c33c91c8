"""Chaos run of the example shop: gateway faults, Redis and PostgreSQL restarts, a killed worker, slow calls.

Run from the repository root through ``scripts/with-services`` (a throwaway PostgreSQL and Redis, which this
run restarts: it refuses any other)::

    scripts/with-services .venv/bin/python benchmarks/chaos/run.py           # about 6 minutes
    scripts/with-services .venv/bin/python benchmarks/chaos/run.py --quick   # about 4 minutes

(``make chaos`` runs the first line; ``CHAOS_ARGS=--quick`` the second.) Everything listens on 127.0.0.1
only. It starts, as benchmarks/loadtest/run.py does, a fresh database beside DATABASE_URL's, the gateway
emulator standalone (its own SQLite file, a control token of this run), the example shop under gunicorn,
two Celery workers (threads) and Celery beat (the library's schedule: the stranded-refund sweeper every
15 s). Payments are made the way a buyer makes them (the shop's order, the signed cashier URL opened at the
emulator, the emulator's buyer pays, the emulator notifies the shop); refunds are requested through
``django_alipay.domain.refunds.request_refund`` (the shop owner's action) and sent by the workers. Then:

a. steady payments and refunds while the emulator injects gateway faults (latency, SYSTEM_ERROR, 502,
   dropped connections, dropped and duplicated notifications);
b. Redis stopped and started again (no persistence: its queues are emptied) under the running workers, with
   refunds queued before, requested while it is down and after;
c. a worker SIGKILLed while one of its refund calls is in flight at a slow gateway (then started again, as a
   supervisor would);
d. PostgreSQL stopped (``pg_ctl stop -m fast``) and started 5 s later (``--pg-down``; 0 for a plain
   ``pg_ctl restart``) while payments and refunds are under way;
e. a slow gateway (2.5 s per refund call) with both workers sending a burst of refunds: the spacing.

After each scenario it waits until every refund has an outcome and every payment is known to the shop, then
audits the whole run so far: refunds made plus pending never exceed what was paid, per trade (the shop's
rows and the emulator's books); the emulator's ledger equals the shop's to the cent for settled refunds, and
no refund the shop calls failed was made at the gateway; each payment and refund applied once (stored
notifications, the signals the shop sent); refund calls of the partner at least 3 s apart as the emulator
received them. The audit is printed and the report written to ``artifacts/chaos/report.md`` (process logs
beside it) after every scenario; the exit status is 1 when an audit failed, 2 when the run could not be made.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import itertools
import logging
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXAMPLE = REPO / "example_project"
PYTHON = sys.executable


def _load_loadtest() -> Any:
    """benchmarks/loadtest/run.py, whose process, emulator, database and merchant helpers are reused."""
    spec = importlib.util.spec_from_file_location("loadtest_run", REPO / "benchmarks" / "loadtest" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadtest_run"] = module
    spec.loader.exec_module(module)
    return module


lt = _load_loadtest()
http_json = lt.http_json
wait_for = lt.wait_for

#: Alipay's spacing between two refund calls of one partner, as the audit checks it at the emulator.
SPACING = 3.0
#: Refund amounts asked for (USD); every trade is one 5.00 gift card.
AMOUNTS = (Decimal("0.50"), Decimal("1.00"), Decimal("1.50"), Decimal("2.00"))
PAID = ("TRADE_FINISHED", "TRADE_SUCCESS")
T = TypeVar("T")


# --- what a scenario found ------------------------------------------------------------------------------


@dataclass
class Check:
    """One audit line."""

    name: str
    ok: bool
    detail: str


@dataclass
class Scenario:
    """One scenario: what it did, what it measured, its audit."""

    key: str
    title: str
    what: str
    started: float = 0.0
    ended: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


class DispatchWarnings(logging.Handler):
    """Counts this process's "could not be handed over" warnings (a refund dispatched while Redis is down)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "could not be handed over" in record.getMessage():
            self.count += 1


# --- the services ----------------------------------------------------------------------------------------


def _run_pg(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool as its server's owner (``postgres`` as root, like scripts/with-services)."""
    if os.getuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _pg_bindir() -> Path:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10).stdout
        if (Path(out.strip()) / "pg_ctl").exists():
            return Path(out.strip())
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin")):
        if (candidate / "pg_ctl").exists():
            return candidate
    raise RuntimeError("pg_ctl not found")


class Services:
    """The throwaway PostgreSQL and Redis of scripts/with-services, which this run may restart."""

    def __init__(self, admin_url: str, redis_url: str) -> None:
        self.admin_url = admin_url
        self.redis_url = redis_url
        for url in (admin_url, redis_url):
            if urlsplit(url).hostname != "127.0.0.1":
                raise RuntimeError(f"loopback services only: {url}")
        with lt._admin_connection(admin_url) as connection:
            self.pg_data = Path(str(connection.execute("SHOW data_directory").fetchone()[0]))
        import redis

        with redis.Redis.from_url(redis_url) as client:
            self.redis_dir = str(client.config_get("dir")["dir"])
            self.redis_log = str(client.config_get("logfile")["logfile"])
        # Only the throwaway servers of scripts/with-services are restarted, never anybody else's.
        for path in (str(self.pg_data), self.redis_dir):
            if not path.startswith("/tmp/alipay-services."):  # noqa: S108 - with-services' own mkdtemp
                raise RuntimeError(
                    f"{path} is not a throwaway server of scripts/with-services: not restarting it"
                )
        self.pg_ctl_path = _pg_bindir() / "pg_ctl"
        # "/usr/lib/postgresql/15/bin/postgres" "-D" "<data>" "-p" "<port>" ...: the options after the data.
        words = shlex.split((self.pg_data / "postmaster.opts").read_text())
        at = words.index("-D")
        self.server_options = shlex.join(words[1:at] + words[at + 2 :])

    def redis_answers(self) -> bool:
        import redis

        try:
            with redis.Redis.from_url(self.redis_url, socket_connect_timeout=1, socket_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def stop_redis(self) -> None:
        """Stop Redis as a restart does; without persistence every queued message is gone."""
        port = str(urlsplit(self.redis_url).port)
        subprocess.run(["redis-cli", "-p", port, "shutdown", "nosave"], capture_output=True, timeout=30)
        wait_for("stopping Redis", lambda: not self.redis_answers(), timeout=30)

    def start_redis(self) -> None:
        """Start Redis again on the same port, the way scripts/with-services started it."""
        port = str(urlsplit(self.redis_url).port)
        subprocess.run(
            ["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "yes", "--dir", self.redis_dir, "--logfile", self.redis_log],
            capture_output=True, timeout=30, check=True,
        )  # fmt: skip
        wait_for("starting Redis again", self.redis_answers, timeout=30)

    def pg_ctl(self, action: str) -> float:
        """``pg_ctl -w <action>`` (stop and restart ``-m fast``; start with the options the server was started
        with, from its postmaster.opts); returns the seconds it took."""
        started = time.monotonic()
        argv = [str(self.pg_ctl_path), "-D", str(self.pg_data), "-l", str(self.pg_data.parent / "log"), "-w"]
        if action == "start":
            argv += ["-o", self.server_options]
        else:
            argv += ["-m", "fast"]
        done = _run_pg([*argv, action])
        if done.returncode:
            raise RuntimeError(f"pg_ctl {action} failed: {done.stdout}\n{done.stderr}")
        return time.monotonic() - started


# --- the run ----------------------------------------------------------------------------------------------


class Chaos:
    """The system under test and the load on it; the scenarios and the audit."""

    def __init__(self, args: argparse.Namespace, children: Any, workdir: Path, out: Path) -> None:
        self.args = args
        self.children = children
        self.workdir = workdir
        self.out = out
        self.quick = bool(args.quick)
        self.rng = random.Random(args.seed)
        self.scenarios: list[Scenario] = []
        self.started_at = dt.datetime.now(dt.UTC)
        self.services = Services(os.environ["DATABASE_URL"], os.environ["REDIS_URL"])
        self.database_url = ""
        self.env: dict[str, str] = {}
        self.emulator = ""
        self.partner = ""
        self.merchant_id = 0
        self.shop = ""
        self.workers: dict[str, Any] = {}
        self.worker_starts: Counter[str] = Counter()
        self.core: dict[str, Any] = {}
        self.dispatch_warnings = DispatchWarnings()
        self.versions: dict[str, str] = {}
        # the background payer
        self.pay_every = 0.0
        self.stop_paying = threading.Event()
        self.paid_orders: list[str] = []
        self.payment_failures: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.payer: threading.Thread | None = None
        #: Held by the payer during one payment: taking it waits for the payment under way.
        self.paying = threading.Lock()
        self.refused_exceeding = 0
        self.refused_other: Counter[str] = Counter()
        self.faults_fired: dict[str, int] = {}
        self.total_faults: dict[str, int] = {}

    # --- setup ------------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Database, emulator, merchant, gunicorn, two workers and beat."""
        admin_url = self.services.admin_url
        self.versions = lt.versions()
        name = f"chaos_{os.getpid()}_{random.randrange(16**6):06x}"
        with lt._admin_connection(admin_url) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        self.database_url = urlsplit(admin_url)._replace(path=f"/{name}").geturl()
        shop_port = lt.free_port()
        self.shop = f"http://127.0.0.1:{shop_port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chaos_settings",
            "PYTHONPATH": os.pathsep.join([str(HERE), str(EXAMPLE), str(REPO)]),
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": self.services.redis_url,
            "SHOP_BASE_URL": self.shop,
            "SHOP_SECRETS_FILE": str(self.workdir / "secrets.json"),
            "CHAOS_SIGNAL_LOG": str(self.workdir / "signals.log"),
            "SHOP_ALIPAY_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        if self.args.refund_spacing is not None:
            self.env["CHAOS_REFUND_SPACING"] = str(self.args.refund_spacing)
        shm = Path("/dev/shm")  # noqa: S108 - a private mkdtemp folder inside it
        emulator_dir = Path(
            tempfile.mkdtemp(prefix="alipay-chaos-emulator-", dir=shm if shm.is_dir() else None)
        )
        self.emulator_dir = emulator_dir
        emulator_env = {**self.env, "PYTHONPATH": str(REPO)}
        emulator_env.pop("DJANGO_SETTINGS_MODULE", None)
        port = lt.free_port()
        child = self.children.start(
            "emulator",
            [PYTHON, "-m", "django_alipay.emulator", "--host", "127.0.0.1", "--port", str(port), "--quiet",
             "--seed", str(self.args.seed), "--db", str(emulator_dir / "emulator.sqlite3"),
             f"--control-token={lt.CONTROL_TOKEN}"],
            env=emulator_env, cwd=REPO,
        )  # fmt: skip
        self.core["emulator"] = child
        wait_for(
            "starting the emulator",
            lambda: "ready http" in child.log.read_text(errors="replace"),
            timeout=60,
            child=child,
        )
        self.emulator = f"http://127.0.0.1:{port}"
        # Notifications the shop did not take (PostgreSQL down, a dropped send) come again within seconds
        # instead of Alipay's minutes; a resent refund gets the original answer (an open point of Alipay's:
        # with the documented REPEATED_REFUNDMENT_REQUEST it would wait for the next day's transaction file).
        http_json(
            f"{self.emulator}/control/config",
            {
                "retry_schedule": [3.0, 5.0, 10.0, 15.0, 30.0, 60.0, 60.0],
                "notify_id_ttl": 600.0,
                "repeat_refund_answer": "original_result",
            },
        )
        migrate = subprocess.run(
            [PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=EXAMPLE, env=self.env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if migrate.returncode:
            raise RuntimeError(f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}")
        if str(HERE) not in sys.path:
            sys.path.insert(0, str(HERE))
        lt.setup_django({**self.env, "CHAOS_SCRIPT": "1"})
        logging.getLogger("django_alipay").addHandler(self.dispatch_warnings)
        merchant = lt.create_merchant(self.emulator)
        self.partner = merchant.partner
        self.merchant_id = merchant.pk
        self.notify_url = str(merchant.notify_url())
        from django.db import connection

        connection.close()
        self.core["gunicorn"] = self.children.start(
            "gunicorn",
            [PYTHON, "-m", "gunicorn", "example_project.wsgi:application", "--bind", self.shop.removeprefix("http://"),
             "--workers", "2", "--worker-class", "gthread", "--threads", "4", "--timeout", "60",
             "--graceful-timeout", "10", "--log-level", "warning"],
            env=self.env, cwd=EXAMPLE,
        )  # fmt: skip
        for name in ("w1", "w2"):
            self.start_worker(name)
        self.core["beat"] = self.children.start(
            "beat",
            [PYTHON, "-m", "celery", "-A", "example_project", "beat",
             "-s", str(self.workdir / "beat-schedule"), "--pidfile", str(self.workdir / "beat.pid"),
             "--loglevel", "INFO"],
            env=self.env, cwd=EXAMPLE,
        )  # fmt: skip
        wait_for(
            "starting the shop",
            lambda: urllib.request.urlopen(self.shop + "/", timeout=5).status == 200,  # noqa: S310
            timeout=60,
            child=self.core["gunicorn"],
        )
        for name in self.workers:
            self.wait_worker(name)

    def start_worker(self, name: str) -> None:
        """Start Celery worker ``name`` (again): threads, 2 at a time, every queue of the library."""
        self.worker_starts[name] += 1
        label = name if self.worker_starts[name] == 1 else f"{name}-{self.worker_starts[name]}"
        self.workers[name] = self.children.start(
            f"celery-{label}",
            [PYTHON, "-m", "celery", "-A", "example_project", "worker", "--hostname", f"{name}@chaos",
             "--queues", "celery,alipay,alipay_refunds", "--pool", "threads", "--concurrency", "2",
             "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env=self.env, cwd=EXAMPLE,
        )  # fmt: skip

    def wait_worker(self, name: str) -> None:
        from example_project.celery import app

        wait_for(
            f"starting Celery worker {name}",
            lambda: bool(app.control.ping(destination=[f"{name}@chaos"], timeout=1.0)),
            timeout=90,
            child=self.workers[name],
        )

    # --- load -------------------------------------------------------------------------------------------

    def start_payer(self) -> None:
        self.payer = threading.Thread(target=self._pay_loop, name="payer", daemon=True)
        self.payer.start()

    def _pay_loop(self) -> None:
        while not self.stop_paying.is_set():
            every = self.pay_every
            if every <= 0:
                self.stop_paying.wait(0.2)
                continue
            begun = time.monotonic()
            with self.paying:
                if self.pay_every > 0:
                    self.pay_once()
            self.stop_paying.wait(max(0.0, every - (time.monotonic() - begun)))

    def pay_once(self) -> None:
        """One payment as a buyer makes it; the order is noted once paid at the emulator."""
        try:
            number = lt.start_one_payment(self.emulator, self.partner)
            with self.lock:
                self.paid_orders.append(number)
        except Exception as exc:  # a payment that could not be made (PostgreSQL restarting): counted
            with self.lock:
                self.payment_failures.append((time.time(), f"{type(exc).__name__}: {exc}"[:200]))

    def pause_payments(self) -> None:
        """No new payment; returns once the one under way (if any) is paid at the emulator."""
        self.pay_every = 0.0
        with self.paying:
            pass

    def db(self, work: Callable[[], T], attempts: int = 30) -> T:
        """Run ``work`` with this thread's connection, again on a fresh one while the database restarts."""
        from django.db import Error, connection

        for attempt in range(attempts):
            try:
                return work()
            except Error:
                connection.close()
                if attempt == attempts - 1:
                    raise
                time.sleep(1.0)
        raise AssertionError("unreachable")

    def refundable_trades(self) -> list[Any]:
        from django_alipay.models import Trade

        trades = list(
            Trade.objects.filter(merchant_id=self.merchant_id, status__in=PAID).order_by("-id")[:200]
        )
        return [t for t in trades if t.refundable_amount > 0]

    def request_refunds(self, count: int) -> list[int]:
        """Ask for ``count`` partial refunds of paid trades (as the shop owner does); returns their ids."""
        from django_alipay.domain.errors import DomainError, RefundAmountExceeded
        from django_alipay.domain.refunds import request_refund

        ids: list[int] = []
        for _ in range(count):
            trades = self.db(self.refundable_trades)
            if not trades:
                break
            trade = self.rng.choice(trades[:40])
            fits = [a for a in AMOUNTS if a <= trade.refundable_amount]
            amount = self.rng.choice(fits) if fits else trade.refundable_amount
            key = f"chaos-{self.rng.getrandbits(64):016x}"
            try:
                refund = self.db(
                    lambda t=trade, a=amount, k=key: request_refund(t, a, reason="chaos", idempotency_key=k)
                )
                ids.append(refund.pk)
            except RefundAmountExceeded:
                self.refused_exceeding += 1
            except DomainError as exc:
                self.refused_other[type(exc).__name__] += 1
        return ids

    def over_refund(self) -> bool:
        """Ask for more than a trade has left: must be refused in the shop, nothing stored or sent."""
        from django_alipay.domain.errors import RefundAmountExceeded
        from django_alipay.domain.refunds import request_refund

        trades = self.db(self.refundable_trades)
        if not trades:
            return False
        trade = trades[0]
        try:
            self.db(
                lambda: request_refund(trade, trade.refundable_amount + Decimal("0.01"), reason="too much")
            )
        except RefundAmountExceeded:
            self.refused_exceeding += 1
            return True
        return False

    def faults(self, plan: dict[str, Any]) -> None:
        """Replace the emulator's fault plan; what the previous one fired is added to the run's count."""
        previous = http_json(f"{self.emulator}/control/faults")
        for name, rule in (previous.get("services") or {}).items():
            if rule and rule.get("fired"):
                self.faults_fired[name] = self.faults_fired.get(name, 0) + int(rule["fired"])
        fired = int((previous.get("notifications") or {}).get("fired") or 0)
        if fired:
            self.faults_fired["notifications"] = self.faults_fired.get("notifications", 0) + fired
        http_json(f"{self.emulator}/control/faults", {"seed": self.args.seed, **plan})

    def gateway_faults(self, since: float) -> dict[str, int]:
        """Faults the emulator applied to forex_refund and notify_verify calls since ``since``, by kind, from
        its call log (a latency fault is not named there: it applies to every call of its rule)."""
        found: Counter[str] = Counter()
        for service in ("forex_refund", "notify_verify"):
            calls = http_json(f"{self.emulator}/control/calls?service={service}&partner={self.partner}")[
                "calls"
            ]
            for call in calls:
                if call["fault"] and dt.datetime.fromisoformat(call["created_at"]).timestamp() >= since:
                    found[f"{service} {call['fault']}"] += 1
        return dict(sorted(found.items()))

    def fired_now(self) -> dict[str, int]:
        """Faults fired by the current plan so far."""
        current = http_json(f"{self.emulator}/control/faults")
        fired = {n: int(r.get("fired") or 0) for n, r in (current.get("services") or {}).items() if r}
        fired["notifications"] = int((current.get("notifications") or {}).get("fired") or 0)
        return {n: v for n, v in fired.items() if v}

    # --- waiting and measuring -------------------------------------------------------------------------

    def pending(self) -> tuple[int, int]:
        """(refunds without an outcome, orders paid at the emulator the shop does not know as paid)."""
        from django_alipay.enums import RefundStatus
        from django_alipay.models import Refund, Trade

        open_refunds = Refund.objects.filter(
            merchant_id=self.merchant_id, status__in=RefundStatus.pending()
        ).count()
        with self.lock:
            orders = list(self.paid_orders)
        known = set(
            Trade.objects.filter(
                merchant_id=self.merchant_id, out_trade_no__in=orders, status__in=PAID
            ).values_list("out_trade_no", flat=True)
        )
        return open_refunds, len(set(orders) - known)

    def wait_settled(self, timeout: float) -> tuple[float | None, tuple[int, int]]:
        """Wait until :meth:`pending` is (0, 0); the seconds it took (None at the timeout), what was left."""
        started = time.monotonic()
        left = (0, 0)
        while time.monotonic() - started < timeout:
            left = self.db(self.pending)
            if left == (0, 0):
                return time.monotonic() - started, left
            time.sleep(1.0)
        return None, left

    def refunds_of(self, ids: list[int]) -> list[Any]:
        from django_alipay.models import Refund

        return self.db(lambda: list(Refund.objects.filter(pk__in=ids).order_by("pk")))

    def out_after(self, ids: list[int], since: float) -> tuple[float | None, int]:
        """Seconds from ``since`` until the last of ``ids`` had its outcome (None if one has none), and how
        many of them succeeded."""
        refunds = self.refunds_of(ids)
        done = [r.completed_at.timestamp() for r in refunds if r.completed_at is not None]
        succeeded = sum(1 for r in refunds if r.status == "succeeded")
        if not ids or len(done) < len(refunds):
            return None, succeeded
        return max(done) - since, succeeded

    def log_count(self, text: str) -> int:
        """Lines with ``text`` in the workers' logs (every start of each), as django_alipay's own handler
        wrote them (the worker's root handler repeats each with a timestamp: not counted)."""
        total = 0
        for child in self.children.started:
            if child.name.startswith("celery-") or child.name == "beat":
                lines = child.log.read_text(errors="replace").splitlines()
                total += sum(1 for line in lines if text in line and not line.startswith("["))
        return total

    def alive(self) -> dict[str, bool]:
        """Whether each long-running process is still running (workers: the latest start of each)."""
        state = {name: child.process.poll() is None for name, child in self.core.items()}
        for name, child in self.workers.items():
            state[f"worker {name}"] = child.process.poll() is None
        return state

    # --- the audit ---------------------------------------------------------------------------------------

    def audit(self, scenario: Scenario) -> None:
        """Check the money and the effects of the whole run so far; append the checks to ``scenario``."""
        from django.db.models import Count, Q

        from django_alipay.enums import ProcessingOutcome, RefundStatus
        from django_alipay.models import Notification, Refund, Trade

        def add(name: str, ok: bool, detail: str) -> None:
            scenario.checks.append(Check(name, ok, detail))

        trades = self.db(lambda: list(Trade.objects.filter(merchant_id=self.merchant_id)))
        refunds = self.db(lambda: list(Refund.objects.filter(merchant_id=self.merchant_id)))
        by_trade: dict[int, list[Any]] = {}
        for refund in refunds:
            by_trade.setdefault(refund.trade_id, []).append(refund)
        emulator_trades = {
            t["out_trade_no"]: t
            for t in http_json(f"{self.emulator}/control/trades?partner={self.partner}")["trades"]
        }
        if len(emulator_trades) >= 500:  # the control API lists 500: ask for the rest one by one
            for trade in trades:
                if trade.out_trade_no not in emulator_trades:
                    found = http_json(
                        f"{self.emulator}/control/trades?partner={self.partner}&out_trade_no={trade.out_trade_no}"
                    )["trades"]
                    if found:
                        emulator_trades[trade.out_trade_no] = found[0]
        calls = sorted(
            http_json(f"{self.emulator}/control/calls?service=forex_refund&partner={self.partner}")["calls"],
            key=lambda c: c["id"],
        )

        # 1. refunds made + pending <= paid, per trade, at both ends.
        over, ledger_off = [], []
        for trade in trades:
            mine = by_trade.get(trade.pk, [])
            debiting = sum((r.amount for r in mine if r.status in RefundStatus.debiting()), Decimal(0))
            made = sum((r.amount for r in mine if r.status == RefundStatus.SUCCEEDED), Decimal(0))
            waiting = sum((r.amount for r in mine if r.status in RefundStatus.pending()), Decimal(0))
            if debiting > trade.amount:
                over.append(trade.out_trade_no)
            if made != trade.refunded_amount or waiting != trade.refund_pending_amount:
                ledger_off.append(trade.out_trade_no)
            theirs = emulator_trades.get(trade.out_trade_no)
            if theirs is not None and Decimal(theirs["refunded"]) > Decimal(theirs["total_fee"]):
                over.append(f"{trade.out_trade_no} (emulator)")
        pending_total = sum((r.amount for r in refunds if r.status in RefundStatus.pending()), Decimal(0))
        add(
            "Σ refunds (succeeded + pending/unknown) ≤ paid, per trade (shop and emulator)",
            not over and not ledger_off,
            f"{len(trades)} trades, {len(refunds)} refunds; over: {len(over)} {over[:3]}; trades whose "
            f"refunded/pending columns differ from their refunds: {len(ledger_off)} {ledger_off[:3]}; "
            f"pending now {pending_total} USD",
        )

        # 2. the emulator's ledger = the shop's, to the cent, for settled refunds.
        made_ids = Counter(c["params"].get("out_return_no", "") for c in calls if c["outcome"] == "T"
                           and "exact repeat" not in c["note"])  # fmt: skip
        mismatched = []
        for trade in trades:
            mine = by_trade.get(trade.pk, [])
            if any(r.status in RefundStatus.pending() for r in mine):
                continue
            theirs = emulator_trades.get(trade.out_trade_no)
            gateway = Decimal(theirs["refunded"]) if theirs else Decimal(0)
            if gateway != trade.refunded_amount:
                mismatched.append(f"{trade.out_trade_no}: emulator {gateway}, shop {trade.refunded_amount}")
        succeeded = [r for r in refunds if r.status == RefundStatus.SUCCEEDED]
        failed = [r for r in refunds if r.status == RefundStatus.FAILED]
        not_made = [r.pk for r in succeeded if made_ids[r.gateway_refund_id] != 1]
        failed_made = [r.pk for r in failed if made_ids[r.gateway_refund_id]]
        twice = [i for i, n in made_ids.items() if n > 1]
        strangers = set(made_ids) - {r.gateway_refund_id for r in refunds}
        shop_sum = sum((r.amount for r in succeeded), Decimal(0))
        emulator_sum = sum((Decimal(t["refunded"]) for t in emulator_trades.values()), Decimal(0))
        add(
            "emulator's ledger = shop's ledger to the cent (settled refunds)",
            not mismatched
            and not not_made
            and not failed_made
            and not twice
            and not strangers
            and (pending_total > 0 or shop_sum == emulator_sum),
            f"refunded: shop {shop_sum} USD in {len(succeeded)} refunds, emulator {emulator_sum} USD in "
            f"{len(made_ids)} refunds; trades that differ {len(mismatched)} {mismatched[:2]}; succeeded but "
            f"not made once at the emulator {not_made[:5]}; failed but made {failed_made[:5]}; made twice "
            f"{twice[:3]}; unknown to the shop {sorted(strangers)[:3]}; failed in the shop (nothing made) "
            f"{len(failed)}",
        )

        # 3. each notification (payment, refund) applied once.
        lines = (
            (self.workdir / "signals.log").read_text().split("\n")
            if (self.workdir / "signals.log").exists()
            else []
        )
        signals = Counter(tuple(line.split()[:2]) for line in lines if line.strip())
        paid = [t for t in trades if t.status in PAID]
        paid_twice = [t.out_trade_no for t in trades if signals[("trade_paid", t.out_trade_no)] > 1]
        paid_unsignalled = [t.out_trade_no for t in paid if signals[("trade_paid", t.out_trade_no)] != 1]
        refund_twice = [
            r.pk for r in refunds
            if signals[("refund_succeeded", str(r.pk))] + signals[("refund_failed", str(r.pk))] > 1
        ]  # fmt: skip
        refund_unsignalled = [r.pk for r in succeeded if signals[("refund_succeeded", str(r.pk))] != 1]
        applied = self.db(
            lambda: list(
                Notification.objects.filter(merchant_id=self.merchant_id, outcome=ProcessingOutcome.PROCESSED)
                .exclude(notify_id="")
                .values("notify_id")
                .annotate(n=Count("id"))
                .filter(n__gt=1)
                .values_list("notify_id", flat=True)
            )
        )
        stats = self.db(
            lambda: Notification.objects.filter(merchant_id=self.merchant_id).aggregate(
                total=Count("id"),
                processed=Count("id", filter=Q(outcome=ProcessingOutcome.PROCESSED)),
                duplicate=Count("id", filter=Q(outcome=ProcessingOutcome.DUPLICATE)),
            )
        )
        emulator_paid = {n for n, t in emulator_trades.items() if t["status"] in PAID}
        shop_paid = {t.out_trade_no for t in paid}
        add(
            "each notification applied once",
            not paid_twice
            and not paid_unsignalled
            and not refund_twice
            and not refund_unsignalled
            and not applied
            and emulator_paid == shop_paid,
            f"{len(shop_paid)} trades paid (emulator: {len(emulator_paid)}, differ: "
            f"{len(emulator_paid ^ shop_paid)}); trade_paid sent twice {len(paid_twice)}, not once for a "
            f"paid trade {len(paid_unsignalled)}; refund outcome signalled twice {len(refund_twice)}, "
            f"refund_succeeded not once {len(refund_unsignalled)}; notifications stored {stats['total']}, "
            f"processed {stats['processed']}, duplicates {stats['duplicate']}; notify_ids processed twice "
            f"{len(applied)}",
        )

        # 4. spacing of the partner's refund calls as the emulator received them.
        times = [dt.datetime.fromisoformat(c["created_at"]).timestamp() for c in calls]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        in_scenario = [b - a for a, b in itertools.pairwise(times) if scenario.started <= b <= time.time()]
        violations = sum(1 for c in calls if "refund interval violated" in c["note"])
        short = sum(1 for g in gaps if g < SPACING)
        scenario.facts["min gap (scenario)"] = min(in_scenario) if in_scenario else None
        scenario.facts["refund calls (scenario)"] = len(in_scenario) + (1 if in_scenario else 0)
        add(
            "refund calls ≥ 3 s apart at the emulator",
            short == 0 and violations == 0,
            f"{len(calls)} forex_refund calls in the run; min gap {_s(min(gaps) if gaps else None)} (this "
            f"scenario {_s(min(in_scenario) if in_scenario else None)} over {len(in_scenario)} gaps); gaps "
            f"under 3 s: {short}; refused by the emulator for the spacing: {violations}",
        )
        state = self.alive()
        add(
            "processes still running",
            all(state.values()),
            ", ".join(f"{n} {'up' if up else 'DOWN'}" for n, up in state.items())
            + f"; worker starts: {dict(self.worker_starts)}",
        )

    # --- scenarios ------------------------------------------------------------------------------------------

    def settle_into(self, scenario: Scenario, timeout: float) -> None:
        """Stop paying, wait until everything has an outcome; the audit follows, then payments resume."""
        self.pause_payments()
        seconds, left = self.wait_settled(timeout)
        scenario.facts["settled in"] = seconds
        scenario.checks.append(
            Check(
                "every refund has an outcome and every payment is known, after the scenario",
                seconds is not None,
                f"within {seconds:.1f} s" if seconds is not None else
                f"not within {timeout:.0f} s: {left[0]} refunds without an outcome, "
                f"{left[1]} payments unknown",
            )
        )  # fmt: skip

    def counts(self) -> dict[str, int]:
        from django_alipay.models import Refund, Trade

        return self.db(
            lambda: {
                "trades paid": Trade.objects.filter(merchant_id=self.merchant_id, status__in=PAID).count(),
                "refunds": Refund.objects.filter(merchant_id=self.merchant_id).count(),
            }
        )

    def run_scenario(self, scenario: Scenario, body: Callable[[Scenario], None]) -> None:
        print(f"\nchaos: scenario {scenario.key}: {scenario.title}", flush=True)
        before = self.counts()
        failures_before = len(self.payment_failures)
        refused_before = self.refused_exceeding
        scenario.started = time.time()
        try:
            body(scenario)
        except Exception as exc:
            traceback.print_exc()
            scenario.checks.append(Check("scenario ran", False, f"{type(exc).__name__}: {exc}"[:400]))
            self.faults({})
        after = self.counts()
        scenario.facts["trades paid"] = after["trades paid"] - before["trades paid"]
        scenario.facts["refunds requested"] = after["refunds"] - before["refunds"]
        scenario.facts["payments that could not be started"] = len(self.payment_failures) - failures_before
        scenario.facts["refunds refused as exceeding (in the shop)"] = self.refused_exceeding - refused_before
        self.pause_payments()
        self.audit(scenario)
        self.pay_every = 3.0
        self.total_faults = self.gateway_faults(0.0)
        scenario.ended = time.time()
        self.scenarios.append(scenario)
        print(render_scenario(scenario), flush=True)
        self.write_report()

    def scenario_faults(self, s: Scenario) -> None:
        seconds = 30.0 if self.quick else 90.0
        self.faults(
            {
                "services": {
                    "forex_refund": {
                        "latency": 0.4, "system_error_rate": 0.1, "http_502_rate": 0.1, "drop_rate": 0.1,
                    },
                    "notify_verify": {"latency": 0.1, "http_502_rate": 0.1, "drop_rate": 0.05},
                },
                "notifications": {"drop_rate": 0.1, "duplicate_rate": 0.15},
            }
        )  # fmt: skip
        self.pay_every = 1.2
        ids: list[int] = []
        deadline = time.monotonic() + seconds
        time.sleep(4.0)
        refused = self.over_refund()
        while time.monotonic() < deadline:
            ids += self.request_refunds(1)
            time.sleep(6.0)
        s.facts["calls and notifications the fault plan touched (latency: every call)"] = self.fired_now()
        s.facts["gateway faults by kind (emulator's call log)"] = self.gateway_faults(s.started)
        s.facts["over-refund refused"] = refused
        self.faults({})
        self.pay_every = 3.0
        self.settle_into(s, 240)
        if not refused:
            s.checks.append(
                Check("a refund of more than is left is refused in the shop", False, "not refused")
            )
        statuses = Counter(r.status for r in self.refunds_of(ids))
        s.facts["refund outcomes"] = dict(statuses)

    def scenario_redis(self, s: Scenario) -> None:
        burst = 3 if self.quick else 5
        before = self.request_refunds(burst)
        time.sleep(3.0)
        dispatch_before = self.dispatch_warnings.count
        sweeps_before = self.log_count("had no task sending it")
        self.services.stop_redis()
        down_at = time.time()
        during: list[int] = []
        waits: list[float] = []
        for _ in range(2):
            begun = time.monotonic()
            during += self.request_refunds(1)
            waits.append(time.monotonic() - begun)
        time.sleep(max(0.0, 5.0 - (time.time() - down_at)))
        self.services.start_redis()
        up_at = time.time()
        s.facts["Redis down for"] = up_at - down_at
        s.facts["request_refund while Redis was down took"] = waits
        after = self.request_refunds(2)
        self.settle_into(s, 240)
        s.facts["dispatch warnings (Redis down)"] = self.dispatch_warnings.count - dispatch_before
        s.facts["sweeper hand-overs"] = self.log_count("had no task sending it") - sweeps_before
        for label, ids in (
            ("queued before", before),
            ("requested while down", during),
            ("requested after", after),
        ):
            seconds, ok = self.out_after(ids, up_at)
            s.facts[f"{label}: {len(ids)} refunds, succeeded {ok}, last out after the restart"] = seconds
        from example_project.celery import app

        answered = app.control.ping(timeout=2.0) or []
        names = sorted(name for reply in answered for name in reply)
        unrecoverable = self.log_count("Unrecoverable error")
        s.checks.append(
            Check(
                "both workers and beat carried on through the Redis restart",
                self.worker_starts == Counter({"w1": 1, "w2": 1}) and len(names) == 2 and unrecoverable == 0
                and all(self.alive().values()),
                f"workers answering ping: {names}; 'Unrecoverable error' in the logs: {unrecoverable}",
            )
        )  # fmt: skip

    def scenario_kill(self, s: Scenario) -> None:
        from example_project.celery import app

        from django_alipay.enums import RefundStatus
        from django_alipay.models import Refund

        self.faults({"services": {"forex_refund": {"latency": 2.0}}})
        ids = self.request_refunds(3 if self.quick else 4)
        sweeps_before = self.log_count("had no task sending it")
        victim, killed_at, worker = None, 0.0, ""
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            claimed = self.db(
                lambda: list(
                    Refund.objects.filter(
                        pk__in=ids, status=RefundStatus.SUBMITTED, attempts__gte=1
                    ).values_list("pk", flat=True)
                )
            )
            if not claimed:
                time.sleep(0.1)
                continue
            active = app.control.inspect(timeout=1.0).active() or {}
            for host, tasks in active.items():
                for task in tasks:
                    args = task.get("args")
                    refund_id = args[0] if isinstance(args, list | tuple) and args else None
                    if refund_id in claimed and host.split("@")[0] in self.workers:
                        worker, victim = host.split("@")[0], refund_id
            if victim is not None:
                child = self.workers[worker]
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait(timeout=10)
                killed_at = time.time()
        if victim is None:
            raise RuntimeError("no refund call in flight was seen at a worker within 60 s")
        s.facts["killed"] = (
            f"worker {worker} (SIGKILL to its process group) during the call of refund {victim}"
        )
        self.faults({})
        self.start_worker(worker)
        self.wait_worker(worker)
        self.settle_into(s, 240)
        seconds, _ = self.out_after([victim], killed_at)
        s.facts["killed refund: outcome after the kill"] = seconds
        others = [i for i in ids if i != victim]
        s.facts["its burst: last outcome after the kill"] = self.out_after(others, killed_at)[0]
        s.facts["sweeper hand-overs"] = self.log_count("had no task sending it") - sweeps_before
        [refund] = self.refunds_of([victim])
        calls = http_json(f"{self.emulator}/control/calls?service=forex_refund&partner={self.partner}")[
            "calls"
        ]
        mine = [c for c in calls if c["params"].get("out_return_no") == refund.gateway_refund_id]
        s.facts["gateway calls for the killed refund"] = [f"{c['outcome']} {c['note'][:40]}" for c in mine]
        made = sum(1 for c in mine if c["outcome"] == "T" and "exact repeat" not in c["note"])
        s.checks.append(
            Check(
                "the refund in flight when its worker was killed succeeded, made once at the gateway",
                refund.status == RefundStatus.SUCCEEDED and made == 1,
                f"status {refund.status}, {refund.attempts} gateway calls by the shop, made {made} time(s)",
            )
        )

    def scenario_postgresql(self, s: Scenario) -> None:
        from django.db import connections

        self.pay_every = 1.5
        time.sleep(3.0)
        ids = self.request_refunds(3)
        time.sleep(1.5)
        failures = len(self.payment_failures)
        with self.lock:
            orders_before = len(self.paid_orders)
        restarted_at = time.time()
        down = float(self.args.pg_down)
        if down > 0:
            self.services.pg_ctl("stop")
            try:
                s.facts["a notification POSTed to the shop while PostgreSQL is down: answer"] = (
                    self.notify_probe()
                )
                time.sleep(max(0.0, down - (time.time() - restarted_at)))
            finally:
                self.services.pg_ctl("start")
            s.facts["PostgreSQL down for (pg_ctl stop -m fast, then start)"] = time.time() - restarted_at
        else:
            s.facts["pg_ctl restart -m fast took"] = self.services.pg_ctl("restart")
        connections.close_all()
        time.sleep(3.0)
        ids += self.request_refunds(2)
        time.sleep(5.0)
        self.pay_every = 3.0
        self.settle_into(s, 240)
        s.facts["payments that failed around the restart"] = len(self.payment_failures) - failures
        s.facts["refunds: last outcome after the restart"] = self.out_after(ids, restarted_at)[0]
        with self.lock:
            orders = self.paid_orders[orders_before:]
        refused = 0
        for number in orders:
            found = http_json(f"{self.emulator}/control/notifications?out_trade_no={number}")["deliveries"]
            refused += sum(1 for d in found if d["outcome"] != "acknowledged")
        s.facts[f"notification sends not acknowledged (resent later), {len(orders)} trades paid since"] = (
            refused
        )

    def notify_probe(self) -> str:
        """POST a (meaningless) notification to the shop's notify URL: what does it answer?"""
        request = urllib.request.Request(  # noqa: S310 - the shop, on 127.0.0.1
            self.notify_url,
            data=b"notify_id=chaos-probe&notify_type=trade_status_sync",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback only
                return f"{answer.status} {answer.read(60)!r}"
        except urllib.error.HTTPError as exc:
            return f"{exc.code} {exc.read(60)!r} Retry-After: {exc.headers.get('Retry-After')}"
        except OSError as exc:
            return f"{type(exc).__name__}"

    def scenario_slow(self, s: Scenario) -> None:
        self.pay_every = 0.0
        self.faults({"services": {"forex_refund": {"latency": 2.5}}})
        begun = time.time()
        ids = self.request_refunds(4 if self.quick else 8)
        self.settle_into(s, 240)
        s.facts["refund calls slowed by 2.5 s"] = self.fired_now().get("forex_refund", 0)
        self.faults({})
        s.facts["burst: last outcome after the first request"] = self.out_after(ids, begun)[0]

    # --- report ------------------------------------------------------------------------------------------

    def write_report(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "report.md").write_text(render(self))


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


def _fact(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f} s" if value < 10_000 else f"{value:.0f}"
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return ", ".join(f"{v:.2f} s" for v in value)
    return str(value)


def render_scenario(scenario: Scenario) -> str:
    lines = [
        f"### {scenario.key}. {scenario.title} — {'pass' if scenario.ok else '**FAIL**'}",
        "",
        scenario.what,
        "",
        f"Duration {scenario.ended - scenario.started:.0f} s (until settled and audited).",
        "",
        "| measured | value |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_fact(value)} |" for name, value in scenario.facts.items()]
    lines += ["", "| audit | result | detail |", "|---|---|---|"]
    lines += [f"| {c.name} | {'ok' if c.ok else '**FAILED**'} | {c.detail} |" for c in scenario.checks]
    return "\n".join(lines) + "\n"


def render(chaos: Chaos) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in chaos.versions.items())
    lines = [
        "# Chaos run of the example shop",
        "",
        f"Started {chaos.started_at:%Y-%m-%d %H:%M} UTC{' (--quick)' if chaos.quick else ''}; {versions}.",
        "",
        "gunicorn 2 × 4 threads, Celery workers w1 and w2 (threads, concurrency 2, prefetch 1) and beat (the "
        "library's schedule), PostgreSQL and Redis of scripts/with-services, the emulator standalone "
        "(notification resends after 3, 5, 10 ... s; a resent refund gets its original answer). Gateway "
        f"faults in all (emulator's call log): {chaos.total_faults or 'none'}; calls and notifications "
        f"touched by a fault plan (a latency rule touches every call): {chaos.faults_fired or 'none'}.",
        "",
        "| scenario | result | trades paid | refunds requested | settled in | min gap between refund calls |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for s in chaos.scenarios:
        lines.append(
            f"| {s.key}. {s.title} | {'pass' if s.ok else '**FAIL**'} | {s.facts.get('trades paid')} | "
            f"{s.facts.get('refunds requested')} | {_fact(s.facts.get('settled in'))} | "
            f"{_fact(s.facts.get('min gap (scenario)'))} |"
        )
    lines.append("")
    lines += [render_scenario(s) for s in chaos.scenarios]
    lines.append(
        "Process logs beside this report: emulator.log, gunicorn.log, celery-*.log, beat.log, signals.log."
    )
    return "\n".join(lines) + "\n"


SCENARIOS: list[tuple[str, str, str, str]] = [
    (
        "a",
        "steady payments and refunds under gateway faults",
        "Payments every 1.2 s and a refund every 6 s while the emulator adds 0.4 s to every forex_refund and "
        "answers 10% SYSTEM_ERROR, 10% HTTP 502 (after making the refund), 10% dropped connections (after "
        "making it); notify_verify 0.1 s slower with 10% 502 and 5% dropped; 10% of notifications dropped "
        "(resent) and 15% sent twice. One refund of more than a trade has left is asked for. Then the faults "
        "are cleared and the run waits for every outcome.",
        "scenario_faults",
    ),
    (
        "b",
        "Redis restarted under the running workers",
        "A burst of refunds is queued; 3 s later Redis is shut down without saving (its queues are gone, as "
        "in a restart without persistence), two refunds are requested while it is down (their dispatch "
        "fails: they stay requested), Redis is started again after 5 s on the same port, and two more are "
        "requested. The workers must carry on; the sweeper sends what the broker lost.",
        "scenario_redis",
    ),
    (
        "c",
        "a worker SIGKILLed mid-refund",
        "The gateway answers refunds 2 s late; a few refunds are requested; as soon as one is claimed, the "
        "worker running its call (found with celery inspect) is SIGKILLed with its whole process group, and "
        "started again as a supervisor would. The killed call reached the emulator and was made there; the "
        "shop must learn its outcome from a resend under the same gateway id, never make it twice.",
        "scenario_kill",
    ),
    (
        "d",
        "PostgreSQL restarted mid-run",
        "Payments every 1.5 s, refunds requested, then PostgreSQL is stopped (`pg_ctl stop -m fast`: every "
        "connection of the shop, the workers and beat is cut) and started again 5 s later; a notification "
        "is POSTed to the shop while it is down; more refunds after it. Notifications the shop could not "
        "take are resent by the emulator.",
        "scenario_postgresql",
    ),
    (
        "e",
        "slow gateway, two workers: the spacing",
        "Every forex_refund takes 2.5 s at the emulator; a burst of refunds is requested at once and both "
        "workers send them. Alipay counts the 3 s from when it received the previous refund, so the shop "
        "must space calls from the previous answer.",
        "scenario_slow",
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter scenarios (about 4 minutes in all)")
    parser.add_argument(
        "--only", default="abcde", help="the scenarios to run, by letter, in order (default abcde)"
    )
    parser.add_argument(
        "--pg-down",
        type=float,
        default=5.0,
        help="seconds PostgreSQL stays stopped in scenario d (default 5; 0: a plain pg_ctl restart)",
    )
    parser.add_argument(
        "--refund-spacing",
        type=float,
        default=None,
        help="the shop's ALIPAY['REFUND_SPACING'] instead of its own 3 s: below 3 the spacing audit must "
        "fail (a check of the audit itself)",
    )
    parser.add_argument("--seed", type=int, default=19, help="seed of the fault plans and the refund choices")
    parser.add_argument("--out", type=Path, default=REPO / "artifacts" / "chaos", help="report folder")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the shop's database at the end")
    return parser


def run(args: argparse.Namespace, children: Any, workdir: Path, out: Path) -> int:
    chaos = Chaos(args, children, workdir, out)
    clock = time.monotonic()
    try:
        print("chaos: starting the emulator, the shop, two workers and beat ...", flush=True)
        chaos.setup()
        for _ in range(10):  # trades to refund from the start
            chaos.pay_once()
        chaos.wait_settled(120)
        chaos.pay_every = 3.0
        chaos.start_payer()
        print(f"chaos: ready after {time.monotonic() - clock:.0f} s", flush=True)
        for key, title, what, method in SCENARIOS:
            if key in args.only:
                chaos.run_scenario(Scenario(key, title, what), getattr(chaos, method))
        chaos.stop_paying.set()
        if chaos.payer is not None:
            chaos.payer.join(timeout=60)
        chaos.faults({})
    finally:
        chaos.stop_paying.set()
        if "django.db" in sys.modules:
            from django.db import connections

            with contextlib.suppress(Exception):
                connections.close_all()
        children.stop_all()
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob("*.log"):  # an earlier run's logs (a worker restarted then, not now)
            stale.unlink()
        for child in children.started:
            with contextlib.suppress(OSError):
                shutil.copy(child.log, out / f"{child.name}.log")
        with contextlib.suppress(OSError):
            shutil.copy(workdir / "signals.log", out / "signals.log")
        if getattr(chaos, "emulator_dir", None):
            shutil.rmtree(chaos.emulator_dir, ignore_errors=True)
        if chaos.database_url and not args.keep_db:
            with contextlib.suppress(Exception):
                lt.drop_database(chaos.services.admin_url, chaos.database_url)
    chaos.write_report()
    passed = bool(chaos.scenarios) and all(s.ok for s in chaos.scenarios)
    summary = ", ".join(f"{s.key} {'pass' if s.ok else 'FAIL'}" for s in chaos.scenarios)
    print(f"\nchaos: {'PASS' if passed else 'FAIL'} ({summary}) in {time.monotonic() - clock:.0f} s; "
          f"report in {out / 'report.md'}")  # fmt: skip
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    """Run the chaos scenarios; 0 when every audit passed, 1 when one failed, 2 when it could not run."""
    args = build_parser().parse_args(argv)
    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
    if missing:
        print(f"error: {' and '.join(missing)} not set: run through scripts/with-services (make chaos)",
              file=sys.stderr)  # fmt: skip
        return 2
    out = args.out if args.out.is_absolute() else REPO / args.out
    workdir = Path(tempfile.mkdtemp(prefix="alipay-chaos-"))
    children = lt.Children(workdir)
    try:
        with lt.terminate_as_interrupt():
            return run(args, children, workdir, out)
    except KeyboardInterrupt:
        print("chaos: interrupted; stopping everything", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        return 2
    finally:
        children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
