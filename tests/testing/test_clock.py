"""The Beijing clock of the test kit: alipay_clock drives the domain clock and stands where it is told."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from django_alipay.domain import clock as domain_clock
from django_alipay.protocol.clock import BEIJING, FixedClock, SystemClock, beijing_date
from django_alipay.protocol.errors import TimeFormatError
from django_alipay.testing import BeijingClock, standing_at
from django_alipay.testing.clock import parse_when


@pytest.mark.alipay_clock("2024-03-01 23:59:59")
def test_the_mark_stands_the_domain_clock_at_a_beijing_time(alipay_clock: BeijingClock) -> None:
    assert domain_clock.get_clock() is alipay_clock
    assert domain_clock.now() == datetime(2024, 3, 1, 15, 59, 59, tzinfo=UTC)
    assert alipay_clock.beijing == "2024-03-01 23:59:59"


@pytest.mark.alipay_clock("2024-03-01 23:59:59")
def test_one_second_later_it_is_the_next_beijing_day_but_the_same_utc_day(alipay_clock: BeijingClock) -> None:
    alipay_clock.advance(seconds=1)

    assert beijing_date(domain_clock.now()) == date(2024, 3, 2)
    assert domain_clock.now().astimezone(UTC).date() == date(2024, 3, 1)
    alipay_clock.set_beijing("2024-02-29 00:00:00")
    assert domain_clock.now() == datetime(2024, 2, 28, 16, 0, 0, tzinfo=UTC)


def test_without_a_mark_the_clock_stands_still_at_a_whole_second(alipay_clock: BeijingClock) -> None:
    first = domain_clock.now()

    assert first.microsecond == 0
    assert domain_clock.now() == first
    assert isinstance(alipay_clock, FixedClock)


@pytest.mark.parametrize(
    "when",
    [
        "2024-03-01 23:59:59",
        "20240301235959",
        "2024-03-01T15:59:59+00:00",
        "2024-03-01T07:59:59-08:00",
        datetime(2024, 3, 1, 23, 59, 59, tzinfo=BEIJING),
    ],
)
def test_every_accepted_form_names_the_same_instant(when: str | datetime) -> None:
    assert parse_when(when) == datetime(2024, 3, 1, 15, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize("when", ["2024-03-01T23:59:59", datetime(2024, 3, 1, 23, 59, 59), "tomorrow"])
def test_a_time_without_a_zone_is_refused(when: str | datetime) -> None:
    with pytest.raises(TimeFormatError):
        parse_when(when)


def test_standing_at_restores_the_previous_clock_even_after_an_error() -> None:
    outer = FixedClock(datetime(2020, 1, 1, tzinfo=UTC))
    with domain_clock.use_clock(outer):
        seen = []

        def fail_inside() -> None:
            with standing_at("2024-03-01 12:00:00") as inner:
                seen.append(domain_clock.get_clock() is inner)
                raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            fail_inside()
        assert seen == [True]
        assert domain_clock.get_clock() is outer
    assert isinstance(domain_clock.get_clock(), SystemClock)
