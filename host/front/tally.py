"""What a front process keeps for the engine's ``/metrics`` and event stream, and nothing else.

The front runs the one-process connection code (:mod:`host.server`), which counts into the
host's :class:`~host.metrics.Metrics` and publishes on its :class:`~host.event_stream.EventBus`.
In a front, a :class:`FrontTally` stands in for both: the closes the front decides (``reason``)
and the requests it answers itself, with their messages, are kept until the front sends them
in a :class:`~host.front.link.Tally`. The rest is the engine's: the connections (from the slots
it grants, :mod:`host.connection_caps`) and the requests it answers, which it counts and publishes
itself (:class:`host.front.engine.FrontChannel`), so the front's calls for those do nothing.

The messages of a request a front answers (a format error's answer, a 58
``CERT_TID_MISMATCH`` refusal and its request) therefore reach the event stream up to
:data:`~host.front.link.TALLY_EVERY_S` late, at most :data:`~host.front.link.MESSAGES_PER_TALLY`
a tally (the rest are counted as dropped): a front flooded with bad frames cannot make the
engine's copy grow without bound.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

from host.front.link import MESSAGES_PER_TALLY, FrontMessage, Tally


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


class _Events:
    """``factory.events`` as a front has it: the engine publishes the messages of the requests
    it answers, so a call does nothing, unless the front is sending an answer of its own
    (:attr:`answering`), whose message the next tally carries."""

    def __init__(self, tally: FrontTally) -> None:
        self._tally = tally
        self.answering = False  # set around the send of an answer the front made itself

    def message(self, direction: str, conn: int | str, fields: Mapping[str, str],
                context: Mapping[str, object] | None = None,
                latency_ms: float | None = None) -> None:
        if self.answering:
            self._tally.heard(direction, fields, context, latency_ms)


class FrontTally:
    """The front's counts, and its own answers' messages, not yet sent to the engine.

    :ivar wake: called when the first count after a :meth:`take` arrives (the link then sends
        the tally a little later, so that a burst costs one message).
    """

    def __init__(self) -> None:
        self.closes: Counter[str] = Counter()  # by reason
        self.answered: list[tuple[str, str, float]] = []
        self.messages: list[FrontMessage] = []  # for the event stream, at most a tally's worth
        self.dropped = 0  # messages over that bound
        self.wake: Callable[[], None] | None = None
        self._closed = _Closes(self)
        self._events = _Events(self)
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

    @property
    def events(self) -> _Events:
        """The front's stand-in for the host's event bus (:class:`_Events`)."""
        return self._events

    def request(self, mti: str, rc: str, latency_ms: float) -> None:
        """An answer the engine gave (and counted): nothing to do here."""

    def answered_here(self, mti: str, rc: str, latency_ms: float) -> None:
        """A request the front answered without the engine (RC 30, 58)."""
        self.answered.append((mti, rc, latency_ms))
        self.due()

    def heard(self, direction: str, fields: Mapping[str, str],
              context: Mapping[str, object] | None = None,
              latency_ms: float | None = None) -> None:
        """A message of a request the front answers itself, for the engine's event stream
        (only counted once the tally holds :data:`~host.front.link.MESSAGES_PER_TALLY`)."""
        if len(self.messages) < MESSAGES_PER_TALLY:
            self.messages.append(FrontMessage(direction, dict(fields),
                                              None if context is None else dict(context),
                                              latency_ms))
        else:
            self.dropped += 1
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
        if not self.closes and not self.answered and not self.messages and not self.dropped:
            return None
        tally = Tally(dict(self.closes), self.answered, self.messages, self.dropped)
        self.closes = Counter()
        self.answered = []
        self.messages = []
        self.dropped = 0
        return tally
