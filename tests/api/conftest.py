"""Fixtures of the REST API tests: DRF installed, the API mounted, the gateway emulator, users and trades."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from django_alipay.emulator import notifier
from django_alipay.models import Merchant, Trade
from tests import factories
from tests.conftest import CONTROL_HEADERS, TEST_PARTNER, standalone_emulator

API = "/alipay/api/"
BUYER_BARCODE = "286123456789012345"  # a buyer the emulator seeds


@pytest.fixture(scope="package", autouse=True)
def _rest_framework_installed() -> Iterator[None]:
    """DRF (templates of the browsable API) and drf-spectacular installed, the API mounted at /alipay/api/.

    tests/settings.py does not list them yet, so that the core suite runs without the optional packages.
    """
    apps = [*django_settings.INSTALLED_APPS]
    apps += [name for name in ("rest_framework", "drf_spectacular") if name not in apps]
    # A fast hasher: Basic authentication checks the password on every request of the schemathesis run.
    hashers = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # These tests use the standalone emulator only. An in-process notifier thread left running by an earlier
    # test (of the mounted emulator) would query the tables while a transactional test flushes them.
    notifier.stop()
    with override_settings(
        INSTALLED_APPS=apps,
        ROOT_URLCONF="tests.api.urls",
        PASSWORD_HASHERS=hashers,
        STATIC_URL="/static/",
        ALIPAY_EMULATOR={"NOTIFIER_THREAD": False},
    ):
        yield


@pytest.fixture(autouse=True)
def _postgresql(postgresql: None) -> None:
    """Every API test runs on PostgreSQL: refunds race and lock rows, which SQLite would silently not do."""


@pytest.fixture(scope="package")
def emulator() -> Iterator[str]:
    """The standalone gateway emulator's base URL (``.../``), without its notifier."""
    with standalone_emulator() as url:
        yield url


@pytest.fixture
def api_server(transactional_db: None, settings: Any) -> Iterator[str]:
    """A live server of the test project on a free port (started after the API is mounted); its base URL."""
    from pytest_django.live_server_helper import LiveServer

    settings.ALLOWED_HOSTS = ["127.0.0.1", "testserver"]
    server = LiveServer("127.0.0.1")
    try:
        yield server.url
    finally:
        server.stop()


def control(emulator: str, name: str, **data: Any) -> Any:
    """POST ``data`` to one of the emulator's control endpoints; its JSON answer."""
    response = requests.post(emulator + "control/" + name, json=data, headers=CONTROL_HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def gateway_calls(emulator: str, service: str) -> list[dict[str, Any]]:
    """The calls the emulator received for ``service``."""
    response = requests.get(emulator + "control/calls", params={"service": service}, timeout=10)
    assert response.status_code == 200, response.text
    calls: list[dict[str, Any]] = response.json()["calls"]
    return calls


@pytest.fixture
def shop(make_merchant: Callable[..., Merchant], emulator: str) -> Iterator[Merchant]:
    """The merchant the emulator knows (partner and MD5 key); the emulator starts afresh for each test."""
    control(emulator, "reset")  # forgets trades and calls; restores its clock, knobs and faults
    yield make_merchant(name="Shop", gateway_url=emulator + "gateway.do")
    control(emulator, "reset")


@pytest.fixture
def make_user(db: None, django_user_model: Any) -> Callable[..., Any]:
    """Create a user: ``make_user("ann", staff=True, perms=["refund_trade"])`` (django_alipay codenames)."""

    def make(
        username: str, *, staff: bool = False, superuser: bool = False, perms: Sequence[str] = ()
    ) -> Any:
        user = django_user_model.objects.create_user(
            username, password="pw", is_staff=staff or superuser, is_superuser=superuser
        )
        for codename in perms:
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label="django_alipay", codename=codename)
            )
        return django_user_model.objects.get(pk=user.pk)  # fresh: no stale permission cache

    return make


@pytest.fixture
def admin_user(make_user: Callable[..., Any]) -> Any:
    return make_user("admin", superuser=True)


@pytest.fixture
def api(admin_user: Any) -> APIClient:
    """An API client logged in as a superuser."""
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def order_number() -> str:
    return "API-" + uuid.uuid4().hex[:12]


def refund(client: APIClient, trade_id: int, body: Any, *, key: str | None = None, **kwargs: Any) -> Any:
    """POST a refund of ``trade_id`` with a fresh Idempotency-Key (or ``key``)."""
    headers = {"Idempotency-Key": key if key is not None else uuid.uuid4().hex}
    return client.post(f"{API}trades/{trade_id}/refunds/", body, format="json", headers=headers, **kwargs)


@pytest.fixture
def make_trade(shop: Merchant) -> Callable[..., Trade]:
    """A trade written directly, in a chosen state (for refusals, which never reach the gateway)."""
    return factories.trade_factory(
        shop,
        numbers=iter(order_number, None),
        subject="Test order",
        status="TRADE_FINISHED",
        paid_at=timezone.now,
    )


@pytest.fixture
def paid_online(api: APIClient, shop: Merchant, emulator: str) -> Callable[..., dict[str, Any]]:
    """An online trade created through the API, paid at the emulator and queried back; returns its JSON."""

    def pay(amount: str = "100.00", currency: str = "USD") -> dict[str, Any]:
        created = api.post(
            f"{API}trades/",
            {"out_trade_no": order_number(), "amount": amount, "currency": currency, "subject": "Mug"},
            format="json",
        )
        assert created.status_code == 201, created.content
        trade = created.json()["trade"]
        requests.get(created.json()["payment"]["url"], timeout=10)  # the buyer reaches the cashier
        control(emulator, "pay", partner=TEST_PARTNER, out_trade_no=trade["out_trade_no"])
        synced = api.post(f"{API}trades/{trade['id']}/sync/", format="json")
        assert synced.status_code == 200, synced.content
        assert synced.json()["trade"]["status"] == "TRADE_FINISHED"
        result: dict[str, Any] = synced.json()["trade"]
        return result

    return pay


@pytest.fixture
def paid_in_store(api: APIClient, shop: Merchant) -> Callable[..., dict[str, Any]]:
    """A barcode trade created through the API (the emulator pays it at once); returns its JSON."""

    def pay(amount: str = "100.00", currency: str = "USD") -> dict[str, Any]:
        created = api.post(
            f"{API}trades/",
            {
                "out_trade_no": order_number(),
                "amount": amount,
                "currency": currency,
                "subject": "Lunch",
                "product": "barcode",
                "buyer_identity_code": BUYER_BARCODE,
            },
            format="json",
        )
        assert created.status_code == 201, created.content
        assert created.json()["payment"]["error"] is None, created.json()
        result: dict[str, Any] = created.json()["trade"]
        assert result["status"] == "TRADE_SUCCESS"
        return result

    return pay
