"""SQL statements per notification on PostgreSQL, and the per-process merchant cache that saves one."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_alipay.domain import merchants
from django_alipay.models import Merchant, Notification, Trade
from tests.domain.fakegateway import FakeGateway
from tests.domain.test_notifications import deliver, sign_form, trade_params
from tests.statements import statements

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgresql")]

#: Store (with the merchant and earlier deliveries), lock the trade, move it, record the outcome: a
#: notification that moves the trade forward needs no duplicate lookup.
NEW_NOTIFICATION_STATEMENTS = 4
RESEND_STATEMENTS = 3
NEW_KEY = "0123456789abcdefghijklmnopqrstuv"


@pytest.fixture
def unpaid(make_trade: Callable[..., Trade]) -> Callable[[], Trade]:
    return lambda: make_trade(status="WAIT_BUYER_PAY", paid_at=None)


@pytest.fixture
def warm(merchant: Merchant, unpaid: Callable[[], Trade]) -> Merchant:
    """The merchant after one notification in this process, as every notification but a process's first."""
    assert deliver(merchant, sign_form(trade_params(unpaid()))).status == 200
    return merchant


def test_a_new_notification_is_stored_verified_and_applied_in_at_most_four_statements(
    warm: Merchant, unpaid: Callable[[], Trade], gateway: FakeGateway
) -> None:
    trade = unpaid()
    with CaptureQueriesContext(connection) as captured:
        answer = deliver(warm, sign_form(trade_params(trade)))
    assert (answer.status, answer.body) == (200, "success")
    trade.refresh_from_db()
    assert trade.status == "TRADE_FINISHED"
    assert len(gateway.called("notify_verify")) == 2  # the warm-up's and this one's
    sql = statements(captured)
    assert len(sql) <= NEW_NOTIFICATION_STATEMENTS, "\n".join(sql)


def test_a_resend_of_an_applied_notification_takes_at_most_three_statements(
    warm: Merchant, unpaid: Callable[[], Trade], gateway: FakeGateway
) -> None:
    body = sign_form(trade_params(unpaid()))
    first = deliver(warm, body)
    with CaptureQueriesContext(connection) as captured:
        again = deliver(warm, body)
    assert (first.status, again.status) == (200, 200)
    assert again.notification is not None
    assert first.notification is not None
    stored = Notification.objects.get(pk=again.notification.pk)
    assert (stored.outcome, stored.duplicate_of_id) == ("duplicate", first.notification.pk)
    assert len(gateway.called("notify_verify")) == 2  # never for the resend
    sql = statements(captured)
    assert len(sql) <= RESEND_STATEMENTS, "\n".join(sql)


def test_a_process_first_notification_adds_one_merchant_read(
    merchant: Merchant, unpaid: Callable[[], Trade]
) -> None:
    body = sign_form(trade_params(unpaid()))
    merchants.forget_notify_tokens()
    with CaptureQueriesContext(connection) as captured:
        answer = deliver(merchant, body)
    assert answer.status == 200
    sql = statements(captured)
    assert len(sql) <= NEW_NOTIFICATION_STATEMENTS + 1, "\n".join(sql)


# --- the merchant cache: a change takes effect on the next notification ------------------------------------


def test_a_key_changed_in_this_process_takes_effect_on_the_next_notification(
    warm: Merchant, unpaid: Callable[[], Trade]
) -> None:
    warm.md5_key = NEW_KEY
    warm.save()
    old = deliver(warm, sign_form(trade_params(unpaid())))
    assert (old.status, old.flag) == (400, "bad_signature")
    new = deliver(warm, sign_form(trade_params(unpaid()), key=NEW_KEY))
    assert (new.status, new.body) == (200, "success")


def test_a_key_changed_by_another_process_takes_effect_on_the_next_notification(
    warm: Merchant, unpaid: Callable[[], Trade]
) -> None:
    # A queryset update sends no signal, as a change made by another process reaches this one with none.
    Merchant.objects.filter(pk=warm.pk).update(md5_key=NEW_KEY)
    old = deliver(warm, sign_form(trade_params(unpaid())))
    assert (old.status, old.flag) == (400, "bad_signature")
    new = deliver(warm, sign_form(trade_params(unpaid()), key=NEW_KEY))
    assert (new.status, new.body) == (200, "success")


def test_a_partner_changed_by_another_process_takes_effect_on_the_next_notification(
    warm: Merchant, unpaid: Callable[[], Trade]
) -> None:
    seller = warm.partner
    Merchant.objects.filter(pk=warm.pk).update(partner="2088999999999999")
    trade = unpaid()
    answer = deliver(warm, sign_form(trade_params(trade, seller_id=seller)))
    assert (answer.status, answer.flag) == (200, "partner_mismatch")
    trade.refresh_from_db()
    assert trade.status == "WAIT_BUYER_PAY"


def test_a_deactivated_merchant_is_seen_on_the_next_notification_and_its_trades_are_still_applied(
    warm: Merchant, unpaid: Callable[[], Trade]
) -> None:
    # Deactivating a merchant stops new trades; Alipay's word on the trades it already has is still the truth
    # about money paid, so it is applied (answered 404, a notification would be kept as a fingerprint only).
    Merchant.objects.filter(pk=warm.pk).update(is_active=False)
    trade = unpaid()
    answer = deliver(warm, sign_form(trade_params(trade)))
    assert answer.notification is not None
    merchant = answer.notification.merchant
    assert merchant is not None
    assert merchant.is_active is False
    assert (answer.status, answer.body) == (200, "success")
    trade.refresh_from_db()
    assert trade.status != "WAIT_BUYER_PAY"


def test_a_regenerated_notify_token_retires_the_old_notify_url_at_once(
    warm: Merchant, unpaid: Callable[[], Trade]
) -> None:
    old_token = warm.notify_token
    fresh = Merchant.objects.get(pk=warm.pk)
    fresh.regenerate_notify_token()
    body = sign_form(trade_params(unpaid()))
    answer = deliver(warm, body)  # ``warm`` still holds the old token
    assert warm.notify_token == old_token
    assert (answer.status, answer.flag) == (404, "unknown_merchant")
    stored = Notification.objects.get(pk=answer.notification.pk if answer.notification else None)
    assert stored.merchant_id is None
    assert deliver(fresh, body).status == 200
