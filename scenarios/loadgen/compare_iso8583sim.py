"""poslab-host against iso8583sim's mock host, under iso8583sim's own load generator.

::

    python -m scenarios.loadgen.compare_iso8583sim [--iso8583sim PATH] [--rounds 3]
        [--count 4000] [--concurrency 50] [--connections 10] [--json FILE]

``make bench-compare`` (and ``make bench``) builds iso8583sim in a virtual environment of its
own and runs this. In one sitting it alternates, ``--rounds`` times:

1. ``iso8583sim serve`` (stateless: approves everything, stores nothing) under
   ``iso8583sim load -n 4000 -c 50 --connections 10``;
2. ``poslab-host`` on a fresh SQLite ledger (``synchronous = FULL``, each answer sent only after
   its commit) under the same load.

and reports each side's msg/s (as iso8583sim's load generator measures it), the ratio per round
and its median, and the CPU per message of the server process and of the load generator.

iso8583sim is AGPL-licensed: it is only ever run as an external program, never imported.

What the load sends: 0100 authorisations of USD 10.00 on card 4111 1111 1111 1111 (expiry
12/26) from terminal ``TERM0001`` of merchant ``"MERCHANT123456 "`` (15 characters, the last a
space), ISO 8583:1987 ASCII with a binary bitmap behind a 2-byte binary length, which is
poslab's default wire profile. The host here gets a config that enrols exactly that merchant
and terminal and accepts any currency, and a simulated clock frozen at
:data:`HOST_CLOCK_START`, so that the card is not expired whatever the date of the run. A round
counts only when every one of its requests was answered 00; otherwise the run stops with
status 1 and says why.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scenarios.loadgen.procs import ServerFailed, ServerProcess, python_module, tree_cpu_seconds

HOST_CLOCK_START = "2026-06-01T10:00:00+00:00"
"""The host's simulated, frozen business clock: before the load's card expiry (12/26)."""

HOST_CONFIG = """\
# poslab-host for the iso8583sim comparison: the merchant and terminal iso8583sim's load sends.
[host]
sqlite_synchronous = "FULL"  # every answer only after its commit is on disk

[[merchants]]
id = "MERCHANT123456 "
currencies = ["*"]
terminals = ["TERM0001"]
"""

DEFAULT_SIM = Path(".venv-iso8583sim/bin/iso8583sim")
READY_TIMEOUT_S = 30.0


class CompareError(RuntimeError):
    """A side could not be measured; the text says which and why."""


@dataclass(frozen=True)
class LoadFigures:
    """One ``iso8583sim load`` run as it reported it, plus the CPU each process used.

    :ivar server_cpu_us: CPU of the server process per answered message, in µs.
    :ivar load_cpu_us: CPU of the load generator per answered message, in µs.
    """

    requests: int
    responses: int
    timeouts: int
    errors: int
    msg_per_s: float
    p50_ms: float
    p99_ms: float
    codes: dict[str, int]
    server_cpu_us: float | None = None
    load_cpu_us: float | None = None


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def parse_load_report(text: str) -> LoadFigures:
    """The figures of ``iso8583sim load``'s report table (its rich text output)."""
    rows: dict[str, str] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│|┃]", line) if c.strip()]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    try:
        codes = {code: int(_number(n)) for code, n in
                 re.findall(r"([0-9A-Z?]{2}): ([\d,]+)", rows.get("Response codes", ""))}
        return LoadFigures(
            requests=int(_number(rows["Requests"])), responses=int(_number(rows["Responses"])),
            timeouts=int(_number(rows["Timeouts"])), errors=int(_number(rows["Errors"])),
            msg_per_s=_number(rows["Throughput"].split()[0]),
            p50_ms=_number(rows["Latency p50"].split()[0]),
            p99_ms=_number(rows["Latency p99"].split()[0]), codes=codes)
    except (KeyError, ValueError, IndexError):
        tail = " / ".join(text.strip().splitlines()[-5:])
        raise CompareError(f"cannot read iso8583sim load's report: {tail[-400:]}") from None


def _plain_env() -> dict[str, str]:
    """iso8583sim prints with rich: a wide, colourless table is the one we can read."""
    return {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def run_load(sim: Path, port: int, server_pid: int, args: argparse.Namespace,
             startup_s: float = 0.0) -> LoadFigures:
    """``iso8583sim load`` against ``127.0.0.1:port``; CPU of both processes over the run (the
    load generator's less ``startup_s``, what it spends before its first request)."""
    argv = [str(sim), "load", "--port", str(port), "-n", str(args.count),
            "-c", str(args.concurrency), "--connections", str(args.connections)]
    server_before = _server_cpu(server_pid)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=_plain_env())
    assert proc.stdout is not None
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)  # its own CPU, which Popen.wait would not give
    proc.returncode = os.waitstatus_to_exitcode(status)
    server_after = _server_cpu(server_pid)
    figures = parse_load_report(output)
    answered = max(figures.responses, 1)
    server_cpu = (None if server_before is None or server_after is None
                  else (server_after - server_before) / answered * 1e6)
    load_cpu = (usage.ru_utime + usage.ru_stime - startup_s) / answered * 1e6
    return LoadFigures(**{**asdict(figures), "server_cpu_us": server_cpu,
                          "load_cpu_us": load_cpu})


def _server_cpu(pid: int) -> float | None:
    """CPU seconds of a server process and its children (a host's front processes)."""
    per_process = tree_cpu_seconds(pid)
    return sum(per_process.values()) if per_process else None


class SimServer:
    """``iso8583sim serve`` on a free port; the port is read from its first line."""

    def __init__(self, sim: Path) -> None:
        self.proc = subprocess.Popen([str(sim), "serve", "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=_plain_env())
        self.port = self._wait_port()

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def _wait_port(self) -> int:
        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        seen = b""
        deadline = time.monotonic() + READY_TIMEOUT_S
        try:
            while (left := deadline - time.monotonic()) > 0:
                if not selector.select(left):
                    break
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
                found = re.search(rb"listening on [\d.]+:(\d+)", seen)
                if found:
                    return int(found.group(1))
        finally:
            selector.close()
        self.stop()
        raise CompareError(f"iso8583sim serve did not say where it listens: "
                           f"{seen.decode(errors='replace').strip()[-300:]}")

    def stop(self) -> None:
        """Ctrl+C, as its banner says; SIGKILL if it does not go."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def measure_sim(sim: Path, args: argparse.Namespace, startup_s: float = 0.0) -> LoadFigures:
    """One round on iso8583sim's own mock host."""
    server = SimServer(sim)
    try:
        return run_load(sim, server.port, server.pid, args, startup_s)
    finally:
        server.stop()


def load_startup_cpu(sim: Path) -> float:
    """CPU seconds ``iso8583sim load`` spends on one request, start-up and all: the part of
    every run's CPU that does not grow with the message count (Python, its imports)."""
    one = argparse.Namespace(count=1, concurrency=1, connections=1)
    figures = measure_sim(sim, one)
    return (figures.load_cpu_us or 0.0) / 1e6


def measure_poslab(sim: Path, args: argparse.Namespace, startup_s: float = 0.0) -> LoadFigures:
    """One round on poslab-host with a fresh SQLite ledger in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="poslab-compare-") as tmp:
        config = Path(tmp) / "host.toml"
        config.write_text(HOST_CONFIG, encoding="utf-8")
        argv = [*python_module("host"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                "--db", str(Path(tmp) / "ledger.db"), "--config", str(config),
                "--clock", "simulated", "--start", HOST_CLOCK_START,
                "--front-processes", str(args.front_processes)]
        try:
            server = ServerProcess(argv, name="poslab-host")
        except ServerFailed as exc:
            raise CompareError(str(exc)) from None
        try:
            return run_load(sim, int(server.ready["iso_port"]), server.pid, args, startup_s)
        finally:
            server.stop()


def _check(side: str, figures: LoadFigures, count: int) -> None:
    if figures.responses != count or figures.codes != {"00": count}:
        raise CompareError(f"{side}: {figures.responses} of {count} answered, response codes "
                           f"{figures.codes}, {figures.timeouts} time-outs, {figures.errors} "
                           f"errors; the comparison needs every request approved")


def compare(sim: Path, args: argparse.Namespace, out: Any = sys.stdout) -> dict[str, Any]:
    """Alternate the two sides ``args.rounds`` times; the figures and the median ratio."""
    rounds: list[dict[str, Any]] = []
    startup_s = load_startup_cpu(sim)
    print(f"iso8583sim load start-up: {startup_s * 1000:.0f} ms CPU (taken off its figures)",
          file=out, flush=True)
    for n in range(1, args.rounds + 1):
        figures = {}
        for side, measure in (("iso8583sim", measure_sim), ("poslab", measure_poslab)):
            result = measure(sim, args, startup_s)
            _check(side, result, args.count)
            figures[side] = result
            print(f"round {n} {side:<10} {_line(result)}", file=out, flush=True)
        rounds.append({"round": n, **{k: asdict(v) for k, v in figures.items()},
                       "ratio": figures["poslab"].msg_per_s / figures["iso8583sim"].msg_per_s})
    ratios: list[float] = [float(r["ratio"]) for r in rounds]
    return {"load": {"count": args.count, "concurrency": args.concurrency,
                     "connections": args.connections, "startup_cpu_s": startup_s},
            "rounds": rounds, "median_ratio": statistics.median(ratios)}


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _line(f: LoadFigures) -> str:
    return (f"{f.msg_per_s:>8,.0f} msg/s  p50 {f.p50_ms:6.2f} ms  p99 {f.p99_ms:6.2f} ms  "
            f"server CPU {_us(f.server_cpu_us)} µs/msg  load generator CPU "
            f"{_us(f.load_cpu_us)} µs/msg")


def render(result: dict[str, Any]) -> str:
    """The comparison as a Markdown table (docs/performance.md, "Against iso8583sim")."""
    lines = ["| Round | iso8583sim msg/s | poslab msg/s | Ratio | iso8583sim CPU µs/msg "
             "(server + load) | poslab CPU µs/msg (server + load) |",
             "|---|---|---|---|---|---|"]
    for r in result["rounds"]:
        sim, pos = r["iso8583sim"], r["poslab"]
        lines.append(f"| {r['round']} | {sim['msg_per_s']:,.0f} | {pos['msg_per_s']:,.0f} | "
                     f"{r['ratio']:.2f} | {_us(sim['server_cpu_us'])} + "
                     f"{_us(sim['load_cpu_us'])} | {_us(pos['server_cpu_us'])} + "
                     f"{_us(pos['load_cpu_us'])} |")
    lines.append(f"\nmedian ratio poslab / iso8583sim: {result['median_ratio']:.2f}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compare_iso8583sim",
        description="poslab-host (SQLite, synchronous=FULL) against iso8583sim serve, both "
                    "under iso8583sim load, alternated.")
    p.add_argument("--iso8583sim", type=Path, default=DEFAULT_SIM, metavar="PATH",
                   help=f"the iso8583sim program (default {DEFAULT_SIM}, built by make "
                        "bench-compare)")
    p.add_argument("--rounds", type=int, default=3, help="alternations (default 3)")
    p.add_argument("--count", "-n", type=int, default=4000, help="requests per run")
    p.add_argument("--concurrency", "-c", type=int, default=50, help="requests in flight")
    p.add_argument("--connections", type=int, default=10, help="TCP connections")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--front-processes", type=int, default=0, metavar="N",
                   help="poslab-host's front processes (default 0: one process)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; 0 done, 1 a side failed, 2 a bad argument or no iso8583sim."""
    args = _parser().parse_args(argv)
    if not 0 <= args.front_processes <= 16:
        print("compare_iso8583sim: --front-processes must be 0-16", file=sys.stderr)
        return 2
    if min(args.rounds, args.count, args.concurrency, args.connections) < 1:
        print("compare_iso8583sim: --rounds, --count, --concurrency and --connections must be "
              "at least 1", file=sys.stderr)
        return 2
    if not os.access(args.iso8583sim, os.X_OK):
        print(f"compare_iso8583sim: no iso8583sim program at {args.iso8583sim}; "
              "make bench-compare installs it in .venv-iso8583sim", file=sys.stderr)
        return 2
    try:
        result = compare(args.iso8583sim, args)
    except CompareError as exc:
        print(f"compare_iso8583sim: {exc}", file=sys.stderr)
        return 1
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
