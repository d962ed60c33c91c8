"""Fixtures of the attack list: the web tests' fake gateway, merchant, trades and staff users."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import gateway, make_staff, make_trade, merchant

__all__ = ["gateway", "make_staff", "make_trade", "merchant"]


@pytest.fixture
def rest_api(settings: Any) -> None:
    """The REST API in use: Django REST framework installed (tests/settings.py leaves it out) and mounted.

    The API is served at /alipay/api/ by tests/api/urls.py (the app's URLconf mounts it only with
    ``API_ENABLED``, decided when the URLconf is loaded).
    """
    apps = [*settings.INSTALLED_APPS]
    settings.INSTALLED_APPS = apps + [
        name for name in ("rest_framework", "drf_spectacular") if name not in apps
    ]
    settings.ALIPAY = {**settings.ALIPAY, "API_ENABLED": True}
    settings.ROOT_URLCONF = "tests.api.urls"
