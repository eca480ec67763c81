"""ISO 8583 field tables and wire profiles, as data.

This module is the one place that says how each data element looks on the wire. A field table
is a tuple of :class:`FieldSpec` rows; :func:`compile_spec` turns one into the plain dict that
pyiso8583 encodes and decodes with, and the validator (:mod:`protocol.validate`) checks content
against the same rows, because pyiso8583 checks lengths but not content.

Formats (ISO 8583:1987 notation): ``n`` digits, ``an`` letters/digits/space, ``ans`` printable
ASCII, ``z`` track-2 characters, ``xn`` a ``C``/``D`` sign followed by digits, ``b`` raw bytes
(held as upper-case hex text in field dicts). ``len_type`` is 0 for fixed length, 2 for LLVAR, 3
for LLLVAR; the prefix is ASCII digits.

A wire profile is a field table plus framing: the length header (``2b`` two bytes big-endian,
``4a`` four ASCII digits) and whether a 5-byte TPDU follows it. Profiles are looked up by name;
a China UnionPay profile (BCD numerics, 6-byte header, DE60 sub-fields) will be added as another
table and profile without touching the rest.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal


class Sensitivity(enum.Enum):
    """How a field may be rendered in logs, screens and errors."""

    PLAIN = "plain"
    PAN = "pan"  # first 6 and last 4 digits only
    SECRET = "secret"  # never rendered: track data, PIN block, keys, MACs


@dataclass(frozen=True)
class FieldSpec:
    """One data element: its number, content format, length rule and name."""

    number: int
    fmt: str
    len_type: int
    max_len: int
    name: str
    sensitivity: Sensitivity = Sensitivity.PLAIN

    @property
    def key(self) -> str:
        """The field's key in a field dict (``"2"``, ``"128"``)."""
        return str(self.number)

    @property
    def fixed(self) -> bool:
        """True for fixed-length fields."""
        return self.len_type == 0


_P = Sensitivity.PAN
_S = Sensitivity.SECRET

# fmt, len_type, max_len, name -- ISO 8583:1987 as jPOS ISO87APackager lays it out in ASCII.
_ISO87_ROWS: tuple[tuple[int, str, int, int, str, Sensitivity], ...] = (
    (1, "b", 0, 8, "Bitmap, secondary", Sensitivity.PLAIN),
    (2, "n", 2, 19, "Primary account number", _P),
    (3, "n", 0, 6, "Processing code", Sensitivity.PLAIN),
    (4, "n", 0, 12, "Amount, transaction", Sensitivity.PLAIN),
    (5, "n", 0, 12, "Amount, settlement", Sensitivity.PLAIN),
    (6, "n", 0, 12, "Amount, cardholder billing", Sensitivity.PLAIN),
    (7, "n", 0, 10, "Transmission date and time", Sensitivity.PLAIN),
    (8, "n", 0, 8, "Amount, cardholder billing fee", Sensitivity.PLAIN),
    (9, "n", 0, 8, "Conversion rate, settlement", Sensitivity.PLAIN),
    (10, "n", 0, 8, "Conversion rate, cardholder billing", Sensitivity.PLAIN),
    (11, "n", 0, 6, "System trace audit number", Sensitivity.PLAIN),
    (12, "n", 0, 6, "Time, local transaction", Sensitivity.PLAIN),
    (13, "n", 0, 4, "Date, local transaction", Sensitivity.PLAIN),
    (14, "n", 0, 4, "Date, expiration", Sensitivity.PLAIN),
    (15, "n", 0, 4, "Date, settlement", Sensitivity.PLAIN),
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
"""The generic ISO 8583:1987 table (ASCII numerics, binary bitmap and MACs)."""

TABLES: dict[str, tuple[FieldSpec, ...]] = {"iso87": ISO87}
"""Field tables by name; a profile names one of these."""

KNOWN_MTIS: frozenset[str] = frozenset(
    {
        "0100", "0110", "0120", "0121", "0130",
        "0200", "0210", "0220", "0221", "0230",
        "0320", "0330",
        "0400", "0401", "0410", "0420", "0421", "0430",
        "0500", "0510",
        "0800", "0810", "0820", "0830",
    }
)  # fmt: skip
"""Message types poslab speaks; anything else is a validation error."""


@functools.cache
def field_table(table: str) -> Mapping[str, FieldSpec]:
    """The named table keyed by field key (``"2"`` ...), built once (read-only)."""
    return MappingProxyType({f.key: f for f in TABLES[table]})


def compile_spec(table: str) -> dict[str, dict[str, Any]]:
    """Build the pyiso8583 spec dict for a field table.

    The result matches pyiso8583's own ``default`` spec in layout (binary 8-byte bitmap, ASCII
    data and length prefixes, binary DE52/DE64/DE128, binary DE55 with an ASCII LLL prefix), so a
    message encoded by one decodes with the other.
    """
    spec: dict[str, dict[str, Any]] = {
        "h": _entry(0, 0, "ascii", "Message header"),
        "t": _entry(0, 4, "ascii", "Message type indicator"),
        "p": _entry(0, 8, "b", "Bitmap, primary"),
    }
    for f in TABLES[table]:
        spec[f.key] = _entry(f.len_type, f.max_len, "b" if f.fmt == "b" else "ascii", f.name)
    return spec


def _entry(len_type: int, max_len: int, data_enc: str, desc: str) -> dict[str, Any]:
    return {
        "data_enc": data_enc,
        "len_enc": "ascii",
        "len_type": len_type,
        "max_len": max_len,
        "desc": desc,
    }


LengthHeader = Literal["2b", "4a"]


@dataclass(frozen=True)
class WireProfile:
    """A field table plus framing: what a peer must agree on to exchange messages.

    :ivar length_header: ``"2b"`` two-byte big-endian binary length (jPOS ``NACChannel``,
        Twisted ``Int16StringReceiver``) or ``"4a"`` four ASCII digits.
    :ivar tpdu: whether a 5-byte TPDU follows the length header; a response swaps its source
        and destination addresses.
    """

    name: str
    table: str
    length_header: LengthHeader
    tpdu: bool
    description: str


PROFILES: dict[str, WireProfile] = {
    p.name: p
    for p in (
        WireProfile(
            "iso87-ascii", "iso87", "2b", False,
            "ISO 8583:1987, ASCII fields, binary bitmap, 2-byte binary length (default)",
        ),
        WireProfile(
            "iso87-ascii-4a", "iso87", "4a", False,
            "ISO 8583:1987, ASCII fields, binary bitmap, 4 ASCII digit length",
        ),
        WireProfile(
            "iso87-ascii-tpdu", "iso87", "2b", True,
            "ISO 8583:1987, ASCII fields, 2-byte binary length followed by a 5-byte TPDU",
        ),
    )
}  # fmt: skip
"""Every selectable wire profile by name."""

DEFAULT_PROFILE = "iso87-ascii"


def get_profile(name: str) -> WireProfile:
    """Look a profile up by name, with an error that lists the valid names."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown wire profile {name!r}; choose one of: {', '.join(sorted(PROFILES))}"
        ) from None


# Mandatory fields per request kind, --strict hosts (docs/design-notes.md). Keyed by (MTI, DE3 type
# digits or "*"). Card data is checked separately: DE2 or DE35 must be present.
_FINANCIAL = frozenset({"3", "4", "7", "11", "12", "13", "22", "25", "41", "42", "49"})
_FINANCIAL = frozenset({"3", "4", "7", "11", "12", "13", "22", "25", "41", "42", "49"})
MANDATORY: dict[tuple[str, str], frozenset[str]] = {
    ("0100", "*"): _FINANCIAL,
    ("0200", "00"): _FINANCIAL,
    ("0200", "20"): _FINANCIAL,
    ("0200", "02"): _FINANCIAL | {"37"},
    ("0200", "22"): _FINANCIAL | {"37"},
    ("0220", "*"): _FINANCIAL,
    ("0400", "*"): frozenset({"3", "4", "7", "11", "41", "42", "49"}),
    ("0401", "*"): frozenset({"3", "4", "7", "11", "41", "42", "49"}),
    ("0500", "*"): frozenset({"3", "7", "11", "41", "42", "49", "60", "74", "76", "86", "88"}),
    ("0320", "*"): frozenset({"3", "4", "11", "37", "41", "42", "49", "60"}),
    ("0800", "*"): frozenset({"7", "11", "41", "42", "70"}),
}
CARD_REQUIRED: frozenset[tuple[str, str]] = frozenset(
    {("0100", "*"), ("0200", "00"), ("0200", "20"), ("0220", "*")}
)


def mandatory_fields(mti: str, processing_code: str | None) -> frozenset[str]:
    """The fields a strict host requires in a request of this MTI and processing code."""
    kind = (processing_code or "")[:2]
    return MANDATORY.get((mti, kind), MANDATORY.get((mti, "*"), frozenset()))
