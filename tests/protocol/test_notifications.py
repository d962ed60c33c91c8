"""Inbound notifications and return_url requests: bad signatures, charsets, duplicates, shapes, and more."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from decimal import Decimal
from urllib.parse import quote, urlencode

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_alipay.protocol import dsa
from django_alipay.protocol.clock import BEIJING
from django_alipay.protocol.codes import RefundStatus, TradeStatus
from django_alipay.protocol.errors import KeyFormatError, NotificationError
from django_alipay.protocol.notifications import (
    FLAGS,
    parse_form,
    read_notification,
    read_return,
    verify_notification,
)

FORM = "application/x-www-form-urlencoded"
MD5_KEY = "760bdzec6y9goq7ctyx96ezkz78287de"
OTHER_MD5_KEY = "0123456789abcdef0123456789abcdef"
ALIPAY_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ALIPAY_DSA = dsa.generate(2048)

# The fields of the official create_forex_trade notification sample, re-signed here
# with our own key since Alipay's is not published.
TRADE = {
    "notify_id": "5b89a773c60af059d96b1693dd3b3d6nc1",
    "notify_type": "trade_status_sync",
    "trade_no": "2018110922001332950500389138",
    "total_fee": "0.01",
    "out_trade_no": "test20181109153145",
    "notify_time": "2018-11-09 15:36:17",
    "currency": "USD",
    "trade_status": "TRADE_FINISHED",
}


def presign(fields: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v and k not in ("sign", "sign_type"))


def signed(
    fields: dict[str, str], sign_type: str = "MD5", *, key: object = MD5_KEY, charset: str = "utf-8"
) -> dict[str, str]:
    """The fields plus sign_type and a sign computed by the mapi signing rules."""
    data = presign(fields).encode(charset)
    if sign_type == "MD5":
        sign = hashlib.md5(data + str(key).encode(charset)).hexdigest()
    elif sign_type == "DSA":
        assert isinstance(key, dsa.DSAPrivateKey)
        sign = base64.b64encode(key.sign(data, hashes.SHA1())).decode()  # noqa: S303 - the protocol's DSA
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        algorithm = hashes.SHA1() if sign_type == "RSA" else hashes.SHA256()  # noqa: S303
        sign = base64.b64encode(key.sign(data, padding.PKCS1v15(), algorithm)).decode()
    return {**fields, "sign": sign, "sign_type": sign_type}


def body(params: dict[str, str] | list[tuple[str, str]], charset: str = "utf-8") -> bytes:
    return urlencode(params, encoding=charset).encode("ascii")


def read(data: bytes, *, key: object = MD5_KEY, allowed: tuple[str, ...] = ("MD5",), **kwargs: object):
    return read_notification(data, content_type=FORM, key=key, allowed_sign_types=allowed, **kwargs)


def rejected(data: bytes, flag: str, **kwargs: object) -> NotificationError:
    with pytest.raises(NotificationError) as caught:
        read(data, **kwargs)
    assert caught.value.flag == flag
    assert flag in FLAGS
    return caught.value


# --- the genuine cases ------------------------------------------------------------------------------------


def test_genuine_md5_notification_verifies_and_is_typed():
    notification = read(body(signed(TRADE)))
    assert notification.trade_status is TradeStatus.TRADE_FINISHED
    assert notification.total_fee == Decimal("0.01")
    assert notification.notify_time == datetime(2018, 11, 9, 15, 36, 17, tzinfo=BEIJING)
    assert notification.notify_id == TRADE["notify_id"]
    assert notification.out_trade_no == "test20181109153145"
    assert notification.sign_type == "MD5"
    assert notification.flags == frozenset()
    assert notification.params["total_fee"] == "0.01"
    assert list(notification.params) == [*TRADE, "sign", "sign_type"]
    assert notification.checked[-1] == "signature"
    assert {"duplicates", "sign_type", "sign_format", "notify_id"} <= set(notification.checked)
    assert notification.is_refund is False


@pytest.mark.parametrize(
    ("sign_type", "signing_key", "verifying_key"),
    [
        ("RSA", ALIPAY_RSA, ALIPAY_RSA.public_key()),
        ("RSA2", ALIPAY_RSA, ALIPAY_RSA.public_key()),
        ("DSA", ALIPAY_DSA, ALIPAY_DSA.public_key()),
        ("RSA2", ALIPAY_RSA, [OTHER_RSA.public_key(), ALIPAY_RSA.public_key()]),
    ],
    ids=["RSA", "RSA2", "DSA", "RSA2-rotation"],
)
def test_genuine_public_key_notifications_verify(sign_type, signing_key, verifying_key):
    data = body(signed(TRADE, sign_type, key=signing_key))
    notification = read(data, key=verifying_key, allowed=(sign_type,))
    assert notification.sign_type == sign_type


def test_key_per_sign_type_for_a_merchant_accepting_two():
    keys = {"MD5": MD5_KEY, "RSA2": ALIPAY_RSA.public_key()}
    assert read(body(signed(TRADE)), key=keys, allowed=("MD5", "RSA2")).sign_type == "MD5"
    rsa2 = body(signed(TRADE, "RSA2", key=ALIPAY_RSA))
    assert read(rsa2, key=keys, allowed=("MD5", "RSA2")).sign_type == "RSA2"


def test_refund_notification_is_typed():
    refund = {
        "notify_id": "n1",
        "notify_type": "refund_status_sync",
        "notify_time": "2024-05-10 09:30:00",
        "out_trade_no": "T1",
        "out_return_no": "R1",
        "refund_status": "REFUND_SUCCESS",
        "return_amount": "100",
        "currency": "JPY",
    }
    notification = read(body(signed(refund)))
    assert notification.refund_status is RefundStatus.REFUND_SUCCESS
    assert notification["return_amount"] == Decimal("100")
    assert notification.is_refund is True


def test_return_url_query_needs_no_notify_id():
    fields = {k: v for k, v in TRADE.items() if not k.startswith("notify")}
    query = urlencode(signed(fields))
    result = read_return(query, key=MD5_KEY, allowed_sign_types=("MD5",))
    assert result.trade_status is TradeStatus.TRADE_FINISHED
    assert result.notify_id is None


# --- signature and sign_type ------------------------------------------------------------------------------


def test_a_missing_sign_is_refused():
    params = signed(TRADE)
    del params["sign"]
    rejected(body(params), "missing_sign")


def test_empty_sign_counts_as_missing():
    rejected(body({**signed(TRADE), "sign": ""}), "missing_sign")


def test_a_missing_sign_type_is_refused():
    params = signed(TRADE)
    del params["sign_type"]
    rejected(body(params), "missing_sign_type")


def test_an_md5_downgrade_for_an_rsa2_merchant_is_refused():
    # Signed with the real MD5 key: only the allow-list stops it.
    rejected(body(signed(TRADE)), "sign_type_not_allowed", key=ALIPAY_RSA.public_key(), allowed=("RSA2",))
    rejected(
        body(signed(TRADE)),
        "sign_type_not_allowed",
        key={"RSA2": ALIPAY_RSA.public_key()},
        allowed=("MD5", "RSA2"),
    )


def test_lowercase_md5_is_refused():
    params = signed(TRADE)
    params["sign_type"] = "md5"
    error = rejected(body(params), "bad_sign_type")
    assert "md5" in error.message


@pytest.mark.parametrize(
    ("value", "flag"),
    [("NONE", "bad_sign_type"), ("", "missing_sign_type"), ("HMAC-SHA256", "bad_sign_type")],
)
def test_unusable_sign_types_are_refused(value, flag):
    rejected(body({**signed(TRADE), "sign_type": value}), flag)


@pytest.mark.parametrize(
    ("sign_type", "sign"),
    [
        ("MD5", "z" * 32),
        ("MD5", "abc"),
        ("MD5", "签名" * 16),
        ("RSA2", "not base64 at all!"),
        ("RSA2", "QUJD="),
        ("RSA2", "签名签名"),
    ],
)
def test_malformed_signatures_are_flagged_not_crashing(sign_type, sign):
    params = {**TRADE, "sign": sign, "sign_type": sign_type}
    key = MD5_KEY if sign_type == "MD5" else ALIPAY_RSA.public_key()
    rejected(body(params), "bad_sign_format", key=key, allowed=(sign_type,))


def test_well_formed_but_wrong_length_rsa_signature_is_a_bad_signature():
    params = {**TRADE, "sign": base64.b64encode(b"0123456789ab").decode(), "sign_type": "RSA2"}
    rejected(body(params), "bad_signature", key=ALIPAY_RSA.public_key(), allowed=("RSA2",))


def test_wrong_key_is_a_bad_signature():
    rejected(body(signed(TRADE)), "bad_signature", key=OTHER_MD5_KEY)
    rejected(
        body(signed(TRADE, "RSA2", key=OTHER_RSA)),
        "bad_signature",
        key=ALIPAY_RSA.public_key(),
        allowed=("RSA2",),
    )


def test_tampered_amount_is_a_bad_signature():
    params = signed(TRADE)
    params["total_fee"] = "100.00"
    rejected(body(params), "bad_signature")


def test_unencoded_plus_in_an_rsa_signature_still_verifies():
    # Find a notify_id whose signature contains '+', then send it the way a careless sender would.
    for i in range(200):
        params = signed({**TRADE, "notify_id": f"id{i}"}, "RSA2", key=ALIPAY_RSA)
        if "+" in params["sign"]:
            break
    else:  # pragma: no cover - 200 tries without a '+' in 344 Base64 characters is not going to happen
        pytest.fail("no signature with '+' found")
    raw = body({k: v for k, v in params.items() if k != "sign"}) + b"&sign=" + params["sign"].encode()
    assert read(raw, key=ALIPAY_RSA.public_key(), allowed=("RSA2",)).notify_id == f"id{i}"


def test_a_misconfigured_key_is_a_configuration_error_not_a_notification_error():
    with pytest.raises(KeyFormatError):
        read(body(signed(TRADE, "RSA2", key=ALIPAY_RSA)), key=MD5_KEY, allowed=("RSA2",))


# --- charsets ---------------------------------------------------------------------------------------------

CHINESE = {**TRADE, "subject": "测试商品", "body": "中文描述"}


def test_utf8_signature_sent_as_gbk_is_a_bad_signature():
    params = signed({**CHINESE, "_input_charset": "gbk"}, charset="utf-8")
    rejected(body(params, "gbk"), "bad_signature")


def test_gbk_signature_sent_as_utf8_is_a_bad_signature():
    params = signed({**CHINESE, "_input_charset": "utf-8"}, charset="gbk")
    rejected(body(params, "utf-8"), "bad_signature")


def test_genuine_gbk_notification_with_chinese_subject():
    params = signed({**CHINESE, "_input_charset": "gbk"}, charset="gbk")
    notification = read(body(params, "gbk"))
    assert notification.params["subject"] == "测试商品"
    assert notification.fields["body"] == "中文描述"
    assert (notification.charset, notification.charset_source) == ("gbk", "form")


def test_gbk_is_the_default_when_the_form_names_no_charset():
    notification = read(body(signed(CHINESE, charset="gbk"), "gbk"))
    assert notification.params["subject"] == "测试商品"
    assert (notification.charset, notification.charset_source) == ("gbk", "default")


def test_merchant_default_charset_applies_when_the_form_names_none():
    notification = read(body(signed(CHINESE)), default_charset="utf-8")
    assert notification.params["subject"] == "测试商品"


def test_bytes_invalid_in_the_declared_charset_are_refused():
    raw = body(signed({**TRADE, "_input_charset": "utf-8"})) + b"&subject=%FF%FE"
    error = rejected(raw, "bad_charset")
    assert error.raw_response is not None


def test_an_unsupported_declared_charset_is_refused():
    rejected(body(signed({**TRADE, "_input_charset": "latin-1"})), "bad_charset")


def test_charset_override_in_verify():
    parsed = parse_form(body(signed(CHINESE, charset="gbk"), "gbk"), content_type=FORM, default_charset="gbk")
    with pytest.raises(NotificationError) as caught:
        verify_notification(parsed, key=MD5_KEY, allowed_sign_types=("MD5",), charset="utf-8")
    assert caught.value.flag == "bad_charset"


# --- parameter pollution and canonicalisation -------------------------------------------------------------


def test_a_duplicate_parameter_with_different_values_is_refused():
    raw = body(signed(TRADE)) + b"&total_fee=100.00"
    rejected(raw, "duplicate_param")


@pytest.mark.parametrize("name", ["sign", "notify_id", "sign_type", "_input_charset"])
def test_a_duplicate_sign_or_notify_id_is_refused(name):
    params = signed({**TRADE, "_input_charset": "utf-8"})
    raw = body(params) + f"&{name}={quote(params[name])}".encode()
    rejected(raw, "duplicate_param")


def test_duplicate_across_query_string_and_body():
    params = signed(TRADE)
    rejected(body(params), "duplicate_param", query_string="out_trade_no=other")


def test_extra_query_parameter_is_covered_by_the_signature():
    rejected(body(signed(TRADE)), "bad_signature", query_string="coupon=1")


def test_unknown_parameter_in_alipays_signature_verifies_and_is_kept():
    notification = read(body(signed({**TRADE, "brand_new_field": "x"})))
    assert notification.params["brand_new_field"] == "x"


def test_empty_value_is_excluded_from_the_signature_and_kept():
    params = signed({**TRADE, "body": ""})
    notification = read(body(params))
    assert notification.params["body"] == ""


def test_encoded_special_characters_verify_and_are_preserved():
    fields = {**TRADE, "subject": "a&b=c+d%e 100%", "body": "x+y"}
    notification = read(body(signed(fields)))
    assert notification.params["subject"] == "a&b=c+d%e 100%"
    assert notification.params["body"] == "x+y"


@pytest.mark.parametrize("space", ["+", "%20"])
def test_space_in_notify_time_as_plus_or_percent20(space):
    params = signed(TRADE)
    raw = "&".join(f"{k}={quote(v, safe='').replace('%20', space)}" for k, v in params.items()).encode()
    assert space.encode() in raw
    notification = read(raw)
    assert notification.params["notify_time"] == "2018-11-09 15:36:17"


def test_double_encoded_notify_id_is_decoded_once():
    fields = {**TRADE, "notify_id": "RqPnCoPT3K9%2Fvwbh3I"}
    params = signed(fields)
    raw = body(params)
    assert b"RqPnCoPT3K9%252Fvwbh3I" in raw
    notification = read(raw)
    assert notification.notify_id == "RqPnCoPT3K9%2Fvwbh3I"


# --- request shape ----------------------------------------------------------------------------------------


def test_an_oversized_body_is_refused():
    raw = body(signed(TRADE)) + b"&padding=" + b"x" * (5 * 1024 * 1024)
    rejected(raw, "too_large")


def test_the_body_size_cap_is_configurable():
    rejected(body(signed(TRADE)), "too_large", max_bytes=100)


def test_too_many_fields_are_refused():
    params = signed(TRADE)
    raw = body(params) + b"".join(b"&f%d=1" % i for i in range(300))
    rejected(raw, "too_many_fields")
    rejected(body(params), "too_many_fields", max_fields=5)


@pytest.mark.parametrize(
    "content_type", ["application/json", "multipart/form-data; boundary=x", "text/plain", ""]
)
def test_non_form_content_types_are_refused(content_type):
    with pytest.raises(NotificationError) as caught:
        read_notification(
            body(signed(TRADE)), content_type=content_type, key=MD5_KEY, allowed_sign_types=("MD5",)
        )
    assert caught.value.flag == "unsupported_content_type"


def test_form_content_type_with_parameters_is_accepted():
    notification = read_notification(
        body(signed(TRADE)),
        content_type="Application/X-WWW-Form-Urlencoded; charset=utf-8",
        key=MD5_KEY,
        allowed_sign_types=("MD5",),
    )
    assert notification.notify_id == TRADE["notify_id"]


# --- notify_id and NUL bytes ------------------------------------------------------------------------------


def test_a_missing_notify_id_is_refused():
    fields = {k: v for k, v in TRADE.items() if k != "notify_id"}
    rejected(body(signed(fields)), "missing_notify_id")


def test_an_overlong_notify_id_is_refused():
    rejected(body(signed({**TRADE, "notify_id": "n" * 129})), "bad_notify_id")


@pytest.mark.parametrize(
    "raw",
    [
        body(signed(TRADE)) + b"&subject=a%00b",
        body(signed(TRADE)) + b"&subject=a\x00b",
        body(signed(TRADE)) + b"&sub%00ject=x",
    ],
    ids=["percent-encoded", "raw", "in-a-name"],
)
def test_nul_bytes_are_refused(raw):
    rejected(raw, "nul_byte")


# --- soft flags: genuine data that cannot be typed --------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "flag"),
    [
        ({"total_fee": "1e3"}, "bad_amount"),
        ({"total_fee": "NaN"}, "bad_amount"),
        ({"total_fee": "10.001"}, "bad_amount"),
        ({"currency": "JPY", "total_fee": "100.5"}, "bad_amount"),
        ({"notify_time": "yesterday"}, "bad_time"),
        ({"trade_status": "TRADE_SOMETHING_NEW"}, "unknown_status"),
    ],
)
def test_genuine_but_untypable_values_are_kept_and_flagged(change, flag):
    notification = read(body(signed({**TRADE, **change})))
    assert flag in notification.flags
    name = next(iter(change)) if flag != "bad_amount" else "total_fee"
    assert notification.fields[name] == {**TRADE, **change}[name]


# --- robustness -------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_arbitrary_bodies_raise_only_notification_errors(data):
    try:
        read(data)
    except NotificationError as exc:
        flag = exc.flag
    else:
        flag = None
    assert flag is None or flag in FLAGS


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted(TRADE)), replacement=st.text(min_size=1, max_size=20))
def test_any_changed_value_is_rejected(name, replacement):
    params = signed(TRADE)
    if params[name] == replacement:
        return
    params[name] = replacement
    with pytest.raises(NotificationError):
        read(body(params))
