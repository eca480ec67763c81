"""A journaling terminal for crash and fault tests: every request is recorded before it is sent.

Its requests and reversals come from a :class:`~terminal.session.TerminalSession` on an
in-memory journal, and answers are matched by the terminal's
:func:`~terminal.link.correlation_key`; what it adds is a plain asyncio socket and the two
ways a test resolves unanswered work. Like a real terminal (and TigerBeetle's client), it
writes the request to its journal *before* sending it, so after a timeout, a dropped
connection or a dead host it knows exactly which work is in flight, and resolves it in one of
two ways:

``repeat``   send the identical request again (same STAN and DE7); the host either replays the
             stored answer or, if it never committed the first, processes it now;
``reverse``  send an 0400 for it, then 0401 repeats, until the host answers 00.

Responses that arrive for no request in flight (a duplicated answer) are counted and ignored.
A frame that does not decode is counted as a garbled response: the request stays in flight.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from protocol import Codec, DecodeError, EntryMode, FramingError, Money, Pan, frame
from protocol.framing import Deframer
from terminal.cards import Card
from terminal.config import TerminalConfig
from terminal.flow import Draft
from terminal.journal import Journal, Txn, TxnKind
from terminal.link import correlation_key
from terminal.session import TerminalSession

State = Literal["in_flight", "approved", "declined", "reversed"]
Strategy = Literal["repeat", "reverse"]


@dataclass
class JournalEntry:
    """One financial request as the terminal knows it."""

    kind: str
    stan: str
    fields: dict[str, str]
    amount_minor: int
    state: State = "in_flight"
    rc: str | None = None
    rrn: str | None = None
    resolved_by: str | None = None
    line: Txn | None = field(default=None, repr=False, compare=False)  # the session's line


@dataclass
class Counters:
    """What went wrong on the wire, as seen by the terminal."""

    timeouts: int = 0
    connection_errors: int = 0
    garbled: int = 0
    unsolicited: int = 0
    partial_frames: int = 0  # the connection ended in the middle of a frame


class JournalingTerminal:
    """One terminal with one connection and one request in flight."""

    def __init__(self, host: str, port: int, tid: str, mid: str, *, codec: Codec | None = None,
                 pan: str = "4761739001010119", currency: str = "CNY", timeout: float = 2.0,
                 stan_start: int = 1) -> None:
        self.host, self.port = host, port
        self.tid, self.mid = tid, mid
        self.codec = codec or Codec()
        self.card = Card("test card", Pan(pan), "3012", "")
        self.session = TerminalSession(
            TerminalConfig(terminal_id=tid, merchant_id=mid, currency=currency),
            Journal.in_memory(stan_start), clock=lambda: datetime.now(UTC))
        self.currency = currency
        self.timeout = timeout
        self.journal: list[JournalEntry] = []
        self.counters = Counters()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._deframer = Deframer(self.codec.profile.length_header)
        self._frames: list[bytes] = []

    # -- wire ------------------------------------------------------------------------------

    async def _connect(self) -> None:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self._deframer = Deframer(self.codec.profile.length_header)
            self._frames = []

    def disconnect(self) -> None:
        """Drop the connection (the next exchange reconnects)."""
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None

    async def _next_frame(self) -> bytes:
        assert self._reader is not None
        while not self._frames:
            data = await self._reader.read(65536)
            if not data:
                if self._deframer.in_progress:
                    self.counters.partial_frames += 1
                raise ConnectionError("the host closed the connection")
            self._frames.extend(self._deframer.feed(data))
        return self._frames.pop(0)

    async def exchange(self, fields: dict[str, str]) -> dict[str, str] | None:
        """Send one request and wait for its answer; None on timeout, close or garbage.

        Answers whose STAN is not this request's (a duplicate of an earlier answer) are
        counted and skipped.
        """
        try:
            await self._connect()
            assert self._writer is not None
            # Anything still buffered answers an earlier request (a duplicate): ignore it.
            self.counters.unsolicited += len(self._frames)
            self._frames.clear()
            self._writer.write(frame(self.codec.encode(fields), self.codec.profile.length_header))
            deadline = time.monotonic() + self.timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                payload = await asyncio.wait_for(self._next_frame(), left)
                try:
                    _, answer = self.codec.decode(payload)
                except DecodeError:
                    self.counters.garbled += 1
                    self.disconnect()
                    return None
                if correlation_key(answer, answer=True) != correlation_key(fields):
                    self.counters.unsolicited += 1
                    continue
                return answer
        except TimeoutError:
            self.counters.timeouts += 1
        except (OSError, ConnectionError, FramingError):
            self.counters.connection_errors += 1
        except Exception:  # noqa: BLE001 - a validation error in an answer: treat as garbage
            self.counters.garbled += 1
        self.disconnect()
        return None

    # -- transactions ----------------------------------------------------------------------

    async def sale(self, amount_minor: int) -> JournalEntry:
        """Journal, then send, a sale; its entry stays in flight when no answer came."""
        pending = self.session.begin(Draft(TxnKind.SALE, Money(amount_minor, self.currency),
                                           self.card, EntryMode.MANUAL))
        entry = JournalEntry("sale", pending.request.stan, pending.request.to_fields(),
                             amount_minor, line=pending.txn)
        self.journal.append(entry)
        self._settle(entry, await self.exchange(entry.fields))
        return entry

    @staticmethod
    def _settle(entry: JournalEntry, answer: dict[str, str] | None) -> None:
        if answer is None:
            return
        entry.rc = answer.get("39")
        entry.rrn = answer.get("37")
        entry.state = "approved" if entry.rc == "00" else "declined"

    def reversal_fields(self, entry: JournalEntry, repeat: bool) -> dict[str, str]:
        """The session's 0400/0401 that undoes ``entry`` (same STAN, amount, DE90 of the
        original)."""
        assert entry.line is not None
        return self.session.reversal_request(entry.line, repeat).to_fields()

    @property
    def in_flight(self) -> list[JournalEntry]:
        """Entries without a final answer."""
        return [e for e in self.journal if e.state == "in_flight"]

    async def resolve(self, entry: JournalEntry, strategy: Strategy, *,
                      give_up_after: float = 30.0, retry_pause: float = 0.05) -> bool:
        """Resolve one in-flight entry by repeat or reversal, retrying while the host is down.

        Returns False when ``give_up_after`` seconds passed without a final answer.
        """
        deadline = time.monotonic() + give_up_after
        attempt = 0
        while time.monotonic() < deadline:
            if strategy == "repeat":
                answer = await self.exchange(entry.fields)
                if answer is not None:
                    self._settle(entry, answer)
                    entry.resolved_by = "repeat"
                    return True
            else:
                answer = await self.exchange(self.reversal_fields(entry, repeat=attempt > 0))
                attempt += 1
                if answer is not None and answer.get("39") == "00":
                    entry.state = "reversed"
                    entry.resolved_by = "reverse"
                    return True
            await asyncio.sleep(retry_pause)  # the host is restarting: pace the retries
        return False


@dataclass
class Expectation:
    """What the host's ledger must show for one terminal entry after quiescence."""

    stan: str
    effective: bool
    amount_minor: int = 0
    notes: list[str] = field(default_factory=list)


def expectations(terminal: JournalingTerminal) -> list[Expectation]:
    """Approved and not reversed -> effective; declined or reversed -> net zero."""
    return [Expectation(e.stan, e.state == "approved", e.amount_minor)
            for e in terminal.journal if e.state != "in_flight"]
