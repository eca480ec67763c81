"""The host's connection caps and metrics with front processes, in-process.

Engine side: two of the engine's front channels on one pool, their pipes replaced by lists (the
kernel decides which front accepts a connection; here both fronts' claims are made at will).
Front side: a front's factory and its end of the link, the pipe and the terminal's socket
replaced by string transports, the clock simulated.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import iso8583
from iso8583.specs import default as PYISO_DEFAULT
from twisted.internet.address import IPv4Address
from twisted.internet.error import ProcessTerminated
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from host.event_stream import EventBus
from host.front.engine import FrontChannel, FrontPool
from host.front.link import (
    TALLY_EVERY_S,
    Claim,
    Grant,
    Ready,
    Release,
    Tally,
    frame,
)
from host.front.process import EngineLink, FrontFactory
from host.logs import MessageLog
from host.metrics import Metrics
from host.server import ServerLimits
from protocol import Codec
from tests.host.front.link_pipe import LinkPipe


def _pool(**limits: int) -> tuple[list[FrontChannel], Metrics]:
    metrics = Metrics()
    pool = FrontPool(Clock(), 2, None, None, None, None,  # type: ignore[arg-type]
                     Codec("iso87-ascii"), MessageLog(io.StringIO()), metrics, EventBus(),
                     limits=ServerLimits(**limits))
    channels = [FrontChannel(pool, index) for index in (0, 1)]
    for channel in channels:
        channel.transport = LinkPipe()  # type: ignore[assignment]
        pool.channels[channel.index] = channel
        channel.childDataReceived(1, frame(Ready()))
    return channels, metrics


def _claim(channel: FrontChannel, conn: int, peer: str = "10.0.0.1") -> str | None:
    """Claim a slot on ``channel``; the engine's answer (None: granted, else the reason)."""
    pipe: Any = channel.transport
    channel.childDataReceived(1, frame(Claim(conn, peer)))
    [grant] = pipe.take()
    assert isinstance(grant, Grant) and grant.conn == conn
    return grant.refused


def test_the_connection_cap_counts_every_fronts_connections_and_a_dead_front_frees_them() -> None:
    """max_connections 2 over two fronts: a third is refused on either front; a released slot
    and the slots of a front that died are free again; the connection series count it all."""
    (front0, front1), metrics = _pool(max_connections=2)
    assert _claim(front0, 1) is None
    assert _claim(front1, 1_000_001) is None
    assert _claim(front0, 2) == "over_limit"
    assert _claim(front1, 1_000_002) == "over_limit"
    front0.childDataReceived(1, frame(Release(1)))
    assert _claim(front1, 1_000_003) is None  # front 0's slot, taken on front 1
    assert _claim(front0, 3) == "over_limit"
    front1.processEnded(Failure(ProcessTerminated(signal=9)))  # holding both slots
    assert _claim(front0, 4) is None
    assert _claim(front0, 5) is None
    assert _claim(front0, 6) == "over_limit"
    assert metrics.connections.get() == 5
    assert metrics.open_connections.get() == 2
    assert metrics.closed.get(reason="over_limit") == 4


def test_the_per_peer_cap_counts_one_address_over_every_front() -> None:
    """max_connections_per_peer 1: a peer's second connection is refused on the other front,
    another peer's is granted there, and the peer's slot is free once released."""
    (front0, front1), metrics = _pool(max_connections=10, max_connections_per_peer=1)
    assert _claim(front0, 1, "10.0.0.1") is None
    assert _claim(front1, 1_000_001, "10.0.0.1") == "over_peer_limit"
    assert _claim(front1, 1_000_002, "10.0.0.2") is None
    front0.childDataReceived(1, frame(Release(1)))
    assert _claim(front1, 1_000_003, "10.0.0.1") is None
    assert metrics.closed.get(reason="over_peer_limit") == 1
    assert metrics.open_connections.get() == 2


def test_a_fronts_tally_reaches_the_engines_metrics() -> None:
    """The closes a front decided and the requests it answered itself appear in /metrics as
    the one-process host would count them (series, labels and latency)."""
    (front0, _), metrics = _pool()
    front0.childDataReceived(1, frame(Tally({"framing": 2, "idle_timeout": 1},
                                            [("0200", "30", 1.5), ("0100", "58", 3.0)])))
    assert metrics.closed.get(reason="framing") == 2
    assert metrics.closed.get(reason="idle_timeout") == 1
    assert metrics.requests.get(mti="0200", rc="30") == 1
    text = metrics.render()
    assert 'poslab_requests_total{mti="0100",rc="58"} 1.0' in text
    assert "poslab_request_latency_ms_count 2.0" in text


class _Front:
    """One front's factory and link; the pipe and the sockets are string transports."""

    def __init__(self, **limits: int) -> None:
        self.clock, self.out = Clock(), io.StringIO()
        self.factory = FrontFactory(Codec("iso87-ascii"), ServerLimits(**limits),
                                    MessageLog(self.out), self.clock, index=1)  # type: ignore[arg-type]
        self.link = EngineLink(self.factory, self.clock, port=None)
        self.factory.link = self.link
        self.pipe = LinkPipe()
        self.link.makeConnection(self.pipe)  # type: ignore[arg-type]
        self.pipe.take()  # Ready

    def connect(self, port: int) -> tuple[Any, StringTransport]:
        conn: Any = self.factory.buildProtocol(IPv4Address("TCP", "10.0.0.7", port))
        sock = StringTransport()
        conn.makeConnection(sock)
        return conn, sock

    def grant(self, conn: Any, refused: str | None = None) -> None:
        self.link.dataReceived(frame(Grant(conn.conn_id, refused)))

    def log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]


def _format_error_frame() -> bytes:
    """A sale whose amount is not numeric, framed as the iso87-ascii profile frames."""
    raw, _ = iso8583.encode({"t": "0200", "3": "000000", "4": "00000000012A", "11": "000001",
                             "41": "TERM0001"}, PYISO_DEFAULT)
    return struct.pack("!H", len(raw)) + bytes(raw)


def test_a_front_reads_a_connection_only_once_granted_and_gives_its_slot_back() -> None:
    """A new connection is claimed and paused (no connect line) until granted; once open it
    answers a format error itself, counts it and a framing close in one tally, and releases
    its slot when it closes."""
    front = _Front()
    conn, sock = front.connect(4001)
    assert front.pipe.take() == [Claim(conn.conn_id, "10.0.0.7")]
    assert sock.producerState == "paused"
    assert not any(line.get("event") == "connect" for line in front.log())
    front.grant(conn)
    assert sock.producerState == "producing"
    assert [line["peer"] for line in front.log() if line.get("event") == "connect"] == \
        ["10.0.0.7:4001"]
    conn.dataReceived(_format_error_frame())
    size = struct.unpack("!H", sock.value()[:2])[0]
    answer, _ = iso8583.decode(sock.value()[2:2 + size], PYISO_DEFAULT)
    assert (answer["t"], answer["39"]) == ("0210", "30")
    conn.dataReceived(b"\xff\xff")  # a length beyond max_frame_bytes: the front closes
    conn.connectionLost(Failure(ConnectionError("closed")))
    assert front.pipe.take() == [Release(conn.conn_id)]
    front.clock.advance(TALLY_EVERY_S)
    [tally] = front.pipe.take()
    assert isinstance(tally, Tally) and tally.closed == {"framing": 1}
    assert [(mti, rc) for mti, rc, _ in tally.answered] == [("0200", "30")]


def test_a_refused_connection_is_closed_as_the_one_process_host_closes_it() -> None:
    """Refused over a cap: aborted, logged with the reason and the cap, never opened, and
    neither released nor tallied by the front (the engine counted it); a connection that went
    away before its grant gives the slot straight back."""
    front = _Front(max_connections=7)
    conn, sock = front.connect(4002)
    front.pipe.take()
    front.grant(conn, "over_limit")
    assert sock.disconnected
    conn.connectionLost(Failure(ConnectionError("aborted")))
    [close] = [line for line in front.log() if line.get("event") == "close"]
    assert (close["peer"], close["reason"], close["max_connections"]) == \
        ("10.0.0.7:4002", "over_limit", 7)
    assert not any(line.get("event") in ("connect", "disconnect") for line in front.log())
    gone, _ = front.connect(4003)
    front.pipe.take()
    gone.connectionLost(Failure(ConnectionError("client left")))
    front.grant(gone)
    front.clock.advance(TALLY_EVERY_S)
    assert front.pipe.take() == [Release(gone.conn_id)]
