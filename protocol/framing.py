"""Length-prefixed framing, sans-IO.

``frame(payload)`` adds the length header; :class:`Deframer` cuts a byte stream back into
payloads however it arrives (byte by byte, in random chunks, several frames per chunk). A zero
length, a length over ``max_frame_bytes`` or a non-digit ASCII header raises
:class:`~protocol.errors.FramingError`: the stream can no longer be trusted and the connection
must be closed (docs/design-notes.md, "Framing and connection limits").
"""

from __future__ import annotations

import struct

from protocol.errors import FramingError
from protocol.specs import LengthHeader

DEFAULT_MAX_FRAME_BYTES = 8192
_HEADER_LEN = {"2b": 2, "4a": 4}


def frame(payload: bytes, header: LengthHeader = "2b") -> bytes:
    """Prefix ``payload`` with its length."""
    n = len(payload)
    if header == "2b":
        if not 0 < n <= 0xFFFF:
            raise FramingError(f"payload of {n} bytes cannot be framed with a 2-byte header")
        return struct.pack("!H", n) + payload
    if not 0 < n <= 9999:
        raise FramingError(f"payload of {n} bytes cannot be framed with a 4-digit header")
    return b"%04d" % n + payload


class Deframer:
    """Cut a byte stream into frame payloads.

    :ivar in_progress: True while a partial frame is buffered; the host arms its per-frame
        deadline when this turns true.
    """

    def __init__(
        self, header: LengthHeader = "2b", max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    ) -> None:
        self.header = header
        self.max_frame_bytes = max_frame_bytes
        self._hlen = _HEADER_LEN[header]
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
        if self.header == "2b":
            n: int = struct.unpack("!H", head)[0]
        else:
            if not head.isdigit():
                raise FramingError("length header is not 4 ASCII digits", pos=self._consumed)
            n = int(head)
        if n == 0:
            raise FramingError("zero-length frame", pos=self._consumed)
        if n > self.max_frame_bytes:
            raise FramingError(
                f"frame of {n} bytes exceeds the {self.max_frame_bytes}-byte limit",
                pos=self._consumed,
            )
        return n
