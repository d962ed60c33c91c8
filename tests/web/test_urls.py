"""The app's URLconf: named notify and return endpoints, and the REST API only when it can be served."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from django.urls import resolve, reverse

from django_alipay import urls, views


def test_the_endpoints_have_stable_names_under_the_app_namespace() -> None:
    assert reverse("django_alipay:notify", args=["tok"]) == "/alipay/notify/tok/"
    assert reverse("django_alipay:return", args=["tok"]) == "/alipay/return/tok/"
    assert resolve("/alipay/notify/tok/").func is views.notify
    assert resolve("/alipay/return/tok/").func is views.return_page


def test_the_api_is_not_mounted_without_django_rest_framework(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def without_drf(name: str, *args: Any) -> Any:
        return None if name == "rest_framework" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_drf)
    assert urls._api_available() is False


def test_the_api_is_not_mounted_when_its_module_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def without_api(name: str, *args: Any) -> Any:
        if name == "django_alipay.api.urls":
            raise ModuleNotFoundError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_api)
    assert urls._api_available() is False
