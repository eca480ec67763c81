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
from collections.abc import Mapping
from typing import Any

import msgspec
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol

from host import crashpoints
from host.front.link import (
    Answer,
    Deframer,
    Failed,
    LinkError,
    LinkMessage,
    Ready,
    Stop,
    Submit,
    frame,
)
from host.logs import MessageLog
from host.metrics import Metrics
from host.pipeline.replies import format_error_reply
from host.pipeline.request import IsoRequest
from host.server import IsoServerFactory, ServerLimits
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


class FrontFactory(IsoServerFactory):
    """The server factory of a front: requests go to the engine over the link."""

    def __init__(self, codec: Codec, limits: ServerLimits, log: MessageLog,
                 timer: MonotonicTimer, index: int = 0) -> None:
        # No service and no worker in a front: the two calls that would use them
        # (format_error, submit) are answered here and by the engine. The metrics stay local.
        super().__init__(None, None, codec, limits, log, Metrics(), timer)  # type: ignore[arg-type]
        self.link: EngineLink | None = None
        # The fronts share one log: front i numbers its connections from i * 1,000,000 + 1.
        self._ids = itertools.count(index * CONN_IDS_PER_FRONT + 1)

    def format_error(self, error: ValidationError) -> Deferred[Any]:
        """Answered here: a format error books nothing and needs no database."""
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
        factory.admission = TidBinding(log).refusal
    return TlsServerFactory(options, factory, log, "ISO 8583")


def _typed_limits(values: Mapping[str, float]) -> dict[str, Any]:
    """``[limits]`` as :class:`ServerLimits` takes them (counts back to int)."""
    base = ServerLimits()
    return {name: type(getattr(base, name))(value) for name, value in values.items()
            if name in ServerLimits.__dataclass_fields__}
