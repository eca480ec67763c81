"""What a front process counts for the engine's ``/metrics``, and nothing else.

The front runs the one-process connection code (:mod:`host.server`), which counts into the
host's :class:`~host.metrics.Metrics`. In a front, a :class:`FrontTally` stands in for them:
the closes the front decides (``reason``) and the requests it answers itself are kept until the
front sends them in a :class:`~host.front.link.Tally`. The rest is the engine's to count: the
connections (from the slots it grants, :mod:`host.front.slots`) and the requests it answers
(:class:`host.front.engine.FrontChannel`), so the front's calls for those do nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from host.front.link import Tally


class _Closes:
    """``metrics.closed`` as a front has it: counts by reason, for the next tally."""

    def __init__(self, tally: FrontTally) -> None:
        self._tally = tally

    def inc(self, amount: float = 1, **labels: str) -> None:
        self._tally.closes[labels["reason"]] += int(amount)
        self._tally.due()


class _Ignored:
    """A series the engine keeps itself (connections: from the slots it grants)."""

    def inc(self, amount: float = 1, **labels: str) -> None:
        """Nothing: the engine counts it."""

    def set(self, value: float, **labels: str) -> None:
        """Nothing: the engine counts it."""


class FrontTally:
    """The front's counts not yet sent to the engine.

    :ivar wake: called when the first count after a :meth:`take` arrives (the link then sends
        the tally a little later, so that a burst costs one message).
    """

    def __init__(self) -> None:
        self.closes: Counter[str] = Counter()  # by reason
        self.answered: list[tuple[str, str, float]] = []
        self.wake: Callable[[], None] | None = None
        self._closed = _Closes(self)
        self._ignored = _Ignored()
        self._waiting = False

    # -- the part of host.metrics.Metrics that host.server uses ---------------------------

    @property
    def closed(self) -> _Closes:
        """Connections the front closed, by reason (``_shut``): for the next tally."""
        return self._closed

    @property
    def connections(self) -> _Ignored:
        """Accepted connections: counted by the engine as it grants slots."""
        return self._ignored

    @property
    def open_connections(self) -> _Ignored:
        """Open connections: counted by the engine from the slots held."""
        return self._ignored

    def request(self, mti: str, rc: str, latency_ms: float) -> None:
        """An answer the engine gave (and counted): nothing to do here."""

    def answered_here(self, mti: str, rc: str, latency_ms: float) -> None:
        """A request the front answered without the engine (RC 30, 58)."""
        self.answered.append((mti, rc, latency_ms))
        self.due()

    # -- for the link ------------------------------------------------------------------------

    def due(self) -> None:
        """Something was counted: wake the link once per tally."""
        if not self._waiting and self.wake is not None:
            self._waiting = True
            self.wake()

    def take(self) -> Tally | None:
        """The counts so far as one message (None when there are none), and start again."""
        self._waiting = False
        if not self.closes and not self.answered:
            return None
        tally = Tally(dict(self.closes), self.answered)
        self.closes = Counter()
        self.answered = []
        return tally
