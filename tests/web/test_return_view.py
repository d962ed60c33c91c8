"""The return endpoint: signature checked, nothing changed, the trade's current status shown or forwarded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from django_alipay.models import Merchant, Notification, Trade
from tests.conftest import TEST_MD5_KEY
from tests.web.signer import encode, signed_body

pytestmark = pytest.mark.django_db(transaction=True)


def return_params(trade: Trade, **overrides: str) -> dict[str, str]:
    """What Alipay's cashier appends to return_url after a payment (documented return parameters)."""
    params = {
        "out_trade_no": trade.out_trade_no,
        "trade_no": "2024050122001498760500123456",
        "total_fee": "100.00",
        "currency": "USD",
        "trade_status": "TRADE_FINISHED",
    }
    params.update(overrides)
    return params


def visit(client: Client, merchant: Merchant, query: bytes, **extra: Any) -> Any:
    url = reverse("django_alipay:return", args=[merchant.notify_token])
    return client.get(f"{url}?{query.decode('ascii')}", **extra)


def genuine(trade: Trade) -> bytes:
    return signed_body(return_params(trade), key=TEST_MD5_KEY)


def test_a_forged_return_says_checking_names_no_order_and_changes_nothing(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    forged = encode({**return_params(trade), "sign": "0" * 32, "sign_type": "MD5"})
    response = visit(client, merchant, forged)

    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-state="checking"' in page
    assert "Checking your payment" in page
    assert "Payment complete" not in page
    assert trade.out_trade_no not in page
    fresh = Trade.objects.get(pk=trade.pk)
    assert (fresh.status, fresh.paid_at) == ("WAIT_BUYER_PAY", None)
    logged = Notification.objects.get()
    assert (logged.kind, logged.verification) == ("return", "rejected")


def test_a_forged_return_never_says_paid_even_for_a_paid_order(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    paid = make_trade()
    forged = encode({**return_params(paid), "sign": "f" * 32, "sign_type": "MD5"})
    page = visit(client, merchant, forged).content.decode()
    assert 'data-state="checking"' in page
    assert "Payment complete" not in page


def test_a_genuine_return_before_the_notification_says_confirming(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    page = visit(client, merchant, genuine(trade)).content.decode()
    assert 'data-state="confirming"' in page
    assert "Payment received — confirming…" in page
    assert trade.out_trade_no in page
    assert Trade.objects.get(pk=trade.pk).status == "WAIT_BUYER_PAY"


def test_a_genuine_return_of_a_paid_trade_says_paid(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(amount="1250", currency="JPY")
    page = visit(
        client,
        merchant,
        signed_body(return_params(trade, total_fee="1250", currency="JPY"), key=TEST_MD5_KEY),
    )
    text = page.content.decode()
    assert 'data-state="paid"' in text
    assert "Payment complete" in text
    assert "1250 JPY" in text


def test_a_genuine_return_of_a_closed_trade_says_so(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(status="TRADE_CLOSED", paid_at=None, product="barcode")
    assert 'data-state="closed"' in visit(client, merchant, genuine(trade)).content.decode()


def test_a_return_to_an_unknown_token_says_checking(client: Client, make_trade: Callable[..., Trade]) -> None:
    response = client.get(f"/alipay/return/nobody/?{genuine(make_trade()).decode()}")
    assert 'data-state="checking"' in response.content.decode()


def test_the_page_is_never_cached(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    response = visit(client, merchant, genuine(make_trade()))
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_the_shop_page_receives_the_order_and_the_current_status(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade], settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "RETURN_REDIRECT": "/shop/thanks/?from=alipay"}
    trade = make_trade()
    response = visit(client, merchant, genuine(trade))
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == "/shop/thanks/"
    assert parse_qs(target.query) == {
        "from": ["alipay"],
        "out_trade_no": [trade.out_trade_no],
        "status": ["paid"],
    }


def test_a_forged_return_forwards_only_checking(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade], settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "RETURN_REDIRECT": "admin:index"}
    trade = make_trade()
    forged = encode({**return_params(trade), "sign": "0" * 32, "sign_type": "MD5"})
    response = visit(client, merchant, forged)
    assert response.status_code == 302
    assert response["Location"] == "/admin/?status=checking"


def test_an_unusable_shop_page_setting_falls_back_to_the_apps_page(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade], settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "RETURN_REDIRECT": "no-such-url-name"}
    response = visit(client, merchant, genuine(make_trade()))
    assert response.status_code == 200
    assert 'data-state="paid"' in response.content.decode()


def test_the_return_page_needs_no_login_and_takes_get_only(
    merchant: Merchant, make_trade: Callable[..., Trade], settings: Any
) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.contrib.auth.middleware.LoginRequiredMiddleware"]
    client = Client(enforce_csrf_checks=True)
    trade = make_trade()
    assert visit(client, merchant, genuine(trade)).status_code == 200
    url = reverse("django_alipay:return", args=[merchant.notify_token])
    assert Client().post(url, {"a": "b"}).status_code == 405
