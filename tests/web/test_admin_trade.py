"""The trade admin: list, timeline, refund form, full refunds, reverse, sync; R rows at the admin level."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from django_alipay.admin.timeline import build_timeline
from django_alipay.admin.trade import TradeAdmin
from django_alipay.domain import refunds
from django_alipay.models import Merchant, Notification, Refund, Trade
from django_alipay.protocol.clock import BEIJING, FixedClock
from tests.domain.fakegateway import FakeGateway, Reply
from tests.web.conftest import CASHIER_PERMISSIONS, PAID_AT

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/django_alipay/trade/"
#: An afternoon in Beijing on the day the fixture trades were paid: synchronous refunds, reversals allowed.
SAME_DAY = datetime(2024, 5, 1, 15, 0, 0, tzinfo=BEIJING)
NEXT_DAY = datetime(2024, 5, 2, 0, 0, 0, tzinfo=BEIJING)


@pytest.fixture(autouse=True)
def afternoon(fixed_clock: Callable[[datetime], FixedClock]) -> FixedClock:
    return fixed_clock(SAME_DAY)


def refund_url(trade: Trade) -> str:
    return reverse("admin:django_alipay_trade_refund", args=[trade.pk])


def reverse_url(trade: Trade) -> str:
    return reverse("admin:django_alipay_trade_reverse", args=[trade.pk])


def change_url(trade: Trade) -> str:
    return reverse("admin:django_alipay_trade_change", args=[trade.pk])


def shown(response: HttpResponse) -> list[tuple[str, str]]:
    """The messages the next page shows, as (level, text)."""
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def action(client: Client, name: str, trades: list[Trade], **extra: str) -> HttpResponse:
    data: dict[str, Any] = {"action": name, "_selected_action": [t.pk for t in trades], "index": "0", **extra}
    return client.post(CHANGELIST, data)


def confirm(
    client: Client, name: str, trades: list[Trade], reason: str = "", key: str = "k-1"
) -> HttpResponse:
    data = {
        "action": name,
        "_selected_action": [t.pk for t in trades],
        "confirm": "yes",
        "reason": reason,
        "idempotency_key": key,
    }
    return client.post(CHANGELIST, data, follow=True)


def submit_refund(
    client: Client, trade: Trade, amount: str, reason: str = "", key: str = "form-key-1"
) -> HttpResponse:
    return client.post(refund_url(trade), {"amount": amount, "reason": reason, "idempotency_key": key})


# --- the list -----------------------------------------------------------------------------------------------


def test_the_list_shows_status_amounts_product_merchant_and_beijing_paid_time(
    cashier: Client, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(amount=Decimal("1250"), currency="JPY", refunded_amount=Decimal("250"))
    page = cashier.get(CHANGELIST).content.decode()
    assert trade.out_trade_no in page
    assert "TRADE_FINISHED" in page
    assert "1250 JPY" in page
    assert "250 JPY" in page
    assert "2024-05-01 12:00" in page  # Beijing time of PAID_AT
    assert "Paid (Beijing)" in page
    assert trade.merchant.name in page


def test_filters_and_search(cashier: Client, make_trade: Callable[..., Trade]) -> None:
    paid = make_trade(trade_no="2024050122001400000000000777")
    waiting = make_trade(status="WAIT_BUYER_PAY", paid_at=None, product="barcode")
    by_status = cashier.get(CHANGELIST, {"status": "WAIT_BUYER_PAY"}).content.decode()
    assert waiting.out_trade_no in by_status
    assert paid.out_trade_no not in by_status
    by_product = cashier.get(CHANGELIST, {"product": "barcode"}).content.decode()
    assert waiting.out_trade_no in by_product
    assert paid.out_trade_no not in by_product
    by_trade_no = cashier.get(CHANGELIST, {"q": "00777"}).content.decode()
    assert paid.out_trade_no in by_trade_no
    assert waiting.out_trade_no not in by_trade_no
    by_merchant = cashier.get(CHANGELIST, {"merchant__id__exact": str(paid.merchant_id)}).content.decode()
    assert paid.out_trade_no in by_merchant


def test_trades_cannot_be_added_edited_or_deleted_in_the_admin(
    make_staff: Callable[..., User], make_trade: Callable[..., Trade]
) -> None:
    client = Client()
    client.force_login(make_staff(*CASHIER_PERMISSIONS, "add_trade", "change_trade", "delete_trade"))
    trade = make_trade()
    assert client.get(CHANGELIST + "add/").status_code == 403
    page = client.get(change_url(trade)).content.decode()
    assert 'name="_save"' not in page
    client.post(change_url(trade), {"amount": "1.00", "status": "TRADE_CLOSED"})
    assert Trade.objects.get(pk=trade.pk).status == "TRADE_FINISHED"
    assert client.get(reverse("admin:django_alipay_trade_delete", args=[trade.pk])).status_code == 403


# --- the change page: summary and timeline ------------------------------------------------------------------


def test_the_change_page_tells_the_trades_life_in_beijing_and_shop_time(
    cashier: Client, make_trade: Callable[..., Trade], merchant: Merchant, settings: Any
) -> None:
    settings.TIME_ZONE = "America/New_York"
    trade = make_trade(buyer_login="bu***@example.com", trade_no="2024050122001400000000000123")
    Notification.objects.create(
        merchant=merchant,
        trade=trade,
        kind="trade",
        out_trade_no=trade.out_trade_no,
        status="TRADE_FINISHED",
        verification="verified",
        outcome="processed",
        received_at=datetime(2024, 5, 1, 12, 0, 5, tzinfo=BEIJING),
    )
    Notification.objects.create(
        merchant=merchant,
        kind="trade",
        out_trade_no=trade.out_trade_no,
        verification="rejected",
        outcome="rejected",
        flag="bad_signature",
        received_at=datetime(2024, 5, 1, 12, 30, tzinfo=BEIJING),
    )
    refund = refunds.request_refund(trade, "30.00", reason="chipped lid")
    assert refund.status == "succeeded"

    page = cashier.get(change_url(trade)).content.decode()
    timeline = page[page.index('id="alipay-timeline"') :]
    for text in (
        "Order created",
        "Paid",
        "Alipay reported TRADE_FINISHED: applied",
        "A notification was rejected",
        "The signature does not verify with the merchant",
        "Refund of 30.00 USD requested",
        "Refund of 30.00 USD succeeded",
        "2024-05-01 12:00:05",  # Beijing
        "2024-05-01 00:00:05 EDT",  # the shop's own time
    ):
        assert text in timeline, text
    assert timeline.index("Order created") < timeline.index("Refund of 30.00 USD succeeded")
    summary = page[page.index('id="alipay-summary"') : page.index('id="alipay-timeline"')]
    assert "70.00 USD" in summary  # still refundable
    assert "Refund…" in summary
    assert "No reversal:" in summary


def test_one_zone_is_shown_when_the_shop_is_in_beijing_time(
    cashier: Client, make_trade: Callable[..., Trade], settings: Any
) -> None:
    settings.TIME_ZONE = "Asia/Shanghai"
    page = cashier.get(change_url(make_trade())).content.decode()
    assert "Beijing time, and your own time" not in page


# --- partial refunds through the form -----------------------------------------------------------------------


def test_the_refund_form_shows_what_is_refundable_and_refunds(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade(refunded_amount=Decimal("20.00"))
    form = cashier.get(refund_url(trade)).content.decode()
    assert "80.00 USD" in form
    assert 'name="idempotency_key"' in form

    response = submit_refund(cashier, trade, "12.50", reason="one cup broken")
    assert response.status_code == 302
    assert response["Location"] == change_url(trade)
    assert shown(response) == [("success", f"Refund of 12.50 USD for order {trade.out_trade_no} succeeded.")]
    trade.refresh_from_db()
    assert trade.refunded_amount == Decimal("32.50")
    [call] = gateway.called("forex_refund")
    assert (call.params["return_amount"], call.params["reason"]) == ("12.50", "one cup broken")


@pytest.mark.parametrize(
    "amount",
    [
        "-1.00",  # negative
        "0",  # zero
        "0.00",
        "-0.00",
        "0.001",  # more decimals than the currency allows
        "1e2",  # not plain ASCII text (the admin trims a person's surrounding spaces: see below)
        " 1 0.00",
        "١٠",
        "１０",
        "1_000",
        "10,00",
        "NaN",  # not a number
        "Infinity",
        "1000000.01",  # over the 1,000,000.00 maximum
        "",
    ],
)
def test_an_amount_that_is_not_canonical_is_refused_without_a_refund(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway, amount: str
) -> None:
    trade = make_trade(amount=Decimal("1000000.00"))
    response = submit_refund(cashier, trade, amount)
    assert response.status_code == 200
    assert response.context["form"].errors["amount"]
    assert not Refund.objects.exists()
    assert not gateway.called("forex_refund")


def test_the_admin_trims_the_spaces_around_a_typed_amount(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade(amount=Decimal("100.00"))

    response = submit_refund(cashier, trade, " 10.00 ")

    assert response.status_code == 302, response.context and response.context["form"].errors
    assert Refund.objects.get().amount == Decimal("10.00")


def test_jpy_amounts_are_whole(cashier: Client, make_trade: Callable[..., Trade]) -> None:
    trade = make_trade(amount=Decimal("5000"), currency="JPY")
    response = submit_refund(cashier, trade, "100.5")
    assert "JPY" in " ".join(response.context["form"].errors["amount"])
    assert not Refund.objects.exists()
    assert submit_refund(cashier, trade, "100").status_code == 302


def test_more_than_what_remains_is_refused_with_the_remainder(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade(refunded_amount=Decimal("60.00"))
    response = submit_refund(cashier, trade, "40.01")
    assert response.status_code == 200
    assert "40.00 USD" in " ".join(response.context["form"].errors["amount"])
    assert not Refund.objects.exists()
    assert submit_refund(cashier, trade, "40.00", key="form-key-2").status_code == 302  # all that remains
    assert Trade.objects.get(pk=trade.pk).refunded_amount == Decimal("100.00")


@pytest.mark.parametrize("reason", ["x" * 101, 'the "best" teapot'])
def test_a_reason_alipay_would_refuse_is_refused(
    cashier: Client, make_trade: Callable[..., Trade], reason: str
) -> None:
    response = submit_refund(cashier, make_trade(), "1.00", reason=reason)
    assert response.context["form"].errors["reason"]
    assert not Refund.objects.exists()


def test_an_unpaid_or_closed_trade_offers_no_refund(
    cashier: Client, make_trade: Callable[..., Trade]
) -> None:
    for trade in (
        make_trade(status="WAIT_BUYER_PAY", paid_at=None),
        make_trade(status="TRADE_CLOSED", paid_at=None),
    ):
        page = cashier.get(refund_url(trade)).content.decode()
        assert 'id="alipay-refusal"' in page
        assert 'name="amount"' not in page
        assert submit_refund(cashier, trade, "1.00").status_code == 200
    assert not Refund.objects.exists()


def test_submitting_the_same_form_twice_refunds_once(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    first = submit_refund(cashier, trade, "10.00", key="double-click")
    second = submit_refund(cashier, trade, "10.00", key="double-click")
    assert first.status_code == second.status_code == 302
    assert Refund.objects.count() == 1
    assert len(gateway.called("forex_refund")) == 1
    assert Trade.objects.get(pk=trade.pk).refunded_amount == Decimal("10.00")


@pytest.mark.parametrize(
    ("reply", "level", "words", "status"),
    [
        (lambda p: FakeGateway.refused("RETURN_AMOUNT_EXCEED"), "error", "refused by Alipay", "failed"),
        (
            lambda p: Reply(b"<html>Bad gateway</html>", status=502, content_type="text/html"),
            "warning",
            "lost",
            "unknown",
        ),
    ],
)
def test_gateway_errors_after_the_commit_are_messages_not_server_errors(
    cashier: Client,
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
    reply: Any,
    level: str,
    words: str,
    status: str,
) -> None:
    gateway.once("forex_refund", reply)
    response = submit_refund(cashier, make_trade(), "5.00")
    assert response.status_code == 302
    [(shown_level, text)] = shown(response)
    assert shown_level == level
    assert words in text
    assert Refund.objects.get().status == status


def test_a_merchant_that_cannot_sign_leaves_the_refund_recorded_and_says_so(
    cashier: Client, make_trade: Callable[..., Trade], merchant: Merchant
) -> None:
    trade = make_trade()
    Merchant.objects.filter(pk=merchant.pk).update(md5_key=None)
    response = submit_refund(cashier, trade, "5.00")
    assert response.status_code == 302
    [(level, text)] = shown(response)
    assert level == "warning"
    assert "recorded" in text
    assert Refund.objects.get().status == "requested"


def test_under_atomic_requests_the_refund_is_still_sent_within_the_request(
    cashier: Client, make_trade: Callable[..., Trade], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    response = submit_refund(cashier, make_trade(), "5.00")
    assert shown(response)[0][0] == "success"
    assert Refund.objects.get().status == "succeeded"


# --- bulk full refunds: a result for every row --------------------------------------------------------------


def test_a_full_refund_of_mixed_trades_reports_every_row(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    paid = make_trade(refunded_amount=Decimal("25.00"))
    unpaid = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    closed = make_trade(status="TRADE_CLOSED", paid_at=None)
    done = make_trade(refunded_amount=Decimal("100.00"))
    chosen = [paid, unpaid, closed, done]

    page = action(cashier, "refund_in_full", chosen)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Refund 75.00 USD" in text
    assert "has not been paid" in text
    assert "refunded in full" in text
    assert not Refund.objects.exists()

    result = confirm(cashier, "refund_in_full", chosen, reason="order cancelled")
    messages = [str(m) for m in result.context["messages"]]
    assert f"Refund of 75.00 USD for order {paid.out_trade_no} succeeded." in messages
    assert any(unpaid.out_trade_no in m and "not been paid" in m for m in messages)
    assert any(closed.out_trade_no in m and "closed" in m for m in messages)
    assert any(done.out_trade_no in m and "refunded in full" in m for m in messages)
    assert any("1 of 4 done, 3 refused" in m for m in messages)
    [refund] = Refund.objects.all()
    assert (refund.trade_id, refund.amount, refund.reason) == (paid.pk, Decimal("75.00"), "order cancelled")
    assert len(gateway.called("forex_refund")) == 1


def test_a_repeated_full_refund_confirmation_sends_nothing_more(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade()
    confirm(cashier, "refund_in_full", [trade], key="same")
    confirm(cashier, "refund_in_full", [trade], key="same")
    assert Refund.objects.count() == 1
    assert len(gateway.called("forex_refund")) == 1


def test_a_partial_refund_action_opens_the_form_for_one_trade(
    cashier: Client, make_trade: Callable[..., Trade]
) -> None:
    one, two = make_trade(), make_trade()
    response = action(cashier, "refund_partially", [one])
    assert (response.status_code, response["Location"]) == (302, refund_url(one))
    response = action(cashier, "refund_partially", [one, two])
    assert shown(response) == [("error", "Choose exactly one trade for a partial refund.")]


# --- reverse ------------------------------------------------------------------------------------------------


def test_a_same_day_in_store_payment_can_be_reversed(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade(product="barcode", status="TRADE_SUCCESS")
    assert 'id="alipay-reverse-button"' in cashier.get(change_url(trade)).content.decode()
    page = cashier.get(reverse_url(trade)).content.decode()
    assert "Reverse this payment?" in page
    assert "100.00 USD" in page
    response = cashier.post(reverse_url(trade), {"reason": "", "idempotency_key": "rv-1"})
    assert shown(response) == [
        ("success", f"Reversal of 100.00 USD for order {trade.out_trade_no} succeeded.")
    ]
    trade.refresh_from_db()
    assert (trade.status, trade.refunded_amount) == ("TRADE_CLOSED", Decimal("100.00"))
    assert len(gateway.called("alipay.acquire.cancel")) == 1


def test_the_next_beijing_day_the_reversal_is_refused_and_a_refund_offered(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway, afternoon: FixedClock
) -> None:
    trade = make_trade(product="barcode", status="TRADE_SUCCESS")
    afternoon.set(NEXT_DAY)
    summary = cashier.get(change_url(trade)).content.decode()
    assert 'id="alipay-reverse-button"' not in summary
    assert "only possible on the day of payment" in summary
    page = cashier.get(reverse_url(trade)).content.decode()
    assert "paid on 2024-05-01 (Beijing time)" in page
    assert refund_url(trade) in page  # "Refund instead…"
    cashier.post(reverse_url(trade), {"reason": "", "idempotency_key": "rv-2"})
    assert not Refund.objects.exists()
    assert not gateway.called("alipay.acquire.cancel")


def test_a_reversal_refused_while_the_gateway_clock_is_a_day_ahead_says_to_set_the_clocks(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway, merchant: Merchant
) -> None:
    # Only the emulator's clock was moved: the reversal's timestamp is a day off at its end, and the gateway
    # answers a bare ILLEGAL_ARGUMENT. Its Date header shows why.
    merchant.environment = "emulator"
    merchant.save()
    trade = make_trade(product="barcode", status="TRADE_SUCCESS")
    refusal = FakeGateway.refused("ILLEGAL_ARGUMENT")
    refusal.date = datetime.now(UTC) + timedelta(days=1, seconds=30)  # the client stamps with the real time
    gateway.once("alipay.acquire.cancel", lambda params: refusal)
    response = cashier.post(reverse_url(trade), {"reason": "", "idempotency_key": "rv-skew"})
    [(level, text)] = shown(response)
    assert level == "error"
    assert "(ILLEGAL_ARGUMENT)" in text
    assert "Alipay's clock is 24 h 00 min ahead of this server's" in text
    assert "more than 30 minutes off is refused" in text
    assert "set it back to real time on the emulator's console" in text
    trade.refresh_from_db()
    assert trade.status == "TRADE_SUCCESS"


def test_a_refusal_with_clocks_that_agree_gives_no_clock_advice(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade(product="barcode", status="TRADE_SUCCESS")
    refusal = FakeGateway.refused("ILLEGAL_ARGUMENT")
    refusal.date = datetime.now(UTC)
    gateway.once("alipay.acquire.cancel", lambda params: refusal)
    response = cashier.post(reverse_url(trade), {"reason": "", "idempotency_key": "rv-agree"})
    [(level, text)] = shown(response)
    assert level == "error"
    assert "(ILLEGAL_ARGUMENT)" in text
    assert "clock" not in text


def test_an_online_payment_is_never_offered_a_reversal(
    cashier: Client, make_trade: Callable[..., Trade]
) -> None:
    page = cashier.get(reverse_url(make_trade())).content.decode()
    assert "paid online" in page
    assert "Refund instead" in page


def test_a_bulk_reversal_reports_every_row(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    instore = make_trade(product="barcode", status="TRADE_SUCCESS")
    online = make_trade()
    page = action(cashier, "reverse_trades", [instore, online]).content.decode()
    assert "returns the full 100.00 USD" in page
    assert "paid online" in page
    result = confirm(cashier, "reverse_trades", [instore, online])
    messages = [str(m) for m in result.context["messages"]]
    assert f"Reversal of 100.00 USD for order {instore.out_trade_no} succeeded." in messages
    assert any(online.out_trade_no in m and "paid online" in m for m in messages)
    assert Refund.objects.get().trade_id == instore.pk


# --- sync ---------------------------------------------------------------------------------------------------


def test_check_with_alipay_applies_what_the_query_says(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    waiting = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    unknown = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    gateway.trades[waiting.out_trade_no] = {
        "out_trade_no": waiting.out_trade_no,
        "trade_no": "2024050122001400000000000999",
        "trade_status": "TRADE_FINISHED",
        "total_fee": "100.00",
        "currency": "USD",
    }
    response = action(cashier, "sync_from_alipay", [waiting, unknown])
    messages = {text.split(":")[0].split(" ")[0]: text for _, text in shown(response)}
    assert "moved from WAIT_BUYER_PAY to TRADE_FINISHED" in messages[waiting.out_trade_no]
    assert "no record" in messages[unknown.out_trade_no]
    assert Trade.objects.get(pk=waiting.pk).status == "TRADE_FINISHED"
    cashier.get(CHANGELIST)  # the messages above are shown (and consumed) here

    again = cashier.post(reverse("admin:django_alipay_trade_sync", args=[waiting.pk]))
    assert shown(again) == [("success", f"{waiting.out_trade_no} is up to date (TRADE_FINISHED).")]
    assert cashier.get(reverse("admin:django_alipay_trade_sync", args=[waiting.pk])).status_code == 405


def test_an_unreachable_gateway_during_sync_is_a_message(
    cashier: Client, make_trade: Callable[..., Trade], merchant: Merchant
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    Merchant.objects.filter(pk=merchant.pk).update(gateway_url="http://127.0.0.1:9/gateway.do")
    response = cashier.post(reverse("admin:django_alipay_trade_sync", args=[trade.pk]))
    [(level, text)] = shown(response)
    assert level == "error"
    assert text.startswith(trade.out_trade_no)


# --- permissions, the user's own trades, CSRF ---------------------------------------------------------------


@pytest.fixture
def viewer(make_staff: Callable[..., User]) -> Client:
    client = Client()
    client.force_login(make_staff("view_merchant", "view_trade", "view_refund", "view_notification"))
    return client


def test_without_the_refund_permission_nothing_is_offered_or_done(
    viewer: Client, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = make_trade(product="barcode", status="TRADE_SUCCESS")
    listing = viewer.get(CHANGELIST).content.decode()
    for name in ("refund_in_full", "refund_partially", "reverse_trades", "sync_from_alipay"):
        assert f'value="{name}"' not in listing
    assert viewer.get(refund_url(trade)).status_code == 403
    assert submit_refund(viewer, trade, "1.00").status_code == 403
    assert viewer.get(reverse_url(trade)).status_code == 403
    assert viewer.post(reverse("admin:django_alipay_trade_sync", args=[trade.pk])).status_code == 403
    confirm(viewer, "refund_in_full", [trade])
    confirm(viewer, "reverse_trades", [trade])
    page = viewer.get(change_url(trade)).content.decode()
    assert "Refund…" not in page
    assert "Check with Alipay" not in page
    assert not Refund.objects.exists()
    assert not gateway.calls


def test_refund_and_reverse_are_separate_permissions(
    make_staff: Callable[..., User], make_trade: Callable[..., Trade]
) -> None:
    client = Client()
    client.force_login(make_staff("view_merchant", "view_trade", "reverse_trade"))
    trade = make_trade(product="barcode", status="TRADE_SUCCESS")
    assert client.get(reverse_url(trade)).status_code == 200
    assert client.get(refund_url(trade)).status_code == 403
    listing = client.get(CHANGELIST).content.decode()
    assert 'value="reverse_trades"' in listing
    assert 'value="refund_in_full"' not in listing


def test_anonymous_users_are_sent_to_the_login_page(make_trade: Callable[..., Trade]) -> None:
    trade = make_trade()
    response = Client().post(refund_url(trade), {"amount": "1.00", "idempotency_key": "x"})
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert not Refund.objects.exists()


def test_a_trade_outside_the_users_queryset_is_not_found(
    cashier: Client,
    make_trade: Callable[..., Trade],
    make_merchant: Callable[..., Merchant],
    gateway: FakeGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mine = make_trade()
    other = make_merchant(gateway_url=gateway.url, name="Other shop")
    theirs = make_trade(merchant=other)
    original = TradeAdmin.get_queryset
    monkeypatch.setattr(
        TradeAdmin, "get_queryset", lambda self, request: original(self, request).exclude(merchant=other)
    )
    assert cashier.get(refund_url(theirs)).status_code == 404
    assert submit_refund(cashier, theirs, "1.00").status_code == 404
    assert cashier.get(reverse_url(theirs)).status_code == 404
    confirm(cashier, "refund_in_full", [theirs])
    assert not Refund.objects.filter(trade=theirs).exists()
    assert submit_refund(cashier, mine, "1.00").status_code == 302


def test_admin_posts_without_a_csrf_token_are_refused(
    make_staff: Callable[..., User], make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_staff(*CASHIER_PERMISSIONS))
    trade = make_trade(product="barcode", status="TRADE_SUCCESS")
    assert submit_refund(client, trade, "1.00").status_code == 403
    assert client.post(reverse_url(trade), {"idempotency_key": "x"}).status_code == 403
    assert client.post(reverse("admin:django_alipay_trade_sync", args=[trade.pk])).status_code == 403
    data = {
        "action": "refund_in_full",
        "_selected_action": [trade.pk],
        "confirm": "yes",
        "idempotency_key": "x",
    }
    assert client.post(CHANGELIST, data).status_code == 403
    assert not Refund.objects.exists()
    assert not gateway.calls


@pytest.mark.django_db
def test_the_timeline_puts_the_order_before_its_payment_within_the_same_second(
    make_trade: Callable[..., Trade],
) -> None:
    # Alipay gives the payment time to the second; the order was created later within that second.
    trade = make_trade(
        created_at=PAID_AT.replace(microsecond=640_000), paid_at=PAID_AT.replace(microsecond=0)
    )

    titles = [str(event.title) for event in build_timeline(trade)]

    assert titles.index("Order created") < titles.index("Paid")
