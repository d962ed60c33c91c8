"""Fixtures of the web tests: a fake gateway, a merchant using it, trades, and staff users by permission."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from django_alipay.models import Merchant, Trade
from django_alipay.protocol.clock import BEIJING
from tests import factories
from tests.domain.fakegateway import FakeGateway, in_memory

PAID_AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=BEIJING)
FORM = "application/x-www-form-urlencoded"
_numbers = itertools.count(1)


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    """The scripted fake gateway, answering this process's calls in memory."""
    with in_memory() as fake:
        yield fake


@pytest.fixture
def merchant(make_merchant: Callable[..., Merchant], gateway: FakeGateway) -> Merchant:
    return make_merchant(gateway_url=gateway.url)


@pytest.fixture
def make_trade(merchant: Merchant) -> Callable[..., Trade]:
    """A trade written directly in a chosen state (the payment flow itself is tested elsewhere)."""
    return factories.trade_factory(
        merchant,
        numbers=factories.numbered("WEB-", _numbers),
        subject="Teapot",
        status="TRADE_FINISHED",
        paid_at=PAID_AT,
        created_at=PAID_AT,
    )


@pytest.fixture
def make_staff(db: None) -> Callable[..., User]:
    """A staff user holding exactly the given django_alipay permissions (codenames)."""

    def make(*codenames: str, username: str | None = None) -> User:
        user = User.objects.create_user(username or f"staff{next(_numbers)}", password="pw-for-tests-only")
        user.is_staff = True
        user.save()
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="django_alipay", codename__in=codenames)
        )
        return user

    return make


#: What a shop's cashier is given: see everything, refund, reverse and update trades from Alipay.
CASHIER_PERMISSIONS = (
    "view_trade",
    "view_refund",
    "view_notification",
    "view_merchant",
    "refund_trade",
    "reverse_trade",
    "sync_trade",
)


@pytest.fixture
def cashier(make_staff: Callable[..., User]) -> Client:
    """A logged-in client of a staff user with the cashier permissions (not a superuser)."""
    client = Client()
    client.force_login(make_staff(*CASHIER_PERMISSIONS))
    return client
