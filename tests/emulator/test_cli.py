"""``python -m django_alipay.emulator``: the ready line, the key fingerprint line, options and clean stops."""

from __future__ import annotations

import base64
import hashlib
import re
import signal
import subprocess
import sys
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
