"""The host's live event stream: typed events on an in-process bus with a bounded replay buffer.

Who publishes what:

* :class:`MessageEvent` -- every ISO message in and out, published by the ISO server
  (:mod:`host.server`) on the event loop, the answer only once it is sent (so after its commit);
  with front processes by the engine (:mod:`host.front.engine`), the messages a front answered
  itself up to a tally interval late (:mod:`host.front.tally`);
* :class:`PostingEvent`, :class:`StageEvent`, :class:`SettlementEvent`,
  :class:`NotificationEvent` and :class:`ClockEvent` -- read from committed rows by
  :class:`host.event_tail.EventTail` while someone listens, so an event never describes work a
  rollback undid.

The bus numbers events 1, 2, 3 ... in publication order and keeps the last ``capacity`` of them,
so a listener that reconnects with the last id it saw (SSE ``Last-Event-ID``) gets what it
missed, or learns that the gap is too old (:meth:`EventBus.subscribe` says so) and re-reads the
state from the admin API.

Costs: until a listener subscribes, :meth:`EventBus.message` is one attribute test (the bus is
not *armed*: about 50 ns), so a host nobody watches pays nothing. While armed, a message event
costs about 50 µs of CPU, most of it the field-by-field rendering, which is left out (``fields``
empty) while nobody is subscribed at that moment (about 15 µs then). The SSE resource disarms
the bus some time after its last listener left (:data:`host.event_sse.DISARM_S`), so a console
that reconnects within that time finds the messages it missed in the buffer; one that comes back
later is told that events were lost.

Card data: events carry the masked PAN only, and :func:`encode` passes every serialised event
through :func:`host.logs.safe_line` (the log's last line of defence) as well.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from host.logs import safe_line, summarize
from protocol import describe_fields

REPLAY_CAPACITY = 2000
"""Events the bus keeps for listeners that reconnect."""

#: DE3 transaction type (first two digits) -> the word the console shows.
_TXN_TYPES = {"00": "sale", "02": "void", "20": "refund", "22": "void refund"}
_NETWORK = {"0800": "network", "0810": "network", "0500": "reconcile", "0510": "reconcile",
            "0320": "upload", "0330": "upload", "0400": "reversal", "0410": "reversal",
            "0401": "reversal", "0100": "auth", "0110": "auth", "0220": "completion",
            "0230": "completion"}


class StreamEvent:
    """Base of every event type: ``type`` names it on the wire (SSE ``event:``)."""

    type: ClassVar[str] = "event"

    def data(self) -> dict[str, Any]:
        """The event's JSON-able payload."""
        payload: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        return payload


@dataclass(frozen=True)
class MessageEvent(StreamEvent):
    """One ISO 8583 message between a terminal and the host.

    ``direction`` is ``in`` (terminal to host) or ``out``; ``txn_type`` is what the message
    does (sale, refund, void, reversal, network ...); ``fields`` is the field-by-field
    rendering (``[key, name, value, meaning]``, PAN masked, secrets hidden).
    """

    type: ClassVar[str] = "message"
    direction: str
    conn: int | str
    at: str
    mti: str
    txn_type: str
    stan: str | None = None
    tid: str | None = None
    mid: str | None = None
    rrn: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    pan: str | None = None
    rc: str | None = None
    rule: str | None = None
    latency_ms: float | None = None
    fields: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class PostingEvent(StreamEvent):
    """One committed ledger posting group: ``entries`` are ``{account, side, amount_minor}``
    legs (side ``D`` or ``C``) in ``currency``; ``reference`` is ``txn:<id>`` or
    ``settlement:<id>``, ``rrn`` the transaction's when it has one."""

    type: ClassVar[str] = "posting"
    group: int
    kind: str
    reference: str
    currency: str
    amount_minor: int
    at: str
    entries: list[dict[str, Any]]
    rrn: str | None = None
    reverses: int | None = None
    memo: str = ""


@dataclass(frozen=True)
class StageEvent(StreamEvent):
    """A step in a transaction's life: ``stage`` is the host's audit event (``decided``,
    ``refunded``, ``voided``, ``reversed``, ``review_opened``, ``review_approval``,
    ``review_approved``, ``review_rejected``, ``batch_closed`` ...) with its ``detail``."""

    type: ClassVar[str] = "stage"
    stage: str
    at: str
    rrn: str | None = None
    kind: str | None = None
    original_rrn: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SettlementEvent(StreamEvent):
    """A settlement job ran: a cut-off closed ``batch`` for ``merchant_id`` (``status``
    ``closed``), with its funding date."""

    type: ClassVar[str] = "settlement"
    settlement: int
    merchant_id: str
    batch: str
    currency: str
    business_date: str
    funding_date: str
    status: str
    net_minor: int | None = None


@dataclass(frozen=True)
class NotificationEvent(StreamEvent):
    """A notification job's result: ``event`` is ``refund_approved``, ``refund_rejected``,
    ``refund_posted`` (the refund reached the card) or ``merchant_funded``."""

    type: ClassVar[str] = "notification"
    event: str
    at: str
    merchant_id: str | None = None
    rrn: str | None = None
    reference: str | None = None
    pan: str | None = None
    amount_minor: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class ClockEvent(StreamEvent):
    """The simulated clock moved from ``previous`` to ``now`` (ISO 8601, UTC)."""

    type: ClassVar[str] = "clock"
    previous: str
    now: str


@dataclass(frozen=True)
class Published:
    """An event as the bus numbered it."""

    id: int
    event: StreamEvent


Listener = Callable[[Published], None]


def encode(item: Published) -> str:
    """One event as a JSON line (``{"id", "type", ...payload}``), card data masked."""
    return safe_line({"id": item.id, "type": item.event.type, **item.event.data()})


def txn_type(mti: str, processing_code: str | None) -> str:
    """What a message does, in one word (from its MTI and DE3)."""
    if mti in ("0200", "0210") and processing_code:
        return _TXN_TYPES.get(processing_code[:2], "financial")
    return _NETWORK.get(mti, "message")


class EventBus:
    """Numbered events to every listener, with a bounded buffer of the latest ones.

    Thread-safe: publishers may be the event loop or the service worker; each listener is
    called in the publisher's thread and must hand over to its own (the SSE resource uses
    ``reactor.callFromThread``).
    """

    def __init__(self, capacity: int = REPLAY_CAPACITY, clock: Any = None,
                 table: str = "iso87") -> None:
        self.clock = clock
        self.table = table
        self.armed = False
        self._lock = threading.Lock()
        self._buffer: deque[Published] = deque(maxlen=capacity)
        self._next = 1
        self._listeners: list[Listener] = []
        self._watchers: list[Callable[[], None]] = []

    # -- publishing --------------------------------------------------------------------------

    def publish(self, event: StreamEvent) -> Published | None:
        """Number, keep and deliver ``event`` (None when the bus is not armed yet)."""
        if not self.armed:
            return None
        with self._lock:
            item = Published(self._next, event)
            self._next += 1
            self._buffer.append(item)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(item)
        return item

    def message(self, direction: str, conn: int | str, fields: Mapping[str, str],
                context: Mapping[str, object] | None = None,
                latency_ms: float | None = None) -> None:
        """Publish one ISO message (the server's call site); free while nobody ever listened."""
        if not self.armed:
            return
        facts: dict[str, Any] = dict(context or {})
        facts.update(summarize(fields))
        mti = str(facts.get("mti", ""))
        event = MessageEvent(
            direction=direction, conn=conn, at=self.now(), mti=mti,
            txn_type=txn_type(mti, _str(facts.get("processing_code"))),
            stan=_str(facts.get("stan")), tid=_str(facts.get("tid")), mid=_str(facts.get("mid")),
            rrn=_str(facts.get("rrn")), amount_minor=_int(facts.get("amount_minor")),
            currency=_str(facts.get("currency")), pan=_str(facts.get("pan")),
            rc=_str(facts.get("rc")), rule=_str(facts.get("rule")), latency_ms=latency_ms,
            # The rendering is most of the cost: only for someone watching right now.
            fields=[[line.key, line.name, line.value, line.meaning]
                    for line in describe_fields(fields, self.table)] if self._listeners else [])
        self.publish(event)
        if direction == "out":
            for watcher in list(self._watchers):
                watcher()

    def now(self) -> str:
        """The host clock's instant as ISO 8601 (the wall clock when the bus has none)."""
        now = self.clock.now() if self.clock is not None else datetime.now(UTC)
        return str(now.isoformat(timespec="milliseconds"))

    # -- listening ---------------------------------------------------------------------------

    def subscribe(self, listener: Listener, after: int | None = None
                  ) -> tuple[list[Published], bool]:
        """Add ``listener``; return the buffered events after id ``after`` and whether some
        were lost (``after`` is older than the buffer reaches back). ``after=None``: nothing
        buffered, only what comes next."""
        with self._lock:
            self.armed = True
            self._listeners.append(listener)
            if after is None:
                return [], False
            backlog = [item for item in self._buffer if item.id > after]
            oldest = self._buffer[0].id if self._buffer else self._next
            # Ids past the latest come from an earlier run of the host: start over too.
            lost = after + 1 < oldest or after > self._next - 1
            return backlog, lost

    def disarm(self) -> None:
        """Stop recording (nobody listens): forget the buffer and skip one id, so a listener
        resuming from an id before this point learns that events were lost."""
        with self._lock:
            if self._listeners or not self.armed:
                return
            self.armed = False
            self._buffer.clear()
            self._next += 1

    def unsubscribe(self, listener: Listener) -> None:
        """Remove ``listener`` (a no-op when it is not subscribed)."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def watch_answers(self, watcher: Callable[[], None]) -> None:
        """Call ``watcher`` (in the loop's thread) after each answer the server sends."""
        self._watchers.append(watcher)

    @property
    def last_id(self) -> int:
        """The id of the latest event (0 before the first)."""
        with self._lock:
            return self._next - 1


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
