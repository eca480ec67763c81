"""The host's clock: one object, injected everywhere that needs the time of day.

Nothing in the host reads the wall clock directly. :class:`SystemClock` is real time;
:class:`ManualClock` only moves when told to (tests, scenarios, simulated demos). Network
timers (deadlines, idle timeouts) do not use this clock: they use the reactor's monotonic
scheduling and are unaffected by simulated time.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current instant as an aware UTC datetime."""

    def now(self) -> datetime:
        """The current instant (timezone-aware, UTC)."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        """The wall clock, UTC."""
        return datetime.now(UTC)


class ManualClock:
    """Simulated time that moves only forward and only by command."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs a timezone-aware start instant")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The simulated instant."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` (negative deltas are refused) and return the new instant."""
        if delta < timedelta(0):
            raise ValueError("the simulated clock only moves forward")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, instant: datetime) -> datetime:
        """Jump forward to ``instant``."""
        return self.advance(instant.astimezone(UTC) - self.now())
