"""Closed-loop load: N asyncio terminals, one request in flight each, latencies recorded.

Plain asyncio Protocols (the cheapest client on one core) so the generator leaves as much CPU
as possible to the host it measures. Requests come from the terminal session's builder (see
:mod:`scenarios.loadgen.workload`); an answer is matched to its request by the terminal's
:func:`~terminal.link.correlation_key`, and one that matches nothing in flight is counted as
an error, never taken as the answer. Responses are decoded without validation: the generator
needs only MTI, DE11, DE39 and DE37, and a host that sends something undecodable is counted,
not trusted.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from protocol import Codec, DecodeError, frame
from protocol.framing import Deframer
from scenarios.loadgen.scan import FieldScanner
from scenarios.loadgen.workload import KINDS, Sale, TerminalPlan
from terminal.link import correlation_key


@dataclass
class Tally:
    """Counters and latencies of one measured run."""

    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    approved: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    declined: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    codes: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    timeouts: int = 0
    errors: int = 0
    closed: int = 0

    @classmethod
    def merged(cls, tallies: Sequence[Tally]) -> Tally:
        """The counters and latencies of several runs as one."""
        out = cls()
        for tally in tallies:
            for kind in KINDS:
                out.sent[kind] += tally.sent[kind]
                out.approved[kind] += tally.approved[kind]
                out.declined[kind] += tally.declined[kind]
                out.latencies[kind].extend(tally.latencies[kind])
            for code, n in tally.codes.items():
                out.codes[code] = out.codes.get(code, 0) + n
            out.timeouts += tally.timeouts
            out.errors += tally.errors
            out.closed += tally.closed
        return out


class _Terminal(asyncio.Protocol):
    """One simulated terminal on one connection."""

    def __init__(self, run: LoadRun, plan: TerminalPlan) -> None:
        self.run = run
        self.plan = plan
        self.deframer = Deframer(run.codec.profile.length_header)
        self.transport: asyncio.Transport | None = None
        self.pending: tuple[str, Sale | None, float] | None = None
        self.waits_for: tuple[str, str] = ("", "")  # the correlation key of the answer
        self.connected = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.connected.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.run.running:
            self.run.tally.closed += 1
            if self.pending is not None:
                self.pending = None
            self.run.terminal_idle()

    def send_next(self) -> None:
        if self.transport is None or not self.run.running:
            self.run.terminal_idle()
            return
        kind, payload, target = self.plan.next_request()
        self.waits_for = self.plan.answer_key
        self.pending = (kind, target, time.perf_counter())
        self.transport.write(frame(payload, self.run.codec.profile.length_header))

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.deframer.feed(data)
        except Exception:  # noqa: BLE001 - a broken stream is counted, the connection dropped
            self.run.tally.errors += 1
            if self.transport is not None:
                self.transport.abort()
            return
        for payload in frames:
            self._response(payload)

    def _response(self, payload: bytes) -> None:
        now = time.perf_counter()
        if self.pending is None:
            self.run.tally.errors += 1  # an unsolicited or duplicate response: ignored
            return
        kind, target, started = self.pending
        self.pending = None
        tally = self.run.tally if self.run.measuring else self.run.warm
        tpdu = self.run.codec.profile.tpdu
        body = payload[tpdu.size:] if tpdu is not None else payload
        fields = self.run.scanner.scan(body)
        if fields is None:
            try:
                fields = self.run.codec.decode_body(body)
            except DecodeError:
                tally.errors += 1
                self.send_next()
                return
        if correlation_key(fields, answer=True) != self.waits_for:
            tally.errors += 1  # an answer to something else (a late or foreign one): ignored
            self.pending = (kind, target, started)
            return
        rc = fields.get("39", "??")
        approved = rc == "00"
        tally.sent[kind] += 1
        tally.codes[rc] = tally.codes.get(rc, 0) + 1
        (tally.approved if approved else tally.declined)[kind] += 1
        tally.latencies[kind].append(now - started)
        self.plan.settle(kind, target, approved, fields.get("37"))
        self.send_next()


class LoadRun:
    """Drive ``plans`` against host:port: warm up, measure, then drain in-flight requests."""

    def __init__(self, host: str, port: int, codec: Codec, plans: list[TerminalPlan], *,
                 request_timeout: float = 5.0, tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port = host, port
        self.tls = tls  # each terminal's connection goes through TLS with it (None: plain TCP)
        self.codec = codec
        self.scanner = FieldScanner(codec)
        self.plans = plans
        self.request_timeout = request_timeout
        self.tally = Tally()
        self.warm = Tally()
        self.running = False
        self.measuring = False
        self.probe_start: float | None = None
        self.probe_end: float | None = None
        self._terminals: list[_Terminal] = []
        self._idle: asyncio.Event | None = None

    def terminal_idle(self) -> None:
        if self._idle is not None and all(t.pending is None for t in self._terminals):
            self._idle.set()

    async def connect(self) -> None:
        """Open one connection per terminal (and do its TLS handshake, with :attr:`tls`)."""
        loop = asyncio.get_running_loop()
        for plan in self.plans:
            _, proto = await loop.create_connection(lambda p=plan: _Terminal(self, p),
                                                    self.host, self.port, ssl=self.tls)
            self._terminals.append(proto)

    async def run(self, duration: float, warmup: float = 1.0,
                  probe: Callable[[], float | None] = lambda: None) -> float:
        """Warm up, measure for ``duration`` seconds; returns the measured wall time.

        ``probe`` (e.g. the server's CPU seconds) is read at the start and the end of the
        measured window, into :attr:`probe_start` and :attr:`probe_end`.
        """
        self._idle = asyncio.Event()
        self.running = True
        for term in self._terminals:
            term.send_next()
        watchdog = asyncio.ensure_future(self._watch())
        await asyncio.sleep(warmup)
        self.probe_start = probe()
        self.measuring = True
        started = time.perf_counter()
        await asyncio.sleep(duration)
        self.measuring = False
        elapsed = time.perf_counter() - started
        self.probe_end = probe()
        self.running = False
        self.terminal_idle()
        try:
            await asyncio.wait_for(self._idle.wait(), self.request_timeout + 1)
        except TimeoutError:
            pass
        watchdog.cancel()
        return elapsed

    async def _watch(self) -> None:
        """Count requests unanswered past the timeout and move those terminals on."""
        while True:
            await asyncio.sleep(0.25)
            now = time.perf_counter()
            for term in self._terminals:
                if term.pending is not None and now - term.pending[2] > self.request_timeout:
                    (self.tally if self.measuring else self.warm).timeouts += 1
                    term.pending = None
                    term.send_next()

    def close(self) -> None:
        """Close every connection."""
        for term in self._terminals:
            if term.transport is not None:
                term.transport.close()
