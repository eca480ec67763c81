"""A front process: the ISO 8583 sockets, framing, decoding and answers, with no database.

``python -m host.front SETTINGS`` is started by the engine (:mod:`host.front.engine`), never by
hand. It inherits the engine's listening socket as file descriptor 3 and accepts connections
on it (the kernel spreads them over the fronts), runs the same connection code as the
one-process host (:class:`host.server.IsoHostProtocol`: limits, flow control, answer-or-close,
the message log, where front i numbers its connections from i * 1,000,000 + 1) and hands
every valid request to the engine over its stdin/stdout pipe (:mod:`host.front.link`). It
answers a request only with the engine's :class:`Answer`, which the engine sends after the
request's commit. A format error (MTI+10, RC 30) books nothing and is answered here. Fault
rules are matched in the engine; an answer that carries a rule's decision is delivered here
the way it says (late, twice, garbled, not at all, or a close), by the one-process code.
With ``[tls.iso]`` the front terminates TLS itself, reading the files named in its settings,
with the one-process host's :class:`host.tls.TlsServerFactory` and ``tid_in_certificate`` check.

The connection caps are the engine's: a new connection is read only once the engine granted
it a slot (:class:`~host.front.link.Claim`, :class:`~host.front.link.Grant`), and closed as
the one-process host closes one over a cap when it refused. The front's metrics, and the
event-stream messages of the answers it gives itself (RC 30, 58), are a
:class:`~host.front.tally.FrontTally`, sent to the engine now and then.

It ignores SIGINT and SIGTERM: the engine stops it with a :class:`Stop` message (stop reading,
send the answers still due, close, exit 0). When the pipe closes without one, the engine died;
the front exits at once, and its open connections close with it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import msgspec
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from host import crashpoints
from host.event_stream import EventBus
from host.front.link import (
    TALLY_EVERY_S,
    Answer,
    Claim,
    Deframer,
    Failed,
    Grant,
    LinkError,
    LinkMessage,
    Ready,
    Release,
    Stop,
    Submit,
    frame,
)
from host.front.tally import FrontTally
from host.logs import MessageLog
from host.metrics import Metrics
from host.pipeline.replies import format_error_reply
from host.pipeline.request import IsoRequest
from host.server import IsoHostProtocol, IsoServerFactory, ServerLimits
from host.startup_gc import started
from host.timers import MonotonicTimer
from protocol import Codec, ValidationError

LISTEN_FD = 3
"""The engine's listening socket, as the front inherits it."""

EXIT_ENGINE_GONE = 70
EXIT_CANNOT_SERVE = 2
"""The front could not set up its listener (it said why in a :class:`Failed` message)."""
CONN_IDS_PER_FRONT = 1_000_000


class FrontTls(msgspec.Struct):
    """``[tls.iso]`` as a front needs it: the file names and modes, never the key material
    (each front reads the files itself, with :func:`host.tls.server_options`)."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    require_client_cert: bool = False
    tid_in_certificate: bool = False

    @property
    def enabled(self) -> bool:
        """Always: a front is given a :class:`FrontTls` only when the ISO port is on TLS."""
        return True


class FrontSettings(msgspec.Struct):
    """What a front needs of the host's settings (passed as JSON on its command line)."""

    index: int
    profile: str
    family: int  # socket.AF_INET or AF_INET6: the listening socket's address family
    limits: dict[str, float]
    log_file: str | None = None
    log_fields: bool = False
    tls: FrontTls | None = None  # TLS on the ISO port, terminated in each front


class _Fields:
    """A response as fields (what :class:`host.server.ReplyLike` offers as ``response``)."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields

    def to_fields(self) -> dict[str, str]:
        return dict(self.fields)


class RemoteReply:
    """The engine's :class:`Answer` as the server code reads a reply."""

    __slots__ = ("response", "log", "silent", "sealed", "fault")

    def __init__(self, answer: Answer) -> None:
        self.response = _Fields(answer.fields) if answer.fields is not None else None
        self.log: dict[str, object] = answer.log
        self.silent = answer.silent
        self.sealed = answer.sealed
        self.fault = answer.fault  # the engine's fault decision: the server delivers by it


class ServiceError(Exception):
    """The engine could not process a request (its message is the engine's)."""


class FrontConnection(IsoHostProtocol):
    """A connection of a front: counts for the engine the requests it answers itself.

    :ivar refused: the engine refused it a slot (it is closed before any TLS handshake).
    """

    factory: FrontFactory
    refused = False

    def _send(self, result: Any, tpdu: Any, started: float, in_mti: str, format_error: bool,
              decision: Any) -> Deferred[None] | None:
        if isinstance(result, (RemoteReply, Failure)) or result.response is None:
            return super()._send(result, tpdu, started, in_mti, format_error, decision)
        # Answered here (a format error's RC 30, a TLS CERT_TID_MISMATCH): the engine never
        # saw it, so it learns of it from the tally. Latency as the one-process host takes it.
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        events = self.factory.tally.events
        events.answering = True  # the "out" the one-process code publishes goes in the tally
        try:
            later = super()._send(result, tpdu, started, in_mti, format_error, decision)
        finally:
            events.answering = False
        self.factory.tally.answered_here(in_mti, result.response.to_fields().get("39", ""),
                                         latency_ms)
        return later


class FrontFactory(IsoServerFactory):
    """The server factory of a front: requests go to the engine over the link, and so do
    the connections, each for a slot under the host's caps."""

    def __init__(self, codec: Codec, limits: ServerLimits, log: MessageLog,
                 timer: MonotonicTimer, index: int = 0) -> None:
        # No service and no worker in a front: the two calls that would use them
        # (format_error, submit) are answered here and by the engine. The metrics are the
        # engine's: what only the front sees reaches them in its tallies.
        self.tally = FrontTally()
        super().__init__(None, None, codec, limits, log,  # type: ignore[arg-type]
                         cast(Metrics, self.tally), timer)
        # The engine publishes the messages it answers; the front's own answers ride the tally.
        self.events = cast(EventBus, self.tally.events)
        self.link: EngineLink | None = None
        # The fronts share one log: front i numbers its connections from i * 1,000,000 + 1.
        self._ids = itertools.count(index * CONN_IDS_PER_FRONT + 1)
        self._claimed: dict[int, FrontConnection] = {}  # waiting for the engine's grant

    def buildProtocol(self, addr: IAddress | None) -> IsoHostProtocol | None:  # noqa: N802
        """A new connection; whether it may stay is the engine's to say (:meth:`opened`)."""
        peer = f"{getattr(addr, 'host', '?')}:{getattr(addr, 'port', '?')}"
        return FrontConnection(self, next(self._ids), peer)

    def opened(self, conn: IsoHostProtocol) -> None:
        """Read nothing from the new connection until the engine grants it a slot."""
        assert self.link is not None and isinstance(conn, FrontConnection)
        transport: Any = conn.transport
        transport.pauseProducing()
        self._claimed[conn.conn_id] = conn
        self.link.claim(conn.conn_id, conn.peer_host)

    def granted(self, grant: Grant) -> None:
        """The engine's answer to a claim: open the connection, or close it over the cap."""
        conn = self._claimed.pop(grant.conn, None)
        if conn is None:  # not a claim of this front: hold no slot for it
            if grant.refused is None and self.link is not None:
                self.link.release(grant.conn)
            return
        transport: Any = conn.transport
        if grant.refused is not None:
            conn.refused = True
            self.log_refusal(conn.peer, grant.refused)  # the engine counted it
            if transport is not None and not conn.lost.called:
                transport.abortConnection()
        elif conn.lost.called or self.stopping or transport is None:
            assert self.link is not None
            self.link.release(conn.conn_id)  # gone (or refused by the stop) meanwhile
            if not conn.lost.called and transport is not None:
                transport.abortConnection()
        else:
            super().opened(conn)
            transport.resumeProducing()

    def closed(self, conn: IsoHostProtocol) -> None:
        """A connection is gone: give its slot back (one still waiting for its grant gives
        it back when the grant comes, :meth:`granted`)."""
        if conn in self.connections:
            super().closed(conn)
            assert self.link is not None
            self.link.release(conn.conn_id)

    def refuse_with(self, refusal: Callable[[IsoHostProtocol, dict[str, str]], Any]) -> None:
        """Check each request with ``refusal`` (:meth:`host.tls.TidBinding.refusal`) before it
        goes to the engine; a request it refuses is answered here, and its "in" message, which
        the one-process host publishes before the check, goes to the engine in the tally."""
        def admission(conn: IsoHostProtocol, fields: dict[str, str]) -> Any:
            reply = refusal(conn, fields)
            if reply is not None:
                self.tally.heard("in", fields)
            return reply
        self.admission = admission

    def format_error(self, error: ValidationError) -> Deferred[Any]:
        """Answered here: a format error books nothing and needs no database. Its "in"
        message, which the one-process host publishes as it reads the frame, goes to the
        engine in the tally (the front's own bus passes on only the answers it gives)."""
        self.tally.heard("in", error.fields)
        return succeed(format_error_reply(error))

    def submit(self, request: IsoRequest) -> Deferred[Any]:
        """Send the request to the engine; fires with its answer after the engine's commit."""
        assert self.link is not None
        return self.link.submit(request)


class EngineLink(Protocol):
    """The front's end of the pipe to the engine (stdin in, stdout out)."""

    def __init__(self, factory: FrontFactory, reactor: Any, port: Any) -> None:
        self.factory = factory
        self.reactor = reactor
        self.port = port
        self.waiting: dict[int, Deferred[Any]] = {}
        self._ids = itertools.count(1)
        self._deframer = Deframer(self._received)
        self._stopping = False
        factory.tally.wake = self._tally_soon

    def claim(self, conn_id: int, peer: str) -> None:
        """Ask the engine for a slot for a new connection (answered by a :class:`Grant`)."""
        self._write(Claim(conn_id, peer))

    def release(self, conn_id: int) -> None:
        """Give a granted connection's slot back."""
        self._write(Release(conn_id))

    def _tally_soon(self) -> None:
        self.reactor.callLater(TALLY_EVERY_S, self.send_tally)

    def send_tally(self) -> None:
        """Send what the front counted since the last tally, if anything."""
        tally = self.factory.tally.take()
        if tally is not None:
            self._write(tally)

    def _write(self, message: LinkMessage) -> None:
        transport: Any = self.transport
        transport.write(frame(message))

    def connectionMade(self) -> None:  # noqa: N802 - Twisted naming
        """The pipe is up and the port adopted: tell the engine this front serves."""
        transport: Any = self.transport
        transport.write(frame(Ready()))

    def submit(self, request: IsoRequest) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        rid = next(self._ids)
        self.waiting[rid] = d
        transport: Any = self.transport
        transport.write(frame(Submit(rid, dict(request.fields), request.raw)))
        return d

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted naming
        try:
            self._deframer.feed(data)
        except LinkError as exc:
            self.factory.log.event("front_link_error", error=str(exc))
            os._exit(EXIT_ENGINE_GONE)

    def _received(self, message: LinkMessage) -> None:
        if isinstance(message, Answer):
            d = self.waiting.pop(message.id)
            if message.error is not None:
                d.errback(ServiceError(message.error))
            else:
                d.callback(RemoteReply(message))
        elif isinstance(message, Grant):
            self.factory.granted(message)
        elif isinstance(message, Stop):
            self._stop()

    def _stop(self) -> None:
        """Stop accepting and reading, answer what was accepted, close, exit 0."""
        if self._stopping:
            return
        self._stopping = True
        factory = self.factory
        d = self.port.stopListening()
        d.addCallback(lambda _: factory.stop_reading())
        d.addCallback(lambda _: factory.drained())
        d.addCallback(lambda _: factory.close_all_or_abort())  # a TLS close may wait
        d.addBoth(lambda _: self.send_tally())  # the closes and answers not yet counted
        d.addBoth(lambda _: self.reactor.stop())

    def connectionLost(self, reason: object = None) -> None:  # noqa: N802
        """The pipe closed: unless stopping, the engine is gone, and so is this front."""
        if not self._stopping:
            os._exit(EXIT_ENGINE_GONE)


def main(argv: list[str] | None = None) -> int:
    """Run one front until the engine stops it (or dies)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("python -m host.front is started by poslab-host (front_processes), not by hand",
              file=sys.stderr)
        return 2
    settings = msgspec.json.decode(args[0], type=FrontSettings)
    tls_options = None
    if settings.tls is not None:  # the TLS stack is imported only then: a plain front does without
        from host.tls import TlsSetupError, server_options

        try:
            tls_options = server_options(settings.tls, "[tls.iso]")
        except TlsSetupError as exc:  # one line, worded as the one-process host words it
            os.write(1, frame(Failed(str(exc))))  # the engine ends its start with this line
            return EXIT_CANNOT_SERVE
    # Ctrl-C reaches the whole process group: the engine decides when its fronts stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    crashpoints.crash_with_engine(os.getppid())

    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)  # type: ignore[no-untyped-call]
    from twisted.internet import reactor as _reactor
    from twisted.internet.stdio import StandardIO

    reactor: Any = _reactor
    log = (MessageLog.to_file(settings.log_file, with_fields=settings.log_fields)
           if settings.log_file else MessageLog(sys.stderr, with_fields=settings.log_fields))
    limits = ServerLimits(**_typed_limits(settings.limits))
    factory = FrontFactory(Codec(settings.profile), limits, log, MonotonicTimer(loop),
                           settings.index)
    served: Any = factory
    if settings.tls is not None:
        served = _on_tls(settings.tls, tls_options, factory, log)
    port = reactor.adoptStreamPort(LISTEN_FD, socket.AddressFamily(settings.family), served)
    os.close(LISTEN_FD)  # the port holds its own duplicate
    factory.link = link = EngineLink(factory, reactor, port)
    StandardIO(link, reactor=reactor)  # type: ignore[no-untyped-call]
    log.event("front_started", front=settings.index, pid=os.getpid())
    started()
    reactor.run(installSignalHandlers=False)
    log.close()
    return 0


def _on_tls(tls: FrontTls, options: Any, factory: FrontFactory, log: MessageLog) -> Any:
    """``factory`` behind TLS, with the TID binding, as the one-process host listens."""
    from host.tls import TidBinding, TlsServerFactory

    if tls.tid_in_certificate:
        factory.refuse_with(TidBinding(log).refusal)
    return TlsServerFactory(options, factory, log, "ISO 8583")


def _typed_limits(values: Mapping[str, float]) -> dict[str, Any]:
    """``[limits]`` as :class:`ServerLimits` takes them (counts back to int)."""
    base = ServerLimits()
    return {name: type(getattr(base, name))(value) for name, value in values.items()
            if name in ServerLimits.__dataclass_fields__}
