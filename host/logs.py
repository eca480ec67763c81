"""The host's JSON-lines log: one line per ISO message in and out, plus connection and audit
events, written through structlog.

Every line is a JSON object with at least ``time`` (UTC, ISO 8601 with milliseconds) and
``event``. Message lines (``event: "message"``) carry ``conn``, ``direction`` (``in``/``out``),
``mti``, ``stan``, ``tid``, ``mid``, ``rc``, ``rule``, ``rrn``, ``pan`` (masked),
``amount_minor``, ``currency`` and, on ``out``, ``latency_ms``; with ``with_fields`` they also
carry ``fields``, the :func:`protocol.describe_fields` rendering (card data already made safe
there).

Card data never reaches the file. The PAN is masked when a message line is built; then every
line, whatever logged it, passes the structlog processor chain :data:`PROCESSORS`:
:func:`stamp` (time first, then the event), :func:`redact_secrets` (a member named like a PIN
block, track, CVV or key is replaced by ``[redacted]``) and :func:`render_scrubbed` (the JSON
line, with any card number or track that slipped into free text masked by
:func:`protocol.scrub`, first 6 and last 4 digits kept).
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec
import structlog

from protocol import describe_fields, mask_pan, scrub
from protocol.masking import Track2

# Field keys a message summary reads. Kept here so the rest of the shell never spells them.
_SUMMARY = {"t": "mti", "3": "processing_code", "11": "stan", "41": "tid", "42": "mid",
            "39": "rc", "44": "rule", "37": "rrn", "49": "currency"}  # fmt: skip


# One encoder for every line (json.dumps would build a new one per call).
_ENCODE = json.JSONEncoder(default=str, separators=(",", ":")).encode
# msgspec writes the same text about three times as fast for the members a line usually has
# (:func:`encode_line` says when); it differs on the rest (non-ASCII text, some floats, dates).
_FAST_ENCODE = msgspec.json.Encoder().encode
_PLAIN = frozenset({str, int, bool, type(None)})
_PLAIN_OR_FLOAT = _PLAIN | {float}
_STR = frozenset({str})

# Every digit as "0", so that a run of digits is a run of zeros to look for as a substring.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_TWELVE = b"0" * 12
_PAN_RUN, _TRACK_RUN, _TRACK_RUN_D = _TWELVE + b"0", _TWELVE + b"=", _TWELVE + b"D"


def maybe_card(line: str) -> bool:
    """A necessary condition for :func:`protocol.scrub` to change ``line`` (JSON, so ASCII):
    both of its patterns need twelve digits in a row followed by a digit (a 13-19 digit run)
    or by ``=``/``D`` (track 2). Most lines have no such run, so the two substitutions are
    skipped. Substring searches over the digits mapped to ``0`` answer it in a fifth of the
    time of the equivalent regular expression ``\\d{12}[\\d=D]``, which tries every digit of
    the line's time stamps, amounts and RRN as a start."""
    mapped = line.encode("ascii", "replace").translate(_DIGITS_AS_ZERO)
    return _TWELVE in mapped and (_PAN_RUN in mapped or _TRACK_RUN in mapped
                                  or _TRACK_RUN_D in mapped)


def encode_line(record: Mapping[str, object]) -> str:
    """``record`` as compact JSON, byte for byte what ``json`` writes (``ensure_ascii``,
    ``default=str``, no spaces).

    msgspec writes it when every key is a ``str`` and every value a ``str``, ``int``,
    ``bool``, ``None`` or a float both write alike (0, or 1e-4 <= \\|x\\| < 1e16), and the
    text needs no escape (printable ASCII throughout, so no backslash in msgspec's output);
    ``json`` writes every other line."""
    kinds = set(map(type, record.values()))
    if (kinds <= _PLAIN or (kinds <= _PLAIN_OR_FLOAT and all(
            v == 0.0 or 1e-4 <= abs(v) < 1e16 for v in record.values() if type(v) is float))
            ) and set(map(type, record)) <= _STR:
        raw = _FAST_ENCODE(record)
        if raw.isascii() and b"\\" not in raw and b"\x7f" not in raw:
            return raw.decode("ascii")
    return _ENCODE(record)


SECRET_KEYS = frozenset({
    "pin", "pin_block", "pinblock", "track", "track1", "track2", "track_data",
    "cvv", "cvv2", "cvc", "cvc2", "cav", "key", "keys", "tmk", "tpk", "tak", "zpk", "bdk", "ipek",
})
"""Member names whose value is never written (nor any name ending in ``_key``)."""
REDACTED = "[redacted]"

EventDict = MutableMapping[str, Any]


def safe_line(record: Mapping[str, object]) -> str:
    """``record`` as one JSON line with card data masked (:func:`protocol.scrub`)."""
    line = encode_line(record)
    return scrub(line) if maybe_card(line) else line


def stamp(logger: object, method: str, event_dict: EventDict) -> EventDict:
    """Processor: ``time`` (now, UTC) and ``event`` first, then the event's own members."""
    return {"time": _now(), "event": event_dict.pop("event", None), **event_dict}


def redact_secrets(logger: object, method: str, event_dict: EventDict) -> EventDict:
    """Processor: replace the value of any member named like a PIN block, track, CVV or key."""
    for name in _secret_names(tuple(event_dict)):
        event_dict[name] = REDACTED
    return event_dict


@functools.lru_cache(maxsize=1024)
def _secret_names(names: tuple[str, ...]) -> tuple[str, ...]:
    # Cached by the line's member names: the same few layouts repeat on every message.
    return tuple(n for n in names if n in SECRET_KEYS or n.endswith("_key"))


def render_scrubbed(logger: object, method: str, event_dict: EventDict) -> str:
    """Renderer: the event as one compact JSON line, card numbers and tracks masked."""
    return safe_line(event_dict)


PROCESSORS: list[structlog.typing.Processor] = [stamp, redact_secrets, render_scrubbed]
"""The structlog chain every host log line goes through, in order."""


class _LineLogger(structlog.BoundLoggerBase):
    """A structlog bound logger with one method, which takes the members as a dict: the
    keyword-argument methods of the stock loggers copy every message line's members three
    times on the way to the processors."""

    def write(self, event: str, members: dict[str, Any]) -> None:
        """Run ``event`` and ``members`` through the processors and write the line."""
        args, kw = self._process_event("info", event, members)
        self._logger.info(*args, **kw)


class _LineSink:
    """The structlog logger: writes each rendered line to a stream, one writer at a time."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def info(self, line: str) -> None:
        """Write ``line`` and a newline, flushed."""
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except ValueError:  # stream closed during shutdown: nothing left to tell
                pass


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
        self.path: str | None = None  # the file :meth:`to_file` opened (front processes append)
        self.with_fields = with_fields
        self._table = table
        # bind() once: the lazy proxy wrap_logger returns would rebuild the logger per line.
        self._log: _LineLogger = structlog.wrap_logger(
            _LineSink(self._stream), processors=PROCESSORS, wrapper_class=_LineLogger).bind()

    @classmethod
    def to_file(cls, path: str, *, with_fields: bool = False, table: str = "iso87") -> MessageLog:
        """Append to ``path`` (line buffered); the log closes the file in :meth:`close`."""
        stream = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - kept open
        log = cls(stream, with_fields=with_fields, table=table, own_stream=True)
        log.path = path
        return log

    def message(self, direction: str, conn: int | str, fields: Mapping[str, str],
                context: Mapping[str, object] | None = None, **extra: object) -> None:
        """Log one ISO message (``direction`` is ``in`` or ``out``).

        ``context`` (the service's ``Reply.log``: kind, rule, rrn ...) fills in what the
        message itself does not say; the message's own fields win.
        """
        # Built in one dict, in the order the keys have always had: later sources win.
        record: dict[str, Any] = {"conn": conn, "direction": direction}
        if context:
            record.update(context)
        record.update(summarize(fields))
        for key, value in extra.items():
            if value is not None:
                record[key] = value
        if self.with_fields:
            record["fields"] = [str(line) for line in describe_fields(fields, self._table)]
        record.pop("event", None)  # the line's event is "message", whatever the context says
        self._log.write("message", record)

    def audit(self, action: str, **details: object) -> None:
        """Log a security-relevant event (admin authentication failures, admin commands)."""
        self.event("audit", action=action, **details)

    def event(self, event: str, **details: object) -> None:
        """Log any other event: connection opened/closed, framing error, startup."""
        self._log.write(event, details)

    def close(self) -> None:
        """Close the file if this log opened it."""
        if self._own:
            self._stream.close()


# The current second as text, formatted once per second: (epoch second, "YYYY-MM-DDTHH:MM:SS").
# One tuple, replaced whole, so a thread never pairs one second with another's text.
_SECOND: list[tuple[int, str]] = [(-1, "")]


def _now() -> str:
    """Now in UTC, ISO 8601 with milliseconds (``datetime.isoformat(timespec="milliseconds")``
    text), a quarter of the CPU of formatting a datetime per line."""
    second, nanos = divmod(time.time_ns(), 1_000_000_000)
    cached = _SECOND[0]
    if cached[0] != second:
        cached = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        _SECOND[0] = cached
    return f"{cached[1]}.{nanos // 1_000_000:03d}+00:00"
