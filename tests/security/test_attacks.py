"""The attack list: each test tries one attack on the running product, on PostgreSQL, and shows it fails.

Kept as one list so that a reviewer starts from a green run and adds to it; each test's name says what it
tries, and the rules behind it are tested in detail next to the code that keeps them. The first part holds
the attacks a review found open, the second those that already held. One attack needs the example shop's
own settings and lives with its tests: a stranger reading another visitor's payment state from the return
page (example_project/tests/test_order_status.py).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.db.models import QuerySet
from django.test import Client
from django.urls import reverse

from django_alipay.domain import clock as domain_clock
from django_alipay.domain import notifications
from django_alipay.models import Merchant, Notification, Refund, Trade
from django_alipay.protocol import keys, signing
from django_alipay.protocol.clock import format_datetime
from tests.conftest import TEST_MD5_KEY
from tests.domain.fakegateway import FakeGateway
from tests.factories import create_refund
from tests.web.conftest import CASHIER_PERMISSIONS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgresql")]

FORM = "application/x-www-form-urlencoded"


def _signed(params: dict[str, str], *, key: str = TEST_MD5_KEY) -> bytes:
    full = dict(params, sign=signing.sign(params, sign_type="MD5", key=key), sign_type="MD5")
    return urlencode(full).encode("ascii")


def _payment(trade: Trade, notify_id: str = "5b89a773c60af059d96b1693dd00000001") -> dict[str, str]:
    return {
        "notify_id": notify_id,
        "notify_time": format_datetime(domain_clock.now()),
        "notify_type": "trade_status_sync",
        "trade_no": "2024050122001332950500389138",
        "out_trade_no": trade.out_trade_no,
        "total_fee": "100.00",
        "currency": "USD",
        "trade_status": "TRADE_FINISHED",
    }


def _notify(merchant: Merchant, body: bytes) -> Any:
    return Client().post(f"/alipay/notify/{merchant.notify_token}/", body, content_type=FORM)


def test_an_appended_empty_refund_status_cannot_stop_a_genuine_payment_from_being_applied(
    merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    genuine = _signed(_payment(trade))
    _notify(merchant, genuine + b"&refund_status=")
    answer = _notify(merchant, genuine)
    assert answer.status_code == 200
    assert Trade.objects.get(pk=trade.pk).status == "TRADE_FINISHED"
    assert Notification.objects.filter(outcome="processed").count() == 1


def merchants_named_for_the_user(user: Any) -> QuerySet[Merchant]:
    """A project's ``API_MERCHANTS_FOR_USER``: the merchants whose name starts with the user's name."""
    return Merchant.objects.filter(name__startswith=f"{user.username}:")


def test_staff_of_one_merchant_cannot_see_or_refund_another_merchants_trade_in_the_admin(
    settings: Any,
    merchant: Merchant,
    make_merchant: Callable[..., Merchant],
    make_trade: Callable[..., Trade],
    make_staff: Callable[..., User],
    gateway: FakeGateway,
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "API_MERCHANTS_FOR_USER": merchants_named_for_the_user}
    bobs_shop = make_merchant(name="bob: tea", gateway_url=gateway.url)
    bobs = make_trade(merchant=bobs_shop, out_trade_no="BOB-1")
    theirs = make_trade(out_trade_no="NOT-BOBS-1", product="barcode", status="TRADE_SUCCESS")
    their_refund = create_refund(theirs, gateway_refund_id="RF-NOT-BOBS")
    their_note = Notification.objects.create(merchant=merchant, out_trade_no=theirs.out_trade_no)
    bob = Client()
    bob.force_login(make_staff(*CASHIER_PERMISSIONS, username="bob"))

    trades = bob.get(reverse("admin:django_alipay_trade_changelist")).content.decode()
    assert bobs.out_trade_no in trades
    assert theirs.out_trade_no not in trades
    for name in ("trade", "refund", "notification", "merchant"):
        listing = bob.get(reverse(f"admin:django_alipay_{name}_changelist")).content.decode()
        assert "NOT-BOBS" not in listing
        assert merchant.name not in listing
    for name, obj in (("trade", theirs), ("refund", their_refund), ("notification", their_note)):
        page = bob.get(reverse(f"admin:django_alipay_{name}_change", args=[obj.pk]))
        assert page.status_code == 302  # the admin's "does not exist" redirect
    assert bob.get(reverse("admin:django_alipay_merchant_change", args=[merchant.pk])).status_code == 302
    refund_url = reverse("admin:django_alipay_trade_refund", args=[theirs.pk])
    assert bob.get(refund_url).status_code == 404
    assert bob.post(refund_url, {"amount": "1.00", "idempotency_key": "k"}).status_code == 404
    reverse_url = reverse("admin:django_alipay_trade_reverse", args=[theirs.pk])
    assert bob.post(reverse_url, {"idempotency_key": "k"}).status_code == 404
    assert bob.post(reverse("admin:django_alipay_trade_sync", args=[theirs.pk])).status_code == 404
    bulk = {
        "action": "refund_in_full",
        "_selected_action": [theirs.pk],
        "confirm": "yes",
        "idempotency_key": "k",
    }
    bob.post(reverse("admin:django_alipay_trade_changelist"), bulk)
    assert list(Refund.objects.filter(trade=theirs)) == [their_refund]
    assert not gateway.calls


def test_a_return_visit_signed_with_a_sign_type_the_app_no_longer_allows_is_not_shown_as_genuine(
    settings: Any, merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    # The shop has turned MD5 off; an MD5-signed return URL (say, leaked from an old visit) must not pass.
    settings.ALIPAY = {**settings.ALIPAY, "ALLOWED_SIGN_TYPES": ["RSA2"]}
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    params = {"out_trade_no": trade.out_trade_no, "trade_status": "TRADE_FINISHED", "total_fee": "100.00"}
    visit = notifications.receive_return(merchant.notify_token, query_string=_signed(params).decode())
    assert not visit.genuine
    assert visit.notification is not None
    assert Notification.objects.get(pk=visit.notification.pk).verification == "rejected"


def test_view_only_staff_open_a_merchant_page_without_a_server_error_or_its_secrets(
    merchant: Merchant, make_staff: Callable[..., User]
) -> None:
    viewer = Client()
    viewer.force_login(make_staff("view_merchant"))
    page = viewer.get(reverse("admin:django_alipay_merchant_change", args=[merchant.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert merchant.partner in text
    assert TEST_MD5_KEY not in text
    assert merchant.masked("md5_key") in text  # what is stored, shown the write-only way


@pytest.mark.usefixtures("rest_api")
@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_a_deeply_nested_json_body_gets_the_apis_own_400_not_a_server_error(
    admin_user: User, make_trade: Callable[..., Trade], depth: int
) -> None:
    from rest_framework.test import APIClient

    trade = make_trade()
    client = APIClient()
    client.force_authenticate(admin_user)
    body = '{"amount": ' + "[" * depth + "]" * depth + "}"
    url = f"/alipay/api/trades/{trade.pk}/refunds/"
    answer = client.post(url, body, content_type="application/json", headers={"Idempotency-Key": "deep"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "parse_error"
    assert not Refund.objects.exists()


def test_flooding_an_unknown_notify_url_with_large_bodies_stores_little_and_only_so_many_rows(
    settings: Any,
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "UNKNOWN_TOKEN_ROWS_PER_MINUTE": 2}
    cache.clear()
    body = b"x=" + b"A" * 60_000
    for number in range(10):
        answer = Client().post(
            f"/alipay/notify/no-such-token-{number}/?q={'B' * 5000}", body, content_type=FORM
        )
        assert answer.status_code == 404
    stored = list(Notification.objects.all())
    # Two rows a minute; the ten posts may straddle one minute boundary, never two.
    assert 1 <= len(stored) <= 4
    for row in stored:
        assert row.merchant is None
        assert bytes(row.body) == b""
        assert len(row.query_string) <= 256
        assert row.body_size == len(body)
        assert hashlib.sha256(body).hexdigest() in row.flag_info


def test_a_cross_site_form_post_cannot_pay_a_trade_or_replace_a_partners_key_at_the_emulator(
    settings: Any,
) -> None:
    from django_alipay.emulator import api
    from django_alipay.emulator.models import Partner

    settings.ALIPAY_EMULATOR = {"NOTIFIER_THREAD": False}
    api.register_partner("2088000099990001", md5_key="a" * 32)
    browser = Client(enforce_csrf_checks=True)  # a visitor's browser, posting another site's form
    replaced = browser.post(
        "/emulator/control/partners", {"partner": "2088000099990001", "md5_key": "b" * 32}
    )
    paid = browser.post("/emulator/control/pay", {"partner": "2088000099990001", "out_trade_no": "ANY-1"})
    moved = browser.post("/emulator/control/clock", {"now": "2030-01-01T00:00:00+08:00"})
    assert (replaced.status_code, paid.status_code, moved.status_code) == (403, 403, 403)
    assert Partner.objects.get(partner="2088000099990001").md5_key == "a" * 32
    assert browser.get("/emulator/control/clock").json()["now"][:4] != "2030"


def test_check_deploy_flags_a_plain_http_notify_url_and_a_live_merchant_on_the_emulator(
    settings: Any, merchant: Merchant
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_URL_BASE": "http://shop.example/alipay/notify/"}
    out, err = io.StringIO(), io.StringIO()
    call_command("check", "--deploy", "--fail-level", "CRITICAL", stdout=out, stderr=err)
    said = out.getvalue() + err.getvalue()
    assert "django_alipay.W012" in said  # notifications (signed payment data) over plain http
    assert "django_alipay.W011" in said  # without --database: the default database's merchants are read
    assert f"Merchant {merchant.name!r} talks to the emulator" in said


# --- attacks that held when the list was made: kept so that they keep holding -----------------------------


def _unpaid(make_trade: Callable[..., Trade], **fields: Any) -> Trade:
    return make_trade(status="WAIT_BUYER_PAY", paid_at=None, **fields)


def _still_unpaid(trade: Trade) -> bool:
    return Trade.objects.get(pk=trade.pk).status == "WAIT_BUYER_PAY"


def test_a_notification_with_a_forged_signature_changes_nothing(
    merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = _unpaid(make_trade)
    answer = _notify(merchant, _signed(_payment(trade), key="f0rgedKey" * 3 + "12345"))
    assert (answer.status_code, answer.content) == (400, b"fail")
    assert _still_unpaid(trade)


def test_an_md5_signature_for_an_rsa2_merchant_is_refused_as_a_downgrade(
    make_merchant: Callable[..., Merchant], gateway: FakeGateway, make_trade: Callable[..., Trade]
) -> None:
    alipay = keys.generate_private_key("RSA2")
    rsa_merchant = make_merchant(
        gateway_url=gateway.url,
        sign_type="RSA2",
        private_key=keys.private_key_pem(keys.generate_private_key("RSA2")),
        alipay_public_key=keys.public_key_pem(alipay),
        md5_key=TEST_MD5_KEY,  # known to whoever holds the MD5 key: must not sign for an RSA2 merchant
    )
    trade = _unpaid(make_trade, merchant=rsa_merchant)
    answer = _notify(rsa_merchant, _signed(_payment(trade)))
    assert answer.status_code == 400
    assert Notification.objects.get().flag == "sign_type_not_allowed"
    assert _still_unpaid(trade)


def test_a_replayed_notification_is_applied_once(
    merchant: Merchant, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    trade = _unpaid(make_trade)
    body = _signed(_payment(trade))
    answers = [_notify(merchant, body).status_code for _ in range(3)]
    assert answers == [200, 200, 200]
    assert sorted(Notification.objects.values_list("outcome", flat=True)) == [
        "duplicate",
        "duplicate",
        "processed",
    ]
    assert len(gateway.called("notify_verify")) == 1


def test_a_notification_for_another_merchants_order_is_refused_at_either_notify_url(
    merchant: Merchant,
    make_merchant: Callable[..., Merchant],
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    other = make_merchant(gateway_url=gateway.url, md5_key="b" * 32)
    theirs = _unpaid(make_trade, merchant=other)
    signed_with_ours = _signed(_payment(theirs))
    assert _notify(other, signed_with_ours).status_code == 400  # not their key
    assert _notify(merchant, signed_with_ours).status_code == 404  # not our order
    assert _still_unpaid(theirs)


def test_a_notification_re_signed_after_changing_the_amount_is_refused(
    merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = _unpaid(make_trade)
    cheaper = dict(_payment(trade), total_fee="1.00")
    answer = _notify(merchant, _signed(cheaper, key="attackerKnowsThisKey0123456789ab"))
    assert answer.status_code == 400
    assert Notification.objects.get().flag == "bad_signature"
    assert _still_unpaid(trade)


@pytest.mark.usefixtures("rest_api")
def test_an_api_user_of_one_merchant_gets_404_for_another_merchants_trade_and_cannot_refund_it(
    settings: Any,
    make_merchant: Callable[..., Merchant],
    make_trade: Callable[..., Trade],
    make_staff: Callable[..., User],
    gateway: FakeGateway,
) -> None:
    from rest_framework.test import APIClient

    settings.ALIPAY = {**settings.ALIPAY, "API_MERCHANTS_FOR_USER": merchants_named_for_the_user}
    make_merchant(name="ann: shop", gateway_url=gateway.url)
    theirs = make_trade()
    client = APIClient()
    client.force_authenticate(make_staff(*CASHIER_PERMISSIONS, username="ann"))
    assert client.get(f"/alipay/api/trades/{theirs.pk}/").status_code == 404
    refund = client.post(
        f"/alipay/api/trades/{theirs.pk}/refunds/",
        {"amount": "1.00"},
        format="json",
        headers={"Idempotency-Key": "k-1"},
    )
    assert refund.status_code == 404
    assert not Refund.objects.exists()
    assert not gateway.calls


@pytest.mark.usefixtures("rest_api")
def test_a_refund_sent_twice_with_one_idempotency_key_refunds_once(
    admin_user: User, make_trade: Callable[..., Trade], gateway: FakeGateway
) -> None:
    from rest_framework.test import APIClient

    trade = make_trade()
    client = APIClient()
    client.force_authenticate(admin_user)
    url = f"/alipay/api/trades/{trade.pk}/refunds/"
    answers = [
        client.post(url, {"amount": "10.00"}, format="json", headers={"Idempotency-Key": "same-key"})
        for _ in range(2)
    ]
    assert [answer.status_code for answer in answers] == [201, 201]
    assert answers[0].json() == answers[1].json()
    assert Refund.objects.count() == 1
    assert len(gateway.called("forex_refund")) == 1


def test_an_admin_refund_posted_without_a_csrf_token_is_refused(
    make_trade: Callable[..., Trade], make_staff: Callable[..., User], gateway: FakeGateway
) -> None:
    trade = make_trade()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(make_staff(*CASHIER_PERMISSIONS))
    url = reverse("admin:django_alipay_trade_refund", args=[trade.pk])
    assert browser.post(url, {"amount": "1.00", "idempotency_key": "k"}).status_code == 403
    assert not Refund.objects.exists()
    assert not gateway.calls


def test_merchant_keys_are_neither_stored_readably_nor_shown_in_repr_or_logs(
    merchant: Merchant, caplog: pytest.LogCaptureFixture
) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT md5_key FROM django_alipay_merchant WHERE id = %s", [merchant.pk])
        (stored,) = cursor.fetchone()
    assert TEST_MD5_KEY not in str(stored)
    assert TEST_MD5_KEY not in repr(merchant)
    assert TEST_MD5_KEY not in str(Merchant.objects.get(pk=merchant.pk).md5_key)
    with caplog.at_level(logging.DEBUG):
        _notify(merchant, _signed({"notify_id": "x"}, key="wrong-key-wrong-key-wrong-key-12"))
    assert TEST_MD5_KEY not in caplog.text
