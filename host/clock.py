"""The host's clock: one object, injected everywhere that needs the time of day.

Nothing in the host reads the wall clock directly. Three modes:

* ``real`` -- :class:`SystemClock`, the wall clock;
* ``simulated`` -- :class:`ManualClock`, which only moves when told to (tests, scenarios);
* ``simulated`` with a speed factor -- :class:`ManualClock` with ``speed > 0``: time runs from a
  monotonic source multiplied by the factor (``speed=3600``: one real second is one simulated
  hour, for live demos) and can still be pushed forward by command.

Every clock carries a :class:`Scheduler` of due events (cut-offs, funding, refund posting, hold
expiry). Moving a simulated clock forward runs every event that falls due inside the window in
time order, with :meth:`ManualClock.now` showing each event's own instant while it runs, exactly
as if the time had passed; events that a running event schedules inside the window run too. So
advancing one day in one step or in 24 one-hour steps gives the same result. A clock in real or
speed mode also needs :meth:`run_due` called now and then (the runtime polls it).

Network timers (deadlines, idle timeouts) do not use this clock: they use the reactor's monotonic
scheduling and are unaffected by simulated time.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

EventCallback = Callable[[datetime], object]
"""A due event's job; it receives the instant it was scheduled for (UTC); its result is ignored."""


class Clock(Protocol):
    """Anything that tells the current instant as an aware UTC datetime."""

    def now(self) -> datetime:
        """The current instant (timezone-aware, UTC)."""
        ...


class BusinessDays(Protocol):
    """What the clock needs of a business calendar to advance by business days."""

    def add_business_days(self, day: date, n: int) -> date:
        """The ``n``-th business day after ``day``."""
        ...


class ClockError(ValueError):
    """A clock command that cannot be obeyed (backwards, or moving the real clock)."""


def _utc(instant: datetime, what: str) -> datetime:
    if instant.tzinfo is None:
        raise ClockError(f"{what} must be timezone-aware, got {instant.isoformat()}")
    return instant.astimezone(UTC)


@dataclass(order=True)
class Event:
    """One scheduled job: due at ``at`` (UTC); ties run in the order they were scheduled.

    ``key`` names a job that exists at most once (scheduling the same key again replaces it).
    """

    at: datetime
    seq: int
    key: str | None = field(compare=False)
    callback: EventCallback = field(compare=False, repr=False)
    cancelled: bool = field(default=False, compare=False)

    def describe(self) -> dict[str, object]:
        """A JSON-able view for the admin API."""
        return {"at": self.at.isoformat(), "key": self.key}


class Scheduler:
    """A priority queue of due events, ordered by instant then by scheduling order."""

    def __init__(self) -> None:
        self._heap: list[Event] = []
        self._seq = itertools.count()
        self._keyed: dict[str, Event] = {}
        self._lock = threading.Lock()

    def schedule(self, at: datetime, callback: EventCallback, *, key: str | None = None) -> Event:
        """Register ``callback`` to run at ``at``; a ``key`` replaces an earlier event of it."""
        event = Event(_utc(at, "an event instant"), next(self._seq), key, callback)
        with self._lock:
            if key is not None:
                old = self._keyed.pop(key, None)
                if old is not None:
                    old.cancelled = True
                self._keyed[key] = event
            heapq.heappush(self._heap, event)
        return event

    def cancel(self, key: str) -> bool:
        """Drop the pending event named ``key``; False when there was none."""
        with self._lock:
            event = self._keyed.pop(key, None)
            if event is None:
                return False
            event.cancelled = True
            return True

    def pop_due(self, until: datetime) -> Event | None:
        """Remove and return the earliest live event due at or before ``until``, else None."""
        with self._lock:
            while self._heap and self._heap[0].cancelled:
                heapq.heappop(self._heap)
            if not self._heap or self._heap[0].at > until:
                return None
            event = heapq.heappop(self._heap)
            if event.key is not None and self._keyed.get(event.key) is event:
                del self._keyed[event.key]
            return event

    def pending(self) -> list[Event]:
        """Live events in the order they will run."""
        with self._lock:
            return sorted(e for e in self._heap if not e.cancelled)


class _ScheduledClock:
    """Shared scheduling behaviour of every clock mode."""

    mode = "real"

    def __init__(self) -> None:
        self.scheduler = Scheduler()
        # One thread at a time runs events, so a job never overlaps another.
        self._run_lock = threading.RLock()

    def now(self) -> datetime:  # pragma: no cover - overridden
        raise NotImplementedError

    def schedule(self, at: datetime, callback: EventCallback, *, key: str | None = None) -> Event:
        """Run ``callback(at)`` when the clock reaches ``at`` (see :class:`Scheduler`)."""
        return self.scheduler.schedule(at, callback, key=key)

    def cancel(self, key: str) -> bool:
        """Drop the pending event named ``key``."""
        return self.scheduler.cancel(key)

    def run_due(self) -> int:
        """Run every event due at or before :meth:`now`, in time order; return how many ran."""
        ran = 0
        with self._run_lock:
            while (event := self.scheduler.pop_due(self.now())) is not None:
                event.callback(event.at)
                ran += 1
        return ran

    def describe(self) -> dict[str, object]:
        """A JSON-able view of the clock for ``GET /clock``."""
        return {
            "mode": self.mode,
            "now": self.now().isoformat(),
            "pending_events": [e.describe() for e in self.scheduler.pending()[:20]],
        }


class SystemClock(_ScheduledClock):
    """Real time. It cannot be moved; its events run when :meth:`run_due` is polled."""

    def now(self) -> datetime:
        """The wall clock, UTC."""
        return datetime.now(UTC)


class ManualClock(_ScheduledClock):
    """Simulated time that moves only forward: by command, and with ``speed > 0`` also by itself.

    ``speed`` is simulated seconds per real second (0 = frozen between commands); ``monotonic`` is
    the real-time source the speed factor multiplies (injected in tests).
    """

    mode = "simulated"

    def __init__(
        self,
        start: datetime,
        *,
        speed: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs a timezone-aware start instant")
        if speed < 0:
            raise ValueError("the clock speed factor cannot be negative")
        self.speed = speed
        self._monotonic = monotonic
        self._base = start.astimezone(UTC)
        self._base_mono = monotonic()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The simulated instant."""
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> datetime:
        if not self.speed:
            return self._base
        elapsed = (self._monotonic() - self._base_mono) * self.speed
        return self._base + timedelta(seconds=elapsed)

    def _jump(self, instant: datetime) -> None:
        with self._lock:
            # Re-anchor so a running speed clock continues from ``instant``; never step back.
            self._base = max(instant, self._now_locked())
            self._base_mono = self._monotonic()

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` running due events on the way; return the new instant."""
        if delta < timedelta(0):
            raise ClockError("the simulated clock only moves forward")
        with self._run_lock:
            return self._run_until(self.now() + delta)

    def set(self, instant: datetime) -> datetime:
        """Jump forward to ``instant`` running due events on the way; the past is refused."""
        target = _utc(instant, "the new clock instant")
        with self._run_lock:
            current = self.now()
            if target < current:
                raise ClockError(
                    f"the simulated clock only moves forward: {target.isoformat()} is before "
                    f"{current.isoformat()}"
                )
            return self._run_until(target)

    def advance_business_days(self, n: int, calendar: BusinessDays, zone: ZoneInfo) -> datetime:
        """Move to the same local time of day ``n`` business days later in ``calendar``.

        A local time that does not exist on the target day (DST gap) resolves forward.
        """
        return self.set(self.business_days_ahead(n, calendar, zone))

    def business_days_ahead(self, n: int, calendar: BusinessDays, zone: ZoneInfo) -> datetime:
        """The instant :meth:`advance_business_days` would move to (the clock does not move)."""
        if n < 0:
            raise ClockError("the simulated clock only moves forward")
        local = self.now().astimezone(zone)
        day = calendar.add_business_days(local.date(), n) if n else local.date()
        wall = datetime.combine(day, local.time().replace(tzinfo=None, fold=0), zone)
        return max(wall.astimezone(UTC), self.now())

    def step_toward(self, target: datetime, most: timedelta) -> datetime:
        """Move at most ``most`` toward ``target``, running the events due on the way; return
        the new instant. A long move made of such steps, each its own call, lets other work
        (requests, a shutdown) run between the steps; a target already passed is a no-op."""
        with self._run_lock:
            current = self.now()
            if target <= current:
                return current
            return self._run_until(min(target, current + most))

    def _run_until(self, target: datetime) -> datetime:
        while (event := self.scheduler.pop_due(target)) is not None:
            self._jump(event.at)
            event.callback(event.at)
        self._jump(target)
        return self.now()


MAX_MOVE = timedelta(days=366)
"""The longest clock move one command may ask for unless ``[limits] max_clock_move_days``
says otherwise: moving runs every event on the way, so the bound bounds the work."""


def parse_duration(body: dict[str, object], most: timedelta = MAX_MOVE) -> timedelta:
    """``{"seconds": N}`` or ``{"hours": N}`` -> a timedelta of at most ``most``; anything else
    (several units, a negative, NaN or infinite number, a move longer than ``most``) raises
    ClockError."""
    units = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
    given = [k for k in body if k in units]
    if len(given) != 1 or len(body) != 1:
        raise ClockError('give exactly one of "seconds", "minutes", "hours" or "days"')
    value = body[given[0]]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
            or (isinstance(value, float) and math.isnan(value)):
        raise ClockError(f'"{given[0]}" must be a non-negative number, got {value!r}')
    try:
        seconds = float(value) * units[given[0]]
    except OverflowError:  # an integer too large for a float is too far anyway
        seconds = math.inf
    if seconds > most.total_seconds():  # also infinity, and what a timedelta cannot hold
        raise ClockError(too_far(most))
    return timedelta(seconds=seconds)


def too_far(most: timedelta) -> str:
    """The error text of a move longer than ``most``."""
    return (f"the clock moves at most {most.days} days in one command "
            f"([limits] max_clock_move_days); move in several steps")


def check_move(current: datetime, target: datetime, most: timedelta) -> None:
    """Raise ClockError when going from ``current`` to ``target`` is longer than ``most``."""
    if target - current > most:
        raise ClockError(too_far(most))
