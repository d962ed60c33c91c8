"""Every mapi service as data: its parameters, checked and put in wire form before sending, and its result."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar, Final, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from django_alipay.protocol import clock as clock_mod
from django_alipay.protocol import money, signing
from django_alipay.protocol.codes import (
    AdditionalTradeStatus,
    PaymentType,
    ResultCode,
    Service,
    TradeStatus,
)
from django_alipay.protocol.errors import (
    AlipayBusinessError,
    AlipayError,
    AlipaySystemError,
    AmountError,
    CharsetError,
    GatewayResponseError,
    InvalidParameterError,
    TimeFormatError,
)

__all__ = [
    "CANCEL",
    "CREATE_FOREX_TRADE",
    "CREATE_FOREX_TRADE_WAP",
    "FOREX_COMPARE_FILE",
    "FOREX_LIQUIDATION_FILE",
    "FOREX_RATE_FILE",
    "FOREX_REFUND",
    "NOTIFY_VERIFY",
    "OVERSEAS_QUERY",
    "PRECREATE",
    "SERVICES",
    "SINGLE_TRADE_QUERY",
    "SPOT_PAY",
    "SPOT_REFUND",
    "SPOT_REVERSE",
    "CancelResult",
    "FileResult",
    "ForexRefundResult",
    "OverseasQueryResult",
    "Param",
    "PrecreateResult",
    "RateRecord",
    "ServiceDefinition",
    "ServiceResult",
    "SettlementRecord",
    "SpotPayResult",
    "SpotRefundResult",
    "SpotReverseResult",
    "TradeQueryResult",
    "TransactionRecord",
    "build_request",
    "get_service",
    "parse_file",
]

ParamKind = Literal[
    "text",
    "id",
    "url",
    "amount",
    "datetime",
    "compact",
    "date",
    "epoch_ms",
    "epoch_s",
    "int",
    "choice",
    "currency",
    "flag",
    "json",
]
ServiceKind = Literal["page", "xml", "verify", "file"]

#: Set by the client on every request; a caller passing them is refused.
RESERVED: Final = frozenset({"service", "partner", "_input_charset", "sign", "sign_type"})

_PARTNER = re.compile(r"[0-9]{16}")
_CURRENCY = re.compile(r"[A-Z]{3}")
# Merchant and Alipay identifiers: printable ASCII without spaces, so that a full-width look-alike never
# travels as an order number.
_ID = re.compile(r"[\x21-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIGITS = re.compile(r"(0|[1-9][0-9]*)")
# Response amounts are read leniently about decimals (a JPY "100.00" is still 100), strictly about shape.
_RESPONSE_AMOUNT = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")
_MAX_SHOWN = 40
_EPOCH_SECONDS_DIGITS: Final = 10

WEB_TIMEOUT_RULES: Final = ("5m", "10m", "15m", "30m", "1h", "2h", "3h", "5h", "10h", "12h", "1d")
WAP_TIMEOUT_RULES: Final = (*WEB_TIMEOUT_RULES, "3d", "7d", "15d")
#: Currencies spot.pay accepts, as Alipay's cross-border documentation lists them.
SPOT_PAY_CURRENCIES: Final = (
    "GBP", "HKD", "USD", "SGD", "JPY", "CAD", "AUD", "EUR", "NZD", "KRW", "THB", "CHF", "SEK", "DKK", "NOK",
    "MYR", "IDR", "PHP", "MUR", "ILS", "LKR", "RUB", "AED", "CZK", "ZAR", "CNY",
)  # fmt: skip
#: Longest date range the file services serve, in days between start_date and end_date.
FILE_MAX_DAYS: Final = 10
#: Longest notify_id sent to notify_verify: the same generous bound notifications are read with.
NOTIFY_ID_MAX_LENGTH: Final = 128


def _shown(value: object) -> str:
    text = ascii(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


# --- parameter definitions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One request parameter of a service: how a Python value becomes its wire string, and what is allowed.

    ``kind`` decides the accepted Python types (``amount``: Decimal or canonical text; ``datetime``/
    ``compact``: aware datetime or text already in that Beijing form; ``date``: date; ``json``: a dict/list
    or JSON text ...). ``currency`` names, for amounts, the parameters whose value is the amount's currency
    (first present wins), ``fixed_currency`` a currency used when none of them is present. ``default`` fills
    a missing value from the build context.
    """

    name: str
    kind: ParamKind = "text"
    required: bool = False
    max_length: int | None = None
    min_length: int | None = None
    choices: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    pattern_hint: str = ""
    currency: tuple[str, ...] = ()
    fixed_currency: str | None = None
    minimum: Decimal | int | None = None
    maximum: Decimal | int | None = None
    default: Callable[[_Context], object] | None = None
    quotes_to_apostrophes: bool = False


@dataclass(frozen=True)
class _Context:
    partner: str
    charset: str
    clock: clock_mod.Clock | None

    def now(self) -> datetime:
        return clock_mod.now(self.clock)


Check = Callable[[dict[str, str], _Context], None]


@dataclass(frozen=True)
class ServiceDefinition:
    """A mapi service: wire name, parameters and their cross-field rules, how it answers, and its result type.

    ``idempotent`` says the call is safe to send again after its request may have reached the gateway
    (queries, notify_verify, files). ``exactly_one`` groups need one and only one member (``total_fee`` /
    ``rmb_fee``), ``at_least_one`` groups one or more, ``together`` pairs both or neither.
    """

    name: str
    kind: ServiceKind
    params: tuple[Param, ...]
    idempotent: bool = False
    signs_response: bool = False
    result_type: type[ServiceResult] | None = None
    exactly_one: tuple[tuple[str, str], ...] = ()
    at_least_one: tuple[tuple[str, ...], ...] = ()
    together: tuple[tuple[str, str], ...] = ()
    checks: tuple[Check, ...] = ()
    #: Parameters naming the trade, in the order an error's ``out_trade_no`` context is taken from.
    trade_id_params: tuple[str, ...] = ("out_trade_no",)
    #: True when the request carries a GMT+8 ``timestamp`` that the gateway lets expire (clock skew matters).
    has_timestamp: bool = False
    by_name: Mapping[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {p.name: p for p in self.params})

    def trade_id(self, wire: Mapping[str, str]) -> str | None:
        """The merchant's trade id found in ``wire`` params, for error context."""
        for name in self.trade_id_params:
            if wire.get(name):
                return wire[name]
        return None


def _invalid(name: str, message: str) -> InvalidParameterError:
    return InvalidParameterError(f"{name}: {message}", parameter=name)


def _as_text(p: Param, value: object) -> str:
    if isinstance(value, Enum) and isinstance(value.value, str):
        return value.value
    if not isinstance(value, str):
        raise _invalid(p.name, f"must be a string, not {type(value).__name__}")
    return value


def _to_wire(p: Param, value: object, wire: Mapping[str, str], ctx: _Context) -> str:
    """Turn one Python value into its wire string, or raise InvalidParameterError naming the parameter."""
    kind = p.kind
    if kind == "amount":
        return _amount_to_wire(p, value, wire)
    if kind in ("datetime", "compact"):
        return _time_to_wire(p, value)
    if kind == "date":
        if isinstance(value, str):
            clock_mod.parse_date(value, parameter=p.name)
            return value
        if isinstance(value, datetime | date):
            return clock_mod.format_date(value, parameter=p.name)
        raise TimeFormatError(f"{p.name}: must be a date, not {type(value).__name__}", parameter=p.name)
    if kind == "epoch_ms":
        if isinstance(value, datetime):
            return str(clock_mod.epoch_millis(value, parameter=p.name))
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)
        if isinstance(value, str) and _DIGITS.fullmatch(value):
            return value
        raise TimeFormatError(
            f"{p.name}: must be an aware datetime or epoch milliseconds, not {_shown(value)}",
            parameter=p.name,
        )
    if kind == "epoch_s":
        return _epoch_seconds_to_wire(p, value)
    if kind == "int":
        return _int_to_wire(p, value)
    if kind == "flag":
        if isinstance(value, bool):
            return "Y" if value else "N"
        text = _as_text(p, value)
        if text not in ("Y", "N"):
            raise _invalid(p.name, f"must be Y or N (or a bool), not {_shown(text)}")
        return text
    if kind == "json":
        return _json_to_wire(p, value)
    return _as_text(p, value)


def _amount_to_wire(p: Param, value: object, wire: Mapping[str, str]) -> str:
    currency = next((wire[c] for c in p.currency if wire.get(c)), p.fixed_currency)
    if currency is None:
        raise _invalid(p.name, f"needs {' or '.join(p.currency)} to know its currency")
    minimum = Decimal(p.minimum) if p.minimum is not None else money.ONLINE_MIN
    maximum = Decimal(p.maximum) if p.maximum is not None else None
    if isinstance(value, Decimal):
        amount = money.to_amount(value, currency, minimum=minimum, maximum=maximum, parameter=p.name)
    elif isinstance(value, str):
        amount = money.parse_amount(value, currency, minimum=minimum, maximum=maximum, parameter=p.name)
    else:
        raise AmountError(
            f"{p.name}: an amount must be a Decimal (or its canonical text), not {type(value).__name__}",
            parameter=p.name,
        )
    return money.format_amount(amount, currency, parameter=p.name)


def _time_to_wire(p: Param, value: object) -> str:
    compact = p.kind == "compact"
    if isinstance(value, str):
        if compact:
            clock_mod.parse_compact(value, parameter=p.name)
        else:
            clock_mod.parse_datetime(value, parameter=p.name)
        return value
    if not isinstance(value, datetime):
        raise TimeFormatError(
            f"{p.name}: must be a timezone-aware datetime, not {type(value).__name__}", parameter=p.name
        )
    if compact:
        return clock_mod.format_compact(value, parameter=p.name)
    return clock_mod.format_datetime(value, parameter=p.name)


def _epoch_seconds_to_wire(p: Param, value: object) -> str:
    """Epoch seconds, 10 digits (``long(10)``): from an aware datetime, an int, or digits."""
    if isinstance(value, datetime):
        text = str(clock_mod.epoch_millis(value, parameter=p.name) // 1000)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        text = str(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        text = value
    else:
        raise TimeFormatError(
            f"{p.name}: must be an aware datetime or epoch seconds, not {_shown(value)}", parameter=p.name
        )
    if len(text) != _EPOCH_SECONDS_DIGITS:
        raise TimeFormatError(
            f"{p.name}: must be epoch seconds ({_EPOCH_SECONDS_DIGITS} digits, long(10)), not {_shown(text)}",
            parameter=p.name,
        )
    return text


def _int_to_wire(p: Param, value: object) -> str:
    if isinstance(value, bool):
        raise _invalid(p.name, "must be an integer, not a bool")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        raise _invalid(p.name, f"must be a whole number, not {_shown(value)}")
    if p.minimum is not None and number < p.minimum:
        raise _invalid(p.name, f"{number} is below the minimum {p.minimum}")
    if p.maximum is not None and number > p.maximum:
        raise _invalid(p.name, f"{number} is above the maximum {p.maximum}")
    return str(number)


def _json_to_wire(p: Param, value: object) -> str:
    if isinstance(value, Mapping | list | tuple):
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise _invalid(p.name, f"cannot be written as JSON: {exc}") from None
    elif isinstance(value, str):
        try:
            json.loads(value.replace("'", '"') if p.quotes_to_apostrophes else value)
        except ValueError:
            raise _invalid(p.name, "is not valid JSON") from None
        text = value
    else:
        raise _invalid(p.name, f"must be a dict, a list or JSON text, not {type(value).__name__}")
    if p.quotes_to_apostrophes:
        # Alipay's demos send split_fund_info with ' for ", since " is not allowed in values.
        text = text.replace('"', "'")
    return text


def _check_wire(p: Param, text: str, ctx: _Context) -> None:
    """Rules every wire string obeys: no control characters, no " (except JSON), length, choices, charset."""
    if _CONTROL.search(text):
        raise _invalid(p.name, "contains a control character (NUL, newline ...), which cannot be sent")
    if '"' in text and p.kind != "json":
        raise _invalid(p.name, 'contains a half-width double quote ("), which the gateway does not allow')
    if p.max_length is not None and len(text) > p.max_length:
        raise _invalid(p.name, f"is {len(text)} characters long; at most {p.max_length} are allowed")
    if p.min_length is not None and len(text) < p.min_length:
        raise _invalid(p.name, f"is {len(text)} characters long; at least {p.min_length} are needed")
    if p.choices and text not in p.choices:
        raise _invalid(p.name, f"{_shown(text)} is not one of {', '.join(p.choices)}")
    if p.kind == "id" and not _ID.fullmatch(text):
        raise _invalid(p.name, "must be printable ASCII without spaces")
    if p.kind == "currency" and not _CURRENCY.fullmatch(text):
        raise _invalid(p.name, f"{_shown(text)} is not a currency code: use three uppercase letters")
    if p.kind == "url":
        _check_url(p, text)
    if p.pattern is not None and not p.pattern.fullmatch(text):
        raise _invalid(p.name, f"{_shown(text)} is not {p.pattern_hint or 'in the expected form'}")
    try:
        text.encode(ctx.charset)
    except UnicodeEncodeError as exc:
        raise CharsetError(
            f"{p.name}: contains U+{ord(exc.object[exc.start]):04X}, which {ctx.charset} cannot encode",
            parameter=p.name,
        ) from None


def _check_url(p: Param, text: str) -> None:
    if not text.isascii() or " " in text:
        raise _invalid(p.name, "must be an ASCII URL without spaces")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid(p.name, "must be an absolute http(s) URL")
    # The gateway documents notify_url/return_url without custom parameters.
    if parts.query or parts.fragment:
        raise _invalid(p.name, "must not carry a query string or fragment (no custom parameters)")


def build_request(
    service: str | ServiceDefinition,
    values: Mapping[str, object],
    *,
    partner: str,
    charset: str = "utf-8",
    clock: clock_mod.Clock | None = None,
) -> dict[str, str]:
    """Check ``values`` against the service's rules and return its unsigned wire parameters, in order.

    The result starts with ``service``, ``partner`` and ``_input_charset``, followed by the business
    parameters in definition order; empty values (None, "") are never sent. Parameters with a default
    (``product_code``, ``gmt_return``, ``timestamp`` ...) get it when not passed; passing None omits them.

    Raises InvalidParameterError (or its AmountError / TimeFormatError / CharsetError subclasses) naming
    the offending parameter, before anything is sent: unknown or reserved names, missing required values,
    wrong types, lengths, formats, allowed values, mutually exclusive pairs, a ``"`` in a value,
    characters the charset cannot encode.
    """
    definition = get_service(service)
    if not isinstance(partner, str) or not _PARTNER.fullmatch(partner):
        raise InvalidParameterError(
            f"partner {_shown(partner)} is not a 16-digit partner ID", parameter="partner"
        )
    ctx = _Context(partner=partner, charset=signing.normalize_charset(charset), clock=clock)

    for name in values:
        if name in RESERVED:
            raise _invalid(name, "is set by the client and cannot be passed")
        if name not in definition.by_name:
            raise _invalid(name, f"is not a parameter of {definition.name}")

    given: dict[str, object] = {}
    for p in definition.params:
        value = values.get(p.name)
        if (value is None or value == "") and p.default is not None and p.name not in values:
            value = p.default(ctx)
        if value is None or value == "":
            continue
        given[p.name] = value

    wire: dict[str, str] = {}
    # Amounts last: their exponent depends on a currency parameter converted in the first pass.
    for amounts_pass in (False, True):
        for p in definition.params:
            if p.name not in given or (p.kind == "amount") != amounts_pass:
                continue
            if amounts_pass:
                _require_currency_source(definition, p, wire)
            text = _to_wire(p, given[p.name], wire, ctx)
            _check_wire(p, text, ctx)
            if text != "":
                wire[p.name] = text

    for first, second in definition.exactly_one:
        if first in wire and second in wire:
            raise _invalid(second, f"cannot be sent together with {first}; give one of them")
        if first not in wire and second not in wire:
            raise _invalid(first, f"{first} or {second} is required")
    for group in definition.at_least_one:
        if not any(name in wire for name in group):
            raise _invalid(group[0], f"at least one of {', '.join(group)} is required")
    for first, second in definition.together:
        if (first in wire) != (second in wire):
            missing = second if first in wire else first
            raise _invalid(missing, f"{first} and {second} must be given together")
    for p in definition.params:
        if p.required and p.name not in wire:
            raise _invalid(p.name, f"is required by {definition.name}")
    for check in definition.checks:
        check(wire, ctx)

    ordered = {"service": definition.name, "partner": partner, "_input_charset": ctx.charset}
    ordered.update((p.name, wire[p.name]) for p in definition.params if p.name in wire)
    return ordered


def _require_currency_source(definition: ServiceDefinition, p: Param, wire: Mapping[str, str]) -> None:
    if p.fixed_currency is None and not any(wire.get(c) for c in p.currency):
        raise _invalid(p.currency[0], f"is required by {definition.name} (it is the currency of {p.name})")


# --- parameter building blocks ----------------------------------------------------------------------------


def _now(ctx: _Context) -> object:
    return ctx.now()


def _partner(ctx: _Context) -> object:
    return ctx.partner


def _const(value: str) -> Callable[[_Context], object]:
    def default(ctx: _Context) -> object:
        return value

    return default


def _id(name: str, *, required: bool = False, max_length: int = 64, min_length: int | None = None) -> Param:
    return Param(name, "id", required=required, max_length=max_length, min_length=min_length)


def _url(name: str, *, required: bool = False, max_length: int = 200) -> Param:
    return Param(name, "url", required=required, max_length=max_length)


def _text(name: str, *, required: bool = False, max_length: int | None = None) -> Param:
    return Param(name, "text", required=required, max_length=max_length)


def _json(name: str, *, max_length: int | None = None, apostrophes: bool = False) -> Param:
    return Param(name, "json", max_length=max_length, quotes_to_apostrophes=apostrophes)


def _amount(
    name: str,
    *,
    currency: tuple[str, ...] = ("currency",),
    fixed_currency: str | None = None,
    maximum: Decimal = money.ONLINE_MAX,
    required: bool = False,
) -> Param:
    return Param(
        name,
        "amount",
        required=required,
        currency=currency,
        fixed_currency=fixed_currency,
        minimum=money.ONLINE_MIN,
        maximum=maximum,
    )


def _currency(name: str = "currency", *, required: bool = False, max_length: int = 10, **kw: Any) -> Param:
    return Param(name, "currency", required=required, max_length=max_length, **kw)


def _trade_information_check(wire: dict[str, str], ctx: _Context) -> None:
    text = wire.get("trade_information")
    if text is None:
        return
    data = json.loads(text)
    if not isinstance(data, dict):
        raise _invalid("trade_information", "must be a JSON object")
    kind = data.get("business_type")
    if str(kind) not in ("1", "2", "3", "4", "5"):
        raise _invalid(
            "trade_information",
            "needs business_type 1 (hotel), 2 (air), 3 (education), 4 (retail) or 5 (other)",
        )


def _not_cny(wire: dict[str, str], ctx: _Context) -> None:
    # forex_refund's documentation: "currency ... never CNY, even with return_rmb_amount".
    if wire.get("currency") == "CNY":
        raise _invalid(
            "currency", "is the foreign currency of the payment, never CNY (use return_rmb_amount)"
        )


def _refund_id_differs(wire: dict[str, str], ctx: _Context) -> None:
    if wire.get("partner_refund_id") == wire.get("partner_trans_id"):
        raise _invalid("partner_refund_id", "must differ from partner_trans_id")


def _date_range(wire: dict[str, str], ctx: _Context) -> None:
    start = clock_mod.parse_date(wire["start_date"], parameter="start_date")
    end = clock_mod.parse_date(wire["end_date"], parameter="end_date")
    if end < start:
        raise _invalid("end_date", "is before start_date")
    if end - start > timedelta(days=FILE_MAX_DAYS):
        raise _invalid("end_date", f"is more than {FILE_MAX_DAYS} days after start_date")
    today = clock_mod.beijing_date(ctx.now())
    if end >= today:
        raise _invalid("end_date", f"must be before today in Beijing time ({today.isoformat()})")


_BARCODE = re.compile(r"(2[5-9]|30)[0-9]{14,22}")
_MCC = re.compile(r"[0-9]{4}")
_VALIDITY = re.compile(r"[1-9][0-9]{0,3}[mhd]|1c")

_ONLINE_COMMON: Final = (
    _text("subject", required=True, max_length=256),
    _text("body", max_length=400),
    _id("out_trade_no", required=True),
    _currency(required=True),
    _amount("total_fee"),
    _amount("rmb_fee", currency=(), fixed_currency="CNY"),
    _url("notify_url"),
    _url("return_url"),
    Param("order_gmt_create", "datetime"),
    Param("order_valid_time", "int", minimum=1, maximum=2_592_000),
    _text("supplier", max_length=64),
    _text("secondary_merchant_id", max_length=64),
    _text("secondary_merchant_name", max_length=128),
    Param("secondary_merchant_industry", "text", pattern=_MCC, pattern_hint="a 4-digit industry code"),
    _url("refer_url"),
    _json("trade_information", max_length=6000),
    _json("split_fund_info", max_length=1600, apostrophes=True),
)

CREATE_FOREX_TRADE: Final = ServiceDefinition(
    name=Service.CREATE_FOREX_TRADE.value,
    kind="page",
    params=(
        *_ONLINE_COMMON,
        Param("timeout_rule", "choice", choices=WEB_TIMEOUT_RULES),
        # Required by current pages; older contracts (and published vector 4) omit it: pass None to omit.
        Param(
            "product_code",
            "choice",
            choices=("NEW_OVERSEAS_SELLER",),
            default=_const("NEW_OVERSEAS_SELLER"),
        ),
    ),
    exactly_one=(("total_fee", "rmb_fee"),),
    together=(("order_gmt_create", "order_valid_time"),),
    checks=(_trade_information_check,),
)

CREATE_FOREX_TRADE_WAP: Final = ServiceDefinition(
    name=Service.CREATE_FOREX_TRADE_WAP.value,
    kind="page",
    params=(
        *_ONLINE_COMMON,
        Param("timeout_rule", "choice", choices=WAP_TIMEOUT_RULES),
        # long(10) on the WAP page: epoch seconds; timeout_rule only takes effect together with it.
        Param("order_create", "epoch_s"),
        Param(
            "product_code",
            "choice",
            choices=("NEW_WAP_OVERSEAS_SELLER",),
            default=_const("NEW_WAP_OVERSEAS_SELLER"),
        ),
        Param("app_pay", "choice", choices=("Y",)),
        Param("payment_inst", "choice", choices=("ALIPAYHK", "ALIPAYCN")),
        # Older gem versions (and the published vector 6) send these two.
        _url("merchant_url"),
        _id("seller_id", max_length=64),
    ),
    exactly_one=(("total_fee", "rmb_fee"),),
    together=(("order_gmt_create", "order_valid_time"),),
    checks=(_trade_information_check,),
)

NOTIFY_VERIFY: Final = ServiceDefinition(
    name=Service.NOTIFY_VERIFY.value,
    kind="verify",
    params=(_id("notify_id", required=True, max_length=NOTIFY_ID_MAX_LENGTH),),
    idempotent=True,
    trade_id_params=(),
)

FOREX_RATE_FILE: Final = ServiceDefinition(
    name=Service.FOREX_RATE_FILE.value, kind="file", params=(), idempotent=True, trade_id_params=()
)

_DATE_RANGE: Final = (Param("start_date", "date", required=True), Param("end_date", "date", required=True))

FOREX_COMPARE_FILE: Final = ServiceDefinition(
    name=Service.FOREX_COMPARE_FILE.value,
    kind="file",
    params=_DATE_RANGE,
    idempotent=True,
    checks=(_date_range,),
    trade_id_params=(),
)

FOREX_LIQUIDATION_FILE: Final = ServiceDefinition(
    name=Service.FOREX_LIQUIDATION_FILE.value,
    kind="file",
    params=_DATE_RANGE,
    idempotent=True,
    checks=(_date_range,),
    trade_id_params=(),
)


# --- typed results ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AmountField:
    currency_field: str | None = None
    fixed: str | None = None


@dataclass(frozen=True)
class _EnumField:
    enum: type[Enum]


_TIME: Final = "time"
_RATE: Final = "rate"
_INT: Final = "int"
_FieldType = _AmountField | _EnumField | str

_CNY: Final = _AmountField(fixed="CNY")
_IN_CURRENCY: Final = _AmountField(currency_field="currency")
_RESULT_CODE: Final = _EnumField(ResultCode)


def _typed(kind: _FieldType, text: str, fields: Mapping[str, str]) -> tuple[object, bool]:
    """The typed value of one response field and whether it parsed; unparsable values stay strings."""
    try:
        if isinstance(kind, _AmountField):
            return _response_amount(text, kind.fixed or fields.get(kind.currency_field or "")), True
        if isinstance(kind, _EnumField):
            return kind.enum(text), True
        if kind == _TIME:
            return clock_mod.parse_any_datetime(text), True
        if kind == _RATE:
            return money.parse_rate(text), True
        if kind == _INT and _DIGITS.fullmatch(text):
            return int(text), True
    except (AlipayError, ValueError):
        pass
    return text, False


def _response_amount(text: str, currency: str | None) -> Decimal:
    if currency:
        try:
            return money.parse_amount(text, currency)
        except (AmountError, InvalidParameterError):
            pass
    if not _RESPONSE_AMOUNT.fullmatch(text):
        raise ValueError(text)
    return Decimal(text)


class ServiceResult(Mapping[str, Any]):
    """The business answer of one call, read by wire field name as attribute or item.

    ``result.trans_amount`` and ``result["trans_amount"]`` give the typed value: amounts as Decimal, times
    as aware datetimes, statuses and result codes as ``codes`` enums. A documented field the gateway left out
    reads as None by attribute (KeyError by item); an undocumented field the gateway added reads as its
    string. ``fields`` holds the raw strings exactly as received (and signed), ``raw`` the response body,
    ``unparsed`` the names whose value could not be typed (an unknown status, a malformed time): those read
    as strings. ``sign_charset`` is the charset the answer's signature verified in (the declared one or the
    request's), None when nothing was verified.
    """

    #: Documented response fields of the service (absent ones read as None).
    FIELDS: ClassVar[tuple[str, ...]] = ()
    #: How typed fields are converted; the rest are strings.
    FIELD_TYPES: ClassVar[Mapping[str, _FieldType]] = {}
    #: Fields shown by repr (never buyer details).
    SHOWN: ClassVar[tuple[str, ...]] = ("result_code",)

    service: str
    fields: dict[str, str]
    raw: bytes
    request: dict[str, str]
    sign_verified: bool | None
    sign_charset: str | None
    unparsed: frozenset[str]

    def __init__(
        self,
        *,
        service: str,
        fields: Mapping[str, str],
        raw: bytes = b"",
        request: Mapping[str, str] | None = None,
        sign_verified: bool | None = None,
        sign_charset: str | None = None,
    ) -> None:
        self.service = service
        self.fields = dict(fields)
        self.raw = raw
        self.request = dict(request or {})
        self.sign_verified = sign_verified
        self.sign_charset = sign_charset
        values: dict[str, object] = {}
        unparsed: set[str] = set()
        for name, text in self.fields.items():
            kind = self.FIELD_TYPES.get(name)
            if kind is None:
                values[name] = text
                continue
            value, ok = _typed(kind, text, self.fields)
            values[name] = value
            if not ok:
                unparsed.add(name)
        self._values = values
        self.unparsed = frozenset(unparsed)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        if name in type(self).FIELDS or name in type(self).FIELD_TYPES:
            return None
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __repr__(self) -> str:
        shown = " ".join(f"{n}={self.fields[n]}" for n in self.SHOWN if n in self.fields)
        return f"<{type(self).__name__} {self.service}{' ' + shown if shown else ''}>"


class TradeQueryResult(ServiceResult):
    """single_trade_query: the online trade (``response/trade``)."""

    FIELDS = (
        "body", "buyer_email", "buyer_id", "currency", "discount", "flag_trade_locked", "gmt_close",
        "gmt_create", "gmt_last_modified_time", "gmt_payment", "is_total_fee_adjust", "operator_role",
        "out_trade_no", "payment_type", "price", "quantity", "seller_email", "seller_id", "subject",
        "time_out", "time_out_type", "to_buyer_fee", "to_seller_fee", "total_fee", "trade_no", "trade_status",
        "use_coupon", "additional_trade_status",
    )  # fmt: skip
    FIELD_TYPES: ClassVar[Mapping[str, _FieldType]] = {
        "total_fee": _IN_CURRENCY,
        "price": _IN_CURRENCY,
        "discount": _IN_CURRENCY,
        "to_buyer_fee": _IN_CURRENCY,
        "to_seller_fee": _IN_CURRENCY,
        "gmt_create": _TIME,
        "gmt_payment": _TIME,
        "gmt_close": _TIME,
        "gmt_last_modified_time": _TIME,
        "trade_status": _EnumField(TradeStatus),
        "additional_trade_status": _EnumField(AdditionalTradeStatus),
        "payment_type": _EnumField(PaymentType),
        "quantity": _INT,
    }
    SHOWN = ("out_trade_no", "trade_no", "trade_status")


class ForexRefundResult(ServiceResult):
    """forex_refund: the gateway accepted the refund (``is_success=T``; the body has no fields).

    With ``is_sync`` unset the final result arrives as a refund notification; accepted is not refunded.
    """

    @property
    def accepted(self) -> bool:
        """Always True: a refused refund raises instead."""
        return True


_SPOT_COMMON: Final = (
    "result_code", "error", "alipay_buyer_login_id", "alipay_buyer_user_id", "partner_trans_id",
    "alipay_trans_id", "alipay_pay_time", "currency", "trans_amount", "exchange_rate", "trans_amount_cny",
    "payment_inst",
)  # fmt: skip


class SpotPayResult(ServiceResult):
    """alipay.acquire.overseas.spot.pay: the barcode payment (``response/alipay``)."""

    FIELDS = _SPOT_COMMON
    FIELD_TYPES: ClassVar[Mapping[str, _FieldType]] = {
        "result_code": _RESULT_CODE,
        "trans_amount": _IN_CURRENCY,
        "trans_amount_cny": _CNY,
        "exchange_rate": _RATE,
        "alipay_pay_time": _TIME,
    }
    SHOWN = ("partner_trans_id", "alipay_trans_id", "result_code")


class OverseasQueryResult(ServiceResult):
    """alipay.acquire.overseas.query: the in-store transaction (``response/alipay``)."""

    FIELDS = (*_SPOT_COMMON, "alipay_trans_status", "out_trade_no", "forex_total_fee", "trans_forex_rate")
    FIELD_TYPES: ClassVar[Mapping[str, _FieldType]] = {
        "result_code": _RESULT_CODE,
        "alipay_trans_status": _EnumField(TradeStatus),
        "trans_amount": _IN_CURRENCY,
        "trans_amount_cny": _CNY,
        "forex_total_fee": _IN_CURRENCY,
        "exchange_rate": _RATE,
        "trans_forex_rate": _RATE,
        "alipay_pay_time": _TIME,
    }
    SHOWN = ("partner_trans_id", "alipay_trans_id", "alipay_trans_status")


class PrecreateResult(ServiceResult):
    """alipay.acquire.precreate: the QR code to show the buyer (``response/alipay``)."""

    FIELDS = (
        "result_code", "out_trade_no", "voucher_type", "qr_code", "pic_url", "small_pic_url", "big_pic_url",
        "detail_error_code", "detail_error_des", "error",
    )  # fmt: skip
    FIELD_TYPES: ClassVar[Mapping[str, _FieldType]] = {"result_code": _RESULT_CODE}
    SHOWN = ("out_trade_no", "result_code")


class SpotRefundResult(ServiceResult):
    """alipay.acquire.overseas.spot.refund: the refund (``response/alipay``)."""

    FIELDS = (
        "result_code", "error", "partner_trans_id", "partner_refund_id", "alipay_trans_id", "currency",
        "refund_amount", "exchange_rate", "refund_amount_cny",
    )  # fmt: skip
    FIELD_TYPES: ClassVar[Mapping[str, _FieldType]] = {
        "result_code": _RESULT_CODE,
        "refund_amount": _IN_CURRENCY,
        "refund_amount_cny": _CNY,
        "exchange_rate": _RATE,
    }
    SHOWN = ("partner_trans_id", "partner_refund_id", "result_code")


class SpotReverseResult(ServiceResult):
    """alipay.acquire.overseas.spot.reverse: the reversal (``response/alipay``)."""

    FIELDS = ("result_code", "error", "partner_trans_id", "alipay_trans_id", "alipay_reverse_time")
    FIELD_TYPES: ClassVar[Mapping[str, _FieldType]] = {
        "result_code": _RESULT_CODE,
        "alipay_reverse_time": _TIME,
    }
    SHOWN = ("partner_trans_id", "result_code")


class CancelResult(ServiceResult):
    """alipay.acquire.cancel: the cancellation (``response/alipay``); ``action`` says close or refund."""

    FIELDS = (
        "result_code", "out_trade_no", "trade_no", "retry_flag", "action", "error", "detail_error_code",
        "detail_error_des",
    )  # fmt: skip
    FIELD_TYPES: ClassVar[Mapping[str, _FieldType]] = {"result_code": _RESULT_CODE}
    SHOWN = ("out_trade_no", "result_code", "action")


# --- the XML services -------------------------------------------------------------------------------------

SINGLE_TRADE_QUERY: Final = ServiceDefinition(
    name=Service.SINGLE_TRADE_QUERY.value,
    kind="xml",
    params=(_id("trade_no", min_length=16), _id("out_trade_no")),
    idempotent=True,
    signs_response=True,
    result_type=TradeQueryResult,
    at_least_one=(("trade_no", "out_trade_no"),),
    trade_id_params=("out_trade_no", "trade_no"),
)

FOREX_REFUND: Final = ServiceDefinition(
    name=Service.FOREX_REFUND.value,
    kind="xml",
    params=(
        _id("out_return_no", required=True),
        _id("out_trade_no", required=True),
        _currency(required=True),
        _amount("return_amount", maximum=money.REFUND_MAX),
        _amount("return_rmb_amount", currency=(), fixed_currency="CNY", maximum=money.REFUND_MAX),
        Param("gmt_return", "compact", required=True, default=_now),
        _text("reason", max_length=100),
        Param("product_code", "choice", choices=("NEW_OVERSEAS_SELLER", "NEW_WAP_OVERSEAS_SELLER")),
        _json("split_fund_info", max_length=1600, apostrophes=True),
        Param("is_sync", "flag"),
        _url("notify_url"),
    ),
    result_type=ForexRefundResult,
    exactly_one=(("return_amount", "return_rmb_amount"),),
    checks=(_not_cny,),
)

SPOT_PAY: Final = ServiceDefinition(
    name=Service.SPOT_PAY.value,
    kind="xml",
    params=(
        Param("alipay_seller_id", "id", required=True, max_length=16, default=_partner),
        Param("quantity", "int", minimum=1),
        _text("trans_name", required=True, max_length=256),
        _id("partner_trans_id", required=True),
        _currency(required=True, max_length=8, choices=tuple(SPOT_PAY_CURRENCIES)),
        _currency("trans_currency", max_length=8),
        _amount("trans_amount", maximum=money.INSTORE_MAX, required=True),
        Param(
            "buyer_identity_code",
            "id",
            required=True,
            max_length=32,
            pattern=_BARCODE,
            pattern_hint="a 16-24 digit payment code starting with 25-30",
        ),
        Param(
            "identity_code_type",
            "choice",
            required=True,
            choices=("barcode", "qrcode"),
            default=_const("barcode"),
        ),
        Param("trans_create_time", "compact", required=True, default=_now),
        _text("memo", max_length=256),
        Param(
            "biz_product",
            "choice",
            required=True,
            choices=("OVERSEAS_MBARCODE_PAY",),
            default=_const("OVERSEAS_MBARCODE_PAY"),
        ),
        _json("extend_info", max_length=4000),
        _json("trade_information", max_length=6000),
        _url("notify_url"),
    ),
    signs_response=True,
    result_type=SpotPayResult,
    checks=(_trade_information_check,),
    trade_id_params=("partner_trans_id",),
)

OVERSEAS_QUERY: Final = ServiceDefinition(
    name=Service.OVERSEAS_QUERY.value,
    kind="xml",
    params=(_id("partner_trans_id"), _id("alipay_trans_id")),
    idempotent=True,
    signs_response=True,
    result_type=OverseasQueryResult,
    at_least_one=(("partner_trans_id", "alipay_trans_id"),),
    trade_id_params=("partner_trans_id",),
)

SPOT_REFUND: Final = ServiceDefinition(
    name=Service.SPOT_REFUND.value,
    kind="xml",
    params=(
        _id("partner_trans_id", required=True),
        _id("alipay_trans_id"),
        _id("partner_refund_id", required=True),
        _currency(required=True),
        _amount("refund_amount", maximum=money.INSTORE_MAX, required=True),
        _text("refund_reason", max_length=128),
        Param("is_sync", "flag"),
        _url("notify_url"),
    ),
    signs_response=True,
    result_type=SpotRefundResult,
    checks=(_refund_id_differs,),
    trade_id_params=("partner_trans_id",),
)

SPOT_REVERSE: Final = ServiceDefinition(
    name=Service.SPOT_REVERSE.value,
    kind="xml",
    params=(_id("partner_trans_id", required=True),),
    signs_response=True,
    result_type=SpotReverseResult,
    trade_id_params=("partner_trans_id",),
)

CANCEL: Final = ServiceDefinition(
    name=Service.CANCEL.value,
    kind="xml",
    params=(
        Param("timestamp", "datetime", required=True, default=_now),
        Param("terminal_timestamp", "epoch_ms"),
        _id("out_trade_no", required=True),
        _id("trade_no"),
    ),
    signs_response=True,
    result_type=CancelResult,
    has_timestamp=True,
)

PRECREATE: Final = ServiceDefinition(
    name=Service.PRECREATE.value,
    kind="xml",
    params=(
        Param("timestamp", "datetime", required=True, default=_now),
        Param("terminal_timestamp", "epoch_ms"),
        _id("out_trade_no", required=True),
        _text("subject", required=True, max_length=256),
        Param(
            "product_code",
            "choice",
            required=True,
            choices=("OVERSEAS_MBARCODE_PAY",),
            default=_const("OVERSEAS_MBARCODE_PAY"),
        ),
        _currency("trans_currency", max_length=8),
        _currency(max_length=8),
        _amount(
            "total_fee",
            currency=("trans_currency", "currency"),
            fixed_currency="CNY",
            maximum=money.INSTORE_MAX,
            required=True,
        ),
        _amount(
            "price", currency=("trans_currency", "currency"), fixed_currency="CNY", maximum=money.INSTORE_MAX
        ),
        Param("quantity", "int", minimum=1),
        _id("seller_id", max_length=32),
        _text("seller_email", max_length=100),
        _text("body", max_length=400),
        _url("show_url", max_length=400),
        _json("goods_detail", max_length=5000),
        _json("extend_params", max_length=4000),
        Param("it_b_pay", "text", pattern=_VALIDITY, pattern_hint="a validity such as 20m, 2h, 1d or 1c"),
        Param("qr_code_it_b_pay", "text", pattern=_VALIDITY, pattern_hint="a validity such as 20m, 2h or 1d"),
        _text("passback_parameters", max_length=512),
        _json("trade_information", max_length=6000),
        _url("notify_url", max_length=190),
    ),
    signs_response=True,
    result_type=PrecreateResult,
    checks=(_trade_information_check,),
    has_timestamp=True,
)

SERVICES: Final[Mapping[str, ServiceDefinition]] = {
    d.name: d
    for d in (
        CREATE_FOREX_TRADE,
        CREATE_FOREX_TRADE_WAP,
        SINGLE_TRADE_QUERY,
        FOREX_REFUND,
        NOTIFY_VERIFY,
        SPOT_PAY,
        PRECREATE,
        OVERSEAS_QUERY,
        SPOT_REFUND,
        SPOT_REVERSE,
        CANCEL,
        FOREX_RATE_FILE,
        FOREX_COMPARE_FILE,
        FOREX_LIQUIDATION_FILE,
    )
}


def get_service(service: str | ServiceDefinition) -> ServiceDefinition:
    """The definition of a service by wire name (``"forex_refund"``) or the definition itself."""
    if isinstance(service, ServiceDefinition):
        return service
    try:
        return SERVICES[str(service)]
    except KeyError:
        raise InvalidParameterError(f"unknown service {_shown(service)}", parameter="service") from None


# --- plain-text files -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateRecord:
    """One line of forex_rate_file: CNY per one unit of ``currency``, valid from ``valid_from``."""

    valid_from: datetime
    currency: str
    rate: Decimal
    line: str = field(repr=False)


@dataclass(frozen=True)
class TransactionRecord:
    """One line of forex_compare_file (transactions); ``transaction_type`` is ``P`` for payments."""

    partner_transaction_id: str
    amount: Decimal
    currency: str
    transaction_time: datetime | None
    settlement_time: datetime | None
    transaction_type: str
    service_charge: Decimal | None
    status: str
    remarks: str
    line: str = field(repr=False)


@dataclass(frozen=True)
class SettlementRecord:
    """One line of forex_liquidation_file (settlements)."""

    partner_transaction_id: str
    amount: Decimal
    currency: str
    payment_time: datetime | None
    settlement_time: datetime | None
    transaction_type: str
    service_charge: Decimal | None
    status: str
    remarks: str
    line: str = field(repr=False)


R = TypeVar("R", RateRecord, TransactionRecord, SettlementRecord)


@dataclass(frozen=True)
class FileResult(Generic[R]):
    """A downloaded file parsed into records; ``no_data`` is True when the gateway said the period is empty.

    Iterating it iterates the records.
    """

    service: str
    records: tuple[R, ...]
    raw: bytes = field(repr=False)
    no_data: bool = False

    def __iter__(self) -> Iterator[R]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)


#: Text answers meaning "nothing in this period" (forex_compare_file / forex_liquidation_file).
FILE_NO_DATA: Final = ("No balance account data in the period", "No balance amount data in the period")

#: Documented text errors of the file services: phrase -> (error class, explanation).
FILE_ERRORS: Final[tuple[tuple[str, type[AlipayError], str], ...]] = (
    ("Over 10 days to Date period", AlipayBusinessError, "the date range is longer than 10 days"),
    ("Finish date ahead of begin date", AlipayBusinessError, "end_date is before start_date"),
    ("Illegal Date period", AlipayBusinessError, "the date range is missing or invalid"),
    ("Finish date not ahead of today", AlipayBusinessError, "end_date must be before today (Beijing time)"),
    ("Date format incorrect", AlipayBusinessError, "a date is not in the form yyyyMMdd"),
    ("Over limit balance amount record", AlipayBusinessError, "too many records: ask for a shorter range"),
    ("System exception", AlipaySystemError, "temporary failure at Alipay: try again later"),
    (
        "Internet connected exception",
        AlipaySystemError,
        "temporary network failure at Alipay: try again later",
    ),
)


def parse_file(definition: ServiceDefinition, text: str, raw: bytes) -> FileResult[Any]:
    """Parse a file service's plain-text answer into records, or raise the typed error its text documents.

    A body whose lines are not records and that names no documented error raises GatewayResponseError.
    """
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        if definition is FOREX_RATE_FILE:
            raise GatewayResponseError("forex_rate_file answered an empty file", raw_response=raw)
        return FileResult(definition.name, (), raw, no_data=True)
    minimum_fields = 4 if definition is FOREX_RATE_FILE else 8
    if lines[0].count("|") + 1 < minimum_fields:
        if definition is not FOREX_RATE_FILE and any(phrase in text for phrase in FILE_NO_DATA):
            return FileResult(definition.name, (), raw, no_data=True)
        _raise_file_error(definition, text, raw)
    records: list[Any] = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(_file_record(definition, line))
        except (AlipayError, ValueError, IndexError) as exc:
            raise GatewayResponseError(
                f"{definition.name} line {number} is not a record: {_shown(line)} ({exc})",
                service=definition.name,
                raw_response=raw,
            ) from None
    return FileResult(definition.name, tuple(records), raw)


def _raise_file_error(definition: ServiceDefinition, text: str, raw: bytes) -> None:
    for phrase, error_class, explanation in FILE_ERRORS:
        if phrase in text:
            message = f"{definition.name} refused: {explanation} (gateway said {_shown(text.strip()[:200])})"
            raise error_class(message, service=definition.name, description=explanation, raw_response=raw)
    raise GatewayResponseError(
        f"{definition.name} answered neither records nor a known error: {_shown(text[:200])}",
        service=definition.name,
        raw_response=raw,
    )


def _optional_time(text: str) -> datetime | None:
    return clock_mod.parse_compact(text) if text else None


def _file_record(definition: ServiceDefinition, line: str) -> Any:
    parts = line.split("|")
    if definition is FOREX_RATE_FILE:
        if len(parts) != 4:
            raise ValueError(f"expected 4 fields, found {len(parts)}")
        day, time_of_day, currency, rate = parts
        money.exponent(currency)
        return RateRecord(
            valid_from=clock_mod.parse_compact(day + time_of_day, parameter="rate time"),
            currency=currency,
            rate=money.parse_rate(rate, parameter="rate"),
            line=line,
        )
    if len(parts) < 8:
        raise ValueError(f"expected at least 8 fields, found {len(parts)}")
    remarks = "|".join(parts[8:])
    pid, amount, currency, first_time, settled, kind, charge, status = parts[:8]
    money.exponent(currency)
    common: dict[str, Any] = {
        "partner_transaction_id": pid,
        "amount": _response_amount(amount, currency),
        "currency": currency,
        "settlement_time": _optional_time(settled),
        "transaction_type": kind,
        "service_charge": _response_amount(charge, currency) if charge else None,
        "status": status,
        "remarks": remarks,
        "line": line,
    }
    if definition is FOREX_LIQUIDATION_FILE:
        return SettlementRecord(payment_time=_optional_time(first_time), **common)
    return TransactionRecord(transaction_time=_optional_time(first_time), **common)
