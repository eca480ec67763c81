"""Safe renderings of wire traffic for the message inspector: never a full PAN or track data.

The hex dump is taken from the real bytes, with every byte of the PAN between its first six and
last four digits, and the whole of track 2 after the PAN's first six digits, replaced by ``*``
(0x2A) before dumping. The breakdown comes from :func:`protocol.describe_fields`, which masks
sensitive fields itself.
"""

from __future__ import annotations

import re

from protocol.describe import describe_fields
from protocol.masking import luhn_ok, mask_pan
from terminal.link import Traffic


def masked_bytes(raw: bytes, fields: dict[str, str]) -> bytes:
    """``raw`` with card data overwritten by ``*``; lengths and offsets are unchanged."""
    out = raw
    track = fields.get("35")
    if track:
        out = out.replace(track.encode(), track[:6].encode() + b"*" * (len(track) - 6))
    pan = fields.get("2")
    if pan:
        out = out.replace(pan.encode(), mask_pan(pan).encode())
    if not fields:
        # A frame that did not decode has no fields to go by, and a PAN may sit inside a
        # longer run of digits: mask every run long enough to hold one.
        return _LONG_RUN.sub(lambda m: mask_pan(m.group().decode()).encode(), out)
    return _PAN_RUN.sub(lambda m: mask_pan(m.group().decode()).encode()
                        if luhn_ok(m.group().decode()) else m.group(), out)


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


def render(item: Traffic) -> list[str]:
    """The inspector's entry for one message: header, field breakdown and masked hex."""
    arrow = ">>" if item.direction == "sent" else "<<"
    head = f"{item.at:%H:%M:%S} {arrow} {item.direction.upper()} {item.mti}"
    if item.late:
        head += "  LATE (no request waiting; ignored)"
    if item.note and not item.late:
        head += f"  {item.note}"
    lines = [head]
    if item.fields:
        lines += ["  " + str(line) for line in describe_fields(item.fields)]
    lines += ["  " + line for line in safe_hex(item.raw, item.fields)]
    return lines
