"""The worked example of docs/testing.md runs, unchanged, as a shop's test file in a fresh pytest run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .fresh_run import SHOP_SETTINGS, SHOP_URLS

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"

pytestmark = pytest.mark.slow


def example(name: str) -> str:
    """The code block that follows ``<!-- example: name -->`` in docs/testing.md."""
    found = re.search(
        rf"<!-- example: {re.escape(name)} -->\n```python\n(.*?)\n```", DOC.read_text(), re.DOTALL
    )
    assert found, f"docs/testing.md has no example {name!r}"
    return found.group(1)


def test_the_documented_settings_are_the_ones_the_example_runs_with() -> None:
    documented = example("settings")

    for line in ('"NOTIFY_URL_BASE": "http://127.0.0.1:9/alipay/notify/"', '"REFUND_SPACING": 0'):
        assert line in documented
        assert line in SHOP_SETTINGS


def test_the_worked_example_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        shop_settings=SHOP_SETTINGS, shop_urls=SHOP_URLS, test_alipay=example("test_alipay.py")
    )

    result = pytester.runpytest_subprocess(
        "-p",
        "django_alipay.testing.plugin",
        "--ds",
        "shop_settings",
        "-p",
        "no:cacheprovider",
        "--strict-markers",
    )

    result.assert_outcomes(passed=5)
