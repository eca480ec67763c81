"""The host clock: modes, the due-event scheduler, and big-vs-small steps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from host.clock import ClockError, ManualClock, SystemClock, parse_duration
from host.settlement.calendar import BusinessCalendar

START = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


def _daily_world(clock: ManualClock, log: list[tuple[str, datetime, datetime]]) -> None:
    """A self-rescheduling daily job that also schedules follow-ups, like cut-off + funding."""

    def cutoff(at: datetime) -> None:
        log.append(("cutoff", at, clock.now()))
        clock.schedule(at + timedelta(hours=10), fund, key=f"fund:{at.date()}")
        clock.schedule(at + timedelta(days=1), cutoff, key="cutoff")

    def fund(at: datetime) -> None:
        log.append(("fund", at, clock.now()))

    clock.schedule(START + timedelta(hours=14), cutoff, key="cutoff")


def test_manual_clock_moves_only_forward() -> None:
    """advance/set move forward; negative deltas and earlier instants are refused."""
    clock = ManualClock(START)
    assert clock.advance(timedelta(hours=2)) == START + timedelta(hours=2)
    with pytest.raises(ClockError):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ClockError, match="only moves forward"):
        clock.set(START)
    assert clock.set(START + timedelta(days=1)) == START + timedelta(days=1)


def test_events_run_in_time_order_with_clock_at_event_instant() -> None:
    """Due events run in time order, ties in scheduling order, each seeing its own instant."""
    clock = ManualClock(START)
    seen: list[tuple[str, datetime]] = []
    for name, hours in (("c", 3), ("a", 1), ("b", 1), ("late", 30)):
        clock.schedule(START + timedelta(hours=hours), lambda at, n=name: seen.append((n, at)))
    clock.advance(timedelta(hours=5))
    assert [n for n, _ in seen] == ["a", "b", "c"]
    assert seen[0][1] == START + timedelta(hours=1)
    assert clock.now() == START + timedelta(hours=5)


def test_event_scheduled_inside_window_runs_in_same_advance() -> None:
    """An event scheduled by a running event inside the window runs before advance returns."""
    clock = ManualClock(START)
    log: list[tuple[str, datetime, datetime]] = []
    _daily_world(clock, log)
    clock.advance(timedelta(days=1))
    assert [(k, at) for k, at, _ in log] == [
        ("cutoff", START + timedelta(hours=14)),
        ("fund", START + timedelta(hours=24)),
    ]
    assert all(at == now for _, at, now in log)


def test_big_and_small_steps_give_identical_results() -> None:
    """A month in one step, in hourly steps, or by set() runs the same events at the same times."""
    results = []
    for steps in ([timedelta(days=30)], [timedelta(hours=1)] * 720, None):
        clock = ManualClock(START)
        log: list[tuple[str, datetime, datetime]] = []
        _daily_world(clock, log)
        if steps is None:
            clock.set(START + timedelta(days=30))
        else:
            for step in steps:
                clock.advance(step)
        results.append((log, clock.now()))
    assert results[0] == results[1] == results[2]
    assert len(results[0][0]) == 60


def test_keyed_event_replaced_and_cancelled() -> None:
    """Scheduling the same key again replaces the event; cancel removes it."""
    clock = ManualClock(START)
    seen: list[str] = []
    clock.schedule(START + timedelta(hours=1), lambda at: seen.append("old"), key="k")
    clock.schedule(START + timedelta(hours=2), lambda at: seen.append("new"), key="k")
    clock.schedule(START + timedelta(hours=3), lambda at: seen.append("gone"), key="x")
    assert clock.cancel("x") and not clock.cancel("x")
    assert [e.key for e in clock.scheduler.pending()] == ["k"]
    clock.advance(timedelta(hours=4))
    assert seen == ["new"]


def test_speed_clock_runs_from_injected_monotonic_source() -> None:
    """speed=3600: one real second is one simulated hour; advance still adds on top."""
    real = [100.0]
    clock = ManualClock(START, speed=3600, monotonic=lambda: real[0])
    real[0] += 2.5
    assert clock.now() == START + timedelta(hours=2.5)
    seen: list[datetime] = []
    clock.schedule(START + timedelta(hours=3), seen.append)
    assert clock.run_due() == 0
    real[0] += 1
    assert clock.run_due() == 1 and seen == [START + timedelta(hours=3)]
    clock.advance(timedelta(hours=10))
    assert clock.now() == START + timedelta(hours=13.5)


def test_system_clock_is_real_and_runs_due_events() -> None:
    """The real clock reports aware UTC and runs events already due when polled."""
    clock = SystemClock()
    seen: list[datetime] = []
    past = datetime(2020, 1, 1, tzinfo=UTC)
    clock.schedule(past, seen.append)
    assert clock.now().tzinfo is UTC and clock.now() > past
    assert clock.run_due() == 1 and seen == [past]
    assert clock.describe()["mode"] == "real"


def test_advance_business_days_skips_weekend_and_holiday() -> None:
    """Advancing 1 business day from Wed before Thanksgiving lands on Friday, same local time."""
    ny = ZoneInfo("America/New_York")
    clock = ManualClock(datetime(2026, 11, 25, 10, 0, tzinfo=ny))
    clock.advance_business_days(1, BusinessCalendar("US"), ny)
    assert clock.now().astimezone(ny) == datetime(2026, 11, 27, 10, 0, tzinfo=ny)
    clock.advance_business_days(1, BusinessCalendar("US"), ny)
    assert clock.now().astimezone(ny).date() == date(2026, 11, 30)


def test_parse_duration_accepts_one_unit_and_rejects_junk() -> None:
    """{"hours": 2} is two hours; several units, negatives and strings are clear errors."""
    assert parse_duration({"hours": 2}) == timedelta(hours=2)
    assert parse_duration({"seconds": 1.5}) == timedelta(seconds=1.5)
    for bad in ({}, {"hours": 1, "seconds": 1}, {"hours": -1}, {"hours": "2"}, {"weeks": 1}):
        with pytest.raises(ClockError):
            parse_duration(bad)


def test_naive_instants_are_refused() -> None:
    """A naive datetime is never silently taken as UTC."""
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 1, 1))
    clock = ManualClock(START)
    with pytest.raises(ClockError, match="timezone-aware"):
        clock.set(datetime(2027, 1, 1))
