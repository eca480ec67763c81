"""Safe renderings of wire traffic for the message inspector: never a full PAN or track data.

The hex dump is taken from the real bytes, with every byte of the PAN between its first six and
last four digits, the whole of track 2 after the PAN's first six digits, the PIN block (DE52)
and the wrapped working keys of a sign-on answer (DE62) replaced by ``*`` (0x2A) before
dumping. The breakdown comes from :func:`protocol.describe_fields`, which masks
sensitive fields itself.
"""

from __future__ import annotations

import contextlib
import re
from datetime import tzinfo

from protocol.describe import describe_fields, is_key_block
from protocol.masking import luhn_ok, mask_pan
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


def render(item: Traffic, tz: tzinfo | None = None, width: int = FULL_WIDTH) -> list[str]:
    """The inspector's entry for one message: header, field breakdown and masked hex.

    Times are shown in ``tz`` (the merchant's zone; machine time when None). A pane narrower
    than :data:`FULL_WIDTH` gets the compact form: ``DE39 00  Approved`` and 8-byte dump lines.
    """
    arrow = ">>" if item.direction == "sent" else "<<"
    head = f"{item.at.astimezone(tz):%H:%M:%S} {arrow} {item.direction.upper()} {item.mti}"
    if item.late:
        head += "  LATE (no request waiting; ignored)"
    if item.note and not item.late:
        head += f"  {item.note}"
    lines = [head]
    compact = width < FULL_WIDTH
    for field in describe_fields(item.fields) if item.fields else []:
        if compact:
            label = "MTI" if field.key == "t" else f"DE{field.key}"
            tail = f"  {field.meaning}" if field.meaning else ""
            lines.append(f"{label:<5}{field.value}{tail}")
        else:
            lines.append(f"  {field}")
    if compact:
        lines += [line.replace("  ", " ", 1) for line in safe_hex(item.raw, item.fields, 8)]
    else:
        lines += [" " + line for line in safe_hex(item.raw, item.fields)]
    return lines


def is_financial(item: Traffic) -> bool:
    """A request or answer that is not network management (08xx): what a trainer looks at."""
    return not item.mti.startswith("08")


def layout(items: list[Traffic], tz: tzinfo | None, width: int) -> tuple[list[str], int]:
    """All entries as lines, and the line the pane opens on: the start of the last financial
    exchange (its request), else of the last message."""
    lines: list[str] = []
    anchor = 0
    last_financial: int | None = None
    for item in items:
        anchor = len(lines)
        if is_financial(item) and item.direction == "sent":
            last_financial = anchor
        lines += render(item, tz, width)
        lines.append("")
    return lines, last_financial if last_financial is not None else anchor
