"""Service definitions: parameters checked before sending, published golden signatures, results, files."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from django_alipay.protocol import services
from django_alipay.protocol.clock import BEIJING, FixedClock
from django_alipay.protocol.codes import ResultCode, TradeStatus
from django_alipay.protocol.errors import (
    AlipayBusinessError,
    AlipayGatewayError,
    AlipaySystemError,
    AmountError,
    CharsetError,
    GatewayResponseError,
    InvalidParameterError,
    TimeFormatError,
)
from tests.client.stub import MD5_KEY, PARTNER, Canned, md5_sign, xml_failure, xml_success

# chloerei's published MD5 vectors (key and partner of that test suite).
VECTOR_KEY = "10000000000000000000000000000000"
VECTOR_PARTNER = "1000000000000000"

# A fixed instant: 2024-05-10 09:30:00 Beijing time.
NOW = datetime(2024, 5, 10, 1, 30, tzinfo=UTC)

ONLINE = {"subject": "test", "out_trade_no": "T1", "currency": "USD", "total_fee": Decimal("1.00")}
REFUND = {
    "out_return_no": "R1",
    "out_trade_no": "T1",
    "return_amount": Decimal("1.00"),
    "currency": "USD",
    "gmt_return": NOW,
}
SPOT_PAY = {
    "partner_trans_id": "P1",
    "trans_name": "coffee",
    "currency": "USD",
    "trans_amount": Decimal("0.01"),
    "buyer_identity_code": "281234567890123456",
}
SPOT_REFUND = {
    "partner_trans_id": "P1",
    "partner_refund_id": "PR1",
    "refund_amount": Decimal("1.00"),
    "currency": "USD",
}
PRECREATE = {"out_trade_no": "Q1", "subject": "s", "total_fee": Decimal("1.00"), "currency": "SGD"}


def signed_params(received: Any) -> dict[str, str]:
    return received.params


def md5_of(params: dict[str, str], key: str, encoding: str = "utf-8") -> str:
    presign = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v and k not in ("sign", "sign_type"))
    return hashlib.md5((presign + key).encode(encoding)).hexdigest()


# --- golden wire forms ------------------------------------------------------------------------------------


def test_vector4_create_forex_trade_url(make_client):
    client = make_client(
        partner=VECTOR_PARTNER, key=VECTOR_KEY, gateway_url="https://mapi.alipay.com/gateway.do"
    )
    page = client.create_forex_trade(
        notify_url="https://example.com/notify",
        subject="test",
        out_trade_no="1",
        currency="EUR",
        total_fee=Decimal("0.01"),
        product_code=None,  # the published vector predates product_code
    )
    parts = urlsplit(page.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "mapi.alipay.com", "/gateway.do")
    query = dict(parse_qsl(parts.query))
    assert query == {
        "service": "create_forex_trade",
        "_input_charset": "utf-8",
        "partner": "1000000000000000",
        "notify_url": "https://example.com/notify",
        "subject": "test",
        "out_trade_no": "1",
        "currency": "EUR",
        "total_fee": "0.01",
        "sign_type": "MD5",
        "sign": "f24fd4d76acabf860263a40805138380",
    }
    assert "notify_url=https%3A%2F%2Fexample.com%2Fnotify" in parts.query


def test_vector6_create_forex_trade_wap_url(make_client):
    client = make_client(partner=VECTOR_PARTNER, key=VECTOR_KEY)
    page = client.create_forex_trade_wap(
        seller_id="1000000000000000",
        out_trade_no="20150401000-0001",
        subject="Order Name",
        merchant_url="http://example.com/itemback",
        total_fee=Decimal("10.00"),
        currency="USD",
        return_url="https://example.com/orders/20150401000-0001",
        notify_url="https://example.com/orders/20150401000-0001/notify",
        product_code=None,
    )
    assert dict(parse_qsl(urlsplit(page.url).query))["sign"] == "f15d9e3d885c12f1a994048342c07bef"
    assert "subject=Order+Name" in page.url


def test_vector5_forex_refund_signature_on_the_wire(stub, make_client):
    stub.answer(Canned(b"<alipay><is_success>T</is_success></alipay>"))
    client = make_client(partner=VECTOR_PARTNER, key=VECTOR_KEY)
    result = client.forex_refund(
        gmt_return=datetime(2015, 1, 1, 0, 0, tzinfo=BEIJING),
        out_return_no="1",
        out_trade_no="12345678980",
        return_amount=Decimal("0.01"),
        currency="USD",
        reason="reason",
    )
    assert result.accepted is True
    sent = stub.requests[0].params
    assert sent["gmt_return"] == "20150101000000"
    assert sent["sign"] == "c9681fff5505fe993d1b2b8141308d0d"


def test_vector7_overseas_query_signature_on_the_wire(stub, make_client):
    stub.answer(Canned(xml_success({"result_code": "SUCCESS"}, key=VECTOR_KEY)))
    make_client(partner=VECTOR_PARTNER, key=VECTOR_KEY).overseas_query(partner_trans_id="2010121000000002")
    assert stub.requests[0].params["sign"] == "2a7f598bbb13d02f7de819ae689f80ba"


def test_vector8_spot_refund_signature_on_the_wire(stub, make_client):
    stub.answer(Canned(xml_success({"result_code": "SUCCESS"}, key=VECTOR_KEY)))
    make_client(partner=VECTOR_PARTNER, key=VECTOR_KEY).spot_refund(
        partner_trans_id="2010121000000002",
        partner_refund_id="301012133000002",
        currency="USD",
        refund_amount=Decimal("0.01"),
        is_sync=True,
    )
    sent = stub.requests[0].params
    assert sent["is_sync"] == "Y"
    assert sent["sign"] == "397685a0c6b2d71d0d1f374ddba331a0"


def test_edge_vector1_empty_parameter_is_not_sent(stub, make_client):
    stub.answer(
        Canned(xml_success({"out_trade_no": "T1", "trade_status": "WAIT_BUYER_PAY"}, element="trade"))
    )
    make_client().single_trade_query(out_trade_no="T1", trade_no="")
    sent = stub.requests[0].params
    assert "trade_no" not in sent
    assert sent["sign"] == "24abffa396b6400f48346fddf4f1c9f0"


@pytest.mark.parametrize(
    ("charset", "expected"),
    [("utf-8", "9f8c719ad8ea6c4261c30dd0253e3e59"), ("gbk", "6ca8cf4fb6e5f94a34ac3f440500654d")],
)
def test_edge_vectors5_6_chinese_subject_signed_in_the_request_charset(make_client, charset, expected):
    page = make_client(charset=charset).create_forex_trade(
        out_trade_no="T1",
        subject="测试",
        currency="USD",
        total_fee=Decimal("1.00"),
        product_code="NEW_OVERSEAS_SELLER",
    )
    query = dict(parse_qsl(urlsplit(page.url).query, encoding=charset))
    assert query["subject"] == "测试"
    assert query["_input_charset"] == charset
    assert query["sign"] == expected


def test_requests_are_posted_with_the_charset_in_the_url(stub, make_client):
    stub.answer(Canned(xml_success({"out_trade_no": "T1"}, element="trade")))
    make_client().single_trade_query(out_trade_no="T1")
    received = stub.requests[0]
    assert received.method == "POST"
    assert received.path == "/gateway.do"
    assert received.query == {"_input_charset": "utf-8"}
    assert "_input_charset" not in dict(parse_qsl(received.body.decode("ascii")))
    assert received.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert received.headers["User-Agent"].startswith("django-alipay-global/")
    assert received.headers["User-Agent"].endswith("(+python-requests)")
    params = received.params
    assert params["sign"] == md5_of(params, MD5_KEY)
    assert params["sign_type"] == "MD5"
    assert params["partner"] == PARTNER


def test_get_mode_puts_everything_in_the_query(stub, make_client):
    stub.answer(Canned(xml_success({"out_trade_no": "T1"}, element="trade")))
    make_client(http_method="GET").single_trade_query(out_trade_no="T1")
    received = stub.requests[0]
    assert received.method == "GET"
    assert received.body == b""
    assert received.query["sign"] == md5_of(received.query, MD5_KEY)


def test_gbk_request_is_encoded_and_signed_in_gbk(stub, make_client):
    stub.answer(Canned(xml_success({"result_code": "SUCCESS"})))
    make_client(charset="gbk").spot_pay(**{**SPOT_PAY, "trans_name": "咖啡"})
    received = stub.requests[0]
    assert received.query == {"_input_charset": "gbk"}
    params = received.params
    assert params["trans_name"] == "咖啡"
    assert params["sign"] == md5_of(params, MD5_KEY, "gbk")


# --- values put in wire form ------------------------------------------------------------------------------


def build(service: str, clock: FixedClock | None = None, **values: Any) -> dict[str, str]:
    return services.build_request(service, values, partner=PARTNER, clock=clock or FixedClock(NOW))


def test_amounts_use_the_currency_exponent_and_never_an_exponent():
    assert build("create_forex_trade", **{**ONLINE, "total_fee": Decimal("1E+1")})["total_fee"] == "10.00"
    assert (
        build("create_forex_trade", **{**ONLINE, "currency": "JPY", "total_fee": Decimal("100")})["total_fee"]
        == "100"
    )
    assert build("create_forex_trade", **{**ONLINE, "total_fee": "12.5"})["total_fee"] == "12.50"
    rmb = build("create_forex_trade", **{**ONLINE, "total_fee": None, "rmb_fee": Decimal("3.3")})
    assert rmb["rmb_fee"] == "3.30"
    assert "total_fee" not in rmb


def test_times_go_out_in_beijing_time():
    refund = build("forex_refund", **{**REFUND, "gmt_return": datetime(2015, 1, 1, 16, 0, tzinfo=UTC)})
    assert refund["gmt_return"] == "20150102000000"
    cancel = build("alipay.acquire.cancel", out_trade_no="C1")
    assert cancel["timestamp"] == "2024-05-10 09:30:00"
    precreate = build("alipay.acquire.precreate", **PRECREATE)
    assert precreate["timestamp"] == "2024-05-10 09:30:00"
    spot = build("alipay.acquire.overseas.spot.pay", **SPOT_PAY)
    assert spot["trans_create_time"] == "20240510093000"
    trade = build("create_forex_trade", **ONLINE, order_gmt_create=NOW, order_valid_time=1800)
    assert trade["order_gmt_create"] == "2024-05-10 09:30:00"
    assert trade["order_valid_time"] == "1800"
    files = build("forex_compare_file", start_date=date(2024, 5, 1), end_date=date(2024, 5, 9))
    assert (files["start_date"], files["end_date"]) == ("20240501", "20240509")


def test_product_code_defaults_per_page_service():
    assert build("create_forex_trade", **ONLINE)["product_code"] == "NEW_OVERSEAS_SELLER"
    assert build("create_forex_trade_wap", **ONLINE)["product_code"] == "NEW_WAP_OVERSEAS_SELLER"
    assert "product_code" not in build("create_forex_trade", **ONLINE, product_code=None)


def test_spot_pay_fills_its_fixed_parameters():
    wire = build("alipay.acquire.overseas.spot.pay", **SPOT_PAY)
    assert wire["alipay_seller_id"] == PARTNER
    assert wire["biz_product"] == "OVERSEAS_MBARCODE_PAY"
    assert wire["identity_code_type"] == "barcode"
    assert list(wire)[:3] == ["service", "partner", "_input_charset"]


def test_json_parameters_are_serialised():
    info = {"business_type": "4", "goods_info": "book^2", "total_quantity": "2"}
    wire = build("create_forex_trade", **ONLINE, trade_information=info)
    assert wire["trade_information"] == '{"business_type":"4","goods_info":"book^2","total_quantity":"2"}'
    split = [{"transOut": "2088101122136241", "amount": "1.00", "currency": "USD"}]
    refund = build("forex_refund", **REFUND, split_fund_info=split)
    assert '"' not in refund["split_fund_info"]
    assert refund["split_fund_info"].startswith("[{'transOut':")


# --- parameters refused before sending --------------------------------------------------------------------

LONG_URL = "https://example.com/" + "n" * 180

REFUSALS = [
    ("create_forex_trade", {**ONLINE, "subject": None}, "subject", InvalidParameterError),
    ("create_forex_trade", {**ONLINE, "rmb_fee": Decimal("1.00")}, "rmb_fee", InvalidParameterError),
    ("create_forex_trade", {**ONLINE, "total_fee": None}, "total_fee", InvalidParameterError),
    ("create_forex_trade", {**ONLINE, "total_fee": 1.0}, "total_fee", AmountError),
    ("create_forex_trade", {**ONLINE, "total_fee": Decimal("0.001")}, "total_fee", AmountError),
    ("create_forex_trade", {**ONLINE, "total_fee": Decimal("0")}, "total_fee", AmountError),
    ("create_forex_trade", {**ONLINE, "total_fee": Decimal("1000000.01")}, "total_fee", AmountError),
    ("create_forex_trade", {**ONLINE, "total_fee": "1e3"}, "total_fee", AmountError),
    (
        "create_forex_trade",
        {**ONLINE, "currency": "JPY", "total_fee": Decimal("100.5")},
        "total_fee",
        AmountError,
    ),
    ("create_forex_trade", {**ONLINE, "currency": "usd"}, "currency", InvalidParameterError),
    ("create_forex_trade", {**ONLINE, "timeout_rule": "3d"}, "timeout_rule", InvalidParameterError),
    ("create_forex_trade", {**ONLINE, "order_gmt_create": NOW}, "order_valid_time", InvalidParameterError),
    (
        "create_forex_trade",
        {**ONLINE, "order_gmt_create": datetime(2024, 1, 1), "order_valid_time": 60},
        "order_gmt_create",
        TimeFormatError,
    ),
    (
        "create_forex_trade",
        {**ONLINE, "order_valid_time": 60, "order_gmt_create": NOW, "x": 1},
        "x",
        InvalidParameterError,
    ),
    ("create_forex_trade", {**ONLINE, "subject": 'say "hi"'}, "subject", InvalidParameterError),
    ("create_forex_trade", {**ONLINE, "subject": "a\nb"}, "subject", InvalidParameterError),
    ("create_forex_trade", {**ONLINE, "subject": "s" * 257}, "subject", InvalidParameterError),
    (
        "create_forex_trade",
        {**ONLINE, "notify_url": "https://shop.example/n?id=1"},
        "notify_url",
        InvalidParameterError,
    ),
    (
        "create_forex_trade",
        {**ONLINE, "notify_url": "ftp://shop.example/n"},
        "notify_url",
        InvalidParameterError,
    ),
    (
        "create_forex_trade",
        {**ONLINE, "return_url": LONG_URL + "x" * 30},
        "return_url",
        InvalidParameterError,
    ),
    ("create_forex_trade", {**ONLINE, "partner": "2088"}, "partner", InvalidParameterError),
    ("create_forex_trade", {**ONLINE, "sign": "x"}, "sign", InvalidParameterError),
    (
        "create_forex_trade",
        {**ONLINE, "product_code": "NEW_WAP_OVERSEAS_SELLER"},
        "product_code",
        InvalidParameterError,
    ),
    (
        "create_forex_trade",
        {**ONLINE, "trade_information": {"hotel_name": "x"}},
        "trade_information",
        InvalidParameterError,
    ),
    ("create_forex_trade", {**ONLINE, "out_trade_no": "１２３"}, "out_trade_no", InvalidParameterError),
    ("create_forex_trade_wap", {**ONLINE, "timeout_rule": "30d"}, "timeout_rule", InvalidParameterError),
    ("create_forex_trade_wap", {**ONLINE, "app_pay": "N"}, "app_pay", InvalidParameterError),
    ("single_trade_query", {}, "trade_no", InvalidParameterError),
    ("single_trade_query", {"trade_no": "123"}, "trade_no", InvalidParameterError),
    ("single_trade_query", {"out_trade_no": "o" * 65}, "out_trade_no", InvalidParameterError),
    (
        "forex_refund",
        {**REFUND, "return_rmb_amount": Decimal("1.00")},
        "return_rmb_amount",
        InvalidParameterError,
    ),
    ("forex_refund", {**REFUND, "return_amount": None}, "return_amount", InvalidParameterError),
    ("forex_refund", {**REFUND, "currency": "CNY"}, "currency", InvalidParameterError),
    ("forex_refund", {**REFUND, "gmt_return": datetime(2024, 1, 1)}, "gmt_return", TimeFormatError),
    ("forex_refund", {**REFUND, "gmt_return": "2024-01-01"}, "gmt_return", TimeFormatError),
    ("forex_refund", {**REFUND, "reason": "r" * 101}, "reason", InvalidParameterError),
    ("forex_refund", {**REFUND, "is_sync": "yes"}, "is_sync", InvalidParameterError),
    ("forex_refund", {**REFUND, "out_return_no": None}, "out_return_no", InvalidParameterError),
    ("forex_refund", {**REFUND, "return_amount": Decimal("-1.00")}, "return_amount", AmountError),
    ("notify_verify", {"notify_id": "n" * 129}, "notify_id", InvalidParameterError),
    ("notify_verify", {"notify_id": ""}, "notify_id", InvalidParameterError),
    (
        "alipay.acquire.overseas.spot.pay",
        {**SPOT_PAY, "buyer_identity_code": "12345"},
        "buyer_identity_code",
        InvalidParameterError,
    ),
    ("alipay.acquire.overseas.spot.pay", {**SPOT_PAY, "currency": "XYZ"}, "currency", InvalidParameterError),
    (
        "alipay.acquire.overseas.spot.pay",
        {**SPOT_PAY, "trans_amount": None},
        "trans_amount",
        InvalidParameterError,
    ),
    (
        "alipay.acquire.overseas.spot.pay",
        {**SPOT_PAY, "currency": "KRW", "trans_amount": Decimal("1.5")},
        "trans_amount",
        AmountError,
    ),
    ("alipay.acquire.overseas.spot.pay", {**SPOT_PAY, "trans_name": "😀"}, "trans_name", None),
    ("alipay.acquire.overseas.spot.pay", {**SPOT_PAY, "quantity": 0}, "quantity", InvalidParameterError),
    ("alipay.acquire.precreate", {**PRECREATE, "subject": None}, "subject", InvalidParameterError),
    ("alipay.acquire.precreate", {**PRECREATE, "it_b_pay": "forever"}, "it_b_pay", InvalidParameterError),
    (
        "alipay.acquire.precreate",
        {**PRECREATE, "notify_url": LONG_URL[:191]},
        "notify_url",
        InvalidParameterError,
    ),
    (
        "alipay.acquire.precreate",
        {**PRECREATE, "extend_params": "{not json"},
        "extend_params",
        InvalidParameterError,
    ),
    ("alipay.acquire.overseas.query", {}, "partner_trans_id", InvalidParameterError),
    (
        "alipay.acquire.overseas.spot.refund",
        {**SPOT_REFUND, "partner_refund_id": "P1"},
        "partner_refund_id",
        InvalidParameterError,
    ),
    (
        "alipay.acquire.overseas.spot.refund",
        {**SPOT_REFUND, "refund_reason": "r" * 129},
        "refund_reason",
        InvalidParameterError,
    ),
    (
        "alipay.acquire.overseas.spot.refund",
        {**SPOT_REFUND, "refund_amount": Decimal("100000000.01")},
        "refund_amount",
        AmountError,
    ),
    ("alipay.acquire.overseas.spot.reverse", {}, "partner_trans_id", InvalidParameterError),
    ("alipay.acquire.cancel", {}, "out_trade_no", InvalidParameterError),
    (
        "alipay.acquire.cancel",
        {"out_trade_no": "C1", "terminal_timestamp": "abc"},
        "terminal_timestamp",
        TimeFormatError,
    ),
    (
        "forex_compare_file",
        {"start_date": date(2024, 5, 5), "end_date": date(2024, 5, 1)},
        "end_date",
        InvalidParameterError,
    ),
    (
        "forex_compare_file",
        {"start_date": date(2024, 4, 1), "end_date": date(2024, 4, 12)},
        "end_date",
        InvalidParameterError,
    ),
    (
        "forex_compare_file",
        {"start_date": date(2024, 5, 5), "end_date": date(2024, 5, 10)},
        "end_date",
        InvalidParameterError,
    ),
    (
        "forex_compare_file",
        {"start_date": "2024-05-01", "end_date": date(2024, 5, 2)},
        "start_date",
        TimeFormatError,
    ),
    ("forex_liquidation_file", {"start_date": date(2024, 5, 1)}, "end_date", InvalidParameterError),
]


@pytest.mark.parametrize(("service", "values", "parameter", "error_type"), REFUSALS)
def test_bad_parameters_are_refused_naming_the_parameter(service, values, parameter, error_type):
    charset = "gbk" if error_type is None else "utf-8"
    with pytest.raises(error_type or CharsetError) as caught:
        services.build_request(service, values, partner=PARTNER, charset=charset, clock=FixedClock(NOW))
    assert caught.value.parameter == parameter
    assert parameter in str(caught.value)


def test_every_service_has_refusal_cases():
    covered = {case[0] for case in REFUSALS}
    assert covered == set(services.SERVICES) - {"forex_rate_file"}


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("create_forex_trade", {**ONLINE, "subject": None}),
        ("single_trade_query", {}),
        ("forex_refund", {**REFUND, "currency": "CNY"}),
        ("spot_pay", {**SPOT_PAY, "buyer_identity_code": "1"}),
        ("precreate", {**PRECREATE, "subject": None}),
        ("overseas_query", {}),
        ("spot_refund", {**SPOT_REFUND, "partner_refund_id": "P1"}),
        ("spot_reverse", {"partner_trans_id": "P" * 65}),
        ("cancel", {"out_trade_no": "C" * 65}),
        ("forex_compare_file", {"start_date": date(2024, 5, 5), "end_date": date(2024, 5, 1)}),
        ("forex_liquidation_file", {"start_date": date(2024, 5, 5), "end_date": date(2024, 5, 1)}),
    ],
)
def test_client_refuses_before_sending(stub, make_client, method, kwargs):
    stub.answer(Canned(xml_success({"result_code": "SUCCESS"})))
    with pytest.raises(InvalidParameterError):
        getattr(make_client(clock=FixedClock(NOW)), method)(**kwargs)
    assert stub.requests == []


def test_notify_verify_refuses_a_bad_notify_id_before_sending(stub, make_client):
    with pytest.raises(InvalidParameterError) as caught:
        make_client().notify_verify("x" * 129)
    assert caught.value.parameter == "notify_id"
    assert stub.requests == []


# --- typed results ----------------------------------------------------------------------------------------


def test_spot_pay_result_is_typed(stub, make_client):
    fields = {
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
    body = xml_success(fields)
    stub.answer(Canned(body))
    result = make_client().spot_pay(**SPOT_PAY)
    assert result.result_code is ResultCode.SUCCESS
    assert result.trans_amount == Decimal("0.01")
    assert isinstance(result["trans_amount"], Decimal)
    assert result.trans_amount_cny == Decimal("0.07")
    assert result.exchange_rate == Decimal("6.64640000")
    assert result.alipay_pay_time == datetime(2019, 11, 20, 15, 15, 20, tzinfo=BEIJING)
    assert result.alipay_pay_time.utcoffset() == timedelta(hours=8)
    assert result.fields == fields
    assert result.raw == body
    assert result.sign_verified is True
    assert result.payment_inst is None
    assert result.unparsed == frozenset()
    with pytest.raises(AttributeError):
        _ = result.no_such_field
    with pytest.raises(KeyError):
        _ = result["payment_inst"]


def test_query_result_keeps_unknown_status_as_text(stub, make_client):
    fields = {
        "result_code": "SUCCESS",
        "alipay_trans_status": "TRADE_SOMETHING_NEW",
        "alipay_pay_time": "garbage",
    }
    stub.answer(Canned(xml_success(fields)))
    result = make_client().overseas_query(partner_trans_id="P1")
    assert result.alipay_trans_status == "TRADE_SOMETHING_NEW"
    assert not isinstance(result.alipay_trans_status, TradeStatus)
    assert result.unparsed == {"alipay_trans_status", "alipay_pay_time"}


def test_single_trade_query_result_is_typed(stub, make_client):
    fields = {
        "out_trade_no": "T1",
        "trade_no": "2018110922001332950500389138",
        "trade_status": "TRADE_CLOSED",
        "additional_trade_status": "DAEMON_CONFIRM_CLOSE",
        "gmt_create": "2018-11-09 15:31:45",
        "gmt_close": "2018-11-10 03:31:45",
        "total_fee": "0.10",
        "payment_type": "100",
        "subject": "a & b",
    }
    stub.answer(Canned(xml_success(fields, element="trade")))
    result = make_client().single_trade_query(out_trade_no="T1")
    assert result.trade_status is TradeStatus.TRADE_CLOSED
    assert result.additional_trade_status == "DAEMON_CONFIRM_CLOSE"
    assert result.gmt_close == datetime(2018, 11, 10, 3, 31, 45, tzinfo=BEIJING)
    assert result.total_fee == Decimal("0.10")
    assert result.payment_type == "100"
    assert result.subject == "a & b"
    assert result.gmt_payment is None


def test_precreate_and_cancel_results(stub, make_client):
    qr = "https://qr.alipay.com/bax08616tgysbwsaty4o009b"
    stub.answer(Canned(xml_success({"result_code": "SUCCESS", "out_trade_no": "Q1", "qr_code": qr})))
    assert make_client().precreate(**PRECREATE).qr_code == qr
    stub.answer(Canned(xml_success({"out_trade_no": "C1", "result_code": "SUCCESS", "retry_flag": "N"})))
    cancel = make_client().cancel(out_trade_no="C1")
    assert cancel.retry_flag == "N"
    assert cancel.action is None


def test_refund_and_reverse_results(stub, make_client):
    fields = {
        "result_code": "SUCCESS",
        "refund_amount": "1.00",
        "currency": "USD",
        "refund_amount_cny": "6.65",
    }
    stub.answer(Canned(xml_success(fields)))
    assert make_client().spot_refund(**SPOT_REFUND).refund_amount == Decimal("1.00")
    stub.answer(Canned(xml_success({"result_code": "SUCCESS", "alipay_reverse_time": "20240510093000"})))
    reverse = make_client().spot_reverse(partner_trans_id="P1")
    assert reverse.alipay_reverse_time == datetime(2024, 5, 10, 9, 30, tzinfo=BEIJING)


# --- files ------------------------------------------------------------------------------------------------


def test_rate_file_is_parsed(stub, make_client):
    text = b"20131122|112537|USD|6.5487\n20121224|174359|JPY|0.05638\n"
    stub.answer(Canned(text, headers={"Content-Type": "text/plain"}))
    result = make_client().forex_rate_file()
    assert [(r.currency, r.rate) for r in result] == [("USD", Decimal("6.5487")), ("JPY", Decimal("0.05638"))]
    assert result.records[0].valid_from == datetime(2013, 11, 22, 11, 25, 37, tzinfo=BEIJING)
    assert stub.requests[0].params["service"] == "forex_rate_file"


def test_compare_file_is_parsed(stub, make_client):
    text = (
        "20131219-144657-234|0.11|EUR|20131219215228||P|0.00|P|Test\n"
        "1326557|2125.25|HKD|20131219175840|20131221000000|P|21.25|P|格雷时光 (Testing)\n"
    ).encode("gbk")
    stub.answer(Canned(text, headers={"Content-Type": "text/plain; charset=GBK"}))
    result = make_client(clock=FixedClock(NOW)).forex_compare_file(
        start_date=date(2013, 12, 19), end_date=date(2013, 12, 21)
    )
    first, second = result.records
    assert first.partner_transaction_id == "20131219-144657-234"
    assert first.amount == Decimal("0.11")
    assert first.transaction_time == datetime(2013, 12, 19, 21, 52, 28, tzinfo=BEIJING)
    assert first.settlement_time is None
    assert second.service_charge == Decimal("21.25")
    assert second.remarks == "格雷时光 (Testing)"
    sent = stub.requests[0].params
    assert (sent["start_date"], sent["end_date"]) == ("20131219", "20131221")


def test_liquidation_file_is_parsed(stub, make_client):
    text = b"1326244|0.01|HKD|20131219161126|20131223000000|P|0.00|P|\n"
    stub.answer(Canned(text, headers={"Content-Type": "text/plain"}))
    result = make_client(clock=FixedClock(NOW)).forex_liquidation_file(
        start_date=date(2013, 12, 19), end_date=date(2013, 12, 20)
    )
    assert result.records[0].payment_time == datetime(2013, 12, 19, 16, 11, 26, tzinfo=BEIJING)
    assert result.records[0].remarks == ""


@pytest.mark.parametrize(
    "text",
    ["No balance account data in the period", "File download failed:No balance amount data in the period"],
)
def test_empty_period_is_an_empty_file(stub, make_client, text):
    stub.answer(Canned(text.encode(), headers={"Content-Type": "text/plain"}))
    result = make_client(clock=FixedClock(NOW)).forex_compare_file(
        start_date=date(2024, 5, 1), end_date=date(2024, 5, 2)
    )
    assert result.no_data is True
    assert len(result) == 0


@pytest.mark.parametrize(
    ("text", "error_type"),
    [
        ("File download failed:Over 10 days to Date period", AlipayBusinessError),
        ("File download failed:Finish date ahead of begin date", AlipayBusinessError),
        ("File download failed:Illegal Date period!", AlipayBusinessError),
        ("File download failed:Finish date not ahead of today", AlipayBusinessError),
        ("Date format incorrect YYYYMMDD", AlipayBusinessError),
        ("Over limit balance amount record", AlipayBusinessError),
        ("System exception", AlipaySystemError),
        ("Internet connected exception ,please try later", AlipaySystemError),
        ("<html><body>Error</body></html>", GatewayResponseError),
        ("something unexpected", GatewayResponseError),
    ],
)
def test_file_text_errors_are_typed(stub, make_client, text, error_type):
    stub.answer(Canned(text.encode(), headers={"Content-Type": "text/plain"}))
    with pytest.raises(error_type) as caught:
        make_client(clock=FixedClock(NOW), retries=0).forex_compare_file(
            start_date=date(2024, 5, 1), end_date=date(2024, 5, 2)
        )
    assert caught.value.service == "forex_compare_file"


def test_file_xml_refusal_is_a_gateway_error(stub, make_client):
    stub.answer(Canned(xml_failure("ILLEGAL_PARTNER")))
    with pytest.raises(AlipayGatewayError) as caught:
        make_client().forex_rate_file()
    assert caught.value.code == "ILLEGAL_PARTNER"


def test_file_system_exception_is_retried(stub, make_client, sleeps):
    stub.answer(Canned(b"System exception"), Canned(b"20131122|112537|USD|6.5487\n"))
    assert len(make_client(retries=1).forex_rate_file()) == 1
    assert len(stub.requests) == 2


# --- the page form ----------------------------------------------------------------------------------------


def test_form_html_escapes_values_and_auto_submits(make_client):
    page = make_client().create_forex_trade(**{**ONLINE, "subject": "<script>alert('x')</script> & co"})
    form = page.form_html(nonce="abc123")
    assert "<script>alert" not in form
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in form
    assert 'method="post"' in form
    assert "?_input_charset=utf-8" in form
    assert 'name="_input_charset"' not in form
    assert f'name="sign" value="{page.params["sign"]}"' in form
    assert '<script nonce="abc123">' in form
    assert "<script" not in page.form_html(auto_submit=False)


def test_md5_helper_matches_the_library_on_vector4():
    fields = {
        "service": "create_forex_trade",
        "_input_charset": "utf-8",
        "partner": "1000000000000000",
        "notify_url": "https://example.com/notify",
        "subject": "test",
        "out_trade_no": "1",
        "currency": "EUR",
        "total_fee": "0.01",
    }
    assert md5_sign(fields, VECTOR_KEY) == "f24fd4d76acabf860263a40805138380"


def test_production_urls_put_intlmapi_first_for_online_services():
    from django_alipay.protocol.client import INTL_URL, PRODUCTION_URLS, SANDBOX_URL, GatewayClient

    assert PRODUCTION_URLS == (
        "https://globalmapi.alipay.com/gateway.do",
        "https://intlmapi.alipay.com/gateway.do",
    )
    assert SANDBOX_URL == "https://mapi.alipaydev.com/gateway.do"
    client = GatewayClient(partner=PARTNER, sign_type="MD5", key=MD5_KEY, gateway_url=PRODUCTION_URLS)
    assert client.create_forex_trade(**ONLINE).url.startswith(INTL_URL + "?")
    assert client.gateway_urls == PRODUCTION_URLS


def test_generic_call_by_wire_name(stub, make_client):
    stub.answer(Canned(xml_success({"result_code": "SUCCESS", "partner_trans_id": "P1"})))
    result = make_client().call("alipay.acquire.overseas.query", partner_trans_id="P1")
    assert result.partner_trans_id == "P1"
    assert stub.requests[0].params["service"] == "alipay.acquire.overseas.query"
