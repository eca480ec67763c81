"""Pure settlement timing: cut-off boundaries (K1), DST (K2), funding and refund posting dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from host.settlement.calendar import BusinessCalendar
from host.settlement.cutoffs import (
    CutoffSchedule,
    SettlementConfigError,
    funding_date,
    posting_days,
    refund_posting_date,
    resolve_local,
)

MS = timedelta(milliseconds=1)
NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


def test_k1_cutoff_boundary_is_exclusive() -> None:
    """K1: cut-off - 1 ms is day D; exactly at cut-off and + 1 ms are day D + 1."""
    sched = CutoffSchedule.parse("Asia/Shanghai", "23:00")
    cut = sched.cutoff_instant(date(2026, 11, 27))
    assert cut == datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    assert sched.business_date(cut - MS) == date(2026, 11, 27)
    assert sched.business_date(cut) == date(2026, 11, 28)
    assert sched.business_date(cut + MS) == date(2026, 11, 28)
    assert sched.next_cutoff(cut - MS) == cut
    assert sched.next_cutoff(cut) == sched.cutoff_instant(date(2026, 11, 28))


def test_early_morning_cutoff_counts_small_hours_for_previous_day() -> None:
    """A 02:00 cut-off ends business date D on day D + 1, so 01:00 on the 28th is still the 27th."""
    sched = CutoffSchedule.parse("America/New_York", "02:00")
    assert sched.business_date(datetime(2026, 11, 28, 1, 0, tzinfo=NY)) == date(2026, 11, 27)
    assert sched.business_date(datetime(2026, 11, 28, 2, 0, tzinfo=NY)) == date(2026, 11, 28)
    assert sched.business_date(datetime(2026, 11, 28, 12, 0, tzinfo=NY)) == date(2026, 11, 28)


@pytest.mark.parametrize(
    ("tz", "day", "wall", "expected_utc"),
    [
        # spring forward: 02:30 does not exist in New York -> the transition instant 03:00 EDT
        (NY, date(2026, 3, 8), "02:30", datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
        # fall back: 01:30 happens twice in New York -> the first (EDT) occurrence
        (NY, date(2026, 11, 1), "01:30", datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
        # London: 01:30 does not exist on 2026-03-29; occurs twice on 2026-10-25
        (LONDON, date(2026, 3, 29), "01:30", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        (LONDON, date(2026, 10, 25), "01:30", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
)
def test_k2_dst_cutoff_resolution(
    tz: ZoneInfo, day: date, wall: str, expected_utc: datetime
) -> None:
    """K2: a non-existent cut-off fires at the transition, an ambiguous one at its first time."""
    assert resolve_local(day, time.fromisoformat(wall), tz) == expected_utc


@pytest.mark.parametrize("tz_name", ["America/New_York", "Europe/London", "Asia/Shanghai"])
@pytest.mark.parametrize("cutoff", ["23:00", "00:00", "01:30", "02:30"])
@pytest.mark.parametrize("month_start", [date(2026, 3, 1), date(2026, 10, 20)])
def test_k2_business_dates_never_decrease_across_dst(
    tz_name: str, cutoff: str, month_start: date
) -> None:
    """K2: every 5 minutes through a DST change: each instant in exactly one business date,
    dates step by exactly one day, and each step happens exactly at that date's cut-off."""
    sched = CutoffSchedule.parse(tz_name, cutoff)
    instant = datetime.combine(month_start, datetime.min.time(), UTC)
    end = instant + timedelta(days=20)
    current = sched.business_date(instant)
    cutoffs = [sched.cutoff_instant(current + timedelta(days=i)) for i in range(22)]
    assert cutoffs == sorted(set(cutoffs))  # strictly increasing, one per business date
    while instant < end:
        instant += timedelta(minutes=5)
        day = sched.business_date(instant)
        assert day in (current, current + timedelta(days=1))
        if day != current:
            assert sched.cutoff_instant(current) <= instant < sched.cutoff_instant(day)
            current = day


@pytest.mark.parametrize("tz_name", ["America/New_York", "Europe/London"])
@pytest.mark.parametrize("cutoff", ["23:00", "02:30"])
def test_window_bounds_hold_one_business_date_across_dst(tz_name: str, cutoff: str) -> None:
    """A window's start has its business date, the instant before its end too, its end the
    next one, every 7 minutes through a DST change (what the host's per-window cache relies on)."""
    sched = CutoffSchedule.parse(tz_name, cutoff)
    instant = datetime(2026, 3, 5, tzinfo=UTC)
    while instant < datetime(2026, 4, 5, tzinfo=UTC):
        day, start, end = sched.window(instant)
        assert start <= instant < end
        assert sched.business_date(start) == day == sched.business_date(instant)
        assert sched.business_date(end - timedelta(microseconds=1)) == day
        assert sched.business_date(end) == day + timedelta(days=1)
        instant += timedelta(minutes=7)


def test_bad_zone_and_cutoff_are_named() -> None:
    """Unknown zones and malformed cut-off times raise errors that quote the value."""
    with pytest.raises(SettlementConfigError, match="Mars/Olympus"):
        CutoffSchedule.parse("Mars/Olympus", "23:00")
    with pytest.raises(SettlementConfigError, match="25:00"):
        CutoffSchedule.parse("UTC", "25:00")


def test_funding_t_plus_1_across_weekend_holiday_and_make_up_day() -> None:
    """T+1: US Friday -> Monday, Wednesday before Thanksgiving -> Friday, CN Qingming -> make-up
    Sunday; T+0 on a business day is the same day; negative funding days are refused."""
    us, cn = BusinessCalendar("US"), BusinessCalendar("CN")
    assert funding_date(date(2026, 12, 4), us) == date(2026, 12, 7)
    assert funding_date(date(2026, 11, 25), us) == date(2026, 11, 27)
    assert funding_date(date(2026, 11, 26), us) == date(2026, 11, 27)
    assert funding_date(date(2018, 4, 4), cn) == date(2018, 4, 8)
    assert funding_date(date(2026, 2, 13), cn) == date(2026, 2, 14)  # Saturday make-up day
    assert funding_date(date(2026, 12, 1), us, 0) == date(2026, 12, 1)
    assert funding_date(date(2026, 12, 1), us, 2) == date(2026, 12, 3)
    with pytest.raises(SettlementConfigError):
        funding_date(date(2026, 12, 1), us, -1)


def test_refund_posting_days_are_deterministic_and_in_range() -> None:
    """The same seed and RRN always give the same N in [lo, hi]; the range is covered."""
    drawn = [posting_days("seed-1", f"{i:012d}", (3, 7)) for i in range(200)]
    assert drawn == [posting_days("seed-1", f"{i:012d}", [3, 7]) for i in range(200)]
    assert set(drawn) == {3, 4, 5, 6, 7}
    assert drawn != [posting_days("seed-2", f"{i:012d}", (3, 7)) for i in range(200)]
    assert posting_days("s", "000000000001", (4, 4)) == 4
    with pytest.raises(SettlementConfigError):
        posting_days("s", "1", (5, 3))


def test_refund_posting_date_counts_business_days() -> None:
    """Posting date = settlement date + N business days (skipping Thanksgiving and a weekend)."""
    us = BusinessCalendar("US")
    n = posting_days("demo", "631100000042", (3, 7))
    got = refund_posting_date(date(2026, 11, 24), us, "demo", "631100000042")
    assert got == us.add_business_days(date(2026, 11, 24), n)
    assert refund_posting_date(date(2026, 11, 24), us, "x", "r", (3, 3)) == date(2026, 11, 30)
