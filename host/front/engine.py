"""The engine's side of the front processes: bind, spawn, feed the group committer, stop.

With ``[server] front_processes = N`` (N > 0) the host process is the engine: it keeps the
service, its worker thread, group commit and the admin API, and leaves the ISO 8583 sockets
to N front processes (:mod:`host.front.process`). It binds the listening socket itself (so a
bad address is a start error, and port 0 works), passes it to each front, and keeps a copy so
that a front that dies can be started again on the same socket.

Each request a front sends goes through the same :class:`~host.group_commit.GroupCommitter` as
in the one-process host, and its :class:`~host.front.link.Answer` is written back to the front
only when the committer delivers the reply, which is after the batch's COMMIT returned. A
response that must carry a MAC is sealed here, where the session keys are, and travels as
bytes. The per-request metrics and the event stream are kept here too (latency is the
engine's, from the request's arrival on the pipe to its answer).

Fault rules (``[[faults]]``, ``/faults``) live here too, in the one registry the admin API
edits, so a rule's ``count`` is exact over all fronts. Each request from a front is matched
here: a ``process: false`` rule answers it without running the service (or runs it after the
delay), a ``process: true`` one runs it as usual, and ``respond`` replaces the answer, all by
the one-process code (:class:`host.faults.actions.FaultHook`). The decision then travels back
in the :class:`~host.front.link.Answer`, and the front carries out its delivery part.

The connection caps of ``[limits]`` hold for the whole host, as in the one-process host: the
engine keeps the count of every front's connections (:class:`host.connection_caps.ConnectionCaps`)
and grants or refuses each new one a front claims, and frees the slots of a front that exits.
``poslab_open_connections``, ``poslab_connections_total`` and the refusals in
``poslab_connections_closed_total`` are counted from those claims; the closes the fronts decide
and the requests they answer themselves (RC 30, 58) arrive in their periodic tallies, with
those requests' messages for the event stream (published here on arrival, so up to
:data:`~host.front.link.TALLY_EVERY_S` late).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from host.connection_caps import ConnectionCaps
from host.faults.actions import FaultHook
from host.faults.delivery import FaultDecision
from host.front.link import (
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
    Tally,
    frame,
)
from host.front.process import FrontSettings
from host.group_commit import GroupCommitter
from host.logs import MessageLog
from host.metrics import Metrics
from host.pipeline.request import IsoRequest
from host.security.sealing import encode_response
from host.server import ServerLimits
from protocol import Codec, Tpdu
from protocol.codec import TPDU_LEN

RESTART_PAUSE_S = 1.0
"""How long to wait before starting again a front that died within its first seconds."""


def bind_listener(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening, non-blocking TCP socket on ``(host, port)`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class FrontPool:
    """The engine's N fronts and the socket they share.

    :ivar restarts: fronts started again after dying (for the log and tests).
    :ivar slots: the host's connection caps, over all fronts.
    """

    def __init__(self, reactor: Any, count: int, listener: socket.socket, settings: FrontSettings,
                 committer: GroupCommitter, service: Any, codec: Codec, log: MessageLog,
                 metrics: Metrics, events: Any, faults: FaultHook | None = None,
                 limits: ServerLimits | None = None) -> None:
        self.reactor = reactor
        self.count = count
        self.listener = listener
        self.settings = settings
        self.committer = committer
        self.service = service
        self.codec = codec
        self.log = log
        self.metrics = metrics
        self.events = events
        self.faults = faults  # the host's fault rules: matched here, delivered by the fronts
        self.channels: dict[int, FrontChannel] = {}
        self.slots = ConnectionCaps(limits or ServerLimits(), metrics)
        self.restarts = 0
        self.stopping = False

    def start(self) -> Deferred[Any]:
        """Spawn every front; fires once each accepts on the shared socket, or fails with
        :class:`FrontFailed` when one exits first."""
        for index in range(self.count):
            self._spawn(index)
        return DeferredList([c.ready for c in self.channels.values()], fireOnOneErrback=True,
                            consumeErrors=True)

    def _spawn(self, index: int) -> None:
        channel = FrontChannel(self, index)
        settings = msgspec.structs.replace(self.settings, index=index)
        self.reactor.spawnProcess(
            channel, sys.executable,
            [sys.executable, "-m", "host.front", msgspec.json.encode(settings).decode()],
            env=dict(os.environ),
            childFDs={0: "w", 1: "r", 2: 2, 3: self.listener.fileno()})
        self.channels[index] = channel

    def ended(self, channel: FrontChannel, status: str) -> None:
        """A front exited: expected while stopping; otherwise log it and start another."""
        if self.channels.get(channel.index) is channel:
            del self.channels[channel.index]
        if self.stopping:
            return
        self.log.event("front_exited", front=channel.index, status=status,
                       unanswered=channel.pending)
        self.restarts += 1
        quick = time.monotonic() - channel.started < 2 * RESTART_PAUSE_S
        self.reactor.callLater(RESTART_PAUSE_S if quick else 0, self._restart, channel.index)

    def _restart(self, index: int) -> None:
        if not self.stopping and index not in self.channels:
            self._spawn(index)
            # Nobody waits on a replacement's start: its failure is in the log (front_failed,
            # front_exited) and it is started again.
            self.channels[index].ready.addErrback(lambda _: None)

    def stop(self) -> Deferred[Any]:
        """Tell every front to stop (they answer what they accepted, close and exit); fires
        once all have exited. The engine's copy of the socket is closed first."""
        self.stopping = True
        self.listener.close()
        waits = [channel.exited for channel in self.channels.values()]
        for channel in list(self.channels.values()):
            channel.send_stop()
        return DeferredList(waits) if waits else succeed(None)

    def kill(self) -> None:
        """Kill the fronts that outlived their stop (the caller's time-out)."""
        for channel in list(self.channels.values()):
            channel.kill()


class FrontFailed(Exception):
    """A front process exited before it was ready: ``str()`` is the reason it sent
    (:class:`~host.front.link.Failed`), else a line saying its stderr says why."""


class FrontChannel(ProcessProtocol):
    """The engine's end of one front's pipe: requests in, answers out after the commit."""

    def __init__(self, pool: FrontPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.conn = f"front{index}"
        self.started = time.monotonic()
        self.pending = 0
        self.held: dict[int, str] = {}  # the front's connections that hold a slot: their peers
        self.exited: Deferred[None] = Deferred()
        self.ready: Deferred[None] = Deferred()
        self._deframer = Deframer(self._received)
        self._tpdu = pool.codec.profile.tpdu is not None
        security = getattr(pool.service, "security", None)
        self._owes_mac: Callable[[str, str, str], bool] | None = (
            security.sessions.owes_mac if security is not None else None)

    def childDataReceived(self, childFD: int, data: bytes) -> None:  # noqa: N802,N803
        try:
            self._deframer.feed(data)
        except LinkError as exc:  # a front writing garbage is broken: replace it
            self.pool.log.event("front_link_error", front=self.index, error=str(exc))
            self.kill()

    def _received(self, message: LinkMessage) -> None:
        if not isinstance(message, Submit):
            self._control(message)
            return
        started = time.perf_counter()
        raw = message.raw
        tpdu = Tpdu(raw[:TPDU_LEN]) if self._tpdu and len(raw) >= TPDU_LEN else None
        fields = message.fields
        request = IsoRequest(fields, raw, self.pool.codec.profile, tpdu)
        self.pool.events.message("in", self.conn, fields)
        self.pending += 1
        committer = self.pool.committer
        faults = self.pool.faults
        decision = faults.match(self.conn, fields) if faults is not None else None
        if faults is None or decision is None:
            reply = committer.submit(request)
        else:  # processed now, after a delay, or not at all, as in the one-process server
            reply = faults.submit(decision, fields, lambda: committer.submit(request))
        reply.addBoth(self._answer, message.id, fields.get("t", ""), tpdu, started, decision)

    def _control(self, message: LinkMessage) -> None:
        """Every message from the front but a request: its start, slots and tallies."""
        if isinstance(message, Claim):
            refused = self.pool.slots.claim(message.peer)
            if refused is None:
                self.held[message.conn] = message.peer
            self._send(Grant(message.conn, refused))
        elif isinstance(message, Release):
            peer = self.held.pop(message.conn, None)
            if peer is not None:
                self.pool.slots.release(peer)
        elif isinstance(message, Tally):
            metrics = self.pool.metrics
            for reason, closes in message.closed.items():
                metrics.closed.inc(closes, reason=reason)
            for in_mti, rc, latency_ms in message.answered:
                metrics.request(in_mti, rc, latency_ms)
            self._publish(message)
        elif isinstance(message, Ready) and not self.ready.called:
            self.ready.callback(None)
        elif isinstance(message, Failed):
            self.pool.log.event("front_failed", front=self.index, reason=message.reason)
            if not self.ready.called:
                self.ready.errback(FrontFailed(message.reason))  # the host's start error

    def _publish(self, tally: Tally) -> None:
        """Put the messages of the requests the front answered itself on the event stream, as
        the one-process host does, only later (up to the tally interval: the bus numbers them
        as they arrive, after the engine's own events published meanwhile)."""
        events = self.pool.events
        for said in tally.messages:
            events.message(said.direction, self.conn, said.fields, said.context, said.latency_ms)
        if tally.dropped:  # a flood of bad frames: the stream shows a bounded part of it
            self.pool.log.event("front_messages_dropped", front=self.index,
                                dropped=tally.dropped, kept=len(tally.messages))

    def release_all(self) -> None:
        """The front is gone, and with it its connections: free their slots."""
        held, self.held = self.held, {}
        for peer in held.values():
            self.pool.slots.release(peer)

    def _answer(self, result: Any, rid: int, in_mti: str, tpdu: Tpdu | None,
                started: float, decision: FaultDecision | None) -> None:
        self.pending -= 1
        if isinstance(result, Failure):
            self._send(Answer(rid, None, {}, error=f"{result.type and result.type.__name__}: "
                                                   f"{result.getErrorMessage()}"))
            return
        response = result.response
        if response is None:
            self._send(Answer(rid, None, result.log, result.silent, fault=decision))
            return
        out = response.to_fields()
        sealed = None
        if self._owes_mac is not None and self._owes_mac(out.get("41", ""), out.get("11", ""),
                                                         out.get("t", "")):
            sealed = encode_response(self.pool.service, self.pool.codec, out,
                                     tpdu.reply if tpdu else None)
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        self.pool.metrics.request(in_mti, out.get("39", ""), latency_ms)
        self.pool.events.message("out", self.conn, out, result.log, latency_ms)
        self._send(Answer(rid, out, result.log, result.silent, sealed, fault=decision))

    def _send(self, message: Answer | Stop | Grant) -> None:
        transport: Any = self.transport
        if transport is not None and not self.exited.called:
            transport.writeToChild(0, frame(message))

    def send_stop(self) -> None:
        """Ask the front to stop."""
        self._send(Stop())

    def kill(self) -> None:
        """SIGKILL the front (it is replaced unless the host is stopping)."""
        transport: Any = self.transport
        if transport is not None and not self.exited.called:
            try:
                transport.signalProcess("KILL")
            except Exception:  # already gone  # noqa: BLE001
                pass

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        status = getattr(reason.value, "exitCode", None)
        signal_ = getattr(reason.value, "signal", None)
        how = f"signal {signal_}" if signal_ else f"exit {status}"
        self.exited.callback(None)
        self.release_all()
        if not self.ready.called:
            self.ready.errback(FrontFailed(f"front process {self.index} exited before it was "
                                           f"ready ({how}); its stderr says why"))
        self.pool.ended(self, how)
