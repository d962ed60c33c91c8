"""Who may do what through the REST API: credentials, permissions, and each user's merchants."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from django_alipay.models import Merchant, Refund, Trade
from tests.api.backends import MerchantGrants
from tests.api.conftest import API, client_for, order_number, refund
from tests.factories import create_refund

pytestmark = pytest.mark.django_db(transaction=True)

ALL_TRADE_PERMS = ("view_merchant", "add_trade", "sync_trade", "refund_trade", "reverse_trade")


def state() -> tuple[Any, ...]:
    return (
        list(Trade.objects.order_by("pk").values_list("status", "refunded_amount", "refund_pending_amount")),
        Refund.objects.count(),
    )


def writes(client: APIClient, trade: Trade) -> dict[str, Any]:
    """One request of each kind that changes something."""
    return {
        "create": client.post(
            f"{API}trades/", {"out_trade_no": order_number(), "amount": "1.00", "subject": "x"}, format="json"
        ),
        "sync": client.post(f"{API}trades/{trade.pk}/sync/"),
        "refund": refund(client, trade.pk, {"amount": "1.00"}),
        "reverse": client.post(f"{API}trades/{trade.pk}/reverse/", {}, format="json"),
    }


# --- credentials and permissions ----------------------------------------------------------------------------


def test_without_credentials_nothing_is_shown_or_done(make_trade: Callable[..., Trade]) -> None:
    trade = make_trade(product="barcode", status="TRADE_SUCCESS")
    anonymous = APIClient()
    before = state()
    reads = [
        anonymous.get(url)
        for url in (
            API,
            f"{API}trades/",
            f"{API}trades/{trade.pk}/",
            f"{API}refunds/",
            f"{API}notifications/",
        )
    ]
    for response in [*reads, *writes(anonymous, trade).values(), anonymous.get(f"{API}schema/")]:
        assert response.status_code in (401, 403), response.content
        assert response.json()["error"]["code"] == "not_authenticated"
    assert state() == before


def test_wrong_basic_credentials_are_refused(admin_user: Any, shop: Merchant) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"admin:wrong").decode())
    response = client.get(f"{API}trades/")
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] == "not_authenticated"
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"admin:pw").decode())
    assert client.get(f"{API}trades/").status_code == 200


def test_staff_without_the_permissions_are_refused(
    make_user: Callable[..., Any], make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(product="barcode", status="TRADE_SUCCESS")
    clerk = client_for(make_user("clerk", staff=True, perms=["view_merchant"]))
    before = state()

    answers = writes(clerk, trade)

    expected = {
        "create": "django_alipay.add_trade",
        "sync": "django_alipay.sync_trade",
        "refund": "django_alipay.refund_trade",
        "reverse": "django_alipay.reverse_trade",
    }
    for name, response in answers.items():
        assert response.status_code == 403, (name, response.content)
        error = response.json()["error"]
        assert error["code"] == "permission_denied"
        assert expected[name] in error["message"]
    assert state() == before
    assert clerk.get(f"{API}trades/{trade.pk}/").status_code == 200  # seeing is allowed


def test_each_permission_opens_its_own_action_only(
    make_user: Callable[..., Any], paid_in_store: Callable[..., dict[str, Any]]
) -> None:
    trade = paid_in_store()
    refunder = client_for(make_user("refunder", staff=True, perms=["view_merchant", "refund_trade"]))
    assert refund(refunder, trade["id"], {"amount": "1.00"}).status_code == 201
    assert refunder.post(f"{API}trades/{trade['id']}/reverse/", {}, format="json").status_code == 403
    reverser = client_for(make_user("reverser", staff=True, perms=["view_merchant", "reverse_trade"]))
    assert refund(reverser, trade["id"], {"amount": "1.00"}).status_code == 403
    assert reverser.post(f"{API}trades/{trade['id']}/reverse/", {}, format="json").status_code == 409


def test_a_user_who_is_not_staff_is_refused_by_default(
    make_user: Callable[..., Any], make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade()
    customer = client_for(make_user("customer", perms=ALL_TRADE_PERMS))
    assert customer.get(f"{API}trades/").status_code == 403
    assert refund(customer, trade.pk, {"amount": "1.00"}).status_code == 403
    assert Refund.objects.count() == 0


def test_the_permission_classes_are_a_setting(
    make_user: Callable[..., Any], make_trade: Callable[..., Trade], settings: Any
) -> None:
    settings.ALIPAY = {
        **settings.ALIPAY,
        "API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    }
    trade = make_trade()
    customer = client_for(make_user("customer", perms=["view_merchant"]))
    listing = customer.get(f"{API}trades/")
    assert listing.status_code == 200
    assert [t["id"] for t in listing.json()["results"]] == [trade.pk]
    assert customer.get(f"{API}notifications/").status_code == 403  # notifications stay staff only
    assert APIClient().get(f"{API}trades/").status_code in (401, 403)


def test_a_permission_class_setting_that_names_no_permission_is_a_clear_error(
    api: APIClient, shop: Merchant, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "API_PERMISSION_CLASSES": ["django_alipay.models.Trade"]}
    response = api.get(f"{API}trades/")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "configuration_error"
    assert "API_PERMISSION_CLASSES" in response.json()["error"]["message"]


# --- each user sees their own merchants only ----------------------------------------------------------------


@pytest.fixture
def grants(settings: Any) -> Iterator[set[tuple[int, str, int]]]:
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "tests.api.backends.MerchantGrants",
    ]
    MerchantGrants.grants = set()
    yield MerchantGrants.grants
    MerchantGrants.grants = set()


def test_another_merchant_s_trades_do_not_exist_for_a_user(
    make_user: Callable[..., Any],
    make_trade: Callable[..., Trade],
    make_merchant: Callable[..., Merchant],
    shop: Merchant,
    grants: set[tuple[int, str, int]],
) -> None:
    other_shop = make_merchant(name="Other shop")
    mine = make_trade(product="barcode", status="TRADE_SUCCESS")
    theirs = make_trade(merchant=other_shop, product="barcode", status="TRADE_SUCCESS")
    create_refund(theirs, gateway_refund_id="RF-THEIRS")
    user = make_user("clerk", staff=True, perms=["add_trade", "sync_trade", "refund_trade", "reverse_trade"])
    grants.add((user.pk, "django_alipay.view_merchant", shop.pk))
    clerk = client_for(user)
    before = state()

    assert [t["id"] for t in clerk.get(f"{API}trades/").json()["results"]] == [mine.pk]
    assert clerk.get(f"{API}trades/?merchant={other_shop.pk}").json()["count"] == 0
    assert clerk.get(f"{API}refunds/").json()["count"] == 0
    for url in (f"{API}trades/{theirs.pk}/", f"{API}trades/{theirs.pk}/refunds/", f"{API}refunds/"
                f"{Refund.objects.get().pk}/"):  # fmt: skip
        assert clerk.get(url).status_code == 404, url
    answers = writes(clerk, theirs)
    for name in ("sync", "refund", "reverse"):
        assert answers[name].status_code == 404, name
        assert answers[name].json()["error"]["code"] == "not_found"
    assert state()[1] == before[1]  # no refund made for anyone
    assert Trade.objects.get(pk=theirs.pk).status == "TRADE_SUCCESS"

    # A new trade goes to the user's only merchant; naming the other one is naming an unknown merchant.
    assert answers["create"].status_code == 201, answers["create"].content
    assert answers["create"].json()["trade"]["merchant"] == shop.pk
    body = {"out_trade_no": order_number(), "amount": "1.00", "subject": "x", "merchant": other_shop.pk}
    foreign = clerk.post(f"{API}trades/", body, format="json")
    assert foreign.status_code == 400
    assert (foreign.json()["error"]["field"], foreign.json()["error"]["message"]) == (
        "merchant",
        "Unknown merchant.",
    )


def test_a_user_with_no_merchant_sees_nothing(
    make_user: Callable[..., Any], make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade()
    clerk = client_for(make_user("clerk", staff=True, perms=["refund_trade"]))
    assert clerk.get(f"{API}trades/").json()["count"] == 0
    assert clerk.get(f"{API}trades/{trade.pk}/").status_code == 404
    assert refund(clerk, trade.pk, {"amount": "1.00"}).status_code == 404
    assert Refund.objects.count() == 0


def merchants_named_like_the_user(user: Any) -> list[int]:
    return list(Merchant.objects.filter(name__startswith=user.username).values_list("pk", flat=True))


def test_the_merchants_of_a_user_can_come_from_the_shop_s_own_function(
    make_user: Callable[..., Any],
    make_merchant: Callable[..., Merchant],
    make_trade: Callable[..., Trade],
    settings: Any,
) -> None:
    settings.ALIPAY = {
        **settings.ALIPAY,
        "API_MERCHANTS_FOR_USER": "tests.api.test_permissions.merchants_named_like_the_user",
    }
    anna_shop = make_merchant(name="anna's shop")
    make_trade()  # the fixture shop's trade, not anna's
    hers = make_trade(merchant=anna_shop)
    anna = client_for(make_user("anna", staff=True))
    assert [t["id"] for t in anna.get(f"{API}trades/").json()["results"]] == [hers.pk]


# --- notifications: staff only -----------------------------------------------------------------------------


def test_notifications_are_listed_for_staff_of_their_merchants(
    make_user: Callable[..., Any],
    make_merchant: Callable[..., Merchant],
    shop: Merchant,
    api: APIClient,
    grants: Any,
) -> None:
    from django_alipay.models import Notification

    other_shop = make_merchant(name="Other shop")
    processed = Notification.objects.create(
        merchant=shop, kind="trade", body=b"secret=raw", body_size=10, notify_id="n-1", out_trade_no="A-1",
        status="TRADE_SUCCESS", outcome="processed", verification="verified", params={"out_trade_no": "A-1"},
    )  # fmt: skip
    rejected = Notification.objects.create(
        merchant=shop, kind="trade", notify_id="n-2", outcome="rejected", flag="bad_signature",
        verification="rejected",
    )  # fmt: skip
    Notification.objects.create(merchant=other_shop, kind="trade", notify_id="n-3")
    Notification.objects.create(merchant=None, kind="unknown", flag="unknown_merchant", outcome="rejected")

    clerk_user = make_user("clerk", staff=True)
    grants.add((clerk_user.pk, "django_alipay.view_merchant", shop.pk))
    clerk = client_for(clerk_user)
    listing = clerk.get(f"{API}notifications/").json()
    assert [n["id"] for n in listing["results"]] == [rejected.pk, processed.pk]
    detail = clerk.get(f"{API}notifications/{processed.pk}/").json()
    assert (detail["flag"], detail["outcome"], detail["params"]) == ("", "processed", {"out_trade_no": "A-1"})
    assert "body" not in detail
    filtered = clerk.get(f"{API}notifications/?flag=bad_signature").json()["results"]
    assert [n["id"] for n in filtered] == [rejected.pk]
    assert clerk.get(f"{API}notifications/?out_trade_no=A-1").json()["count"] == 1
    assert clerk.get(f"{API}notifications/?outcome=duplicate").json()["count"] == 0
    assert api.get(f"{API}notifications/").json()["count"] == 4  # a superuser sees every one
    customer = client_for(make_user("customer", perms=["view_merchant"]))
    assert customer.get(f"{API}notifications/").status_code == 403
