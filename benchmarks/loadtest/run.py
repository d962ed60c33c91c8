"""Load-test django_alipay's notify endpoint in the example shop under gunicorn, and report against the goals.

Run from the repository root through ``scripts/with-services`` (a throwaway PostgreSQL and Redis)::

    scripts/with-services .venv/bin/python benchmarks/loadtest/run.py    # 100/s for 60 s, then 500/s 10 s
    scripts/with-services .venv/bin/python benchmarks/loadtest/run.py --duration 10 --spike 3 --rate 50

(``make loadtest`` runs the first line; ``LOADTEST_ARGS`` passes flags, e.g. ``--notify-max-in-flight none``
to compare with a shop that never sheds.) What it does, in order:

1. creates a fresh PostgreSQL database beside DATABASE_URL's and migrates the example shop into it;
2. starts the gateway emulator standalone (``python -m django_alipay.emulator``, its own SQLite database) on
   a free loopback port (one process: its run-time fault plan then applies to every call), with notify_ids
   verifiable for ``--notify-id-ttl`` (1 h) and no resends of its own;
3. creates the shop's merchant (RSA2 keys generated here) pointed at that emulator, registers its public key
   there and checks the credentials with a signed query;
4. places orders in the shop and starts their payments with ``create_trade`` (through the shop's own
   ``place_order``/``start_payment``), opens each signed cashier URL at the emulator (which creates the trade
   there) and has the emulator's buyer pay it (``control/pay``). The emulator's notifier then sends the
   signed ``trade_status_sync`` notification, with a real notify_id, to a capture server of this script
   (the trades' notify_url), which keeps the bytes and does not acknowledge them;
5. starts the shop under gunicorn (gthread) with ``loadtest_settings``: the example project's settings
   (``ALIPAY["NOTIFY_MAX_IN_FLIGHT"]`` 16 per process, CONN_MAX_AGE 60 s) unless ``--notify-max-in-flight`` /
   ``--conn-max-age`` say otherwise, plus a probe app that logs signals and each notify request's timing.
   Starts a Celery worker (Redis broker), warms the shop up with a few notifications, sets the fault plan
   ``{"services": {"notify_verify": {"latency": 0.15}}}`` and checks that notify_verify answers ``true``
   after it, then runs Locust headless (``locustfile.py``): the captured notifications are replayed to the
   shop's notify URL at a fixed arrival rate, 20% of requests re-sending an already sent notify_id;
6. settles what the load left, as Alipay and a shop would: every request the shop *shed* (503 with
   ``Retry-After``: past the in-flight limit, nothing stored) is POSTed again with its exact bytes, paced at
   ``--resend-rate`` (50/s), round after round until each is answered 200 ``success`` (Alipay's resend
   schedule, compressed from minutes to a second between rounds); then every stored notification left "try
   later" (503, flag ``verify_pending``) is handed to the Celery worker
   (``django_alipay.tasks.process_notification``), and the run waits for them to settle;
7. checks the database and the accounting (shed + stored = answered: each request's own answer, the
   shop's probe line and its "answered 503 ... NOTIFY_MAX_IN_FLIGHT" warnings agree on what was shed, and
   each notify_id has exactly one row per request that was not shed; every notified trade in its right final
   state, one applied payment per trade, duplicates flagged, signals sent once), writes
   ``artifacts/loadtest/report.md`` with Locust's CSV and HTML beside it, prints the report, and exits 1 when
   a goal is missed (2 when the run could not be made).

Latency is reported for every request, for those answered 200 and for the shed 503s apart: a shed answer is
quick by design, so the goal "p99 of all requests <= 1 s" is shown with the 200-only p99 beside it. The
probe's timestamps split each request's time into the part before Django (connection, gunicorn's queue) and
the part inside it.

Every process it starts is stopped at the end, on errors and on Ctrl-C too; the database is dropped.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psutil

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXAMPLE = REPO / "example_project"
PYTHON = sys.executable
#: Each notification is for one gift card: 5.00 USD (33.23 CNY at the emulator's rate).
PRODUCT_SLUG = "gift-card"
#: The emulator's default buyer has 1,000,000.00 CNY: about 30,000 gift cards.
MAX_TRADES = 25_000


# --- processes ----------------------------------------------------------------------------------------------


@dataclass
class Child:
    """A process this script started (in its own process group), with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path


class Children:
    """Starts processes in their own process groups and stops exactly those, in reverse order."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[Child] = []

    def start(self, name: str, command: list[str], *, env: dict[str, str], cwd: Path) -> Child:
        """Start ``command``; its stdout and stderr go to ``<logs>/<name>.log``."""
        log = self.logs / f"{name}.log"
        handle = log.open("wb")
        try:
            process = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            handle.close()
        child = Child(name, process, log)
        self.started.append(child)
        return child

    def stop(self, child: Child, timeout: float = 15.0) -> None:
        """SIGTERM to the child's process group, SIGKILL after ``timeout`` seconds."""
        process = child.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        # Leftovers of the group (a worker that outlived its master) go too: the group is ours alone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        """Stop every child, newest first."""
        for child in reversed(self.started):
            try:
                self.stop(child)
            except Exception as exc:  # keep stopping the others
                print(f"loadtest: could not stop {child.name}: {exc}", file=sys.stderr)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], *, timeout: float, child: Child | None = None) -> None:
    """Poll ``check`` until it is true; RuntimeError after ``timeout`` s or when ``child`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.process.poll() is not None:
            tail = child.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{child.name} exited ({child.process.returncode}) while {what}:\n{tail}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:.0f} s {what}")


#: This run's emulator control token (passed to the emulator with --control-token; control/ POSTs need it).
CONTROL_TOKEN = secrets.token_urlsafe(24)
CONTROL_HEADERS = {"X-Emulator-Token": CONTROL_TOKEN}


def http_json(url: str, data: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    """GET (or POST ``data`` as JSON to) ``url`` and decode the JSON answer."""
    body = None if data is None else json.dumps(data).encode()
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"loopback URLs only: {url}")
    headers = {"Content-Type": "application/json", **CONTROL_HEADERS}
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


# --- the capture server (the trades' notify_url during setup) ----------------------------------------------


@dataclass
class Captured:
    """A notification as the emulator sent it."""

    out_trade_no: str
    notify_id: str
    trade_no: str
    body: str
    content_type: str
    #: Epoch seconds the emulator sent it (its notify_id's age counts from then).
    received: float = 0.0


class CaptureServer:
    """Receives the emulator's notifications during setup and keeps them; never answers ``success``."""

    def __init__(self) -> None:
        self.items: dict[str, Captured] = {}
        self.sends = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                params = dict(parse_qsl(raw.decode("ascii"), keep_blank_values=True))
                item = Captured(
                    params.get("out_trade_no", ""),
                    params.get("notify_id", ""),
                    params.get("trade_no", ""),
                    raw.decode("ascii"),
                    self.headers.get("Content-Type", "application/x-www-form-urlencoded"),
                    time.time(),
                )
                with owner.lock:
                    owner.sends += 1
                    # The first send is kept: a later resend would carry a new notify_id.
                    owner.items.setdefault(item.out_trade_no, item)
                answer = b"captured, not acknowledged"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CaptureServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        """How many trades' notifications were captured."""
        with self.lock:
            return len(self.items)


# --- configuration ------------------------------------------------------------------------------------------


#: What --notify-max-in-flight passes to the shop for "no limit".
NO_LIMIT = "none"


def in_flight_limit(text: str) -> str:
    """``--notify-max-in-flight``: a positive integer, or 0/none for no limit (as the env var carries it)."""
    value = text.strip().lower()
    if value in ("0", NO_LIMIT):
        return NO_LIMIT
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"a positive integer, or 0 or none for no limit: {text!r}")
    return str(int(value))


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    load = parser.add_argument_group("load profile")
    load.add_argument("--rate", type=float, default=100.0, help="notifications per second (default 100)")
    load.add_argument("--duration", type=float, default=60.0, help="seconds at --rate (default 60)")
    load.add_argument("--spike-factor", type=float, default=5.0, help="spike rate = factor x rate (5)")
    load.add_argument("--spike", type=float, default=10.0, help="seconds of the spike (default 10; 0: none)")
    load.add_argument(
        "--duplicates", type=float, default=0.2, help="share of requests re-sending a notify_id (0.2)"
    )
    load.add_argument("--warmup", type=int, default=40, help="notifications sent before the run (40)")
    load.add_argument(
        "--pool-seconds",
        type=float,
        default=10.0,
        help="Locust users = rate x this: how long answers may take before arrivals fall behind (10: the "
        "whole 10 s spike can be in flight at once)",
    )
    load.add_argument("--seed", type=int, default=1, help="seed of the duplicate choice and the emulator")
    shop = parser.add_argument_group("system under test")
    shop.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2 = nproc)")
    shop.add_argument("--threads", type=int, default=32, help="threads per gunicorn worker (default 32)")
    shop.add_argument(
        "--conn-max-age",
        type=int,
        default=None,
        help="database CONN_MAX_AGE of the shop in seconds (default: the example project's own, 60; pass 0 "
        "for a new connection per request)",
    )
    shop.add_argument(
        "--notify-max-in-flight",
        type=in_flight_limit,
        default=None,
        metavar="N",
        help="ALIPAY['NOTIFY_MAX_IN_FLIGHT'] of the shop, per process (default: the example project's own, "
        "16; 0 or 'none': no limit, nothing is shed)",
    )
    shop.add_argument("--celery-concurrency", type=int, default=4, help="Celery worker threads (default 4)")
    shop.add_argument(
        "--verify-latency", type=float, default=0.15, help="seconds added to each notify_verify (0.15)"
    )
    shop.add_argument(
        "--fault-plan",
        type=json.loads,
        default=None,
        help="the emulator's whole fault plan as JSON, instead of the one --verify-latency makes (e.g. "
        '\'{"services": {"notify_verify": {"latency": 0.15, "drop_rate": 1.0, "limit": 300}}}\' to make the '
        "shop answer 503 for a while)",
    )
    shop.add_argument(
        "--notify-id-ttl",
        type=float,
        default=3600.0,
        help="seconds a notify_id stays verifiable at the emulator (its default is 60; the notifications "
        "are made minutes before they are replayed)",
    )
    goals = parser.add_argument_group("goals")
    goals.add_argument("--p99", type=float, default=1.0, help="p99 response time goal in seconds (1.0)")
    goals.add_argument(
        "--settle-timeout",
        type=float,
        default=600.0,
        help="seconds for each part of the settle phase: the resends of shed requests, then Celery (600)",
    )
    goals.add_argument(
        "--resend-rate", type=float, default=50.0, help="shed requests re-sent per second after the load (50)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "artifacts" / "loadtest", help="report folder")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the test database at the end")
    return parser


@dataclass
class Phase:
    """One constant-rate part of the load."""

    name: str
    rate: float
    seconds: float

    @property
    def slots(self) -> int:
        """Arrivals in this phase."""
        return math.ceil(self.rate * self.seconds - 1e-9)


def phases_of(args: argparse.Namespace) -> list[Phase]:
    """The load profile of the command line."""
    phases = [Phase("steady", args.rate, args.duration)]
    if args.spike > 0 and args.spike_factor > 0:
        phases.append(Phase("spike", args.rate * args.spike_factor, args.spike))
    return phases


# --- database -----------------------------------------------------------------------------------------------


def _admin_connection(url: str) -> Any:
    import psycopg

    parts = urlsplit(url)
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname=(parts.path.lstrip("/") or "postgres"),
        autocommit=True,
    )


def create_database(url: str) -> str:
    """Create a fresh database on DATABASE_URL's server; returns its URL."""
    name = f"loadtest_{os.getpid()}_{secrets.token_hex(3)}"
    with _admin_connection(url) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def drop_database(admin_url: str, url: str) -> None:
    """Drop the test database (after ending any session still connected to it)."""
    name = urlsplit(url).path.lstrip("/")
    with _admin_connection(admin_url) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
            "pg_backend_pid()",
            (name,),
        )
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')


# --- CPU accounting -----------------------------------------------------------------------------------------


def _tree_cpu(pid: int, *, children: bool = True) -> float | None:
    """CPU seconds (user + system) of a process and its live descendants; None once it has exited."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)] if children else [root]
    except psutil.Error:
        return None
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
            if process.pid != os.getpid():
                # What its exited children used (gunicorn workers that were replaced, for one).
                total += times.children_user + times.children_system
    return total


def listener_pid(url: str) -> int | None:
    """The pid of the process listening on the port of ``url`` (our PostgreSQL, our Redis), if visible."""
    port = urlsplit(url).port
    with contextlib.suppress(psutil.Error, OSError):
        for connection in psutil.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
                return int(connection.pid)
    return None


def _busy_cpu() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


#: The kinds of the machine's busy CPU time reported (steal: taken by the hypervisor for other guests).
MACHINE_SPLIT = ("user", "nice", "system", "irq", "softirq", "steal")


def _machine_split() -> dict[str, float]:
    times = psutil.cpu_times()
    return {name: float(getattr(times, name, 0.0)) for name in MACHINE_SPLIT}


class CpuMeter:
    """CPU seconds used by each child tree and by the whole machine between ``start`` and ``stop``."""

    def __init__(self, children: dict[str, int]) -> None:
        self.children = children
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}
        #: The machine's busy CPU seconds by kind (user, system, softirq, steal ...).
        self.split: dict[str, float] = {}
        self._split_before: dict[str, float] = {}
        self.seconds = 0.0
        self._started = 0.0

    def _read(self) -> dict[str, float | None]:
        now: dict[str, float | None] = {name: _tree_cpu(pid) for name, pid in self.children.items()}
        now["this script"] = _tree_cpu(os.getpid(), children=False)
        now["machine"] = _busy_cpu()
        return now

    def start(self) -> None:
        """Take the first reading."""
        self.before = {name: value or 0.0 for name, value in self._read().items()}
        self._split_before = _machine_split()
        self._started = time.monotonic()

    def sample(self) -> None:
        """Take a later reading; a process that has exited keeps the figure of its last reading."""
        for name, value in self._read().items():
            if value is not None:
                self.used[name] = max(0.0, value - self.before.get(name, 0.0))
        now = _machine_split()
        self.split = {name: max(0.0, now[name] - self._split_before.get(name, 0.0)) for name in now}
        self.seconds = time.monotonic() - self._started

    def split_text(self) -> str:
        """The machine's busy time by kind, in cores (kinds under 0.005 cores left out)."""
        seconds = max(1e-9, self.seconds)
        kinds = [
            f"{kind} {used / seconds:.2f}" for kind, used in self.split.items() if used >= 0.005 * seconds
        ]
        return ", ".join(kinds) or "none"


# --- setup: merchant and trades -----------------------------------------------------------------------------


def setup_django(env: dict[str, str]) -> None:
    """Configure Django in this process with the shop's (load test) settings."""
    os.environ.update(env)
    for path in (str(REPO), str(EXAMPLE), str(HERE)):
        if path not in sys.path:
            sys.path.insert(0, path)
    import django

    django.setup()


def create_merchant(emulator: str) -> Any:
    """The shop's merchant, configured against the standalone emulator at ``emulator`` (its base URL)."""
    from django.conf import settings

    from django_alipay.domain.merchants import check_credentials
    from django_alipay.enums import Environment
    from django_alipay.models import Merchant
    from django_alipay.protocol import keys
    from django_alipay.testing.emulator import new_partner_id

    private = keys.generate_private_key("RSA2")
    alipay_key = http_json(f"{emulator}/control/keys")["keys"]["RSA2"]["public_key_pem"]
    merchant = Merchant.objects.create(
        name=settings.SHOP_MERCHANT_NAME,
        partner=new_partner_id(),
        environment=Environment.EMULATOR,
        gateway_url=f"{emulator}/gateway.do",
        sign_type="RSA2",
        currency="USD",
        private_key=keys.private_key_pem(private),
        public_key=keys.public_key_one_line(private),
        alipay_public_key=alipay_key,
    )
    http_json(
        f"{emulator}/control/partners",
        {
            "partner": merchant.partner,
            "merchant_public_key": keys.public_key_pem(private),
            "sign_types": ["RSA2"],
        },
    )
    report = check_credentials(merchant)
    if not report.ok:
        raise RuntimeError(
            f"the merchant does not work against the emulator: {report.problem}: {report.message}"
        )
    return merchant


def start_one_payment(emulator: str, partner: str) -> str:
    """Place one order in the shop, start its payment, open the cashier URL, pay: returns the order number."""
    import requests
    from django.db import connection
    from shop.models import Order
    from shop.models import Product as ShopProduct
    from shop.payments import place_order, start_payment

    try:
        product = ShopProduct.objects.get(slug=PRODUCT_SLUG)
        order = place_order([(product, 1)], Order.Channel.WEB, prefix="LOAD")
        start = start_payment(order)
        if start.problem or not start.url:
            raise RuntimeError(f"order {order.number}: payment did not start: {start.problem}")
        with requests.Session() as session:
            # The signed cashier URL: the emulator checks the signature and creates its trade.
            page = session.get(start.url, allow_redirects=False, timeout=30)
            if page.status_code not in (200, 302):
                raise RuntimeError(f"order {order.number}: cashier answered {page.status_code}")
            paid = session.post(
                f"{emulator}/control/pay",
                json={"partner": partner, "out_trade_no": order.number},
                headers=CONTROL_HEADERS,
                timeout=30,
            )
            if paid.status_code != 200 or paid.json().get("trade_status") != "TRADE_FINISHED":
                raise RuntimeError(
                    f"order {order.number}: control/pay answered {paid.status_code} {paid.text}"
                )
        return str(order.number)
    finally:
        connection.close()


def create_trades(
    count: int, emulator: str, partner: str, capture: CaptureServer, threads: int = 6
) -> list[str]:
    """Create and pay ``count`` trades; wait until the emulator has sent each one's notification."""
    numbers: list[str] = []
    started = time.monotonic()
    pool = concurrent.futures.ThreadPoolExecutor(threads)
    try:
        futures = [pool.submit(start_one_payment, emulator, partner) for _ in range(count)]
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            numbers.append(future.result())
            if done % 1000 == 0:
                rate = done / (time.monotonic() - started)
                print(
                    f"  {done}/{count} trades paid ({rate:.0f}/s); {capture.count()} notifications captured"
                )
    finally:
        # On Ctrl-C or an error the trades not started yet are dropped, not waited for.
        pool.shutdown(wait=True, cancel_futures=True)
    wanted = set(numbers)
    wait_for(
        f"waiting for the emulator's {count} notifications",
        lambda: wanted <= set(capture.items),
        timeout=max(120.0, count / 20),
    )
    return numbers


# --- the run ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeLine:
    """One notify request as the shop's probe saw it (loadtest_probe.py)."""

    tag: str
    status: int
    shed: bool
    queries: int
    db_seconds: float
    connects: int
    started: float
    seconds: float

    @classmethod
    def parse(cls, line: str) -> ProbeLine:
        """A line of LOADTEST_QUERY_LOG."""
        tag, status, shed, queries, db_seconds, connects, started, seconds = line.split()
        return cls(
            tag, int(status), shed == "1", int(queries), float(db_seconds), int(connects), float(started),
            float(seconds),
        )  # fmt: skip


@dataclass
class RunContext:
    """Everything the report needs."""

    args: argparse.Namespace
    phases: list[Phase]
    started_at: dt.datetime
    versions: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    merchant_partner: str = ""
    notify_path: str = ""
    items: list[Captured] = field(default_factory=list)
    warmup: list[Captured] = field(default_factory=list)
    unused_orders: list[str] = field(default_factory=list)
    warmup_attempts: list[dict[str, Any]] = field(default_factory=list)
    #: The shop's effective settings under test, and the example project's own.
    shop_config: dict[str, Any] = field(default_factory=dict)
    preflight: dict[str, Any] = field(default_factory=dict)
    log_header: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    locust_rc: int | None = None
    cpu: CpuMeter | None = None
    after_load: dict[str, Any] = field(default_factory=dict)
    settle: dict[str, Any] = field(default_factory=dict)
    checks: list[tuple[str, str, bool, str]] = field(default_factory=list)
    goals: list[tuple[str, bool, str]] = field(default_factory=list)
    emulator_faults: dict[str, Any] = field(default_factory=dict)
    emulator_faults_before: int = 0
    idle_cpu: CpuMeter | None = None
    fault_plan: dict[str, Any] = field(default_factory=dict)
    #: The probe's line of each notify request, by tag (s<slot> Locust, r<n> resend, w<i>.<try> warm-up).
    probe: dict[str, ProbeLine] = field(default_factory=dict)
    resends: list[dict[str, Any]] = field(default_factory=list)
    resend_info: dict[str, Any] = field(default_factory=dict)
    after_resend: dict[str, Any] = field(default_factory=dict)
    #: The shop's "answered 503 ... (NOTIFY_MAX_IN_FLIGHT)" warnings in gunicorn.log.
    shed_log_lines: int = 0


def versions() -> dict[str, str]:
    """Versions of what is measured, and the machine."""
    # Read from the installed distributions: importing locust here would monkey-patch this process with
    # gevent (threads, sockets, signals), which the setup and the cleanup of this script must not have.
    found = {"python": platform.python_version()}
    for name in ("django", "gunicorn", "locust", "celery", "redis", "psycopg", "cryptography"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found["redis-py" if name == "redis" else name] = importlib.metadata.version(name)
    found |= {
        "nproc": str(os.cpu_count()),
        "cpu": _cpu_model(),
    }
    with contextlib.suppress(Exception):
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10).stdout
        found["redis-server"] = next((w.split("=")[1] for w in out.split() if w.startswith("v=")), "?")
    with contextlib.suppress(Exception), _admin_connection(os.environ["DATABASE_URL"]) as connection:
        found["postgresql"] = str(connection.execute("SHOW server_version").fetchone()[0])
    return found


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def post_notification(url: str, item: Captured, tag: str, timeout: float = 60.0) -> dict[str, Any]:
    """POST a notification's exact bytes to the shop, as Alipay's notifier does; what came back, and when."""
    request = urllib.request.Request(  # noqa: S310 - url is the shop on 127.0.0.1
        url,
        data=item.body.encode("ascii"),
        headers={
            "Content-Type": item.content_type,
            "User-Agent": "Mozilla/4.0",
            "Connection": "close",
            "X-Loadtest-Tag": tag,
        },
    )
    fired = time.time()
    status, body, retry_after, error = 0, "", "", ""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            status, body = int(response.status), response.read(40).decode("ascii", "replace")
            retry_after = response.headers.get("Retry-After") or ""
    except urllib.error.HTTPError as exc:
        status, body = int(exc.code), exc.read(40).decode("ascii", "replace")
        retry_after = exc.headers.get("Retry-After") or ""
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"[:200]
    return {
        "tag": tag,
        "fired": round(fired, 6),
        "seconds": round(time.time() - fired, 6),
        "status": status,
        "body": body.strip()[:20],
        "retry_after": retry_after[:20],
        "notify_id": item.notify_id,
        "error": error,
    }


def is_shed(record: dict[str, Any]) -> bool:
    """Whether the shop shed this request: 503 with Retry-After, the in-flight limit's answer, nothing stored.

    The other 503s of the notify view (notify_verify pending, a database error ...) carry no Retry-After and
    store their row; the report cross-checks this with the shop's probe and its log.
    """
    return bool(record["status"] == 503 and record.get("retry_after"))


def is_success(record: dict[str, Any]) -> bool:
    """Answered 200 ``success``: Alipay stops sending this notification."""
    return bool(record["status"] == 200 and record.get("body") == "success")


def send_warmup(url: str, items: list[Captured]) -> list[dict[str, Any]]:
    """Send the warm-up notifications (4 at a time), each until it is not shed; every attempt is returned."""

    def send(numbered: tuple[int, Captured]) -> list[dict[str, Any]]:
        index, item = numbered
        attempts = [post_notification(url, item, f"w{index}.0")]
        while is_shed(attempts[-1]) and len(attempts) < 20:
            time.sleep(0.5)
            attempts.append(post_notification(url, item, f"w{index}.{len(attempts)}"))
        return attempts

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return [attempt for attempts in pool.map(send, enumerate(items)) for attempt in attempts]


def run(args: argparse.Namespace, children: Children, workdir: Path, out: Path) -> int:
    """Everything between the fresh database and the report; returns the exit status."""
    admin_url = os.environ["DATABASE_URL"]
    redis_url = os.environ["REDIS_URL"]
    phases = phases_of(args)
    context = RunContext(args, phases, dt.datetime.now(dt.UTC))
    context.versions = versions()
    slots = sum(p.slots for p in phases)
    fresh = math.ceil(slots * (1 - args.duplicates) * 1.03) + 20
    total_trades = fresh + args.warmup + 10
    if total_trades > MAX_TRADES:
        raise SystemExit(f"error: {total_trades} trades asked; the emulator's buyer pays for {MAX_TRADES}")

    database_url = create_database(admin_url)
    shop_port = free_port()
    shop = f"http://127.0.0.1:{shop_port}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "loadtest_settings",
        "PYTHONPATH": os.pathsep.join([str(HERE), str(EXAMPLE), str(REPO)]),
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": redis_url,
        "SHOP_BASE_URL": shop,
        "SHOP_SECRETS_FILE": str(workdir / "secrets.json"),
        "LOADTEST_SIGNAL_LOG": str(workdir / "signals.log"),
        "LOADTEST_QUERY_LOG": str(workdir / "queries.log"),
        "SHOP_ALIPAY_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    if args.conn_max_age is not None:
        env["LOADTEST_CONN_MAX_AGE"] = str(args.conn_max_age)
    if args.notify_max_in_flight is not None:
        env["LOADTEST_NOTIFY_MAX_IN_FLIGHT"] = args.notify_max_in_flight
    try:
        return _run(admin_url, redis_url, args, children, workdir, out, context, env, shop, total_trades)
    finally:
        if "django.db" in sys.modules:
            from django.db import connections

            with contextlib.suppress(Exception):
                connections.close_all()
        children.stop_all()
        if args.keep_db:
            print(f"loadtest: database kept: {database_url}")
        else:
            with contextlib.suppress(Exception):
                drop_database(admin_url, database_url)


def _run(
    admin_url: str,
    redis_url: str,
    args: argparse.Namespace,
    children: Children,
    workdir: Path,
    out: Path,
    context: RunContext,
    env: dict[str, str],
    shop: str,
    total_trades: int,
) -> int:
    clock = time.monotonic()

    # 1. the emulator, standalone, with its own SQLite file (in memory-backed /dev/shm when there is one).
    shm = Path("/dev/shm")  # noqa: S108 - a private mkdtemp folder inside it
    emulator_dir = Path(
        tempfile.mkdtemp(prefix="alipay-loadtest-emulator-", dir=shm if shm.is_dir() else None)
    )
    emulator_env = {**env, "PYTHONPATH": str(REPO)}
    emulator_env.pop("DJANGO_SETTINGS_MODULE", None)
    emulator_port = free_port()
    emulator_child = children.start(
        "emulator",
        [
            PYTHON, "-m", "django_alipay.emulator", "--host", "127.0.0.1", "--port", str(emulator_port),
            "--quiet", "--seed", str(args.seed), "--db", str(emulator_dir / "emulator.sqlite3"),
            f"--control-token={CONTROL_TOKEN}",
        ],
        env=emulator_env,
        cwd=REPO,
    )  # fmt: skip
    try:
        wait_for(
            "starting the emulator",
            lambda: "ready http" in emulator_child.log.read_text(errors="replace"),
            timeout=60,
            child=emulator_child,
        )
        emulator = f"http://127.0.0.1:{emulator_port}"
        # Notify ids are made minutes before they are replayed; no resend during the run (a resend would
        # only go to the capture server, with a new notify_id).
        http_json(
            f"{emulator}/control/config",
            {"notify_id_ttl": args.notify_id_ttl, "retry_schedule": [86400.0] * 7},
        )

        # 2. the shop's database and merchant.
        migrate = subprocess.run(
            [PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if migrate.returncode:
            raise RuntimeError(f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}")
        setup_django(env)
        import example_project.settings as shop_settings
        from django.conf import settings

        from django_alipay.conf import app_settings

        context.shop_config = {
            "conn_max_age": settings.DATABASES["default"].get("CONN_MAX_AGE", 0),
            "conn_max_age_own": shop_settings.DATABASES["default"].get("CONN_MAX_AGE", 0),
            "limit": app_settings.NOTIFY_MAX_IN_FLIGHT,
            "limit_own": shop_settings.ALIPAY.get("NOTIFY_MAX_IN_FLIGHT"),
        }
        merchant = create_merchant(emulator)
        context.merchant_partner = merchant.partner
        context.notify_path = urlsplit(str(merchant.notify_url())).path
        context.timings["emulator, database, merchant"] = time.monotonic() - clock

        # 3. trades, paid at the emulator, whose notifications come to the capture server.
        clock = time.monotonic()
        with CaptureServer() as capture:
            settings.ALIPAY = {
                **settings.ALIPAY,
                "NOTIFY_URL_BASE": f"http://127.0.0.1:{capture.port}/alipay/notify/",
            }
            app_settings.reload()
            print(f"loadtest: creating and paying {total_trades} trades ...", flush=True)
            numbers = create_trades(total_trades, emulator, merchant.partner, capture)
            captured = [capture.items[number] for number in numbers]
        settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_URL_BASE": f"{shop}/alipay/notify/"}
        app_settings.reload()
        context.timings["trades created and paid"] = time.monotonic() - clock
        context.warmup = captured[: args.warmup]
        context.items = captured[args.warmup : total_trades - 10]
        context.unused_orders = [item.out_trade_no for item in captured[total_trades - 10 :]]

        plan_path = workdir / "plan.json"
        plan_path.write_text(
            json.dumps(
                {
                    "notify_path": context.notify_path,
                    "items": [
                        {"notify_id": i.notify_id, "body": i.body, "content_type": i.content_type}
                        for i in context.items
                    ],
                }
            )
        )

        # 4. the shop under gunicorn, and a Celery worker.
        clock = time.monotonic()
        shop_child = children.start(
            "gunicorn",
            [
                PYTHON, "-m", "gunicorn", "example_project.wsgi:application",
                "--bind", shop.removeprefix("http://"), "--workers", str(args.workers),
                "--worker-class", "gthread", "--threads", str(args.threads), "--backlog", "4096",
                "--timeout", "120", "--graceful-timeout", "10", "--log-level", "warning",
            ],
            env=env,
            cwd=EXAMPLE,
        )  # fmt: skip
        celery_child = children.start(
            "celery",
            [
                PYTHON, "-m", "celery", "-A", "example_project", "worker", "--hostname", "loadtest@%h",
                "--queues", "celery,alipay,alipay_refunds", "--pool", "threads",
                "--concurrency", str(args.celery_concurrency), "--loglevel", "WARNING", "--without-gossip",
                "--without-mingle",
            ],
            env=env,
            cwd=EXAMPLE,
        )  # fmt: skip
        wait_for(
            "starting the shop",
            lambda: urllib.request.urlopen(shop + "/", timeout=5).status == 200,  # noqa: S310
            timeout=60,
            child=shop_child,
        )
        from example_project.celery import app as celery_app

        wait_for(
            "starting the Celery worker",
            lambda: bool(celery_app.control.ping(timeout=1.0)),
            timeout=60,
            child=celery_child,
        )
        context.warmup_attempts = send_warmup(shop + context.notify_path, context.warmup)
        context.timings["shop and worker started, warm-up"] = time.monotonic() - clock
        # The fault plan, for the run only (the setup and the warm-up go without it). The emulator must then
        # say "true" for a captured notify_id, after the injected latency.
        from django_alipay import gateway
        from django_alipay.protocol.errors import AlipayError

        plan = args.fault_plan or {"services": {"notify_verify": {"latency": args.verify_latency}}}
        plan.setdefault("seed", args.seed)
        context.fault_plan = plan
        http_json(f"{emulator}/control/faults", plan)
        asked = time.monotonic()
        try:
            answer: Any = gateway.client_for(merchant).notify_verify(captured[-1].notify_id)
        except AlipayError as exc:
            answer = f"{type(exc).__name__} {exc.code or ''}".strip()
        context.preflight = {"notify_verify": answer, "seconds": time.monotonic() - asked}
        if answer is False or (answer is not True and args.fault_plan is None):
            raise RuntimeError(f"the emulator does not confirm a captured notify_id ({answer}): invalid run")
        context.emulator_faults_before = _verify_fired(emulator)
        trees = {
            "shop (gunicorn master and workers)": shop_child.process.pid,
            "emulator": emulator_child.process.pid,
            "celery worker": celery_child.process.pid,
        }
        for name, url in (("PostgreSQL (server and backends)", admin_url), ("Redis", redis_url)):
            pid = listener_pid(url)
            if pid is not None:
                trees[name] = pid
        # What keeps the machine busy before any load (ours idle, or others' work), over 5 s.
        idle = CpuMeter(trees)
        idle.start()
        time.sleep(5.0)
        idle.sample()
        context.idle_cpu = idle

        # 5. Locust.
        log_path = workdir / "requests.jsonl"
        out.mkdir(parents=True, exist_ok=True)
        locust_env = {
            **os.environ,
            "LOADTEST_PLAN": str(plan_path),
            "LOADTEST_PHASES": json.dumps([[p.name, p.rate, p.seconds] for p in context.phases]),
            "LOADTEST_DUPLICATES": str(args.duplicates),
            "LOADTEST_SEED": str(args.seed),
            "LOADTEST_POOL_SECONDS": str(args.pool_seconds),
            "LOADTEST_LOG": str(log_path),
        }
        locust_env.pop("DATABASE_URL", None)
        clock = time.monotonic()
        locust_child = children.start(
            "locust",
            [
                PYTHON, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless", "--host", shop,
                "--csv", str(out / "locust"), "--html", str(out / "locust.html"), "--only-summary",
                "--loglevel", "WARNING",
            ],
            env=locust_env,
            cwd=HERE,
        )  # fmt: skip
        trees = {**trees, "locust": locust_child.process.pid}
        meter = CpuMeter(trees)
        meter.start()
        print(
            f"loadtest: locust running ({', '.join(f'{p.rate:g}/s {p.seconds:g} s' for p in context.phases)})"
        )
        expected = sum(p.seconds for p in context.phases)
        while locust_child.process.poll() is None:
            # Read every second while Locust lives: its CPU time is gone once it has exited.
            time.sleep(1.0)
            meter.sample()
            if time.monotonic() - clock > expected + 300:
                raise RuntimeError("locust did not finish in time")
        context.cpu = meter
        context.locust_rc = locust_child.process.returncode
        context.timings["locust"] = time.monotonic() - clock
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        if not lines:
            raise RuntimeError(f"locust wrote no request log:\n{locust_child.log.read_text()[-3000:]}")
        context.log_header = json.loads(lines[0])
        context.records = [json.loads(line) for line in lines[1:]]
        for record in context.records:
            record["tag"] = f"s{record['slot']}"  # as the locustfile tagged the request for the probe

        # 6. what the load left, then the settle phase: Alipay's resends of what was shed, then Celery for
        # the stored notifications left "try later".
        context.after_load = snapshot()
        clock = time.monotonic()
        context.resend_info, context.resends = resend_shed(context, shop + context.notify_path, merchant)
        context.timings["settle (resends of shed requests)"] = time.monotonic() - clock
        context.after_resend = snapshot()
        clock = time.monotonic()
        context.settle = settle(args.settle_timeout)
        context.timings["settle (Celery)"] = time.monotonic() - clock
        faults = http_json(f"{emulator}/control/faults")
        context.emulator_faults = faults

        query_log = workdir / "queries.log"
        if query_log.exists():
            for line in query_log.read_text().splitlines():
                probed = ProbeLine.parse(line)
                context.probe[probed.tag] = probed
        context.shed_log_lines = sum(
            1
            for line in shop_child.log.read_text(errors="replace").splitlines()
            if "answered 503" in line and "(NOTIFY_MAX_IN_FLIGHT)" in line
        )

        # 7. checks and report.
        check(context, workdir / "signals.log")
        shutil.copy(log_path, out / "requests.jsonl")
        with (out / "resends.jsonl").open("w") as handle:
            for record in context.resends:
                handle.write(json.dumps(record) + "\n")
    finally:
        # Logs are worth keeping with the report; the emulator's folder is ours to remove.
        out.mkdir(parents=True, exist_ok=True)
        for child in children.started:
            with contextlib.suppress(OSError):
                shutil.copy(child.log, out / f"{child.name}.log")
        shutil.rmtree(emulator_dir, ignore_errors=True)
    report = render(context)
    (out / "report.md").write_text(report)
    print(report)
    passed = all(ok for _, ok, _ in context.goals)
    print(f"loadtest: {'PASS' if passed else 'FAIL'}; report in {out / 'report.md'}")
    return 0 if passed else 1


def _verify_fired(emulator: str) -> int:
    faults = http_json(f"{emulator}/control/faults")
    rule = faults.get("services", {}).get("notify_verify") or {}
    return int(rule.get("fired") or 0)


# --- after the load -----------------------------------------------------------------------------------------


def snapshot() -> dict[str, Any]:
    """Outcome and flag counts of the stored notifications now."""
    from django.db.models import Count

    from django_alipay.models import Notification

    rows = Notification.objects.values("outcome", "flag").annotate(n=Count("id"))
    return {"outcomes": {f"{r['outcome']}/{r['flag'] or '-'}": r["n"] for r in rows}}


def resend_shed(context: RunContext, url: str, merchant: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Re-send each request the shop shed, exact bytes, at ``--resend-rate``, round after round until answered
    200 ``success`` (or ``--settle-timeout``): Alipay's resends, with their minutes compressed to a second.

    Returns a summary and one record per resend (``phase`` "resend", ``round``, ``of_slot`` the shed request).
    """
    from django_alipay import gateway
    from django_alipay.protocol.errors import AlipayError

    args = context.args
    shed = sorted((r for r in context.records if is_shed(r)), key=lambda r: r["fired"])
    info: dict[str, Any] = {"shed": len(shed), "notify_ids": len({r["notify_id"] for r in shed})}
    if not shed:
        return info | {"rounds": 0, "sent": 0, "done": 0, "left": 0, "seconds": 0.0}, []
    # notify_verify must still say "true" for a resend: ask it for the oldest notify_id about to be re-sent.
    oldest = min((context.items[r["item"]] for r in shed), key=lambda item: item.received)
    asked = time.monotonic()
    try:
        answer: Any = gateway.client_for(merchant).notify_verify(oldest.notify_id)
    except AlipayError as exc:
        answer = f"{type(exc).__name__} {exc.code or ''}".strip()
    info["preflight"] = {
        "notify_verify": answer,
        "seconds": time.monotonic() - asked,
        "age": time.time() - oldest.received,
    }
    pending = [(r["slot"], r["item"], context.items[r["item"]]) for r in shed]
    records: list[dict[str, Any]] = []
    started = time.monotonic()
    deadline = started + args.settle_timeout
    rounds = 0

    def send(tag: str, item: Captured, at: float) -> dict[str, Any]:
        late = time.monotonic() - at
        record = post_notification(url, item, tag)
        return record | {"late": round(late, 6)}

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        while pending and time.monotonic() < deadline:
            rounds += 1
            if rounds > 1:
                time.sleep(1.0)  # Alipay waits minutes (Retry-After 60); a second keeps the run short
            begin = time.monotonic()
            futures: list[tuple[int, int, Captured, concurrent.futures.Future[dict[str, Any]]]] = []
            for k, (slot, index, item) in enumerate(pending):
                at = begin + k / args.resend_rate
                if at > deadline:
                    break
                time.sleep(max(0.0, at - time.monotonic()))
                tag = f"r{len(records) + len(futures)}"
                futures.append((slot, index, item, pool.submit(send, tag, item, at)))
            again: list[tuple[int, int, Captured]] = []
            for slot, index, item, future in futures:
                record = future.result() | {
                    "phase": "resend",
                    "round": rounds,
                    "of_slot": slot,
                    "item": index,
                }
                records.append(record)
                if not is_success(record):
                    again.append((slot, index, item))
            pending = again + pending[len(futures) :]
    info |= {
        "rounds": rounds,
        "sent": len(records),
        "done": len(shed) - len(pending),
        "left": len(pending),
        "seconds": time.monotonic() - started,
        "oldest_age_at_end": time.time() - oldest.received,
    }
    return info, records


def settle(timeout: float) -> dict[str, Any]:
    """Hand each notification left "try later" to the Celery worker; wait until none is left."""
    from django_alipay.enums import ProcessingOutcome
    from django_alipay.models import Notification
    from django_alipay.tasks import process_notification

    waiting = (ProcessingOutcome.RETRY, ProcessingOutcome.ERROR)
    ids = list(Notification.objects.filter(outcome__in=waiting).values_list("pk", flat=True))
    for pk in ids:
        process_notification.delay(pk)
    started = time.monotonic()
    left = len(ids)
    while left and time.monotonic() - started < timeout:
        time.sleep(0.5)
        left = Notification.objects.filter(
            pk__in=ids, outcome__in=(*waiting, ProcessingOutcome.PENDING)
        ).count()
    seconds = time.monotonic() - started
    from example_project.celery import app as celery_app

    executed: dict[str, int] = {}
    with contextlib.suppress(Exception):
        for stats in (celery_app.control.inspect(timeout=3.0).stats() or {}).values():
            for name, count in (stats.get("total") or {}).items():
                executed[name] = executed.get(name, 0) + int(count)
    return {"enqueued": len(ids), "left": left, "seconds": seconds, "executed": executed}


def check(context: RunContext, signal_log: Path) -> None:
    """Compare the database with what was sent; fill ``context.checks`` and ``context.goals``."""
    from django.db.models import Count
    from shop.models import Order

    from django_alipay.enums import NotificationFlag, NotificationKind, ProcessingOutcome
    from django_alipay.models import Notification, Trade

    records = context.records
    every = [*context.warmup_attempts, *records, *context.resends]
    by_notify_id = {i.notify_id: i for i in [*context.items, *context.warmup]}
    by_order = {i.out_trade_no: i for i in by_notify_id.values()}
    rows = Notification.objects.exclude(kind=NotificationKind.RETURN)
    rows_per_id = Counter(rows.values_list("notify_id", flat=True).iterator())
    # What the shop must have stored: one row per request it answered without shedding it (shed: nothing);
    # a request without an answer may or may not have reached the shop, its row says which.
    kept = Counter(r["notify_id"] for r in every if r["status"] and not is_shed(r))
    unanswered_per_id = Counter(r["notify_id"] for r in every if not r["status"])
    answered_ids = {r["notify_id"] for r in every if r["status"]}
    sent_ids = answered_ids | {n for n in unanswered_per_id if rows_per_id.get(n)}
    # Every notification sent must end up processed, the shed ones too (Alipay resends them).
    sent_orders = {by_notify_id[n].out_trade_no for n in sent_ids}
    prepared = set(by_order) | set(context.unused_orders)
    unsent_orders = prepared - sent_orders
    answered = sum(1 for r in every if r["status"])
    shed = sum(1 for r in every if is_shed(r))
    unanswered = sum(unanswered_per_id.values())

    def add(category: str, name: str, ok: bool, detail: str) -> None:
        context.checks.append((category, name, ok, detail))

    stored = sum(rows_per_id.values())
    off = sorted(
        n
        for n in set(kept) | set(rows_per_id) | set(unanswered_per_id)
        if not kept[n] <= rows_per_id[n] <= kept[n] + unanswered_per_id[n]
    )
    add(
        "audit",
        "shed + stored = answered: each notify_id has one row per request answered without being shed "
        "(warm-up, load and resends), none for a shed one",
        not off
        and set(rows_per_id) <= set(by_notify_id)
        and answered - shed <= stored <= answered - shed + unanswered,
        f"{answered} answered = {shed} shed + {answered - shed} not shed; {stored} rows; {unanswered} "
        f"unanswered; notify_ids whose rows differ: {len(off)}" + (f" (e.g. {off[:3]})" if off else ""),
    )
    probed_shed = sum(1 for p in context.probe.values() if p.shed)
    disagree = sum(
        1
        for r in every
        if r["status"] and r.get("tag") in context.probe and context.probe[r["tag"]].shed != is_shed(r)
    )
    unprobed = sum(1 for r in every if r["status"] and r.get("tag") not in context.probe)
    add(
        "audit",
        "shed requests: the sender's count (503 with Retry-After) = the shop's probe = the shop's "
        '"answered 503 ... (NOTIFY_MAX_IN_FLIGHT)" warnings',
        shed == probed_shed == context.shed_log_lines and disagree == 0 and unprobed == 0,
        f"{shed} by the sender, {probed_shed} by the probe, {context.shed_log_lines} warnings in "
        f"gunicorn.log; {disagree} requests classified differently; {unprobed} answered requests the probe "
        "did not log",
    )
    info = context.resend_info
    add(
        "state",
        "every shed request re-sent (same bytes) until answered 200 success",
        info.get("left", 0) == 0 and info.get("done", 0) == info.get("shed", 0),
        f"{info.get('done', 0)}/{info.get('shed', 0)} answered success after {info.get('sent', 0)} resends "
        f"in {info.get('rounds', 0)} rounds",
    )
    verify_false = rows.filter(flag=NotificationFlag.VERIFY_FALSE).count()
    preflight = info.get("preflight") or {}
    add(
        "state",
        "notify_verify answered true for re-sent notify_ids (none flagged verify_false)",
        verify_false == 0 and (not info.get("shed") or preflight.get("notify_verify") is True),
        f"{verify_false} rows flagged verify_false"
        + (
            f"; oldest re-sent notify_id asked before the resends: {preflight.get('notify_verify')} at "
            f"{preflight.get('age', 0):.0f} s old (TTL {context.args.notify_id_ttl:g} s), "
            f"{info.get('oldest_age_at_end', 0):.0f} s old at the end of the resends"
            if preflight
            else ""
        ),
    )

    trades = {t.out_trade_no: t for t in Trade.objects.filter(out_trade_no__in=prepared)}
    wrong = sorted(
        n
        for n in sent_orders
        if n not in trades
        or trades[n].status != "TRADE_FINISHED"
        or trades[n].paid_at is None
        or trades[n].trade_no != by_order[n].trade_no
        or trades[n].amount != Decimal("5.00")
    )
    add(
        "state",
        "every notified trade TRADE_FINISHED, paid_at set, Alipay's trade_no recorded",
        not wrong,
        f"{len(sent_orders) - len(wrong)}/{len(sent_orders)} right"
        + (f"; wrong: {wrong[:5]}" if wrong else ""),
    )
    untouched = sum(1 for n in unsent_orders if n in trades and trades[n].status == "WAIT_BUYER_PAY")
    add(
        "state",
        "trades never notified still WAIT_BUYER_PAY",
        untouched == len(unsent_orders),
        f"{untouched}/{len(unsent_orders)}",
    )
    orders = dict(Order.objects.filter(number__in=prepared).values_list("number", "paid_at"))
    orders_paid = sum(1 for n in sent_orders if orders.get(n) is not None)
    orders_unpaid = sum(1 for n in unsent_orders if n in orders and orders[n] is None)
    add(
        "state",
        "shop orders: the notified ones paid, the others not",
        orders_paid == len(sent_orders) and orders_unpaid == len(unsent_orders),
        f"{orders_paid}/{len(sent_orders)} paid, {orders_unpaid}/{len(unsent_orders)} unpaid",
    )

    processed_rows = rows.filter(outcome=ProcessingOutcome.PROCESSED)
    per_id = Counter(processed_rows.values_list("notify_id", flat=True).iterator())
    once = sum(1 for n in sent_ids if per_id.get(n) == 1)
    more = sum(1 for count in per_id.values() if count > 1)
    add(
        "once",
        "exactly one PROCESSED row per notify_id",
        once == len(sent_ids) and more == 0,
        f"{once}/{len(sent_ids)} once, {more} more than once",
    )
    per_trade = Counter(processed_rows.values_list("trade__out_trade_no", flat=True).iterator())
    right = sum(1 for n in sent_orders if per_trade.get(n) == 1)
    add(
        "once",
        "exactly one PROCESSED row per trade (the payment applied once)",
        right == len(sent_orders) and set(per_trade) == sent_orders,
        f"{right}/{len(sent_orders)}",
    )
    repeats = sum(count - 1 for count in rows_per_id.values())
    duplicate_rows = rows.filter(outcome=ProcessingOutcome.DUPLICATE)
    duplicates = duplicate_rows.count()
    dangling = duplicate_rows.exclude(duplicate_of__outcome=ProcessingOutcome.PROCESSED).count()
    elsewhere = sum(
        1
        for notify_id, first in duplicate_rows.values_list("notify_id", "duplicate_of__notify_id").iterator()
        if notify_id != first
    )
    add(
        "once",
        "every repeated notify_id stored as DUPLICATE of the processed row",
        duplicates == repeats and dangling == 0 and elsewhere == 0,
        f"{duplicates} DUPLICATE rows for {repeats} repeats; {dangling} not pointing at a processed row; "
        f"{elsewhere} pointing at another notify_id",
    )
    leftovers = dict(
        rows.exclude(outcome__in=(ProcessingOutcome.PROCESSED, ProcessingOutcome.DUPLICATE))
        .values("outcome")
        .annotate(n=Count("id"))
        .values_list("outcome", "n")
    )
    add(
        "state",
        "no row left pending, to retry, rejected, ignored or in error (after settling)",
        not leftovers,
        ", ".join(f"{k}: {v}" for k, v in leftovers.items()) or "none",
    )

    seen: dict[str, Counter[str]] = defaultdict(Counter)
    per_row: Counter[str] = Counter()
    if signal_log.exists():
        for line in signal_log.read_text().splitlines():
            name, order, notification, _pid = line.split(" ")
            seen[name][order] += 1
            if notification != "-":
                per_row[f"{name}:{notification}"] += 1
    paid, changed = seen["trade_paid"], seen["trade_status_changed"]
    add(
        "once",
        "signals: trade_paid and trade_status_changed once per notified trade, never for others",
        all(paid[n] == 1 and changed[n] == 1 for n in sent_orders)
        and set(paid) == set(changed) == sent_orders,
        f"trade_paid {sum(paid.values())} for {len(sent_orders)} trades (max {max(paid.values(), default=0)} "
        f"per trade); trade_status_changed {sum(changed.values())} (max {max(changed.values(), default=0)})",
    )
    received = sum(seen["notification_received"].values())
    acted = rows.filter(outcome__in=(ProcessingOutcome.PROCESSED, ProcessingOutcome.DUPLICATE)).count()
    twice = sum(1 for count in per_row.values() if count > 1)
    rejected = sum(seen["notification_rejected"].values())
    add(
        "once",
        "signals: notification_received once per processed or duplicate row; none rejected",
        received == acted and twice == 0 and rejected == 0,
        f"{received} for {acted} rows; {twice} rows signalled twice; {rejected} notification_rejected",
    )

    # The goals.
    args = context.args
    loaded = [*records, *context.resends]  # the load and the resends (the warm-up is not judged)
    statuses = Counter(r["status"] for r in loaded)
    no_answer = statuses.pop(0, 0)
    # Rows left "try later" by notify_verify, counted before Celery touched them: one per such 503.
    deliberate = context.after_resend.get("outcomes", {}).get("retry/verify_pending", 0)
    shed_503 = sum(1 for r in loaded if is_shed(r))
    stored_503 = statuses.get(503, 0) - shed_503
    other_5xx = sum(n for s, n in statuses.items() if s >= 500 and s != 503) + max(0, stored_503 - deliberate)
    other = sum(n for s, n in statuses.items() if s not in (200, 503) and s < 500)
    p99 = percentile([r["seconds"] for r in records if r["status"]], 99)
    p99_ok = percentile([r["seconds"] for r in records if is_success(r)], 99)
    p99_shed = percentile([r["seconds"] for r in records if is_shed(r)], 99)
    late = [r["late"] for r in records]
    slots = sum(p.slots for p in context.phases)
    categories = {
        category: all(ok for c, _, ok, _ in context.checks if c == category)
        for category in ("state", "once", "audit")
    }
    context.goals = [
        (f"p99 response time <= {args.p99:g} s (every request of the load, send to answer, shed ones "
         "included)",
         p99 is not None and p99 <= args.p99,
         f"p99 {fmt_s(p99)} (all {sum(1 for r in records if r['status'])}); beside it: answered 200 "
         f"only {fmt_s(p99_ok)} ({sum(1 for r in records if is_success(r))}), shed 503 only "
         f"{fmt_s(p99_shed)} ({sum(1 for r in records if is_shed(r))})"),
        ("no 5xx other than shed 503s (in-flight limit, nothing stored) and notify_verify-pending 503s "
         "(stored, settled by Celery); every other answer 200 success (load and resends)",
         other_5xx == 0 and other == 0 and no_answer == 0,
         f"503 shed: {shed_503}; 503 stored: {stored_503} (rows stored as verify_pending: {deliberate}); "
         f"other 5xx: {other_5xx}; other non-200: {other}; no answer (connection error or timeout): "
         f"{no_answer}"),
        ("every trade in the right final state (database, after settling)", categories["state"],
         "checks marked state below"),
        ("no effect applied twice (one processed row per trade, duplicates flagged, signals once)",
         categories["once"], "checks marked once below"),
        ("every answered request accounted for (shed + stored = answered)", categories["audit"],
         "checks marked audit below"),
        ("validity of the run: the load applied as specified (every slot sent; lateness p99 <= 100 ms)",
         len(records) == slots and (percentile(late, 99) or 0.0) <= 0.1,
         f"{len(records)}/{slots} sent; lateness p99 {fmt_s(percentile(late, 99))}, "
         f"max {fmt_s(max(late, default=None))}"),
    ]  # fmt: skip


# --- the report ---------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt_s(value: float | None) -> str:
    """Seconds as milliseconds, for tables."""
    return "—" if value is None else f"{value * 1000:.0f} ms"


def _window_counts(records: list[dict[str, Any]], t0: float, start: float, end: float) -> tuple[int, int]:
    fired = sum(1 for r in records if start <= r["fired"] - t0 < end)
    done = sum(1 for r in records if r["status"] and start <= r["fired"] + r["seconds"] - t0 < end)
    return fired, done


def _limit_text(value: Any) -> str:
    return "none (no limit)" if value is None else f"{value} per process"


def _classes(records: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The requests of ``records`` that got an answer: all of them, those answered 200, the shed 503s."""
    answered = [r for r in records if r["status"]]
    return [
        ("all", answered),
        ("200 success", [r for r in answered if is_success(r)]),
        ("503 shed", [r for r in answered if is_shed(r)]),
    ]


def render(context: RunContext) -> str:
    """The markdown report."""
    args = context.args
    lines: list[str] = []
    add = lines.append
    passed = all(ok for _, ok, _ in context.goals) if context.goals else False
    add(f"# Load test of the notify endpoint — {'PASS' if passed else 'FAIL'}")
    add("")
    add(
        f"Run {context.started_at:%Y-%m-%d %H:%M} UTC. Machine: `nproc` = {context.versions.get('nproc')}, "
        f'CPU "{context.versions.get("cpu")}"; '
        + ", ".join(f"{k} {v}" for k, v in context.versions.items() if k not in ("nproc", "cpu"))
        + "."
    )
    add("")
    add("## Configuration")
    add("")
    profile = ", then ".join(f"{p.rate:g}/s for {p.seconds:g} s ({p.name})" for p in context.phases)
    add(
        f"* Load: {profile}; {args.duplicates:.0%} of requests re-send an already sent notify_id (one of the "
        f"last 200 first sends); open-loop arrivals, Locust pool = rate x {args.pool_seconds:g} s of users; "
        f"seed {args.seed}."
    )
    config = context.shop_config
    conn_max_age = f"{config.get('conn_max_age')} s" + (
        " (the example project's own)"
        if args.conn_max_age is None
        else f" (set by --conn-max-age; the example project's own is {config.get('conn_max_age_own')} s)"
    )
    limit = _limit_text(config.get("limit")) + (
        " (the example project's own)"
        if args.notify_max_in_flight is None
        else f" (set by --notify-max-in-flight; the example project's own is "
        f"{_limit_text(config.get('limit_own'))})"
    )
    add(
        f"* Shop: example_project under gunicorn, {args.workers} workers x {args.threads} threads (gthread), "
        f'ALIPAY["NOTIFY_MAX_IN_FLIGHT"] {limit}, PostgreSQL CONN_MAX_AGE {conn_max_age}; Celery worker '
        f"({args.celery_concurrency} threads, Redis broker)."
    )
    add(
        f"* Gateway: the emulator standalone (`python -m django_alipay.emulator`, SQLite), fault plan "
        f"`{json.dumps(context.fault_plan)}`, notify_id TTL "
        f"{args.notify_id_ttl:g} s. Preflight notify_verify of a captured notify_id: "
        f"{context.preflight.get('notify_verify')} in {fmt_s(context.preflight.get('seconds'))}."
    )
    fired = int((context.emulator_faults.get("services", {}).get("notify_verify") or {}).get("fired") or 0)
    add(
        f"* notify_verify calls hit by the fault plan during the load and the settle phase: "
        f"{fired - context.emulator_faults_before} (all: {fired})."
    )
    warm = Counter(
        "503 shed" if is_shed(r) else str(r["status"] or "no answer") for r in context.warmup_attempts
    )
    add(
        f"* Notifications: {len(context.items)} prepared for the run ({context.log_header.get('fresh_used')} "
        f"used), {len(context.warmup)} for the warm-up (answers: {dict(warm)}), "
        f"{len(context.unused_orders)} paid trades never notified."
    )
    if context.idle_cpu is not None and context.idle_cpu.seconds > 0:
        idle = context.idle_cpu
        busy = idle.used.get("machine", 0.0) / idle.seconds
        ours = sum(v for k, v in idle.used.items() if k != "machine") / idle.seconds
        add(
            f"* Machine load in the 5 s before the run: {busy:.2f} of {os.cpu_count()} cores busy, "
            f"{ours:.2f} of them by this run's processes (idle shop, emulator, PostgreSQL ...), the rest by "
            f"the kernel and other users of the machine; by kind, in cores: {idle.split_text()}."
        )
    add("* Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in context.timings.items()) + ".")
    add("")

    records = context.records
    resends = context.resends
    t0 = float(context.log_header.get("t0") or 0.0)
    add("## Per phase")
    add("")
    add(
        "| phase | target/s | sent | sent/s | answered/s | taken/s | 200 | 503 shed | 503 stored | other | "
        "no answer | late p99 |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    start = 0.0
    rows: list[tuple[str, float, list[dict[str, Any]], float, float]] = []
    for phase in context.phases:
        chosen = [r for r in records if r["phase"] == phase.name]
        rows.append((phase.name, phase.rate, chosen, start, start + phase.seconds))
        start += phase.seconds
    rows.append(("load (all phases)", 0.0, records, 0.0, start))
    for name, rate, chosen, begin, end in rows:
        fired_n, done_n = _window_counts(records, t0, begin, end)
        taken_n = _window_counts([r for r in records if is_success(r)], t0, begin, end)[1]
        span = end - begin
        target = f"{rate:g}" if rate else "—"
        add(
            f"| {name} | {target} | {len(chosen)} | {fired_n / span:.1f} | {done_n / span:.1f} | "
            f"{taken_n / span:.1f} | {_status_cells(chosen)} | "
            f"{fmt_s(percentile([r['late'] for r in chosen], 99))} |"
        )
    if resends:
        span = max(1e-9, context.resend_info.get("seconds", 0.0))
        add(
            f"| resends (settle) | {args.resend_rate:g} | {len(resends)} | {len(resends) / span:.1f} | "
            f"{sum(1 for r in resends if r['status']) / span:.1f} | "
            f"{sum(1 for r in resends if is_success(r)) / span:.1f} | {_status_cells(resends)} | "
            f"{fmt_s(percentile([r['late'] for r in resends], 99))} |"
        )
    add("")
    add(
        "*sent/s* counts requests sent inside the phase's time window, *answered/s* answers received in it "
        "(a backlog spills into the next window); *taken/s* the answers 200 success among them (what the "
        "shop got done; a shed notification waits for its resend); *503 shed*: answered "
        "503 with Retry-After at once by the in-flight limit, nothing stored, re-sent in the settle phase; "
        '*503 stored*: the notification was stored and left "try later" (notify_verify too slow), settled '
        "by Celery; *late* is how far behind its scheduled time a request left the sender."
    )
    add("")
    add("### Response time per phase (send to answer)")
    add("")
    add("| phase | answers | requests | p50 | p95 | p99 | max | p99 from schedule |")
    add("|---|---|---:|---:|---:|---:|---:|---:|")
    timed = [(name, chosen) for name, _, chosen, _, _ in rows]
    if resends:
        timed.append(("resends (settle)", resends))
    for name, chosen in timed:
        for label, picked in _classes(chosen):
            times = [r["seconds"] for r in picked]
            corrected = [r["seconds"] + r["late"] for r in picked]
            add(
                f"| {name} | {label} | {len(times)} | {fmt_s(percentile(times, 50))} | "
                f"{fmt_s(percentile(times, 95))} | {fmt_s(percentile(times, 99))} | "
                f"{fmt_s(max(times, default=None))} | {fmt_s(percentile(corrected, 99))} |"
            )
    add("")
    add(
        "*all* is what the goal judges; *200 success* is the time of a notification that was taken and "
        "processed; a shed 503 is quick by design (the work is done on a later resend). *p99 from schedule* "
        "adds the send's lateness (what a sender on the real schedule would see)."
    )
    add("")
    add("| kind (load) | requests | shed | p50 (200) | p95 (200) | p99 (200) | max (200) | min (200) |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, duplicate in (("first send (asks notify_verify)", False), ("duplicate notify_id", True)):
        chosen = [r for r in records if r["duplicate"] == duplicate]
        times = [r["seconds"] for r in chosen if is_success(r)]
        add(
            f"| {label} | {len(chosen)} | {sum(1 for r in chosen if is_shed(r))} | "
            f"{fmt_s(percentile(times, 50))} | {fmt_s(percentile(times, 95))} | "
            f"{fmt_s(percentile(times, 99))} | {fmt_s(max(times, default=None))} | "
            f"{fmt_s(min(times, default=None))} |"
        )
    add("")
    step = 10.0 if sum(p.seconds for p in context.phases) >= 60 else 5.0
    add(f"### Over time ({step:g} s windows, by send time)")
    add("")
    add(
        "| window | sent/s | answered/s | shed/s | p50 (all) | p99 (all) | p99 (200) | max (all) | late p99 |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    end = max((r["fired"] + r["seconds"] - t0 for r in records), default=0.0)
    begin = 0.0
    while begin < end:
        window = [r for r in records if begin <= r["fired"] - t0 < begin + step]
        sent, done = _window_counts(records, t0, begin, begin + step)
        times = [r["seconds"] for r in window if r["status"]]
        ok_times = [r["seconds"] for r in window if is_success(r)]
        add(
            f"| {begin:.0f}–{begin + step:.0f} s | {sent / step:.1f} | {done / step:.1f} | "
            f"{sum(1 for r in window if is_shed(r)) / step:.1f} | {fmt_s(percentile(times, 50))} | "
            f"{fmt_s(percentile(times, 99))} | {fmt_s(percentile(ok_times, 99))} | "
            f"{fmt_s(max(times, default=None))} | {fmt_s(percentile([r['late'] for r in window], 99))} |"
        )
        begin += step
    add("")
    slow = sum(1 for r in records if r["status"] and r["seconds"] > 10.0)
    add(
        f"Answered after more than 10 s (the emulator's notifier gives up then and Alipay would resend): "
        f"{slow} of {len(records)}."
    )
    add("")
    _render_where(context, add)
    add("### Answers other than 200 success (load)")
    add("")
    bodies = Counter(
        (r["status"], r["body"] or r["error"][:60], "shed (Retry-After)" if is_shed(r) else "")
        for r in records
        if not is_success(r)
    )
    if not bodies:
        add("None: every request was answered 200 `success`.")
    else:
        add("| status | answer | kind | count |")
        add("|---:|---|---|---:|")
        for (status, body, kind), count in bodies.most_common():
            add(f"| {status or 'no answer'} | {body} | {kind} | {count} |")
    add("")
    for label, snap in (
        ("right after the load", context.after_load),
        ("after the resends", context.after_resend),
    ):
        add(
            f"Stored notifications {label} (outcome/flag): "
            + (", ".join(f"{k} {v}" for k, v in sorted(snap.get("outcomes", {}).items())) or "none")
            + "."
        )
        add("")
    info = context.resend_info
    if info.get("shed"):
        preflight = info.get("preflight") or {}
        again = Counter(
            "200 success" if is_success(r) else "503 shed" if is_shed(r) else str(r["status"] or "no answer")
            for r in resends
        )
        add(
            f"Settle phase, resends: the {info['shed']} shed requests ({info['notify_ids']} notify_ids) were "
            f"POSTed again with their exact bytes at {args.resend_rate:g}/s, round after round (1 s apart "
            f"instead of Alipay's minutes) until answered 200 success: {info['sent']} resends in "
            f"{info['rounds']} rounds, {info['seconds']:.1f} s (answers: {dict(again)}); {info['left']} "
            f"never answered success. notify_verify asked before them for the oldest re-sent notify_id "
            f"({preflight.get('age', 0):.0f} s old): {preflight.get('notify_verify')}."
        )
    else:
        add("Settle phase, resends: nothing was shed, nothing to re-send.")
    add("")
    settle_info = context.settle
    add(
        f'Settle phase, Celery: {settle_info.get("enqueued", 0)} stored notifications left "try later" were '
        f"handed to the Celery worker (`django_alipay.tasks.process_notification`); "
        f"{settle_info.get('left', 0)} still unsettled after {settle_info.get('seconds', 0):.1f} s. Tasks "
        f"the worker ran in all: {settle_info.get('executed') or 'none'}."
    )
    add("")
    if context.cpu is not None and context.cpu.seconds > 0:
        cpu = context.cpu
        add(f"### CPU during the Locust run ({cpu.seconds:.0f} s wall, {os.cpu_count()} cores)")
        add("")
        add("| process | CPU s | cores busy (average) |")
        add("|---|---:|---:|")
        ours = 0.0
        for name, used in cpu.used.items():
            if name == "machine":
                continue
            ours += used
            add(f"| {name} | {used:.1f} | {used / cpu.seconds:.2f} |")
        machine = cpu.used.get("machine", 0.0)
        rest = max(0.0, machine - ours)
        label = "everything else (kernel, other users of the machine)"
        add(f"| {label} | {rest:.1f} | {rest / cpu.seconds:.2f} |")
        add(f"| **machine** | {machine:.1f} | {machine / cpu.seconds:.2f} |")
        add("")
        add(
            f"The machine's busy time by kind, in cores: {cpu.split_text()} (*steal* is time the hypervisor "
            "gave to other guests: the machine is a shared VM)."
        )
        add("")
    taken = [p for tag, p in context.probe.items() if tag.startswith("s") and not p.shed]
    if taken:
        counts = [q.queries for q in taken]
        db_share = sum(q.db_seconds for q in taken) / max(1e-9, sum(q.seconds for q in taken))
        shapes = Counter(counts).most_common(4)
        shed_queries = [p.queries for tag, p in context.probe.items() if tag.startswith("s") and p.shed]
        add("### Database work per notify request (shop side, the load's requests that were not shed)")
        add("")
        add(
            f"{len(counts)} requests: queries per request median {percentile(counts, 50)}, max {max(counts)} "
            f"(most common: {', '.join(f'{q} queries x {n}' for q, n in shapes)}; a processed first send "
            "is the library's 7 and the shop's own `mark_paid` receiver's order update); new database "
            f"connections per request median {percentile([q.connects for q in taken], 50)}, in all "
            f"{sum(q.connects for q in taken)}; time inside queries {db_share:.0%} of the time in Django "
            f"(BEGIN/COMMIT and connecting not included). Shed requests: {len(shed_queries)}, queries per "
            f"request max {max(shed_queries, default=0)}."
        )
        add("")
    add("## Correctness checks (database and accounting, after settling)")
    add("")
    add("| kind | check | result | detail |")
    add("|---|---|---|---|")
    for category, name, ok, detail in context.checks:
        add(f"| {category} | {name} | {'ok' if ok else '**FAILED**'} | {detail} |")
    add("")
    add("## Goals")
    add("")
    add("| goal | result | measured |")
    add("|---|---|---|")
    for name, ok, detail in context.goals:
        add(f"| {name} | {'pass' if ok else '**FAIL**'} | {detail} |")
    add("")
    add(
        "Locust's own CSV and HTML report: `locust_stats.csv`, `locust_failures.csv`, `locust.html` (same "
        "folder; Locust counts every non-200 as a failure, shed 503s included); every request of the load: "
        "`requests.jsonl`, of the settle phase: `resends.jsonl`; process logs: `gunicorn.log`, "
        "`emulator.log`, `celery.log`, `locust.log`."
    )
    return "\n".join(lines) + "\n"


def _status_cells(chosen: list[dict[str, Any]]) -> str:
    """200 | 503 shed | 503 stored | other | no answer, as table cells."""
    ok = sum(1 for r in chosen if is_success(r))
    shed = sum(1 for r in chosen if is_shed(r))
    stored = sum(1 for r in chosen if r["status"] == 503 and not is_shed(r))
    none = sum(1 for r in chosen if not r["status"])
    return f"{ok} | {shed} | {stored} | {len(chosen) - ok - shed - stored - none} | {none}"


def _render_where(context: RunContext, add: Callable[[str], None]) -> None:
    """Where a request's time goes: before Django (connection, gunicorn's queue) and inside it."""
    rows: list[tuple[str, str, list[tuple[float, float, float]]]] = []
    for phase in [p.name for p in context.phases]:
        chosen = [r for r in context.records if r["phase"] == phase]
        for label, picked in _classes(chosen)[1:]:
            timed = []
            for r in picked:
                probed = context.probe.get(r["tag"])
                if probed is not None:
                    timed.append((max(0.0, probed.started - r["fired"]), probed.seconds, r["seconds"]))
            rows.append((phase, label, timed))
    if not any(timed for _, _, timed in rows):
        return
    add("### Where the time goes (shop side, from the probe)")
    add("")
    add(
        "| phase | answers | requests | before Django p50 | before Django p99 | in Django p50 "
        "| in Django p99 | total p99 |"
    )
    add("|---|---|---:|---:|---:|---:|---:|---:|")
    for phase, label, timed in rows:
        before = [t[0] for t in timed]
        inside = [t[1] for t in timed]
        total = [t[2] for t in timed]
        add(
            f"| {phase} | {label} | {len(timed)} | {fmt_s(percentile(before, 50))} | "
            f"{fmt_s(percentile(before, 99))} | {fmt_s(percentile(inside, 50))} | "
            f"{fmt_s(percentile(inside, 99))} | {fmt_s(percentile(total, 99))} |"
        )
    add("")
    add(
        "*before Django*: from the send to Django's `request_started` (TCP connect, gunicorn accepting the "
        "connection and waiting for a free thread, reading the request); *in Django*: from `request_started` "
        "to `request_finished` (the view, including notify_verify's 150 ms, and writing the answer)."
    )
    add("")


# --- entry point --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (and SIGHUP) into KeyboardInterrupt, so the cleanup runs as on Ctrl-C."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """Run the load test; 0 when every goal is met, 1 when one is missed, 2 when it could not run."""
    args = build_parser().parse_args(argv)
    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
    if missing:
        print(
            f"error: {' and '.join(missing)} not set: run through scripts/with-services (make loadtest)",
            file=sys.stderr,
        )
        return 2
    out = args.out if args.out.is_absolute() else REPO / args.out
    workdir = Path(tempfile.mkdtemp(prefix="alipay-loadtest-"))
    children = Children(workdir)
    try:
        with terminate_as_interrupt():
            return run(args, children, workdir, out)
    except KeyboardInterrupt:
        print("loadtest: interrupted; stopping everything", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    finally:
        children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
