"""Safe renderings of wire traffic for the message inspector: never a full PAN or track data.

The hex dump is taken from the real bytes, with every byte of the PAN between its first six and
last four digits, the whole of track 2 after the PAN's first six digits, the PIN block (DE52)
and the wrapped working keys of a sign-on answer (DE62) replaced by ``*`` (0x2A) before
dumping -- written as ASCII digits (generic profiles) or packed BCD (China UnionPay, whose
0320 upload records in DE48 carry PANs too). The breakdown comes from
:func:`protocol.describe_fields`, which masks sensitive fields itself; on the CUP profile the
private fields follow subfield by subfield (:mod:`terminal.cup_fields`).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import replace
from datetime import tzinfo

from protocol.cup_private import parse_upload
from protocol.describe import DEFAULT_MAC_SCHEME, describe_fields, is_key_block
from protocol.errors import ValidationError
from protocol.masking import luhn_ok, mask_pan
from protocol.specs import WireProfile
from terminal.cup_fields import subfields
from terminal.cup_session import is_cup
from terminal.link import Traffic


def masked_bytes(raw: bytes, fields: dict[str, str]) -> bytes:
    """``raw`` with card data overwritten by ``*``; lengths and offsets are unchanged."""
    out = raw
    for secret in _secret_bytes(fields):
        out = out.replace(secret, b"*" * len(secret))
    track = fields.get("35")
    if track:
        out = out.replace(track.encode(), track[:6].encode() + b"*" * (len(track) - 6))
    pan = fields.get("2")
    if pan:
        out = out.replace(pan.encode(), mask_pan(pan).encode())
    for packed, masked in _bcd_card_data(fields):
        out = out.replace(packed, masked)
    if not fields:
        # A frame that did not decode has no fields to go by, and a PAN may sit inside a
        # longer run of digits: mask every run long enough to hold one.
        return _LONG_RUN.sub(lambda m: mask_pan(m.group().decode()).encode(), out)
    return _PAN_RUN.sub(lambda m: mask_pan(m.group().decode()).encode()
                        if luhn_ok(m.group().decode()) else m.group(), out)


def _secret_bytes(fields: dict[str, str]) -> list[bytes]:
    """How DE52 and a sign-on's DE62 sit in the raw bytes: binary PIN block, hex key text."""
    out = []
    with contextlib.suppress(ValueError):
        if fields.get("52"):
            out.append(bytes.fromhex(fields["52"]))
    if is_key_block(fields):
        out.append(fields["62"].encode())
        with contextlib.suppress(ValueError):  # a binary DE62 (CUP) sits in the frame as bytes
            out.append(bytes.fromhex(fields["62"]))
    return out


def _bcd(digits: str) -> bytes:
    """``digits`` packed as BCD, padded on the right with F (how CUP writes LL fields)."""
    return bytes.fromhex(digits + "F" * (len(digits) % 2))


def _bcd_masked(digits: str, lead: int = 0) -> tuple[bytes, bytes]:
    """(packed, packed with ``*`` over every byte holding a digit after the first six of the
    PAN that starts at digit ``lead``, except a last two bytes that hold only its last four)."""
    packed = _bcd(digits)
    keep = (lead + 6) // 2
    tail = 2 if len(digits) % 2 == 0 and len(digits) - lead >= 14 else 0
    return packed, packed[:keep] + b"*" * (len(packed) - keep - tail) + packed[len(packed) - tail:]


def _bcd_card_data(fields: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """How DE2, DE35 and the PANs of 0320 upload records would sit in a BCD frame, and what
    to show instead; [] for values that are not digits."""
    out = []
    with contextlib.suppress(ValueError):
        if fields.get("2", "").isdigit():
            out.append(_bcd_masked(fields["2"]))
        track = fields.get("35", "")
        if track:
            packed = _bcd(track.replace("=", "D"))
            out.append((packed, packed[:3] + b"*" * (len(packed) - 3)))
    if fields.get("t") in ("0320", "0330") and len(fields.get("48", "")) > 4:
        with contextlib.suppress(ValidationError):
            for record in parse_upload(fields["48"]):
                padded = f"{record.pan:0>20}"
                out.append(_bcd_masked(padded, lead=20 - len(record.pan)))
    return out


_PAN_RUN = re.compile(rb"(?<![0-9])[0-9]{13,19}(?![0-9])")
_LONG_RUN = re.compile(rb"[0-9]{13,}")


def safe_hex(raw: bytes, fields: dict[str, str], width: int = 16) -> list[str]:
    """Hex dump lines (offset, hex, ASCII) of ``raw`` with card data masked."""
    data = masked_bytes(raw, fields)
    lines = []
    for off in range(0, len(data), width):
        chunk = data[off : off + width]
        hexes = " ".join(f"{b:02X}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:04X}  {hexes:<{width * 3 - 1}}  {text}")
    return lines


#: How many messages the inspector keeps (the oldest go first).
KEEP = 200
#: Below this many columns the breakdown drops the field names and the dump shows 8 bytes a line.
FULL_WIDTH = 76


def render(item: Traffic, tz: tzinfo | None = None, width: int = FULL_WIDTH,
           profile: WireProfile | None = None) -> list[str]:
    """The inspector's entry for one message: header, field breakdown and masked hex.

    Times are shown in ``tz`` (the merchant's zone; machine time when None). A pane narrower
    than :data:`FULL_WIDTH` gets the compact form: ``DE39 00  Approved`` and 8-byte dump lines.
    Fields are named by ``profile``'s table (the generic one when None).
    """
    arrow = ">>" if item.direction == "sent" else "<<"
    head = f"{item.at.astimezone(tz):%H:%M:%S} {arrow} {item.direction.upper()} {item.mti}"
    if item.late:
        head += "  LATE (no request waiting; ignored)"
    if item.note and not item.late:
        head += f"  {item.note}"
    lines = [head]
    compact = width < FULL_WIDTH
    cup = profile is not None and is_cup(profile.name)
    described = []
    if item.fields and profile is not None:
        described = describe_fields(item.fields, profile.table,
                                    profile.mac_scheme or DEFAULT_MAC_SCHEME)
    elif item.fields:
        described = describe_fields(item.fields)
    for field in described:
        parts = subfields(field.key, item.fields) if cup else []
        if parts:  # the generic reading of DE48/60/61 does not apply; the parts say it
            field = replace(field, meaning="")
        if compact:
            label = "MTI" if field.key == "t" else f"DE{field.key}"
            tail = f"  {field.meaning}" if field.meaning else ""
            lines.append(f"{label:<5}{field.value}{tail}")
        else:
            lines.append(f"  {field}")
        for label, name, value in parts:
            lines.append(f"  {label:<5}{value}" if compact
                         else f"    {label:<6}{name:<34.34} {value}")
    if compact:
        lines += [line.replace("  ", " ", 1) for line in safe_hex(item.raw, item.fields, 8)]
    else:
        lines += [" " + line for line in safe_hex(item.raw, item.fields)]
    return lines


def is_financial(item: Traffic) -> bool:
    """A request or answer that is not network management (08xx): what a trainer looks at."""
    return not item.mti.startswith("08")


def layout(items: list[Traffic], tz: tzinfo | None, width: int,
           profile: WireProfile | None = None) -> tuple[list[str], int]:
    """All entries as lines (fields named by ``profile``), and the line the pane opens on: the
    start of the last financial exchange (its request), else of the last message."""
    lines: list[str] = []
    anchor = 0
    last_financial: int | None = None
    for item in items:
        anchor = len(lines)
        if is_financial(item) and item.direction == "sent":
            last_financial = anchor
        lines += render(item, tz, width, profile)
        lines.append("")
    return lines, last_financial if last_financial is not None else anchor
