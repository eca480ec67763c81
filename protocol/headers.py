"""What wraps a message body on the wire: length headers, the TPDU and a fixed message header.

A :class:`LengthHeader` is one small interface (its size, ``encode(n)`` and ``decode(head)``)
with one class per wire format, so framing never branches on a format name. The TPDU and the
message header are optional parts of a :class:`~protocol.specs.WireProfile`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.errors import FramingError


class Encoding(enum.Enum):
    """How characters or a length become bytes (pyiso8583 supports all three)."""

    ASCII = "ascii"  # one byte per character
    BCD = "bcd"  # two decimal digits per byte
    BINARY = "binary"  # raw bytes, held as upper-case hex text in field dicts


class LengthHeader:
    """The prefix that says how many bytes of message follow.

    :ivar name: the name profiles and tests use (``"2b"``, ``"4a"``, ``"2bcd"``).
    :ivar size: bytes the header occupies.
    :ivar limit: the largest payload it can announce.
    :ivar description: words for error messages (``"2-byte header"``).
    """

    name: str
    size: int
    limit: int
    description: str

    def _pack(self, n: int) -> bytes:
        raise NotImplementedError

    def _unpack(self, head: bytes, pos: int) -> int:
        raise NotImplementedError

    def encode(self, n: int) -> bytes:
        """The header announcing ``n`` bytes; FramingError when ``n`` is 0 or too large."""
        if not 0 < n <= self.limit:
            raise FramingError(f"payload of {n} bytes cannot be framed with a {self}")
        return self._pack(n)

    def decode(self, head: bytes, pos: int = 0) -> int:
        """The length ``head`` (exactly :attr:`size` bytes at stream offset ``pos``) announces."""
        return self._unpack(head, pos)

    def __eq__(self, other: object) -> bool:
        # A header equals its name, so code written when profiles held "2b"/"4a" keeps working.
        if isinstance(other, LengthHeader):
            return other.name == self.name
        return isinstance(other, str) and other == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.description

    def __repr__(self) -> str:
        return f"<LengthHeader {self.name}>"


class Binary2(LengthHeader):
    """Two bytes, big-endian binary (jPOS ``NACChannel``, Twisted ``Int16StringReceiver``)."""

    name, size, limit = "2b", 2, 0xFFFF
    description = "2-byte header"

    def _pack(self, n: int) -> bytes:
        return n.to_bytes(2, "big")

    def _unpack(self, head: bytes, pos: int) -> int:
        return int.from_bytes(head, "big")


class Ascii4(LengthHeader):
    """Four ASCII decimal digits."""

    name, size, limit = "4a", 4, 9999
    description = "4-digit header"

    def _pack(self, n: int) -> bytes:
        return b"%04d" % n

    def _unpack(self, head: bytes, pos: int) -> int:
        if not head.isdigit():
            raise FramingError("length header is not 4 ASCII digits", pos=pos)
        return int(head)


class Bcd2(LengthHeader):
    """Two bytes holding four BCD digits."""

    name, size, limit = "2bcd", 2, 9999
    description = "2-byte BCD header"

    def _pack(self, n: int) -> bytes:
        return bytes.fromhex(f"{n:04d}")

    def _unpack(self, head: bytes, pos: int) -> int:
        digits = head.hex()
        if not digits.isdigit():
            raise FramingError("length header is not 4 BCD digits", pos=pos)
        return int(digits)


LENGTH_HEADERS: dict[str, LengthHeader] = {h.name: h for h in (Binary2(), Ascii4(), Bcd2())}
"""Every length header by name."""


def length_header(header: LengthHeader | str) -> LengthHeader:
    """A length header object, given one or its name (``"2b"``, ``"4a"``, ``"2bcd"``)."""
    if isinstance(header, LengthHeader):
        return header
    try:
        return LENGTH_HEADERS[header]
    except KeyError:
        raise ValueError(
            f"unknown length header {header!r}; choose one of: {', '.join(LENGTH_HEADERS)}"
        ) from None


@dataclass(frozen=True)
class TpduSpec:
    """A TPDU between the length header and the message: its size and what a sender puts there.

    A response swaps the request's source and destination addresses (:class:`protocol.Tpdu`).
    """

    size: int = 5
    default: bytes = b"\x60\x00\x00\x00\x00"


@dataclass(frozen=True)
class MessageHeader:
    """A fixed-length header before the MTI (e.g. 6 bytes of BCD).

    In a field dict it is the ``"h"`` entry: hex text for BCD/binary, text for ASCII. Decoding
    keeps it; encoding sends ``fields["h"]`` when present, else :attr:`default`.
    """

    size: int
    encoding: Encoding
    default: str

    def __post_init__(self) -> None:
        width = self.size if self.encoding is Encoding.ASCII else 2 * self.size
        if len(self.default) != width:
            raise ValueError(f"default message header must be {width} characters long")
