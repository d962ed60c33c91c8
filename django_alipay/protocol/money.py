"""Amounts on the wire: strict parsing and exact formatting of Decimal money in each currency's exponent."""

from __future__ import annotations

import decimal
import re
from decimal import Decimal
from typing import Final

from django_alipay.protocol.errors import AmountError, InvalidParameterError

__all__ = [
    "DEFAULT_MAX",
    "DEFAULT_MIN",
    "INSTORE_MAX",
    "ONLINE_MAX",
    "ONLINE_MIN",
    "REFUND_MAX",
    "ZERO_EXPONENT_CURRENCIES",
    "exponent",
    "format_amount",
    "from_minor_units",
    "parse_amount",
    "parse_rate",
    "quantum",
    "to_amount",
    "to_minor_units",
]

#: Lowest online amount (``total_fee``, ``rmb_fee``: Number(8,2), 0.01-1000000.00).
ONLINE_MIN: Final = Decimal("0.01")
#: Highest online amount.
ONLINE_MAX: Final = Decimal("1000000.00")
#: Highest refund amount (``return_amount``: Number(9,2)).
REFUND_MAX: Final = Decimal("1000000.00")
#: Highest in-store amount (``trans_amount``, ``total_fee`` of precreate: Number(11,2)).
INSTORE_MAX: Final = Decimal("100000000.00")
#: Range parse_amount and to_amount use when the caller gives none: every amount any service accepts.
DEFAULT_MIN: Final = Decimal("0")
DEFAULT_MAX: Final = INSTORE_MAX

#: Currencies whose amounts Alipay takes in whole units (forex_refund names JPY, spot refund JPY and KRW).
ZERO_EXPONENT_CURRENCIES: Final = frozenset({"JPY", "KRW"})

_CURRENCY = re.compile(r"[A-Z]{3}")
# Canonical decimal text, one pattern per exponent; [0-9] rather than \d so that no non-ASCII digit matches.
_AMOUNT = {
    0: re.compile(r"(0|[1-9][0-9]*)"),
    2: re.compile(r"(0|[1-9][0-9]*)(\.[0-9]{1,2})?"),
}
# Well-formed apart from carrying more decimals than the currency allows: worth its own message.
_TOO_PRECISE = re.compile(r"(0|[1-9][0-9]*)\.[0-9]+")
_RATE = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]{1,16})?")
_MAX_SHOWN = 40
_SANITY_DIGITS = 20


def _shown(value: object) -> str:
    """A short, escaped rendering of untrusted input for an error message."""
    # Plain notation for a Decimal of sensible size; anything else escaped and cut.
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and len(value.as_tuple().digits) <= _MAX_SHOWN // 2
        and -_MAX_SHOWN // 2 < value.adjusted() < _MAX_SHOWN // 2
    ):
        return format(value, "f")
    text = ascii(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def exponent(currency: str) -> int:
    """Number of decimals Alipay allows in amounts of ``currency``: 0 for JPY and KRW, 2 otherwise.

    ``currency`` must be three uppercase ASCII letters; lowercase is refused rather than silently uppercased,
    because the gateway compares currencies as sent.
    """
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise InvalidParameterError(
            f"currency {_shown(currency)} is not a currency code: use three uppercase letters such as USD",
            parameter="currency",
        )
    return 0 if currency in ZERO_EXPONENT_CURRENCIES else 2


def quantum(currency: str) -> Decimal:
    """The smallest amount of ``currency`` on the wire: Decimal("0.01"), or Decimal("1") for JPY and KRW."""
    return Decimal(1).scaleb(-exponent(currency))


def _allowed(currency: str, places: int) -> str:
    if places == 0:
        return f"{currency} amounts are whole numbers of ASCII digits, such as 100"
    return f"{currency} amounts are ASCII digits with at most {places} decimals, such as 10.50"


def _exact(value: Decimal, places: int) -> Decimal | None:
    """``value`` with exactly ``places`` decimals, or None when that would change its value."""
    # A private context wide enough for any finite value, so quantize neither fails nor rounds silently.
    context = decimal.Context(prec=max(28, value.adjusted() + places + 2), Emax=decimal.MAX_EMAX)
    try:
        result = value.quantize(Decimal(1).scaleb(-places), context=context)
    except decimal.InvalidOperation:
        return None
    return result if result == value else None


def _check_range(
    value: Decimal, currency: str, minimum: Decimal | None, maximum: Decimal | None, parameter: str
) -> None:
    low = DEFAULT_MIN if minimum is None else minimum
    high = DEFAULT_MAX if maximum is None else maximum
    if value < low or value > high:
        raise AmountError(
            f"{parameter} {_shown(value)} {currency} is out of range: allowed are "
            f"{format(low, 'f')} to {format(high, 'f')}",
            parameter=parameter,
        )


def parse_amount(
    text: str,
    currency: str,
    *,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
    parameter: str = "amount",
) -> Decimal:
    """Parse a wire amount of ``currency`` into a Decimal quantised to the currency's exponent.

    Only canonical ASCII decimal text is accepted: no sign, exponent, spaces, separators, leading zeros,
    bare point or non-ASCII digits, and no more decimals than the currency has. Nothing is ever rounded.
    The range is inclusive, ``minimum`` 0 and ``maximum`` 100000000.00 unless given. Raises AmountError
    naming ``parameter`` and the value.
    """
    places = exponent(currency)
    if not isinstance(text, str):
        raise AmountError(
            f"{parameter} must be text, not {type(text).__name__} {_shown(text)}: "
            f"{_allowed(currency, places)}",
            parameter=parameter,
        )
    if not _AMOUNT[places].fullmatch(text):
        if _TOO_PRECISE.fullmatch(text):
            reason = f"has too many decimals for {currency}"
        else:
            reason = "is not a plain decimal amount"
        raise AmountError(
            f"{parameter} {_shown(text)} {reason}: {_allowed(currency, places)}",
            parameter=parameter,
        )
    value = Decimal(text)
    _check_range(value, currency, minimum, maximum, parameter)
    return _quantised(value, currency, places, parameter)


def to_amount(
    value: Decimal,
    currency: str,
    *,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
    parameter: str = "amount",
) -> Decimal:
    """Check a Decimal as an amount of ``currency`` and return it quantised to the currency's exponent.

    The value must be finite, not negative (``-0`` included), within the range (as parse_amount) and
    exactly representable with the currency's decimals: ``Decimal("10.100")`` is 10.10 USD,
    ``Decimal("10.001")`` is an AmountError. Never rounds. Floats, ints and bools are refused: money arrives
    as Decimal or as text.
    """
    places = exponent(currency)
    _check_decimal(value, parameter)
    _check_range(value, currency, minimum, maximum, parameter)
    return _quantised(value, currency, places, parameter)


def _check_decimal(value: object, parameter: str) -> None:
    if not isinstance(value, Decimal):
        raise AmountError(
            f"{parameter} must be a Decimal, not {type(value).__name__} {_shown(value)}",
            parameter=parameter,
        )
    if not value.is_finite():
        raise AmountError(f"{parameter} {value} is not a finite amount", parameter=parameter)
    if value.is_signed():
        raise AmountError(f"{parameter} {_shown(value)} is negative", parameter=parameter)
    # A sanity bound far above any service's range, so a hostile exponent cannot make quantize build
    # a number with millions of digits.
    if value.adjusted() >= _SANITY_DIGITS:
        raise AmountError(f"{parameter} {_shown(value)} is too large to be an amount", parameter=parameter)


def _quantised(value: Decimal, currency: str, places: int, parameter: str) -> Decimal:
    exact = _exact(value, places)
    if exact is None:
        raise AmountError(
            f"{parameter} {_shown(value)} has too many decimals for {currency}: "
            f"{_allowed(currency, places)}; it is never rounded",
            parameter=parameter,
        )
    return exact


def format_amount(amount: Decimal, currency: str, *, parameter: str = "amount") -> str:
    """Write a Decimal amount as the gateway expects it: exactly the currency's decimals, no exponent.

    ``Decimal("1")`` USD is "1.00", ``Decimal("1E+3")`` USD "1000.00", ``Decimal("100")`` JPY "100". An amount
    needing more decimals than the currency has, a negative, NaN or infinite amount, or anything that is not a
    Decimal raises AmountError; nothing is rounded. No service range is applied here (that is the caller's
    choice of minimum/maximum in parse_amount or to_amount), only a sanity bound of 10**20.
    """
    places = exponent(currency)
    _check_decimal(amount, parameter)
    return format(_quantised(amount, currency, places, parameter), "f")


def parse_rate(text: str, *, parameter: str = "exchange_rate") -> Decimal:
    """Parse an exchange rate such as "6.64640000" into a positive Decimal, keeping every decimal given.

    Accepts ASCII digits with an optional point and 1 to 16 decimals, no sign, exponent or spaces.
    Raises InvalidParameterError naming ``parameter`` otherwise, and for a zero rate.
    """
    if not isinstance(text, str) or not _RATE.fullmatch(text):
        raise InvalidParameterError(
            f"{parameter} {_shown(text)} is not an exchange rate: use ASCII digits such as 6.64640000",
            parameter=parameter,
        )
    rate = Decimal(text)
    if rate == 0:
        raise InvalidParameterError(f"{parameter} {_shown(text)} is zero", parameter=parameter)
    return rate


def to_minor_units(amount: Decimal, currency: str, *, parameter: str = "amount") -> int:
    """The amount as an integer count of the currency's smallest unit (10.50 USD -> 1050, 100 JPY -> 100)."""
    places = exponent(currency)
    _check_decimal(amount, parameter)
    # Read the digits of the quantised value instead of scaling it, which would round past 28 digits.
    digits = _quantised(amount, currency, places, parameter).as_tuple().digits
    return int("".join(map(str, digits)))


def from_minor_units(units: int, currency: str, *, parameter: str = "amount") -> Decimal:
    """The Decimal amount for a count of the currency's smallest unit (1050 USD -> Decimal("10.50"))."""
    places = exponent(currency)
    if isinstance(units, bool) or not isinstance(units, int):
        raise AmountError(
            f"{parameter} minor units must be an int, not {type(units).__name__} {_shown(units)}",
            parameter=parameter,
        )
    if units < 0:
        raise AmountError(f"{parameter} minor units {units} are negative", parameter=parameter)
    # Built from the tuple, so the value is exact however many digits it has.
    return Decimal((0, tuple(int(d) for d in str(units)), -places))
