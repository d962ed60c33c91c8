"""The signed-payload builders: golden vectors, every sign type and charset, and the domain accepting them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from django_alipay.domain import notifications as domain_notifications
from django_alipay.domain import trades
from django_alipay.models import Merchant, Notification, Trade
from django_alipay.protocol import envelope, keys, signing
from django_alipay.protocol.clock import BEIJING
from django_alipay.protocol.errors import NotificationError
from django_alipay.protocol.notifications import read_notification, read_return
from django_alipay.testing import (
    BeijingClock,
    build_refund_notification,
    build_response,
    build_return_query,
    build_trade_notification,
    sign_form,
)
from django_alipay.testing.emulator import generated_key_pem

# Golden data: MD5 key "1" and 31 zeros, and the sandbox-style key.
MD5_KEY_ONES = "1" + "0" * 31
SANDBOX_MD5_KEY = "760bdzec6y9goq7ctyx96ezkz78287de"
# The published 1024-bit RSA test key ("key A"), kept with the protocol tests' data.
KEY_A = (Path(__file__).parents[1] / "protocol" / "data" / "keys" / "key_a_pkcs8.pem").read_text()
KEY_A_RSA_SIGN = (
    "TaVXdP/0ia5NxIv9T76v6vGOrtgoaFrwnchKIWP9PQeX1UkUVxaq6ejDFmXFrFR+Plk+E/XzfV2DYJSVt0Am0qJRSgeg+PuvK+yWGCGm9G"
    "JgUJlS4Eyta3g+8DWwRWTjUyh5yzlf9JoSnbNjYpBolnMRD7B/u1JLkTMJuMx2TVM="
)
KEY_A_RSA2_SIGN = (
    "NQ/NS3M3CLeCE0WFaX0PU6Dh/LS0ig2ngh/JDXtDqZWQw36sUOucgU9qNVd/f/KZEz78dPNdWjNE6Ay6hy1EayGEhxnTJ8uuOOFhdshRRY"
    "DoNB3LmIhuXt3B23eqfnSgO4GiarHBHpGa+x8GARWb0KHRWjCzuxZ8fL4+/8ebLFQ="
)
SPOT_PAY_FIELDS = {
    "alipay_buyer_login_id": "cnb*@alitest.*",
    "alipay_buyer_user_id": "2088622937243084",
    "alipay_pay_time": "20191120151520",
    "alipay_trans_id": "2019112022001443081000035414",
    "currency": "USD",
    "exchange_rate": "6.64640000",
    "partner_trans_id": "99003911198989",
    "result_code": "SUCCESS",
    "trans_amount": "0.01",
    "trans_amount_cny": "0.07",
}
SPOT_PAY_SIGN = "8421951da0bbbf045c9265ed78748f93"

# 测试 ("test") in each charset, as percent-encoded bytes of a form body.
CHINESE = "测试"
CHINESE_ENCODED = {"utf-8": "%E6%B5%8B%E8%AF%95", "gbk": "%B2%E2%CA%D4", "gb2312": "%B2%E2%CA%D4"}
CHARSETS = ("utf-8", "gbk", "gb2312")
SIGN_TYPES = ("MD5", "RSA", "RSA2", "DSA")
FORM = "application/x-www-form-urlencoded"


def alipay_keys(sign_type: str) -> tuple[str, str]:
    """(the key Alipay signs with, the key the shop verifies with) for ``sign_type``."""
    if sign_type == "MD5":
        return SANDBOX_MD5_KEY, SANDBOX_MD5_KEY
    private = generated_key_pem("alipay", "DSA" if sign_type == "DSA" else "RSA")
    return private, keys.public_key_pem(private)


# --- golden vectors ----------------------------------------------------------------------------------------


def test_sign_form_reproduces_the_published_md5_notification_vector() -> None:
    form = sign_form({"notify_id": "1234"}, key=MD5_KEY_ONES)

    assert form.body == b"notify_id=1234&sign=22fc7e38e5acdfede396aa463870d111&sign_type=MD5"
    assert form.content_type == "application/x-www-form-urlencoded; charset=utf-8"


@pytest.mark.parametrize(("sign_type", "expected"), [("RSA", KEY_A_RSA_SIGN), ("RSA2", KEY_A_RSA2_SIGN)])
def test_build_response_signs_its_fields_like_the_rsa_vectors(sign_type: str, expected: str) -> None:
    body = build_response(
        "single_trade_query", {"partner": "123", "service": "test"}, key=KEY_A, sign_type=sign_type
    )

    assert f"<sign>{expected}</sign><sign_type>{sign_type}</sign_type>".encode() in body
    parsed = envelope.parse_response(body, key=keys.public_key_pem(KEY_A))
    assert (parsed.is_success, parsed.response_element, parsed.sign_verified) == (True, "trade", True)
    assert parsed.fields == {"partner": "123", "service": "test"}


def test_build_response_signs_a_spot_pay_block_like_the_md5_vector() -> None:
    body = build_response("alipay.acquire.overseas.spot.pay", SPOT_PAY_FIELDS, key=SANDBOX_MD5_KEY)

    parsed = envelope.parse_response(body, sign_type="MD5", key=SANDBOX_MD5_KEY)
    assert (parsed.response_element, parsed.sign, parsed.sign_verified) == ("alipay", SPOT_PAY_SIGN, True)
    assert parsed.fields == SPOT_PAY_FIELDS
    assert parsed.request == {"_input_charset": "utf-8", "service": "alipay.acquire.overseas.spot.pay"}


def test_build_response_for_an_error_is_unsigned_and_fails() -> None:
    body = build_response("forex_refund", error="PURCHASE_TRADE_NOT_EXIST")

    parsed = envelope.parse_response(body)
    assert (parsed.is_success, parsed.error, parsed.sign) == (False, "PURCHASE_TRADE_NOT_EXIST", None)


@pytest.mark.parametrize("charset", CHARSETS)
def test_build_response_is_encoded_in_its_charset(charset: str) -> None:
    body = build_response("single_trade_query", {"subject": CHINESE}, key=SANDBOX_MD5_KEY, charset=charset)

    assert CHINESE.encode(charset) in body
    parsed = envelope.parse_response(body, key=SANDBOX_MD5_KEY)
    assert (parsed.fields["subject"], parsed.sign_verified) == (CHINESE, True)


# --- notifications in every sign type and charset ----------------------------------------------------------


@pytest.mark.parametrize("charset", CHARSETS)
@pytest.mark.parametrize("sign_type", SIGN_TYPES)
def test_trade_notification_verifies_with_the_receivers_key(sign_type: str, charset: str) -> None:
    signing_key, verifying_key = alipay_keys(sign_type)

    body, content_type = build_trade_notification(
        "ORDER-7", key=signing_key, sign_type=sign_type, charset=charset, subject=CHINESE
    )

    assert CHINESE_ENCODED[charset].encode() in body
    verified = read_notification(
        body,
        content_type=content_type,
        key=verifying_key,
        allowed_sign_types=[sign_type],
        default_charset=charset,
    )
    assert (verified.out_trade_no, verified.params["subject"], verified.sign_type) == (
        "ORDER-7",
        CHINESE,
        sign_type,
    )
    assert verified.total_fee == Decimal("100.00")
    assert signing.verify(verified.params, key=verifying_key, charset=charset)


@pytest.mark.parametrize("sign_type", SIGN_TYPES)
def test_a_changed_byte_breaks_the_signature(sign_type: str) -> None:
    signing_key, verifying_key = alipay_keys(sign_type)
    body, content_type = build_trade_notification("ORDER-8", key=signing_key, sign_type=sign_type)

    forged = body.replace(b"total_fee=100.00", b"total_fee=1.00")

    assert forged != body
    with pytest.raises(NotificationError) as raised:
        read_notification(
            forged, content_type=content_type, key=verifying_key, allowed_sign_types=[sign_type]
        )
    assert raised.value.flag == "bad_signature"


def test_plus_and_space_are_encoded_as_the_gateway_sends_them() -> None:
    form = build_trade_notification("ORDER 9+1", key=SANDBOX_MD5_KEY)

    assert b"out_trade_no=ORDER+9%2B1" in form.body
    assert form.params["out_trade_no"] == "ORDER 9+1"


@pytest.mark.parametrize("sign_type", SIGN_TYPES)
def test_refund_notifications_online_and_in_store(sign_type: str) -> None:
    signing_key, verifying_key = alipay_keys(sign_type)

    online = build_refund_notification(
        "ORDER-1", "RF-1", Decimal("2.50"), key=signing_key, sign_type=sign_type
    )
    instore = build_refund_notification(
        "POS-1", "PR-1", "3", currency="JPY", instore=True, key=signing_key, sign_type=sign_type
    )

    first = read_notification(
        online.body, content_type=FORM, key=verifying_key, allowed_sign_types=[sign_type]
    )
    assert first.notify_type == "refund_status_sync"
    assert (first["out_trade_no"], first["out_return_no"], first["return_amount"]) == (
        "ORDER-1",
        "RF-1",
        Decimal("2.50"),
    )
    assert first.is_refund
    assert first.refund_status == "REFUND_SUCCESS"
    second = read_notification(
        instore.body, content_type=FORM, key=verifying_key, allowed_sign_types=[sign_type]
    )
    assert (second.out_trade_no, second["partner_refund_id"], second["refund_amount"]) == (
        "POS-1",
        "PR-1",
        Decimal(3),
    )
    assert "out_return_no" not in second.params


@pytest.mark.parametrize("sign_type", SIGN_TYPES)
def test_return_query_verifies_without_a_notify_id(sign_type: str) -> None:
    signing_key, verifying_key = alipay_keys(sign_type)

    query = build_return_query("ORDER-2", key=signing_key, sign_type=sign_type, total_fee="0.01")

    visit = read_return(query, key=verifying_key, allowed_sign_types=[sign_type], default_charset="utf-8")
    assert (visit.out_trade_no, visit.trade_status, visit.total_fee) == (
        "ORDER-2",
        "TRADE_FINISHED",
        Decimal("0.01"),
    )
    assert visit.notify_id is None


# --- defaults and overrides --------------------------------------------------------------------------------


@pytest.mark.alipay_clock("2024-03-01 23:59:59")
def test_defaults_follow_the_alipay_clock(alipay_clock: BeijingClock) -> None:
    params = build_trade_notification("ORDER-3", key=SANDBOX_MD5_KEY).params

    assert params["notify_time"] == "2024-03-01 23:59:59"
    assert params["notify_type"] == "trade_status_sync"
    assert len(params["notify_id"]) == 34
    assert params["notify_id"].isalnum()
    assert params["trade_no"].startswith("202403012200")
    assert len(params["trade_no"]) == 28
    alipay_clock.advance(seconds=1)
    assert (
        build_trade_notification("ORDER-3", key=SANDBOX_MD5_KEY).params["trade_no"].startswith("202403022200")
    )


def test_none_leaves_a_field_out_and_typed_values_are_written_for_the_wire() -> None:
    when = datetime(2024, 5, 1, 4, 0, 0, tzinfo=BEIJING)
    form = build_trade_notification(
        "ORDER-4",
        key=SANDBOX_MD5_KEY,
        notify_id=None,
        total_fee=Decimal(1500),
        currency="JPY",
        gmt_payment=when,
    )

    assert "notify_id" not in form.params
    assert (form.params["total_fee"], form.params["gmt_payment"]) == ("1500", "2024-05-01 04:00:00")
    with pytest.raises(NotificationError) as raised:
        read_notification(form.body, content_type=FORM, key=SANDBOX_MD5_KEY, allowed_sign_types=["MD5"])
    assert raised.value.flag == "missing_notify_id"


# --- accepted by the domain, through the shop's notify view -------------------------------------------------


@pytest.fixture
def merchant_for(shop_settings: Any) -> Callable[[str, str], Merchant]:
    # Built notifications are unknown to any gateway, so notify_verify is off (the kit's documented advice).
    shop_settings.ALIPAY = {**shop_settings.ALIPAY, "NOTIFY_VERIFY": False}

    def make(sign_type: str, charset: str) -> Merchant:
        values: dict[str, Any] = {"sign_type": sign_type, "charset": charset}
        if sign_type == "MD5":
            values["md5_key"] = SANDBOX_MD5_KEY
        else:
            own = generated_key_pem("merchant", "DSA" if sign_type == "DSA" else "RSA")
            values |= {"private_key": own, "public_key": keys.public_key_pem(own)}
            values["alipay_public_key"] = alipay_keys(sign_type)[1]
        return Merchant.objects.create(
            name=f"Shop {sign_type} {charset}",
            partner="2088101122136241",
            environment="emulator",
            gateway_url="http://127.0.0.1:9/gateway.do",
            **values,
        )

    return make


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("charset", CHARSETS)
@pytest.mark.parametrize("sign_type", SIGN_TYPES)
def test_the_domain_accepts_built_notifications(
    merchant_for: Callable[[str, str], Merchant], client: Any, sign_type: str, charset: str
) -> None:
    from django_alipay.testing import post_notification

    merchant = merchant_for(sign_type, charset)
    start = trades.create_trade(
        merchant, out_trade_no="SHOP-1", amount="25.00", currency="USD", subject=CHINESE
    )

    response = post_notification(
        client, merchant, out_trade_no="SHOP-1", key=alipay_keys(sign_type)[0], subject=CHINESE
    )

    assert (response.status_code, response.content) == (200, b"success")
    trade = Trade.objects.get(pk=start.trade.pk)
    assert (trade.status, trade.paid_at is not None) == ("TRADE_FINISHED", True)
    stored = Notification.objects.get(trade=trade)
    assert (stored.verification, stored.params["total_fee"], stored.params["subject"]) == (
        "verified",
        "25.00",
        CHINESE,
    )


@pytest.mark.django_db(transaction=True)
def test_the_domain_rejects_a_notification_signed_with_another_key(
    merchant_for: Callable[[str, str], Merchant],
) -> None:
    merchant = merchant_for("RSA2", "utf-8")
    trades.create_trade(merchant, out_trade_no="SHOP-2", amount="25.00", currency="USD", subject="Mug")
    stranger = generated_key_pem("merchant", "RSA")  # the shop's own key, not Alipay's
    body, content_type = build_trade_notification("SHOP-2", key=stranger, sign_type="RSA2", total_fee="25.00")

    answer = domain_notifications.receive(merchant.notify_token, body=body, content_type=content_type)

    assert (answer.status, answer.body, answer.flag) == (400, "fail", "bad_signature")
    assert Trade.objects.get(out_trade_no="SHOP-2").status == "WAIT_BUYER_PAY"
