"""stop_process: the one way the test kit and the suite stop the processes they start."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from django_alipay.testing.emulator import stop_process

STUBBORN = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def _start(code: str, *, own_group: bool) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=own_group
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


@pytest.mark.parametrize("own_group", [True, False])
def test_a_process_that_ignores_the_signal_is_killed_after_the_timeout(own_group: bool) -> None:
    process = _start(STUBBORN, own_group=own_group)

    code = stop_process(process, timeout=0.5)

    assert code == -signal.SIGKILL
    assert process.stdout is not None
    assert process.stdout.closed


def test_a_process_ends_on_the_signal_it_is_sent() -> None:
    process = _start("import time\nprint('ready', flush=True)\ntime.sleep(60)\n", own_group=True)

    assert stop_process(process, signal.SIGINT) != 0
    assert process.returncode is not None
    assert process.stdout is not None
    assert process.stdout.closed


def test_a_process_that_already_ended_gives_its_exit_code() -> None:
    command = [sys.executable, "-c", "raise SystemExit(3)"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    process.wait()

    assert stop_process(process) == 3
    assert process.stdout is not None
    assert process.stdout.closed
