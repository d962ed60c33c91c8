"""The refund ledger and the notification log in the admin: read-only, escaped, and their two actions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from django_alipay.domain import notifications, refunds
from django_alipay.models import Merchant, Notification, Refund, Trade
from django_alipay.protocol.clock import BEIJING, FixedClock
from tests.conftest import TEST_MD5_KEY
from tests.domain.fakegateway import FakeGateway, Reply
from tests.web.conftest import FORM
from tests.web.signer import signed_body

pytestmark = pytest.mark.django_db(transaction=True)

REFUNDS = "/admin/django_alipay/refund/"
NOTIFICATIONS = "/admin/django_alipay/notification/"


@pytest.fixture(autouse=True)
def afternoon(fixed_clock: Callable[[datetime], FixedClock]) -> FixedClock:
    return fixed_clock(datetime(2024, 5, 1, 15, 0, tzinfo=BEIJING))


def shown(response: HttpResponse) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def deliver(merchant: Merchant, params: dict[str, str]) -> notifications.NotificationAnswer:
    return notifications.receive(
        merchant.notify_token, body=signed_body(params, key=TEST_MD5_KEY), content_type=FORM
    )


def trade_params(out_trade_no: str, **overrides: str) -> dict[str, str]:
    params = {
        "notify_id": "ad0f5e6b1c2d3e4f5a6b7c8d9e0f1a2b",
        "notify_type": "trade_status_sync",
        "out_trade_no": out_trade_no,
        "trade_no": "2024050122001400000000000456",
        "total_fee": "100.00",
        "currency": "USD",
        "trade_status": "TRADE_FINISHED",
    }
    params.update(overrides)
    return params


# --- refunds ------------------------------------------------------------------------------------------------


def test_the_refund_ledger_is_read_only_and_says_what_the_gateway_said(
    make_staff: Callable[..., User], make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    client = Client()
    client.force_login(
        make_staff(
            "view_merchant", "view_refund", "add_refund", "change_refund", "delete_refund", "view_trade"
        )
    )
    gateway.once("forex_refund", lambda p: FakeGateway.refused("RETURN_AMOUNT_EXCEED"))
    refund = refunds.request_refund(make_trade(), "10.00")
    assert refund.status == "failed"

    listing = client.get(REFUNDS).content.decode()
    assert refund.gateway_refund_id in listing
    assert "RETURN_AMOUNT_EXCEED" in listing
    assert client.get(REFUNDS + "add/").status_code == 403
    page = client.get(reverse("admin:django_alipay_refund_change", args=[refund.pk])).content.decode()
    assert 'name="_save"' not in page
    assert client.get(reverse("admin:django_alipay_refund_delete", args=[refund.pk])).status_code == 403


def test_the_refund_page_says_when_the_last_call_was_answered_or_that_it_is_in_flight(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    def answered_row() -> str:
        page = cashier.get(reverse("admin:django_alipay_refund_change", args=[refund.pk])).content.decode()
        return page.split("field-answered_both", 1)[1].split("field-completed_both", 1)[0]

    refund = refunds.request_refund(make_trade(), "10.00")
    row = answered_row()
    assert "Answered" in row
    assert "2024-05-01 15:00:00" in row  # the domain clock's afternoon, Beijing time
    Refund.objects.filter(pk=refund.pk).update(status="submitted", answered_at=None)
    assert "Not yet: its call is under way, or the process making it stopped." in answered_row()


def test_asking_alipay_again_settles_a_refund_of_unknown_outcome(
    cashier: Client, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    gateway.once("forex_refund", lambda p: Reply(b"<html>502</html>", status=502, content_type="text/html"))
    unknown = refunds.request_refund(make_trade(), "10.00")
    settled = refunds.request_refund(make_trade(), "5.00")
    assert (unknown.status, settled.status) == ("unknown", "succeeded")

    data = {"action": "ask_alipay_again", "_selected_action": [unknown.pk, settled.pk], "index": "0"}
    response = cashier.post(REFUNDS, data)
    texts = [text for _, text in shown(response)]
    assert f"Refund of 10.00 USD for order {unknown.trade.out_trade_no} succeeded." in texts
    assert any(settled.gateway_refund_id in text and "settled" in text for text in texts)
    unknown.refresh_from_db()
    assert unknown.status == "succeeded"
    first, again = gateway.called("forex_refund")[0], gateway.called("forex_refund")[2]
    assert first.params["out_return_no"] == again.params["out_return_no"] == unknown.gateway_refund_id


def test_asking_alipay_again_needs_the_refund_permission(
    make_staff: Callable[..., User], make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    gateway.once("forex_refund", lambda p: Reply(b"", status=502))
    unknown = refunds.request_refund(make_trade(), "10.00")
    client = Client()
    client.force_login(make_staff("view_merchant", "view_refund"))
    assert 'value="ask_alipay_again"' not in client.get(REFUNDS).content.decode()
    client.post(REFUNDS, {"action": "ask_alipay_again", "_selected_action": [unknown.pk], "index": "0"})
    assert Refund.objects.get(pk=unknown.pk).status == "unknown"
    assert len(gateway.called("forex_refund")) == 1


# --- notifications ------------------------------------------------------------------------------------------


def test_markup_is_shown_escaped_in_the_list_and_on_the_page(
    cashier: Client, merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    attack = "<script>alert('owned')</script>"
    answer = deliver(
        merchant, trade_params(trade.out_trade_no, subject=attack, body="<img src=x onerror=alert(1)>")
    )
    assert answer.acknowledged
    Notification.objects.filter(pk=answer.notification.pk).update(out_trade_no=attack)  # type: ignore[union-attr]

    for url in (
        NOTIFICATIONS,
        reverse("admin:django_alipay_notification_change", args=[answer.notification.pk]),
    ):  # type: ignore[union-attr]
        page = cashier.get(url).content.decode()
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;alert(" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_notification_page_shows_the_verification_and_the_raw_request(
    cashier: Client, merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    answer = deliver(merchant, trade_params(trade.out_trade_no))
    page = cashier.get(
        reverse("admin:django_alipay_notification_change", args=[answer.notification.pk])
    ).content  # type: ignore[union-attr]
    text = page.decode()
    assert "Genuine" in text
    assert "Processed" in text
    assert "notify_id=ad0f5e6b1c2d3e4f5a6b7c8d9e0f1a2b" in text
    assert reverse("admin:django_alipay_trade_change", args=[trade.pk]) in text


def test_reprocess_applies_a_notification_whose_order_was_created_after_it_arrived(
    cashier: Client, merchant: Merchant, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    early = deliver(merchant, trade_params("LATE-ORDER-1"))
    assert (early.status, early.flag) == (404, "unknown_order")
    trade = make_trade(out_trade_no="LATE-ORDER-1", status="WAIT_BUYER_PAY", paid_at=None)

    data = {"action": "reprocess", "_selected_action": [early.notification.pk], "index": "0"}  # type: ignore[union-attr]
    response = cashier.post(NOTIFICATIONS, data)
    assert shown(response) == [("success", f"Notification {early.notification.pk}: Processed.")]  # type: ignore[union-attr]
    assert Trade.objects.get(pk=trade.pk).status == "TRADE_FINISHED"
    stored = Notification.objects.get(pk=early.notification.pk)  # type: ignore[union-attr]
    assert stored.outcome == "processed"
    assert "before: Left for Alipay to send again" in stored.flag_info
    assert len(gateway.called("notify_verify")) == 1  # verified once, when it arrived


def test_reprocess_refuses_a_notification_already_acted_upon(
    cashier: Client, merchant: Merchant, make_trade: Callable[..., Trade], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    answer = deliver(merchant, trade_params(trade.out_trade_no))
    note = answer.notification
    assert note is not None
    response = cashier.post(reverse("admin:django_alipay_notification_reprocess", args=[note.pk]))
    assert response.status_code == 302
    [(level, text)] = shown(response)
    assert level == "error"
    assert "already acted upon" in text


def test_reprocess_needs_the_sync_permission_and_a_post(
    make_staff: Callable[..., User], merchant: Merchant, gateway: FakeGateway
) -> None:
    early = deliver(merchant, trade_params("NOBODY"))
    note = early.notification
    assert note is not None
    viewer = Client()
    viewer.force_login(make_staff("view_merchant", "view_notification"))
    url = reverse("admin:django_alipay_notification_reprocess", args=[note.pk])
    assert viewer.post(url).status_code == 403
    assert 'value="reprocess"' not in viewer.get(NOTIFICATIONS).content.decode()
    page = viewer.get(reverse("admin:django_alipay_notification_change", args=[note.pk])).content.decode()
    assert 'id="alipay-reprocess"' not in page
    syncer = Client()
    syncer.force_login(make_staff("view_merchant", "view_notification", "sync_trade"))
    assert syncer.get(url).status_code == 405
    assert Notification.objects.get(pk=note.pk).outcome == "retry"


def test_notifications_cannot_be_added_changed_or_deleted(
    make_staff: Callable[..., User], merchant: Merchant
) -> None:
    note = deliver(merchant, trade_params("NOBODY")).notification
    assert note is not None
    client = Client()
    client.force_login(
        make_staff(
            "view_merchant",
            "view_notification",
            "add_notification",
            "change_notification",
            "delete_notification",
        )
    )
    assert client.get(NOTIFICATIONS + "add/").status_code == 403
    assert client.get(reverse("admin:django_alipay_notification_delete", args=[note.pk])).status_code == 403
    assert (
        'name="_save"'
        not in client.get(reverse("admin:django_alipay_notification_change", args=[note.pk])).content.decode()
    )


def test_the_reprocess_action_runs_outside_atomic_requests(
    cashier: Client,
    merchant: Merchant,
    make_trade: Callable[..., Trade],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    early = deliver(merchant, trade_params("LATE-ORDER-2")).notification
    assert early is not None
    trade = make_trade(out_trade_no="LATE-ORDER-2", status="WAIT_BUYER_PAY", paid_at=None)
    # The domain stores notifications in durable transactions: inside a request-wide one it would refuse.
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    response = cashier.post(
        NOTIFICATIONS, {"action": "reprocess", "_selected_action": [early.pk], "index": "0"}
    )
    assert response.status_code == 302
    assert shown(response) == [("success", f"Notification {early.pk}: Processed.")]
    assert Trade.objects.get(pk=trade.pk).status == "TRADE_FINISHED"


def test_requests_to_an_unknown_notify_url_are_listed_for_superusers_only(
    make_staff: Callable[..., User], merchant: Merchant
) -> None:
    stray = notifications.receive("no-such-token", body=b"x=1", content_type=FORM).notification
    mine = deliver(merchant, trade_params("NOBODY")).notification
    assert stray is not None
    assert mine is not None
    staff = Client()
    staff.force_login(make_staff("view_merchant", "view_notification"))
    listed = staff.get(NOTIFICATIONS).content.decode()
    assert reverse("admin:django_alipay_notification_change", args=[mine.pk]) in listed
    assert reverse("admin:django_alipay_notification_change", args=[stray.pk]) not in listed
    superuser = Client()
    superuser.force_login(User.objects.create_superuser("root", password="pw-for-tests-only"))
    assert (
        reverse("admin:django_alipay_notification_change", args=[stray.pk])
        in superuser.get(NOTIFICATIONS).content.decode()
    )
