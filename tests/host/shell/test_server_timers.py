"""Server timers without sockets: StringTransport connections driven by a task.Clock."""

from __future__ import annotations

import io
from typing import Any

from shell_helpers import FakeService, echo
from twisted.internet.address import IPv4Address
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from host.logs import MessageLog
from host.metrics import Metrics
from host.server import IsoHostProtocol, IsoServerFactory, ServerLimits
from protocol import Codec, frame


class InlineWorker:
    """Runs service calls synchronously (the timer logic is what is under test here)."""

    def call(self, fn: Any, *args: Any) -> Any:
        return maybeDeferred(fn, *args)


def connect(limits: ServerLimits) -> tuple[IsoHostProtocol, StringTransport, Clock]:
    """One server-side connection over a StringTransport, timers on a fake clock."""
    clock = Clock()
    factory = IsoServerFactory(FakeService(), InlineWorker(), Codec(), limits,  # type: ignore[arg-type]
                               MessageLog(io.StringIO()), Metrics(), clock)
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    assert proto is not None
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport, clock


def test_trickled_bytes_do_not_extend_the_frame_deadline() -> None:
    """A byte every few seconds keeps arriving, yet the frame is closed 5 s after its first."""
    proto, transport, clock = connect(ServerLimits(frame_deadline_s=5, idle_timeout_s=120))
    for _ in range(4):
        proto.dataReceived(b"\x01")  # a 257-byte frame, one byte at a time
        clock.advance(1.2)
        assert not transport.disconnecting
    proto.dataReceived(b"\x01")
    clock.advance(0.3)
    assert transport.disconnecting


def test_deadline_restarts_for_each_new_frame() -> None:
    """Completing a frame stops its deadline; the next partial frame gets a fresh one."""
    proto, transport, clock = connect(ServerLimits(frame_deadline_s=5, idle_timeout_s=120))
    whole = frame(Codec().encode(echo()))
    proto.dataReceived(whole[:3])
    clock.advance(4)
    proto.dataReceived(whole[3:] + whole[:3])  # completes frame 1, starts frame 2
    clock.advance(4)
    assert not transport.disconnecting
    clock.advance(1.1)
    assert transport.disconnecting


def test_echo_resets_idle_timer() -> None:
    """An 0800 echo before the idle timeout keeps the link; silence afterwards closes it."""
    proto, transport, clock = connect(ServerLimits(frame_deadline_s=5, idle_timeout_s=60,
                                                   first_frame_timeout_s=60))
    clock.advance(59)
    proto.dataReceived(frame(Codec().encode(echo())))
    assert Codec().decode(transport.value()[2:])[1]["t"] == "0810"
    clock.advance(59)
    assert not transport.disconnecting
    clock.advance(1.5)
    assert transport.disconnecting


def test_oversize_announcement_closes_without_buffering() -> None:
    """A header announcing more than max_frame_bytes closes before any body is buffered."""
    proto, transport, _ = connect(ServerLimits(max_frame_bytes=100))
    proto.dataReceived(b"\x00\x65")  # 101
    assert transport.disconnecting and transport.value() == b""
