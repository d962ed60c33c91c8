"""Under pytest-xdist each worker flushes a Redis database of its own: no worker empties another's queues."""

from __future__ import annotations

import os

from tests.conftest import _redis_database_of_this_worker


def test_each_xdist_worker_uses_the_redis_database_numbered_after_it(redis_url: str) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    assert redis_url.rpartition("/")[2] == (worker[2:] if worker else "0")


def test_the_worker_number_picks_the_database_and_a_serial_run_keeps_its_own() -> None:
    url = "redis://127.0.0.1:6399/0"
    assert _redis_database_of_this_worker(url, "gw0") == "redis://127.0.0.1:6399/0"
    assert _redis_database_of_this_worker(url, "gw3") == "redis://127.0.0.1:6399/3"
    assert _redis_database_of_this_worker("redis://127.0.0.1:6399/5", "") == "redis://127.0.0.1:6399/5"
    assert _redis_database_of_this_worker("", "gw1") == ""
