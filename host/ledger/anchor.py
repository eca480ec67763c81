"""Chain anchors: the chain head written down outside the database.

An anchor is one line, ``poslab-anchor:v1:<last group id>:<that group's hash>``, printed by
``poslab-host ledger anchor`` and in each settlement report. Kept elsewhere (a ticket, a mail,
a printed report), it lets ``ledger verify --anchor`` prove later that the chain still holds
that group with that hash: groups cut off the end, or a chain rebuilt from an older copy, no
longer match. The hash is a keyed MAC, so the anchor reveals nothing about the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PREFIX = "poslab-anchor:v1:"
_PATTERN = re.compile(r"poslab-anchor:v1:(\d{1,18}):([0-9a-f]{64})")


class AnchorError(ValueError):
    """An anchor that cannot be read; ``str()`` says what was expected."""


@dataclass(frozen=True)
class Anchor:
    """A position in the chain: the last group's id (0: empty chain) and its hash."""

    last_id: int
    last_hash: str

    def __str__(self) -> str:
        return f"{PREFIX}{self.last_id}:{self.last_hash}"


def parse_anchor(value: str) -> Anchor:
    """An anchor from its text, or from a file holding it (the first anchor in the file).

    Raises :class:`AnchorError` naming what was wrong."""
    return parse_anchors(value)[0]


def parse_anchors(value: str) -> tuple[Anchor, ...]:
    """Every anchor of a text, or of a file holding them (a settlement report names one per
    ledger chain); at least one.

    Raises :class:`AnchorError` naming what was wrong."""
    text = value.strip()
    source = "the value"
    if not text.startswith(PREFIX):
        path = Path(value)
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AnchorError(f"{value!r} is neither an anchor ({PREFIX}<id>:<hash>) nor a "
                              f"readable file ({getattr(exc, 'strerror', None) or exc})"
                              ) from None
        source = str(path)
    found = tuple(Anchor(int(m.group(1)), m.group(2)) for m in _PATTERN.finditer(text))
    if not found:
        raise AnchorError(f"{source}: no anchor of the form {PREFIX}<id>:<64 hex digits>")
    return found
