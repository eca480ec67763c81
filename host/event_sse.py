"""``GET /events``: the event bus as server-sent events (``text/event-stream``) on the admin port.

Mounted on the admin site behind its bearer-token gate (:mod:`host.admin.events`). Each event
is one SSE record::

    id: 42
    event: posting
    data: {"id": 42, "type": "posting", "group": 7, ...}

A client that reconnects sends the last id it saw as ``Last-Event-ID`` (header, or the query
parameter ``last_event_id``) and gets the events it missed from the bus's replay buffer. A new
client, or one whose gap is older than the buffer (first a ``reset`` record), gets a ``hello``
record: ``{"last_id", "ledger_head", "balances", "merchants"}`` -- the net balance per account
and currency after posting group ``ledger_head``, so it can apply exactly the ``posting`` events
after it, and each merchant's calendar country, subdivision and time zone. A host streams its
own ledger chain (``[server] partition``): ``ledger_head`` is that chain's position, the
balances are those of its postings, and only its postings follow (their group ids lie in the
chain's range, so a chain other than ``main`` starts above 2**40).
A comment line every :data:`KEEPALIVE_S` seconds keeps proxies from closing a quiet stream.

A client that stops reading is not buffered for without end: once :data:`QUEUE_MAX` records wait
for its socket, the host closes the stream (the client reconnects with its last id).
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from twisted.python import threadable
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from host.event_stream import EventBus, Published, encode
from host.event_tail import EventTail
from host.ledger.chains import MAIN_CHAIN, Chain
from host.logs import MessageLog, safe_line

KEEPALIVE_S = 15.0
DISARM_S = 120.0
"""How long after its last listener left the bus keeps recording for a reconnect."""
QUEUE_MAX = 5000
"""Records waiting for a client that does not read before its stream is closed."""
PATH = b"events"


def _record(data: str, event: str, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


class _Client:
    """One open stream: writes records in the loop's thread, holds them while the socket is
    full (push producer), and closes the stream when too many wait."""

    def __init__(self, request: Any, reactor: Any, on_close: Any) -> None:
        self.request = request
        self.reactor = reactor
        self.on_close = on_close
        self.paused = False
        self.waiting: deque[bytes] = deque()
        self.closed = False
        self.keepalive = reactor.callLater(KEEPALIVE_S, self._keepalive)

    # IPushProducer, registered on the request
    def pauseProducing(self) -> None:  # noqa: N802 - Twisted naming
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.paused = False
        while self.waiting and not self.paused and not self.closed:
            self.request.write(self.waiting.popleft())

    def stopProducing(self) -> None:  # noqa: N802
        self.close(gone=True)

    def deliver(self, item: Published) -> None:
        """Bus listener: may run in the worker thread; writes happen in the loop's."""
        record = _record(encode(item), item.event.type, item.id)
        if threadable.isInIOThread():  # type: ignore[no-untyped-call]
            self.write(record)
        else:
            self.reactor.callFromThread(self.write, record)

    def write(self, record: bytes) -> None:
        if self.closed:
            return
        if self.paused or self.waiting:
            self.waiting.append(record)
            if len(self.waiting) > QUEUE_MAX:
                self.close()
            return
        self.request.write(record)

    def _keepalive(self) -> None:
        if not self.closed:
            self.write(b": keepalive\n\n")
            self.keepalive = self.reactor.callLater(KEEPALIVE_S, self._keepalive)

    def close(self, gone: bool = False) -> None:
        """End the stream (``gone``: the client already went; nothing is left to finish)."""
        if self.closed:
            return
        self.closed = True
        if self.keepalive.active():
            self.keepalive.cancel()
        self.on_close(self)
        if not gone and not self.request.finished:
            self.request.unregisterProducer()
            self.request.finish()


class EventStreamResource(Resource):
    """``GET /events``: subscribe to the bus, stream records until the client goes (or the host
    stops: :meth:`close_all`). The admin gate in front has checked the token."""

    isLeaf = True

    def __init__(self, bus: EventBus, tail: EventTail | None, log: MessageLog,
                 reactor: Any, merchants: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.bus = bus
        self.merchants = merchants or {}
        self.tail = tail
        self.log = log
        self.reactor = reactor
        self.clients: set[_Client] = set()
        self._disarm: Any = None

    def render(self, request: Any) -> int | bytes:
        """Answer one request: 405 for other methods, else stream."""
        method = (request.method or b"").decode("ascii", "replace").upper()
        if method != "GET":
            request.setHeader("allow", "GET")
            return self._error(request, 405, "method not allowed; use GET")
        raw = request.getHeader("last-event-id")
        if raw is None:
            values = (request.args or {}).get(b"last_event_id") or [None]
            raw = values[-1].decode("ascii", "replace") if values[-1] is not None else None
        after: int | None = None
        if raw is not None and raw.strip() != "":
            if not raw.strip().isdigit() or len(raw.strip()) > 18:
                return self._error(request, 400, "Last-Event-ID must be the id of an event")
            after = int(raw.strip())
        request.setHeader("content-type", "text/event-stream; charset=utf-8")
        request.setHeader("cache-control", "no-cache")
        request.setHeader("x-accel-buffering", "no")
        client = _Client(request, self.reactor, self._closed)
        self.clients.add(client)
        if self._disarm is not None and self._disarm.active():
            self._disarm.cancel()
        request.registerProducer(client, True)
        request.notifyFinish().addBoth(lambda _: client.close(gone=True))
        request.write(b"retry: 1000\n\n")
        backlog, lost = self.bus.subscribe(client.deliver, after)
        if lost:
            client.write(_record(json.dumps({"reason": "events since your last id are no "
                                                       "longer buffered"}), "reset"))
        for item in backlog:
            client.deliver(item)
        if self.tail is not None:
            self.tail.attach()
            if after is None or lost:
                self.tail.snapshot().addCallbacks(
                    lambda snap: client.write(_record(safe_line(
                        {"last_id": self.bus.last_id, "merchants": self.merchants, **snap}),
                        "hello")),
                    lambda _: client.close())
        elif after is None or lost:
            client.write(_record(json.dumps({"last_id": self.bus.last_id,
                                             "merchants": self.merchants}), "hello"))
        return NOT_DONE_YET

    def _closed(self, client: _Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self.bus.unsubscribe(client.deliver)
            if self.tail is not None:
                self.tail.detach()
            if not self.clients:
                self._disarm = self.reactor.callLater(DISARM_S, self.bus.disarm)

    def close_all(self) -> None:
        """End every open stream (the host is stopping)."""
        for client in list(self.clients):
            client.close()
        if self._disarm is not None and self._disarm.active():
            self._disarm.cancel()

    @staticmethod
    def _error(request: Any, status: int, message: str) -> bytes:
        request.setResponseCode(status)
        request.setHeader("content-type", "application/json")
        return json.dumps({"error": message}).encode()


class _Unavailable(Resource):
    """``/events`` on a host built without an event bus (an embedded or test host): 503."""

    isLeaf = True

    def render(self, request: Any) -> bytes:
        return EventStreamResource._error(request, 503, "this host has no event stream")


def stream_for(ctx: Any) -> Resource:
    """The admin context's one event stream (built on first use), or a 503 resource when the
    runtime put no bus in ``ctx.extras``. The admin site calls this for each ``/events``
    request, so every request shares one stream and its clients."""
    stream = ctx.extras.get("event_stream")
    if isinstance(stream, EventStreamResource):
        return stream
    bus = ctx.extras.get("events")
    if not isinstance(bus, EventBus):
        return _Unavailable()  # type: ignore[no-untyped-call]
    # The running reactor, imported when first asked for, after the CLI installed asyncio's.
    from twisted.internet import reactor

    engine = getattr(ctx.service, "engine", None)
    chain = getattr(getattr(ctx.service, "ledger", None), "chain", None)
    tail = EventTail(bus, engine, ctx.clock, ctx.call, reactor,
                     chain=chain if isinstance(chain, Chain) else MAIN_CHAIN
                     ) if engine is not None else None
    stream = EventStreamResource(bus, tail, ctx.log, reactor, merchant_calendars(ctx))
    ctx.extras["event_stream"] = stream
    return stream


def merchant_calendars(ctx: Any) -> dict[str, dict[str, Any]]:
    """Per merchant: the business calendar's country and subdivision and the time zone, so a
    client can show business days and holidays with the same ``holidays`` tables."""
    desk = getattr(ctx.service, "settlement", None)
    out: dict[str, dict[str, Any]] = {}
    for mid, terms in (getattr(desk, "terms", None) or {}).items():
        calendar = terms.calendar
        out[str(mid)] = {"country": calendar.country, "subdivision": calendar.subdivision,
                         "timezone": str(terms.schedule.tz)}
    return out
