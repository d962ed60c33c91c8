"""Fixtures of the example shop's tests: its merchant on the test kit's emulator, shoppers and staff."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client
from shop.models import Product

from django_alipay.models import Merchant
from django_alipay.testing import EmulatorProcess

STAFF_PASSWORD = "a-long-test-password"  # noqa: S105 - a test user's


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A test database in a file, not in memory: the live server's threads then get connections of their own.

    With in-memory SQLite, Django shares one connection between the test and every live-server thread, so a
    notification being stored in one thread's transaction would collide with a status poll in another.
    """
    database = django_settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "shop-test.sqlite3")


@pytest.fixture(autouse=True)
def _no_background_notifier(settings: Any) -> None:
    """The emulator mounted in the shop must not start its notifier thread inside the test process."""
    settings.ALIPAY_EMULATOR = {"NOTIFIER_THREAD": False}


@pytest.fixture
def products(db: None) -> list[Product]:
    """The demo's products (a transactional test flushes what the data migration made, so make them again)."""
    seed = importlib.import_module("shop.migrations.0002_products")
    seed.add_products(django_apps, None)
    return list(Product.objects.all())


@pytest.fixture
def merchant(alipay_emulator: EmulatorProcess, products: list[Product]) -> Merchant:
    """The shop's merchant (RSA2), pointed at this test's emulator process."""
    return alipay_emulator.merchant(sign_type="RSA2", name=django_settings.SHOP_MERCHANT_NAME)


@pytest.fixture
def staff(db: None) -> User:
    """A member of the shop's staff (the point of sale and the admin are theirs)."""
    return User.objects.create_user("mei", password=STAFF_PASSWORD, is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff: User) -> Client:
    """A logged-in staff member's browser."""
    client = Client()
    client.force_login(staff)
    return client


def add_to_cart(client: Client, *slugs: str) -> None:
    """Put one of each product in the visitor's cart."""
    for slug in slugs:
        assert client.post(f"/cart/add/{slug}/").status_code == 302


def number_in(url: str) -> str:
    """The order number in an order page's URL, or in a gateway URL's out_trade_no."""
    found = re.search(r"(?:/orders/|out_trade_no=)([A-Z]+-[0-9]{8}-[0-9A-F]{8})", url)
    assert found, url
    return found.group(1)
