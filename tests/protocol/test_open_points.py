"""Where the references leave the gateway's behaviour open, the protocol layer accepts every plausible answer.

Response signatures in the declared or the request's charset (never a third), notify_ids longer than the
samples' 34 characters, RSA signatures whose Base64 is wrapped in lines, a notification's charset named only
by its Content-Type, and order_create typed long(10) as the WAP page types it.
"""

from __future__ import annotations

import base64
import hashlib
import string
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from django_alipay.protocol import services, signing
from django_alipay.protocol.envelope import parse_response, render_response
from django_alipay.protocol.errors import NotificationError, SignatureError, TimeFormatError
from django_alipay.protocol.notifications import parse_form, read_notification

FORM = "application/x-www-form-urlencoded"
MD5_KEY = "760bdzec6y9goq7ctyx96ezkz78287de"
PARTNER = "2088101122136241"
ALIPAY_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)

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
# A trade query answer with the non-ASCII fields whose bytes differ between GBK and UTF-8.
QUERY = {
    "out_trade_no": "CN-0001",
    "subject": "龙井茶 250g",
    "total_fee": "12.00",
    "trade_no": "2024010122001300000000000001",
    "trade_status": "TRADE_FINISHED",
}


def presign(fields: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v and k not in ("sign", "sign_type"))


def md5(fields: dict[str, str], charset: str = "utf-8") -> str:
    return hashlib.md5((presign(fields) + MD5_KEY).encode(charset)).hexdigest()


def rsa2(fields: dict[str, str]) -> str:
    raw = ALIPAY_RSA.sign(presign(fields).encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def public_pem() -> str:
    from cryptography.hazmat.primitives import serialization

    return (
        ALIPAY_RSA.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def envelope(fields: dict[str, str], *, declared: str, sign: str) -> bytes:
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    text = (
        f'<?xml version="1.0" encoding="{declared}"?><alipay><is_success>T</is_success>'
        f"<response><trade>{inner}</trade></response><sign>{sign}</sign><sign_type>MD5</sign_type></alipay>"
    )
    return text.encode(declared)


# --- response signature charset


def test_a_response_declaring_gbk_but_signed_in_the_utf8_request_charset_verifies_and_says_so():
    body = envelope(QUERY, declared="GBK", sign=md5(QUERY, "utf-8"))

    response = parse_response(body, key=MD5_KEY, request_charset="utf-8")

    assert response.sign_verified is True
    assert response.charset == "gbk"
    assert response.sign_charset == "utf-8"
    assert response.fields["subject"] == "龙井茶 250g"


def test_a_response_signed_in_its_declared_charset_says_the_declared_one_matched():
    body = envelope(QUERY, declared="GBK", sign=md5(QUERY, "gbk"))

    response = parse_response(body, key=MD5_KEY, request_charset="utf-8")

    assert (response.sign_verified, response.sign_charset) == (True, "gbk")


def test_the_request_charset_is_tried_only_when_given():
    body = envelope(QUERY, declared="GBK", sign=md5(QUERY, "utf-8"))

    with pytest.raises(SignatureError):
        parse_response(body, key=MD5_KEY)


def test_no_third_charset_is_ever_tried():
    # Declared GBK, request GBK, signed over UTF-8 bytes: neither named charset verifies it.
    body = envelope(QUERY, declared="GBK", sign=md5(QUERY, "utf-8"))

    with pytest.raises(SignatureError) as caught:
        parse_response(body, key=MD5_KEY, request_charset="gbk")
    assert "GBK" in caught.value.message


def test_render_response_can_sign_in_another_charset_than_it_declares():
    body = render_response(
        is_success=True,
        response_element="trade",
        fields=QUERY,
        sign_type="MD5",
        key=MD5_KEY,
        charset="gbk",
        sign_charset="utf-8",
    )

    assert body.startswith(b'<?xml version="1.0" encoding="GBK"?>')
    assert parse_response(body, key=MD5_KEY, request_charset="utf-8").sign_charset == "utf-8"


# --- notify_id length


def notification(fields: dict[str, str], *, charset: str = "utf-8") -> bytes:
    return urlencode({**fields, "sign": md5(fields, charset), "sign_type": "MD5"}, encoding=charset).encode()


def test_a_notify_id_of_128_printable_ascii_characters_is_accepted():
    punctuation = "/+=_-.~"
    long_id = (string.ascii_letters + string.digits + punctuation) * 2
    long_id = long_id[:128]
    fields = {**TRADE, "notify_id": long_id}

    verified = read_notification(
        notification(fields), content_type=FORM, key=MD5_KEY, allowed_sign_types=["MD5"]
    )

    assert verified.notify_id == long_id


@pytest.mark.parametrize("notify_id", ["n" * 129, "abc def", "notify\u00e9"])
def test_a_notify_id_longer_than_128_or_not_printable_ascii_is_refused(notify_id):
    fields = {**TRADE, "notify_id": notify_id}

    with pytest.raises(NotificationError) as caught:
        read_notification(notification(fields), content_type=FORM, key=MD5_KEY, allowed_sign_types=["MD5"])
    assert caught.value.flag == "bad_notify_id"


def test_notify_verify_accepts_the_same_long_notify_id():
    wire = services.build_request("notify_verify", {"notify_id": "N" * 128}, partner=PARTNER)
    assert wire["notify_id"] == "N" * 128


# --- RSA signatures with line breaks or spaces in their Base64


def wrapped(sign: str, width: int, separator: str) -> str:
    return separator.join(sign[i : i + width] for i in range(0, len(sign), width))


@pytest.mark.parametrize(
    ("width", "separator"),
    [(60, "\n"), (76, "\r\n"), (64, " "), (64, "\t")],
    ids=["lf", "crlf", "space", "tab"],
)
def test_an_rsa2_notification_whose_signature_is_wrapped_verifies(width, separator):
    sign = wrapped(rsa2(TRADE), width, separator)
    data = urlencode({**TRADE, "sign": sign, "sign_type": "RSA2"}).encode()

    verified = read_notification(data, content_type=FORM, key=public_pem(), allowed_sign_types=["RSA2"])

    assert verified.sign_type == "RSA2"


def test_a_wrapped_signature_whose_plus_signs_became_spaces_still_verifies():
    candidates = ({**TRADE, "out_trade_no": f"test-{n}"} for n in range(200))
    fields, sign = next((f, s) for f in candidates if "+" in (s := rsa2(f)))
    mangled = wrapped(sign, 64, "\n").replace("+", " ")

    assert signing.verify({**fields, "sign": mangled}, key=public_pem(), sign_type="RSA2") is True


def test_a_wrapped_signature_of_other_data_still_fails():
    sign = wrapped(rsa2(TRADE), 60, "\n")
    assert (
        signing.verify({**TRADE, "total_fee": "0.02", "sign": sign}, key=public_pem(), sign_type="RSA2")
        is False
    )


# --- the notification's charset named only by its Content-Type


def test_the_content_type_charset_decodes_a_notification_without_input_charset():
    fields = {**TRADE, "subject": "龙井茶"}
    data = notification(fields, charset="gbk")

    verified = read_notification(
        data,
        content_type=f"{FORM}; charset=GBK",
        key=MD5_KEY,
        allowed_sign_types=["MD5"],
        default_charset="utf-8",
    )

    assert verified.params["subject"] == "龙井茶"
    assert (verified.charset, verified.charset_source) == ("gbk", "content_type")


def test_input_charset_in_the_form_wins_over_the_content_type():
    fields = {**TRADE, "_input_charset": "utf-8", "subject": "龙井茶"}
    parsed = parse_form(notification(fields), content_type=f"{FORM}; charset=GBK", default_charset="gbk")
    assert (parsed.charset, parsed.charset_source) == ("utf-8", "form")


def test_an_unsupported_content_type_charset_falls_back_to_the_default():
    parsed = parse_form(
        notification(TRADE), content_type=f"{FORM}; charset=ISO-8859-1", default_charset="gbk"
    )
    assert (parsed.charset, parsed.charset_source) == ("gbk", "default")


# --- order_create on create_forex_trade_wap


WAP = {
    "subject": "Tea",
    "out_trade_no": "WAP-0001",
    "currency": "USD",
    "total_fee": "1.00",
    "timeout_rule": "3d",
}


def test_order_create_goes_out_as_ten_digit_epoch_seconds():
    when = datetime(2024, 1, 1, 4, 0, tzinfo=UTC)

    wire = services.build_request("create_forex_trade_wap", {**WAP, "order_create": when}, partner=PARTNER)

    assert wire["order_create"] == "1704081600"


@pytest.mark.parametrize("value", ["1704081600000", 1704081600000, "170408160", datetime(2024, 1, 1)])
def test_order_create_in_milliseconds_or_naive_is_refused(value):
    with pytest.raises(TimeFormatError) as caught:
        services.build_request("create_forex_trade_wap", {**WAP, "order_create": value}, partner=PARTNER)
    assert caught.value.parameter == "order_create"
