"""Real parts for the task tests: the standalone emulator, Celery worker processes, and small helpers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import requests
from django.conf import settings
from django.utils import timezone

from django_alipay.domain import refunds, settlement, trades
from django_alipay.domain.settlement import FileSettlementReport
from django_alipay.enums import RefundStatus
from django_alipay.models import Merchant, Refund, RefundSlot, Trade
from tests.conftest import CONTROL_HEADERS
from tests.standalone import StandaloneEmulator

ROOT = Path(__file__).resolve().parents[2]
QUEUES = "alipay,alipay_refunds"


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:g} s")
        time.sleep(every)


class Emulator:
    """``python -m django_alipay.emulator --port 0`` in a subprocess, and its control API."""

    def __init__(self, partner: str, md5_key: str, log: Path) -> None:
        args = ("--partner", partner, "--md5-key", md5_key, "--refund-interval", "0")
        self.launched = StandaloneEmulator(*args, log=log).start()
        self.gateway = self.launched.gateway
        self.base = self.launched.base

    def stop(self) -> None:
        self.launched.stop()

    def post(self, path: str, data: Mapping[str, Any] | None = None) -> Any:
        response = requests.post(
            self.base + "control/" + path, json=dict(data or {}), headers=CONTROL_HEADERS, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, path: str, **params: str) -> Any:
        response = requests.get(self.base + "control/" + path, params=params, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def refund_calls(self, partner: str) -> list[dict[str, Any]]:
        """The emulator's record of every forex_refund call of ``partner``, oldest first."""
        calls = self.get("calls", service="forex_refund", partner=partner)["calls"]
        return sorted(calls, key=lambda call: call["id"])

    def refunded(self, partner: str, out_trade_no: str) -> str:
        """The amount the emulator has refunded on a trade (its own books)."""
        [trade] = self.get("trades", partner=partner, out_trade_no=out_trade_no)["trades"]
        return str(trade["refunded"])


def call_times(calls: list[dict[str, Any]]) -> list[datetime]:
    return sorted(datetime.fromisoformat(call["created_at"]) for call in calls)


class Worker:
    """``celery -A tests.tasks.celery_app worker`` in its own process group, logging to a file."""

    ready_text = " ready."

    def __init__(self, name: str, log: Path, env: Mapping[str, str], *, pool: str, concurrency: int) -> None:
        self.name = name
        self.log = log
        self.env = dict(env)
        self.pool = pool
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def argv(self) -> list[str]:
        return [
            *(sys.executable, "-m", "celery", "-A", "tests.tasks.celery_app", "worker"),
            *("-n", f"{self.name}@%h"),
            *("--pool", self.pool, "--concurrency", str(self.concurrency), "-Q", QUEUES, "-l", "INFO"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ]

    def start(self) -> Worker:
        self.starts += 1
        handle = self.log.open("ab")
        handle.write(f"\n===== start {self.starts} =====\n".encode())
        handle.flush()
        self.process = subprocess.Popen(
            self.argv(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=ROOT,
            start_new_session=True,
        )  # fmt: skip
        handle.close()
        started = self.starts
        wait_for(lambda: self._ready(started), timeout=60, what=f"worker {self.name} to be ready", every=0.1)
        return self

    def _ready(self, start: int) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"worker {self.name} exited with {self.process.returncode}:\n{self.text()}")
        current = self.text().split(f"===== start {start} =====", 1)[-1]
        return self.ready_text in current

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children): nothing is acknowledged or restored."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


class Beat(Worker):
    """``celery -A tests.tasks.celery_app beat``: sends the periodic tasks of ``CELERY_BEAT_SCHEDULE``."""

    ready_text = "beat: Starting..."

    def argv(self) -> list[str]:
        schedule_file = self.log.with_name(f"{self.name}-schedule")
        return [sys.executable, "-m", "celery", "-A", "tests.tasks.celery_app", "beat",
                "-s", str(schedule_file), "-l", "INFO"]  # fmt: skip


class Workers:
    """Starts workers sharing the test database and Redis; stops every one of them at teardown."""

    def __init__(self, directory: Path, database: str, redis_url: str) -> None:
        self.directory = directory
        self.database = database
        self.redis_url = redis_url
        self.started: list[Worker] = []

    def make(
        self,
        name: str,
        *,
        alipay: Mapping[str, Any] | None = None,
        annotations: Mapping[str, Any] | None = None,
        visibility_timeout: float = 3600,
        pool: str = "prefork",
        concurrency: int = 2,
        beat_every: float = 300,
        sweep_every: float = 300,
        kind: type[Worker] = Worker,
    ) -> Worker:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="tests.tasks.worker_settings",
            ALIPAY_TEST_DATABASE_NAME=self.database,
            ALIPAY_TEST_WORKER_ALIPAY=json.dumps(dict(alipay or {})),
            ALIPAY_TEST_TASK_ANNOTATIONS=json.dumps(dict(annotations or {})),
            ALIPAY_TEST_VISIBILITY_TIMEOUT=str(visibility_timeout),
            ALIPAY_TEST_BEAT_EVERY=str(beat_every),
            ALIPAY_TEST_SWEEP_EVERY=str(sweep_every),
            REDIS_URL=self.redis_url,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
        )
        log = self.directory / f"{kind.__name__.lower()}-{name}.log"
        worker = kind(name, log, env, pool=pool, concurrency=concurrency)
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} ---\n{w.text()[-6000:]}" for w in self.started)


def answered_just_now(merchant: Merchant) -> None:
    """A refund call of the merchant's partner answered just now: the next one must wait the spacing."""
    spacing = float(settings.ALIPAY.get("REFUND_SPACING", 3)) + refunds.SPACING_MARGIN
    RefundSlot.objects.update_or_create(
        partner=merchant.partner,
        defaults={"next_call_at": timezone.now() + timedelta(seconds=spacing), "in_flight_until": None},
    )


class RedisServer:
    """A Redis of one test, without persistence, on a port of its own: it can be stopped and started again."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_for(self._answers, timeout=20, what="redis-server to answer", every=0.1)
        return self

    def _answers(self) -> bool:
        try:
            with redis.Redis.from_url(self.url, socket_connect_timeout=1) as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        """Stop it the way a restart does; without persistence, every queued message is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


def order_number() -> str:
    return "TASK-" + uuid.uuid4().hex[:12].upper()


def paid_trade(merchant: Merchant, emulator: Emulator, amount: str = "100.00") -> Trade:
    """An online trade paid at the emulator by its default buyer, and known as paid here (by a query)."""
    start = trades.create_trade(merchant, out_trade_no=order_number(), amount=amount, subject="Teapot")
    assert requests.get(start.url, timeout=10).status_code == 200  # the buyer's browser opens the cashier
    emulator.post("pay", {"partner": merchant.partner, "out_trade_no": start.trade.out_trade_no})
    trades.sync_trade(start.trade)
    assert start.trade.status == "TRADE_FINISHED"
    return start.trade


def is_settled(refund: Refund) -> bool:
    """Final, or accepted asynchronously (refunds sent 00:00-01:30 Beijing time go asynchronous)."""
    if refund.status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED):
        return True
    return refund.status == RefundStatus.SUBMITTED and refund.request_params.get("is_sync") == "N"


def all_settled(ids: list[int]) -> bool:
    return all(is_settled(refund) for refund in Refund.objects.filter(pk__in=ids)) and bool(ids)


def settled_or_awaiting_file(ids: list[int]) -> bool:
    """Each refund is final, or was resent and answered REPEATED_REFUNDMENT_REQUEST (the documented answer to
    a used out_return_no): Alipay has it, and the day's transaction file will say how it ended."""
    found = Refund.objects.filter(pk__in=ids)
    return bool(ids) and all(
        is_settled(refund)
        or (refund.status == RefundStatus.UNKNOWN and refund.error_code == "REPEATED_REFUNDMENT_REQUEST")
        for refund in found
    )


def settle_from_tomorrows_file(
    emulator: Emulator, merchant: Merchant, stand_at: Callable[[datetime], Any]
) -> FileSettlementReport:
    """Stand the emulator and the domain a day later, and settle refunds from the file of the day they were
    sent (what the hourly settle_refunds_from_files does the morning after)."""
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    emulator.post("clock", {"now": tomorrow.isoformat()})
    stand_at(tomorrow)
    return settlement.settle_from_files(merchant=merchant)


def refund_made(refund: Refund) -> bool:
    """The refund was made (synchronously) or accepted for making (asynchronously) by the gateway."""
    return refund.status == RefundStatus.SUCCEEDED or (
        refund.status == RefundStatus.SUBMITTED and refund.request_params.get("is_sync") == "N"
    )
