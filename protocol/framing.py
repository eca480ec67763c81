"""Length-prefixed framing, sans-IO.

``frame(payload, header)`` adds the length header; :class:`Deframer` cuts a byte stream back into
payloads however it arrives (byte by byte, in random chunks, several frames per chunk). The
header is a :class:`~protocol.headers.LengthHeader` or its name (``"2b"``, ``"4a"``, ``"2bcd"``).
A zero length, a length over ``max_frame_bytes`` or a header that is not a number raises
:class:`~protocol.errors.FramingError`: the stream can no longer be trusted and the connection
must be closed (docs/design-notes.md, "Framing and connection limits").
"""

from __future__ import annotations

from protocol.errors import FramingError
from protocol.headers import LengthHeader, length_header

DEFAULT_MAX_FRAME_BYTES = 8192


def frame(payload: bytes, header: LengthHeader | str = "2b") -> bytes:
    """Prefix ``payload`` with its length."""
    return length_header(header).encode(len(payload)) + payload


class Deframer:
    """Cut a byte stream into frame payloads.

    :ivar in_progress: True while a partial frame is buffered; the host arms its per-frame
        deadline when this turns true.
    """

    def __init__(
        self, header: LengthHeader | str = "2b", max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    ) -> None:
        self.header = length_header(header)
        self.max_frame_bytes = max_frame_bytes
        self._hlen = self.header.size
        self._buf = bytearray()
        self._consumed = 0  # stream offset of _buf[0], for error positions

    @property
    def in_progress(self) -> bool:
        """True when some bytes of an unfinished frame are buffered."""
        return bool(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every frame now complete, in order."""
        self._buf += data
        frames: list[bytes] = []
        while len(self._buf) >= self._hlen:
            try:
                n = self._length(bytes(self._buf[: self._hlen]))
            except FramingError as exc:
                exc.frames = tuple(frames)
                raise
            end = self._hlen + n
            if len(self._buf) < end:
                break
            frames.append(bytes(self._buf[self._hlen : end]))
            del self._buf[:end]
            self._consumed += end
        return frames

    def _length(self, head: bytes) -> int:
        n = self.header.decode(head, self._consumed)
        if n == 0:
            raise FramingError("zero-length frame", pos=self._consumed)
        if n > self.max_frame_bytes:
            raise FramingError(
                f"frame of {n} bytes exceeds the {self.max_frame_bytes}-byte limit",
                pos=self._consumed,
            )
        return n
