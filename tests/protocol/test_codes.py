"""The catalogs hold every code, status and payment type of the reference material, with its description."""

import dataclasses
import enum

import pytest

from django_alipay.protocol.codes import (
    ERROR_CODES,
    AdditionalTradeStatus,
    ErrorCode,
    PaymentType,
    ProductCode,
    RefundStatus,
    ResultCode,
    Service,
    SignType,
    TradeStatus,
    can_transition,
    lookup_error,
    parse_trade_status,
)
from django_alipay.protocol.errors import InvalidParameterError

# Copied from the seed reference text: (code, description) as printed there. The seed files these under
# "Business Logic Errors", but only TRADE_NOT_EXIST is a business refusal; the rest are API gateway checks.
SEED_BUSINESS_ERRORS = [
    ("TRADE_NOT_EXIST", "Trade not exist. out_trade_no or Alipay trade_no is incorrect"),
]
SEED_GATEWAY_ERRORS = [
    ("ILLEGAL_SIGN", "Illegal signature."),
    ("ILLEGAL_DYN_MD5_KEY", "Dynamic key information is incorrect."),
    ("ILLEGAL_ENCRYPT", "Encryption is incorrect."),
    ("ILLEGAL_ARGUMENT", "Parameter is incorrect."),
    ("ILLEGAL_SERVICE", "Service parameter is incorrect."),
    ("ILLEGAL_USER", "User ID is incorrect."),
    ("ILLEGAL_PARTNER", "Partner ID is incorrect."),
    ("ILLEGAL_EXTERFACE", "Interface configuration is incorrect."),
    ("ILLEGAL_PARTNER_EXTERFACE", "Partner’s interface information is incorrect."),
    ("ILLEGAL_SECURITY_PROFILE", "Matching private key configuration has not been found."),
    ("ILLEGAL_AGENT", "Agency ID is incorrect."),
    ("ILLEGAL_SIGN_TYPE", "The signature type is incorrect."),
    ("ILLEGAL_CHARSET", "The character set is illegal."),
    ("ILLEGAL_CLIENT_IP", "Client IP address is illegal"),
    ("HAS_NO_PRIVILEGE", "Has no right to visit."),
    ("ILLEGAL_DIGEST_TYPE", "Digest type is illegal"),
    ("ILLEGAL_DIGEST", "Digest is illegal"),
    ("ILLEGAL_FILE_FORMAT", "File format is illegal"),
    ("ILLEGAL_ENCODING", "Encoding type is illegal"),
    ("ILLEGAL_REQUEST_REFERER", "Anti-phishing checks illegal request"),
    ("ILLEGAL_ANTI_PHISHING_KEY", "Anti-phishing checks illegal timeframe"),
    ("ANTI_PHISHING_KEY_TIMEOUT", "Anti-phishing checks timeframe timeout"),
    ("ILLEGAL_EXTER_INVOKE_IP", "IP Anti-phishing checks illegal IP"),
]
SEED_SYSTEM_ERRORS = [
    ("SYSTEM_ERROR", "Alipay system failed to process the request due to temporary internal glitch."),
    ("SESSION_TIMEOUT", "Session timeout"),
    ("ILLEGAL_TARGET_SERVICE", "Wrong target service"),
    ("ILLEGAL_ACCESS_SWITCH_SYSTEM", "Merchant is not allowed to visit system of this type."),
]
# Listed in both seed tables, with two wordings.
EXTERFACE_IS_CLOSED_WORDINGS = ["API is closed", "The interface has been closed."]

# Service errors named in Alipay's documentation of the services, with the category each belongs to.
SPEC_ERRORS = {
    "TRADE_NOT_EXIST": "business",
    "PURCHASE_TRADE_NOT_EXIST": "business",
    "REPEATED_REFUNDMENT_REQUEST": "business",
    "RETURN_AMOUNT_EXCEED": "business",
    "CURRENCY_NOT_SAME": "business",
    "REFUNDMENT_VALID_DATE_EXCEED": "business",
    "SYSTEM_EXCEPTION": "system",
    "INVALID_PARAMETER": "gateway",
    "ILLEGAL_CURRENCY": "gateway",
    "ILLEGAL_TIMEOUT_RULE": "gateway",
    "TRADE_BUYER_NOT_MATCH": "business",
    "TRADE_HAS_CLOSE": "business",
    "TRADE_HAS_SUCCESS": "business",
    "TRANS_NOT_FOUND": "business",
    "REFUND_AMT_RESTRICTION": "business",
    "REQUEST_AMOUNT_EXCEED": "business",
    "TRADE_STATUS_ERROR": "business",
    "EXIST_FORBIDDEN_WORD": "business",
    "REASON_TRADE_BEEN_FREEZEN": "business",
    "SELLER_NOT_EXIST": "business",
    "BUYER_NOT_EXIST": "business",
    "BUYER_ENABLE_STATUS_FORBID": "business",
    "BUYER_SELLER_EQUAL": "business",
    "CLIENT_VERSION_NOT_MATCH": "business",
    "SOUNDWAVE_PARSER_FAIL": "business",
    "HASH_NO_PRIVILEGE": "gateway",
}

SEED_PAYMENT_TYPES = [
    ("01", "Coupon Fee Pre-payment"),
    ("02", "Coupon Fee Payment"),
    ("03", "Reminding Payment"),
    ("04", "Automatic Sending Goods"),
    ("1", "Merchandise"),
    ("2", "Service Purchase"),
    ("3", "Online Auction"),
    ("4", "Donation"),
    ("5", "Post Fee Compensation"),
    ("6", "Bonus"),
    ("7", "Funds Purchase"),
    ("8", "Air Ticket"),
    ("9", "Go Dutch"),
    ("10", "Group Purchase"),
    ("11", "Electronic Ticket"),
    ("12", "Lottery Ticket"),
    ("13", "Auction"),
    ("14", "Mobile Payment"),
    ("15", "Flowers & Gifts"),
    ("16", "Agent Electronic Ticket"),
    ("17", "Party Membership Dues"),
    ("18", "Foreign Exchange"),
    ("19", "Automatic Charge"),
    ("20", "Refund of Overseas Payment"),
    ("21", "Refund of Instant Payment"),
    ("22", "Business Deposit"),
    ("24", "Cash Gift"),
    ("25", "Rent"),
    ("26", "Motopay"),
    ("23", "Shopping Chart"),
    ("27", "Escrow Payment of Group Purchase"),
]

SEED_TRADE_STATUSES = [
    ("WAIT_BUYER_PAY", "Transaction awaits user payment."),
    ("WAIT_SELLER_SEND_GOODS", "Transaction awaits seller sending goods."),
    ("WAIT_BUYER_CONFIRM_GOODS", "Transaction awaits buyer confirming goods."),
    ("TRADE_FINISHED", "Transaction is finished successfully."),
    ("TRADE_CLOSED", "Transaction is closed during processing (finished, not successfully)"),
    ("WAIT_SYS_CONFIRM_PAY", "Transaction awaits system conforming payment, please do not send goods."),
    ("WAIT_SYS_PAY_SELLER", "Buyer confirm goods, transaction awaits system paying to seller."),
    ("TRADE_REFUSE", "Transaction refused."),
    ("TRADE_REFUSE_DEALING", "Transaction refusing."),
    ("TRADE_CANCEL", "Transaction canceled."),
    ("TRADE_PENDING", "Pending Transaction."),
    ("TRADE_SUCCESS", "Transaction complete, and available for refund"),
    ("BUYER_PRE_AUTH", "Buyer has paid. (IVR Payment)"),
    ("COD_WAIT_SELLER_SEND_GOODS", "Transaction awaits seller sending goods. (COD)"),
    ("COD_WAIT_BUYER_PAY", "Transaction awaits user payment. (COD)"),
    ("COD_WAIT_SYS_PAY_SELLER", "Buyer confirm goods, transaction awaits system paying to seller. (COD)"),
]

SEED_ADDITIONAL_STATUSES = [
    ("ZHIFUBAO_CONFIRM", "Custom Service confirms goods for buyer."),
    ("ZHIFUBAO_CANCEL_FP", "Custom Service cancels instant payment for buyer."),
    ("DAEMON_CONFIRM_CANCEL_PRE_AUTH", "Expiration Program cancels pre authorization."),
    ("DAEMON_CONFIRM_CLOSE", "Expiration Program cancels transaction as buyer did not pay."),
]

SEED_CATEGORIES = (
    [(c, d, "business") for c, d in SEED_BUSINESS_ERRORS]
    + [(c, d, "gateway") for c, d in SEED_GATEWAY_ERRORS]
    + [(c, d, "system") for c, d in SEED_SYSTEM_ERRORS]
)


# --- error codes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "description", "category"), SEED_CATEGORIES)
def test_every_seed_error_code_is_catalogued_with_its_seed_description_and_category(
    code, description, category
):
    entry = ERROR_CODES[code]
    assert entry.code == code
    assert entry.description == description
    assert entry.category == category


def test_exterface_is_closed_has_one_gateway_entry_keeping_both_seed_wordings():
    entry = ERROR_CODES["EXTERFACE_IS_CLOSED"]
    assert entry.category == "gateway"
    assert entry.retryable is False
    for wording in EXTERFACE_IS_CLOSED_WORDINGS:
        assert wording in entry.description


@pytest.mark.parametrize(("code", "category"), sorted(SPEC_ERRORS.items()))
def test_every_service_error_of_the_spec_is_catalogued(code, category):
    entry = ERROR_CODES[code]
    assert entry.code == code
    assert entry.category == category
    assert entry.description.strip()


def test_the_catalog_holds_exactly_the_seed_and_spec_codes():
    expected = {c for c, _, _ in SEED_CATEGORIES} | {"EXTERFACE_IS_CLOSED"} | set(SPEC_ERRORS)
    assert set(ERROR_CODES) == expected
    # 28 seed rows + EXTERFACE_IS_CLOSED (twice in the seed) + 25 spec codes (TRADE_NOT_EXIST is in both)
    assert len(ERROR_CODES) == 54


def test_the_misspelt_privilege_code_means_the_same_as_the_real_one():
    real, misspelt = ERROR_CODES["HAS_NO_PRIVILEGE"], ERROR_CODES["HASH_NO_PRIVILEGE"]
    assert misspelt.code == "HASH_NO_PRIVILEGE"
    assert (misspelt.description, misspelt.category, misspelt.retryable) == (
        real.description,
        real.category,
        real.retryable,
    )


@pytest.mark.parametrize("code", ["SYSTEM_ERROR", "SESSION_TIMEOUT", "SYSTEM_EXCEPTION"])
def test_temporary_system_failures_are_retryable(code):
    assert ERROR_CODES[code].retryable is True


def test_nothing_else_is_retryable():
    retryable = {code for code, entry in ERROR_CODES.items() if entry.retryable}
    assert retryable == {"SYSTEM_ERROR", "SESSION_TIMEOUT", "SYSTEM_EXCEPTION"}
    assert ERROR_CODES["ILLEGAL_SIGN"].retryable is False


def test_the_catalog_is_read_only():
    with pytest.raises(TypeError):
        ERROR_CODES["NEW_CODE"] = ErrorCode("NEW_CODE", "x", "business", False)  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ERROR_CODES["ILLEGAL_SIGN"].retryable = True  # type: ignore[misc]


def test_lookup_returns_the_catalog_entry():
    assert lookup_error("ILLEGAL_SIGN") is ERROR_CODES["ILLEGAL_SIGN"]
    assert lookup_error("  TRADE_NOT_EXIST\n") is ERROR_CODES["TRADE_NOT_EXIST"]


def test_an_unknown_code_is_represented_not_a_key_error():
    entry = lookup_error("XYZ_NEW_CODE")
    assert entry.code == "XYZ_NEW_CODE"
    assert entry.category == "unknown"
    assert entry.retryable is False
    assert entry.is_known is False
    assert "XYZ_NEW_CODE" in entry.description
    assert entry.description.startswith("Unknown Alipay error code")


def test_case_is_not_folded_in_lookup():
    assert lookup_error("illegal_sign").category == "unknown"


@pytest.mark.parametrize("code", [None, "", "   "])
def test_a_missing_code_is_represented(code):
    entry = lookup_error(code)
    assert entry.category == "unknown"
    assert entry.retryable is False


def test_an_unknown_hostile_code_is_escaped_and_cut_in_the_description():
    entry = lookup_error("BAD\x00\u202e" + "A" * 500)
    assert "\x00" not in entry.description
    assert "\u202e" not in entry.description
    assert len(entry.description) < 120


# --- enums ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls",
    [
        TradeStatus,
        AdditionalTradeStatus,
        PaymentType,
        RefundStatus,
        ResultCode,
        SignType,
        Service,
        ProductCode,
    ],
)
def test_every_catalog_enum_is_a_str_enum_whose_members_equal_their_wire_value(cls):
    assert issubclass(cls, str)
    assert issubclass(cls, enum.Enum)
    for member in cls:
        assert member == member.value
        assert str(member) == member.value
        assert f"{member}" == member.value
        assert member.description
        assert member.label == member.description
    assert cls.choices() == [(m.value, m.description) for m in cls]


@pytest.mark.parametrize(("value", "description"), SEED_PAYMENT_TYPES)
def test_every_seed_payment_type_with_its_description(value, description):
    assert PaymentType(value).description == description


def test_there_are_31_payment_types_and_01_is_not_1():
    assert len(PaymentType) == 31
    assert {m.value for m in PaymentType} == {v for v, _ in SEED_PAYMENT_TYPES}
    assert PaymentType("01") is not PaymentType("1")
    assert PaymentType("1") is PaymentType.MERCHANDISE
    assert PaymentType("01") is PaymentType.COUPON_FEE_PREPAYMENT
    assert PaymentType("23").description == "Shopping Chart"


def test_payment_types_are_in_numeric_order_whatever_the_seed_order():
    values = [m.value for m in PaymentType]
    assert values[:4] == ["01", "02", "03", "04"]
    assert values[4:] == [str(n) for n in range(1, 28)]


@pytest.mark.parametrize(("value", "description"), SEED_TRADE_STATUSES)
def test_every_seed_trade_status_with_its_description(value, description):
    assert TradeStatus(value).description == description
    assert TradeStatus(value).name == value


def test_there_are_16_trade_statuses():
    assert len(TradeStatus) == 16
    assert {m.value for m in TradeStatus} == {v for v, _ in SEED_TRADE_STATUSES}


@pytest.mark.parametrize(("value", "description"), SEED_ADDITIONAL_STATUSES)
def test_every_seed_additional_trade_status_with_its_description(value, description):
    assert AdditionalTradeStatus(value).description == description


def test_there_are_4_additional_trade_statuses():
    assert len(AdditionalTradeStatus) == 4


def test_small_enums_hold_the_wire_values_of_the_spec():
    assert {m.value for m in RefundStatus} == {"REFUND_SUCCESS", "REFUND_FAIL"}
    assert {m.value for m in ResultCode} == {"SUCCESS", "FAIL", "FAILED", "UNKNOW", "UNKNOWN"}
    assert {m.value for m in SignType} == {"MD5", "RSA", "RSA2", "DSA"}
    assert {m.value for m in ProductCode} == {
        "NEW_OVERSEAS_SELLER",
        "NEW_WAP_OVERSEAS_SELLER",
        "OVERSEAS_MBARCODE_PAY",
    }


def test_every_mapi_service_name():
    assert {m.value for m in Service} == {
        "create_forex_trade",
        "create_forex_trade_wap",
        "single_trade_query",
        "forex_refund",
        "notify_verify",
        "alipay.acquire.overseas.spot.pay",
        "alipay.acquire.precreate",
        "alipay.acquire.overseas.query",
        "alipay.acquire.overseas.spot.refund",
        "alipay.acquire.overseas.spot.reverse",
        "alipay.acquire.cancel",
        "forex_rate_file",
        "forex_compare_file",
        "forex_liquidation_file",
    }
    assert Service("alipay.acquire.overseas.spot.pay") is Service.SPOT_PAY
    assert Service.CREATE_FOREX_TRADE.is_page_service
    assert not Service.FOREX_REFUND.is_page_service


def test_result_code_outcomes():
    assert ResultCode.SUCCESS.is_success
    assert ResultCode.FAIL.is_failure
    assert ResultCode.FAILED.is_failure
    assert ResultCode.UNKNOW.is_unknown
    assert ResultCode.UNKNOWN.is_unknown
    assert not ResultCode.UNKNOW.is_failure
    assert not ResultCode.FAILED.is_success


# --- trade status lifecycle -----------------------------------------------------------------------


def test_paid_statuses():
    assert {s for s in TradeStatus if s.is_paid} == {TradeStatus.TRADE_SUCCESS, TradeStatus.TRADE_FINISHED}


def test_closed_and_final_statuses():
    assert {s for s in TradeStatus if s.is_closed} == {TradeStatus.TRADE_CLOSED}
    assert {s for s in TradeStatus if s.is_final} == {TradeStatus.TRADE_FINISHED, TradeStatus.TRADE_CLOSED}


def test_rank_orders_the_lifecycle_forward():
    w, s, f, c = (
        TradeStatus(v) for v in ("WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_FINISHED", "TRADE_CLOSED")
    )
    assert w.rank < s.rank < f.rank
    assert s.rank < c.rank
    assert TradeStatus.TRADE_PENDING.rank is None
    assert {x for x in TradeStatus if x.is_lifecycle} == {w, s, f, c}


ALLOWED = {
    # online
    ("WAIT_BUYER_PAY", "TRADE_FINISHED"),
    ("WAIT_BUYER_PAY", "TRADE_CLOSED"),
    # in-store
    ("WAIT_BUYER_PAY", "TRADE_SUCCESS"),
    ("TRADE_SUCCESS", "TRADE_FINISHED"),
    ("TRADE_SUCCESS", "TRADE_CLOSED"),
}
LIFECYCLE = ["WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_FINISHED", "TRADE_CLOSED"]


@pytest.mark.parametrize("old", LIFECYCLE)
@pytest.mark.parametrize("new", LIFECYCLE)
def test_can_transition_follows_the_lifecycle_of_the_spec(old, new):
    assert can_transition(old, new) is ((old, new) in ALLOWED)
    assert can_transition(TradeStatus(old), TradeStatus(new)) is ((old, new) in ALLOWED)


@pytest.mark.parametrize("other", ["TRADE_PENDING", "WAIT_SELLER_SEND_GOODS", "COD_WAIT_BUYER_PAY"])
def test_statuses_outside_the_lifecycle_never_transition(other):
    for status in LIFECYCLE:
        assert can_transition(status, other) is False
        assert can_transition(other, status) is False


def test_no_regression_after_a_final_status():
    assert not can_transition("TRADE_FINISHED", "TRADE_SUCCESS")
    assert not can_transition("TRADE_CLOSED", "TRADE_SUCCESS")
    assert not can_transition("TRADE_CLOSED", "WAIT_BUYER_PAY")


def test_an_unknown_status_is_a_value_error_of_the_enum():
    with pytest.raises(ValueError, match="NOT_A_STATUS"):
        TradeStatus("NOT_A_STATUS")


@pytest.mark.parametrize(
    "bad", ["NOT_A_STATUS", "trade_success", " TRADE_SUCCESS", "", None, b"TRADE_SUCCESS"]
)
def test_parse_trade_status_names_the_value(bad):
    with pytest.raises(InvalidParameterError) as info:
        parse_trade_status(bad)
    assert info.value.parameter == "trade_status"
    assert ascii(bad) in str(info.value)


def test_parse_trade_status_accepts_wire_values():
    assert parse_trade_status("TRADE_SUCCESS") is TradeStatus.TRADE_SUCCESS
    assert (
        parse_trade_status("COD_WAIT_BUYER_PAY", parameter="alipay_trans_status")
        is TradeStatus.COD_WAIT_BUYER_PAY
    )


def test_can_transition_refuses_an_unknown_status_rather_than_guessing():
    with pytest.raises(InvalidParameterError):
        can_transition("WAIT_BUYER_PAY", "PAID")
