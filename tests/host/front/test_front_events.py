"""What a front answers itself reaches the engine's event stream, in-process.

A front's factory and its end of the link (the pipe and the terminal's socket string transports,
the clock simulated) feed one of the engine's front channels, whose event bus has a listener.
The frames are built with pyiso8583's own ``default`` spec, not by the code under test.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import iso8583
from iso8583.specs import default as PYISO_DEFAULT
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from host.event_stream import EventBus, MessageEvent, Published, encode
from host.front.engine import FrontChannel, FrontPool
from host.front.link import (
    MESSAGES_PER_TALLY,
    TALLY_EVERY_S,
    Answer,
    Deframer,
    Grant,
    LinkMessage,
    Submit,
    Tally,
    frame,
)
from host.front.process import EngineLink, FrontFactory
from host.logs import MessageLog
from host.metrics import Metrics
from host.pipeline.replies import format_error_reply
from host.server import IsoServerFactory, ServerLimits
from host.tls import TidBinding
from protocol import Codec

PAN = "4111111111111111"
TID = "TERM0001"


class _Link:
    """A front and the engine channel its tallies go to, with a listener on the engine's bus."""

    def __init__(self) -> None:
        self.clock, self.front_log, self.engine_log = Clock(), io.StringIO(), io.StringIO()
        self.factory = FrontFactory(Codec("iso87-ascii"), ServerLimits(),
                                    MessageLog(self.front_log), self.clock,  # type: ignore[arg-type]
                                    index=1)
        self.link = EngineLink(self.factory, self.clock, port=None)
        self.factory.link = self.link
        self.to_engine: list[LinkMessage] = []
        deframer = Deframer(self.to_engine.append)
        pipe = StringTransport()
        pipe.write = deframer.feed  # type: ignore[method-assign]
        self.link.makeConnection(pipe)
        self.bus = EventBus()
        self.published: list[Published] = []
        self.bus.subscribe(self.published.append)
        self.metrics = Metrics()
        pool = FrontPool(Clock(), 2, None, None, None, None,  # type: ignore[arg-type]
                         Codec("iso87-ascii"), MessageLog(self.engine_log), self.metrics,
                         self.bus)
        self.channel = FrontChannel(pool, 1)
        self.channel.transport = StringTransport()  # type: ignore[assignment]

    def connect(self) -> tuple[Any, StringTransport]:
        """A terminal's connection, granted its slot."""
        conn: Any = self.factory.buildProtocol(IPv4Address("TCP", "10.0.0.7", 4001))
        sock = StringTransport()
        conn.makeConnection(sock)
        self.link.dataReceived(frame(Grant(conn.conn_id)))
        return conn, sock

    def tally_reaches_the_engine(self) -> list[Submit]:
        """Let the tally interval pass, hand the engine the front's tallies; return the
        requests the front sent it meanwhile."""
        self.clock.advance(TALLY_EVERY_S)
        sent, self.to_engine[:] = list(self.to_engine), []
        for message in sent:
            if isinstance(message, Tally):
                self.channel.childDataReceived(1, frame(message))
        return [m for m in sent if isinstance(m, Submit)]

    def messages(self) -> list[MessageEvent]:
        return [p.event for p in self.published if isinstance(p.event, MessageEvent)]


def _frame(**changes: str) -> bytes:
    fields = {"t": "0200", "2": PAN, "3": "000000", "4": "000000001500", "11": "000042",
              "41": TID, "42": "MERCHANT0000001"}
    fields.update(changes)
    raw, _ = iso8583.encode(fields, PYISO_DEFAULT)
    return struct.pack("!H", len(raw)) + bytes(raw)


def _answers(sock: StringTransport) -> list[dict[str, Any]]:
    data, out = sock.value(), []
    while data:
        size = struct.unpack("!H", data[:2])[0]
        out.append(iso8583.decode(data[2:2 + size], PYISO_DEFAULT)[0])
        data = data[2 + size:]
    return out


def test_a_format_error_a_front_answers_is_on_the_engines_stream_as_the_one_process_host_puts_it(
        ) -> None:
    """RC 30 from a front: an "in" (the request as decoded) and an "out" event on
    the engine's bus (conn front1, MTI, STAN, TID, RC, rule, the front's latency, the field
    rendering), as in the one-process host; a request the engine answers adds nothing."""
    link = _Link()
    conn, sock = link.connect()
    conn.dataReceived(_frame(**{"4": "00000000015A"}))
    conn.dataReceived(_frame(**{"11": "000043"}))  # valid: goes to the engine
    [submit] = [m for m in link.to_engine if isinstance(m, Submit)]
    link.link.dataReceived(frame(Answer(submit.id, {"t": "0210", "11": "000043", "41": TID,
                                                    "39": "00"}, {"kind": "sale"})))
    assert [a["39"] for a in _answers(sock)] == ["30", "00"]
    assert link.tally_reaches_the_engine() == [submit]
    inbound, event = link.messages()
    assert (inbound.direction, inbound.conn, inbound.mti, inbound.stan, inbound.rc,
            inbound.latency_ms) == ("in", "front1", "0200", "000042", None, None)
    assert (event.direction, event.conn, event.mti, event.stan, event.tid, event.rc) == \
        ("out", "front1", "0210", "000042", TID, "30")
    assert event.rule is not None and event.rule.startswith("FORMAT_ERROR")
    assert event.latency_ms is not None and event.latency_ms >= 0
    assert ["39", "Response code", "30"] == [
        line[:3] for line in event.fields if line[0] == "39"][0]
    assert link.metrics.requests.get(mti="0200", rc="30") == 1


def test_a_58_refusal_a_front_answers_is_on_the_engines_stream_in_and_out_with_the_pan_masked(
        ) -> None:
    """tid_in_certificate refuses a request in the front: the engine's bus shows its "in" and
    its "out" (RC 58, CERT_TID_MISMATCH) as the one-process host does, in order, the PAN only
    masked; the request never reaches the engine as a Submit."""
    link = _Link()
    link.factory.refuse_with(_refusing(MessageLog(link.front_log)).refusal)
    conn, sock = link.connect()
    conn.dataReceived(_frame())
    assert [a["39"] for a in _answers(sock)] == ["58"]
    assert link.tally_reaches_the_engine() == []  # no Submit
    inbound, outbound = link.messages()
    assert (inbound.direction, inbound.conn, inbound.mti, inbound.stan, inbound.tid,
            inbound.rc, inbound.latency_ms) == ("in", "front1", "0200", "000042", TID, None, None)
    assert inbound.pan == "411111******1111"
    assert (outbound.direction, outbound.mti, outbound.rc, outbound.rule) == \
        ("out", "0210", "58", "CERT_TID_MISMATCH")
    assert outbound.latency_ms is not None
    assert [line[2] for line in inbound.fields if line[0] == "2"] == ["411111******1111"]
    assert all(PAN not in encode(item) for item in link.published)
    assert PAN not in link.engine_log.getvalue() + link.front_log.getvalue()


def test_a_flood_of_format_errors_reaches_the_stream_only_up_to_the_bound_per_tally() -> None:
    """More bad frames in one tally interval than a tally carries: the engine publishes the
    bound, logs how many it did not get, and /metrics still counts every one."""
    link = _Link()
    conn, sock = link.connect()
    flood = MESSAGES_PER_TALLY + 30
    conn.dataReceived(b"".join(_frame(**{"4": "00000000015A", "11": f"{n:06d}"})
                               for n in range(1, flood + 1)))
    assert len(_answers(sock)) == flood
    link.tally_reaches_the_engine()
    events = link.messages()  # an "in" and an "out" per bad frame
    assert len(events) == MESSAGES_PER_TALLY
    assert [e.stan for e in events] == [f"{n // 2 + 1:06d}" for n in range(MESSAGES_PER_TALLY)]
    [dropped] = [json.loads(line) for line in link.engine_log.getvalue().splitlines()
                 if "front_messages_dropped" in line]
    assert (dropped["front"], dropped["dropped"], dropped["kept"]) == \
        (1, 2 * flood - MESSAGES_PER_TALLY, MESSAGES_PER_TALLY)
    assert link.metrics.requests.get(mti="0200", rc="30") == flood
    conn.dataReceived(_frame(**{"4": "00000000015A", "11": "999999"}))  # the next tally's
    link.tally_reaches_the_engine()
    assert link.messages()[-1].stan == "999999"


class _FormatErrors:
    """The one-process host's service, as far as a format error and a 58 need it."""

    security = None
    format_error = staticmethod(format_error_reply)


class _Now:
    """The service worker, calling at once."""

    def call(self, fn: Any, *args: Any) -> Deferred[Any]:
        return succeed(fn(*args))


def _one_process_events(refuse: bool, data: bytes) -> list[MessageEvent]:
    """What the one-process host's bus shows for ``data`` on one connection."""
    log = MessageLog(io.StringIO())
    factory = IsoServerFactory(_FormatErrors(), _Now(), Codec("iso87-ascii"),  # type: ignore[arg-type]
                               ServerLimits(), log, Metrics(), Clock())  # type: ignore[arg-type]
    published: list[Published] = []
    factory.events.subscribe(published.append)
    if refuse:
        factory.admission = _refusing(log).refusal
    conn: Any = factory.buildProtocol(IPv4Address("TCP", "10.0.0.7", 4001))
    conn.makeConnection(StringTransport())
    conn.dataReceived(data)
    return [p.event for p in published if isinstance(p.event, MessageEvent)]


def _refusing(log: MessageLog) -> TidBinding:
    """``tid_in_certificate`` with a client certificate that names another terminal."""
    binding = TidBinding(log)
    binding.names = lambda conn: frozenset({"OTHER001"})  # type: ignore[method-assign]
    return binding


def test_the_engine_shows_a_fronts_own_answers_exactly_as_the_one_process_host_shows_them(
        ) -> None:
    """For a format error and a 58 refusal, the engine's bus gets the same MessageEvents as the
    one-process host's bus (same directions, MTI, STAN, TID, PAN, RC, rule, field rendering),
    but for the conn (front1), the instant and the latency."""
    bad, good = _frame(**{"4": "00000000015A"}), _frame()
    for refuse, data in ((False, bad), (True, good)):
        link = _Link()
        if refuse:
            link.factory.refuse_with(_refusing(MessageLog(link.front_log)).refusal)
        conn, _ = link.connect()
        conn.dataReceived(data)
        link.tally_reaches_the_engine()
        expected = _one_process_events(refuse, data)
        assert [e.direction for e in expected] == ["in", "out"]
        assert {e.conn for e in link.messages()} == {"front1"}

        def same(event: MessageEvent) -> dict[str, Any]:
            return {k: v for k, v in event.data().items() if k not in ("conn", "at", "latency_ms")}

        assert [same(e) for e in link.messages()] == [same(e) for e in expected]
        assert [e.latency_ms is None for e in link.messages()] == \
            [e.latency_ms is None for e in expected]
