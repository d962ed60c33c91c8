"""Start ``python -m django_alipay.emulator`` in a subprocess for the tests, read its ready line, and stop it.

The one launcher of the suite's own emulators (the test kit's public ``EmulatorProcess`` is a product, tested
as such): its stdout pipe and its log file are always closed on :meth:`StandaloneEmulator.stop`, so no test
leaves a ResourceWarning behind for a later one.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from django_alipay.testing.emulator import stop_process

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class EmulatorDidNotStart(AssertionError):
    """The process ended or stayed silent instead of printing ``ready <gateway URL>``."""


class StandaloneEmulator:
    """One emulator process on a free port of 127.0.0.1 (``--port 0 --quiet`` plus ``args``).

    ``log``: a file for its stderr (kept after stop), else a temporary file (read with :meth:`stderr`).
    ``env``: variables added to this process's environment (e.g. ``TZ``). Every line it prints after the
    ready line waits in :attr:`lines` (the fingerprint line comes next).
    """

    def __init__(
        self,
        *args: str,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.args = tuple(args)
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.start_timeout = start_timeout
        self.lines: queue.Queue[str] = queue.Queue()
        self.process: subprocess.Popen[str] | None = None
        self.ready_line = ""
        self._stderr: IO[Any] | None = None

    def start(self) -> StandaloneEmulator:
        """Start the process and wait for its ready line; EmulatorDidNotStart (with its stderr) if none."""
        if self.log is not None:
            self._stderr = self.log.open("w+b")
        else:
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "django_alipay.emulator", "--host", "127.0.0.1", "--port", "0"]
        self.process = subprocess.Popen(
            [*command, "--quiet", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,  # a hung emulator and anything it started can be killed as a group
        )
        threading.Thread(target=self._pump, args=(self.process,), daemon=True).start()
        self.ready_line = self._first_line(self.process)
        if not self.ready_line.startswith("ready http://"):
            log = self.stderr()
            self.stop()
            raise EmulatorDidNotStart(
                f"the emulator did not start: {self.ready_line!r}; its stderr ends:\n{log}"
            )
        return self

    def _pump(self, process: subprocess.Popen[str]) -> None:
        # Keeps reading so the pipe never fills.
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.put(line.rstrip("\n"))

    def _first_line(self, process: subprocess.Popen[str]) -> str:
        # Waits for the ready line, but not a minute for a process that has already ended.
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                return self.lines.get(timeout=0.1)
            except queue.Empty:
                if process.poll() is not None:
                    try:
                        return self.lines.get(timeout=1)
                    except queue.Empty:
                        return ""
        return ""

    @property
    def gateway(self) -> str:
        """``http://127.0.0.1:<port>/gateway.do``."""
        return self.ready_line.split(" ", 1)[1]

    @property
    def base(self) -> str:
        """The emulator's base URL, ending in ``/``."""
        return self.gateway.removesuffix("gateway.do")

    def next_line(self, timeout: float = START_TIMEOUT) -> str:
        """The next line it printed after the ready line (the key fingerprints, say)."""
        return self.lines.get(timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Send ``sig`` (then SIGKILL to its group after 10 s), close its pipe and log; its exit code."""
        process, self.process = self.process, None
        code = stop_process(process, sig, STOP_TIMEOUT) if process is not None else None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return code

    def stderr(self) -> str:
        """The last 4000 characters of its stderr."""
        if self._stderr is not None:
            self._stderr.flush()
            self._stderr.seek(0)
            return bytes(self._stderr.read()).decode("utf-8", "replace")[-4000:]
        if self.log is not None and self.log.exists():
            return self.log.read_text(errors="replace")[-4000:]
        return ""

    def __enter__(self) -> StandaloneEmulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
