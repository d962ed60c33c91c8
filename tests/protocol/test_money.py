"""Amounts: only canonical ASCII decimals in, exactly the currency's decimals out, never a rounding."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_alipay.protocol.errors import AmountError, InvalidParameterError
from django_alipay.protocol.money import (
    INSTORE_MAX,
    ONLINE_MAX,
    ONLINE_MIN,
    REFUND_MAX,
    exponent,
    format_amount,
    from_minor_units,
    parse_amount,
    parse_rate,
    quantum,
    to_amount,
    to_minor_units,
)

# --- currencies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("currency", "places"), [("JPY", 0), ("KRW", 0), ("USD", 2), ("EUR", 2), ("CNY", 2)])
def test_exponent_follows_alipay_minor_units(currency, places):
    assert exponent(currency) == places


@pytest.mark.parametrize(
    "bad", ["usd", "Usd", "US", "USDD", " USD", "USD\n", "ＵＳＤ", "", None, b"USD", 840]
)
def test_a_currency_must_be_three_uppercase_ascii_letters(bad):
    with pytest.raises(InvalidParameterError) as info:
        exponent(bad)
    assert info.value.parameter == "currency"


def test_a_bad_currency_is_refused_by_parse_and_format_too():
    with pytest.raises(InvalidParameterError) as info:
        parse_amount("10.00", "usd")
    assert info.value.parameter == "currency"
    with pytest.raises(InvalidParameterError):
        format_amount(Decimal("10.00"), "usd")


def test_quantum():
    assert quantum("USD") == Decimal("0.01")
    assert quantum("JPY") == Decimal("1")


def test_range_constants_of_the_spec():
    assert Decimal("0.01") == ONLINE_MIN
    assert Decimal("1000000.00") == ONLINE_MAX
    assert Decimal("1000000.00") == REFUND_MAX
    assert Decimal("100000000.00") == INSTORE_MAX


# --- parse_amount ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("10.1", "USD", "10.10"),
        ("10", "USD", "10.00"),
        ("0.01", "USD", "0.01"),
        ("0", "USD", "0.00"),
        ("0.5", "EUR", "0.50"),
        ("100", "JPY", "100"),
        ("0", "KRW", "0"),
        ("100000000.00", "HKD", "100000000.00"),
        ("100000000", "JPY", "100000000"),
    ],
)
def test_parse_amount_accepts_canonical_text_and_quantises(text, currency, expected):
    value = parse_amount(text, currency)
    assert value == Decimal(expected)
    assert str(value) == expected  # the exponent is the currency's, not the text's


REJECTED_TEXT = [
    ("1e3", "USD"),
    ("1E3", "USD"),
    ("１０", "USD"),  # full-width digits
    ("١٠", "USD"),  # Arabic-Indic digits
    ("1_000", "USD"),
    ("1,000", "USD"),
    ("1,00", "USD"),
    (" 10.00", "USD"),
    ("10.00 ", "USD"),
    ("10.00\n", "USD"),
    ("+1", "USD"),
    ("-1", "USD"),
    ("-0.00", "USD"),
    ("NaN", "USD"),
    ("nan", "USD"),
    ("Infinity", "USD"),
    ("inf", "USD"),
    (".5", "USD"),
    ("5.", "USD"),
    ("01.00", "USD"),
    ("00", "USD"),
    ("10.001", "USD"),
    ("0.001", "USD"),
    ("100.999", "USD"),
    ("100.5", "JPY"),
    ("100.0", "JPY"),
    ("100.", "JPY"),
    ("1.5", "KRW"),
    ("", "USD"),
    ("abc", "USD"),
    ("1 000", "USD"),
    ("0x10", "USD"),
    ("10.0\u0660", "USD"),
]


@pytest.mark.parametrize(("text", "currency"), REJECTED_TEXT)
def test_parse_amount_rejects_non_canonical_text(text, currency):
    with pytest.raises(AmountError) as info:
        parse_amount(text, currency, parameter="total_fee")
    message = str(info.value)
    assert info.value.parameter == "total_fee"
    assert "total_fee" in message
    assert ascii(text) in message  # the value, escaped, so look-alike digits are visible
    assert currency in message  # and what is allowed for this currency


def test_the_message_says_how_many_decimals_are_allowed():
    with pytest.raises(AmountError, match="at most 2 decimals"):
        parse_amount("10.001", "USD")
    with pytest.raises(AmountError, match="whole numbers"):
        parse_amount("100.5", "JPY")


@pytest.mark.parametrize("value", [10.1, 10, True, Decimal("10.10"), b"10.10", None, ["10"]])
def test_parse_amount_takes_text_only(value):
    with pytest.raises(AmountError) as info:
        parse_amount(value, "USD")
    assert info.value.parameter == "amount"


def test_default_range_is_zero_to_the_in_store_maximum_inclusive():
    assert parse_amount("0.00", "USD") == Decimal("0")
    assert parse_amount("100000000.00", "USD") == INSTORE_MAX
    with pytest.raises(AmountError, match="out of range"):
        parse_amount("100000000.01", "USD")


def test_explicit_range_is_inclusive():
    kwargs = {"minimum": ONLINE_MIN, "maximum": ONLINE_MAX, "parameter": "total_fee"}
    assert parse_amount("0.01", "USD", **kwargs) == Decimal("0.01")
    assert parse_amount("1000000.00", "USD", **kwargs) == Decimal("1000000")
    for text in ("0.00", "0", "1000000.01"):
        with pytest.raises(AmountError) as info:
            parse_amount(text, "USD", **kwargs)
        assert info.value.parameter == "total_fee"


def test_a_huge_amount_is_refused_with_a_short_message():
    with pytest.raises(AmountError) as info:
        parse_amount("9" * 5000, "USD")
    assert len(str(info.value)) < 300


# --- to_amount ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        (Decimal("10.1"), "USD", "10.10"),
        (Decimal("10.100"), "USD", "10.10"),
        (Decimal("1E+3"), "USD", "1000.00"),
        (Decimal("100.00"), "JPY", "100"),
        (Decimal("0E-10"), "USD", "0.00"),
    ],
)
def test_to_amount_validates_a_decimal_without_rounding(value, currency, expected):
    assert str(to_amount(value, currency)) == expected


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        (Decimal("10.001"), "USD"),
        (Decimal("1E-7"), "USD"),
        (Decimal("100.5"), "JPY"),
        (Decimal("-1"), "USD"),
        (Decimal("-0"), "USD"),
        (Decimal("NaN"), "USD"),
        (Decimal("sNaN"), "USD"),
        (Decimal("Infinity"), "USD"),
        (Decimal("100000000.01"), "USD"),
        (10.1, "USD"),
        (10, "USD"),
        (True, "USD"),
        ("10.10", "USD"),
    ],
)
def test_to_amount_rejects(value, currency):
    with pytest.raises(AmountError):
        to_amount(value, currency)


# --- format_amount --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        (Decimal("1"), "USD", "1.00"),
        (Decimal("0.1"), "USD", "0.10"),
        (Decimal("0"), "USD", "0.00"),
        (Decimal("10.50"), "EUR", "10.50"),
        (Decimal("10.500"), "EUR", "10.50"),
        (Decimal("100"), "JPY", "100"),
        (Decimal("100.00"), "JPY", "100"),
        (Decimal("1E+3"), "USD", "1000.00"),
        (Decimal("1E+3"), "KRW", "1000"),
        (Decimal("1000000.00"), "USD", "1000000.00"),
        (Decimal("123456789012.34"), "USD", "123456789012.34"),
    ],
)
def test_format_amount_writes_exactly_the_currency_decimals(value, currency, expected):
    assert format_amount(value, currency) == expected


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        (Decimal("1E-7"), "USD"),
        (Decimal("0.001"), "USD"),
        (Decimal("10.005"), "USD"),
        (Decimal("100.5"), "JPY"),
        (Decimal("0.1"), "KRW"),
        (Decimal("-1"), "USD"),
        (Decimal("-0.00"), "USD"),
        (Decimal("NaN"), "USD"),
        (Decimal("-Infinity"), "USD"),
        (Decimal("1E+999999"), "USD"),
        (Decimal("1E-999999"), "USD"),
        (1.0, "USD"),
        (0.1, "USD"),
        (1, "USD"),
        (False, "USD"),
        ("1.00", "USD"),
        (None, "USD"),
    ],
)
def test_format_amount_refuses_with_the_library_error_never_type_error(value, currency):
    with pytest.raises(AmountError):
        format_amount(value, currency)


def test_format_never_rounds_half_cents():
    # '%.2f' and quantize() would both write 10.01 or 10.00 here; money must not move silently.
    with pytest.raises(AmountError, match="never rounded"):
        format_amount(Decimal("10.005"), "USD")


# --- properties -----------------------------------------------------------------------------------

TWO_DECIMAL = ["USD", "EUR", "HKD", "GBP", "CNY"]
ZERO_DECIMAL = ["JPY", "KRW"]


@st.composite
def amounts(draw):
    """A currency and a Decimal that fits its exponent, written in any of Decimal's equivalent forms."""
    currency = draw(st.sampled_from(TWO_DECIMAL + ZERO_DECIMAL))
    places = 0 if currency in ZERO_DECIMAL else 2
    units = draw(st.integers(min_value=0, max_value=int(INSTORE_MAX.scaleb(places))))
    value = Decimal(units).scaleb(-places)
    # The same number with a different exponent (1E+3, 1000.000): format must not care.
    shift = draw(st.integers(min_value=-3, max_value=3))
    if shift > 0:
        value = value.quantize(Decimal(1).scaleb(-(places + shift)))
    elif shift < 0 and value == value.to_integral_value():
        value = value.normalize()
    return currency, value


@given(amounts())
def test_parse_of_format_is_the_identity(sample):
    currency, value = sample
    text = format_amount(value, currency)
    assert parse_amount(text, currency) == value


@given(amounts())
def test_format_never_writes_an_exponent_and_always_the_currency_decimals(sample):
    currency, value = sample
    text = format_amount(value, currency)
    assert "E" not in text
    assert "e" not in text
    if currency in ZERO_DECIMAL:
        assert text.isdigit()
        assert text.isascii()
    else:
        whole, _, cents = text.partition(".")
        assert whole.isdigit()
        assert len(cents) == 2
        assert cents.isdigit()


@given(st.decimals(allow_nan=True, allow_infinity=True), st.sampled_from(TWO_DECIMAL + ZERO_DECIMAL))
def test_format_of_any_decimal_either_is_exact_or_refuses(value, currency):
    try:
        text = format_amount(value, currency)
    except AmountError:
        return
    assert Decimal(text) == value
    assert "E" not in text
    assert "e" not in text


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(ZERO_DECIMAL))
def test_zero_exponent_currencies_take_integers_only(units, currency):
    assert format_amount(Decimal(units), currency) == str(units)
    with pytest.raises(AmountError):
        format_amount(Decimal(units) + Decimal("0.5"), currency)
    with pytest.raises(AmountError):
        parse_amount(f"{units}.0", currency)


@given(st.one_of(st.text(max_size=20), st.from_regex(r"[0-9.]{1,12}", fullmatch=True)))
def test_parse_amount_accepts_only_what_it_can_write_back(text):
    try:
        value = parse_amount(text, "USD")
    except AmountError:
        return
    # Whatever is accepted is canonical: writing it back gives the same text up to trailing zeros.
    assert format_amount(value, "USD") in (text, text + "0", text + ".00")


# --- minor units and rates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "units"),
    [
        ("10.50", "USD", 1050),
        ("0.01", "USD", 1),
        ("0", "USD", 0),
        ("100", "JPY", 100),
        ("1000000.00", "EUR", 10**8),
    ],
)
def test_minor_units_both_ways(value, currency, units):
    assert to_minor_units(Decimal(value), currency) == units
    assert from_minor_units(units, currency) == Decimal(value)
    assert format_amount(from_minor_units(units, currency), currency) == format_amount(
        Decimal(value), currency
    )


@pytest.mark.parametrize("units", [10**21 - 1, 10**20 + 7, 2**64 + 1])
def test_minor_units_of_very_large_amounts_are_exact(units):
    # Float arithmetic (cents / 100.0) would lose the last digits of these.
    assert to_minor_units(from_minor_units(units, "USD"), "USD") == units


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100", Decimal("100")])
def test_from_minor_units_takes_a_non_negative_int(bad):
    with pytest.raises(AmountError):
        from_minor_units(bad, "USD")


def test_to_minor_units_refuses_sub_unit_amounts():
    with pytest.raises(AmountError):
        to_minor_units(Decimal("10.005"), "USD")
    with pytest.raises(AmountError):
        to_minor_units(Decimal("1.5"), "JPY")


@pytest.mark.parametrize(
    ("text", "expected"), [("6.64640000", "6.64640000"), ("6.5487", "6.5487"), ("7", "7")]
)
def test_parse_rate_keeps_every_decimal(text, expected):
    rate = parse_rate(text)
    assert rate == Decimal(expected)
    assert str(rate) == expected


@pytest.mark.parametrize(
    "bad",
    ["0", "0.00000000", "-6.6", "+6.6", "6.6e1", " 6.6", "６.６", ".5", "6.", "NaN", "", 6.6, Decimal("6.6")],
)
def test_parse_rate_is_strict(bad):
    with pytest.raises(InvalidParameterError) as info:
        parse_rate(bad)
    assert info.value.parameter == "exchange_rate"
