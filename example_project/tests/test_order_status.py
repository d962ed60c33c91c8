"""The order page's status endpoint: what it says at each stage, and who may read it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from shop.models import Order, Product

from django_alipay.domain import refunds
from django_alipay.models import Merchant, Trade
from django_alipay.protocol import keys
from django_alipay.protocol.clock import format_datetime
from django_alipay.testing import EmulatorProcess, post_notification
from tests.conftest import add_to_cart

pytestmark = pytest.mark.django_db(transaction=True)


def place(client: Client) -> str:
    """A web order for a clay teapot (88.00 USD), sent to the cashier; returns its number."""
    add_to_cart(client, "clay-teapot")
    location = client.post("/checkout/", {"channel": "web"})["Location"]
    return dict(parse_qsl(urlsplit(location).query))["out_trade_no"]


def status(client: Client, number: str) -> dict[str, Any]:
    response = client.get(f"/orders/{number}/status.json")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")  # polled: never from a cache
    data: dict[str, Any] = response.json()
    return data


def pay(client: Client, merchant: Merchant, emulator: EmulatorProcess, number: str) -> None:
    emulator.pay(out_trade_no=number)
    [notification] = emulator.notifications(number)
    assert post_notification(client, merchant, notification).content == b"success"


def test_the_status_follows_the_payment_and_the_refunds(
    client: Client, merchant: Merchant, alipay_emulator: EmulatorProcess
) -> None:
    number = place(client)
    waiting = status(client, number)
    assert {k: waiting[k] for k in ("status", "label", "paid", "final", "total", "currency")} == {
        "status": "waiting",
        "label": "Waiting for payment",
        "paid": False,
        "final": False,
        "total": "88.00",
        "currency": "USD",
    }
    assert waiting["trade"]["status"] == "WAIT_BUYER_PAY"
    alipay_emulator.visit(Trade.objects.get(out_trade_no=number).payment_url)  # the buyer opens the cashier

    pay(client, merchant, alipay_emulator, number)
    paid = status(client, number)
    assert (paid["status"], paid["label"], paid["paid"]) == ("paid", "Paid", True)
    assert paid["trade"]["trade_no"] == alipay_emulator.trades(number)[0]["trade_no"]
    assert paid["refunds"] == []

    trade = Trade.objects.get(out_trade_no=number)
    assert refunds.request_refund(trade, Decimal("30.00"), reason="Chipped spout").status == "succeeded"
    partly = status(client, number)
    assert (partly["status"], partly["trade"]["refunded"], partly["trade"]["refundable"]) == (
        "partly_refunded",
        "30.00",
        "58.00",
    )
    assert [(r["kind"], r["amount"], r["status"], r["reason"]) for r in partly["refunds"]] == [
        ("REFUND", "30.00", "succeeded", "Chipped spout")
    ]

    refunds.request_refund(trade, Decimal("58.00"))
    done = status(client, number)
    assert (done["status"], done["final"], done["trade"]["refundable"]) == ("refunded", True, "0.00")


def test_a_forged_notification_does_not_mark_the_order_paid(
    client: Client, merchant: Merchant, settings: Any
) -> None:
    # Signed with a key that is not Alipay's (the emulator's): the shop must refuse it.
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_VERIFY": False}
    number = place(client)
    forger = keys.private_key_pem(keys.generate_private_key("RSA2"))
    response = post_notification(client, merchant, out_trade_no=number, key=forger)
    assert response.content == b"fail"
    assert status(client, number)["status"] == "waiting"


def test_only_the_shopper_and_the_staff_see_an_order(
    client: Client, merchant: Merchant, staff_client: Client
) -> None:
    number = place(client)
    assert Client().get(f"/orders/{number}/status.json").status_code == 404
    assert Client().get(f"/orders/{number}/").status_code == 404
    assert staff_client.get(f"/orders/{number}/status.json").json()["number"] == number
    page = staff_client.get(f"/orders/{number}/").content.decode()
    assert f"/admin/django_alipay/trade/{Trade.objects.get(out_trade_no=number).pk}/change/" in page


def test_the_order_page_polls_the_status_endpoint(client: Client, merchant: Merchant) -> None:
    number = place(client)
    page = client.get(f"/orders/{number}/").content.decode()
    assert f'data-status-url="/orders/{number}/status.json"' in page
    assert 'data-status="waiting"' in page
    assert "/static/shop/order.js" in page
    assert 'id="continue-payment"' in page  # the buyer can go back to the cashier


def test_the_order_list_gives_the_time_in_beijing_and_in_the_shops_zone(
    staff_client: Client, merchant: Merchant, settings: Any
) -> None:
    settings.TIME_ZONE = "Europe/London"
    number = place(staff_client)
    created = Order.objects.get(number=number).created_at

    page = staff_client.get("/orders/").content.decode()

    assert f"{format_datetime(created)[:16]} Beijing" in page
    local = created.astimezone(ZoneInfo("Europe/London"))
    assert f"({local:%Y-%m-%d %H:%M} {local.tzname()})" in page


def test_a_failed_in_store_order_offers_the_staff_no_refund(staff_client: Client, merchant: Merchant) -> None:
    teapot = Product.objects.get(slug="clay-teapot")
    response = staff_client.post(
        "/pos/", {f"qty-{teapot.pk}": "1", "mode": "barcode", "barcode": "270000000000000005"}, follow=True
    )  # the emulator's frozen buyer: every payment refused
    assert response.context["state"].code == "failed"

    page = response.content.decode()

    assert "Refund part or all" not in page
    assert "nothing to refund" in page


def test_every_page_of_the_shop_and_the_emulator_names_its_icon(staff_client: Client) -> None:
    for path in ("/", "/orders/", "/emulator/"):
        page = staff_client.get(path).content.decode()
        assert '<link rel="icon"' in page, path  # no /favicon.ico request answered 404


def test_a_buyer_whose_balance_is_too_low_is_not_said_to_be_disabled(
    staff_client: Client, merchant: Merchant
) -> None:
    teapot = Product.objects.get(slug="clay-teapot")  # 88.00 USD, far above the poor buyer's 10.00 CNY
    response = staff_client.post(
        "/pos/", {f"qty-{teapot.pk}": "1", "mode": "barcode", "barcode": "260000000000000004"}, follow=True
    )
    page = response.content.decode()

    assert response.context["state"].code == "failed"
    assert "BUYER_ENABLE_STATUS_FORBID" in page
    assert "cannot cover the amount" in page  # Alipay has no code of its own for a low balance


def test_the_return_page_tells_only_the_session_that_placed_an_order_about_it(
    client: Client, merchant: Merchant, alipay_emulator: EmulatorProcess
) -> None:
    number = place(client)
    alipay_emulator.visit(Trade.objects.get(out_trade_no=number).payment_url)
    pay(client, merchant, alipay_emulator, number)
    mine = client.get(f"/paid/?out_trade_no={number}", follow=True)
    assert mine.redirect_chain[-1][0] == f"/orders/{number}/"
    assert "Your payment is confirmed" in mine.content.decode()

    stranger = Client()
    for asked in (number, "WEB-20990101-DEADBEEF"):  # a real order of someone else's, and none at all
        seen = stranger.get(f"/paid/?out_trade_no={asked}", follow=True)
        page = seen.content.decode()
        assert seen.redirect_chain[-1][0] == "/orders/"
        assert "We are checking your payment with Alipay." in page
        assert "confirmed" not in page
        assert number not in page
