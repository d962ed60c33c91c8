"""Notifications: store first, verify, act once; every kind of bad notification at the domain level."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.db import connection, transaction

from django_alipay import signals
from django_alipay.domain import clock as domain_clock
from django_alipay.domain import notifications, refunds
from django_alipay.enums import RefundStatus
from django_alipay.models import Merchant, Notification, Refund, Trade
from django_alipay.protocol import keys, signing
from django_alipay.protocol.clock import BEIJING, format_datetime
from tests.conftest import TEST_MD5_KEY
from tests.domain.fakegateway import FakeGateway, Reply

pytestmark = pytest.mark.django_db(transaction=True)

FORM = "application/x-www-form-urlencoded"
_ids = iter(range(1, 1_000_000))


def new_notify_id() -> str:
    return f"5b89a773c60af059d96b1693dd{next(_ids):08d}"


def trade_params(trade: Trade, **overrides: str) -> dict[str, str]:
    params = {
        "notify_id": new_notify_id(),
        "notify_time": format_datetime(domain_clock.now()),
        "notify_type": "trade_status_sync",
        "trade_no": "2024050122001332950500389138",
        "out_trade_no": trade.out_trade_no,
        "total_fee": "100.00",
        "currency": "USD",
        "trade_status": "TRADE_FINISHED",
    }
    params.update(overrides)
    return {name: value for name, value in params.items() if value is not None}


def sign_form(
    params: dict[str, str], *, key: Any = TEST_MD5_KEY, sign_type: str = "MD5", charset: str = "utf-8"
) -> bytes:
    signed = dict(params)
    signed["sign"] = signing.sign(params, sign_type=sign_type, key=key, charset=charset)
    signed["sign_type"] = sign_type
    return urlencode(signed, encoding=charset).encode("ascii")


def deliver(merchant: Merchant, body: bytes, **kwargs: Any) -> notifications.NotificationAnswer:
    options: dict[str, Any] = {"content_type": FORM, "remote_addr": "110.75.143.10", "headers": {}}
    options.update(kwargs)
    return notifications.receive(merchant.notify_token, body=body, **options)


@pytest.fixture
def unpaid(make_trade: Callable[..., Trade]) -> Trade:
    return make_trade(status="WAIT_BUYER_PAY", paid_at=None)


@pytest.fixture
def fired() -> Iterator[dict[str, list[dict[str, Any]]]]:
    seen: dict[str, list[dict[str, Any]]] = {}
    receivers = []
    for name in ("trade_paid", "trade_status_changed", "notification_received", "notification_rejected"):

        def receiver(sender: type, _name: str = name, **kwargs: Any) -> None:
            seen.setdefault(_name, []).append(kwargs)

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((name, receiver))
    yield seen
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)


def assert_rejected(
    answer: notifications.NotificationAnswer, status: int, flag: str, trade: Trade | None
) -> None:
    assert (answer.status, answer.body, answer.flag) == (status, "fail", flag)
    assert answer.notification is not None
    stored = Notification.objects.get(pk=answer.notification.pk)
    assert stored.flag == flag
    if trade is not None:
        fresh = Trade.objects.get(pk=trade.pk)
        assert (fresh.status, fresh.paid_at) == ("WAIT_BUYER_PAY", None)


# --- the happy path ----------------------------------------------------------------------------------------


def test_a_genuine_notification_pays_the_trade_once_and_is_acknowledged(
    merchant: Merchant, unpaid: Trade, gateway: FakeGateway, fired: dict[str, list[dict[str, Any]]]
) -> None:
    params = trade_params(unpaid)
    answer = deliver(merchant, sign_form(params), headers={"User-Agent": "Mozilla/4.0", "Cookie": "secret"})

    assert (answer.status, answer.body) == (200, "success")
    unpaid.refresh_from_db()
    assert unpaid.status == "TRADE_FINISHED"
    assert unpaid.paid_at is not None
    assert unpaid.trade_no == "2024050122001332950500389138"
    stored = Notification.objects.get()
    assert (stored.verification, stored.outcome, stored.kind) == ("verified", "processed", "trade")
    assert stored.trade_id == unpaid.pk
    assert stored.params["total_fee"] == "100.00"
    assert bytes(stored.body) == sign_form(params)
    assert stored.headers == {"User-Agent": "Mozilla/4.0"}
    [verify] = gateway.called("notify_verify")
    assert verify.params["notify_id"] == params["notify_id"]
    assert len(fired["trade_paid"]) == 1
    assert fired["trade_paid"][0]["trade"].pk == unpaid.pk
    assert fired["trade_paid"][0]["params"]["notify_id"] == params["notify_id"]
    assert len(fired["notification_received"]) == 1


def test_it_refuses_to_run_inside_a_transaction_that_could_roll_its_record_back(
    merchant: Merchant, unpaid: Trade
) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        deliver(merchant, sign_form(trade_params(unpaid)))


def test_the_raw_request_survives_a_failure_to_verify(merchant: Merchant, unpaid: Trade) -> None:
    Merchant.objects.filter(pk=merchant.pk).update(md5_key=None)
    answer = deliver(merchant, sign_form(trade_params(unpaid)))
    assert (answer.status, answer.flag) == (503, "verify_error")
    stored = Notification.objects.get()
    assert stored.outcome == "retry"
    assert bytes(stored.body).startswith(b"notify_id=")


def test_an_unknown_notify_url_token_is_stored_and_refused(unpaid: Trade) -> None:
    answer = notifications.receive("no-such-token", body=b"a=b", content_type=FORM)
    assert (answer.status, answer.flag) == (404, "unknown_merchant")
    assert Notification.objects.get().merchant is None


# --- N rows: refused before any trust (400) ----------------------------------------------------------------


def test_a_missing_sign_is_refused(merchant: Merchant, unpaid: Trade, fired: Any) -> None:
    body = urlencode({**trade_params(unpaid), "sign_type": "MD5"}).encode()
    assert_rejected(deliver(merchant, body), 400, "missing_sign", unpaid)
    assert len(fired["notification_rejected"]) == 1


def test_a_missing_sign_type_is_refused(merchant: Merchant, unpaid: Trade) -> None:
    params = trade_params(unpaid)
    body = urlencode({**params, "sign": signing.sign(params, sign_type="MD5", key=TEST_MD5_KEY)}).encode()
    assert_rejected(deliver(merchant, body), 400, "missing_sign_type", unpaid)


@pytest.fixture(scope="module")
def rsa_pair() -> tuple[str, str]:
    private = keys.generate_private_key("RSA2")
    return keys.private_key_pem(private), keys.public_key_pem(private)


def test_an_md5_signature_for_an_rsa2_merchant_is_a_downgrade(
    make_merchant: Callable[..., Merchant], gateway: FakeGateway, make_trade: Any, rsa_pair: tuple[str, str]
) -> None:
    alipay_private, alipay_public = rsa_pair
    rsa_merchant = make_merchant(
        gateway_url=gateway.url,
        sign_type="RSA2",
        private_key=keys.private_key_pem(keys.generate_private_key("RSA2")),
        alipay_public_key=alipay_public,
        md5_key=TEST_MD5_KEY,
    )
    trade = make_trade(merchant=rsa_merchant, status="WAIT_BUYER_PAY", paid_at=None)
    assert_rejected(
        deliver(rsa_merchant, sign_form(trade_params(trade))), 400, "sign_type_not_allowed", trade
    )
    # The same notification signed by "Alipay" with RSA2 is accepted.
    good = sign_form(trade_params(trade), key=alipay_private, sign_type="RSA2")
    assert deliver(rsa_merchant, good).status == 200


@pytest.mark.parametrize(
    ("sign_type", "flag"),
    [
        ("md5", "bad_sign_type"),
        ("NONE", "bad_sign_type"),
        ("HMAC-SHA256", "bad_sign_type"),
        ("", "missing_sign_type"),
    ],
)
def test_sign_types_other_than_the_exact_names_are_refused(
    merchant: Merchant, unpaid: Trade, sign_type: str, flag: str
) -> None:
    params = trade_params(unpaid)
    body = urlencode({**params, "sign": signing.sign(params, sign_type="MD5", key=TEST_MD5_KEY),
                      "sign_type": sign_type}).encode()  # fmt: skip
    assert_rejected(deliver(merchant, body), 400, flag, unpaid)


@pytest.mark.parametrize("sign", ["zz" * 16, "abc", "é" * 32])
def test_a_malformed_signature_is_refused_without_a_server_error(
    merchant: Merchant, unpaid: Trade, sign: str
) -> None:
    body = urlencode({**trade_params(unpaid), "sign": sign, "sign_type": "MD5"}).encode()
    assert_rejected(deliver(merchant, body), 400, "bad_sign_format", unpaid)


def test_a_signature_over_utf8_bytes_does_not_verify_a_gbk_body(make_merchant: Any, gateway: FakeGateway,
                                                                      make_trade: Any) -> None:  # fmt: skip
    gbk_merchant = make_merchant(gateway_url=gateway.url, charset="gbk")
    trade = make_trade(merchant=gbk_merchant, status="WAIT_BUYER_PAY", paid_at=None)
    params = trade_params(trade, subject="测试商品")
    signed = dict(params, sign=signing.sign(params, sign_type="MD5", key=TEST_MD5_KEY, charset="utf-8"))
    body = urlencode({**signed, "sign_type": "MD5"}, encoding="gbk").encode()
    assert_rejected(deliver(gbk_merchant, body), 400, "bad_signature", trade)


def test_a_genuine_gbk_notification_is_decoded_and_processed(make_merchant: Any, gateway: FakeGateway,
                                                                  make_trade: Any) -> None:  # fmt: skip
    gbk_merchant = make_merchant(gateway_url=gateway.url, charset="gbk")
    trade = make_trade(merchant=gbk_merchant, status="WAIT_BUYER_PAY", paid_at=None)
    answer = deliver(gbk_merchant, sign_form(trade_params(trade, subject="测试商品"), charset="gbk"))
    assert answer.status == 200
    assert Notification.objects.get().params["subject"] == "测试商品"
    trade.refresh_from_db()
    assert trade.status == "TRADE_FINISHED"


def test_bytes_invalid_in_the_charset_are_kept_raw_and_refused(merchant: Merchant, unpaid: Trade) -> None:
    body = sign_form(trade_params(unpaid)) + b"&subject=%FF%FE"
    assert_rejected(deliver(merchant, body), 400, "bad_charset", unpaid)
    assert bytes(Notification.objects.get().body) == body


def test_a_duplicated_parameter_with_two_values_is_refused(merchant: Merchant, unpaid: Trade) -> None:
    body = sign_form(trade_params(unpaid, total_fee="1.00")) + b"&total_fee=0.01"
    assert_rejected(deliver(merchant, body), 400, "duplicate_param", unpaid)


@pytest.mark.parametrize("name", ["sign", "notify_id"])
def test_a_duplicated_sign_or_notify_id_is_refused(merchant: Merchant, unpaid: Trade, name: str) -> None:
    body = sign_form(trade_params(unpaid)) + f"&{name}=x".encode()
    assert_rejected(deliver(merchant, body), 400, "duplicate_param", unpaid)


def test_unknown_empty_and_encoded_values_verify_and_are_kept_verbatim(
    merchant: Merchant, unpaid: Trade
) -> None:
    params = trade_params(unpaid, extra_field="new", body="", subject="a&b=c+d%e f")
    signed = dict(params, sign=signing.sign(params, sign_type="MD5", key=TEST_MD5_KEY), sign_type="MD5")
    # Spaces as %20 here (quote), where a form encoder writes +: both decode to the same value.
    body = "&".join(f"{k}={quote(v, safe='')}" for k, v in signed.items()).encode()
    answer = deliver(merchant, body)
    assert answer.status == 200
    stored = Notification.objects.get().params
    assert (stored["extra_field"], stored["body"], stored["subject"]) == ("new", "", "a&b=c+d%e f")
    assert stored["notify_time"] == params["notify_time"]


def test_a_body_over_the_cap_is_refused_and_not_kept(
    merchant: Merchant, unpaid: Trade, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_MAX_BODY_BYTES": 1000}
    body = sign_form(trade_params(unpaid, subject="x" * 5000))
    answer = deliver(merchant, body)
    assert_rejected(answer, 413, "body_too_large", unpaid)
    stored = Notification.objects.get()
    assert (bytes(stored.body), stored.body_size, stored.body_truncated) == (b"", len(body), True)


def test_too_many_fields_are_refused(merchant: Merchant, unpaid: Trade) -> None:
    body = sign_form(trade_params(unpaid)) + b"".join(b"&f%d=1" % i for i in range(300))
    assert_rejected(deliver(merchant, body), 400, "too_many_fields", unpaid)


@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data; boundary=x"])
def test_a_body_that_is_not_a_form_is_refused(merchant: Merchant, unpaid: Trade, content_type: str) -> None:
    answer = deliver(merchant, b'{"trade_status": "TRADE_FINISHED"}', content_type=content_type)
    assert_rejected(answer, 415, "bad_content_type", unpaid)


def test_a_false_from_notify_verify_is_refused(
    merchant: Merchant, unpaid: Trade, gateway: FakeGateway
) -> None:
    gateway.once("notify_verify", lambda p: Reply(b"false", content_type="text/plain"))
    assert_rejected(deliver(merchant, sign_form(trade_params(unpaid))), 400, "verify_false", unpaid)


@pytest.mark.parametrize("answer", [b"<html>ok</html>", b"TRUE", b"", b"invalid"])
def test_only_an_exact_true_from_notify_verify_counts(
    merchant: Merchant, unpaid: Trade, gateway: FakeGateway, answer: bytes
) -> None:
    gateway.once("notify_verify", lambda p: Reply(answer, content_type="text/plain"))
    assert_rejected(deliver(merchant, sign_form(trade_params(unpaid))), 400, "verify_false", unpaid)


def test_true_with_surrounding_whitespace_counts(
    merchant: Merchant, unpaid: Trade, gateway: FakeGateway
) -> None:
    gateway.once("notify_verify", lambda p: Reply(b"true\n", content_type="text/plain"))
    assert deliver(merchant, sign_form(trade_params(unpaid))).status == 200


@pytest.mark.parametrize(("notify_id", "flag"), [(None, "missing_notify_id"), ("x" * 129, "bad_notify_id")])
def test_a_notify_id_missing_or_too_long_is_refused(
    merchant: Merchant, unpaid: Trade, notify_id: Any, flag: str
) -> None:
    params = trade_params(unpaid)
    if notify_id is None:
        del params["notify_id"]
    else:
        params["notify_id"] = notify_id
    assert_rejected(deliver(merchant, sign_form(params)), 400, flag, unpaid)


def test_a_nul_byte_is_refused_without_a_server_error(merchant: Merchant, unpaid: Trade) -> None:
    body = sign_form(trade_params(unpaid)) + b"&subject=a%00b"
    assert_rejected(deliver(merchant, body), 400, "nul_byte", unpaid)


def test_an_order_of_merchant_b_signed_with_merchant_a_s_key_is_refused(
    make_merchant: Callable[..., Merchant], gateway: FakeGateway, make_trade: Any, merchant: Merchant
) -> None:
    other = make_merchant(gateway_url=gateway.url, md5_key="b" * 32)
    trade_b = make_trade(merchant=other, status="WAIT_BUYER_PAY", paid_at=None)
    forged = sign_form(trade_params(trade_b))  # merchant A's key
    assert_rejected(deliver(other, forged), 400, "bad_signature", trade_b)
    # Through merchant A's own URL the signature holds, but the order is not A's.
    assert_rejected(deliver(merchant, forged), 404, "unknown_order", trade_b)


# --- N rows: genuine but unusable (success + alert, no effect) ----------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        ({"total_fee": "abc"}, "bad_amount"),  # not a number
        ({"total_fee": "NaN"}, "bad_amount"),
        ({"total_fee": "Infinity"}, "bad_amount"),
        ({"total_fee": "1e3"}, "bad_amount"),
        ({"total_fee": "1,00"}, "bad_amount"),
        ({"total_fee": "100.001"}, "bad_amount"),  # more decimals than the currency allows
        ({"total_fee": "99.99"}, "amount_mismatch"),  # not the order's amount
        ({"total_fee": "0.01"}, "amount_mismatch"),
        ({"currency": "JPY"}, "currency_mismatch"),  # not the order's currency
        ({"seller_id": "2088999999999999"}, "partner_mismatch"),  # another partner
        ({"trade_status": "TRADE_BOGUS"}, "unknown_status"),  # an unknown status
        ({"trade_status": "WAIT_SELLER_SEND_GOODS"}, "unknown_status"),
    ],
)
def test_genuine_but_unusable_notifications_are_acknowledged_flagged_and_change_nothing(
    merchant: Merchant, unpaid: Trade, overrides: dict[str, str], flag: str, fired: Any, caplog: Any
) -> None:
    answer = deliver(merchant, sign_form(trade_params(unpaid, **overrides)))
    assert (answer.status, answer.body, answer.flag) == (200, "success", flag)
    stored = Notification.objects.get()
    assert (stored.outcome, stored.flag) == ("ignored", flag)
    fresh = Trade.objects.get(pk=unpaid.pk)
    assert (fresh.status, fresh.paid_at) == ("WAIT_BUYER_PAY", None)
    assert len(fired["notification_rejected"]) == 1
    assert "trade_paid" not in fired
    assert any(r.name == "django_alipay.alerts" for r in caplog.records)


def test_a_jpy_amount_with_a_fraction_is_unusable(make_trade: Any, merchant: Merchant) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None, currency="JPY", amount=Decimal("100"))
    answer = deliver(merchant, sign_form(trade_params(trade, total_fee="100.5", currency="JPY")))
    assert (answer.status, answer.flag) == (200, "bad_amount")


def test_a_jpy_amount_written_with_zero_decimals_is_the_same_amount(
    make_trade: Any, merchant: Merchant
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None, currency="JPY", amount=Decimal("100"))
    answer = deliver(merchant, sign_form(trade_params(trade, total_fee="100.00", currency="JPY")))
    assert (answer.status, answer.flag) == (200, "")
    trade.refresh_from_db()
    assert trade.status == "TRADE_FINISHED"


@pytest.mark.parametrize("out_trade_no", ["NO-SUCH-ORDER", "ORDER-１", "X" * 65])
def test_an_unknown_order_is_refused_so_that_alipay_retries(
    merchant: Merchant, unpaid: Trade, out_trade_no: str
) -> None:
    answer = deliver(merchant, sign_form(trade_params(unpaid, out_trade_no=out_trade_no)))
    assert_rejected(answer, 404, "unknown_order", unpaid)
    assert Notification.objects.get().outcome == "retry"


def test_an_exact_replay_is_a_duplicate_and_skips_notify_verify(
    merchant: Merchant, unpaid: Trade, gateway: FakeGateway, fired: Any
) -> None:
    body = sign_form(trade_params(unpaid))
    first = deliver(merchant, body)
    second = deliver(merchant, body)
    assert (first.status, second.status) == (200, 200)
    assert second.notification is not None
    assert first.notification is not None
    replay = Notification.objects.get(pk=second.notification.pk)
    assert (replay.outcome, replay.duplicate_of_id) == ("duplicate", first.notification.pk)
    assert len(gateway.called("notify_verify")) == 1
    assert len(fired["trade_paid"]) == 1


def test_a_new_notify_id_for_the_same_status_is_a_duplicate(
    merchant: Merchant, unpaid: Trade, fired: Any
) -> None:
    first = deliver(merchant, sign_form(trade_params(unpaid)))
    second = deliver(merchant, sign_form(trade_params(unpaid)))
    assert second.status == 200
    assert second.notification is not None
    assert first.notification is not None
    stored = Notification.objects.get(pk=second.notification.pk)
    assert (stored.outcome, stored.duplicate_of_id) == ("duplicate", first.notification.pk)
    assert len(fired["trade_paid"]) == 1


def test_a_late_trade_success_does_not_reopen_a_closed_trade(make_trade: Any, merchant: Merchant) -> None:
    trade = make_trade(product="barcode", status="TRADE_CLOSED")
    answer = deliver(merchant, sign_form(trade_params(trade, trade_status="TRADE_SUCCESS")))
    assert (answer.status, answer.flag) == (200, "stale_transition")
    trade.refresh_from_db()
    assert trade.status == "TRADE_CLOSED"


def test_notify_verify_unreachable_asks_for_a_retry_which_is_then_processed(
    merchant: Merchant, unpaid: Trade, gateway: FakeGateway
) -> None:
    body = sign_form(trade_params(unpaid))
    gateway.on("notify_verify", lambda p: Reply(b"", status=503))
    answer = deliver(merchant, body)
    assert_rejected(answer, 503, "verify_pending", unpaid)
    assert Notification.objects.get().outcome == "retry"
    gateway.on("notify_verify", lambda p: Reply(b"true", content_type="text/plain"))
    assert deliver(merchant, body).status == 200
    unpaid.refresh_from_db()
    assert unpaid.status == "TRADE_FINISHED"


def test_a_stale_notify_time_is_flagged_but_processed(
    merchant: Merchant, unpaid: Trade, fixed_clock: Any
) -> None:
    fixed_clock(datetime(2024, 5, 5, 12, 0, tzinfo=BEIJING))
    answer = deliver(merchant, sign_form(trade_params(unpaid, notify_time="2024-05-01 12:00:05")))
    assert (answer.status, answer.flag) == (200, "stale_notify_time")
    unpaid.refresh_from_db()
    assert unpaid.status == "TRADE_FINISHED"


def test_markup_in_text_is_stored_verbatim(merchant: Merchant, unpaid: Trade) -> None:
    subject = "<script>alert(1)</script>'; DROP TABLE x; --"
    assert deliver(merchant, sign_form(trade_params(unpaid, subject=subject))).status == 200
    assert Notification.objects.get().params["subject"] == subject


def test_x_forwarded_for_is_kept_apart_and_never_replaces_the_peer(merchant: Merchant, unpaid: Trade) -> None:
    answer = deliver(
        merchant,
        sign_form(trade_params(unpaid)),
        remote_addr="203.0.113.9",
        headers={"X-Forwarded-For": "110.75.1.1, 10.0.0.1"},
    )
    assert answer.status == 200
    stored = Notification.objects.get()
    assert (stored.remote_addr, stored.forwarded_for) == ("203.0.113.9", "110.75.1.1, 10.0.0.1")


def test_a_forged_return_visit_changes_nothing(merchant: Merchant, unpaid: Trade) -> None:
    query = urlencode({"out_trade_no": unpaid.out_trade_no, "trade_status": "TRADE_FINISHED",
                       "total_fee": "100.00", "sign": "0" * 32, "sign_type": "MD5"})  # fmt: skip
    visit = notifications.receive_return(merchant.notify_token, query_string=query)
    assert visit.genuine is False
    assert visit.notification.kind == "return"
    unpaid.refresh_from_db()
    assert unpaid.status == "WAIT_BUYER_PAY"


def test_a_genuine_return_visit_names_the_trade_but_changes_nothing(
    merchant: Merchant, unpaid: Trade
) -> None:
    params = {"out_trade_no": unpaid.out_trade_no, "trade_status": "TRADE_FINISHED", "total_fee": "100.00"}
    visit = notifications.receive_return(merchant.notify_token, query_string=sign_form(params).decode())
    assert visit.genuine is True
    assert visit.trade is not None
    assert visit.trade.pk == unpaid.pk
    unpaid.refresh_from_db()
    assert unpaid.status == "WAIT_BUYER_PAY"


# --- refund notifications ----------------------------------------------------------------------------------


@pytest.fixture
def accepted_refund(make_trade: Any, settings: Any) -> Refund:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SYNC": False}
    refund = refunds.request_refund(make_trade(), "30.00")
    assert refund.status == RefundStatus.SUBMITTED
    return refund


def refund_params(refund: Refund, **overrides: str) -> dict[str, str]:
    params = {
        "notify_id": new_notify_id(),
        "notify_time": "2024-05-01 12:10:00",
        "notify_type": "refund_status_sync",
        "out_trade_no": refund.trade.out_trade_no,
        "out_return_no": refund.gateway_refund_id,
        "refund_status": "REFUND_SUCCESS",
        "currency": "USD",
        "return_amount": "30.00",
    }
    params.update(overrides)
    return params


def test_a_refund_success_notification_settles_an_accepted_refund(
    merchant: Merchant, accepted_refund: Refund
) -> None:
    answer = deliver(merchant, sign_form(refund_params(accepted_refund)))
    assert answer.status == 200
    accepted_refund.refresh_from_db()
    assert accepted_refund.status == RefundStatus.SUCCEEDED
    trade = Trade.objects.get(pk=accepted_refund.trade_id)
    assert (trade.refunded_amount, trade.refund_pending_amount) == (Decimal("30.00"), Decimal("0.00"))
    assert Notification.objects.get().refund_id == accepted_refund.pk


def test_a_refund_fail_notification_releases_the_amount(merchant: Merchant, accepted_refund: Refund) -> None:
    params = refund_params(
        accepted_refund, refund_status="REFUND_FAIL", error_code="SELLER_BALANCE_NOT_ENOUGH"
    )
    del params["return_amount"]
    assert deliver(merchant, sign_form(params)).status == 200
    accepted_refund.refresh_from_db()
    assert (accepted_refund.status, accepted_refund.error_code) == ("failed", "SELLER_BALANCE_NOT_ENOUGH")
    assert Trade.objects.get(pk=accepted_refund.trade_id).refund_pending_amount == Decimal("0.00")


def test_a_refund_notification_for_an_unknown_refund_is_acknowledged_and_flagged(
    merchant: Merchant, accepted_refund: Refund
) -> None:
    answer = deliver(merchant, sign_form(refund_params(accepted_refund, out_return_no="RFNOPE")))
    assert (answer.status, answer.flag) == (200, "unknown_refund")


def test_a_refund_success_for_another_amount_does_not_settle_the_refund(
    merchant: Merchant, accepted_refund: Refund
) -> None:
    answer = deliver(merchant, sign_form(refund_params(accepted_refund, return_amount="31.00")))
    assert (answer.status, answer.flag) == (200, "amount_mismatch")
    accepted_refund.refresh_from_db()
    assert accepted_refund.status == RefundStatus.SUBMITTED


# --- the same notification twice at once -------------------------------------------------------------------


def test_two_identical_notifications_delivered_concurrently_have_one_effect(
    postgresql: None, merchant: Merchant, unpaid: Trade, fired: Any
) -> None:
    body = sign_form(trade_params(unpaid))
    rounds = 10
    for round_number in range(rounds):
        trade = unpaid if round_number == 0 else Trade.objects.create(
            merchant=merchant, out_trade_no=f"RACE-{round_number}", amount=Decimal("100.00"), currency="USD",
            subject="race",
        )  # fmt: skip
        body = sign_form(trade_params(trade))
        barrier = threading.Barrier(2)
        answers: list[notifications.NotificationAnswer] = []

        def post(
            payload: bytes = body,
            barrier: threading.Barrier = barrier,
            answers: list[notifications.NotificationAnswer] = answers,
        ) -> None:
            try:
                barrier.wait()
                answers.append(deliver(merchant, payload))
            finally:
                connection.close()

        threads = [threading.Thread(target=post) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert [a.status for a in answers] == [200, 200]
        rows = Notification.objects.filter(trade=trade).order_by("pk")
        assert sorted(r.outcome for r in rows) == ["duplicate", "processed"]
        duplicate = next(r for r in rows if r.outcome == "duplicate")
        processed = next(r for r in rows if r.outcome == "processed")
        assert duplicate.duplicate_of_id == processed.pk
    assert len(fired["trade_paid"]) == rounds


# --- what is signed decides: kind and duplicates ------------------------------------------------------


def test_an_empty_refund_field_does_not_make_a_trade_notification_a_refund_one(
    merchant: Merchant, unpaid: Trade
) -> None:
    # Empty values are outside the signature: appending one must not change what the notification is.
    answer = deliver(merchant, sign_form(trade_params(unpaid)) + b"&out_return_no=&refund_status=")
    assert answer.status == 200
    stored = Notification.objects.get()
    assert (stored.kind, stored.outcome) == ("trade", "processed")
    assert Trade.objects.get(pk=unpaid.pk).status == "TRADE_FINISHED"


def test_a_redelivery_with_an_unsigned_empty_field_is_a_duplicate_without_asking_notify_verify(
    merchant: Merchant, unpaid: Trade, gateway: FakeGateway, fired: Any
) -> None:
    body = sign_form(trade_params(unpaid))
    first = deliver(merchant, body)
    second = deliver(merchant, body + b"&memo=")
    assert second.status == 200
    assert second.notification is not None
    assert first.notification is not None
    replay = Notification.objects.get(pk=second.notification.pk)
    assert (replay.outcome, replay.duplicate_of_id) == ("duplicate", first.notification.pk)
    assert len(gateway.called("notify_verify")) == 1
    assert len(fired["trade_paid"]) == 1


def test_a_delivery_that_was_ignored_does_not_stop_a_later_one_from_being_applied(
    merchant: Merchant, accepted_refund: Refund, gateway: FakeGateway
) -> None:
    # The refund's notification arrives before the refund row names its gateway id (a replica lagging): it is
    # acknowledged and ignored. Alipay delivers the same notification again once the refund is known.
    gateway_id = accepted_refund.gateway_refund_id
    Refund.objects.filter(pk=accepted_refund.pk).update(gateway_refund_id="RF-NOT-YET-KNOWN")
    body = sign_form(refund_params(accepted_refund))
    first = deliver(merchant, body)
    assert (first.status, first.flag) == (200, "unknown_refund")
    Refund.objects.filter(pk=accepted_refund.pk).update(gateway_refund_id=gateway_id)
    second = deliver(merchant, body)
    assert second.status == 200
    assert second.notification is not None
    assert Notification.objects.get(pk=second.notification.pk).outcome == "processed"
    accepted_refund.refresh_from_db()
    assert accepted_refund.status == RefundStatus.SUCCEEDED
    # The first delivery passed notify_verify with the same signed content: it is not asked twice.
    assert len(gateway.called("notify_verify")) == 1
