"""Shared helpers of the HTTP benchmarks: servers as subprocesses, a load client, CPU accounting and tables.

* :class:`Gunicorn` runs ``benchsite.wsgi:application`` under gunicorn on a free loopback port and waits
  until it answers; :class:`Emulator` runs the standalone gateway emulator (through the library's own
  ``django_alipay.testing.emulator.EmulatorProcess``) and drives it over HTTP from any thread.
* :func:`run_load` sends a list of requests from a **separate process** (threads, one connection per
  request) and returns every answer with its latency.
* :func:`cpu_seconds` reads the CPU time of a process tree from /proc, so a benchmark can say which process
  spent the machine's cores; :func:`postgres_root` finds the PostgreSQL server behind a connection.
* :func:`database` creates a throwaway database on the server of ``DATABASE_URL`` and drops it afterwards;
  :func:`setup_django` points the ``benchsite`` settings at it.
* :func:`percentile`, :func:`median`, :func:`spread`, :func:`table` and :func:`machine` format the results.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit, urlunsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for _path in (str(REPO), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

__all__ = [
    "BENCH_DIR",
    "REPO",
    "Emulator",
    "Gunicorn",
    "LoadResult",
    "Reply",
    "Request",
    "bulk_create_open_trades",
    "cents",
    "cpu_seconds",
    "database",
    "free_port",
    "machine",
    "median",
    "percentile",
    "postgres_root",
    "reconciliation_answer",
    "run_load",
    "setup_django",
    "spread",
    "table",
]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- ports, processes ----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str, timeout: float = 2.0) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields start after the last ")".
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _own_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime (children already waited for count too), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the ")" field 0 is state (stat field 3): utime..cstime are stat fields 14-17.
    return sum(int(value) for value in fields[11:15]) / _CLK_TCK


def cpu_seconds(pid: int) -> float:
    """CPU seconds spent by ``pid`` and every descendant, alive or already reaped."""
    return _own_cpu(pid) + sum(cpu_seconds(child) for child in _children(pid))


class Gunicorn:
    """``benchsite.wsgi:application`` under gunicorn on a free loopback port, logging to a temporary file.

    ``threads`` > 1 selects the gthread worker (that many request threads per worker process).
    """

    def __init__(self, *, workers: int, threads: int = 1, env: Mapping[str, str], timeout: float = 60.0):
        self.workers = workers
        self.threads = threads
        self.env = dict(env)
        self.timeout = timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Gunicorn:
        """Start gunicorn and wait until every worker can answer (``/ping/``)."""
        self.port = free_port()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "benchsite.wsgi:application",
            "--chdir",
            str(BENCH_DIR),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            "gthread" if self.threads > 1 else "sync",
            "--threads",
            str(self.threads),
            "--backlog",
            "2048",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ]
        env = {**os.environ, **self.env, "DJANGO_SETTINGS_MODULE": "benchsite.settings"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if _get(self.port, "/ping/") == 200 and len(_children(self.process.pid)) >= self.workers:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("gunicorn did not answer in time")
            time.sleep(0.1)
        # Every worker imports the application lazily: ask enough times that each has answered once.
        for _ in range(4 * self.workers):
            _get(self.port, "/ping/")
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, limit: int = 4000) -> str:
        """The end of gunicorn's output (errors of the application included)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-limit:]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Emulator:
    """The standalone gateway emulator in its own process, with helpers safe to call from several threads.

    The process is the library's ``django_alipay.testing.emulator.EmulatorProcess`` (options are its: by
    default an RSA merchant key pair, refund_interval 0, no notifier thread). Its SQLite database is put in
    /dev/shm when there is one: the emulator stands in for a remote gateway, and its disk flushes are not
    what is measured.
    """

    def __init__(self, **options: Any) -> None:
        from django_alipay.testing.emulator import EmulatorProcess

        shm = Path("/dev/shm")  # noqa: S108 (a private directory is made in it with mkdtemp)
        self._dir = Path(tempfile.mkdtemp(prefix="bench-emulator-", dir=shm if shm.is_dir() else None))
        self.db_path = self._dir / "emulator.sqlite3"
        options["extra_args"] = (*options.get("extra_args", ()), "--db", str(self.db_path))
        self.process = EmulatorProcess(**options)
        self._local = threading.local()

    def start(self) -> Emulator:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def base_url(self) -> str:
        return str(self.process.base_url)

    @property
    def partner(self) -> str:
        return str(self.process.partner)

    @property
    def pid(self) -> int:
        """The emulator's process id (for CPU accounting)."""
        popen = self.process._process
        return int(popen.pid) if popen is not None else 0

    def merchant(self, **fields: Any) -> Any:
        """The django_alipay Merchant of the emulator's partner (see EmulatorProcess.merchant)."""
        return self.process.merchant(**fields)

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            session.trust_env = False
            # The emulator process's control token: control/ refuses POSTs without it.
            session.headers["X-Emulator-Token"] = self.process.control_token
            self._local.session = session
        return session

    def visit(self, url: str) -> None:
        """What the buyer's browser does first: open the cashier URL (the emulator creates the trade)."""
        response = self._session().get(url, allow_redirects=False, timeout=60)
        if response.status_code not in (200, 302):
            raise RuntimeError(f"the emulator answered {response.status_code}: {response.text[:200]}")

    def control(self, path: str, data: Mapping[str, Any] | None = None) -> Any:
        """GET (``data`` None) or POST JSON to ``control/<path>``; the decoded answer."""
        url = f"{self.base_url}control/{path}"
        if data is None:
            response = self._session().get(url, timeout=600)
        else:
            response = self._session().post(url, json=dict(data), timeout=600)
        if response.status_code != 200:
            raise RuntimeError(f"control/{path} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def pay(self, out_trade_no: str, partner: str | None = None) -> None:
        """The default buyer pays the trade (its notification is queued).

        ``partner`` defaults to the emulator's own; see :meth:`second_merchant` for another.
        """
        self.control("pay", {"partner": partner or self.partner, "out_trade_no": out_trade_no})

    def second_merchant(self, first: Any, name: str) -> Any:
        """Another partner at the emulator, with the key pair of ``first`` (the Merchant of :meth:`merchant`).

        Returns its django_alipay Merchant: a second shop on the same emulator, whose trades, refunds and
        notifications stay apart from the first one's.
        """
        from django_alipay.enums import Environment
        from django_alipay.models import Merchant
        from django_alipay.testing.emulator import new_partner_id

        process = self.process
        partner = new_partner_id()
        while partner == process.partner:
            partner = new_partner_id()
        data = {"partner": partner, "merchant_public_key": process.merchant_public_key or ""}
        self.control("partners", {**data, "refund_interval": process.refund_interval})
        return Merchant.objects.create(
            name=name,
            partner=partner,
            environment=Environment.EMULATOR,
            gateway_url=first.gateway_url,
            sign_type=first.sign_type,
            charset=first.charset,
            currency=first.currency,
            private_key=process.merchant_private_key or "",
            public_key=process.merchant_public_key or "",
            alipay_public_key=process.alipay_public_keys[first.sign_type],
            is_active=True,
        )

    def database(self) -> Any:
        """The emulator's own SQLite database, read-only (its ledger and its call log)."""
        import sqlite3

        uri = f"file:{self.db_path}?mode=ro"
        return contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query on the emulator's database."""
        with self.database() as db:
            return list(db.execute(sql, params))

    def count_calls(self, service: str) -> int:
        """gateway.do calls of ``service`` so far."""
        sql = "SELECT COUNT(*) FROM django_alipay_emulator_gatewaycall WHERE service = ?"
        return int(self.rows(sql, (service,))[0][0])


def cents(value: Any) -> Any:
    """An amount read from the emulator's SQLite file, as a Decimal to the cent.

    SQLite adds the emulator's ``F("refunded_amount") + amount`` in floating point (0.1 + 0.2 is stored as
    0.30000000000000004); Django rounds it when it reads the row, and so does this.
    """
    from decimal import Decimal

    return Decimal(str(value)).quantize(Decimal("0.01"))


# --- database ------------------------------------------------------------------------------------------


def _url_with_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def _connect(url: str) -> Any:
    import psycopg

    parts = urlsplit(url)
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        dbname=unquote(parts.path.lstrip("/")) or "postgres",
        autocommit=True,
    )


@contextlib.contextmanager
def database(prefix: str) -> Iterator[str]:
    """A new empty database on the PostgreSQL server of ``DATABASE_URL``; yields its URL, drops it after."""
    url = os.environ.get("DATABASE_URL", "")
    if urlsplit(url).scheme not in ("postgres", "postgresql"):
        sys.exit("DATABASE_URL must name a PostgreSQL server: run under scripts/with-services")
    name = f"{prefix}_{os.getpid()}"
    with _connect(url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _url_with_name(url, name)
    finally:
        with _connect(url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_root() -> int:
    """The process id of the PostgreSQL server (postmaster) behind Django's default connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])
    for line in Path(f"/proc/{backend}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return 0


def setup_django(database_url: str, env: Mapping[str, str]) -> None:
    """Configure this process with ``benchsite.settings`` on ``database_url`` and migrate the database."""
    os.environ.update(env)
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchsite.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


# --- the load client -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One HTTP request to send."""

    method: str
    path: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """What came back for the request at ``index`` (status 0: no answer, see ``error``)."""

    index: int
    status: int
    body: str
    started: float
    seconds: float
    error: str = ""


@dataclass(frozen=True)
class LoadResult:
    """Every reply (in request order), the wall time from the first send to the last answer, client CPU."""

    replies: list[Reply]
    wall: float
    client_cpu: float

    @property
    def latencies(self) -> list[float]:
        return [reply.seconds for reply in self.replies]

    @property
    def throughput(self) -> float:
        return len(self.replies) / self.wall if self.wall > 0 else 0.0


def _send(port: int, request: Request, timeout: float) -> tuple[int, str, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(request.method, request.path, body=request.body, headers=dict(request.headers))
        response = connection.getresponse()
        return response.status, response.read(65536).decode("utf-8", "replace"), ""
    except (OSError, http.client.HTTPException) as exc:
        return 0, "", f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()


def _client(pipe: Any, port: int, requests: list[Request], concurrency: int, timeout: float) -> None:
    """The client process: ``concurrency`` threads take the next request in order until none is left."""
    replies: list[Reply | None] = [None] * len(requests)
    lock = threading.Lock()
    position = iter(range(len(requests)))
    start = threading.Barrier(concurrency + 1)

    def worker() -> None:
        start.wait()
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                return
            began = time.perf_counter()
            status, body, error = _send(port, requests[index], timeout)
            replies[index] = Reply(index, status, body[:8192], began, time.perf_counter() - began, error)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    cpu_before = time.process_time()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    done = [reply for reply in replies if reply is not None]
    pipe.send(LoadResult(done, wall, time.process_time() - cpu_before))
    pipe.close()


def run_load(
    port: int, requests: Sequence[Request], *, concurrency: int, timeout: float = 120.0
) -> LoadResult:
    """Send ``requests`` to 127.0.0.1:``port`` from a new process with ``concurrency`` connections at once.

    Each request gets its own connection (gunicorn's sync workers close after every answer, and Alipay's
    notifier opens one per notification); the threads start together behind a barrier.
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_client, args=(send, port, list(requests), min(concurrency, len(requests)), timeout)
    )
    process.start()
    send.close()
    try:
        result: LoadResult = receive.recv()
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
    return result


# --- statistics and output -----------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) by linear interpolation between the closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """The median (the 50th percentile)."""
    return percentile(values, 50)


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """``min–max`` of ``values``, each formatted with ``fmt``."""
    if not values:
        return "—"
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A markdown table; ``align`` has one letter per column, ``l`` or ``r`` (default: first l, rest r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """Date, cores, CPU model and versions (Python, Django, gunicorn, PostgreSQL) for a results header."""
    import django
    import gunicorn
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{dt.date.today().isoformat()}, nproc {os.cpu_count()} ({cpu}), Python {platform.python_version()}, "
        f"Django {django.get_version()}, gunicorn {gunicorn.__version__}, PostgreSQL {pg}; "
        f"load average before the run {load}"
    )


# --- the open trades of the reconciliation benchmarks ------------------------------------------------------

#: The amount of every trade bulk-created by :func:`bulk_create_open_trades`.
OPEN_TRADE_AMOUNT = "10.00"


def reconciliation_answer(number: int) -> str:
    """What the reconciliation benchmarks' gateway says of trade ``BENCH-<number>``: one in ten paid, one
    closed, one unknown to it, the rest still unpaid."""
    return {0: "TRADE_SUCCESS", 1: "TRADE_CLOSED", 2: "not_found"}.get(number % 10, "WAIT_BUYER_PAY")


def bulk_create_open_trades(merchant: Any, count: int, *, now: Any, span: Any, chunk: int) -> float:
    """``count`` unpaid trades ``BENCH-0`` ... (one in five in-store), 30 minutes to 30 minutes + ``span``
    (a timedelta) old as of ``now``, inserted ``chunk`` at a time; the seconds it took."""
    from decimal import Decimal

    from django_alipay.models import Trade

    started = time.perf_counter()
    seconds = int(span.total_seconds())
    for start in range(0, count, chunk):
        Trade.objects.bulk_create(
            [
                Trade(
                    merchant=merchant,
                    out_trade_no=f"BENCH-{n}",
                    amount=Decimal(OPEN_TRADE_AMOUNT),
                    currency="USD",
                    subject="Bench order",
                    product="barcode" if n % 5 == 4 else "web",
                    status="WAIT_BUYER_PAY",
                    created_at=now - dt.timedelta(minutes=30, seconds=(n * 7) % seconds),
                )
                for n in range(start, min(start + chunk, count))
            ],
            batch_size=chunk,
        )
    return time.perf_counter() - started
