"""The serving host's look, every few seconds, at its hold on its ledger chain (PostgreSQL).

On PostgreSQL the hold (:mod:`host.ledger.writer_hold`) is an advisory lock that lives with one
idle session. A server restart or an administrator's ``pg_terminate_backend`` ends that session
while the host goes on serving (its engine's pool simply reconnects), and with it the lock: a
second host for the same chain could then start and both would write the chain. So every
:data:`CHECK_EVERY_S` seconds of monotonic time (never the business clock, which may be
simulated) the watch looks at the session, in a thread of its own (the look is blocking I/O:
never on the reactor, never in the service worker, whose queue is the requests' path):

- the session is alive: nothing;
- it has gone and the lock is taken again on a new session: one ``chain_hold_retaken`` line
  (level warning, the chain, why the session was lost);
- it has gone and another session holds the lock now: one ``fatal`` line naming the chain and
  the holder, and the host stops with :data:`EXIT_HOLD_LOST`;
- the database cannot be reached: the host keeps serving (its requests fail on their own), one
  ``chain_hold_unreachable`` line per outage, and the next look tries again.

An SQLite hold (``flock``) cannot be lost while the process lives: it is not watched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

if TYPE_CHECKING:  # the hold's module loads SQLAlchemy: the runtime imports this one early
    from host.ledger.writer_hold import HoldCheck, SessionHold
    from host.logs import MessageLog
    from host.timers import DelayedCall, Timer

CHECK_EVERY_S = 5.0
"""Seconds of monotonic time between two looks at the hold."""
EXIT_HOLD_LOST = 69
"""Exit status of a host whose chain another host took while it served (sysexits'
EX_UNAVAILABLE: restarting it is refused until the other host stops)."""

Check = Callable[[], "HoldCheck"]
Runner = Callable[[Check], "Deferred[HoldCheck]"]
"""Runs a look off the reactor thread and fires with what it found on the reactor thread."""


def in_daemon_thread(reactor: Any) -> Runner:
    """A runner that gives each look a daemon thread of its own: a look stuck on a vanished
    server neither holds up the reactor's shutdown (which joins its thread pool's threads) nor
    the process's exit."""

    def run(check: Check) -> Deferred[HoldCheck]:
        done: Deferred[HoldCheck] = Deferred()

        def look() -> None:
            deliver: Callable[[Any], object]
            try:
                found: Any = check()
                deliver = done.callback
            except Exception as exc:  # a bug in the look: reported, the watch goes on
                found, deliver = exc, done.errback
            try:
                reactor.callFromThread(deliver, found)
            except RuntimeError:
                pass  # the reactor's loop has closed: the host has stopped meanwhile

        threading.Thread(target=look, name="poslab-hold-watch", daemon=True).start()
        return done

    return run


class HoldWatch:
    """Looks at one :class:`~host.ledger.writer_hold.SessionHold` every ``every_s`` seconds of
    ``timer`` until :meth:`stop`; ``on_lost(exit_code)`` when another host has taken the chain.
    """

    def __init__(self, hold: SessionHold, timer: Timer, run: Runner, log: MessageLog,
                 on_lost: Callable[[int], None], every_s: float = CHECK_EVERY_S) -> None:
        self.hold = hold
        self._timer = timer
        self._run = run
        self._log = log
        self._on_lost = on_lost
        self._every_s = every_s
        self._next: DelayedCall | None = None
        self._stopped = False
        self._outage = False  # the database was unreachable at the last look

    def start(self) -> None:
        """Schedule the first look."""
        self._schedule()

    def stop(self) -> None:
        """No more looks; a look in flight is left to finish (its outcome is dropped)."""
        self._stopped = True
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None

    def look(self) -> Deferred[Any]:
        """Look at the hold now; fires once the outcome is acted upon (tests drive this)."""
        d: Deferred[Any] = self._run(self.hold.check)
        d.addCallback(self._act)
        d.addErrback(self._failed)
        return d

    def _failed(self, failure: Failure) -> None:
        self._log.event("chain_hold_check_error", level="error", chain=self.hold.chain,
                        error=failure.getErrorMessage())

    def _schedule(self) -> None:
        if not self._stopped:
            self._next = self._timer.callLater(self._every_s, self._tick)

    def _tick(self) -> None:
        self._next = None
        self.look().addBoth(lambda _: self._schedule())

    def _act(self, found: HoldCheck) -> None:
        if self._stopped:
            return  # the host is stopping: its hold is being let go anyway
        chain = self.hold.chain
        if found.state == "unreachable":
            if not self._outage:
                self._log.event("chain_hold_unreachable", level="warning", chain=chain,
                                reason=found.reason)
            self._outage = True
            return
        self._outage = False
        if found.state == "retaken":
            self._log.event("chain_hold_retaken", level="warning", chain=chain,
                            reason=found.reason)
        elif found.state == "taken":
            holder = found.holder.describe() if found.holder is not None else "holder unknown"
            self._stopped = True  # nothing more to look at: the host stops
            self._log.event(
                "fatal", level="critical", chain=chain, holder=holder,
                reason=f"the hold on ledger chain {chain!r} was lost ({found.reason}) and "
                       f"another host holds it now ({holder}): this host stops",
                exit_code=EXIT_HOLD_LOST)
            self._on_lost(EXIT_HOLD_LOST)
