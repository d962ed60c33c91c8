"""EmulatorProcess, the test kit's standalone emulator: starting it whatever its control token looks like."""

from __future__ import annotations

from django_alipay.testing import EmulatorProcess


def test_an_emulator_starts_when_its_control_token_begins_with_a_dash() -> None:
    # Random URL-safe tokens begin with "-" one time in 64: passed as a separate argument, the command line
    # took it for an option and the emulator never started.
    emulator = EmulatorProcess()
    emulator.control_token = "-" + emulator.control_token[1:]
    emulator._session.headers["X-Emulator-Token"] = emulator.control_token
    with emulator:
        assert emulator.running
        answer = emulator.configure(notify_id_ttl=30)  # a POST: the token was accepted
        assert float(answer["notify_id_ttl"]) == 30
