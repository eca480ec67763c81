"""Fuzz a running poslab-host over TCP: seeded, bounded, one outcome per frame.

The fuzzer builds valid ISO 8583 (1987, ASCII, 2-byte length header) frames with plain
pyiso8583 and the spec written below, not with poslab's codec, then mutates most of them: bit
flips, byte swaps, truncation, wrong or response MTIs, missing fields, junk in numeric
fields, bad length headers, trailing junk. Each frame goes on its own connection, and the
host must give it exactly one outcome within a bound: an answer, or a close. Silence (neither
before the bound) is the failure this looks for; after an answer the fuzzer sends an echo on
the same connection, whose reply must be the next frame (a second answer to one frame would
show up here). Alongside, a flood client pipelines echo frames without reading any answer,
and the host's resident memory is sampled from ``/proc`` throughout.

Run it (it starts its own host on SQLite unless ``--db`` says otherwise)::

    .venv/bin/python tests/fuzz/fuzz_host.py --frames 204000 --seed 1 --flood-mb 10

The suite runs a small seeded run (tests/fuzz/test_fuzz_host.py); ``make fuzz`` runs the long
one. The exit status is 0 when no frame met silence and the memory bound held.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import iso8583

from host.config import default_config_text
from scenarios.loadgen.procs import ServerProcess, python_module, rss_bytes


def _fixed(n: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": n, "desc": desc}


def _var(digits: int, n: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "ascii", "len_enc": "ascii", "len_type": digits, "max_len": n,
            "desc": desc}


SPEC: dict[str, dict[str, Any]] = {
    "h": _fixed(0, "Message header"),
    "t": _fixed(4, "Message type"),
    "p": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8,
          "desc": "Primary bitmap"},
    "1": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8,
          "desc": "Secondary bitmap"},
    "2": _var(2, 19, "PAN"),
    "3": _fixed(6, "Processing code"),
    "4": _fixed(12, "Amount"),
    "7": _fixed(10, "Transmission date and time"),
    "11": _fixed(6, "STAN"),
    "12": _fixed(6, "Local time"),
    "13": _fixed(4, "Local date"),
    "14": _fixed(4, "Expiry"),
    "15": _fixed(4, "Settlement date"),
    "22": _fixed(3, "Entry mode"),
    "25": _fixed(2, "Condition code"),
    "37": _fixed(12, "RRN"),
    "38": _fixed(6, "Approval code"),
    "39": _fixed(2, "Response code"),
    "41": _fixed(8, "Terminal id"),
    "42": _fixed(15, "Merchant id"),
    "44": _var(2, 25, "Additional response data"),
    "48": _var(3, 999, "Additional data, private"),
    "49": _fixed(3, "Currency"),
    "54": _var(3, 120, "Additional amounts"),
    "60": _var(3, 999, "Private 60"),
    "62": _var(3, 999, "Private 62"),
    "63": _var(3, 999, "Private 63"),
    "70": _fixed(3, "Network management code"),
    "90": _fixed(42, "Original data elements"),
}
"""ISO 8583:1987 ASCII as the host's ``iso87-ascii`` profile speaks it, written out here."""

TID, MID = "TERM0001", "MERCHANT0000001"
PAN = "4111111111111111"
MTIS = ["0100", "0110", "0120", "0121", "0200", "0201", "0210", "0220", "0230", "0320",
        "0400", "0401", "0410", "0420", "0421", "0500", "0510", "0800", "0810", "0820", "0830",
        "9999", "0000", "02A0", "    "]
"""MTIs a mutation may swap in: handled, unhandled, responses, and nonsense."""


# -- valid frames --------------------------------------------------------------------------------


def _trace(mti: str, stan: int) -> dict[str, str]:
    return {"t": mti, "7": "1203101500", "11": f"{stan % 1000000:06d}", "41": TID, "42": MID}


def valid_fields(rng: random.Random, stan: int) -> dict[str, str]:
    """One valid request: sale, refund, reversal, echo or sign-on."""
    kind = rng.choice(["sale", "sale", "refund", "reversal", "echo", "sign_on"])
    if kind in ("echo", "sign_on"):
        return {**_trace("0800", stan), "70": "301" if kind == "echo" else "001"}
    card = {"2": PAN, "14": "3012", "22": "012", "25": "00", "12": "101500", "13": "1203",
            "4": f"{rng.randint(1, 99999):012d}", "49": "156"}
    if kind == "sale":
        return {**_trace("0200", stan), **card, "3": "000000"}
    if kind == "refund":
        rrn = f"{rng.randint(1, 10**9):012d}"  # unknown: declined, still one answer
        return {**_trace("0200", stan), **card, "3": "200000", "37": rrn}
    return {**_trace("0400", stan), **card, "3": "000000"}


def encode(fields: dict[str, str]) -> bytes:
    """The body of ``fields`` under :data:`SPEC` (no length header)."""
    body, _ = iso8583.encode(dict(fields), SPEC)
    return bytes(body)


def framed(body: bytes) -> bytes:
    """``body`` with its 2-byte big-endian length header."""
    return struct.pack("!H", len(body)) + body


# -- mutations -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One fuzz frame: the bytes to send and whether its framing is intact (then an answer
    must be the only one, checked with a follow-up echo)."""

    data: bytes
    mutation: str
    intact: bool


def _flip_bits(rng: random.Random, body: bytes) -> bytes:
    out = bytearray(body)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _replace_bytes(rng: random.Random, body: bytes) -> bytes:
    out = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def _bad_numeric(rng: random.Random, fields: dict[str, str]) -> dict[str, str]:
    numeric = [k for k in ("3", "4", "7", "11", "12", "13", "14", "49", "70") if k in fields]
    key = rng.choice(numeric)
    value = list(fields[key])
    value[rng.randrange(len(value))] = rng.choice("AZ x-")
    return {**fields, key: "".join(value)}


def make_case(rng: random.Random, stan: int) -> Case:
    """A valid frame, or one mutation of it."""
    fields = valid_fields(rng, stan)
    kind = rng.choices(
        ["valid", "flip", "replace", "truncate_fixed", "truncate_short", "mti", "drop_field",
         "bad_numeric", "len_zero", "len_short", "len_long", "len_huge", "junk_after",
         "random_bytes"],
        weights=[8, 14, 10, 8, 5, 12, 12, 8, 3, 5, 5, 3, 4, 3])[0]
    if kind == "mti":
        fields = {**fields, "t": rng.choice(MTIS)}
    elif kind == "drop_field":
        droppable = [k for k in fields if k != "t"]
        for key in rng.sample(droppable, rng.randint(1, min(2, len(droppable)))):
            del fields[key]
    elif kind == "bad_numeric":
        fields = _bad_numeric(rng, fields)
    body = encode(fields)
    if kind == "flip":
        return Case(framed(_flip_bits(rng, body)), kind, True)
    if kind == "replace":
        return Case(framed(_replace_bytes(rng, body)), kind, True)
    if kind == "truncate_fixed":  # a shorter body with a matching header
        return Case(framed(body[:rng.randrange(1, len(body))]), kind, True)
    if kind == "truncate_short":  # the header announces more than ever comes
        return Case(framed(body)[:rng.randrange(3, len(body) + 2)], kind, False)
    if kind == "len_zero":
        return Case(b"\x00\x00" + body, kind, False)
    if kind == "len_short":
        return Case(struct.pack("!H", rng.randrange(1, len(body))) + body, kind, False)
    if kind == "len_long":
        return Case(struct.pack("!H", len(body) + rng.randint(1, 64)) + body, kind, False)
    if kind == "len_huge":
        return Case(struct.pack("!H", rng.randint(8193, 65535)) + body, kind, False)
    if kind == "junk_after":
        return Case(framed(body) + bytes(rng.randrange(256) for _ in range(rng.randint(1, 9))),
                    kind, False)
    if kind == "random_bytes":
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(4, 200)))
        return Case(framed(junk), kind, True)
    return Case(framed(body), kind, True)


# -- one frame, one outcome --------------------------------------------------------------------


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame's body, or None at EOF (also mid-frame)."""
    try:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
        return await reader.readexactly(n)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def _mti_stan(body: bytes) -> tuple[str, str | None]:
    try:
        fields, _ = iso8583.decode(body, SPEC)
        return fields.get("t", ""), fields.get("11")
    except iso8583.DecodeError:
        return body[:4].decode("ascii", "replace"), None


async def outcome(port: int, case: Case, bound_s: float) -> str:
    """``answered``, ``closed``, ``silence`` (the failure), or ``extra_answer`` when a frame
    with intact framing was answered more than once."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(case.data)
        try:
            async with asyncio.timeout(bound_s):
                first = await _read_frame(reader)
                if first is None:
                    return "closed"
                if not case.intact:
                    return "answered"
                writer.write(framed(encode({**_trace("0800", 999999), "70": "301"})))
                after = await _read_frame(reader)
        except TimeoutError:
            return "silence"
        if after is not None and _mti_stan(after) != ("0810", "999999"):
            return "extra_answer"
        return "answered"
    finally:
        writer.transport.abort()


# -- flood ---------------------------------------------------------------------------------------


async def flood(port: int, megabytes: float, done: asyncio.Event) -> int:
    """Pipeline echo frames without reading any answer until ``megabytes`` are written (the
    host is expected to stop reading, so most stay in this process's buffers), hold the
    connection until ``done``, then drop it. Returns the frames written."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    one = framed(encode({**_trace("0800", 1), "41": "FLOOD001", "70": "301"}))
    count = int(megabytes * 1_000_000) // len(one)
    chunk = one * 1000
    for _ in range(count // 1000):
        writer.write(chunk)
    await done.wait()
    writer.transport.abort()
    return count


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Report:
    """What a run found."""

    frames: int = 0
    seed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    by_mutation: dict[str, Counter[str]] = field(default_factory=dict)
    silent_examples: list[str] = field(default_factory=list)
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_end_mb: float = 0.0
    flood_frames: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No silence and no frame answered twice."""
        return not self.outcomes["silence"] and not self.outcomes["extra_answer"]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able summary."""
        return {"frames": self.frames, "seed": self.seed, "seconds": round(self.seconds, 1),
                "outcomes": dict(self.outcomes),
                "by_mutation": {k: dict(v) for k, v in sorted(self.by_mutation.items())},
                "silent_examples": self.silent_examples[:5],
                "rss_mb": {"start": self.rss_start_mb, "peak": self.rss_peak_mb,
                           "end": self.rss_end_mb},
                "flood_frames_written": self.flood_frames}


def _mb(pid: int) -> float:
    rss = rss_bytes(pid)
    return round((rss or 0) / 2**20, 1)


async def fuzz(port: int, pid: int, frames: int, seed: int, *, concurrency: int = 24,
               bound_s: float = 3.0, flood_mb: float = 0.0,
               progress: Callable[[int], None] | None = None) -> Report:
    """Send ``frames`` seeded cases to the host at ``port`` (process ``pid``)."""
    rng = random.Random(seed)
    report = Report(frames=frames, seed=seed, rss_start_mb=_mb(pid))
    report.rss_peak_mb = report.rss_start_mb
    started = time.monotonic()
    flood_done = asyncio.Event()
    flooding = asyncio.ensure_future(flood(port, flood_mb, flood_done)) if flood_mb else None
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int, case: Case) -> None:
        async with gate:
            got = await outcome(port, case, bound_s)
        report.outcomes[got] += 1
        report.by_mutation.setdefault(case.mutation, Counter())[got] += 1
        if got == "silence":
            report.silent_examples.append(f"{case.mutation}: {case.data[:48].hex()}")
        if n % 500 == 0:
            report.rss_peak_mb = max(report.rss_peak_mb, _mb(pid))
            if progress is not None:
                progress(n)

    batch = 2000  # cases in memory at once
    for start in range(0, frames, batch):
        cases = [make_case(rng, n) for n in range(start, min(frames, start + batch))]
        await asyncio.gather(*(one(start + i, c) for i, c in enumerate(cases)))
    flood_done.set()
    if flooding is not None:
        report.flood_frames = await flooding
    report.rss_peak_mb = max(report.rss_peak_mb, _mb(pid))
    report.rss_end_mb = _mb(pid)
    report.seconds = time.monotonic() - started
    return report


FUZZ_LIMITS = {"frame_deadline_s": "1", "first_frame_timeout_s": "1"}
"""Shorter timers for the fuzz host, so frames that never complete are closed quickly."""


def start_host(db: str | None, workdir: Path) -> ServerProcess:
    """poslab-host with the shipped config, its frame timers shortened (:data:`FUZZ_LIMITS`)."""
    text = default_config_text()
    for key, value in FUZZ_LIMITS.items():
        lines = [f"{key} = {value}" if line.split("=")[0].strip() == key else line
                 for line in text.splitlines()]
        text = "\n".join(lines) + "\n"
    config = workdir / "fuzz.toml"
    config.write_text(text)
    return ServerProcess([*python_module("host"), "--config", str(config),
                          "--db", db or str(workdir / "fuzz.db"), "--allow-unknown-terminals",
                          "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                          "--log-file", str(workdir / "host.log")], name="poslab-host")


def main(argv: list[str] | None = None) -> int:
    """Command line: start a host, fuzz it, print the report as JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=3000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=24)
    p.add_argument("--bound", type=float, default=3.0, help="seconds before a frame is silent")
    p.add_argument("--flood-mb", type=float, default=0.0,
                   help="megabytes of echo frames one client pipelines without reading")
    p.add_argument("--db", help="ledger URL (default: an SQLite file in a temporary directory)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="poslab-fuzz-") as tmp:
        host = start_host(args.db, Path(tmp))
        try:
            report = asyncio.run(fuzz(
                host.ready["iso_port"], host.pid, args.frames, args.seed,
                concurrency=args.concurrency, bound_s=args.bound, flood_mb=args.flood_mb,
                progress=lambda n: print(f"{n} frames", file=sys.stderr, flush=True)))
        finally:
            status = host.stop()
    summary = {**report.as_dict(), "host_exit": status}
    print(json.dumps(summary, indent=2))
    return 0 if report.ok and status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
