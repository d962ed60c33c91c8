"""``python -m django_alipay.emulator``: the ready line, the key fingerprint line, options and clean stops."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, EmulatorProcess, Merchant, public_pem


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ready_line_fingerprints_and_a_clean_stop(tmp_path: Path, sig: int) -> None:
    emu = EmulatorProcess(tmp_path, "--time-scale", "50").start()
    match = re.fullmatch(r"ready http://127\.0\.0\.1:([0-9]+)/gateway\.do", emu.ready_line)
    assert match
    assert int(match.group(1)) > 0
    keys = emu.control("keys")["keys"]
    for name in ("RSA", "DSA"):
        pem = keys[name]["public_key_pem"]
        der = base64.b64decode("".join(line for line in pem.splitlines() if "-----" not in line))
        assert keys[name]["fingerprint"] == "SHA256:" + hashlib.sha256(der).hexdigest()
    assert (
        emu.key_line == f"alipay-public-key RSA {keys['RSA']['fingerprint']} DSA {keys['DSA']['fingerprint']}"
    )
    assert emu.control("clock")["time_scale"] == 50
    assert emu.stop(sig) == 0
    assert "stopped" in emu.log.read_text()
    assert emu.lines.empty()  # nothing else was printed to stdout


def test_partner_from_the_command_line(tmp_path: Path, rsa_key) -> None:
    key_file = tmp_path / "merchant.pem"
    key_file.write_text(public_pem(rsa_key))
    partner = "2088101122136241"
    emu = EmulatorProcess(
        tmp_path,
        "--partner", partner,
        "--md5-key", "760bdzec6y9goq7ctyx96ezkz78287de",
        "--merchant-public-key", str(key_file),
        "--sign-type", "RSA2",
        "--services", "single_trade_query,notify_verify",
    ).start()  # fmt: skip
    try:
        (registered,) = emu.control("partners")["partners"]
        assert registered["partner"] == partner
        assert registered["sign_types"] == ["RSA2"]
        merchant = Merchant(emu, partner, "760bdzec6y9goq7ctyx96ezkz78287de", rsa_key)
        assert (
            merchant.error("single_trade_query", {"out_trade_no": "x"}, sign_type="RSA2") == "TRADE_NOT_EXIST"
        )
        assert (
            merchant.error("single_trade_query", {"out_trade_no": "x"}, sign_type="MD5")
            == "ILLEGAL_SIGN_TYPE"
        )
        assert merchant.error("forex_rate_file", {}, sign_type="RSA2") == "ILLEGAL_PARTNER_EXTERFACE"
    finally:
        assert emu.stop() == 0


def test_a_bad_partner_id_stops_with_an_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "django_alipay.emulator",
            "--port",
            "0",
            "--partner",
            "12345",
            "--md5-key",
            "k" * 32,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "16 digits" in result.stderr
    assert result.stdout == ""


def test_help_lists_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "django_alipay.emulator", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for option in (
        "--host",
        "--port",
        "--partner",
        "--md5-key",
        "--merchant-public-key",
        "--sign-type",
        "--time-scale",
    ):
        assert option in result.stdout


def test_a_burst_of_connections_waits_in_the_listen_queue_instead_of_being_dropped(tmp_path: Path) -> None:
    """Django's development server listens with a queue of 10 pending connections; a burst of refunds from
    50 threads overflowed it, the kernel dropped the rest and clients saw resets. While the emulator is
    frozen (SIGSTOP: nothing is accepted), the kernel must still complete at least 64 connections."""
    emu = EmulatorProcess(tmp_path).start()
    assert emu.process is not None
    port = int(emu.gateway.split(":")[2].split("/")[0])
    sockets: list[socket.socket] = []
    os.kill(emu.process.pid, signal.SIGSTOP)
    try:
        for _ in range(64):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            sockets.append(sock)
        deadline = time.monotonic() + 3.0
        waiting = list(sockets)
        while waiting and time.monotonic() < deadline:
            _, writable, _ = select.select([], waiting, [], max(0.0, deadline - time.monotonic()))
            waiting = [sock for sock in waiting if sock not in writable]
        connected = [
            sock
            for sock in sockets
            if sock not in waiting and not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        ]
        assert len(connected) == 64, (
            f"{len(connected)} of 64 connections completed while the emulator was busy"
        )
    finally:
        for sock in sockets:
            sock.close()
        os.kill(emu.process.pid, signal.SIGCONT)
        # The queue is this test's point; test_ready_line_fingerprints_and_a_clean_stop checks clean stops.
        emu.stop()
