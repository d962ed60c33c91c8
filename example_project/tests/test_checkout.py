"""The shop's checkout against the test kit's emulator: online (web, mobile), barcode and QR code payments."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.test import Client
from shop.models import Order

from django_alipay.models import Merchant, Trade
from django_alipay.testing import EmulatorProcess, post_notification
from tests.conftest import add_to_cart, number_in

# Notifications are stored and processed in transactions of their own: these tests need real commits.
pytestmark = pytest.mark.django_db(transaction=True)

DEFAULT_BUYER_BARCODE = "286123456789012345"
#: The emulator's buyer with 10.00 CNY: anything dearer is refused (BUYER_ENABLE_STATUS_FORBID).
POOR_BUYER_BARCODE = "260000000000000004"


def checkout(client: Client, channel: str = "web") -> str:
    """Check out the cart; returns where the shop sends the buyer (Alipay's page URL)."""
    response = client.post("/checkout/", {"channel": channel})
    assert response.status_code == 302
    return str(response["Location"])


def test_an_online_order_is_paid_when_the_notification_arrives(
    client: Client, merchant: Merchant, alipay_emulator: EmulatorProcess
) -> None:
    add_to_cart(client, "clay-teapot", "celadon-teacup")
    cashier_url = checkout(client)
    query = dict(parse_qsl(urlsplit(cashier_url).query))
    assert cashier_url.startswith(alipay_emulator.gateway_url)
    assert (query["service"], query["total_fee"], query["currency"]) == (
        "create_forex_trade",
        "106.00",
        "USD",
    )
    assert query["subject"] == "Celadon teacup and 1 more"  # lines in the shop's order
    assert urlsplit(query["return_url"]).path == f"/alipay/return/{merchant.notify_token}/"
    number = query["out_trade_no"]
    assert client.get(f"/orders/{number}/status.json").json()["status"] == "waiting"

    payment = alipay_emulator.pay(url=cashier_url, buyer="buyer@alitest.com")
    [notification] = alipay_emulator.notifications(number)
    assert post_notification(client, merchant, notification).content == b"success"

    order = Order.objects.get(number=number)
    assert order.paid_at is not None  # marked by the shop's trade_paid receiver
    assert order.trade is not None
    assert order.trade.trade_no == payment.trade_no
    # The buyer's browser comes back through django_alipay's return view to the order page.
    back = client.get(urlsplit(payment.return_url or "").path + "?" + payment.return_query, follow=True)
    assert back.redirect_chain[-1][0] == f"/orders/{number}/"
    assert "Your payment is confirmed" in back.content.decode()
    assert 'data-status="paid"' in back.content.decode()
    assert client.get("/cart/").context["rows"] == []  # the cart was emptied at checkout


def test_a_phone_checks_out_through_the_mobile_cashier(client: Client, merchant: Merchant) -> None:
    add_to_cart(client, "gift-card")
    query = dict(parse_qsl(urlsplit(checkout(client, "wap")).query))
    assert query["service"] == "create_forex_trade_wap"
    assert query["product_code"] == "NEW_WAP_OVERSEAS_SELLER"
    assert Trade.objects.get(out_trade_no=query["out_trade_no"]).product == "wap"


def test_an_empty_cart_cannot_be_checked_out(client: Client, merchant: Merchant) -> None:
    response = client.post("/checkout/", {"channel": "web"}, follow=True)
    assert "Your cart is empty." in response.content.decode()
    assert not Order.objects.exists()


def test_a_barcode_payment_at_the_point_of_sale_is_paid_at_once(
    staff_client: Client, merchant: Merchant, alipay_emulator: EmulatorProcess
) -> None:
    response = staff_client.post(
        "/pos/", {"qty-2": "", "mode": "barcode", "barcode": DEFAULT_BUYER_BARCODE, **_quantities(oolong=2)}
    )
    assert response.status_code == 302
    number = number_in(response["Location"])
    order = Order.objects.get(number=number)
    assert (order.channel, order.total) == ("barcode", Decimal("84.00"))
    assert order.paid_at is not None
    assert order.trade is not None
    assert order.trade.status == "TRADE_SUCCESS"
    assert alipay_emulator.trades(number)[0]["status"] == "TRADE_SUCCESS"
    assert staff_client.get(f"/orders/{number}/status.json").json()["status"] == "paid"


def test_a_refused_barcode_payment_says_why(staff_client: Client, merchant: Merchant) -> None:
    response = staff_client.post(
        "/pos/", {"mode": "barcode", "barcode": POOR_BUYER_BARCODE, **_quantities(teapot=1)}, follow=True
    )
    status = staff_client.get(f"/orders/{number_in(response.redirect_chain[-1][0])}/status.json").json()
    assert status["status"] == "failed"
    assert "BUYER_ENABLE_STATUS_FORBID" in status["problem"]
    assert status["paid"] is False


def test_a_qr_code_is_shown_and_paid_when_the_buyer_scans_it(
    staff_client: Client, merchant: Merchant, alipay_emulator: EmulatorProcess
) -> None:
    response = staff_client.post("/pos/", {"mode": "qrcode", **_quantities(gift=1)})
    assert response.status_code == 302
    assert "/pos/qr/" in response["Location"]
    number = number_in(response["Location"].replace("/pos/qr/", "/orders/"))
    page = staff_client.get(response["Location"]).content.decode()
    trade = Trade.objects.get(out_trade_no=number)
    assert trade.qr_code.startswith(alipay_emulator.base_url + "cashier/")
    assert f'href="{trade.qr_code}"' in page  # "scanning" it opens the cashier
    assert f'src="{alipay_emulator.base_url}qr/' in page  # the emulator's picture of the code

    alipay_emulator.pay(out_trade_no=number, buyer="13800138000")
    [notification] = alipay_emulator.notifications(number)
    assert post_notification(staff_client, merchant, notification).content == b"success"
    status = staff_client.get(f"/orders/{number}/status.json").json()
    assert (status["status"], status["trade"]["buyer"]) == ("paid", "138****8000")


def test_the_point_of_sale_is_for_staff_only(client: Client, merchant: Merchant) -> None:
    response = client.get("/pos/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_payment_code_must_look_like_one(staff_client: Client, merchant: Merchant) -> None:
    response = staff_client.post("/pos/", {"mode": "barcode", "barcode": "12345", **_quantities(gift=1)})
    assert response.status_code == 400
    assert "16 to 24 digits" in response.content.decode()
    assert not Order.objects.exists()


def _quantities(**wanted: int) -> dict[str, str]:
    """POS form quantities by a word of the product's slug (``oolong=2``)."""
    from shop.models import Product

    fields = {}
    for product in Product.objects.all():
        matches = [qty for word, qty in wanted.items() if word in product.slug]
        fields[f"qty-{product.pk}"] = str(matches[0]) if matches else "0"
    return fields
