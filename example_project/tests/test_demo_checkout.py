"""manage.py demo_checkout, run as a new user would: a subprocess, its exit status and what it prints."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

PROJECT = pathlib.Path(__file__).resolve().parents[1]


def test_the_headless_journey_completes_and_says_so() -> None:
    # Its own throwaway SQLite database: the command makes one when DATABASE_URL is not set.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
    done = subprocess.run(
        [sys.executable, "manage.py", "demo_checkout"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout
    assert done.returncode == 0, output + done.stderr[-3000:]
    for line in (
        "Checkout: cart -> create_trade -> cashier",
        "signature + notify_verify: verified, outcome: processed",
        "status.json: Paid",
        "refunded 22.50 USD, 83.50 USD left",
        "409 refund_amount_exceeded: This refund of 90.00 USD exceeds what is still refundable",
        "nothing was sent to Alipay",
        "spot pay answered at once -> Paid",
        "409 reverse_not_allowed:",
        "a reversal is only possible on the day of payment, so refund it instead",
        "All 10 steps did what they should.",
    ):
        assert line in output, line
    assert "✗" not in output
