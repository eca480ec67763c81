"""``GET /events``: the event bus as server-sent events (``text/event-stream``) on the admin port.

Same bearer token as every admin call (401 and an ``audit`` log line otherwise). Each event is
one SSE record::

    id: 42
    event: posting
    data: {"id": 42, "type": "posting", "group": 7, ...}

A client that reconnects sends the last id it saw as ``Last-Event-ID`` (header, or the query
parameter ``last_event_id``) and gets the events it missed from the bus's replay buffer. A new
client, or one whose gap is older than the buffer (first a ``reset`` record), gets a ``hello``
record: ``{"last_id", "ledger_head", "balances", "merchants"}`` -- the net balance per account
and currency after posting group ``ledger_head``, so it can apply exactly the ``posting`` events
after it, and each merchant's calendar country, subdivision and time zone.
A comment line every :data:`KEEPALIVE_S` seconds keeps proxies from closing a quiet stream.

A client that stops reading is not buffered for without end: once :data:`QUEUE_MAX` records wait
for its socket, the host closes the stream (the client reconnects with its last id).
"""

from __future__ import annotations

import hmac
import json
from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.python import threadable
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from host.event_stream import EventBus, Published, encode
from host.logs import MessageLog, safe_line

if TYPE_CHECKING:
    from host.event_tail import EventTail

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
    """``GET /events``: authenticate, subscribe to the bus, stream records until the client
    goes (or the host stops: :meth:`close_all`)."""

    isLeaf = True

    def __init__(self, bus: EventBus, tail: EventTail | None, token: str, log: MessageLog,
                 reactor: Any, merchants: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.bus = bus
        self.merchants = merchants or {}
        self.tail = tail
        self._token = token.encode()
        self.log = log
        self.reactor = reactor
        self.clients: set[_Client] = set()
        self._disarm: Any = None

    def render(self, request: Any) -> int | bytes:
        """Answer one request: 405 for other methods, 401 without the token, else stream."""
        method = (request.method or b"").decode("ascii", "replace").upper()
        if method != "GET":
            request.setHeader("allow", "GET")
            return self._error(request, 405, "method not allowed; use GET")
        if not self._authorized(request):
            request.setHeader("www-authenticate", 'Bearer realm="poslab-host"')
            return self._error(request, 401, "missing or wrong bearer token")
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

    def _authorized(self, request: Any) -> bool:
        header = request.getHeader("authorization") or ""
        scheme, _, given = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                self._token)
        if not ok:
            peer = request.getClientAddress()
            self.log.audit("admin_auth_failed", method="GET", path="/events",
                           peer=getattr(peer, "host", "?"),
                           reason="missing token" if not header else "wrong token")
        return ok

    @staticmethod
    def _error(request: Any, status: int, message: str) -> bytes:
        request.setResponseCode(status)
        request.setHeader("content-type", "application/json")
        return json.dumps({"error": message}).encode()


class _Mount(Resource):
    """Routes ``/events`` to the stream and every other path to the admin resource."""

    def __init__(self, admin: Resource, stream: EventStreamResource) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.admin = admin
        self.stream = stream

    def getChild(self, path: bytes, request: Any) -> Resource:  # noqa: N802 - Twisted naming
        if path == PATH and not [p for p in request.postpath if p]:
            return self.stream
        return self.admin

    def render(self, request: Any) -> Any:
        return self.admin.render(request)  # type: ignore[no-untyped-call]


def with_event_stream(admin: Resource, ctx: Any, token: str) -> Resource:
    """``admin`` with ``GET /events`` mounted when the runtime put a bus in ``ctx.extras``."""
    bus = ctx.extras.get("events")
    if not isinstance(bus, EventBus):
        return admin
    from twisted.internet import reactor

    from host.event_tail import EventTail  # late: it reads the store's tables (SQLAlchemy)

    engine = getattr(ctx.service, "engine", None)
    tail = EventTail(bus, engine, ctx.clock, ctx.call, reactor) if engine is not None else None
    stream = EventStreamResource(bus, tail, token, ctx.log, reactor, merchant_calendars(ctx))
    ctx.extras["event_stream"] = stream
    return _Mount(admin, stream)


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
