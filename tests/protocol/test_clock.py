"""Beijing time at the protocol edge: day boundaries, strict wire formats, aware datetimes, a test clock."""

import threading
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_alipay.protocol.clock import (
    BEIJING,
    Clock,
    FixedClock,
    SystemClock,
    beijing_date,
    beijing_now,
    epoch_millis,
    format_compact,
    format_date,
    format_datetime,
    from_epoch_millis,
    now,
    parse_any_datetime,
    parse_compact,
    parse_date,
    parse_datetime,
    parse_epoch_millis,
    same_beijing_day,
    to_beijing,
)
from django_alipay.protocol.errors import TimeFormatError

LA = ZoneInfo("America/Los_Angeles")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def la(*args, fold=0):
    return datetime(*args, tzinfo=LA, fold=fold)


def in_utc(dt):
    # Python answers == False between zones when one side is an ambiguous or skipped wall time (PEP 495),
    # so instants are compared in UTC.
    return dt.astimezone(UTC)


def test_beijing_is_asia_shanghai():
    assert BEIJING.key == "Asia/Shanghai"
    assert utc(2024, 3, 1).astimezone(BEIJING).utcoffset() == timedelta(hours=8)


# --- the REVERSE day boundary: same Beijing day only ----------------------------------------------


def test_last_second_of_a_beijing_day_in_utc():
    instant = utc(2024, 3, 1, 15, 59, 59)
    assert format_datetime(instant) == "2024-03-01 23:59:59"
    assert beijing_date(instant) == date(2024, 3, 1)


def test_first_second_of_the_next_beijing_day_in_utc():
    instant = utc(2024, 3, 1, 16, 0, 0)
    assert format_datetime(instant) == "2024-03-02 00:00:00"
    assert format_compact(instant) == "20240302000000"
    assert format_date(instant) == "20240302"
    assert beijing_date(instant) == date(2024, 3, 2)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        # UTC: the Beijing day runs from 16:00Z to 15:59:59Z.
        (utc(2024, 3, 1, 15, 59, 59), utc(2024, 3, 1, 16, 0, 0), False),
        (utc(2024, 3, 1, 16, 0, 0), utc(2024, 3, 2, 15, 59, 59), True),
        (utc(2024, 3, 1, 0, 0, 0), utc(2024, 3, 1, 15, 59, 59), True),
        (utc(2024, 3, 1, 0, 0, 0), utc(2024, 3, 1, 23, 0, 0), False),
        # Asia/Shanghai: the calendar day itself.
        (
            datetime(2024, 3, 1, 0, 0, tzinfo=SHANGHAI),
            datetime(2024, 3, 1, 23, 59, 59, tzinfo=SHANGHAI),
            True,
        ),
        (
            datetime(2024, 3, 1, 23, 59, 59, tzinfo=SHANGHAI),
            datetime(2024, 3, 2, 0, 0, tzinfo=SHANGHAI),
            False,
        ),
        # Mixed zones describing the boundary instants.
        (utc(2024, 3, 1, 15, 59, 59), datetime(2024, 3, 1, 0, 0, tzinfo=SHANGHAI), True),
        (utc(2024, 3, 1, 16, 0, 0), datetime(2024, 3, 1, 23, 59, 59, tzinfo=SHANGHAI), False),
        # Los Angeles in winter (PST, UTC-8): the Beijing day changes at 08:00 local time.
        (la(2024, 3, 1, 7, 59, 59), utc(2024, 3, 1, 15, 59, 59), True),
        (la(2024, 3, 1, 7, 59, 59), la(2024, 3, 1, 8, 0, 0), False),
        (la(2024, 2, 29, 8, 0, 0), la(2024, 3, 1, 7, 59, 59), True),
        # The day before the spring-forward switch (PST): still 08:00 local.
        (la(2024, 3, 9, 7, 59, 59), la(2024, 3, 9, 8, 0, 0), False),
        # Switch day 2024-03-10 (02:00 PST -> 03:00 PDT): the change moves to 09:00 local.
        (la(2024, 3, 10, 1, 30), la(2024, 3, 10, 3, 30), True),  # across the skipped hour
        (la(2024, 3, 10, 8, 0, 0), la(2024, 3, 10, 8, 59, 59), True),
        (la(2024, 3, 10, 8, 59, 59), la(2024, 3, 10, 9, 0, 0), False),
        (la(2024, 3, 10, 9, 0, 0), utc(2024, 3, 10, 16, 0, 0), True),
        # Fall-back day 2024-11-03: 01:30 happens twice (PDT then PST), both on Beijing's 11-03.
        (la(2024, 11, 3, 1, 30, fold=0), la(2024, 11, 3, 1, 30, fold=1), True),
        (la(2024, 11, 3, 8, 59, 59), la(2024, 11, 3, 9, 0, 0), True),
        (la(2024, 11, 3, 7, 59, 59), la(2024, 11, 3, 8, 0, 0), False),
    ],
)
def test_same_beijing_day_whatever_zone_the_datetimes_carry(a, b, same):
    assert same_beijing_day(a, b) is same
    assert same_beijing_day(b, a) is same


def test_the_la_switch_day_boundaries_in_beijing_time():
    assert format_datetime(la(2024, 3, 10, 8, 59, 59)) == "2024-03-10 23:59:59"
    assert format_datetime(la(2024, 3, 10, 9, 0, 0)) == "2024-03-11 00:00:00"
    assert format_datetime(la(2024, 11, 3, 1, 30, fold=0)) == "2024-11-03 16:30:00"
    assert format_datetime(la(2024, 11, 3, 1, 30, fold=1)) == "2024-11-03 17:30:00"


# --- formatting -----------------------------------------------------------------------------------


def test_formats_are_in_beijing_time_whatever_the_input_zone():
    instant = la(2024, 7, 4, 9, 5, 7)  # PDT, UTC-7 -> 16:05:07Z -> 00:05:07 next day in Beijing
    assert format_datetime(instant) == "2024-07-05 00:05:07"
    assert format_compact(instant) == "20240705000507"
    assert format_date(instant) == "20240705"


def test_format_drops_microseconds_without_rounding_up():
    assert format_datetime(utc(2024, 3, 1, 15, 59, 59, 999999)) == "2024-03-01 23:59:59"


def test_format_date_of_a_plain_date_is_that_date():
    assert format_date(date(2024, 2, 29)) == "20240229"


@pytest.mark.parametrize("formatter", [format_datetime, format_compact, format_date])
def test_naive_datetimes_are_refused_by_formatters(formatter):
    with pytest.raises(TimeFormatError, match="naive"):
        formatter(datetime(2024, 3, 1, 12, 0, 0))


@pytest.mark.parametrize("formatter", [format_datetime, format_compact, format_date])
@pytest.mark.parametrize("value", ["2024-03-01 12:00:00", 1709308799, None])
def test_formatters_refuse_what_is_not_a_datetime(formatter, value):
    with pytest.raises(TimeFormatError):
        formatter(value)


def test_format_datetime_refuses_a_date():
    with pytest.raises(TimeFormatError):
        format_datetime(date(2024, 3, 1))


@pytest.mark.parametrize(
    "call",
    [
        lambda: beijing_date(datetime(2024, 3, 1)),
        lambda: same_beijing_day(datetime(2024, 3, 1), utc(2024, 3, 1)),
        lambda: same_beijing_day(utc(2024, 3, 1), datetime(2024, 3, 1)),
        lambda: epoch_millis(datetime(2024, 3, 1)),
        lambda: to_beijing(datetime(2024, 3, 1)),
        lambda: FixedClock(datetime(2024, 3, 1)),
        lambda: FixedClock(utc(2024, 3, 1)).set(datetime(2024, 3, 1)),
    ],
)
def test_naive_datetimes_are_refused_everywhere(call):
    with pytest.raises(TimeFormatError):
        call()


def test_a_tzinfo_that_gives_no_offset_counts_as_naive():
    class NoOffset(tzinfo):
        def utcoffset(self, dt):
            return None

    with pytest.raises(TimeFormatError):
        format_datetime(datetime(2024, 3, 1, tzinfo=NoOffset()))


# --- parsing --------------------------------------------------------------------------------------


def test_parse_datetime_gives_aware_beijing_time():
    parsed = parse_datetime("2024-03-01 23:59:59")
    assert parsed.tzinfo is BEIJING
    assert parsed == utc(2024, 3, 1, 15, 59, 59)


def test_parse_compact_gives_aware_beijing_time():
    parsed = parse_compact("20240302000000")
    assert parsed.tzinfo is BEIJING
    assert parsed == utc(2024, 3, 1, 16, 0, 0)


def test_parse_any_datetime_takes_both_documented_gmt_return_forms():
    assert parse_any_datetime("2024-03-01 23:59:59") == utc(2024, 3, 1, 15, 59, 59)
    assert parse_any_datetime("20240301235959") == utc(2024, 3, 1, 15, 59, 59)


def test_parse_date():
    assert parse_date("20240229") == date(2024, 2, 29)


def test_the_notification_sample_time():
    # notify_time of the official create_forex_trade notification sample.
    assert parse_datetime("2018-11-09 15:36:17") == utc(2018, 11, 9, 7, 36, 17)


BAD_DATETIMES = [
    "2024-02-30 00:00:00",
    "2023-02-29 12:00:00",
    "2024-13-01 00:00:00",
    "2024-00-10 00:00:00",
    "2024-01-01 24:00:00",
    "2024-01-01 23:60:00",
    "2024-01-01 23:59:60",
    "２024-01-01 00:00:00",  # full-width digit
    "2024-01-01 ٠0:00:00",  # Arabic-Indic digit
    "2024-01-01T00:00:00",
    "2024-01-01  00:00:00",
    " 2024-01-01 00:00:00",
    "2024-01-01 00:00:00\n",
    "2024-1-1 0:0:0",
    "2024/01/01 00:00:00",
    "2024-01-01 00:00:00+08:00",
    "2024-01-01 00:00:00.000",
    "2024-01-01",
    "2018-11-0915:36:17",
    "",
]


@pytest.mark.parametrize("text", BAD_DATETIMES)
def test_parse_datetime_is_strict(text):
    with pytest.raises(TimeFormatError) as info:
        parse_datetime(text, parameter="notify_time")
    assert info.value.parameter == "notify_time"
    assert ascii(text) in str(info.value)


BAD_COMPACT = [
    "20240230000000",
    "20240101240000",
    "20240101235960",
    "2024010100000",
    "202401010000000",
    "２0240101000000",
    "2024010100000٠",
    " 20240101000000",
    "20240101000000\n",
    "2024-01-01 00:00:00",
    "",
]


@pytest.mark.parametrize("text", BAD_COMPACT)
def test_parse_compact_is_strict(text):
    with pytest.raises(TimeFormatError) as info:
        parse_compact(text, parameter="gmt_return")
    assert info.value.parameter == "gmt_return"
    assert ascii(text) in str(info.value)


@pytest.mark.parametrize("text", BAD_DATETIMES + [t for t in BAD_COMPACT if t != "2024-01-01 00:00:00"])
def test_parse_any_datetime_is_strict(text):
    with pytest.raises(TimeFormatError):
        parse_any_datetime(text)


@pytest.mark.parametrize(
    "text", ["20240230", "20231301", "2024011", "202401011", "2024-01-01", "２0240101", "20240101\n", ""]
)
def test_parse_date_is_strict(text):
    with pytest.raises(TimeFormatError) as info:
        parse_date(text, parameter="start_date")
    assert info.value.parameter == "start_date"


@pytest.mark.parametrize("parser", [parse_datetime, parse_compact, parse_any_datetime, parse_date])
@pytest.mark.parametrize("value", [None, b"20240101000000", 20240101000000, datetime(2024, 1, 1, tzinfo=UTC)])
def test_parsers_take_text_only(parser, value):
    with pytest.raises(TimeFormatError):
        parser(value)


# --- round trips ----------------------------------------------------------------------------------

ZONES = st.sampled_from(
    [UTC, SHANGHAI, LA, timezone(timedelta(hours=-3, minutes=-30)), timezone(timedelta(hours=14))]
)
# From 1992: Asia/Shanghai has no daylight saving time since 1991, so every Beijing wall time is one instant.
INSTANTS = st.datetimes(
    min_value=datetime(1992, 1, 1), max_value=datetime(2099, 12, 31), timezones=ZONES
).map(lambda dt: dt.replace(microsecond=0))


@given(INSTANTS)
def test_datetime_format_round_trips(instant):
    assert in_utc(parse_datetime(format_datetime(instant))) == in_utc(instant)
    assert in_utc(parse_any_datetime(format_datetime(instant))) == in_utc(instant)


@given(INSTANTS)
def test_compact_format_round_trips(instant):
    assert in_utc(parse_compact(format_compact(instant))) == in_utc(instant)
    assert in_utc(parse_any_datetime(format_compact(instant))) == in_utc(instant)


@given(INSTANTS)
def test_the_two_forms_say_the_same_thing(instant):
    long, compact = format_datetime(instant), format_compact(instant)
    assert long.replace("-", "").replace(" ", "").replace(":", "") == compact
    assert format_date(instant) == compact[:8]
    assert beijing_date(instant) == parse_date(compact[:8])


@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_date_format_round_trips(day):
    assert parse_date(format_date(day)) == day


@given(st.datetimes(min_value=datetime(1992, 1, 1), max_value=datetime(2099, 12, 31)))
def test_wire_text_round_trips(wall):
    text = f"{wall:%Y-%m-%d %H:%M:%S}"
    assert format_datetime(parse_datetime(text)) == text
    compact = f"{wall:%Y%m%d%H%M%S}"
    assert format_compact(parse_compact(compact)) == compact


@given(INSTANTS, st.integers(min_value=0, max_value=999))
def test_epoch_millis_round_trips(instant, ms):
    instant = instant + timedelta(milliseconds=ms)
    assert from_epoch_millis(epoch_millis(instant)) == in_utc(instant)


# --- epoch milliseconds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "instant"),
    [
        (0, utc(1970, 1, 1)),
        (86_400_000, utc(1970, 1, 2)),
        (1_000_000_000_000, utc(2001, 9, 9, 1, 46, 40)),
        (1_709_308_799_000, utc(2024, 3, 1, 15, 59, 59)),
        (-1, utc(1969, 12, 31, 23, 59, 59, 999000)),
    ],
)
def test_epoch_millis_known_values(ms, instant):
    assert epoch_millis(instant) == ms
    assert from_epoch_millis(ms) == instant
    assert from_epoch_millis(ms).tzinfo is not None


def test_epoch_millis_floors_sub_millisecond_parts():
    assert epoch_millis(utc(1970, 1, 1, 0, 0, 0, 999)) == 0
    assert epoch_millis(utc(1969, 12, 31, 23, 59, 59, 999999)) == -1


def test_from_epoch_millis_in_beijing():
    dt = from_epoch_millis(1_709_308_800_000, tz=BEIJING)
    assert (dt.year, dt.month, dt.day, dt.hour) == (2024, 3, 2, 0)


def test_parse_epoch_millis_of_the_hk_timestamp_form():
    assert parse_epoch_millis("1709308799000") == utc(2024, 3, 1, 15, 59, 59)


@pytest.mark.parametrize("text", ["-1", "+1", "1e3", " 1", "１", "01", "", "1.5", "9" * 40])
def test_parse_epoch_millis_is_strict(text):
    with pytest.raises(TimeFormatError):
        parse_epoch_millis(text)


@pytest.mark.parametrize("value", [True, 1.5, "1000", None, 10**30])
def test_from_epoch_millis_refuses_non_ints_and_out_of_range(value):
    with pytest.raises(TimeFormatError):
        from_epoch_millis(value)


# --- clocks ---------------------------------------------------------------------------------------


def test_fixed_clock_stands_still_and_advances():
    start = utc(2024, 3, 1, 15, 59, 59)
    clock = FixedClock(start)
    assert clock.now() == start
    assert clock.now() == start
    assert clock.advance(seconds=1) == utc(2024, 3, 1, 16, 0, 0)
    assert clock.now() == utc(2024, 3, 1, 16, 0, 0)
    assert not same_beijing_day(start, clock.now())
    clock.advance(days=1, hours=2, minutes=3, milliseconds=4)
    assert clock.now() == utc(2024, 3, 2, 18, 3, 0, 4000)
    clock.advance(seconds=-1)
    assert clock.now() == utc(2024, 3, 2, 18, 2, 59, 4000)


def test_fixed_clock_set():
    clock = FixedClock(utc(2024, 3, 1))
    clock.set(datetime(2024, 3, 1, 23, 59, 59, tzinfo=BEIJING))
    assert clock.now() == utc(2024, 3, 1, 15, 59, 59)


def test_fixed_clock_is_thread_safe():
    clock = FixedClock(utc(2024, 3, 1))
    threads = [
        threading.Thread(target=lambda: [clock.advance(milliseconds=1) for _ in range(1000)])
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.now() == utc(2024, 3, 1, 0, 0, 8)


def test_now_uses_the_given_clock():
    clock = FixedClock(utc(2024, 3, 1, 16, 0, 0))
    assert now(clock) == utc(2024, 3, 1, 16, 0, 0)
    assert beijing_now(clock) == utc(2024, 3, 1, 16, 0, 0)
    assert beijing_now(clock).tzinfo is BEIJING
    assert beijing_now(clock).day == 2


def test_now_without_a_clock_is_the_aware_system_time():
    before = datetime.now(UTC)
    current = now()
    after = datetime.now(UTC)
    assert current.utcoffset() is not None
    assert before <= current <= after


def test_a_clock_returning_naive_time_is_refused():
    class LocalClock:
        def now(self):
            return datetime(2024, 3, 1)

    with pytest.raises(TimeFormatError):
        now(LocalClock())


def test_the_clocks_satisfy_the_protocol():
    assert isinstance(SystemClock(), Clock)
    assert isinstance(FixedClock(utc(2024, 3, 1)), Clock)
    assert SystemClock().now().utcoffset() is not None
