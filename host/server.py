"""The ISO 8583 server: frames in, service calls in the worker thread, frames out.

Thin by design (docs/design-notes.md): everything about money lives in :mod:`host.service`. Per
connection, a complete frame is decoded on the event loop (about 60 µs), then:

* undecodable bytes (:class:`~protocol.DecodeError`) or a bad length header
  (:class:`~protocol.FramingError`): the stream can no longer be trusted, so the connection is
  closed (after answering what was already accepted on it);
* a message that decodes but breaks the spec (:class:`~protocol.ValidationError`):
  ``service.format_error`` answers ``MTI+10`` with RC 30, or returns no response when the MTI,
  STAN or TID is unreadable, and then the connection is closed;
* otherwise ``service.handle(request)``, where ``request`` is an
  :class:`~host.pipeline.request.IsoRequest`: the fields, the frame's bytes and the
  connection's wire profile (a strict host checks that profile's mandatory fields).

Every frame gets exactly one outcome: an answer, or a close. A reply without a response is
sent as nothing only when the service marks it deliberate (a ``no_response`` test card, whose
terminal is meant to time out) or a fault rule decides so; any other empty reply means no
answer can be addressed, and the connection is closed rather than left to hang.

Service calls run in the host's one worker thread (:class:`~host.worker.ServiceWorker`), never
on the loop; responses on one connection go out in request order. Protection, from
``[limits]``:

* a frame announced larger than ``max_frame_bytes`` closes the connection; a frame not
  complete ``frame_deadline_s`` after its first byte closes it (slowloris; an idle timer reset
  on every byte would not, design lesson 2); no complete frame for ``idle_timeout_s`` closes it
  (an 0800 echo keeps a quiet link open); no first frame ``first_frame_timeout_s`` after the
  connect closes it, so idle sockets cannot hold the connection slots;
* connections over ``max_connections``, or over ``max_connections_per_peer`` from one IP
  address, are closed as soon as they are accepted, so one peer cannot lock others out;
* at most ``max_in_flight`` requests per connection are with the service at a time; a client
  that pipelines more is not read any further (``pauseProducing``) until answers went out, so
  its frames wait in the kernel's socket buffers, not in the host's memory, and other
  connections keep their turn. The frames of the last chunk read that are over the cap wait on
  the connection and are dropped with it when the client goes.

Timers are monotonic (:mod:`host.timers`).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, connectionDone
from twisted.python.failure import Failure

from host import crashpoints
from host.connection_caps import OVER_LIMIT, ConnectionCaps
from host.event_stream import EventBus
from host.faults.delivery import deliver
from host.logs import MessageLog
from host.metrics import Metrics
from host.pipeline.request import IsoRequest
from host.security.sealing import encode_response
from host.timers import DelayedCall, Timer
from protocol import Codec, DecodeError, FramingError, ProtocolError, Tpdu, ValidationError
from protocol.codec import TPDU_LEN
from protocol.messages import AnyResponse, WireResponse
from protocol.transport import FramedProtocol

if TYPE_CHECKING:  # a front process (host.front.process) has no worker, committer or faults
    from host.faults.actions import FaultHook
    from host.group_commit import GroupCommitter
    from host.worker import ServiceWorker


class ReplyLike(Protocol):
    """What :class:`host.service.Reply` offers the server."""

    @property
    def response(self) -> AnyResponse | WireResponse | None:
        """The message to send, or None to send nothing."""

    @property
    def log(self) -> dict[str, object]:
        """Facts for the log line (kind, rule, rrn, masked pan ...)."""

    @property
    def silent(self) -> bool:
        """True when sending nothing is deliberate (otherwise the connection is closed)."""


class IsoService(Protocol):
    """The part of :class:`host.service.HostService` the server calls (blocking)."""

    def handle(self, request: IsoRequest) -> ReplyLike:
        """Process one valid request (it reads as its field mapping)."""

    def format_error(self, error: ValidationError) -> ReplyLike:
        """Answer a request whose content breaks the spec."""


@dataclass(frozen=True)
class ServerLimits:
    """The ``[limits]`` section as the server uses it (defaults: docs/design-notes.md)."""

    max_frame_bytes: int = 8192
    frame_deadline_s: float = 5.0
    idle_timeout_s: float = 120.0
    first_frame_timeout_s: float = 5.0
    max_connections: int = 100
    max_connections_per_peer: int = 50
    max_in_flight: int = 8

    @classmethod
    def from_config(cls, config: object) -> ServerLimits:
        """Read ``config.limits``; missing attributes keep their defaults."""
        limits = getattr(config, "limits", None)
        base = cls()
        return cls(**{name: getattr(limits, name, getattr(base, name))
                      for name in cls.__dataclass_fields__})


class IsoHostProtocol(FramedProtocol):
    """One terminal connection."""

    def __init__(self, factory: IsoServerFactory, conn_id: int, peer: str) -> None:
        self.factory = factory
        self.conn_id = conn_id
        self.peer = peer
        self.peer_host = peer.rsplit(":", 1)[0]  # the IP address the per-peer cap counts
        self.length_header = factory.codec.profile.length_header
        self.max_frame_bytes = factory.limits.max_frame_bytes
        self.lost: Deferred[None] = Deferred()
        self._tail: Deferred[Any] = succeed(None)  # the last response in request order
        self._deadline: DelayedCall | None = None
        self._idle: DelayedCall | None = None
        self._first_frame: DelayedCall | None = None
        self._last_frame = 0.0  # when the last complete frame arrived (the idle timer's clock)
        self._closing = False
        self._frames_in_call = 0
        self._in_flight = 0  # requests accepted and not yet answered on this connection
        self._waiting: deque[bytes] = deque()  # complete frames over the in-flight cap
        self._paused = False  # reading stopped because of the in-flight cap
        self._unsent = _WriteBackpressure(self)  # answers the client does not read

    # -- connection life -------------------------------------------------------------------

    def connectionMade(self) -> None:  # noqa: N802 - Twisted naming
        """Count and log the connection; start the idle and first-frame timers."""
        super().connectionMade()
        transport: Any = self.transport
        transport.registerProducer(self._unsent, True)
        self.factory.opened(self)
        self._arm_idle()
        self._first_frame = self.factory.timer.callLater(
            self.factory.limits.first_frame_timeout_s, self._shut, "first_frame_timeout")

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        """Stop the timers, drop frames not yet accepted, tell whoever waits on :attr:`lost`."""
        for timer in (self._deadline, self._idle, self._first_frame):
            if timer is not None and timer.active():
                timer.cancel()
        self._deadline = self._idle = self._first_frame = None
        if self._waiting:
            self.factory.log.event("dropped_frames", conn=self.conn_id, frames=len(self._waiting))
            self._waiting.clear()
        self.factory.closed(self)
        self.lost.callback(None)

    def _shut(self, reason: str, **details: object) -> None:
        """Close for ``reason``: stop reading, answer what was already accepted, then close."""
        if self._closing:
            return
        self._closing = True
        self.factory.log.event("close", conn=self.conn_id, reason=reason, **details)
        self.factory.metrics.closed.inc(reason=reason)
        transport: Any = self.transport
        if transport is None:
            return
        transport.pauseProducing()

        def _close(_: object) -> None:
            # A registered producer would hold loseConnection until it finished.
            transport.unregisterProducer()
            transport.loseConnection()
            # A peer that never reads could hold loseConnection open; do not wait for ever.
            self.factory.timer.callLater(self.factory.limits.frame_deadline_s,
                                         self._abort_if_open)

        self._tail.addBoth(_close)

    def _abort_if_open(self) -> None:
        transport: Any = self.transport
        if transport is not None and not self.lost.called:
            transport.abortConnection()

    # -- timers ----------------------------------------------------------------------------

    def _arm_idle(self) -> None:
        """Start the idle timer; frames only move :attr:`_last_frame` (see :meth:`_idle_due`)."""
        self._last_frame = self.factory.timer.seconds()
        self._idle = self.factory.timer.callLater(self.factory.limits.idle_timeout_s,
                                                  self._idle_due)

    def _idle_due(self) -> None:
        # Re-arming a timer on every frame costs a cancel and a new timer per message; the
        # timer instead checks when it fires, and waits out the rest if a frame came since.
        # A connection whose requests the host has not answered yet is not idle.
        if self._in_flight or self._waiting:
            self._last_frame = self.factory.timer.seconds()
        quiet = self.factory.timer.seconds() - self._last_frame
        left = self.factory.limits.idle_timeout_s - quiet
        if left > 0:
            self._idle = self.factory.timer.callLater(left, self._idle_due)
        else:
            self._shut("idle_timeout")

    def _arm_deadline(self) -> None:
        self._cancel_deadline()
        self._deadline = self.factory.timer.callLater(self.factory.limits.frame_deadline_s,
                                                      self._shut, "frame_deadline")

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    # -- flow control ----------------------------------------------------------------------

    def _pause(self) -> None:
        """Stop reading while at the in-flight cap. The partial frame's deadline stops too:
        the host, not the client, is the one holding the frame back now."""
        if self._paused:
            return
        self._paused = True
        self._cancel_deadline()
        transport: Any = self.transport
        if transport is not None:
            transport.pauseProducing()

    def _at_cap(self) -> bool:
        """True while no further frame may be accepted on this connection."""
        return (self._in_flight >= self.factory.limits.max_in_flight
                or self._unsent.blocked)

    def _request_done(self) -> None:
        """One of this connection's requests was answered (or dropped): take the next."""
        self._in_flight -= 1
        self.factory.request_finished()
        if self._paused or self._waiting:  # the usual case, nothing held, costs no call
            self._take_waiting()

    def _take_waiting(self) -> None:
        """Accept held frames while under the cap; read again once none is held."""
        while self._waiting and not self._at_cap() and not self._closing \
                and not self.factory.stopping:
            self._accept(self._waiting.popleft())
        if self._paused and not self._waiting and not self._closing \
                and not self.factory.stopping:
            self._paused = False
            transport: Any = self.transport
            if transport is not None:
                transport.resumeProducing()
            if self.frame_in_progress:
                self._arm_deadline()

    # -- bytes in --------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        """Deframe, then keep the per-frame deadline running only while a frame is partial."""
        if self._closing:
            return
        had_partial = self.frame_in_progress
        self._frames_in_call = 0
        super().dataReceived(data)
        if self._closing:
            return
        if self._paused:
            self._cancel_deadline()  # restarted by _take_waiting when reading resumes
        elif self.frame_in_progress:
            # The deadline runs from the first byte of the frame now buffered: keep it if
            # that frame was already partial before this chunk, restart it otherwise.
            if not had_partial or self._frames_in_call or self._deadline is None:
                self._arm_deadline()
        elif self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def framingError(self, error: FramingError) -> None:  # noqa: N802
        """A bad length header: close."""
        self._shut("framing", error=str(error))

    def frameReceived(self, payload: bytes) -> None:  # noqa: N802
        """Accept one frame, or hold it (and stop reading) while at the in-flight cap."""
        self._frames_in_call += 1
        if self._closing or self.factory.stopping:
            return  # shutting down: a request not yet accepted is never processed
        if self._first_frame is not None:
            if self._first_frame.active():
                self._first_frame.cancel()
            self._first_frame = None
        if self._waiting or self._at_cap():
            self._waiting.append(payload)  # at most the rest of one read: reading stops here
            self._pause()
            return
        self._accept(payload)

    def _accept(self, payload: bytes) -> None:
        """Decode one frame and queue its service call."""
        self._last_frame = self.factory.timer.seconds()
        started = time.perf_counter()
        codec = self.factory.codec
        tpdu = Tpdu(payload[:TPDU_LEN]) if codec.profile.tpdu and len(payload) >= TPDU_LEN else None
        try:
            _, fields = codec.decode(payload)
        except ValidationError as exc:
            self.factory.log.message("in", self.conn_id, exc.fields, error=str(exc))
            # On the stream too, the bad field included: a trainer sees what got the RC 30.
            self.factory.events.message("in", self.conn_id, exc.fields)
            self._queue(self.factory.format_error(exc), tpdu, started, exc.fields.get("t", ""),
                        True, None)
            return
        except DecodeError as exc:
            self._shut("decode", error=str(exc), bytes=len(payload))
            return
        self.factory.log.message("in", self.conn_id, fields)
        self.factory.events.message("in", self.conn_id, fields)
        refusal = self.factory.admission(self, fields) if self.factory.admission else None
        if refusal is not None:  # answered here, never booked (host.tls.TidBinding)
            self._queue(succeed(refusal), tpdu, started, fields["t"], False, None)
            return
        request = IsoRequest(fields, payload, codec.profile, tpdu)
        faults = self.factory.faults
        decision = faults.match(self.conn_id, fields) if faults is not None else None
        if faults is not None and decision is not None:
            reply = faults.submit(
                decision, fields,
                lambda: self.factory.submit(request))
        else:
            reply = self.factory.submit(request)
        self._queue(reply, tpdu, started, fields["t"], False, decision)

    def _queue(self, reply: Deferred[Any], tpdu: Tpdu | None, started: float, in_mti: str,
               format_error: bool, decision: Any) -> None:
        self.factory.request_started()
        self._in_flight += 1
        # Chaining on the previous response keeps answers in request order on this connection.
        self._tail.addBoth(lambda _: reply)
        self._tail.addBoth(self._respond, tpdu, started, in_mti, format_error, decision)

    # -- bytes out -------------------------------------------------------------------------

    def _respond(self, result: ReplyLike | Failure, tpdu: Tpdu | None, started: float,
                 in_mti: str, format_error: bool, decision: Any) -> Deferred[None] | None:
        try:
            later = self._send(result, tpdu, started, in_mti, format_error, decision)
        except Exception as exc:  # a bug here must cost one connection, never the host
            self.factory.log.event("internal_error", conn=self.conn_id,
                                   error=f"{type(exc).__name__}: {exc}")
            self._shut("internal_error")
            later = None
        if later is None:
            self._request_done()
            return None
        # A fault delays the send: the tail (and so the next response) waits for it.
        later.addBoth(lambda _: self._request_done())
        return later

    def _send(self, result: ReplyLike | Failure, tpdu: Tpdu | None, started: float,
              in_mti: str, format_error: bool, decision: Any) -> Deferred[None] | None:
        """Encode and send the reply; a Deferred return (a delayed fault) holds the order."""
        log = self.factory.log
        if isinstance(result, Failure):
            log.event("service_error", conn=self.conn_id, mti=in_mti,
                      error=f"{result.type and result.type.__name__}: {result.getErrorMessage()}")
            self._shut("service_error")
            return None
        if decision is None:  # a front's fault comes back from the engine with the answer
            decision = getattr(result, "fault", None)
        response = result.response
        if response is None:
            log.event("no_response", **{"mti": in_mti, **result.log, "conn": self.conn_id})
            if decision is not None and not format_error:
                return self._deliver_fault(decision, None)
            if format_error or not result.silent:
                # Nothing can be addressed to this request: a close tells the terminal now,
                # where silence would leave it waiting for its timeout.
                self._shut("unanswerable")
            return None
        out = response.to_fields()
        try:
            # Sealed by an engine in another process (host.front), else MAC'd here if due.
            payload = getattr(result, "sealed", None) or encode_response(
                self.factory.service, self.factory.codec, out, tpdu.reply if tpdu else None)
        except ProtocolError as exc:
            log.event("encode_error", conn=self.conn_id, mti=in_mti, error=str(exc))
            self._shut("encode_error")
            return None
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        self.factory.metrics.request(in_mti, out.get("39", ""), latency_ms)
        if self.transport is None or self.lost.called:
            log.message("out", self.conn_id, out, context=result.log, latency_ms=latency_ms,
                        dropped="connection closed before the response")
            return None
        log.message("out", self.conn_id, out, context=result.log, latency_ms=latency_ms)
        self.factory.events.message("out", self.conn_id, out, result.log, latency_ms)
        if decision is not None:
            return self._deliver_fault(decision, payload)
        crashpoints.hit("after_commit_before_send")
        self.sendFrame(payload)
        crashpoints.hit("after_send", self.transport)
        return None

    def _deliver_fault(self, decision: Any, payload: bytes | None) -> Deferred[None] | None:
        """Send ``payload`` late, twice, garbled... or not at all, as the fault says (the
        same code in a front process, host.faults.delivery)."""
        return deliver(decision, self.factory.timer, self._send_live, self._fault_close, payload)

    def _send_live(self, payload: bytes) -> None:
        """Send a payload if the connection is still there (faults send late)."""
        if self.transport is not None and not self.lost.called:
            self.sendFrame(payload)

    def _fault_close(self) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()


class _WriteBackpressure:
    """The transport's push producer: Twisted pauses it when the answers written to a client
    fill the transport's buffer (the client does not read them), and resumes it once they are
    flushed. While paused, the connection accepts no new request, so its answers cannot pile
    up in the host's memory."""

    def __init__(self, conn: IsoHostProtocol) -> None:
        self.conn = conn
        self.blocked = False

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted naming
        self.blocked = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.blocked = False
        self.conn._take_waiting()

    def stopProducing(self) -> None:  # noqa: N802
        self.blocked = True


class IsoServerFactory(Factory):
    """Builds :class:`IsoHostProtocol` connections sharing one service, worker and codec.

    :ivar connections: the open connections.
    """

    def __init__(self, service: IsoService, worker: ServiceWorker, codec: Codec,
                 limits: ServerLimits, log: MessageLog, metrics: Metrics, timer: Timer,
                 faults: FaultHook | None = None) -> None:
        self.service = service
        self.faults = faults
        self.worker = worker
        self.codec = codec
        self.limits = limits
        self.log = log
        self.metrics = metrics
        self.timer = timer
        self.connections: set[IsoHostProtocol] = set()
        self.caps = ConnectionCaps(limits, metrics)  # open connections, in all and per peer
        self._ids = itertools.count(1)
        self._pending = 0
        self._drain_waiters: list[Deferred[None]] = []
        self.stopping = False
        self.committer: GroupCommitter | None = None  # set by the runtime (host.group_commit)
        # The runtime's check of a connection's right to send a request (host.tls.TidBinding):
        # None admits it, a reply refuses it.
        self.admission: Callable[[IsoHostProtocol, dict[str, str]], ReplyLike | None] | None \
            = None
        self.events = EventBus()  # the runtime's bus (host.event_stream); idle until watched

    def buildProtocol(self, addr: IAddress | None) -> IsoHostProtocol | None:  # noqa: N802
        """A new connection, or None (Twisted then closes the socket) when over the cap."""
        host = str(getattr(addr, "host", "?"))
        peer = f"{host}:{getattr(addr, 'port', '?')}"
        refused = self.caps.refusal(host)
        if refused is not None:
            self.log_refusal(peer, refused)
            return None
        return IsoHostProtocol(self, next(self._ids), peer)

    def log_refusal(self, peer: str, reason: str) -> None:
        """The ``close`` line of a connection refused over a cap (``over_limit``: the host's
        ``max_connections``; ``over_peer_limit``: its ``max_connections_per_peer``)."""
        cap = "max_connections" if reason == OVER_LIMIT else "max_connections_per_peer"
        self.log.event("close", peer=peer, reason=reason, **{cap: getattr(self.limits, cap)})

    def opened(self, conn: IsoHostProtocol) -> None:
        """Book-keeping for a connection that is now open."""
        self.connections.add(conn)
        self.caps.take(conn.peer_host)
        self.log.event("connect", conn=conn.conn_id, peer=conn.peer)

    def closed(self, conn: IsoHostProtocol) -> None:
        """Book-keeping for a connection that is gone."""
        if conn in self.connections:
            self.connections.discard(conn)
            self.caps.release(conn.peer_host)
        self.log.event("disconnect", conn=conn.conn_id)

    def request_started(self) -> None:
        """A request was handed to the service."""
        self._pending += 1

    def request_finished(self) -> None:
        """A request's response was sent (or dropped); wake :meth:`drained` waiters at zero."""
        self._pending -= 1
        if self._pending == 0:
            waiters, self._drain_waiters = self._drain_waiters, []
            for d in waiters:
                d.callback(None)

    def format_error(self, error: ValidationError) -> Deferred[Any]:
        """The answer to a request that breaks the spec (:meth:`IsoService.format_error`)."""
        return self.worker.call(self.service.format_error, error)

    def submit(self, request: IsoRequest) -> Deferred[Any]:
        """Hand a valid request to the service: through group commit when the runtime set
        :attr:`committer`, else one worker call per request."""
        if self.committer is not None:
            return self.committer.submit(request)
        return self.worker.call(self.service.handle, request)

    def stop_reading(self) -> None:
        """Shutdown: accept no new request on any connection (answers still go out), so that
        :meth:`drained` can fire while terminals keep sending."""
        self.stopping = True
        for conn in self.connections:
            transport: Any = conn.transport
            if transport is not None:
                transport.pauseProducing()

    def drained(self) -> Deferred[None]:
        """Fires once every accepted request has been answered."""
        if self._pending == 0:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._drain_waiters.append(d)
        return d

    def close_all(self) -> Deferred[Any]:
        """Close every connection; fires when all are gone."""
        waits = [conn.lost for conn in list(self.connections)]
        for conn in list(self.connections):
            transport: Any = conn.transport
            if transport is not None:
                transport.unregisterProducer()
                transport.loseConnection()
        return DeferredList(waits)

    def close_all_or_abort(self) -> Deferred[Any]:
        """:meth:`close_all`, aborting the connections still open after ``frame_deadline_s``.

        A TLS close waits for the client's close_notify, which a client that does not read
        never sends; without the abort it would hold the stop until its idle timeout.
        """
        closed = self.close_all()

        def abort_rest() -> None:
            for conn in list(self.connections):
                transport: Any = conn.transport
                if transport is not None:
                    self.log.event("close", conn=conn.conn_id, reason="stop_abort")
                    transport.abortConnection()

        pending = self.timer.callLater(self.limits.frame_deadline_s, abort_rest)

        def done(result: object) -> object:
            if pending.active():
                pending.cancel()
            return result

        return closed.addBoth(done)
