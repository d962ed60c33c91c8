"""Load the test kit's pytest plugin and pytester for these tests, and give the shop its notify URL."""

from __future__ import annotations

from typing import Any

import pytest

from django_alipay.testing import plugin as kit_plugin

#: Nothing listens on the discard port: the emulator's own sends fail at once and tests relay them.
NOTIFY_URL_BASE = "http://127.0.0.1:9/alipay/notify/"


def pytest_configure(config: pytest.Config) -> None:
    manager = config.pluginmanager
    # Once pyproject.toml registers the pytest11 entry point the plugin is already loaded: never twice.
    if not manager.is_registered(kit_plugin):
        manager.register(kit_plugin, "django_alipay.testing.plugin")
    # pytest refuses ``pytest_plugins`` outside the root conftest; importing the plugin is the equivalent.
    if not manager.has_plugin("pytester"):
        manager.import_plugin("pytester")


@pytest.fixture
def shop_settings(settings: Any) -> Any:
    """The test project's settings with a notify URL base (merchants then send notify_url to the gateway)."""
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_URL_BASE": NOTIFY_URL_BASE}
    return settings
