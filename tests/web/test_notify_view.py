"""The notify endpoint end to end through the real view: every kind of bad notification, over HTTP."""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from django.core.handlers.wsgi import WSGIRequest
from django.db import OperationalError, connection
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_alipay import views
from django_alipay.domain import clock as domain_clock
from django_alipay.domain import notifications, refunds
from django_alipay.models import Merchant, Notification, Refund, Trade
from django_alipay.protocol import keys
from django_alipay.protocol.clock import BEIJING
from tests.conftest import TEST_MD5_KEY
from tests.domain.fakegateway import FakeGateway, Reply
from tests.web.conftest import FORM
from tests.web.signer import encode, signature, signed_body

pytestmark = pytest.mark.django_db(transaction=True)

_ids = itertools.count(1)


def notify_id() -> str:
    return f"9f0c2e1d4b7a6c5e8d9f0a1b2c{next(_ids):08d}"


def params_for(trade: Trade, **overrides: str | None) -> dict[str, str]:
    """What Alipay posts for a paid online trade (field names from the notification documentation)."""
    now = domain_clock.now().astimezone(BEIJING)
    params: dict[str, str | None] = {
        "notify_id": notify_id(),
        "notify_time": now.strftime("%Y-%m-%d %H:%M:%S"),
        "notify_type": "trade_status_sync",
        "trade_no": "2024050122001498760500123456",
        "out_trade_no": trade.out_trade_no,
        "total_fee": "100.00",
        "currency": "USD",
        "trade_status": "TRADE_FINISHED",
    }
    params.update(overrides)
    return {name: value for name, value in params.items() if value is not None}


def post(
    client: Client, merchant: Merchant, body: bytes, content_type: str = FORM, **extra: Any
) -> HttpResponse:
    url = reverse("django_alipay:notify", args=[merchant.notify_token])
    return client.generic("POST", url, body, content_type=content_type, **extra)


def assert_answer(response: HttpResponse, status: int, body: bytes) -> None:
    assert (response.status_code, response.content) == (status, body)
    assert response["Content-Type"].startswith("text/plain")


def assert_unpaid(trade: Trade) -> None:
    fresh = Trade.objects.get(pk=trade.pk)
    assert (fresh.status, fresh.paid_at) == ("WAIT_BUYER_PAY", None)


def last_notification() -> Notification:
    return Notification.objects.order_by("-pk").first()  # type: ignore[return-value]


@pytest.fixture
def unpaid(make_trade: Callable[..., Trade]) -> Trade:
    return make_trade(status="WAIT_BUYER_PAY", paid_at=None)


@pytest.fixture
def md5_body() -> Callable[..., bytes]:
    def build(params: dict[str, str], **kwargs: Any) -> bytes:
        return signed_body(params, key=TEST_MD5_KEY, **kwargs)

    return build


# --- the happy path and the wiring --------------------------------------------------------------------------


def test_a_genuine_notification_pays_the_trade_and_is_answered_exactly_success(
    client: Client, merchant: Merchant, unpaid: Trade, gateway: FakeGateway, md5_body: Any
) -> None:
    params = params_for(unpaid)
    response = post(client, merchant, md5_body(params), REMOTE_ADDR="110.75.143.10")

    assert_answer(response, 200, b"success")
    unpaid.refresh_from_db()
    assert unpaid.status == "TRADE_FINISHED"
    assert unpaid.paid_at is not None
    stored = last_notification()
    assert (stored.verification, stored.outcome, stored.trade_id) == ("verified", "processed", unpaid.pk)
    assert bytes(stored.body) == md5_body(params)
    assert stored.remote_addr == "110.75.143.10"
    assert [call.params["notify_id"] for call in gateway.called("notify_verify")] == [params["notify_id"]]


def test_the_acknowledgement_text_is_the_configured_one(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "ACKNOWLEDGEMENT": "SUCCESS", "FAILURE_RESPONSE": "FAIL"}
    assert_answer(post(client, merchant, md5_body(params_for(unpaid))), 200, b"SUCCESS")
    assert_answer(post(client, merchant, b"a=b"), 400, b"FAIL")


def test_an_unknown_notify_token_is_refused_and_recorded(
    client: Client, unpaid: Trade, md5_body: Any
) -> None:
    response = client.generic(
        "POST", "/alipay/notify/not-a-token/", md5_body(params_for(unpaid)), content_type=FORM
    )
    assert_answer(response, 404, b"fail")
    assert last_notification().flag == "unknown_merchant"


def test_the_view_is_reached_without_csrf_token_login_or_atomic_request(
    merchant: Merchant, unpaid: Trade, md5_body: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.contrib.auth.middleware.LoginRequiredMiddleware"]
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    strict = Client(enforce_csrf_checks=True)

    assert_answer(post(strict, merchant, md5_body(params_for(unpaid))), 200, b"success")
    assert Trade.objects.get(pk=unpaid.pk).status == "TRADE_FINISHED"
    # The admin, by contrast, still asks for a login: the middleware is active.
    assert strict.get("/admin/django_alipay/trade/").status_code == 302


def test_the_audit_row_survives_an_error_while_processing(
    merchant: Merchant, unpaid: Trade, md5_body: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.contrib.auth.middleware.LoginRequiredMiddleware"]
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the shop's code broke")

    monkeypatch.setattr("django_alipay.domain.trades.apply_report_locked", broken)
    params = params_for(unpaid)
    response = post(Client(enforce_csrf_checks=True), merchant, md5_body(params))

    assert_answer(response, 503, b"fail")
    stored = last_notification()
    assert (stored.outcome, stored.flag, stored.notify_id) == (
        "error",
        "processing_error",
        params["notify_id"],
    )
    assert "the shop's code broke" in stored.traceback
    assert_unpaid(unpaid)


def test_a_database_failure_is_answered_503_so_that_alipay_retries(
    client: Client, merchant: Merchant, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("the database is down")

    monkeypatch.setattr(notifications, "receive", down)
    response = post(client, merchant, b"a=b")
    assert_answer(response, 503, b"fail")
    assert response["Retry-After"] == "30"  # as the API says while the database is down


# --- signature, sign type, charset, duplicates: refused before any trust, or canonicalised correctly --------


def test_a_missing_sign_is_refused(client: Client, merchant: Merchant, unpaid: Trade) -> None:
    body = encode({**params_for(unpaid), "sign_type": "MD5"})
    assert_answer(post(client, merchant, body), 400, b"fail")
    assert last_notification().flag == "missing_sign"
    assert_unpaid(unpaid)


def test_a_missing_sign_type_is_refused(client: Client, merchant: Merchant, unpaid: Trade) -> None:
    params = params_for(unpaid)
    body = encode({**params, "sign": signature(params, sign_type="MD5", key=TEST_MD5_KEY)})
    assert_answer(post(client, merchant, body), 400, b"fail")
    assert last_notification().flag == "missing_sign_type"


@pytest.fixture(scope="module")
def alipay_rsa_key() -> Any:
    return keys.generate_private_key("RSA2")


def test_md5_for_an_rsa2_merchant_is_a_refused_downgrade_while_rsa2_is_accepted(
    client: Client,
    make_merchant: Callable[..., Merchant],
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
    alipay_rsa_key: Any,
) -> None:
    rsa_merchant = make_merchant(
        gateway_url=gateway.url,
        sign_type="RSA2",
        md5_key=TEST_MD5_KEY,
        private_key=keys.private_key_pem(keys.generate_private_key("RSA2")),
        alipay_public_key=keys.public_key_pem(alipay_rsa_key),
    )
    trade = make_trade(merchant=rsa_merchant, status="WAIT_BUYER_PAY", paid_at=None)

    downgrade = signed_body(params_for(trade), key=TEST_MD5_KEY)
    assert_answer(post(client, rsa_merchant, downgrade), 400, b"fail")
    assert last_notification().flag == "sign_type_not_allowed"
    assert_unpaid(trade)

    genuine = signed_body(params_for(trade), key=alipay_rsa_key, sign_type="RSA2")
    assert_answer(post(client, rsa_merchant, genuine), 200, b"success")


@pytest.mark.parametrize("sign_type", ["md5", "NONE", "HMAC-SHA256", ""])
def test_sign_types_other_than_the_exact_names_are_refused(
    client: Client, merchant: Merchant, unpaid: Trade, sign_type: str
) -> None:
    params = params_for(unpaid)
    body = encode(
        {**params, "sign": signature(params, sign_type="MD5", key=TEST_MD5_KEY), "sign_type": sign_type}
    )
    assert_answer(post(client, merchant, body), 400, b"fail")
    assert last_notification().flag in ("bad_sign_type", "missing_sign_type")
    assert_unpaid(unpaid)


@pytest.mark.parametrize("sign", ["zz" * 16, "abc", "é" * 32, "签名" * 16])
def test_a_malformed_signature_is_a_400_never_a_500(
    client: Client, merchant: Merchant, unpaid: Trade, sign: str
) -> None:
    body = encode({**params_for(unpaid), "sign": sign, "sign_type": "MD5"})
    assert_answer(post(client, merchant, body), 400, b"fail")
    assert last_notification().flag == "bad_sign_format"


def test_a_utf8_signature_over_a_gbk_body_is_refused(
    client: Client,
    make_merchant: Callable[..., Merchant],
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    gbk = make_merchant(gateway_url=gateway.url, charset="gbk")
    trade = make_trade(merchant=gbk, status="WAIT_BUYER_PAY", paid_at=None)
    body = signed_body(
        params_for(trade, subject="茶壶"), key=TEST_MD5_KEY, charset="gbk", sign_charset="utf-8"
    )
    assert_answer(post(client, gbk, body), 400, b"fail")
    assert last_notification().flag == "bad_signature"
    assert_unpaid(trade)


def test_a_genuine_gbk_notification_is_decoded_and_processed(
    client: Client,
    make_merchant: Callable[..., Merchant],
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
) -> None:
    gbk = make_merchant(gateway_url=gateway.url, charset="gbk")
    trade = make_trade(merchant=gbk, status="WAIT_BUYER_PAY", paid_at=None)
    body = signed_body(params_for(trade, subject="茶壶"), key=TEST_MD5_KEY, charset="gbk")
    assert_answer(post(client, gbk, body, content_type=FORM + "; charset=GBK"), 200, b"success")
    assert last_notification().params["subject"] == "茶壶"
    assert Trade.objects.get(pk=trade.pk).status == "TRADE_FINISHED"


def test_the_content_type_charset_decodes_a_notification_that_names_none_in_its_fields(
    client: Client, merchant: Merchant, unpaid: Trade, gateway: FakeGateway
) -> None:
    # A UTF-8 merchant, a GBK notification without _input_charset: only the Content-Type says GBK.
    gateway.on("notify_verify", lambda p: Reply(b"true", content_type="text/plain"))
    body = signed_body(params_for(unpaid, subject="茶壶"), key=TEST_MD5_KEY, charset="gbk")
    assert_answer(post(client, merchant, body, content_type=FORM + "; charset=GBK"), 200, b"success")
    assert last_notification().params["subject"] == "茶壶"
    assert Trade.objects.get(pk=unpaid.pk).status == "TRADE_FINISHED"


def test_bytes_invalid_in_the_charset_are_kept_raw_and_refused(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any
) -> None:
    body = md5_body(params_for(unpaid)) + b"&subject=%FF%FE"
    assert_answer(post(client, merchant, body), 400, b"fail")
    stored = last_notification()
    assert (stored.flag, bytes(stored.body)) == ("bad_charset", body)


def test_a_duplicated_parameter_with_two_values_is_refused(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any
) -> None:
    body = md5_body(params_for(unpaid, total_fee="100.00")) + b"&total_fee=0.01"
    assert_answer(post(client, merchant, body), 400, b"fail")
    assert last_notification().flag == "duplicate_param"
    assert_unpaid(unpaid)


@pytest.mark.parametrize("name", ["sign", "notify_id"])
def test_a_duplicated_sign_or_notify_id_is_refused(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any, name: str
) -> None:
    body = md5_body(params_for(unpaid)) + f"&{name}=0".encode()
    assert_answer(post(client, merchant, body), 400, b"fail")
    assert last_notification().flag == "duplicate_param"


def test_unknown_empty_and_encoded_values_verify_and_are_kept_verbatim(
    client: Client, merchant: Merchant, unpaid: Trade
) -> None:
    params = params_for(unpaid, new_field="added later", body="", subject="a&b=c+d%e f")
    signed = {**params, "sign": signature(params, sign_type="MD5", key=TEST_MD5_KEY), "sign_type": "MD5"}
    # %20 for spaces here, where Alipay's form encoding writes "+": both mean a space.
    body = "&".join(f"{k}={quote(v, safe='')}" for k, v in signed.items()).encode("ascii")
    assert_answer(post(client, merchant, body), 200, b"success")
    stored = last_notification().params
    assert (stored["new_field"], stored["body"], stored["subject"]) == ("added later", "", "a&b=c+d%e f")
    assert stored["notify_time"] == params["notify_time"]


# --- the shape of the request -------------------------------------------------------------------------------


def test_a_body_over_the_cap_is_refused_with_metadata_only(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_MAX_BODY_BYTES": 1000}
    body = md5_body(params_for(unpaid, subject="x" * 5000))
    assert_answer(post(client, merchant, body, REMOTE_ADDR="203.0.113.7"), 413, b"fail")
    stored = last_notification()
    assert (bytes(stored.body), stored.body_truncated, stored.flag) == (b"", True, "body_too_large")
    assert stored.remote_addr == "203.0.113.7"
    assert stored.headers["Content-Length"] == str(len(body))
    assert_unpaid(unpaid)


def test_a_body_larger_than_djangos_own_limit_is_a_413_not_a_500(
    client: Client, merchant: Merchant, settings: Any
) -> None:
    body = b"a=" + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024)
    assert_answer(post(client, merchant, body), 413, b"fail")


class CountingInput(io.RawIOBase):
    """A request body of ``size`` bytes that counts how many the view reads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.size - self.read_bytes)
        buffer[:count] = b"x" * count
        self.read_bytes += count
        return count


def test_the_body_is_not_read_past_the_cap(merchant: Merchant, settings: Any) -> None:
    size = 5 * 1024 * 1024
    stream = CountingInput(size)
    environ = RequestFactory()._base_environ(
        PATH_INFO=f"/alipay/notify/{merchant.notify_token}/",
        REQUEST_METHOD="POST",
        CONTENT_TYPE=FORM,
        CONTENT_LENGTH=str(size),
        **{"wsgi.input": stream},
    )
    response = views.notify(WSGIRequest(environ), token=merchant.notify_token)
    assert response.status_code == 413
    assert stream.read_bytes <= settings.ALIPAY.get("NOTIFY_MAX_BODY_BYTES", 65536) + 1


def test_more_fields_than_djangos_limit_is_a_400_not_a_crash(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any, settings: Any
) -> None:
    extra = b"".join(b"&f%d=1" % i for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    assert_answer(post(client, merchant, md5_body(params_for(unpaid)) + extra), 400, b"fail")
    assert last_notification().flag == "too_many_fields"


@pytest.mark.parametrize(
    "content_type", ["application/json", "multipart/form-data; boundary=xyz", "text/plain"]
)
def test_a_body_that_is_not_a_form_is_refused(client: Client, merchant: Merchant, content_type: str) -> None:
    response = post(client, merchant, b'{"trade_status": "TRADE_FINISHED"}', content_type=content_type)
    assert_answer(response, 415, b"fail")
    assert last_notification().flag == "bad_content_type"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_and_leave_no_record(client: Client, merchant: Merchant, method: str) -> None:
    url = reverse("django_alipay:notify", args=[merchant.notify_token])
    assert client.generic(method, url, b"a=b", content_type=FORM).status_code == 405
    assert not Notification.objects.exists()


# --- genuine, but not usable as it is -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        ({"total_fee": "abc"}, "bad_amount"),  # not a number
        ({"total_fee": "NaN"}, "bad_amount"),
        ({"total_fee": "1e3"}, "bad_amount"),
        ({"total_fee": "100.001"}, "bad_amount"),  # more decimals than the currency allows
        ({"total_fee": "99.99"}, "amount_mismatch"),  # not the order's amount
        ({"currency": "JPY"}, "currency_mismatch"),  # not the order's currency
        ({"seller_id": "2088000000000999"}, "partner_mismatch"),  # another partner
        ({"trade_status": "TRADE_SOMETHING_NEW"}, "unknown_status"),  # an unknown status
    ],
)
def test_genuine_but_unusable_notifications_are_acknowledged_and_change_nothing(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any, overrides: dict[str, str], flag: str
) -> None:
    assert_answer(post(client, merchant, md5_body(params_for(unpaid, **overrides))), 200, b"success")
    stored = last_notification()
    assert (stored.outcome, stored.flag) == ("ignored", flag)
    assert_unpaid(unpaid)


@pytest.mark.parametrize("out_trade_no", ["NO-SUCH-ORDER", "WEB-１", "X" * 65])
def test_an_unknown_order_is_refused_so_that_alipay_retries(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any, out_trade_no: str
) -> None:
    assert_answer(
        post(client, merchant, md5_body(params_for(unpaid, out_trade_no=out_trade_no))), 404, b"fail"
    )
    assert (last_notification().flag, last_notification().outcome) == ("unknown_order", "retry")


def test_another_merchants_order_signed_with_this_merchants_key_is_refused(
    client: Client,
    merchant: Merchant,
    make_merchant: Callable[..., Merchant],
    make_trade: Callable[..., Trade],
    gateway: FakeGateway,
    md5_body: Any,
) -> None:
    other = make_merchant(gateway_url=gateway.url, md5_key="B" * 32)
    theirs = make_trade(merchant=other, status="WAIT_BUYER_PAY", paid_at=None)
    forged = md5_body(params_for(theirs))  # signed with the first merchant's key
    assert_answer(post(client, other, forged), 400, b"fail")
    assert last_notification().flag == "bad_signature"
    assert_answer(post(client, merchant, forged), 404, b"fail")
    assert_unpaid(theirs)


def test_an_exact_replay_is_acknowledged_as_a_duplicate(
    client: Client, merchant: Merchant, unpaid: Trade, gateway: FakeGateway, md5_body: Any
) -> None:
    body = md5_body(params_for(unpaid))
    first, second = post(client, merchant, body), post(client, merchant, body)
    assert_answer(first, 200, b"success")
    assert_answer(second, 200, b"success")
    rows = list(Notification.objects.order_by("pk"))
    assert [row.outcome for row in rows] == ["processed", "duplicate"]
    assert rows[1].duplicate_of_id == rows[0].pk
    assert len(gateway.called("notify_verify")) == 1


def test_a_new_notify_id_for_the_same_status_has_no_second_effect(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any
) -> None:
    assert_answer(post(client, merchant, md5_body(params_for(unpaid))), 200, b"success")
    paid_at = Trade.objects.get(pk=unpaid.pk).paid_at
    assert_answer(post(client, merchant, md5_body(params_for(unpaid))), 200, b"success")
    assert last_notification().outcome == "duplicate"
    assert Trade.objects.get(pk=unpaid.pk).paid_at == paid_at


def test_a_late_success_does_not_reopen_a_closed_trade(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade], md5_body: Any
) -> None:
    closed = make_trade(product="barcode", status="TRADE_CLOSED")
    body = md5_body(params_for(closed, trade_status="TRADE_SUCCESS"))
    assert_answer(post(client, merchant, body), 200, b"success")
    assert last_notification().flag == "stale_transition"
    assert Trade.objects.get(pk=closed.pk).status == "TRADE_CLOSED"


# --- notify_verify, notify_id and notify_time ---------------------------------------------------------------


@pytest.mark.parametrize("answer", [b"false", b"TRUE", b"<html>true</html>", b""])
def test_only_an_exact_true_from_notify_verify_counts(
    client: Client, merchant: Merchant, unpaid: Trade, gateway: FakeGateway, md5_body: Any, answer: bytes
) -> None:
    gateway.once("notify_verify", lambda p: Reply(answer, content_type="text/plain"))
    assert_answer(post(client, merchant, md5_body(params_for(unpaid))), 400, b"fail")
    assert last_notification().flag == "verify_false"
    assert_unpaid(unpaid)


def test_notify_verify_unreachable_is_503_and_alipays_retry_is_processed(
    client: Client, merchant: Merchant, unpaid: Trade, gateway: FakeGateway, md5_body: Any
) -> None:
    body = md5_body(params_for(unpaid))
    # The client retries a failed notify_verify itself; every attempt fails here.
    gateway.on("notify_verify", lambda p: Reply(b"busy", status=503, content_type="text/plain"))
    assert_answer(post(client, merchant, body), 503, b"fail")
    assert (last_notification().flag, last_notification().outcome) == ("verify_pending", "retry")
    assert_unpaid(unpaid)
    gateway.on("notify_verify", lambda p: Reply(b"true", content_type="text/plain"))
    assert_answer(post(client, merchant, body), 200, b"success")
    assert Trade.objects.get(pk=unpaid.pk).status == "TRADE_FINISHED"


@pytest.mark.parametrize("value", [None, "n" * 129])
def test_a_notify_id_missing_or_too_long_is_refused(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any, value: str | None
) -> None:
    assert_answer(post(client, merchant, md5_body(params_for(unpaid, notify_id=value))), 400, b"fail")
    assert last_notification().flag in ("missing_notify_id", "bad_notify_id")


def test_a_stale_notify_time_is_flagged_but_processed(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any, fixed_clock: Any
) -> None:
    fixed_clock(datetime(2024, 5, 9, 12, 0, tzinfo=BEIJING))
    body = md5_body(params_for(unpaid, notify_time="2024-05-01 12:00:00"))
    assert_answer(post(client, merchant, body), 200, b"success")
    assert last_notification().flag == "stale_notify_time"
    assert Trade.objects.get(pk=unpaid.pk).status == "TRADE_FINISHED"


# --- refunds, NUL bytes, markup, concurrency, forwarded addresses -------------------------------------------


def test_a_refund_notification_for_an_unknown_refund_is_acknowledged_and_flagged(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade], md5_body: Any
) -> None:
    trade = make_trade()
    params = {
        "notify_id": notify_id(),
        "notify_type": "refund_status_sync",
        "out_trade_no": trade.out_trade_no,
        "out_return_no": "RF-NOBODY-ASKED",
        "refund_status": "REFUND_SUCCESS",
        "currency": "USD",
        "return_amount": "10.00",
    }
    assert_answer(post(client, merchant, md5_body(params)), 200, b"success")
    assert last_notification().flag == "unknown_refund"
    assert not Refund.objects.exists()


def test_a_refund_notification_settles_an_accepted_refund(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade], md5_body: Any, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SYNC": False}
    refund = refunds.request_refund(make_trade(), "30.00")
    assert refund.status == "submitted"
    params = {
        "notify_id": notify_id(),
        "notify_type": "refund_status_sync",
        "out_trade_no": refund.trade.out_trade_no,
        "out_return_no": refund.gateway_refund_id,
        "refund_status": "REFUND_SUCCESS",
        "currency": "USD",
        "return_amount": "30.00",
    }
    assert_answer(post(client, merchant, md5_body(params)), 200, b"success")
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert Trade.objects.get(pk=refund.trade_id).refunded_amount == Decimal("30.00")


def test_a_refund_success_for_another_amount_does_not_settle_the_refund(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade], md5_body: Any, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_SYNC": False}
    refund = refunds.request_refund(make_trade(), "30.00")
    params = {
        "notify_id": notify_id(),
        "notify_type": "refund_status_sync",
        "out_trade_no": refund.trade.out_trade_no,
        "out_return_no": refund.gateway_refund_id,
        "refund_status": "REFUND_SUCCESS",
        "currency": "USD",
        "return_amount": "31.00",
    }
    assert_answer(post(client, merchant, md5_body(params)), 200, b"success")
    assert last_notification().flag == "amount_mismatch"
    refund.refresh_from_db()
    assert refund.status == "submitted"
    assert Trade.objects.get(pk=refund.trade_id).refunded_amount == Decimal("0.00")


def test_a_nul_byte_is_a_400_never_a_500(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any
) -> None:
    body = md5_body(params_for(unpaid)) + b"&subject=tea%00pot"
    assert_answer(post(client, merchant, body), 400, b"fail")
    assert last_notification().flag == "nul_byte"


def test_markup_in_a_notification_is_processed_and_stored_verbatim(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any
) -> None:
    subject = "<script>alert('x')</script>'; DROP TABLE django_alipay_trade; --"
    assert_answer(post(client, merchant, md5_body(params_for(unpaid, subject=subject))), 200, b"success")
    assert last_notification().params["subject"] == subject


def test_the_same_notification_twice_at_once_has_one_effect(
    postgresql: None, merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    for round_number in range(5):
        trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
        body = signed_body(params_for(trade), key=TEST_MD5_KEY)
        barrier = threading.Barrier(2)
        answers: list[tuple[int, bytes]] = []

        def deliver(
            payload: bytes = body,
            gate: threading.Barrier = barrier,
            answers: list[tuple[int, bytes]] = answers,
        ) -> None:
            try:
                own = Client()
                gate.wait()
                response = post(own, merchant, payload)
                answers.append((response.status_code, response.content))
            finally:
                connection.close()

        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert answers == [(200, b"success"), (200, b"success")], round_number
        outcomes = sorted(Notification.objects.filter(trade=trade).values_list("outcome", flat=True))
        assert outcomes == ["duplicate", "processed"]


def test_a_spoofed_forwarded_for_is_stored_apart_and_never_replaces_the_peer(
    client: Client, merchant: Merchant, unpaid: Trade, md5_body: Any
) -> None:
    response = post(
        client,
        merchant,
        md5_body(params_for(unpaid)),
        REMOTE_ADDR="198.51.100.20",
        headers={"X-Forwarded-For": "110.75.143.10, 10.0.0.1"},
    )
    assert_answer(response, 200, b"success")
    stored = last_notification()
    assert (stored.remote_addr, stored.forwarded_for) == ("198.51.100.20", "110.75.143.10, 10.0.0.1")
    assert Trade.objects.get(pk=unpaid.pk).status == "TRADE_FINISHED"


# --- under load ---------------------------------------------------------------------------------------------


def test_past_the_in_flight_limit_a_notification_is_answered_503_at_once_and_nothing_is_stored(
    client: Client, merchant: Merchant, unpaid: Trade, gateway: FakeGateway, md5_body: Any, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_MAX_IN_FLIGHT": 1}
    body = md5_body(params_for(unpaid))
    with views._admission() as admitted:  # another notification is being worked on in this process
        assert admitted
        response = post(client, merchant, body)
    assert_answer(response, 503, b"fail")
    assert response["Retry-After"] == "60"
    assert not Notification.objects.exists()
    assert gateway.called("notify_verify") == []
    assert_unpaid(unpaid)

    # Alipay's resend, once the slot is free, goes through.
    assert_answer(post(client, merchant, body), 200, b"success")
    assert Trade.objects.get(pk=unpaid.pk).status == "TRADE_FINISHED"
    assert views._in_flight == 0


def test_without_a_limit_notifications_are_never_shed(
    client: Client, merchant: Merchant, unpaid: Trade, gateway: FakeGateway, md5_body: Any
) -> None:
    with views._admission(), views._admission(), views._admission():
        assert_answer(post(client, merchant, md5_body(params_for(unpaid))), 200, b"success")


def test_a_genuine_notification_costs_four_statements_on_postgresql_and_six_elsewhere(
    client: Client, merchant: Merchant, make_trade: Callable[..., Trade], md5_body: Any
) -> None:
    """Store (with the merchant and the earlier deliveries on PostgreSQL, else three statements), then under
    the trade's lock: trade, record (a notification that moves the trade forward is no duplicate)."""
    first, second = make_trade(status="WAIT_BUYER_PAY", paid_at=None), make_trade(status="WAIT_BUYER_PAY")
    post(client, merchant, md5_body(params_for(first)))  # warms the shared gateway client
    with CaptureQueriesContext(connection) as queries:
        assert_answer(post(client, merchant, md5_body(params_for(second))), 200, b"success")
    statements = [q["sql"] for q in queries if q["sql"] not in ("BEGIN", "COMMIT")]
    expected = 4 if connection.vendor == "postgresql" else 6
    assert len(statements) == expected, "\n".join(sql[:120] for sql in statements)
    assert sum(q["sql"] == "COMMIT" for q in queries) <= 2
    stored = last_notification()
    assert (stored.verification, stored.outcome, stored.kind, stored.notify_type) == (
        "verified",
        "processed",
        "trade",
        "trade_status_sync",
    )
    assert stored.params["out_trade_no"] == second.out_trade_no
