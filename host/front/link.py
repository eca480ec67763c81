"""The engine link: the messages between a front process and the engine, and their framing.

Each message is MessagePack (msgspec, as arrays: no field names on the wire) behind a 4-byte
big-endian length. A front says :class:`Ready` once it accepts connections (or
:class:`Failed`, and exits, when it cannot), then writes :class:`Submit` frames to the
engine; the engine answers each with one :class:`Answer` after the request's commit, and
sends :class:`Stop` when the host stops. When a fault rule matched the request, its decision
rides on the answer (which comes without a commit when the rule says the request never
arrived). Frames of one direction travel in order on one pipe, so a request id only has to be
unique per front.

The host's connection caps (``[limits] max_connections``, ``max_connections_per_peer``) are
the engine's to keep: a front sends :class:`Claim` for each connection it accepts and reads
nothing from it until the engine's :class:`Grant` (which may refuse it); it sends
:class:`Release` once the connection is gone. What a front counts itself (the requests it
answers without the engine, the connections it closes) reaches the engine's ``/metrics`` in
a :class:`Tally`, sent at most every :data:`TALLY_EVERY_S`, never one per request. The same
tally carries those answers' messages for the engine's event stream (:class:`FrontMessage`),
at most :data:`MESSAGES_PER_TALLY` of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from host.faults.delivery import FaultDecision

HEADER = 4
MAX_FRAME = 1 << 24  # far above any ISO frame with its fields; a longer length is a broken pipe


class Submit(msgspec.Struct, array_like=True, tag=1):
    """One decoded, valid request (front to engine).

    :ivar id: the front's number for it, echoed in the :class:`Answer`.
    :ivar fields: the decoded fields.
    :ivar raw: the frame as received (a MAC is checked over its bytes).
    """

    id: int
    fields: dict[str, str]
    raw: bytes


class Answer(msgspec.Struct, array_like=True, tag=2):
    """The engine's reply to one :class:`Submit`, sent after its commit.

    :ivar fields: the response's fields for the front to encode, or None to send nothing.
    :ivar log: the reply's log context (kind, rule, rrn, masked PAN ...).
    :ivar silent: sending nothing is deliberate (otherwise the front closes the connection).
    :ivar sealed: the response already encoded and MAC'd by the engine (which holds the keys),
        sent as it is; None when the front encodes ``fields`` itself.
    :ivar error: the service failed on this request (the front logs it and closes).
    :ivar fault: the fault rule the engine matched to this request: the front delivers the
        answer (or nothing) the way it says (:func:`host.faults.delivery.deliver`).
    """

    id: int
    fields: dict[str, str] | None
    log: dict[str, Any]
    silent: bool = False
    sealed: bytes | None = None
    error: str | None = None
    fault: FaultDecision | None = None


class Stop(msgspec.Struct, array_like=True, tag=3):
    """The host stops: accept nothing more, send the answers still due, close, exit."""


class Ready(msgspec.Struct, array_like=True, tag=4):
    """The front accepts connections now (front to engine, once)."""


class Failed(msgspec.Struct, array_like=True, tag=5):
    """The front cannot serve (front to engine, instead of :class:`Ready`, just before it
    exits): ``reason`` is one line, such as a TLS key file it cannot read, that the engine
    ends the host's start with."""

    reason: str


class Claim(msgspec.Struct, array_like=True, tag=6):
    """A front accepted a connection and asks for one of the host's connection slots.

    :ivar conn: the front's connection id, echoed in the :class:`Grant`.
    :ivar peer: the client's IP address (the per-peer cap counts by it).
    """

    conn: int
    peer: str


class Grant(msgspec.Struct, array_like=True, tag=7):
    """The engine's answer to a :class:`Claim`: the slot, or the refusal's reason
    (``over_limit``, ``over_peer_limit``), for which the front closes the connection."""

    conn: int
    refused: str | None = None


class Release(msgspec.Struct, array_like=True, tag=8):
    """A connection the engine granted a slot to is gone (front to engine)."""

    conn: int


class FrontMessage(msgspec.Struct, array_like=True):
    """One ISO message of a request a front answered itself, as the one-process server puts it
    on the event stream (:meth:`host.event_stream.EventBus.message`): the engine publishes it.

    :ivar direction: ``in`` or ``out``.
    :ivar fields: the message's decoded fields (a request's: what a :class:`Submit` carries;
        the engine's bus masks the PAN and hides the secrets, as for its own events).
    :ivar context: an answer's log context (kind, rc, rule, masked PAN); None for a request.
    :ivar latency_ms: an answer's latency, as the front measured it; None for a request.
    """

    direction: str
    fields: dict[str, str]
    context: dict[str, Any] | None = None
    latency_ms: float | None = None


class Tally(msgspec.Struct, array_like=True, tag=9):
    """What a front counted since its last tally, for the engine's ``/metrics`` and event stream.

    :ivar closed: connections the front closed, by reason (``poslab_connections_closed_total``).
    :ivar answered: the requests the front answered itself (a format error's RC 30, a TLS
        ``CERT_TID_MISMATCH``), as (request MTI, DE39, latency ms).
    :ivar messages: those requests' messages for the event stream, in the order the front's
        connection code published them, at most :data:`MESSAGES_PER_TALLY`.
    :ivar dropped: the messages left out over that bound (a front flooded with bad frames).
    """

    closed: dict[str, int]
    answered: list[tuple[str, str, float]]
    messages: list[FrontMessage] = msgspec.field(default_factory=list)
    dropped: int = 0


TALLY_EVERY_S = 0.2
"""The longest a front holds what it counted before it sends a :class:`Tally`."""

MESSAGES_PER_TALLY = 100
"""The most messages one tally carries for the event stream; the rest are only counted, so a
flood of bad frames costs the link and the engine a bounded amount (500 a second per front).
At [limits] max_frame_bytes' ceiling (65,535, binary fields as hex text) they stay below
:data:`MAX_FRAME`."""

LinkMessage = Submit | Answer | Stop | Ready | Failed | Claim | Grant | Release | Tally

_encode = msgspec.msgpack.Encoder(enc_hook=str).encode  # log values such as enums: as text
_decode = msgspec.msgpack.Decoder(LinkMessage).decode


class LinkError(ValueError):
    """The bytes on the link are not a frame of this protocol (the pipe is broken)."""


def frame(message: LinkMessage) -> bytes:
    """One message as a length-prefixed frame."""
    body = _encode(message)
    return len(body).to_bytes(HEADER, "big") + body


class Deframer:
    """Splits the bytes read from a pipe into messages; keeps a partial frame for later."""

    def __init__(self, deliver: Callable[[LinkMessage], None]) -> None:
        self._buffer = bytearray()
        self._deliver = deliver

    def feed(self, data: bytes) -> None:
        """Deliver every complete message in what arrived so far, in order."""
        for message in self._messages(data):
            self._deliver(message)

    def _messages(self, data: bytes) -> Iterator[LinkMessage]:
        buffer = self._buffer
        buffer += data
        start = 0
        end = len(buffer)
        try:
            while end - start >= HEADER:
                size = int.from_bytes(buffer[start:start + HEADER], "big")
                if size > MAX_FRAME:
                    raise LinkError(f"link frame of {size} bytes (at most {MAX_FRAME})")
                if end - start - HEADER < size:
                    break
                body = bytes(buffer[start + HEADER:start + HEADER + size])
                start += HEADER + size
                try:
                    message = _decode(body)
                except msgspec.DecodeError as exc:
                    raise LinkError(f"undecodable link frame: {exc}") from None
                yield message
        finally:
            del buffer[:start]
