"""ALIPAY["API_ENABLED"] decides whether the app's URLconf, django_alipay.urls, mounts the REST API."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from django.urls import clear_url_caches, resolve
from rest_framework.test import APIClient

import django_alipay.urls
from django_alipay import views


def _load_urlconfs() -> None:
    """Build the URLconfs again from the current settings (Django caches them, and their resolvers)."""
    importlib.reload(django_alipay.urls)
    importlib.reload(importlib.import_module("tests.api.urls_app"))
    clear_url_caches()


@pytest.fixture
def app_urls(settings: Any) -> Iterator[Any]:
    """``app_urls(api_enabled=...)``: serve tests.api.urls_app, rebuilt under that setting."""

    def mount(*, api_enabled: bool) -> None:
        stack.append(override_settings(ALIPAY={**settings.ALIPAY, "API_ENABLED": api_enabled}))
        stack[-1].enable()
        _load_urlconfs()

    stack: list[override_settings] = []
    with override_settings(ROOT_URLCONF="tests.api.urls_app"):
        try:
            yield mount
        finally:
            for override in reversed(stack):
                override.disable()
            _load_urlconfs()  # as the suite's own settings mount them, for the tests that follow


@pytest.mark.parametrize(("api_enabled", "status"), [(False, 404), (True, 200)])
def test_the_api_is_mounted_only_when_api_enabled_is_true(
    api_enabled: bool, status: int, app_urls: Any, admin_user: Any
) -> None:
    app_urls(api_enabled=api_enabled)
    client = APIClient()
    client.force_authenticate(admin_user)

    answer = client.get("/alipay/api/trades/", headers={"accept": "application/json"})

    assert answer.status_code == status
    assert resolve("/alipay/notify/tok/").func is views.notify  # the app's own URLs either way
