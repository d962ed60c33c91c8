"""Two emulator processes on one PostgreSQL database: only row locks keep their concurrent refunds apart."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pytest

from .conftest import BARCODE, EmulatorProcess, Merchant, new_id


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh PostgreSQL database; fails (never skips) without the DATABASE_URL of scripts/with-services."""
    url = os.environ.get("DATABASE_URL", "")
    assert url.startswith(("postgres://", "postgresql://")), (
        "this test needs PostgreSQL (row locks across processes); run it through scripts/with-services, e.g. "
        "scripts/with-services .venv/bin/python -m pytest tests/emulator"
    )
    import psycopg

    name = "emulator_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    yield urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_refunds_split_across_two_processes_never_exceed_the_payment(tmp_path, database_url: str) -> None:
    first = EmulatorProcess(tmp_path / "a", "--database-url", database_url)
    first.workdir.mkdir()
    first.start()  # migrates the database before the second one starts
    second = EmulatorProcess(tmp_path / "b", "--database-url", database_url)
    second.workdir.mkdir()
    second.start()
    try:
        merchant = first.merchant()
        ptid = merchant.spot_pay(BARCODE, "100.00")["partner_trans_id"]
        # The same partner, seen through each process (same database, so the same keys and trades).
        sides = [merchant, Merchant(second, merchant.partner, merchant.md5_key)]

        def refund(number: int) -> str:
            params = {
                "partner_trans_id": ptid,
                "partner_refund_id": new_id("F"),
                "refund_amount": "10.00",
                "currency": "USD",
            }
            fields = sides[number % 2].ok("alipay.acquire.overseas.spot.refund", params)
            return fields.get("error") or fields["result_code"]

        with ThreadPoolExecutor(max_workers=20) as pool:
            results = Counter(pool.map(refund, range(20)))
        assert results["SUCCESS"] == 10
        assert set(results) <= {"SUCCESS", "RETURN_AMOUNT_EXCEED", "TRADE_HAS_CLOSE"}
        (trade,) = second.control(f"trades?partner={merchant.partner}")["trades"]
        assert (trade["refunded"], trade["status"]) == ("100.00", "TRADE_CLOSED")
    finally:
        assert first.stop() == 0
        assert second.stop() == 0
