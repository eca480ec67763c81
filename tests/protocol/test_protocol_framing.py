"""Framing: the sans-IO deframer and the Twisted protocol (issue 2, item 5).

Every property is checked for each length header, ``2b`` (2-byte big-endian), ``4a`` (4 ASCII
digits) and ``2bcd`` (4 BCD digits in 2 bytes): frames split at every offset, byte by byte, in
random chunks and several to a chunk arrive complete, once each and in order; a zero, oversized
or non-digit length header is a FramingError that closes the connection.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_samples import samples
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import Int16StringReceiver

from protocol import Codec, Deframer, FramingError, frame
from protocol.specs import LengthHeader
from protocol.transport import FramedProtocol

HEADERS: tuple[LengthHeader | str, ...] = ("2b", "4a", "2bcd")
PAYLOADS = [Codec().encode(m.to_fields()) for m in samples().values()]
PROPS = settings(max_examples=200, deadline=None)

payloads = st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=12)


def _split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    bounds = [0, *points, len(stream)]
    return [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _feed_all(deframer: Deframer, chunks: list[bytes]) -> list[bytes]:
    return [f for chunk in chunks for f in deframer.feed(chunk)]


class Recorder(FramedProtocol):
    """Collects frames and framing errors."""

    def __init__(self, header: LengthHeader | str) -> None:
        self.length_header = header
        self.frames: list[bytes] = []
        self.errors: list[FramingError] = []

    def frameReceived(self, payload: bytes) -> None:  # noqa: N802 - Twisted naming
        """Record one frame."""
        self.frames.append(payload)

    def framingError(self, error: FramingError) -> None:  # noqa: N802
        """Record the error, then drop the connection as the base class does."""
        self.errors.append(error)
        super().framingError(error)


def _connected(header: LengthHeader | str) -> tuple[Recorder, StringTransport]:
    proto, transport = Recorder(header), StringTransport()
    proto.makeConnection(transport)
    return proto, transport


@pytest.mark.parametrize("header", HEADERS)
def test_every_split_offset_of_two_frames(header: LengthHeader | str) -> None:
    """Two real messages in one stream, cut at every offset pair: both arrive once, in order."""
    first, second = PAYLOADS[1], PAYLOADS[2]
    stream = frame(first, header) + frame(second, header)
    for i in range(len(stream) + 1):
        for j in (i, (i + len(stream)) // 2, len(stream)):
            d = Deframer(header)
            got = _feed_all(d, [stream[:i], stream[i:j], stream[j:]])
            assert got == [first, second], (i, j)
            assert not d.in_progress


@pytest.mark.parametrize("header", HEADERS)
def test_byte_by_byte_and_all_in_one_chunk(header: LengthHeader | str) -> None:
    """All sample messages fed one byte at a time, then all in one chunk: same frames."""
    stream = b"".join(frame(p, header) for p in PAYLOADS)
    d = Deframer(header)
    one_by_one = _feed_all(d, [stream[i : i + 1] for i in range(len(stream))])
    assert one_by_one == PAYLOADS
    assert Deframer(header).feed(stream) == PAYLOADS


@PROPS
@given(payloads, st.lists(st.integers(min_value=0), max_size=40), st.sampled_from(HEADERS))
def test_random_chunks_lose_duplicate_reorder_nothing(
    frames: list[bytes], cuts: list[int], header: LengthHeader | str
) -> None:
    """Any frames cut into any chunks: 0 lost, 0 duplicated, 0 reordered."""
    stream = b"".join(frame(p, header) for p in frames)
    d = Deframer(header)
    assert _feed_all(d, _split(stream, cuts)) == frames
    assert not d.in_progress


@PROPS
@given(payloads, st.lists(st.integers(min_value=0), max_size=40), st.sampled_from(HEADERS))
def test_twisted_protocol_any_chunks(
    frames: list[bytes], cuts: list[int], header: LengthHeader | str
) -> None:
    """FramedProtocol over StringTransport delivers the same frames whatever the chunking."""
    proto, transport = _connected(header)
    stream = b"".join(frame(p, header) for p in frames)
    for chunk in _split(stream, cuts):
        proto.dataReceived(chunk)
    assert proto.frames == frames
    assert not proto.errors and not transport.disconnecting
    assert not proto.frame_in_progress


def test_in_progress_tracks_a_partial_frame() -> None:
    """in_progress is true between the first byte of a frame and its last."""
    d = Deframer("2b")
    assert not d.in_progress
    assert d.feed(b"\x00") == [] and d.in_progress
    assert d.feed(b"\x02a") == [] and d.in_progress
    assert d.feed(b"b") == [b"ab"] and not d.in_progress


ABUSE: list[tuple[LengthHeader | str, bytes, str]] = [
    ("2b", b"\x00\x00", "zero-length"),
    ("2b", b"\xff\xff", "exceeds"),
    ("2b", b"\x20\x01", "exceeds"),  # 8193, one over the default cap
    ("4a", b"0000", "zero-length"),
    ("4a", b"9999", "exceeds"),
    ("4a", b"12a4", "not 4 ASCII digits"),
    ("4a", b" 123", "not 4 ASCII digits"),
    ("4a", b"-001", "not 4 ASCII digits"),
    ("4a", b"\x00\x00\x00\x05", "not 4 ASCII digits"),
    ("2bcd", b"\x00\x00", "zero-length"),
    ("2bcd", b"\x99\x99", "exceeds"),
    ("2bcd", b"\x0a\x01", "not 4 BCD digits"),
]  # fmt: skip


@pytest.mark.parametrize(("header", "head", "text"), ABUSE)
def test_length_header_abuse_is_a_framing_error(
    header: LengthHeader | str, head: bytes, text: str
) -> None:
    """Zero, oversized and non-digit headers raise FramingError naming the stream offset."""
    with pytest.raises(FramingError, match=text):
        Deframer(header).feed(head + b"x" * 16)
    good = frame(b"ok", header)
    d = Deframer(header)
    with pytest.raises(FramingError) as info:
        d.feed(good + head)
    assert info.value.pos == len(good)  # the byte offset of the bad header in the stream
    assert info.value.frames == (b"ok",)  # the frame before it is not lost


@pytest.mark.parametrize(("header", "head", "text"), ABUSE)
def test_framing_error_aborts_the_connection(
    header: LengthHeader | str, head: bytes, text: str
) -> None:
    """A bad header aborts the connection; the frame before it is delivered, none after."""
    proto, transport = _connected(header)
    good = frame(b"ok", header)
    proto.dataReceived(good + head + good)
    assert proto.frames == [b"ok"]
    assert len(proto.errors) == 1 and text in str(proto.errors[0])
    assert transport.disconnecting and transport.disconnected  # abortConnection, not a close


def test_max_frame_bytes_is_configurable() -> None:
    """A lower cap rejects a frame the default would accept; the cap itself passes."""
    assert Deframer("2b", max_frame_bytes=3).feed(b"\x00\x03abc") == [b"abc"]
    with pytest.raises(FramingError):
        Deframer("2b", max_frame_bytes=3).feed(b"\x00\x04")


def test_header_then_eof_delivers_nothing() -> None:
    """A header with its body cut off by the peer is never delivered as a frame."""
    proto, transport = _connected("2b")
    proto.dataReceived(b"\x00\x10partial")
    assert proto.frames == [] and proto.frame_in_progress
    proto.connectionLost(None)
    assert proto.frames == []


def test_frame_refuses_empty_and_oversized_payloads() -> None:
    """frame() cannot produce a header the deframer would reject."""
    cases: tuple[tuple[LengthHeader | str, int], ...] = (
        ("2b", 0x10000), ("4a", 10000), ("2bcd", 10000)
    )
    for header, too_big in cases:
        with pytest.raises(FramingError):
            frame(b"", header)
        with pytest.raises(FramingError):
            frame(b"x" * too_big, header)
    assert frame(b"x" * 9999, "4a")[:4] == b"9999"


def test_frame_golden_and_equal_to_int16_string_receiver() -> None:
    """frame(b"foo") is b"\\x00\\x03foo", exactly what Twisted's Int16StringReceiver writes."""
    assert frame(b"foo") == b"\x00\x03foo"
    assert frame(b"foo", "4a") == b"0003foo"
    assert frame(b"x" * 1234, "2bcd")[:2] == b"\x12\x34"
    receiver, transport = Int16StringReceiver(), StringTransport()
    receiver.makeConnection(transport)
    for payload in (b"foo", *PAYLOADS):
        transport.clear()
        receiver.sendString(payload)
        assert transport.value() == frame(payload)


def test_send_frame_writes_framed_bytes() -> None:
    """FramedProtocol.sendFrame writes the length-prefixed payload to the transport."""
    for header in HEADERS:
        proto, transport = _connected(header)
        proto.sendFrame(b"foo")
        assert transport.value() == frame(b"foo", header)


def test_frames_after_close_in_the_same_chunk_are_dropped() -> None:
    """When a frame handler closes the connection, later frames of the chunk are not handled."""

    class CloseAfterFirst(Recorder):
        def frameReceived(self, payload: bytes) -> None:  # noqa: N802
            super().frameReceived(payload)
            assert self.transport is not None
            self.transport.loseConnection()

    proto, transport = CloseAfterFirst("2b"), StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(frame(b"one") + frame(b"two"))
    assert proto.frames == [b"one"]
