"""The optional parts (REST API, Celery tasks) say what to install when switched on without their packages.

Each test hides the packages from the import system (a ``None`` entry in ``sys.modules`` is how Python marks
a module that cannot be imported), so they prove the same thing in the full test run as in ``tox -e core``,
where the packages are really absent.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest
from django.test import override_settings

from django_alipay.checks import check_optional_parts
from django_alipay.exceptions import AlipayConfigurationError

API_PACKAGES = ("rest_framework", "drf_spectacular")


@pytest.fixture
def hide(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``hide("celery", ...)``: make packages unimportable and forget modules that imported them."""

    def hide_packages(*names: str, forget: tuple[str, ...] = ()) -> None:
        for name in names:
            monkeypatch.setitem(sys.modules, name, None)
        for name in forget:
            if name in sys.modules:
                monkeypatch.delitem(sys.modules, name)

    return hide_packages


def check_ids(**alipay: Any) -> list[str]:
    from django.conf import settings

    with override_settings(ALIPAY={**settings.ALIPAY, **alipay}):
        return sorted(message.id for message in check_optional_parts())


def test_the_api_switched_on_without_django_rest_framework_is_e021(hide: Any) -> None:
    hide(*API_PACKAGES)

    assert check_ids(API_ENABLED=True) == ["django_alipay.E021"]
    assert check_ids(API_ENABLED=False) == []


def test_celery_switched_on_without_celery_is_e020(hide: Any) -> None:
    hide("celery")

    assert check_ids(CELERY_ENABLED=True) == ["django_alipay.E020"]
    assert check_ids(CELERY_ENABLED=False) == []


def test_the_e020_and_e021_messages_say_what_to_install(hide: Any) -> None:
    from django.conf import settings

    hide("celery", *API_PACKAGES)
    with override_settings(ALIPAY={**settings.ALIPAY, "CELERY_ENABLED": True, "API_ENABLED": True}):
        hints = {message.id: message.hint for message in check_optional_parts()}

    assert "pip install celery" in hints["django_alipay.E020"]
    assert "pip install djangorestframework" in hints["django_alipay.E021"]


def test_importing_the_api_without_its_packages_names_them(hide: Any) -> None:
    hide(*API_PACKAGES, forget=("django_alipay.api",))

    with pytest.raises(AlipayConfigurationError, match="pip install djangorestframework drf-spectacular"):
        importlib.import_module("django_alipay.api")


def test_importing_the_tasks_without_celery_says_so(hide: Any) -> None:
    hide("celery", forget=("django_alipay.tasks",))

    with pytest.raises(AlipayConfigurationError, match="needs Celery: pip install celery"):
        importlib.import_module("django_alipay.tasks")


def test_the_urls_leave_the_api_out_without_django_rest_framework(hide: Any) -> None:
    from django_alipay import urls

    hide(*API_PACKAGES)

    assert urls._api_available() is False


def test_refunds_are_sent_without_celery_by_default(hide: Any) -> None:
    from django_alipay.domain.refunds import refund_dispatcher, submit

    hide("celery", forget=("django_alipay.tasks",))

    assert refund_dispatcher() is submit
