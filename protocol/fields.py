"""ISO 8583 field tables as data, and their compilation to pyiso8583 specs.

A field table is a tuple of :class:`FieldSpec` rows: number, format, length rule, name, how
sensitive the value is, an optional content rule, and how the field is encoded on the wire (data
encoding, length-prefix encoding, whether lengths count bytes or nibbles, padding).
:func:`compile_spec` turns a :class:`FieldTable` into the plain dict pyiso8583 encodes and
decodes with; :mod:`protocol.validate` checks content against the same rows, because pyiso8583
checks lengths but not content.

Formats (ISO 8583:1987 notation): ``n`` digits, ``an`` letters/digits/space, ``ans`` printable
ASCII, ``z`` track-2 characters, ``xn`` a ``C``/``D`` sign followed by digits, ``b`` raw bytes.
``len_type`` is 0 for fixed length, 2 for LLVAR, 3 for LLLVAR (length *digits*; the prefix takes
that many bytes in ASCII, half as many, rounded up, in BCD or binary).

Field dict values are text whatever the encoding: ASCII fields as themselves, BCD fields as their
digits (padding removed), binary fields as upper-case hex -- the representation pyiso8583 4
gives for ``data_enc="b"``.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from protocol.headers import Encoding, MessageHeader


class Sensitivity(enum.Enum):
    """How a field may be rendered in logs, screens and errors."""

    PLAIN = "plain"
    PAN = "pan"  # first 6 and last 4 digits only
    SECRET = "secret"  # never rendered: track data, PIN block, keys, MACs


class LengthCount(enum.Enum):
    """What ``max_len`` and a length prefix count: bytes, or nibbles (BCD digits)."""

    BYTES = "bytes"
    NIBBLES = "nibbles"


@dataclass(frozen=True)
class FieldSpec:
    """One data element: number, content format, length rule, name and wire encoding.

    :ivar content: a named content rule beyond the format (``"MMDD"``, ``"hhmmss"``,
        ``"MMDDhhmmss"``, ``"YYMM"``), checked by :mod:`protocol.validate`.
    :ivar data_enc: how the value is encoded; ``None`` means binary for ``b`` fields, else ASCII.
    :ivar len_enc: how the LL/LLL length prefix is encoded.
    :ivar len_count: whether ``max_len`` and the prefix count bytes or nibbles.
    :ivar left_pad: / :ivar right_pad: the nibble that pads an odd number of BCD digits.
    """

    number: int
    fmt: str
    len_type: int
    max_len: int
    name: str
    sensitivity: Sensitivity = Sensitivity.PLAIN
    content: str | None = None
    data_enc: Encoding | None = None
    len_enc: Encoding = Encoding.ASCII
    len_count: LengthCount = LengthCount.BYTES
    left_pad: str = ""
    right_pad: str = ""

    def __post_init__(self) -> None:
        if self.data_enc is None:
            default = Encoding.BINARY if self.fmt == "b" else Encoding.ASCII
            object.__setattr__(self, "data_enc", default)

    @property
    def key(self) -> str:
        """The field's key in a field dict (``"2"``, ``"128"``)."""
        return str(self.number)

    @property
    def fixed(self) -> bool:
        """True for fixed-length fields."""
        return self.len_type == 0

    @property
    def hex_text(self) -> bool:
        """True when the field dict holds the value as hex/BCD digits (not ASCII)."""
        return self.data_enc is not Encoding.ASCII

    def size(self, value: str) -> int | None:
        """``value``'s length in the units of ``max_len``; None for a half byte with no pad."""
        if not self.hex_text:
            return len(value) * (2 if self.len_count is LengthCount.NIBBLES else 1)
        if self.len_count is LengthCount.NIBBLES:
            return len(value) if len(value) % 2 == 0 or self.left_pad or self.right_pad else None
        return None if len(value) % 2 else len(value) // 2

    def pyiso8583(self) -> dict[str, Any]:
        """This field as a pyiso8583 spec entry."""
        prefix_bytes = self.len_type if self.len_enc is Encoding.ASCII else (self.len_type + 1) // 2
        entry: dict[str, Any] = {
            "data_enc": _PYISO_DATA[self.data_enc or Encoding.ASCII],
            "len_enc": _PYISO_LEN[self.len_enc],
            "len_type": prefix_bytes,
            "max_len": self.max_len,
            "desc": self.name,
        }
        if self.len_count is LengthCount.NIBBLES:
            entry["len_count"] = "nibbles"
        if self.left_pad:
            entry["left_pad"] = self.left_pad
        if self.right_pad:
            entry["right_pad"] = self.right_pad
        return entry


_PYISO_DATA = {Encoding.ASCII: "ascii", Encoding.BCD: "b", Encoding.BINARY: "b"}
_PYISO_LEN = {Encoding.ASCII: "ascii", Encoding.BCD: "bcd", Encoding.BINARY: "b"}


@dataclass(frozen=True, eq=False)
class FieldTable:
    """A named field table plus how the MTI and bitmaps are encoded.

    Compared and hashed by identity: tables are built once, at import, and cached lookups
    (compiled specs, validation checks) key on them.

    :ivar mti_enc: ASCII (4 bytes) or BCD (2 bytes).
    :ivar bitmap_enc: BINARY (8 bytes each) or ASCII (16 hex characters each).
    """

    name: str
    fields: tuple[FieldSpec, ...]
    mti_enc: Encoding = Encoding.ASCII
    bitmap_enc: Encoding = Encoding.BINARY

    def __iter__(self) -> Iterator[FieldSpec]:
        return iter(self.fields)


_P = Sensitivity.PAN
_S = Sensitivity.SECRET

# number, fmt, len_type, max_len, name, sensitivity[, content rule] -- ISO 8583:1987 as jPOS
# ISO87APackager lays it out. Encodings are not part of a row: a FieldTable puts them on.
_ISO87_ROWS: tuple[tuple[Any, ...], ...] = (
    (1, "b", 0, 8, "Bitmap, secondary", Sensitivity.PLAIN),
    (2, "n", 2, 19, "Primary account number", _P),
    (3, "n", 0, 6, "Processing code", Sensitivity.PLAIN),
    (4, "n", 0, 12, "Amount, transaction", Sensitivity.PLAIN),
    (5, "n", 0, 12, "Amount, settlement", Sensitivity.PLAIN),
    (6, "n", 0, 12, "Amount, cardholder billing", Sensitivity.PLAIN),
    (7, "n", 0, 10, "Transmission date and time", Sensitivity.PLAIN, "MMDDhhmmss"),
    (8, "n", 0, 8, "Amount, cardholder billing fee", Sensitivity.PLAIN),
    (9, "n", 0, 8, "Conversion rate, settlement", Sensitivity.PLAIN),
    (10, "n", 0, 8, "Conversion rate, cardholder billing", Sensitivity.PLAIN),
    (11, "n", 0, 6, "System trace audit number", Sensitivity.PLAIN),
    (12, "n", 0, 6, "Time, local transaction", Sensitivity.PLAIN, "hhmmss"),
    (13, "n", 0, 4, "Date, local transaction", Sensitivity.PLAIN, "MMDD"),
    (14, "n", 0, 4, "Date, expiration", Sensitivity.PLAIN, "YYMM"),
    (15, "n", 0, 4, "Date, settlement", Sensitivity.PLAIN, "MMDD"),
    (16, "n", 0, 4, "Date, conversion", Sensitivity.PLAIN),
    (17, "n", 0, 4, "Date, capture", Sensitivity.PLAIN),
    (18, "n", 0, 4, "Merchant type", Sensitivity.PLAIN),
    (19, "n", 0, 3, "Acquiring institution country code", Sensitivity.PLAIN),
    (20, "n", 0, 3, "PAN extended, country code", Sensitivity.PLAIN),
    (21, "n", 0, 3, "Forwarding institution country code", Sensitivity.PLAIN),
    (22, "n", 0, 3, "Point of service entry mode", Sensitivity.PLAIN),
    (23, "n", 0, 3, "Card sequence number", Sensitivity.PLAIN),
    (24, "n", 0, 3, "Network international identifier", Sensitivity.PLAIN),
    (25, "n", 0, 2, "Point of service condition code", Sensitivity.PLAIN),
    (26, "n", 0, 2, "Point of service PIN capture code", Sensitivity.PLAIN),
    (27, "n", 0, 1, "Authorizing identification response length", Sensitivity.PLAIN),
    (28, "xn", 0, 9, "Amount, transaction fee", Sensitivity.PLAIN),
    (29, "xn", 0, 9, "Amount, settlement fee", Sensitivity.PLAIN),
    (30, "xn", 0, 9, "Amount, transaction processing fee", Sensitivity.PLAIN),
    (31, "xn", 0, 9, "Amount, settlement processing fee", Sensitivity.PLAIN),
    (32, "n", 2, 11, "Acquiring institution identification code", Sensitivity.PLAIN),
    (33, "n", 2, 11, "Forwarding institution identification code", Sensitivity.PLAIN),
    (34, "ans", 2, 28, "Primary account number, extended", _P),
    (35, "z", 2, 37, "Track 2 data", _S),
    (36, "n", 3, 104, "Track 3 data", _S),
    (37, "an", 0, 12, "Retrieval reference number", Sensitivity.PLAIN),
    (38, "an", 0, 6, "Authorization identification response", Sensitivity.PLAIN),
    (39, "an", 0, 2, "Response code", Sensitivity.PLAIN),
    (40, "an", 0, 3, "Service restriction code", Sensitivity.PLAIN),
    (41, "ans", 0, 8, "Card acceptor terminal identification", Sensitivity.PLAIN),
    (42, "ans", 0, 15, "Card acceptor identification code", Sensitivity.PLAIN),
    (43, "ans", 0, 40, "Card acceptor name/location", Sensitivity.PLAIN),
    (44, "ans", 2, 25, "Additional response data", Sensitivity.PLAIN),
    (45, "ans", 2, 76, "Track 1 data", _S),
    (46, "ans", 3, 999, "Additional data - ISO", Sensitivity.PLAIN),
    (47, "ans", 3, 999, "Additional data - national", Sensitivity.PLAIN),
    (48, "ans", 3, 999, "Additional data - private", Sensitivity.PLAIN),
    (49, "an", 0, 3, "Currency code, transaction", Sensitivity.PLAIN),
    (50, "an", 0, 3, "Currency code, settlement", Sensitivity.PLAIN),
    (51, "an", 0, 3, "Currency code, cardholder billing", Sensitivity.PLAIN),
    (52, "b", 0, 8, "Personal identification number data", _S),
    (53, "n", 0, 16, "Security related control information", Sensitivity.PLAIN),
    (54, "ans", 3, 120, "Additional amounts", Sensitivity.PLAIN),
    (55, "b", 3, 255, "ICC data - EMV having multiple tags", _S),
    (56, "ans", 3, 999, "Reserved ISO", Sensitivity.PLAIN),
    (57, "ans", 3, 999, "Reserved national", Sensitivity.PLAIN),
    (58, "ans", 3, 999, "Reserved national", Sensitivity.PLAIN),
    (59, "ans", 3, 999, "Reserved national", Sensitivity.PLAIN),
    (60, "ans", 3, 999, "Reserved national", Sensitivity.PLAIN),
    (61, "ans", 3, 999, "Reserved private", Sensitivity.PLAIN),
    (62, "ans", 3, 999, "Reserved private", Sensitivity.PLAIN),
    (63, "ans", 3, 999, "Reserved private", Sensitivity.PLAIN),
    (64, "b", 0, 8, "Message authentication code", _S),
    (65, "b", 0, 8, "Bitmap, extended", Sensitivity.PLAIN),
    (66, "n", 0, 1, "Settlement code", Sensitivity.PLAIN),
    (67, "n", 0, 2, "Extended payment code", Sensitivity.PLAIN),
    (68, "n", 0, 3, "Receiving institution country code", Sensitivity.PLAIN),
    (69, "n", 0, 3, "Settlement institution country code", Sensitivity.PLAIN),
    (70, "n", 0, 3, "Network management information code", Sensitivity.PLAIN),
    (71, "n", 0, 4, "Message number", Sensitivity.PLAIN),
    (72, "n", 0, 4, "Message number, last", Sensitivity.PLAIN),
    (73, "n", 0, 6, "Date, action", Sensitivity.PLAIN),
    (74, "n", 0, 10, "Credits, number", Sensitivity.PLAIN),
    (75, "n", 0, 10, "Credits reversal, number", Sensitivity.PLAIN),
    (76, "n", 0, 10, "Debits, number", Sensitivity.PLAIN),
    (77, "n", 0, 10, "Debits reversal, number", Sensitivity.PLAIN),
    (78, "n", 0, 10, "Transfer, number", Sensitivity.PLAIN),
    (79, "n", 0, 10, "Transfer reversal, number", Sensitivity.PLAIN),
    (80, "n", 0, 10, "Inquiries, number", Sensitivity.PLAIN),
    (81, "n", 0, 10, "Authorizations, number", Sensitivity.PLAIN),
    (82, "n", 0, 12, "Credits, processing fee amount", Sensitivity.PLAIN),
    (83, "n", 0, 12, "Credits, transaction fee amount", Sensitivity.PLAIN),
    (84, "n", 0, 12, "Debits, processing fee amount", Sensitivity.PLAIN),
    (85, "n", 0, 12, "Debits, transaction fee amount", Sensitivity.PLAIN),
    (86, "n", 0, 16, "Credits, amount", Sensitivity.PLAIN),
    (87, "n", 0, 16, "Credits reversal, amount", Sensitivity.PLAIN),
    (88, "n", 0, 16, "Debits, amount", Sensitivity.PLAIN),
    (89, "n", 0, 16, "Debits reversal, amount", Sensitivity.PLAIN),
    (90, "n", 0, 42, "Original data elements", Sensitivity.PLAIN),
    (91, "an", 0, 1, "File update code", Sensitivity.PLAIN),
    (92, "an", 0, 2, "File security code", Sensitivity.PLAIN),
    (93, "an", 0, 5, "Response indicator", Sensitivity.PLAIN),
    (94, "an", 0, 7, "Service indicator", Sensitivity.PLAIN),
    (95, "an", 0, 42, "Replacement amounts", Sensitivity.PLAIN),
    (96, "b", 0, 8, "Message security code", _S),
    (97, "xn", 0, 17, "Amount, net settlement", Sensitivity.PLAIN),
    (98, "ans", 0, 25, "Payee", Sensitivity.PLAIN),
    (99, "n", 2, 11, "Settlement institution identification code", Sensitivity.PLAIN),
    (100, "n", 2, 11, "Receiving institution identification code", Sensitivity.PLAIN),
    (101, "ans", 2, 17, "File name", Sensitivity.PLAIN),
    (102, "ans", 2, 28, "Account identification 1", Sensitivity.PLAIN),
    (103, "ans", 2, 28, "Account identification 2", Sensitivity.PLAIN),
    (104, "ans", 3, 100, "Transaction description", Sensitivity.PLAIN),
    *((n, "ans", 3, 999, "Reserved ISO", Sensitivity.PLAIN) for n in range(105, 112)),
    *((n, "ans", 3, 999, "Reserved national", Sensitivity.PLAIN) for n in range(112, 120)),
    *((n, "ans", 3, 999, "Reserved private", Sensitivity.PLAIN) for n in range(120, 128)),
    (128, "b", 0, 8, "Message authentication code", _S),
)


ISO87: tuple[FieldSpec, ...] = tuple(FieldSpec(*row) for row in _ISO87_ROWS)
"""The ISO 8583:1987 rows: ASCII data and length prefixes, binary ``b`` fields."""

ISO87_ASCII = FieldTable("iso87", ISO87)
"""The generic table: ASCII MTI, numerics and prefixes, binary bitmap, DE52/DE55/DE64/DE128."""

TABLES: dict[str, FieldTable] = {t.name: t for t in (ISO87_ASCII,)}
"""Field tables by name."""


def resolve_table(table: str | FieldTable) -> FieldTable:
    """The table itself, or the registered table of that name."""
    return table if isinstance(table, FieldTable) else TABLES[table]


@functools.cache
def _keyed(table: FieldTable) -> Mapping[str, FieldSpec]:
    return MappingProxyType({f.key: f for f in table})


def field_table(table: str | FieldTable) -> Mapping[str, FieldSpec]:
    """A table's rows keyed by field key (``"2"`` ...), built once (read-only)."""
    return _keyed(resolve_table(table))


def compile_spec(
    table: str | FieldTable, header: MessageHeader | None = None
) -> dict[str, dict[str, Any]]:
    """Build the pyiso8583 spec dict for a field table (and a fixed message header, if any).

    The generic table compiles to the layout of pyiso8583's own ``default`` spec (binary 8-byte
    bitmap, ASCII data and length prefixes, binary DE52/DE64/DE128, binary DE55 with an ASCII
    LLL prefix), so a message encoded by one decodes with the other.
    """
    t = resolve_table(table)
    spec: dict[str, dict[str, Any]] = {
        "h": _fixed(0, Encoding.ASCII, "Message header"),
        "t": _fixed(2 if t.mti_enc is Encoding.BCD else 4, t.mti_enc, "Message type indicator"),
        "p": _fixed(8 if t.bitmap_enc is Encoding.BINARY else 16, t.bitmap_enc,
                    "Bitmap, primary"),
    }
    if header is not None:
        spec["h"] = _fixed(header.size, header.encoding, "Message header")
    for f in t:
        spec[f.key] = f.pyiso8583()
    return spec


def _fixed(max_len: int, data_enc: Encoding, desc: str) -> dict[str, Any]:
    return {"data_enc": _PYISO_DATA[data_enc], "len_enc": "ascii", "len_type": 0,
            "max_len": max_len, "desc": desc}
