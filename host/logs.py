"""The host's JSON-lines log: one line per ISO message in and out, plus connection and audit
events.

Every line is a JSON object with at least ``time`` (UTC, ISO 8601) and ``event``. Message lines
(``event: "message"``) carry ``conn``, ``direction`` (``in``/``out``), ``mti``, ``stan``,
``tid``, ``mid``, ``rc``, ``rule``, ``rrn``, ``pan`` (masked), ``amount_minor``, ``currency`` and,
on ``out``, ``latency_ms``; with ``with_fields`` they also carry ``fields``, the
:func:`protocol.describe_fields` rendering (card data already made safe there).

Card data never reaches the file: the PAN is masked when the line is built, and the finished
line goes through :func:`protocol.scrub` as a last line of defence, so a full PAN or track that
slipped into some free-text value is masked too.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from protocol import describe_fields, mask_pan, scrub
from protocol.masking import Track2

# Field keys a message summary reads. Kept here so the rest of the shell never spells them.
_SUMMARY = {"t": "mti", "3": "processing_code", "11": "stan", "41": "tid", "42": "mid",
            "39": "rc", "44": "rule", "37": "rrn", "49": "currency"}  # fmt: skip


# One encoder for every line (json.dumps would build a new one per call).
_ENCODE = json.JSONEncoder(default=str, separators=(",", ":")).encode

# A necessary condition for :func:`protocol.scrub` to change anything: both of its patterns need
# twelve digits in a row followed by a digit (a 13-19 digit run) or by ``=``/``D`` (track 2).
# One search for it costs a third of scrub's two substitutions, and most lines have no such run.
_MAYBE_CARD = re.compile(r"\d{12}[\d=D]")


def safe_line(record: Mapping[str, object]) -> str:
    """``record`` as one JSON line with card data masked (:func:`protocol.scrub`)."""
    line = _ENCODE(record)
    return scrub(line) if _MAYBE_CARD.search(line) else line


def summarize(fields: Mapping[str, str]) -> dict[str, object]:
    """The loggable facts of a field dict: ids, codes, amount and the masked PAN."""
    out: dict[str, object] = {name: fields[key] for key, name in _SUMMARY.items() if key in fields}
    amount = fields.get("4", "")
    if amount.isdigit():
        out["amount_minor"] = int(amount)
    if "2" in fields:
        out["pan"] = mask_pan(fields["2"])
    elif "35" in fields:
        try:
            out["pan"] = Track2(fields["35"]).pan.masked
        except ValueError:
            out["pan"] = "****"
    return out


class MessageLog:
    """Write JSON lines to a text stream (a file or stderr)."""

    def __init__(self, stream: TextIO | None = None, *, with_fields: bool = False,
                 table: str = "iso87", own_stream: bool = False) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._own = own_stream
        self.with_fields = with_fields
        self._table = table
        self._lock = threading.Lock()

    @classmethod
    def to_file(cls, path: str, *, with_fields: bool = False, table: str = "iso87") -> MessageLog:
        """Append to ``path`` (line buffered); the log closes the file in :meth:`close`."""
        stream = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - kept open
        return cls(stream, with_fields=with_fields, table=table, own_stream=True)

    def message(self, direction: str, conn: int | str, fields: Mapping[str, str],
                context: Mapping[str, object] | None = None, **extra: object) -> None:
        """Log one ISO message (``direction`` is ``in`` or ``out``).

        ``context`` (the service's ``Reply.log``: kind, rule, rrn ...) fills in what the
        message itself does not say; the message's own fields win.
        """
        # Built in one dict, in the order the keys have always had: later sources win.
        record: dict[str, object] = {"time": _now(), "event": "message",
                                     "conn": conn, "direction": direction}
        if context:
            record.update(context)
        record.update(summarize(fields))
        for key, value in extra.items():
            if value is not None:
                record[key] = value
        if self.with_fields:
            record["fields"] = [str(line) for line in describe_fields(fields, self._table)]
        self._write(safe_line(record))

    def audit(self, action: str, **details: object) -> None:
        """Log a security-relevant event (admin authentication failures, admin commands)."""
        self.event("audit", action=action, **details)

    def event(self, event: str, **details: object) -> None:
        """Log any other event: connection opened/closed, framing error, startup."""
        record: dict[str, Any] = {"time": _now(), "event": event}
        record.update(details)
        self._write(safe_line(record))

    def _write(self, line: str) -> None:
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except ValueError:  # stream closed during shutdown: nothing left to tell
                pass

    def close(self) -> None:
        """Close the file if this log opened it."""
        if self._own:
            self._stream.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
