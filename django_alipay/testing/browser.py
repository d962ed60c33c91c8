"""Headless Chromium for browser tests of the admin, the cashier and a shop's pages, driven by Playwright.

Uses the system's Chromium (Debian's ``chromium`` package, or ``ALIPAY_TEST_CHROMIUM``) rather than a browser
Playwright downloads, started with the flags that keep it quiet on a closed network. A missing Playwright or
Chromium fails the test with the command that installs it: a browser test that silently skips proves nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["CHROMIUM_ARGS", "chromium_path", "headless_chromium"]

#: Headless, no sandbox (tests often run as root), none of the background traffic a closed network refuses.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    """The Chromium executable: ``ALIPAY_TEST_CHROMIUM``, else Debian's ``/usr/bin/chromium``."""
    return os.environ.get("ALIPAY_TEST_CHROMIUM") or "/usr/bin/chromium"


@contextmanager
def headless_chromium(executable: str | None = None) -> Iterator[Any]:
    """A Playwright ``Browser`` running headless Chromium, closed on exit.

    Fails the current test (never skips) when Playwright or Chromium is missing. Playwright's sync API runs
    an event loop in this thread, so Django's async-safety guard is lifted for the block: the test's own
    ORM calls stay synchronous.
    """
    import pytest  # the test kit's one runner dependency, imported only when a browser is wanted

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: `pip install playwright` (not `playwright install`)")
    path = executable or chromium_path()
    if not os.access(path, os.X_OK):
        pytest.fail(f"Chromium is not installed at {path}: `apt-get install chromium` (Debian's package)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS))
            try:
                yield chromium
            finally:
                chromium.close()
