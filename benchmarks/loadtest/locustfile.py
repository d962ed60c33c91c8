"""Locust side of the load test: replay Alipay's signed notifications at a fixed arrival rate, duplicates too.

Run by ``benchmarks/loadtest/run.py`` (not meant to be started by hand); it reads its inputs from the
environment:

* ``LOADTEST_PLAN``: JSON written by run.py: the shop's notify path and, per trade, the notification body
  exactly as the emulator's notifier sent it (form-encoded, signed with the emulator's key, real notify_id).
* ``LOADTEST_PHASES``: JSON list of ``[name, rate per second, seconds]`` (e.g. steady 100/s 60 s, spike
  500/s 10 s); ``LOADTEST_DUPLICATES`` the share of requests that re-send an already sent notify_id;
  ``LOADTEST_SEED``; ``LOADTEST_POOL_SECONDS`` how many seconds of arrivals the user pool can hold in
  flight; ``LOADTEST_LOG`` where the per-request log (JSON lines) is written at the end.

Each request carries an ``X-Loadtest-Tag`` header (``s<slot>``) so the shop's probe can log its timing
under the same name, and the log keeps each answer's ``Retry-After`` (only the shop's in-flight limit,
``ALIPAY["NOTIFY_MAX_IN_FLIGHT"]``, answers 503 with one: such a request was shed, nothing stored).

Arrivals are open-loop: a pacer hands out slots at exact times (slot k of a phase at ``k / rate``); an idle
user takes the next slot, sleeps until its time and sends. A slot is late only when every user of the pool
is waiting for a response, and the lateness is logged, so a saturated server shows up as late slots (and as
latency counted from the slot, not from the send) instead of silently lowering the rate.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import gevent
from locust import LoadTestShape, constant, events, task
from locust.contrib.fasthttp import FastHttpUser

#: Users spawned per second (gevent greenlets: cheap). A phase's pool is spawned before the phase begins.
SPAWN_RATE = 1000.0
#: Seconds of margin on top of the spawning time, before the first slot and before a faster phase.
SPAWN_MARGIN = 2.0
#: Seconds the last responses may take after the last slot before the run is stopped anyway.
DRAIN_SECONDS = 90.0
#: Duplicates re-send one of the last this many first sends (in flight or just answered).
DUPLICATE_WINDOW = 200


@dataclass(frozen=True)
class Phase:
    """One constant-rate part of the profile."""

    name: str
    rate: float
    seconds: float


@dataclass
class Slot:
    """One arrival: its index, its scheduled time (epoch seconds) and the phase it belongs to."""

    index: int
    at: float
    offset: float
    phase: str


class Pacer:
    """Hands out arrival slots at exact times and picks, at send time, which notification each one carries."""

    def __init__(
        self, phases: list[Phase], items: list[dict[str, str]], duplicates: float, seed: int
    ) -> None:
        self.phases = phases
        self.items = items
        self.duplicates = duplicates
        self.seed = seed
        self.t0: float | None = None
        self._next_offset = 0.0
        self._index = 0
        self._fresh = 0
        self._recent: deque[int] = deque(maxlen=DUPLICATE_WINDOW)
        self.in_flight = 0
        #: Slots handed out and not answered yet (waiting for their time, or in flight).
        self.outstanding = 0
        self.finished = False
        self.records: list[dict[str, Any]] = []
        self.total_seconds = sum(p.seconds for p in phases)

    def start(self, t0: float) -> None:
        """Fix the time of slot 0."""
        if self.t0 is None:
            self.t0 = t0

    def _phase_at(self, offset: float) -> Phase | None:
        start = 0.0
        for phase in self.phases:
            if offset < start + phase.seconds - 1e-9:
                return phase
            start += phase.seconds
        return None

    def next_slot(self) -> Slot | None:
        """The next arrival slot, or None once the profile is over."""
        if self.t0 is None:
            return None
        offset = self._next_offset
        phase = self._phase_at(offset)
        if phase is None:
            self.finished = True
            return None
        self._next_offset = offset + 1.0 / phase.rate
        slot = Slot(self._index, self.t0 + offset, offset, phase.name)
        self._index += 1
        self.outstanding += 1
        return slot

    def pick(self, slot: Slot) -> tuple[int, bool]:
        """Which item slot ``slot`` sends: (index into items, is it a duplicate)."""
        draw = random.Random(self.seed * 1_000_003 + slot.index).random()
        wants_duplicate = draw < self.duplicates and bool(self._recent)
        if not wants_duplicate and self._fresh < len(self.items):
            item = self._fresh
            self._fresh += 1
            self._recent.append(item)
            return item, False
        if not self._recent:
            raise RuntimeError("no notification to send: the plan is empty")
        # Out of fresh notifications (the plan is sized with a margin, so this is rare): re-send one.
        chooser = random.Random(self.seed * 7_000_001 + slot.index)
        return self._recent[chooser.randrange(len(self._recent))], True


def _load_pacer() -> tuple[Pacer, str]:
    plan_path = os.environ.get("LOADTEST_PLAN")
    if not plan_path:
        # Imported without run.py (e.g. `locust --help`): an empty pacer that never sends.
        return Pacer([], [], 0.0, 0), "/"
    with open(plan_path, encoding="utf-8") as handle:
        plan = json.load(handle)
    phases = [Phase(str(n), float(r), float(s)) for n, r, s in json.loads(os.environ["LOADTEST_PHASES"])]
    pacer = Pacer(
        phases,
        plan["items"],
        float(os.environ.get("LOADTEST_DUPLICATES", "0.2")),
        int(os.environ.get("LOADTEST_SEED", "1")),
    )
    return pacer, str(plan["notify_path"])


PACER, NOTIFY_PATH = _load_pacer()
POOL_SECONDS = float(os.environ.get("LOADTEST_POOL_SECONDS", "10"))


def pool_size(rate: float) -> int:
    """Users needed to keep ``rate`` arrivals per second going while each waits up to POOL_SECONDS."""
    return max(20, math.ceil(rate * POOL_SECONDS))


class NotifyingGateway(FastHttpUser):
    """Alipay's notifier: POSTs signed trade_status_sync notifications to the shop's notify URL."""

    wait_time = constant(0)
    network_timeout = 120.0
    connection_timeout = 10.0

    @task
    def notify(self) -> None:
        """Take the next slot, wait for its time, send its notification, log the outcome."""
        slot = PACER.next_slot()
        if slot is None:
            gevent.sleep(0.2)
            return
        delay = slot.at - time.time()
        if delay > 0:
            gevent.sleep(delay)
        item_index, duplicate = PACER.pick(slot)
        item = PACER.items[item_index]
        fired = time.time()
        PACER.in_flight += 1
        status = 0
        error = ""
        body_text = ""
        retry_after = ""
        try:
            with self.client.post(
                NOTIFY_PATH,
                data=item["body"],
                # One connection per notification, closed after the answer, as the emulator's notifier does
                # (django_alipay/emulator/notifier.py, _post).
                # X-Loadtest-Tag: run.py matches the shop's probe line to this request (the view ignores it).
                headers={
                    "Content-Type": item["content_type"],
                    "User-Agent": "Mozilla/4.0",
                    "Connection": "close",
                    "X-Loadtest-Tag": f"s{slot.index}",
                },
                name="notify (duplicate)" if duplicate else "notify (first send)",
                catch_response=True,
            ) as response:
                status = int(response.status_code or 0)
                body_text = (response.text or "")[:40] if status else ""
                # The in-flight limit's 503 carries Retry-After; a "notify_verify pending" 503 does not.
                retry_after = str((response.headers or {}).get("Retry-After") or "") if status else ""
                if status == 200 and body_text.strip() == "success":
                    response.success()
                else:
                    response.failure(f"HTTP {status}: {body_text.strip()[:30]}")
                error = "" if status else str(response.error)[:200]
        except Exception as exc:  # a broken connection is logged as such, never stops the user
            error = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            PACER.in_flight -= 1
            PACER.outstanding -= 1
        done = time.time()
        PACER.records.append(
            {
                "slot": slot.index,
                "phase": slot.phase,
                "offset": round(slot.offset, 6),
                "late": round(fired - slot.at, 6),
                "fired": round(fired, 6),
                "seconds": round(done - fired, 6),
                "status": status,
                "body": body_text.strip()[:20],
                "retry_after": retry_after[:20],
                "duplicate": duplicate,
                "item": item_index,
                "notify_id": item["notify_id"],
                "error": error,
            }
        )


class Profile(LoadTestShape):
    """The arrival profile: a pool sized for each phase's rate; stops once the last response is in."""

    def tick(self) -> tuple[int, float] | None:
        """Users wanted now (the pacer sets the rate); None ends the run."""
        if not PACER.phases:
            return None
        run_time = self.get_run_time()
        lead = pool_size(PACER.phases[0].rate) / SPAWN_RATE + SPAWN_MARGIN
        PACER.start(time.time() + max(0.0, lead - run_time))
        elapsed = run_time - lead
        # The pool of every phase that has begun or is about to (its extra users take a moment to spawn);
        # it never shrinks, so the users of a spike are still there to drain it.
        users, start = 0, 0.0
        for phase in PACER.phases:
            wanted = pool_size(phase.rate)
            if elapsed >= start - (max(0, wanted - users) / SPAWN_RATE + SPAWN_MARGIN):
                users = max(users, wanted)
            start += phase.seconds
        if elapsed < PACER.total_seconds:
            return users, SPAWN_RATE
        if PACER.outstanding > 0 and elapsed < PACER.total_seconds + DRAIN_SECONDS:
            return users, SPAWN_RATE
        return None


@events.quitting.add_listener
def _write_log(environment: Any, **kwargs: Any) -> None:
    path = os.environ.get("LOADTEST_LOG")
    if not path:
        return
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(
            json.dumps(
                {
                    "t0": PACER.t0,
                    "phases": [[p.name, p.rate, p.seconds] for p in PACER.phases],
                    "in_flight_at_stop": PACER.in_flight,
                    "fresh_used": PACER._fresh,
                    "fresh_available": len(PACER.items),
                }
            )
            + "\n"
        )
        for record in PACER.records:
            handle.write(json.dumps(record) + "\n")
