"""The gateway's XML envelope: capture shapes, hostile and broken bodies, response signatures, rendering."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import pathlib
import xml.etree.ElementTree as ET

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from django_alipay.protocol.envelope import (
    MAX_RESPONSE_BYTES,
    GatewayResponse,
    parse_response,
    render_response,
)
from django_alipay.protocol.errors import (
    CharsetError,
    GatewayResponseError,
    InvalidParameterError,
    KeyFormatError,
    OutcomeUnknownError,
    SignatureError,
)

DATA = pathlib.Path(__file__).parent / "data" / "envelope"


def capture(name: str) -> bytes:
    return (DATA / name).read_bytes()


# --- golden vector: a spot-pay style response/alipay block signed with MD5

VECTOR4_KEY = "760bdzec6y9goq7ctyx96ezkz78287de"
VECTOR4_SIGN = "8421951da0bbbf045c9265ed78748f93"
VECTOR4_FIELDS = {
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
VECTOR4_ECHO = (
    '<request><param name="_input_charset">utf-8</param>'
    '<param name="partner">2088101122136241</param>'
    '<param name="service">alipay.acquire.overseas.spot.pay</param>'
    '<param name="partner_trans_id">99003911198989</param>'
    '<param name="sign">0123456789abcdef0123456789abcdef</param><param name="sign_type">MD5</param></request>'
)


def spot_pay_body(
    fields: dict[str, str] | None = None,
    *,
    sign: str | None = VECTOR4_SIGN,
    sign_type: str | None = "MD5",
    encoding: str = "utf-8",
    echo: str = VECTOR4_ECHO,
    extra_fields: str = "",
) -> bytes:
    """The vector-4 envelope written out by hand, fields in reverse order so sorting is the verifier's job."""
    fields = VECTOR4_FIELDS if fields is None else fields
    inner = "".join(f"<{name}>{value}</{name}>" for name, value in reversed(fields.items()))
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        f"<alipay><is_success>T</is_success>{echo}"
        f"<response><alipay>{inner}{extra_fields}</alipay></response>"
        + (f"<sign>{sign}</sign>" if sign is not None else "")
        + (f"<sign_type>{sign_type}</sign_type>" if sign_type is not None else "")
        + "</alipay>"
    )
    return text.encode("gbk" if encoding.lower() == "gbk" else "utf-8")


def presign(fields: dict[str, str]) -> str:
    """The mapi pre-sign string, written here independently of the library."""
    kept = {k: v for k, v in fields.items() if k not in ("sign", "sign_type") and v != ""}
    return "&".join(f"{k}={kept[k]}" for k in sorted(kept, key=lambda name: name.encode()))


def xml_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- captured answers, structure only


def test_gbk_declared_overseas_query_capture_is_read_with_its_chinese_text():
    body = capture("overseas_query_gbk.xml")

    response = parse_response(body)

    assert response.is_success is True
    assert response.error is None
    assert response.response_element == "alipay"
    assert response.fields == {
        "alipay_buyer_login_id": "852-****0654",
        "alipay_buyer_user_id": "2088042172056571",
        "alipay_pay_time": "20210119130016",
        "alipay_trans_id": "2021011922001456571412147507",
        "alipay_trans_status": "TRADE_CLOSED",
        "currency": "HKD",
        "out_trade_no": "210119130014206010598",
        "partner_trans_id": "210119130014206010598",
        "payment_inst": "ALIPAYHK",
        "result_code": "SUCCESS",
        "store_name": "尖沙咀分店",
        "trans_amount": "0.10",
        "trans_name": "港式奶茶（大杯）",
    }
    assert response.request["service"] == "alipay.acquire.overseas.query"
    assert response.request["_input_charset"] == "UTF-8"
    assert response.request["sign_type"] == "MD5"
    assert response.sign == "c8c8a6ed1e95c998a4a7748edfc0f509"
    assert response.sign_type == "MD5"
    assert response.sign_verified is None
    assert response.charset == "gbk"
    assert response.raw == body
    assert response.result_code == "SUCCESS"
    assert response.detail_error_code is None


def test_a_capture_whose_signature_does_not_hold_for_our_key_is_refused_with_the_raw_body():
    body = capture("overseas_query_gbk.xml")

    with pytest.raises(SignatureError) as caught:
        parse_response(body, key=VECTOR4_KEY)

    assert caught.value.raw_response == body
    assert caught.value.service == "alipay.acquire.overseas.query"
    assert caught.value.out_trade_no == "210119130014206010598"
    assert VECTOR4_KEY not in str(caught.value)


def test_sandbox_overseas_query_wait_buyer_pay_capture():
    response = parse_response(capture("overseas_query_sandbox_wait_buyer_pay.xml"), key=VECTOR4_KEY)

    assert response.fields == {
        "alipay_buyer_login_id": "cnb*@alitest.*",
        "alipay_buyer_user_id": "2088622937243084",
        "alipay_trans_id": "2019112022001443081000035414",
        "alipay_trans_status": "WAIT_BUYER_PAY",
        "currency": "USD",
        "exchange_rate": "6.64640000",
        "forex_total_fee": "0.01",
        "out_trade_no": "99003911198989",
        "partner_trans_id": "99003911198989",
        "result_code": "SUCCESS",
        "trans_amount": "0.01",
        "trans_amount_cny": "0.07",
        "trans_forex_rate": "1",
    }
    assert response.request == {
        "_input_charset": "UTF-8",
        "partner": "2088621926786355",
        "partner_trans_id": "99003911198989",
        "service": "alipay.acquire.overseas.query",
    }
    # A signed service whose signature is missing: nothing verified; the caller decides "outcome unknown".
    assert response.sign is None
    assert response.sign_verified is None


def test_precreate_success_capture_unescapes_the_ampersands_in_its_urls():
    response = parse_response(capture("precreate_success.xml"))

    assert response.result_code == "SUCCESS"
    assert response.fields["qr_code"] == "https://qr.alipay.com/bax08616tgysbwsaty4o009b"
    assert response.fields["voucher_type"] == "qrcode"
    assert response.fields["big_pic_url"].endswith("?code=bax08616tgysbwsaty4o009b&picSize=L")
    assert response.fields["small_pic_url"].endswith("&picSize=S")
    assert response.request["product_code"] == "OVERSEAS_MBARCODE_PAY"
    assert response.request["trans_currency"] == "SGD"
    assert response.request["timestamp"] == "1540549333201"
    assert response.request["extend_params"] == (
        '{"secondary_merchant_id":"SM001","store_id":"S0042","store_name":"Orchard & Co"}'
    )


def test_precreate_failure_capture_is_accepted_by_the_gateway_but_a_business_failure():
    response = parse_response(capture("precreate_failure_trade_has_success.xml"))

    assert response.is_success is True
    assert response.result_code == "FAIL"
    assert response.detail_error_code == "TRADE_HAS_SUCCESS"
    assert response.fields["detail_error_des"] == "交易已经支付"
    assert response.sign_type == "MD5"
    assert response.charset == "utf-8"


def test_cancel_success_capture():
    response = parse_response(capture("cancel_success.xml"))

    assert response.fields == {
        "out_trade_no": "20140319113639839",
        "result_code": "SUCCESS",
        "retry_flag": "N",
    }
    assert response.request["_input_charset"] == "GBK"
    assert response.charset == "gbk"


def test_single_trade_query_closed_trade_capture_with_indentation_before_the_declaration():
    response = parse_response(capture("single_trade_query_closed.xml"))

    assert response.response_element == "trade"
    assert response.fields["trade_status"] == "TRADE_CLOSED"
    assert response.fields["additional_trade_status"] == "DAEMON_CONFIRM_CLOSE"
    assert response.fields["gmt_close"] == "2015-01-20 02:37:00"
    assert response.fields["total_fee"] == "640.00"
    # Escaped twice on the wire: one level of escaping is XML's, the rest belongs to the value.
    assert response.fields["subject"] == "Concert ticket &amp; pass"
    assert len(response.fields) == 23
    assert response.request["trade_no"] == "2015012013183181"
    assert response.result_code is None


@pytest.mark.parametrize(
    ("name", "code"),
    [("error_illegal_partner.xml", "ILLEGAL_PARTNER"), ("error_illegal_sign.xml", "ILLEGAL_SIGN")],
)
def test_unsigned_gateway_errors(name, code):
    response = parse_response(capture(name), key=VECTOR4_KEY)

    assert response.is_success is False
    assert response.error == code
    assert response.fields == {}
    assert response.response_element is None
    assert response.request == {}
    assert response.sign is None
    assert response.sign_verified is None


def test_forex_refund_success_is_a_bare_is_success():
    response = parse_response(capture("forex_refund_success.xml"), key=VECTOR4_KEY)

    assert response.is_success is True
    assert response.error is None
    assert response.fields == {}
    assert response.response_element is None
    assert response.sign_verified is None


def test_failed_response_with_a_stray_signature_is_not_verified(rsa_keys):
    body = capture("error_purchase_trade_not_exist_signed.xml")

    response = parse_response(body, key=rsa_keys["RSA"].public_pem)

    assert response.is_success is False
    assert response.error == "PURCHASE_TRADE_NOT_EXIST"
    assert response.sign is not None
    assert response.sign_type == "RSA"
    assert response.sign_verified is None


# --- what the response signature covers


@pytest.mark.parametrize("encoding", ["utf-8", "GBK"])
def test_vector_4_response_signature_verifies(encoding):
    response = parse_response(spot_pay_body(encoding=encoding), key=VECTOR4_KEY)

    assert response.sign_verified is True
    assert response.fields == VECTOR4_FIELDS
    assert response.sign == VECTOR4_SIGN


def test_vector_4_verifies_with_a_forced_sign_type_when_the_body_names_none():
    body = spot_pay_body(sign_type=None)

    assert parse_response(body, key=VECTOR4_KEY, sign_type="md5").sign_verified is True
    with pytest.raises(SignatureError):
        parse_response(body, key=VECTOR4_KEY)


def test_vector_4_verifies_against_a_list_of_keys_during_rotation():
    response = parse_response(spot_pay_body(), key=["0" * 32, VECTOR4_KEY])

    assert response.sign_verified is True


@pytest.mark.parametrize(
    ("field", "value"),
    [("trans_amount", "0.02"), ("currency", "EUR"), ("partner_trans_id", "99003911198988")],
)
def test_vector_4_with_one_field_changed_raises_signature_error(field, value):
    body = spot_pay_body({**VECTOR4_FIELDS, field: value})

    with pytest.raises(SignatureError) as caught:
        parse_response(body, key=VECTOR4_KEY)

    assert caught.value.raw_response == body
    assert caught.value.service == "alipay.acquire.overseas.spot.pay"
    assert not isinstance(caught.value, GatewayResponseError)


def test_vector_4_with_an_added_unknown_field_fails_because_unknown_fields_are_signed():
    body = spot_pay_body(extra_fields="<new_field_2030>X</new_field_2030>")

    with pytest.raises(SignatureError):
        parse_response(body, key=VECTOR4_KEY)


def test_vector_4_with_an_added_empty_field_still_verifies_because_empty_values_are_not_signed():
    response = parse_response(spot_pay_body(extra_fields="<store_id></store_id><memo/>"), key=VECTOR4_KEY)

    assert response.sign_verified is True
    assert response.fields["store_id"] == ""
    assert response.fields["memo"] == ""


def test_fields_named_sign_or_sign_type_are_left_out_of_the_signature_like_any_pre_sign_string():
    body = spot_pay_body(extra_fields="<sign_type>RSA2</sign_type><sign>not-this-one</sign>")

    response = parse_response(body, key=VECTOR4_KEY)

    assert response.sign_verified is True
    assert response.fields["sign_type"] == "RSA2"
    assert response.sign == VECTOR4_SIGN
    assert response.sign_type == "MD5"


def test_vector_4_with_a_different_signature_or_key_raises_signature_error():
    with pytest.raises(SignatureError):
        parse_response(spot_pay_body(sign="8421951da0bbbf045c9265ed78748f94"), key=VECTOR4_KEY)
    with pytest.raises(SignatureError):
        parse_response(spot_pay_body(), key="760bdzec6y9goq7ctyx96ezkz78287dd")


def test_vector_4_without_sign_is_left_unverified():
    response = parse_response(spot_pay_body(sign=None), key=VECTOR4_KEY)

    assert response.sign is None
    assert response.sign_verified is None


def test_vector_4_without_key_is_left_unverified():
    response = parse_response(spot_pay_body())

    assert response.sign == VECTOR4_SIGN
    assert response.sign_verified is None


def test_the_request_echo_is_not_covered_by_the_signature():
    echo = (
        '<request><param name="service">alipay.acquire.overseas.spot.pay</param>'
        '<param name="x">y</param></request>'
    )

    response = parse_response(spot_pay_body(echo=echo), key=VECTOR4_KEY)

    assert response.sign_verified is True
    assert response.request == {"service": "alipay.acquire.overseas.spot.pay", "x": "y"}


def test_an_unknown_sign_type_in_the_body_is_a_signature_error():
    with pytest.raises(SignatureError):
        parse_response(spot_pay_body(sign_type="SHA1"), key=VECTOR4_KEY)


def test_an_unknown_forced_sign_type_is_the_callers_mistake():
    with pytest.raises(InvalidParameterError):
        parse_response(spot_pay_body(), key=VECTOR4_KEY, sign_type="SHA1")


@pytest.mark.parametrize(("declared", "codec"), [("GBK", "gbk"), ("utf-8", "utf-8"), ("GB2312", "gb2312")])
def test_md5_response_is_verified_over_unescaped_text_in_the_declared_charset(declared, codec):
    fields = {"out_trade_no": "T1", "subject": "港式奶茶 & <点心>", "result_code": "SUCCESS"}
    good = hashlib.md5((presign(fields) + VECTOR4_KEY).encode(codec)).hexdigest()
    other = "gbk" if codec == "utf-8" else "utf-8"
    wrong_charset = hashlib.md5((presign(fields) + VECTOR4_KEY).encode(other)).hexdigest()
    inner = "".join(f"<{k}>{xml_escape(v)}</{k}>" for k, v in fields.items())

    def body(sign: str) -> bytes:
        return (
            f'<?xml version="1.0" encoding="{declared}"?><alipay><is_success>T</is_success>'
            f"<response><alipay>{inner}</alipay></response><sign>{sign}</sign><sign_type>MD5</sign_type></alipay>"
        ).encode(codec)

    response = parse_response(body(good), key=VECTOR4_KEY)
    assert response.sign_verified is True
    assert response.fields["subject"] == "港式奶茶 & <点心>"
    with pytest.raises(SignatureError):
        parse_response(body(wrong_charset), key=VECTOR4_KEY)


# --- RSA and RSA2 with test keys


@dataclasses.dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str
    public: rsa.RSAPublicKey


def _key_pair(bits: int) -> KeyPair:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return KeyPair(
        private_pem=private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        public_pem=private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        public=private.public_key(),
    )


@pytest.fixture(scope="module")
def rsa_keys() -> dict[str, KeyPair]:
    return {"RSA": _key_pair(1024), "RSA2": _key_pair(2048), "other": _key_pair(2048)}


QUERY_FIELDS = {
    "alipay_trans_id": "2021011922001456571412147507",
    "alipay_trans_status": "TRADE_SUCCESS",
    "currency": "HKD",
    "out_trade_no": "HK-0001",
    "result_code": "SUCCESS",
    "store_name": "尖沙咀分店 & 旺角分店",
    "trans_amount": "38.00",
    "trans_name": "港式奶茶（大杯）<外卖>",
}
HASHES = {"RSA": hashes.SHA1, "RSA2": hashes.SHA256}


@pytest.mark.parametrize("sign_type", ["RSA", "RSA2"])
@pytest.mark.parametrize("charset", ["GBK", "utf-8"])
def test_rsa_signed_response_round_trips(rsa_keys, sign_type, charset):
    pair = rsa_keys[sign_type]
    body = render_response(
        is_success=True,
        request={"service": "alipay.acquire.overseas.query", "_input_charset": charset},
        response_element="alipay",
        fields=QUERY_FIELDS,
        sign_type=sign_type,
        key=pair.private_pem,
        charset=charset,
    )

    response = parse_response(body, key=pair.public_pem)

    assert response.sign_verified is True
    assert response.fields == QUERY_FIELDS
    assert response.sign_type == sign_type
    # Checked without the library: the signature is over the sorted fields in the charset.
    assert response.sign is not None
    pair.public.verify(
        base64.b64decode(response.sign, validate=True),
        presign(QUERY_FIELDS).encode(charset),
        padding.PKCS1v15(),
        HASHES[sign_type](),
    )


@pytest.mark.parametrize("sign_type", ["RSA", "RSA2"])
def test_rsa_signed_response_with_a_changed_field_or_another_key_is_refused(rsa_keys, sign_type):
    pair = rsa_keys[sign_type]
    body = render_response(
        is_success=True,
        response_element="alipay",
        fields=QUERY_FIELDS,
        sign_type=sign_type,
        key=pair.private_pem,
        charset="GBK",
    )
    tampered = body.replace(b"<trans_amount>38.00<", b"<trans_amount>3800.00<")
    assert tampered != body

    with pytest.raises(SignatureError):
        parse_response(tampered, key=pair.public_pem)
    with pytest.raises(SignatureError):
        parse_response(body, key=rsa_keys["other"].public_pem)


def test_a_forced_sign_type_wins_over_the_one_the_body_names(rsa_keys):
    pair = rsa_keys["RSA2"]
    body = render_response(
        is_success=True,
        response_element="alipay",
        fields=QUERY_FIELDS,
        sign_type="RSA2",
        key=pair.private_pem,
    ).replace(b"<sign_type>RSA2</sign_type>", b"<sign_type>MD5</sign_type>")

    response = parse_response(body, key=pair.public_pem, sign_type="RSA2")

    assert response.sign_verified is True
    assert response.sign_type == "MD5"
    with pytest.raises(SignatureError):
        parse_response(body, key=pair.public_pem)


def test_a_key_that_cannot_serve_the_algorithm_is_the_bodys_fault_unless_the_caller_forced_it(rsa_keys):
    body = render_response(
        is_success=True,
        response_element="alipay",
        fields=QUERY_FIELDS,
        sign_type="RSA2",
        key=rsa_keys["RSA2"].private_pem,
    )

    # The body alone chose RSA2 and the caller holds an MD5 secret: the response cannot be trusted.
    with pytest.raises(SignatureError, match="cannot verify"):
        parse_response(body, key=VECTOR4_KEY)
    # The caller itself asked for RSA2 with an MD5 secret: a configuration error, reported as such.
    with pytest.raises(KeyFormatError):
        parse_response(body, key=VECTOR4_KEY, sign_type="RSA2")


# --- property: render -> parse

_names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
_value_chars = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.sampled_from("&<>\"'\t\n\r"),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5),
)
_values = st.text(alphabet=_value_chars, max_size=24)
_echo_names = st.text(
    alphabet=st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x7E), _value_chars), min_size=1
)


@settings(max_examples=60, deadline=None)
@given(
    fields=st.dictionaries(_names, _values, max_size=12),
    echo=st.dictionaries(_echo_names, _values, max_size=5),
    charset=st.sampled_from(["utf-8", "GBK"]),
    element=st.sampled_from(["alipay", "trade"]),
)
def test_md5_render_then_parse_round_trips(fields, echo, charset, element):
    body = render_response(
        is_success=True,
        request=echo,
        response_element=element,
        fields=fields,
        sign_type="MD5",
        key=VECTOR4_KEY,
        charset=charset,
    )

    response = parse_response(body, key=VECTOR4_KEY)

    assert response.sign_verified is True
    assert response.response_element == element
    assert response.fields == {k: v for k, v in fields.items() if v != ""}
    assert response.request == echo
    assert response.charset == charset.lower()
    expected = hashlib.md5((presign(fields) + VECTOR4_KEY).encode(charset)).hexdigest()
    assert response.sign == expected


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_give_a_response_or_a_gateway_response_error(body):
    try:
        response = parse_response(body, key=VECTOR4_KEY)
    except (GatewayResponseError, SignatureError):
        return
    assert isinstance(response, GatewayResponse)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_damaged_envelope_gives_a_response_or_a_typed_error(data):
    body = spot_pay_body()
    start = data.draw(st.integers(min_value=0, max_value=len(body)))
    end = data.draw(st.integers(min_value=start, max_value=len(body)))
    damaged = body[:start] + data.draw(st.binary(max_size=12)) + body[end:]
    try:
        response = parse_response(damaged, key=VECTOR4_KEY)
    except (GatewayResponseError, SignatureError):
        return
    assert isinstance(response, GatewayResponse)


# --- hostile XML

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE alipay [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<alipay><is_success>T</is_success><response><alipay><subject>&lol9;</subject></alipay></response></alipay>"""

QUADRATIC_BLOWUP = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE alipay [<!ENTITY a "'
    + b"a" * 50_000
    + b'">]>\n<alipay><is_success>T</is_success><response><alipay><subject>'
    + b"&a;" * 50_000
    + b"</subject></alipay></response></alipay>"
)

XXE = b"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE alipay [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alipay><is_success>T</is_success><response><alipay><subject>&xxe;</subject></alipay></response></alipay>"""

EXTERNAL_DTD = b"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE alipay SYSTEM "http://127.0.0.1:9/alipay.dtd">
<alipay><is_success>T</is_success></alipay>"""

PARAMETER_ENTITY = b"""<?xml version="1.0" encoding="GBK"?>
<!DOCTYPE alipay [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>
<alipay><is_success>T</is_success></alipay>"""


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, QUADRATIC_BLOWUP, XXE, EXTERNAL_DTD, PARAMETER_ENTITY],
    ids=["billion-laughs", "quadratic-blowup", "xxe-file", "external-dtd", "parameter-entity"],
)
def test_hostile_xml_is_refused(body):
    with pytest.raises(GatewayResponseError, match="DTD") as caught:
        parse_response(body, key=VECTOR4_KEY)

    assert isinstance(caught.value, OutcomeUnknownError)
    assert caught.value.retryable is True
    assert caught.value.raw_response == body
    assert "root:x:" not in str(caught.value)


def test_an_undeclared_entity_reference_is_not_well_formed():
    body = b"<alipay><is_success>T</is_success><error>&xxe;</error></alipay>"

    with pytest.raises(GatewayResponseError, match="not well-formed"):
        parse_response(body)


# --- empty, truncated, HTML


@pytest.mark.parametrize("body", [b"", b"   \r\n\t ", b"\xef\xbb\xbf"])
def test_empty_body(body):
    with pytest.raises(GatewayResponseError, match="empty"):
        parse_response(body)


def test_truncated_body():
    body = spot_pay_body()

    with pytest.raises(GatewayResponseError, match="truncated"):
        parse_response(body[: len(body) // 2])


def test_every_proper_prefix_of_an_envelope_is_refused():
    body = spot_pay_body()
    for end in range(len(body)):
        with pytest.raises(GatewayResponseError):
            parse_response(body[:end], key=VECTOR4_KEY)


def test_gbk_body_cut_in_the_middle_of_a_chinese_character():
    body = '<?xml version="1.0" encoding="GBK"?><alipay><is_success>T</is_success><error>交易'.encode("gbk")

    with pytest.raises(GatewayResponseError, match="truncated"):
        parse_response(body[:-1])


NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    + b"<!-- a padding comment to make the page long -->\r\n"
    * 200
)
DOCTYPE_PAGE = (
    b'<!DOCTYPE html>\n<html lang="zh"><head><meta charset="utf-8">'
    + "<title>系统繁忙</title>".encode()
    + b"</head><body>\x1b[31m</body></html>"
)
XHTML_PAGE = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<html xmlns="http://www.w3.org/1999/xhtml"><body>Service Unavailable</body></html>'
)


@pytest.mark.parametrize("body", [NGINX_502, DOCTYPE_PAGE, XHTML_PAGE], ids=["nginx-502", "doctype", "xhtml"])
def test_html_page_is_reported_as_such_with_a_short_escaped_excerpt(body):
    with pytest.raises(GatewayResponseError) as caught:
        parse_response(body)

    message = str(caught.value)
    assert message.startswith("the gateway answered with an HTML page, not XML")
    assert len(message) < 300
    assert "\x1b" not in message
    assert "\r" not in message


def test_html_excerpt_shows_the_start_of_the_page():
    with pytest.raises(GatewayResponseError, match="502 Bad Gateway"):
        parse_response(NGINX_502)
    with pytest.raises(GatewayResponseError, match=r"\\x1b"):
        parse_response(DOCTYPE_PAGE)


def test_html_root_found_only_by_the_parser_is_reported_as_html():
    body = b"<!-- upstream error --><HTML><BODY>Internal error</BODY></HTML>"

    with pytest.raises(GatewayResponseError, match="HTML page"):
        parse_response(body)


@pytest.mark.parametrize("body", [b"true", b'{"is_success": "T"}', b"ILLEGAL_SIGN"])
def test_a_body_that_is_not_xml(body):
    with pytest.raises(GatewayResponseError, match="not XML"):
        parse_response(body)


# --- charsets

FAILURE_TEXT = (
    '<?xml version="1.0" encoding="{encoding}"?><alipay><is_success>T</is_success><response><alipay>'
    "<detail_error_code>TRADE_HAS_SUCCESS</detail_error_code><detail_error_des>交易已经支付</detail_error_des>"
    "<result_code>FAIL</result_code></alipay></response></alipay>"
)


@pytest.mark.parametrize(
    ("declared", "codec"),
    [
        ("GBK", "gbk"),
        ("gbk", "gbk"),
        ("GB2312", "gb2312"),
        ("gb2312", "gb2312"),
        ("UTF-8", "utf-8"),
        ("Utf-8", "utf-8"),
    ],
)
def test_declared_charset_is_used_to_decode(declared, codec):
    body = FAILURE_TEXT.format(encoding=declared).encode(codec)

    response = parse_response(body)

    assert response.fields["detail_error_des"] == "交易已经支付"
    assert response.charset == codec


def test_utf8_declared_but_gbk_bytes_is_an_error_not_mojibake():
    body = FAILURE_TEXT.format(encoding="UTF-8").encode("gbk")

    with pytest.raises(GatewayResponseError, match="not valid utf-8"):
        parse_response(body)


def test_no_declaration_means_utf8():
    text = FAILURE_TEXT.split("?>", 1)[1]

    assert parse_response(text.encode("utf-8")).fields["detail_error_des"] == "交易已经支付"
    with pytest.raises(GatewayResponseError, match="not valid utf-8"):
        parse_response(text.encode("gbk"))


def test_gbk_declared_with_bytes_that_are_not_gbk():
    body = FAILURE_TEXT.format(encoding="GBK").encode("gbk").replace("交".encode("gbk"), b"\xff\xff")

    with pytest.raises(GatewayResponseError, match="not valid GBK"):
        parse_response(body)


@pytest.mark.parametrize("declared", ["ISO-8859-1", "UTF-16", "Big5", "GB18030", "utf8", "us-ascii"])
def test_encodings_outside_the_allow_list_are_refused(declared):
    body = FAILURE_TEXT.format(encoding=declared).encode("utf-8")

    with pytest.raises(GatewayResponseError, match="only UTF-8, GBK and GB2312"):
        parse_response(body)


def test_utf8_bom_is_stripped():
    body = b"\xef\xbb\xbf" + FAILURE_TEXT.format(encoding="utf-8").encode("utf-8")

    assert parse_response(body).fields["detail_error_des"] == "交易已经支付"


def test_utf8_bom_contradicting_a_gbk_declaration_is_refused():
    body = b"\xef\xbb\xbf" + FAILURE_TEXT.format(encoding="GBK").encode("gbk")

    with pytest.raises(GatewayResponseError, match="byte-order mark"):
        parse_response(body)


def test_declaration_with_single_quotes_and_standalone():
    body = (
        b"<?xml version='1.0' encoding='GBK' standalone='yes' ?><alipay><is_success>F</is_success></alipay>"
    )

    assert parse_response(body).is_success is False


@pytest.mark.parametrize(
    "declaration",
    [
        b'<?xml encoding="utf-8"?>',
        b'<?xml version="1.0" encoding="utf-8">',
        b'<?xml version="1.0" encoding=utf-8?>',
    ],
)
def test_malformed_declaration(declaration):
    with pytest.raises(GatewayResponseError, match="declaration"):
        parse_response(declaration + b"<alipay><is_success>T</is_success></alipay>")


# --- shape of the envelope


def test_unknown_elements_are_kept_as_fields_and_ignored_elsewhere():
    body = (
        b"<alipay><is_success>T</is_success><trace_id>abc</trace_id>"
        b'<response><alipay><result_code>SUCCESS</result_code><new_field_2030 kind="x">v</new_field_2030>'
        b"<cdata_field><![CDATA[a<b&c]]></cdata_field><!-- a comment --></alipay></response></alipay>"
    )

    response = parse_response(body)

    assert response.fields == {"result_code": "SUCCESS", "new_field_2030": "v", "cdata_field": "a<b&c"}


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (
            b"<alipay><is_success>T</is_success><response><alipay><refund_status>REFUND_SUCCESS</refund_status>"
            b"<refund_status>REFUND_FAIL</refund_status></alipay></response></alipay>",
            "refund_status",
        ),
        (b"<alipay><is_success>T</is_success><is_success>F</is_success></alipay>", "is_success"),
        (
            b"<alipay><is_success>T</is_success><response><alipay><a>1</a></alipay></response>"
            b"<sign>abc</sign><sign>def</sign><sign_type>MD5</sign_type></alipay>",
            "sign",
        ),
        (b"<alipay><is_success>F</is_success><error>A</error><error>B</error></alipay>", "error"),
        (
            b"<alipay><is_success>T</is_success><response><alipay><a>1</a></alipay></response>"
            b"<response><alipay><a>2</a></alipay></response></alipay>",
            "response",
        ),
        (
            b'<alipay><is_success>T</is_success><request><param name="out_trade_no">1</param>'
            b'<param name="out_trade_no">2</param></request></alipay>',
            "out_trade_no",
        ),
    ],
    ids=["field", "is_success", "sign", "error", "response", "request-param"],
)
def test_duplicated_elements_are_refused(body, name):
    with pytest.raises(GatewayResponseError, match=r"more than (one|once)") as caught:
        parse_response(body)

    assert name in str(caught.value)


def test_a_field_with_child_elements_is_refused():
    body = (
        b"<alipay><is_success>T</is_success><response><alipay><result_code>SUCCESS</result_code>"
        b"<extend_info><store_id>S1</store_id></extend_info></alipay></response></alipay>"
    )

    with pytest.raises(GatewayResponseError, match=r"<extend_info> .*child elements"):
        parse_response(body)


@pytest.mark.parametrize("inner", [b"", b"<alipay><a>1</a></alipay><trade><a>1</a></trade>"])
def test_response_must_hold_exactly_one_element(inner):
    body = b"<alipay><is_success>T</is_success><response>" + inner + b"</response></alipay>"

    with pytest.raises(GatewayResponseError, match="exactly one"):
        parse_response(body)


@pytest.mark.parametrize("root", [b"result", b"trade", b"xml"])
def test_root_must_be_alipay(root):
    body = b"<" + root + b"><is_success>T</is_success></" + root + b">"

    with pytest.raises(GatewayResponseError, match="not <alipay>"):
        parse_response(body)


@pytest.mark.parametrize("value", [b"Y", b"true", b"t", b"", b"TF"])
def test_is_success_must_be_t_or_f(value):
    body = b"<alipay><is_success>" + value + b"</is_success></alipay>"

    with pytest.raises(GatewayResponseError, match="is_success"):
        parse_response(body)


def test_is_success_is_required():
    with pytest.raises(GatewayResponseError, match="no <is_success>"):
        parse_response(b"<alipay><error>ILLEGAL_SIGN</error></alipay>")


def test_envelope_scalars_are_stripped_but_field_values_are_kept_exactly():
    body = (
        b"<alipay>\n  <is_success>\n    T\n  </is_success>\n"
        b"  <response><alipay><subject>  two  spaces </subject></alipay></response>\n"
        b"  <sign> abc </sign>\n  <sign_type>MD5\n</sign_type>\n</alipay>"
    )

    response = parse_response(body)

    assert response.is_success is True
    assert response.fields == {"subject": "  two  spaces "}
    assert response.sign == "abc"
    assert response.sign_type == "MD5"


# --- size cap


def test_oversized_body_is_refused_before_parsing():
    # A hostile body of 2 MB: the size is what gets reported, because the parser never sees it.
    body = BILLION_LAUGHS + b" " * (2 * 1024 * 1024)

    with pytest.raises(GatewayResponseError, match="over the 1048576-byte limit") as caught:
        parse_response(body, max_bytes=1024 * 1024)

    assert "DTD" not in str(caught.value)


def test_size_cap_boundary_and_default():
    body = capture("forex_refund_success.xml")
    padded = body + b" " * (MAX_RESPONSE_BYTES - len(body))

    assert parse_response(padded).is_success is True
    with pytest.raises(GatewayResponseError, match="limit"):
        parse_response(padded + b" ")
    with pytest.raises(GatewayResponseError, match="limit"):
        parse_response(body, max_bytes=len(body) - 1)


# --- arguments


def test_body_must_be_bytes():
    with pytest.raises(InvalidParameterError):
        parse_response("<alipay><is_success>T</is_success></alipay>")  # type: ignore[arg-type]


def test_gateway_response_is_immutable():
    response = parse_response(capture("forex_refund_success.xml"))

    with pytest.raises(dataclasses.FrozenInstanceError):
        response.is_success = False  # type: ignore[misc]


# --- render_response


def test_render_signs_vector_4_with_the_published_signature():
    body = render_response(
        is_success=True, response_element="alipay", fields=VECTOR4_FIELDS, sign_type="MD5", key=VECTOR4_KEY
    )

    root = ET.fromstring(body)
    assert root.findtext("sign") == VECTOR4_SIGN
    assert root.findtext("sign_type") == "MD5"
    assert {child.tag: child.text for child in root.find("response/alipay")} == VECTOR4_FIELDS


@pytest.mark.parametrize(
    ("charset", "declaration"),
    [
        ("GBK", b'<?xml version="1.0" encoding="GBK"?>'),
        ("gbk", b'<?xml version="1.0" encoding="GBK"?>'),
        ("utf-8", b'<?xml version="1.0" encoding="utf-8"?>'),
        ("UTF-8", b'<?xml version="1.0" encoding="utf-8"?>'),
        ("GB2312", b'<?xml version="1.0" encoding="GB2312"?>'),
    ],
)
def test_render_declares_and_uses_its_charset(charset, declaration):
    body = render_response(
        is_success=True, response_element="alipay", fields={"subject": "奶茶"}, charset=charset
    )

    assert body.startswith(declaration)
    assert "<subject>奶茶</subject>".encode(charset) in body


def test_render_orders_elements_like_the_gateway():
    body = render_response(
        is_success=False,
        error="PURCHASE_TRADE_NOT_EXIST",
        request={"service": "forex_refund"},
        response_element="alipay",
        fields={"result_code": "FAIL"},
        sign_type="MD5",
        key=VECTOR4_KEY,
    )

    root = ET.fromstring(body)
    assert [child.tag for child in root] == [
        "is_success",
        "error",
        "request",
        "response",
        "sign",
        "sign_type",
    ]
    assert root.findtext("is_success") == "F"


def test_render_escapes_values_and_leaves_out_empty_fields():
    body = render_response(
        is_success=True,
        request={'a"b': "x<y"},
        response_element="alipay",
        fields={"qr_code": "https://qr.example/?a=1&b=2", "memo": "", "note": "</alipay>"},
    )

    assert b"https://qr.example/?a=1&amp;b=2" in body
    assert b"&lt;/alipay&gt;" in body
    assert b"memo" not in body
    assert b'name="a&quot;b"' in body
    assert ET.fromstring(body).find("response/alipay/note").text == "</alipay>"


def test_render_without_response_block_is_never_signed():
    body = render_response(is_success=False, error="ILLEGAL_SIGN", sign_type="MD5", key=VECTOR4_KEY)

    assert ET.fromstring(body).find("sign") is None
    assert parse_response(body).error == "ILLEGAL_SIGN"


def test_render_bare_success_is_the_forex_refund_answer():
    body = render_response(is_success=True)

    assert [child.tag for child in ET.fromstring(body)] == ["is_success"]
    assert parse_response(body).is_success is True


def test_render_refuses_a_value_the_charset_cannot_carry():
    with pytest.raises(CharsetError):
        render_response(
            is_success=True, response_element="alipay", fields={"subject": "tea 🍵"}, charset="GBK"
        )


def test_render_refuses_an_unknown_charset():
    with pytest.raises(CharsetError):
        render_response(is_success=True, charset="latin-1")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fields": {"a": "1"}},
        {"response_element": "alipay", "fields": {"a": "1"}, "sign_type": "MD5"},
        {"response_element": "alipay", "fields": {"a": "1"}, "key": VECTOR4_KEY},
        {"response_element": "alipay", "fields": {"bad name": "1"}},
        {"response_element": "<alipay>", "fields": {"a": "1"}},
        {"response_element": "alipay", "fields": {"a": "bell \x07"}},
    ],
    ids=[
        "fields-without-element",
        "sign-type-without-key",
        "key-without-sign-type",
        "bad-name",
        "bad-element",
        "ctrl",
    ],
)
def test_render_refuses_inconsistent_or_unrenderable_input(kwargs):
    with pytest.raises(InvalidParameterError):
        render_response(is_success=True, **kwargs)
