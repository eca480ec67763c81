"""poslab-bench: drive a host with N simulated terminals and report throughput and latency.

::

    poslab-bench [--host HOST:PORT | --with-host] [--terminals N] [--duration S]
                 [--mix sale=60,refund=30,void=10] [--db URL] [--ceiling] [--json FILE]
                 [--profile NAME] [--hosts N] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]

``--with-host`` (the default) starts ``poslab-host`` as a subprocess on port 0 with a temporary
SQLite ledger (or ``--db URL``) and ``--allow-unknown-terminals``, so the bench's terminals
``BN000001``... are enrolled with the default merchant profile. ``--ceiling`` also runs, in the
same invocation, a bare server that only deframes, decodes, encodes and answers with the same
codec, and prints the host's throughput as a ratio of it: on a shared, noisy machine only such
in-run ratios mean something. The generator always runs in this process, the
servers in their own. ``--hosts N`` starts N hosts on one PostgreSQL ``--db``, each serving a
partition of the merchants (:mod:`scenarios.loadgen.multihost`), and reports each and the total.
``--tls-ca`` (with ``--tls-cert``/``--tls-key`` for mutual TLS) drives a host whose ISO port is
on TLS: each terminal's connection does its handshake before the measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol import Codec, Money, Pan, currency
from scenarios.loadgen.driver import LoadRun, Tally
from scenarios.loadgen.multihost import Share, check_database, shares, write_configs
from scenarios.loadgen.procs import (
    ServerFailed,
    ServerProcess,
    python_module,
    rss_bytes,
    tree_cpu_seconds,
)
from scenarios.loadgen.report import render, summarize
from scenarios.loadgen.workload import DEFAULT_MIX, DEFAULT_PAN, UsageError, build_plans, parse_mix
from terminal.tls import client_tls


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of poslab-bench."""
    p = argparse.ArgumentParser(prog="poslab-bench", description=__doc__.split("::")[0].strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    target = p.add_mutually_exclusive_group()
    target.add_argument("--host", type=_host_port, metavar="HOST:PORT",
                        help="drive a host that is already running")
    target.add_argument("--with-host", action="store_true",
                        help="start poslab-host as a subprocess (the default)")
    p.add_argument("--host-pid", type=_positive_int, metavar="PID",
                   help="with --host: read that process's CPU and RSS from /proc")
    p.add_argument("--terminals", type=_positive_int, default=50, metavar="N")
    p.add_argument("--duration", type=_non_negative_float, default=10.0, metavar="S",
                   help="measured seconds (after --warmup)")
    p.add_argument("--warmup", type=_non_negative_float, default=1.0, metavar="S")
    p.add_argument("--mix", default=DEFAULT_MIX, help=f"request mix (default {DEFAULT_MIX})")
    p.add_argument("--db", metavar="URL", help="with --with-host: ledger path or database URL")
    p.add_argument("--config", metavar="FILE", help="with --with-host: host config file")
    p.add_argument("--front-processes", type=int, choices=range(17), metavar="N",
                   help="with --with-host: the host's front processes (poslab-host "
                        "--front-processes; default: the config's)")
    p.add_argument("--hosts", type=_positive_int, default=1, metavar="N",
                   help="with --with-host: N hosts on the one PostgreSQL --db, partitions "
                        "p1..pN, the terminals split between them, driven at once")
    p.add_argument("--profile", default="iso87-ascii", metavar="NAME", help="wire profile")
    p.add_argument("--ceiling", action="store_true",
                   help="also measure the bare codec server and print the ratio")
    p.add_argument("--idle", type=int, default=0, metavar="N",
                   help="also hold N idle connections open and report the server's RSS")
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    p.add_argument("--mid", default="BENCHMERCHANT01", help="merchant id (DE42)")
    p.add_argument("--currency", default="CNY", help="ISO 4217 alpha code")
    p.add_argument("--pan", default=DEFAULT_PAN, help="test card number")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=_non_negative_float, default=5.0, metavar="S",
                   help="per-request response timeout")
    tls = p.add_argument_group("TLS to the host (its [tls.iso], e.g. in --config; the "
                               "--ceiling server stays plain TCP)")
    tls.add_argument("--tls-ca", metavar="FILE",
                     help="connect on TLS, verifying the host's certificate against this CA")
    tls.add_argument("--tls-cert", metavar="FILE",
                     help="the terminals' PEM client certificate (mutual TLS)")
    tls.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
    return p


@dataclass
class _Measured:
    """One driven server's raw figures: its tally, the measured window and its CPU."""

    tally: Tally
    elapsed: float
    cpu_s: float | None
    rss: int | None
    split: dict[str, float] | None

    def figures(self) -> dict[str, Any]:
        """The JSON-able figures (:func:`summarize`)."""
        return summarize(self.tally, self.elapsed, cpu_s=self.cpu_s, rss=self.rss,
                         cpu_split=self.split)


async def _drive(addr: tuple[str, int], codec: Codec, args: argparse.Namespace,
                 pid: int | None, share: Share | None = None,
                 tls: ssl.SSLContext | None = None) -> _Measured:
    """Drive the server at ``addr`` with ``args.terminals`` terminals (or ``share``'s), over
    TLS with ``tls``."""
    terminals, mid, prefix = (args.terminals, args.mid, "BN") if share is None else (
        share.terminals, share.mid, share.tid_prefix)
    plans = build_plans(codec, terminals, args.mix_weights, mid=mid, currency=args.currency,
                        pan=args.pan, seed=args.seed, tid_prefix=prefix)
    run = LoadRun(addr[0], addr[1], codec, plans, request_timeout=args.timeout, tls=tls)
    idle = [socket.create_connection(addr) for _ in range(args.idle)]
    snapshots: list[dict[int, float]] = []

    def probe() -> float | None:
        # The server's process and its children (a host's front processes), summed; the
        # split per process is reported too.
        snapshots.append(tree_cpu_seconds(pid) if pid else {})
        return sum(snapshots[-1].values()) if snapshots[-1] else None

    try:
        await run.connect()
        elapsed = await run.run(args.duration, args.warmup, probe=probe)
        rss = rss_bytes(pid) if pid else None
    finally:
        run.close()
        for sock in idle:
            sock.close()
    cpu = None
    if run.probe_start is not None and run.probe_end is not None:
        cpu = run.probe_end - run.probe_start
    split = None
    if len(snapshots) == 2 and pid is not None and len(snapshots[1]) > 1:
        first, last = snapshots
        split = {"engine" if p == pid else f"front {p}": last[p] - first.get(p, 0.0)
                 for p in last}
    return _Measured(run.tally, elapsed, cpu, rss, split)


async def _measure(addr: tuple[str, int], codec: Codec, args: argparse.Namespace,
                   pid: int | None, tls: ssl.SSLContext | None = None) -> dict[str, Any]:
    return (await _drive(addr, codec, args, pid, tls=tls)).figures()


def _host_argv(args: argparse.Namespace, db: str, config: str | None = None) -> list[str]:
    argv = [*python_module("host"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--db", db, "--profile", args.profile, "--allow-unknown-terminals"]
    config = config or args.config
    if config:
        argv += ["--config", config]
    if args.front_processes is not None:
        argv += ["--front-processes", str(args.front_processes)]
    return argv


def _run_server(name: str, argv: list[str], codec: Codec, args: argparse.Namespace,
                tls: ssl.SSLContext | None = None) -> dict[str, Any]:
    server = ServerProcess(argv, name=name)
    try:
        figures = asyncio.run(_measure(("127.0.0.1", int(server.ready["iso_port"])), codec, args,
                                       server.pid, tls))
    finally:
        status = server.stop()
    figures["server_exit_status"] = status
    return figures


def _run_hosts(db: str, codec: Codec, args: argparse.Namespace
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``--hosts N``: N hosts of partitions p1..pN on ``db``, started one after the other (the
    first creates the schema) and driven at the same time; the figures of each, and in total
    (CPU summed, per process)."""
    every = shares(args.hosts, args.terminals, args.mid)
    tls = _host_tls(args)  # one context for every host's terminals
    servers: list[ServerProcess] = []
    with tempfile.TemporaryDirectory(prefix="poslab-bench-hosts-") as directory:
        configs = write_configs(args.config, every, Path(directory))
        try:
            for share, config in zip(every, configs, strict=True):
                servers.append(ServerProcess(_host_argv(args, db, str(config)),
                                             name=f"poslab-host {share.partition}"))

            async def drive_all() -> list[_Measured]:
                return list(await asyncio.gather(*(
                    _drive(("127.0.0.1", int(server.ready["iso_port"])), codec, args,
                           server.pid, share, tls)
                    for server, share in zip(servers, every, strict=True))))

            measured = asyncio.run(drive_all())
        finally:
            statuses = [server.stop() for server in servers]
    per_host = [{"partition": share.partition, "mid": share.mid,
                 "terminals": share.terminals, **one.figures(), "server_exit_status": status}
                for share, one, status in zip(every, measured, statuses, strict=True)]
    cpus = [one.cpu_s for one in measured]
    split = {f"{share.partition} {name}": seconds
             for share, one in zip(every, measured, strict=True)
             for name, seconds in (one.split or {"engine": one.cpu_s or 0.0}).items()}
    total = summarize(Tally.merged([one.tally for one in measured]),
                      sum(one.elapsed for one in measured) / len(measured),
                      cpu_s=None if None in cpus else sum(c or 0.0 for c in cpus),
                      cpu_split=split)
    return per_host, total


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the configured measurements; returns every figure."""
    codec = Codec(args.profile)
    result: dict[str, Any] = {
        "terminals": args.terminals, "duration_s": args.duration, "mix": args.mix_weights,
        "profile": args.profile,
    }
    if args.ceiling:
        result["ceiling"] = _run_server(
            "ceiling", [*python_module("scenarios.loadgen.ceiling"), "--profile", args.profile],
            codec, args)
    if args.host is not None:
        result["target"] = f"{args.host[0]}:{args.host[1]}"
        result["host"] = asyncio.run(_measure(args.host, codec, args, args.host_pid,
                                              _host_tls(args)))
    else:
        result["target"] = "poslab-host subprocess"
        db = args.db
        server_dir = None
        if db is None:
            server_dir = tempfile.TemporaryDirectory(prefix="poslab-bench-db-")
            db = str(Path(server_dir.name) / "bench.db")
        result["db"] = "temporary SQLite file" if args.db is None else _safe_url(db)
        try:
            if args.hosts > 1:
                result["hosts"], result["host"] = _run_hosts(db, codec, args)
            else:
                result["host"] = _run_server("poslab-host", _host_argv(args, db), codec, args,
                                             _host_tls(args))
        finally:
            if server_dir is not None:
                server_dir.cleanup()
    if args.ceiling and result["ceiling"]["msg_per_s"]:
        result["ratio_to_ceiling"] = round(
            result["host"]["msg_per_s"] / result["ceiling"]["msg_per_s"], 3)
    return result


def _host_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context of the connections to the host (``--tls-*``), or None: plain TCP."""
    return args.tls.ssl_context() if args.tls is not None else None


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, cred = head.partition("://")
    user = cred.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 on success, 2 on bad arguments, 1 when a server fails."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.mix_weights = parse_mix(args.mix)
        Codec(args.profile)
        Money(1, args.currency)
        currency(args.currency)
        if not args.pan.isdigit() or not Pan(args.pan).luhn_ok():
            raise UsageError("--pan: not a card number that passes its check digit")
        args.tls = client_tls(args.tls_ca, args.tls_cert, args.tls_key)
    except ValueError as exc:  # UsageError is a ValueError; so are profile/currency/TLS errors
        parser.error(str(exc))
    if args.idle < 0:
        parser.error("--idle: must be >= 0")
    if args.idle and args.tls is not None:
        parser.error("--idle holds plain TCP connections: leave it out with --tls-*")
    if args.host is not None and (args.db or args.config):
        parser.error("--db and --config only apply with --with-host")
    if args.host_pid and args.host is None:
        parser.error("--host-pid only applies with --host")
    if len(args.mid) != 15:
        parser.error(f"--mid: must be 15 characters, got {len(args.mid)}")
    if args.hosts != 1:
        if args.host is not None:
            parser.error("--hosts only applies with --with-host")
        if args.idle:
            parser.error("--idle applies to one host: leave it out with --hosts")
        try:
            shares(args.hosts, args.terminals, args.mid)
            check_database(args.db)
        except UsageError as exc:
            parser.error(str(exc))
    try:
        result = bench(args)
    except UsageError as exc:  # --hosts: a --config that cannot be read
        parser.error(str(exc))
    except ServerFailed as exc:
        print(f"poslab-bench: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"poslab-bench: cannot reach the host: {exc}", file=sys.stderr)
        return 1
    if "ceiling" in result:
        print(render("ceiling (bare codec server)", result["ceiling"]))
    for one in result.get("hosts", ()):
        print(render(f"host {one['partition']} ({result['target']}, merchant {one['mid']}, "
                     f"{one['terminals']} terminals)", one))
    if "hosts" in result:
        print(render(f"total ({len(result['hosts'])} hosts on one database)", result["host"]))
    else:
        print(render(f"host ({result['target']})", result["host"]))
    if "ratio_to_ceiling" in result:
        print(f"host / ceiling: {result['ratio_to_ceiling']:.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
