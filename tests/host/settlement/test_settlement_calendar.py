"""Business-day calendars from the holidays package: CN make-up days, US, GB, DE."""

from __future__ import annotations

from datetime import date

import pytest

from host.settlement.calendar import BusinessCalendar, CalendarError, calendar_for


def test_cn_2026_weekend_make_up_days_are_business_days() -> None:
    """China's 2026 调休 Saturdays/Sundays are business days; ordinary weekends are not."""
    cn = BusinessCalendar("CN")
    for make_up in ("2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20",
                    "2026-10-10"):
        assert cn.is_business_day(date.fromisoformat(make_up)), make_up
    assert not cn.is_business_day(date(2026, 1, 10))  # plain Saturday
    assert not cn.is_business_day(date(2026, 10, 1))  # National Day
    assert cn.holiday_name(date(2026, 10, 1)) is not None


def test_cn_2018_qingming_t_plus_1_lands_on_make_up_sunday() -> None:
    """Sale 2018-04-04, Qingming 4/5-4/7: the next business day is Sunday 2018-04-08."""
    cn = BusinessCalendar("CN")
    assert not cn.is_business_day(date(2018, 4, 6))  # weekday given off in exchange
    assert cn.next_business_day(date(2018, 4, 4)) == date(2018, 4, 8)
    assert cn.add_business_days(date(2018, 4, 4), 2) == date(2018, 4, 9)


def test_us_thanksgiving_and_weekend() -> None:
    """US: Thanksgiving 2026-11-26 is off, so T+1 from Wednesday is Friday, from Friday Monday."""
    us = BusinessCalendar("US")
    assert not us.is_business_day(date(2026, 11, 26))
    assert us.add_business_days(date(2026, 11, 25), 1) == date(2026, 11, 27)
    assert us.add_business_days(date(2026, 11, 27), 1) == date(2026, 11, 30)


def test_gb_and_de_holidays_with_subdivisions() -> None:
    """GB-ENG Easter Monday and Boxing Day (observed); DE-BY Epiphany but not DE-BE."""
    eng = BusinessCalendar("GB", "ENG")
    assert not eng.is_business_day(date(2026, 4, 6))
    assert eng.add_business_days(date(2026, 12, 24), 1) == date(2026, 12, 29)
    assert not BusinessCalendar("DE", "BY").is_business_day(date(2026, 1, 6))
    assert BusinessCalendar("DE", "BE").is_business_day(date(2026, 1, 6))
    assert not BusinessCalendar("DE").is_business_day(date(2026, 10, 3))  # Saturday anyway
    assert not BusinessCalendar("DE").is_business_day(date(2026, 12, 25))


def test_zero_business_days_rolls_only_non_business_days() -> None:
    """add 0 keeps a business day and rolls a Saturday to Monday; negatives are refused."""
    us = calendar_for("US")
    assert us.add_business_days(date(2026, 12, 1), 0) == date(2026, 12, 1)
    assert us.add_business_days(date(2026, 12, 5), 0) == date(2026, 12, 7)
    with pytest.raises(ValueError):
        us.add_business_days(date(2026, 12, 1), -1)


def test_unknown_country_or_subdivision_is_a_clear_error() -> None:
    """An unknown country or subdivision names what was wrong."""
    with pytest.raises(CalendarError, match="XX"):
        BusinessCalendar("XX")
    with pytest.raises(CalendarError, match="US/ZZ"):
        BusinessCalendar("US", "ZZ")
