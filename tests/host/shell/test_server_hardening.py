"""The host under attack (ISO listener and clock commands), with the real service on SQLite and
PostgreSQL.

Frames are built with plain pyiso8583 and its ``default`` (1987 ASCII) spec, not with poslab's
codec. Outcomes are waited for with a bound (an answer, a close, or the bound passing, which
is the silence these tests forbid); nothing sleeps.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import iso8583
import pytest
from iso8583.specs import default as PYISO_DEFAULT

from host.clock import ManualClock
from host.config import LimitsSection, load_config
from host.logs import MessageLog
from host.runtime import HostRuntime

TID, MID, PAN = "TERM0001", "MERCHANT0000001", "4111111111111111"
NOW = datetime(2025, 3, 14, 10, 30, tzinfo=UTC)
SILENCE_S = 5.0
"""How long a test waits for an answer or a close before calling the host silent."""


class Gate:
    """Wraps the real service; while closed, the worker thread waits before each call, and
    every request the service sees is recorded as (TID, STAN) in arrival order."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()
        self.seen: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _wait(self, batch: Sequence[Mapping[str, str]]) -> None:
        self.seen.extend((f.get("41", ""), f.get("11", "")) for f in batch)
        self.entered.set()
        self.open.wait(30)

    def handle(self, fields: Mapping[str, str]) -> Any:
        self._wait([fields])
        return self.inner.handle(fields)

    def handle_batch(self, batch: Sequence[Mapping[str, str]]) -> Any:
        self._wait(batch)
        return self.inner.handle_batch(batch)


class Host(NamedTuple):
    """A started host: the runtime, the gate around its service, its simulated clock."""

    runtime: HostRuntime
    gate: Gate
    clock: ManualClock


@pytest.fixture
def real_host(run: Callable[..., Any], db: str) -> Iterator[Callable[..., Host]]:
    """Start a host with the real service on ``db`` and the given ``[limits]``."""
    started: list[HostRuntime] = []

    def _start(**limits: Any) -> Host:
        from host.service import HostService

        config = load_config(None)
        config = config.model_copy(update={"limits": LimitsSection(**limits)})
        gates: list[Gate] = []

        def factory(*args: Any, **kwargs: Any) -> Gate:
            gates.append(Gate(HostService(*args, **kwargs)))
            return gates[0]

        runtime = HostRuntime(log=MessageLog(io.StringIO()), service_factory=factory)
        clock = ManualClock(NOW)
        run(runtime.start(config, db, clock, allow_unknown_terminals=True))
        started.append(runtime)
        return Host(runtime, gates[0], clock)

    yield _start
    for runtime in started:
        run(runtime.stop())


# -- an independent client ---------------------------------------------------------------------


def encode(fields: dict[str, str]) -> bytes:
    """One frame: 2-byte big-endian length, then pyiso8583's default-spec body."""
    body, _ = iso8583.encode(dict(fields), PYISO_DEFAULT)
    return struct.pack("!H", len(body)) + bytes(body)


def base(mti: str, stan: str = "000001", tid: str = TID) -> dict[str, str]:
    """The trace fields every message carries."""
    return {"t": mti, "7": "0314103000", "11": stan, "41": tid, "42": MID}


def sale(stan: str = "000001") -> dict[str, str]:
    """A valid 0200 purchase."""
    return {**base("0200", stan), "2": PAN, "3": "000000", "4": "000000001000", "12": "103000",
            "13": "0314", "14": "3012", "22": "012", "25": "00", "49": "840"}


def echo(stan: str, tid: str = TID) -> dict[str, str]:
    """A valid 0800 echo test."""
    return {**base("0800", stan, tid), "70": "301"}


class Conn:
    """One client connection, optionally from another loopback address (another peer)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, source: str = "127.0.0.1") -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=(source, 0))
        return cls(reader, writer)

    def send(self, fields: dict[str, str]) -> None:
        self.writer.write(encode(fields))

    async def outcome(self) -> dict[str, str] | None:
        """The next answer, or None when the host closed; TimeoutError when it stays silent."""
        async with asyncio.timeout(SILENCE_S):
            try:
                head = await self.reader.readexactly(2)
            except asyncio.IncompleteReadError:
                return None
            body = await self.reader.readexactly(struct.unpack("!H", head)[0])
        fields, _ = iso8583.decode(body, PYISO_DEFAULT)
        return dict(fields)

    async def request(self, fields: dict[str, str]) -> dict[str, str] | None:
        self.send(fields)
        return await self.outcome()

    def close(self) -> None:
        self.writer.close()


# -- every frame gets one outcome --------------------------------------------------------------


def _without(fields: dict[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in fields.items() if k != key}


UNUSUAL: dict[str, tuple[dict[str, str], str | None]] = {
    "0200 without DE11": (_without(sale(), "11"), None),
    "0200 without DE41": (_without(sale(), "41"), None),
    "0120 advice": ({**sale(), "t": "0120"}, "0130"),
    "0420 reversal advice": ({**sale(), "t": "0420"}, "0430"),
    "0421 reversal advice repeat": ({**sale(), "t": "0421"}, "0430"),
    "0820 network advice": ({**echo("000001"), "t": "0820"}, "0830"),
    "0110 response": ({**sale(), "t": "0110", "39": "00"}, "0110"),
    "0210 response": ({**sale(), "t": "0210", "39": "00"}, "0210"),
    "0810 response": ({**echo("000001"), "t": "0810", "39": "00"}, "0810"),
    "0830 response": ({**echo("000001"), "t": "0830", "39": "00"}, "0830"),
}
"""Decodable frames the host used to leave unanswered; None = no answer can be addressed."""


def test_every_decodable_frame_is_answered_30_or_closed(real_host: Any, run: Any) -> None:
    """Each odd-but-decodable frame gets its answer class with RC 30 and a reason in DE44, or
    a close when it has no STAN or TID to answer to; never silence."""
    runtime, _, _ = real_host()

    async def one(fields: dict[str, str]) -> Any:
        conn = await Conn.open(runtime.iso_port)
        try:
            got = await conn.request(fields)
        except TimeoutError:
            return "silence"
        finally:
            conn.close()
        return None if got is None else (got["t"], got.get("39"), bool(got.get("44")),
                                         got.get("11"))

    async def everything() -> list[Any]:
        return list(await asyncio.gather(*(one(f) for f, _ in UNUSUAL.values())))

    outcomes = dict(zip(UNUSUAL, run(everything(), timeout=30), strict=True))
    expected = {name: None if mti is None else (mti, "30", True, "000001")
                for name, (_, mti) in UNUSUAL.items()}
    assert outcomes == expected


# -- flow control per connection ---------------------------------------------------------------


async def held_flood(runtime: HostRuntime, gate: Gate, frames: int = 2000) -> Conn:
    """With the service held by ``gate``: pipeline ``frames`` echoes without reading, and
    return once the service has begun on the first of them."""
    gate.open.clear()
    flood = await Conn.open(runtime.iso_port)
    for n in range(1, frames + 1):
        flood.send(echo(f"{n:06d}", tid="FLOOD001"))
    await asyncio.to_thread(gate.entered.wait, SILENCE_S)
    return flood


def test_pipelining_client_cannot_starve_another_terminal(real_host: Any, run: Any) -> None:
    """A client that pipelines 2000 echoes without reading gets at most max_in_flight of them
    ahead of a well-behaved terminal's request, not the whole backlog."""
    runtime, gate, _ = real_host(max_in_flight=4)

    async def scenario() -> int:
        flood = await held_flood(runtime, gate)
        good = await Conn.open(runtime.iso_port, "127.0.0.2")
        good.send(echo("999999"))
        gate.open.set()
        answer = await good.outcome()
        assert answer is not None and answer["39"] == "00"
        good.close()
        flood.writer.transport.abort()
        return gate.seen.index((TID, "999999"))

    ahead = run(scenario(), timeout=60)
    assert ahead <= 3 * 4, f"{ahead} flood requests went before the good terminal's"


def test_frames_of_a_closed_connection_are_not_processed(real_host: Any, run: Any) -> None:
    """Frames a client pipelined over the cap are dropped when it goes: the service sees a
    bounded few, not the 2000 sent."""
    runtime, gate, _ = real_host(max_in_flight=4)

    async def scenario() -> None:
        flood = await held_flood(runtime, gate)
        flood.writer.transport.abort()
        gate.open.set()
        assert runtime.factory is not None
        await runtime.factory.drained().asFuture(asyncio.get_running_loop())
        # A request on a fresh connection is served after whatever the flood left behind.
        probe = await Conn.open(runtime.iso_port)
        answer = await probe.request(echo("999999"))
        assert answer is not None and answer["39"] == "00"
        probe.close()

    run(scenario(), timeout=60)
    flood_seen = sum(1 for tid, _ in gate.seen if tid == "FLOOD001")
    assert flood_seen <= 64, f"{flood_seen} requests of a gone client were processed"


# -- connection fairness -------------------------------------------------------------------------


def test_one_peer_cannot_take_every_connection(real_host: Any, run: Any) -> None:
    """A peer holding idle connections up to its per-peer limit leaves room: a terminal from
    another address connects and is served, and the peer's extra connections are refused."""
    runtime, _, _ = real_host(max_connections=8, max_connections_per_peer=4,
                           first_frame_timeout_s=60, idle_timeout_s=60)

    async def scenario() -> tuple[list[bool], str]:
        hogs = [await Conn.open(runtime.iso_port) for _ in range(8)]
        # The first four stay open (an echo each proves it); the rest are refused at once.
        kept = []
        for n, hog in enumerate(hogs):
            try:
                kept.append(await hog.request(echo(f"{n + 1:06d}", tid="HOG00001")) is not None)
            except (ConnectionError, TimeoutError):
                kept.append(False)
        good = await Conn.open(runtime.iso_port, "127.0.0.2")
        answer = await good.request(echo("000099"))
        for conn in (*hogs, good):
            conn.close()
        return kept, "none" if answer is None else answer["39"]

    kept, rc = run(scenario(), timeout=40)
    assert (kept, rc) == ([True] * 4 + [False] * 4, "00")


def test_first_frame_timeout_frees_slots_held_by_silent_sockets(real_host: Any,
                                                                 run: Any) -> None:
    """Silent connections from many peers fill the cap; the first-frame timeout closes them
    (long before the idle timeout) and a terminal refused meanwhile gets in and is served."""
    runtime, _, _ = real_host(max_connections=6, max_connections_per_peer=2,
                           first_frame_timeout_s=0.5, idle_timeout_s=60)

    async def scenario() -> tuple[bool, str]:
        silent = [await Conn.open(runtime.iso_port, f"127.0.0.{3 + n // 2}") for n in range(6)]
        first_try = await Conn.open(runtime.iso_port, "127.0.0.2")
        refused = await first_try.outcome() is None
        for conn in silent:  # each is closed by the host, not by us
            assert await conn.outcome() is None
        good = await Conn.open(runtime.iso_port, "127.0.0.2")
        answer = await good.request(echo("000077"))
        good.close()
        return refused, "none" if answer is None else answer["39"]

    assert run(scenario(), timeout=30) == (True, "00")


# -- clock commands ------------------------------------------------------------------------------


def admin(runtime: HostRuntime, method: str, path: str, raw: bytes | None = None,
          timeout: float = 20) -> tuple[int, Any]:
    """One blocking admin call: (status, parsed JSON body)."""
    req = urllib.request.Request(f"http://127.0.0.1:{runtime.admin_port}{path}", data=raw,
                                 method=method)
    req.add_header("Authorization", f"Bearer {runtime.admin_token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


BAD_MOVES = [
    ("/clock/advance", b'{"seconds": NaN}'),
    ("/clock/advance", b'{"seconds": Infinity}'),
    ("/clock/advance", b'{"seconds": -Infinity}'),
    ("/clock/advance", b'{"seconds": 1e308}'),
    ("/clock/advance", b'{"days": 1000000000}'),
    ("/clock/advance", b'{"hours": ' + b"9" * 400 + b"}"),
    ("/clock/advance", b'{"days": 367}'),
    ("/clock/advance", b'{"business_days": 100000}'),
    ("/clock/set", b'{"instant": "9999-12-31T23:00:00-05:00"}'),
    ("/clock/set", b'{"instant": "9999-01-01T00:00:00Z"}'),
    ("/clock/set", b'{"instant": "2026-03-16T10:30:00Z"}'),
]
"""Clock moves that are not numbers, cannot be represented, or go past 366 days."""


def test_clock_moves_out_of_range_are_400_with_a_json_error(real_host: Any,
                                                            run: Any) -> None:
    """NaN, infinite, huge and over-the-limit moves answer 400 {"error": ...} and leave the
    clock where it was, where they answered 500 or blocked the host before."""
    runtime, _, clock = real_host()

    async def calls() -> list[tuple[int, bool]]:
        out = []
        for path, raw in BAD_MOVES:
            status, body = await asyncio.to_thread(admin, runtime, "POST", path, raw)
            out.append((status, isinstance(body.get("error"), str)))
        return out

    assert run(calls(), timeout=60) == [(400, True)] * len(BAD_MOVES)
    assert clock.now() == NOW


def test_a_long_clock_move_lets_iso_requests_through(real_host: Any, run: Any) -> None:
    """A 300-day move runs in slices: an echo sent after the move began is answered on the
    move's second day (DE15), not after its 300 days."""
    runtime, _, clock = real_host()
    began, go_on = threading.Event(), threading.Event()

    def first_day_event(at: datetime) -> None:
        began.set()
        go_on.wait(20)

    clock.schedule(NOW + timedelta(hours=1), first_day_event)

    async def scenario() -> tuple[int, str]:
        move = asyncio.ensure_future(asyncio.to_thread(
            admin, runtime, "POST", "/clock/advance", b'{"days": 300}', 60))
        await asyncio.to_thread(began.wait, SILENCE_S)
        conn = await Conn.open(runtime.iso_port)
        conn.send(echo("000321"))
        go_on.set()
        answer = await conn.outcome()
        conn.close()
        status, _ = await move
        assert answer is not None
        return status, answer.get("15", "")

    status, business_date = run(scenario(), timeout=90)
    assert status == 200 and clock.now() == NOW + timedelta(days=300)
    assert business_date in {"0314", "0315", "0316"}, business_date
