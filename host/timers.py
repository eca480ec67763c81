"""Monotonic network timers for the host's sockets.

Twisted's ``reactor.callLater`` measures time with ``reactor.seconds``, which is ``time.time``
even on the asyncio reactor, so a wall-clock step would stretch or shrink a deadline
(docs/design-notes.md, "Timers follow the monotonic clock"). The asyncio loop underneath
schedules on ``time.monotonic``; :class:`MonotonicTimer` exposes that with the same
``callLater`` shape as Twisted's ``IReactorTime``, so tests can pass a
``twisted.internet.task.Clock`` instead. The host's business clock (:mod:`host.clock`) is
never used for these timers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol


class DelayedCall(Protocol):
    """What a scheduled call must offer (Twisted's ``IDelayedCall`` subset)."""

    def cancel(self) -> None:
        """Stop the call from happening."""

    def active(self) -> bool:
        """True until the call has run or been cancelled."""


class Timer(Protocol):
    """Something that schedules calls (``twisted.internet.task.Clock`` fits)."""

    def callLater(self, delay: float, fn: Callable[..., Any], *args: Any) -> DelayedCall:  # noqa: N802
        """Call ``fn(*args)`` after ``delay`` seconds."""

    def seconds(self) -> float:
        """The current time on this timer's clock."""


class _Handle:
    def __init__(self) -> None:
        self.handle: asyncio.TimerHandle | None = None
        self.fired = False

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()

    def active(self) -> bool:
        return not self.fired and self.handle is not None and not self.handle.cancelled()


class MonotonicTimer:
    """Schedule calls on the asyncio loop's monotonic clock."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def callLater(self, delay: float, fn: Callable[..., Any], *args: Any) -> DelayedCall:  # noqa: N802
        """Call ``fn(*args)`` after ``delay`` seconds of monotonic time."""
        h = _Handle()

        def _fire() -> None:
            h.fired = True
            fn(*args)

        h.handle = self._loop.call_later(delay, _fire)
        return h

    def seconds(self) -> float:
        """The loop's monotonic time (what :meth:`callLater` counts in)."""
        return self._loop.time()
