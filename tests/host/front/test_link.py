"""The engine link's framing: messages and fault decisions survive any split; garbage is refused."""

from __future__ import annotations

import pytest

from host.faults.delivery import FaultDecision
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


def test_messages_survive_every_split_of_the_stream() -> None:
    """Frames of every kind (fault decisions too), cut at every byte offset (and fed byte by
    byte), come out whole."""
    messages: list[LinkMessage] = [
        Submit(7, {"t": "0200", "11": "000001", "41": "TERM0001"}, b"\x00\x01raw"),
        Answer(7, {"t": "0210", "39": "00"}, {"kind": "sale", "amount_minor": 1500},
               sealed=b"\x02\x03"),
        Answer(8, None, {"fault": "lost", "action": "drop"},
               fault=FaultDecision("lost", "drop", False)),
        Answer(9, {"t": "0210", "39": "91"}, {}, fault=FaultDecision("f2", "respond", False, 0,
                                                                     "91")),
        Stop(),
        Ready(),
        Failed("[tls.iso] server key k.pem: cannot read the file"),
    ]
    stream = b"".join(frame(m) for m in messages)
    for cut in range(len(stream) + 1):
        got: list[LinkMessage] = []
        deframer = Deframer(got.append)
        deframer.feed(stream[:cut])
        deframer.feed(stream[cut:])
        assert got == messages, f"split at {cut}"
    got = []
    deframer = Deframer(got.append)
    for i in range(len(stream)):
        deframer.feed(stream[i:i + 1])
    assert got == messages


@pytest.mark.parametrize("data", [b"\xff\xff\xff\xff", b"\x00\x00\x00\x02\xc1\xc1"])
def test_a_broken_stream_is_a_link_error(data: bytes) -> None:
    """A length beyond the cap, or bytes that are no message, raise LinkError (never pass)."""
    with pytest.raises(LinkError):
        Deframer(lambda _: None).feed(data)
