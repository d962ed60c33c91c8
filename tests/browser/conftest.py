"""Browser fixtures: headless Chromium driven by Playwright, a live shop server, and the standalone emulator.

Missing Chromium or Playwright makes these tests fail, never skip: the admin is only known to work for a
shop owner once a real browser has used it. Install with ``.venv/bin/pip install playwright`` and Debian's
``chromium`` package; never ``playwright install`` (it downloads browsers).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import django.contrib.admin
import pytest
import requests
from django.test.utils import override_settings

from django_alipay.testing.browser import headless_chromium
from tests.conftest import CONTROL_HEADERS, standalone_emulator

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
ADMIN_STATIC = pathlib.Path(django.contrib.admin.__file__).parent / "static"


@pytest.fixture(scope="session")
def admin_static() -> Iterator[None]:
    """Serve the admin's CSS and JavaScript from the live server (the test settings have no staticfiles)."""
    with override_settings(STATIC_URL="/static/", STATIC_ROOT=str(ADMIN_STATIC)):
        yield


@pytest.fixture(scope="session")
def live_server(admin_static: None, live_server: Any) -> Any:
    """pytest-django's live server, started once the admin's static files can be served."""
    return live_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium; fails the test (it does not skip) when Playwright or Chromium is missing."""
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page (its own cookies), wide enough for the admin."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-GB")
    context.set_default_timeout(20_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def screenshot(page: Any) -> Any:
    """Save a full-page screenshot under artifacts/screenshots/ (gitignored) for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> pathlib.Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    """The standalone emulator (its own process and database); its notifications go where trades say."""
    with standalone_emulator() as url:
        yield url


def control(emulator: str, path: str, **data: Any) -> Any:
    """POST to the emulator's control API and return its JSON answer."""
    response = requests.post(emulator + "control/" + path, json=data, headers=CONTROL_HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()
