"""The mapi gateway's catalogs as data: error codes, statuses, payment types and names."""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from django_alipay.protocol.errors import InvalidParameterError

__all__ = [
    "ERROR_CODES",
    "OUTCOME_UNKNOWN_CODES",
    "AdditionalTradeStatus",
    "Category",
    "ErrorCode",
    "PaymentType",
    "ProductCode",
    "RefundStatus",
    "ResultCode",
    "Service",
    "SignType",
    "TradeStatus",
    "Verdict",
    "can_transition",
    "lookup_error",
    "parse_trade_status",
    "result_code_verdict",
]

Category = Literal["gateway", "business", "system", "unknown"]


class Verdict(enum.Enum):
    """What an answer says became of the operation asked for: the one reading of result and error codes.

    Every ``result_code`` (:func:`result_code_verdict`) and every error code (:attr:`ErrorCode.verdict`) the
    gateway sends has one; ``interpretation.verdict_of`` gives the verdict of any error the client raises.
    Code that acts on an answer decides by its verdict (or the error's type), never by the code's text.
    """

    #: The operation happened.
    DONE = "done"
    #: A definitive refusal: the operation did not happen, and the very same request never will make it.
    REFUSED = "refused"
    #: Refused for now: the very same request, sent again later, may succeed.
    RETRY = "retry"
    #: The operation may or may not have happened: query before acting, never start it anew.
    UNKNOWN = "unknown"
    #: The request never reached the gateway: sending it again is safe.
    NOT_SENT = "not_sent"


@dataclass(frozen=True)
class ErrorCode:
    """One error code Alipay can return, with a description a shop owner can read.

    ``category`` says where the refusal came from: the API gateway's sanity checks (signature, partner,
    configuration), the business logic of a service, Alipay's own systems, or nowhere we know of.
    ``retryable`` is true only when sending the very same request again can succeed. ``hint`` says what to do.
    """

    code: str
    description: str
    category: Category
    retryable: bool
    hint: str = ""

    @property
    def is_known(self) -> bool:
        """True when the code is in the catalog."""
        return self.category != "unknown"

    @property
    def verdict(self) -> Verdict:
        """What a refusal with this code says of the operation, before the call's own circumstances count.

        A gateway or business refusal in the catalog is REFUSED, except the codes of OUTCOME_UNKNOWN_CODES.
        A system error is RETRY when sending the same request again can help, else UNKNOWN: Alipay's own
        systems failing does not prove that nothing was done. A code not in the catalog (or no code) proves
        nothing: UNKNOWN.
        """
        if self.category == "system":
            return Verdict.RETRY if self.retryable else Verdict.UNKNOWN
        if self.category == "unknown" or self.code in OUTCOME_UNKNOWN_CODES:
            return Verdict.UNKNOWN
        return Verdict.REFUSED


def _gateway(code: str, description: str, hint: str = "") -> ErrorCode:
    return ErrorCode(code, description, "gateway", False, hint)


def _business(code: str, description: str, hint: str = "") -> ErrorCode:
    return ErrorCode(code, description, "business", False, hint)


def _system(code: str, description: str, hint: str = "", *, retryable: bool) -> ErrorCode:
    return ErrorCode(code, description, "system", retryable, hint)


_CHECK_KEYS = "Check the MD5 key or RSA/DSA key pair and the sign type configured for this merchant."
_CONTACT_ALIPAY = (
    "Ask Alipay's merchant technical support to check the merchant's contract and configuration."
)
_FIX_REQUEST = "The request was built wrongly; correct it before sending again."
_TEMPORARY = "Temporary problem at Alipay: send the same request again later, or query the trade first."

_CATALOG: tuple[ErrorCode, ...] = (
    # API gateway checks (the seed lists them together with TRADE_NOT_EXIST; they are all refusals of the
    # request itself, decided before any business logic runs).
    _gateway("ILLEGAL_SIGN", "Illegal signature.", _CHECK_KEYS),
    _gateway("ILLEGAL_DYN_MD5_KEY", "Dynamic key information is incorrect.", _CHECK_KEYS),
    _gateway("ILLEGAL_ENCRYPT", "Encryption is incorrect.", _CHECK_KEYS),
    _gateway("ILLEGAL_ARGUMENT", "Parameter is incorrect.", _FIX_REQUEST),
    _gateway("ILLEGAL_SERVICE", "Service parameter is incorrect.", _FIX_REQUEST),
    _gateway("ILLEGAL_USER", "User ID is incorrect.", _FIX_REQUEST),
    _gateway("ILLEGAL_PARTNER", "Partner ID is incorrect.", "Check the partner ID (16 digits, 2088...)."),
    _gateway("ILLEGAL_EXTERFACE", "Interface configuration is incorrect.", _CONTACT_ALIPAY),
    _gateway("ILLEGAL_PARTNER_EXTERFACE", "Partner’s interface information is incorrect.", _CONTACT_ALIPAY),
    _gateway(
        "ILLEGAL_SECURITY_PROFILE", "Matching private key configuration has not been found.", _CHECK_KEYS
    ),
    _gateway("ILLEGAL_AGENT", "Agency ID is incorrect.", _FIX_REQUEST),
    _gateway("ILLEGAL_SIGN_TYPE", "The signature type is incorrect.", _CHECK_KEYS),
    _gateway("ILLEGAL_CHARSET", "The character set is illegal.", "Use _input_charset utf-8, gbk or gb2312."),
    _gateway("ILLEGAL_CLIENT_IP", "Client IP address is illegal", _CONTACT_ALIPAY),
    _gateway("HAS_NO_PRIVILEGE", "Has no right to visit.", _CONTACT_ALIPAY),
    # Kaligo's gem and its users spell it this way; seen in the field with the same meaning.
    _gateway("HASH_NO_PRIVILEGE", "Has no right to visit.", _CONTACT_ALIPAY),
    _gateway("ILLEGAL_DIGEST_TYPE", "Digest type is illegal", _FIX_REQUEST),
    _gateway("ILLEGAL_DIGEST", "Digest is illegal", _FIX_REQUEST),
    _gateway("ILLEGAL_FILE_FORMAT", "File format is illegal", _FIX_REQUEST),
    _gateway("ILLEGAL_ENCODING", "Encoding type is illegal", _FIX_REQUEST),
    # The seed lists EXTERFACE_IS_CLOSED twice, as a gateway code ("API is closed") and as a system error
    # ("The interface has been closed."). It is one code with one meaning: the service is switched off for
    # this merchant. That is a configuration refusal which no retry fixes, so it is filed as "gateway", not
    # retryable, and keeps both of the seed's wordings.
    _gateway("EXTERFACE_IS_CLOSED", "API is closed. The interface has been closed.", _CONTACT_ALIPAY),
    _gateway("ILLEGAL_REQUEST_REFERER", "Anti-phishing checks illegal request", _CONTACT_ALIPAY),
    _gateway("ILLEGAL_ANTI_PHISHING_KEY", "Anti-phishing checks illegal timeframe", _FIX_REQUEST),
    _gateway("ANTI_PHISHING_KEY_TIMEOUT", "Anti-phishing checks timeframe timeout", _FIX_REQUEST),
    _gateway("ILLEGAL_EXTER_INVOKE_IP", "IP Anti-phishing checks illegal IP", _CONTACT_ALIPAY),
    # Parameter refusals named by Alipay's SDKs. INVALID_PARAMETER is the in-store twin of
    # ILLEGAL_ARGUMENT and sits in the same gateway table, so it shares its category.
    _gateway("INVALID_PARAMETER", "A parameter is missing or has a wrong value.", _FIX_REQUEST),
    _gateway(
        "ILLEGAL_CURRENCY",
        "The currency is not accepted for this merchant.",
        "Use an uppercase currency code from the merchant's contract.",
    ),
    _gateway(
        "ILLEGAL_TIMEOUT_RULE",
        "The payment time limit (timeout_rule) is not accepted.",
        "Use an allowed timeout_rule, and ask Alipay to enable it for the merchant.",
    ),
    # System errors.
    _system(
        "SYSTEM_ERROR",
        "Alipay system failed to process the request due to temporary internal glitch.",
        _TEMPORARY,
        retryable=True,
    ),
    _system("SESSION_TIMEOUT", "Session timeout", _TEMPORARY, retryable=True),
    _system(
        "SYSTEM_EXCEPTION",
        "Alipay had a temporary internal problem.",
        _TEMPORARY,
        retryable=True,
    ),
    # System-side refusals that come from how the merchant is set up: repeating the call cannot help.
    _system("ILLEGAL_TARGET_SERVICE", "Wrong target service", _CONTACT_ALIPAY, retryable=False),
    _system(
        "ILLEGAL_ACCESS_SWITCH_SYSTEM",
        "Merchant is not allowed to visit system of this type.",
        _CONTACT_ALIPAY,
        retryable=False,
    ),
    # Business errors of the services, as their documentation names them.
    _business(
        "TRADE_NOT_EXIST",
        "Trade not exist. out_trade_no or Alipay trade_no is incorrect",
        "Check the order number; the buyer may never have reached the Alipay cashier.",
    ),
    _business(
        "PURCHASE_TRADE_NOT_EXIST",
        "The payment to refund was not found.",
        "Check out_trade_no: refunds are only possible for payments Alipay knows.",
    ),
    _business(
        "REPEATED_REFUNDMENT_REQUEST",
        "This refund request number has already been used.",
        "Query the refund made under this out_return_no instead of sending a new one.",
    ),
    _business(
        "RETURN_AMOUNT_EXCEED",
        "The refund is more than what is left to refund on this payment.",
        "Refund at most the paid amount minus earlier refunds.",
    ),
    _business(
        "CURRENCY_NOT_SAME",
        "The refund currency is not the currency of the payment.",
        "Refund in the currency the payment was made in.",
    ),
    _business(
        "REFUNDMENT_VALID_DATE_EXCEED",
        "The refund period of this payment has ended.",
        "Settle the refund with the buyer outside Alipay.",
    ),
    _business(
        "TRADE_BUYER_NOT_MATCH",
        "This transaction number was already used with another buyer's payment code.",
        "Use a new partner_trans_id for a new payment.",
    ),
    _business("TRADE_HAS_CLOSE", "The transaction is already closed.", "Start a new payment if needed."),
    _business(
        "TRADE_HAS_SUCCESS", "The transaction has already been paid.", "Do not charge the buyer again."
    ),
    _business("TRANS_NOT_FOUND", "The transaction was not found.", "Check the transaction number."),
    _business(
        "REFUND_AMT_RESTRICTION",
        "Alipay does not allow a refund of this amount on this transaction.",
        "Check the amount, its decimals for the currency, and what is left to refund.",
    ),
    _business(
        "REQUEST_AMOUNT_EXCEED",
        "The refund amount is more than the payment amount.",
        "Refund at most the amount that was paid.",
    ),
    _business(
        "TRADE_STATUS_ERROR",
        "The transaction is not in a state that allows this operation.",
        "Query the transaction to see its current status.",
    ),
    _business(
        "EXIST_FORBIDDEN_WORD",
        "The order text contains a word Alipay does not allow.",
        "Reword the subject or description of the order.",
    ),
    _business(
        "REASON_TRADE_BEEN_FREEZEN",
        "The transaction has been frozen by Alipay.",
        _CONTACT_ALIPAY,
    ),
    _business("SELLER_NOT_EXIST", "The merchant account was not found.", _CONTACT_ALIPAY),
    _business(
        "BUYER_NOT_EXIST", "The buyer's Alipay account was not found.", "Ask the buyer to pay another way."
    ),
    _business(
        "BUYER_ENABLE_STATUS_FORBID",
        "The buyer's Alipay account cannot pay: it is disabled or restricted, or cannot cover the amount.",
        "Ask the buyer to pay another way.",
    ),
    _business(
        "BUYER_SELLER_EQUAL",
        "The buyer and the seller are the same Alipay account.",
        "Pay with an account other than the merchant's own.",
    ),
    _business(
        "CLIENT_VERSION_NOT_MATCH",
        "The buyer's Alipay app is too old for this kind of payment.",
        "Ask the buyer to update the Alipay app.",
    ),
    _business(
        "SOUNDWAVE_PARSER_FAIL",
        "The sound-wave payment code could not be read.",
        "Ask the buyer to show the barcode instead.",
    ),
)

ERROR_CODES: Final[Mapping[str, ErrorCode]] = types.MappingProxyType({e.code: e for e in _CATALOG})

#: Refusals that prove only that the request (its refund id) arrived before, not what became of it: their
#: verdict is UNKNOWN, and the refund's notification or the transaction file of its day settles it.
OUTCOME_UNKNOWN_CODES: Final = frozenset({"REPEATED_REFUNDMENT_REQUEST"})

# An unknown code comes from the network: show at most this much of it, escaped, in the description.
_MAX_SHOWN = 64


def lookup_error(code: str | None) -> ErrorCode:
    """Return the catalog entry of an Alipay error code, or an "unknown" entry for a code not in the catalog.

    Never raises: whatever the gateway sends is represented. Surrounding whitespace (XML indentation) is
    ignored; case is not folded, because Alipay codes are uppercase and a lowercase one is not the same code.
    """
    if not isinstance(code, str) or not code.strip():
        return ErrorCode("", "Alipay gave no error code.", "unknown", False)
    code = code.strip()
    known = ERROR_CODES.get(code)
    if known is not None:
        return known
    shown = code if code.isascii() and code.isprintable() else ascii(code)[1:-1]
    if len(shown) > _MAX_SHOWN:
        shown = shown[:_MAX_SHOWN] + "..."
    return ErrorCode(
        code,
        f"Unknown Alipay error code {shown}",
        "unknown",
        False,
        "Not in the catalog: query the trade before deciding anything.",
    )


class _CatalogEnum(enum.StrEnum):
    """A wire string with a human description; ``str()`` and f-strings give the wire string.

    StrEnum is Python 3.11's ``(str, enum.Enum)``: members are real strings, equal to their wire value.
    """

    _value_: str
    description: str

    def __new__(cls, value: str, description: str = "") -> Any:
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    @property
    def label(self) -> str:
        """The description, named as Django choices name it."""
        return self.description

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        """(wire value, description) pairs, in catalog order, for Django ``choices``."""
        return [(m.value, m.description) for m in cls]


class TradeStatus(_CatalogEnum):
    """Trade statuses (``trade_status``, ``alipay_trans_status``).

    Only WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_FINISHED and TRADE_CLOSED occur in cross-border trades; the
    others come from Alipay's domestic products and are catalogued so that any status received can be shown.
    """

    WAIT_BUYER_PAY = ("WAIT_BUYER_PAY", "Transaction awaits user payment.")
    WAIT_SELLER_SEND_GOODS = ("WAIT_SELLER_SEND_GOODS", "Transaction awaits seller sending goods.")
    WAIT_BUYER_CONFIRM_GOODS = ("WAIT_BUYER_CONFIRM_GOODS", "Transaction awaits buyer confirming goods.")
    TRADE_FINISHED = ("TRADE_FINISHED", "Transaction is finished successfully.")
    TRADE_CLOSED = ("TRADE_CLOSED", "Transaction is closed during processing (finished, not successfully)")
    WAIT_SYS_CONFIRM_PAY = (
        "WAIT_SYS_CONFIRM_PAY",
        "Transaction awaits system conforming payment, please do not send goods.",
    )
    WAIT_SYS_PAY_SELLER = (
        "WAIT_SYS_PAY_SELLER",
        "Buyer confirm goods, transaction awaits system paying to seller.",
    )
    TRADE_REFUSE = ("TRADE_REFUSE", "Transaction refused.")
    TRADE_REFUSE_DEALING = ("TRADE_REFUSE_DEALING", "Transaction refusing.")
    TRADE_CANCEL = ("TRADE_CANCEL", "Transaction canceled.")
    TRADE_PENDING = ("TRADE_PENDING", "Pending Transaction.")
    TRADE_SUCCESS = ("TRADE_SUCCESS", "Transaction complete, and available for refund")
    BUYER_PRE_AUTH = ("BUYER_PRE_AUTH", "Buyer has paid. (IVR Payment)")
    COD_WAIT_SELLER_SEND_GOODS = (
        "COD_WAIT_SELLER_SEND_GOODS",
        "Transaction awaits seller sending goods. (COD)",
    )
    COD_WAIT_BUYER_PAY = ("COD_WAIT_BUYER_PAY", "Transaction awaits user payment. (COD)")
    COD_WAIT_SYS_PAY_SELLER = (
        "COD_WAIT_SYS_PAY_SELLER",
        "Buyer confirm goods, transaction awaits system paying to seller. (COD)",
    )

    @property
    def is_paid(self) -> bool:
        """True for the statuses in which the buyer's money has reached the merchant's trade."""
        return self in _PAID

    @property
    def is_closed(self) -> bool:
        """True for TRADE_CLOSED: unpaid and timed out or cancelled, or (in-store) fully refunded."""
        return self is TradeStatus.TRADE_CLOSED

    @property
    def is_final(self) -> bool:
        """True when no further status can follow (TRADE_FINISHED, TRADE_CLOSED)."""
        return self in _FINAL

    @property
    def is_lifecycle(self) -> bool:
        """True for the four statuses cross-border trades move through."""
        return self in _RANK

    @property
    def rank(self) -> int | None:
        """Position in the forward-only order; ``None`` for statuses outside the cross-border lifecycle."""
        return _RANK.get(self)


_PAID: Final = frozenset({TradeStatus.TRADE_SUCCESS, TradeStatus.TRADE_FINISHED})
_FINAL: Final = frozenset({TradeStatus.TRADE_FINISHED, TradeStatus.TRADE_CLOSED})
# TRADE_FINISHED and TRADE_CLOSED share the top rank: both are terminal and neither may replace the other.
_RANK: Final[Mapping[TradeStatus, int]] = types.MappingProxyType(
    {
        TradeStatus.WAIT_BUYER_PAY: 0,
        TradeStatus.TRADE_SUCCESS: 1,
        TradeStatus.TRADE_FINISHED: 2,
        TradeStatus.TRADE_CLOSED: 2,
    }
)
# Online trades jump from WAIT_BUYER_PAY to TRADE_FINISHED; in-store ones pass through TRADE_SUCCESS.
_TRANSITIONS: Final[Mapping[TradeStatus, frozenset[TradeStatus]]] = types.MappingProxyType(
    {
        TradeStatus.WAIT_BUYER_PAY: frozenset(
            {TradeStatus.TRADE_SUCCESS, TradeStatus.TRADE_FINISHED, TradeStatus.TRADE_CLOSED}
        ),
        TradeStatus.TRADE_SUCCESS: frozenset({TradeStatus.TRADE_FINISHED, TradeStatus.TRADE_CLOSED}),
    }
)


def parse_trade_status(text: object, *, parameter: str = "trade_status") -> TradeStatus:
    """Turn a wire ``trade_status`` into a TradeStatus; InvalidParameterError naming the value otherwise."""
    if isinstance(text, TradeStatus):
        return text
    if isinstance(text, str):
        try:
            return TradeStatus(text)
        except ValueError:
            pass
    shown = ascii(text)
    if len(shown) > _MAX_SHOWN:
        shown = shown[:_MAX_SHOWN] + "..."
    raise InvalidParameterError(f"{parameter} {shown} is not an Alipay trade status", parameter=parameter)


def can_transition(old: TradeStatus | str, new: TradeStatus | str) -> bool:
    """True when a trade in status ``old`` may move to ``new`` (forward only).

    Allowed: WAIT_BUYER_PAY -> TRADE_SUCCESS / TRADE_FINISHED / TRADE_CLOSED, and TRADE_SUCCESS ->
    TRADE_FINISHED / TRADE_CLOSED. A repeat of the same status is not a transition (False); nor is anything
    involving a status outside the cross-border lifecycle. Strings that are not trade statuses raise
    InvalidParameterError: an unknown status needs another answer (an alert) than a stale one (ignore).
    """
    before = parse_trade_status(old, parameter="old")
    after = parse_trade_status(new, parameter="new")
    return after in _TRANSITIONS.get(before, frozenset())


class AdditionalTradeStatus(_CatalogEnum):
    """Additional trade statuses, set when Alipay staff or an expiry job acted on a trade."""

    ZHIFUBAO_CONFIRM = ("ZHIFUBAO_CONFIRM", "Custom Service confirms goods for buyer.")
    ZHIFUBAO_CANCEL_FP = ("ZHIFUBAO_CANCEL_FP", "Custom Service cancels instant payment for buyer.")
    DAEMON_CONFIRM_CANCEL_PRE_AUTH = (
        "DAEMON_CONFIRM_CANCEL_PRE_AUTH",
        "Expiration Program cancels pre authorization.",
    )
    DAEMON_CONFIRM_CLOSE = (
        "DAEMON_CONFIRM_CLOSE",
        "Expiration Program cancels transaction as buyer did not pay.",
    )


class PaymentType(_CatalogEnum):
    """Payment types (``payment_type``) of the seed catalog; "01" and "1" are different types.

    Values outside the catalog do occur (the forex sandbox answers ``100`` in single_trade_query), so store
    the raw string and use this enum only to describe it.
    """

    COUPON_FEE_PREPAYMENT = ("01", "Coupon Fee Pre-payment")
    COUPON_FEE_PAYMENT = ("02", "Coupon Fee Payment")
    REMINDING_PAYMENT = ("03", "Reminding Payment")
    AUTOMATIC_SENDING_GOODS = ("04", "Automatic Sending Goods")
    MERCHANDISE = ("1", "Merchandise")
    SERVICE_PURCHASE = ("2", "Service Purchase")
    ONLINE_AUCTION = ("3", "Online Auction")
    DONATION = ("4", "Donation")
    POST_FEE_COMPENSATION = ("5", "Post Fee Compensation")
    BONUS = ("6", "Bonus")
    FUNDS_PURCHASE = ("7", "Funds Purchase")
    AIR_TICKET = ("8", "Air Ticket")
    GO_DUTCH = ("9", "Go Dutch")
    GROUP_PURCHASE = ("10", "Group Purchase")
    ELECTRONIC_TICKET = ("11", "Electronic Ticket")
    LOTTERY_TICKET = ("12", "Lottery Ticket")
    AUCTION = ("13", "Auction")
    MOBILE_PAYMENT = ("14", "Mobile Payment")
    FLOWERS_AND_GIFTS = ("15", "Flowers & Gifts")
    AGENT_ELECTRONIC_TICKET = ("16", "Agent Electronic Ticket")
    PARTY_MEMBERSHIP_DUES = ("17", "Party Membership Dues")
    FOREIGN_EXCHANGE = ("18", "Foreign Exchange")
    AUTOMATIC_CHARGE = ("19", "Automatic Charge")
    REFUND_OF_OVERSEAS_PAYMENT = ("20", "Refund of Overseas Payment")
    REFUND_OF_INSTANT_PAYMENT = ("21", "Refund of Instant Payment")
    BUSINESS_DEPOSIT = ("22", "Business Deposit")
    # The seed lists 23 after 26 and spells it "Shopping Chart"; the description keeps its wording.
    SHOPPING_CART = ("23", "Shopping Chart")
    CASH_GIFT = ("24", "Cash Gift")
    RENT = ("25", "Rent")
    MOTOPAY = ("26", "Motopay")
    ESCROW_PAYMENT_OF_GROUP_PURCHASE = ("27", "Escrow Payment of Group Purchase")


class RefundStatus(_CatalogEnum):
    """Result of an online refund, as its notification reports it (``refund_status``)."""

    REFUND_SUCCESS = ("REFUND_SUCCESS", "The refund was made.")
    REFUND_FAIL = ("REFUND_FAIL", "The refund failed; error_code says why.")


class ResultCode(_CatalogEnum):
    """``result_code`` of the acquire (in-store) services; the services do not share one vocabulary."""

    SUCCESS = ("SUCCESS", "The operation succeeded.")
    FAIL = ("FAIL", "The operation was refused; the error field says why.")
    FAILED = ("FAILED", "The operation was refused; the error field says why.")
    UNKNOW = ("UNKNOW", "The outcome is not known yet (spot.pay spelling): query the transaction.")
    UNKNOWN = ("UNKNOWN", "The outcome is not known yet: query the transaction, or cancel again.")

    @property
    def is_success(self) -> bool:
        """True for SUCCESS."""
        return self is ResultCode.SUCCESS

    @property
    def is_failure(self) -> bool:
        """True for a definitive refusal (FAIL, FAILED)."""
        return self in (ResultCode.FAIL, ResultCode.FAILED)

    @property
    def is_unknown(self) -> bool:
        """True when the operation may or may not have happened (UNKNOW, UNKNOWN)."""
        return self in (ResultCode.UNKNOW, ResultCode.UNKNOWN)

    @property
    def verdict(self) -> Verdict:
        """DONE for SUCCESS, REFUSED for FAIL/FAILED (the error code and ``retry_flag`` may soften it: see
        ``interpretation.check_result_code``), UNKNOWN for UNKNOW/UNKNOWN."""
        if self.is_success:
            return Verdict.DONE
        if self.is_failure:
            return Verdict.REFUSED
        return Verdict.UNKNOWN


def result_code_verdict(result_code: str) -> Verdict:
    """The verdict of a ``result_code`` as received: a code this catalog does not know (``PROCESSING`` or
    any other) is UNKNOWN, since nothing says the operation did or did not happen."""
    try:
        return ResultCode(result_code).verdict
    except ValueError:
        return Verdict.UNKNOWN


class SignType(_CatalogEnum):
    """Signature algorithms named by ``sign_type``."""

    MD5 = ("MD5", "MD5 over the parameters and the merchant's secret key.")
    RSA = ("RSA", "RSA signature with SHA-1.")
    RSA2 = ("RSA2", "RSA signature with SHA-256.")
    DSA = ("DSA", "DSA signature (older pages only).")


class Service(_CatalogEnum):
    """Names of the mapi services (the ``service`` parameter)."""

    CREATE_FOREX_TRADE = ("create_forex_trade", "Website payment (browser redirect to the cashier).")
    CREATE_FOREX_TRADE_WAP = ("create_forex_trade_wap", "Mobile browser payment.")
    SINGLE_TRADE_QUERY = ("single_trade_query", "Query an online payment.")
    FOREX_REFUND = ("forex_refund", "Refund an online payment.")
    NOTIFY_VERIFY = ("notify_verify", "Check that a notification really came from Alipay.")
    SPOT_PAY = (
        "alipay.acquire.overseas.spot.pay",
        "In-store payment: the merchant scans the buyer's barcode.",
    )
    PRECREATE = ("alipay.acquire.precreate", "In-store payment: the buyer scans a QR code.")
    OVERSEAS_QUERY = ("alipay.acquire.overseas.query", "Query an in-store payment.")
    SPOT_REFUND = ("alipay.acquire.overseas.spot.refund", "Refund an in-store payment (REFUND).")
    SPOT_REVERSE = (
        "alipay.acquire.overseas.spot.reverse",
        "Reverse an in-store payment on the day it was made, Beijing time (REVERSE).",
    )
    CANCEL = (
        "alipay.acquire.cancel",
        "Cancel an in-store payment: close it if unpaid, refund it if paid today.",
    )
    FOREX_RATE_FILE = ("forex_rate_file", "Download today's exchange rates.")
    FOREX_COMPARE_FILE = ("forex_compare_file", "Download the transaction file for a date range.")
    FOREX_LIQUIDATION_FILE = ("forex_liquidation_file", "Download the settlement file for a date range.")

    @property
    def is_page_service(self) -> bool:
        """True for the services the buyer's browser is sent to (they answer HTML, not XML)."""
        return self in (Service.CREATE_FOREX_TRADE, Service.CREATE_FOREX_TRADE_WAP)


class ProductCode(_CatalogEnum):
    """``product_code`` / ``biz_product`` values."""

    NEW_OVERSEAS_SELLER = ("NEW_OVERSEAS_SELLER", "Website payment (create_forex_trade).")
    NEW_WAP_OVERSEAS_SELLER = ("NEW_WAP_OVERSEAS_SELLER", "Mobile browser payment (create_forex_trade_wap).")
    OVERSEAS_MBARCODE_PAY = ("OVERSEAS_MBARCODE_PAY", "In-store barcode and QR code payment.")
