"""CPU cost of the host's service alone, in-process, no sockets: ``python -m
scenarios.loadgen.profile_service [--count N] [--batch B] [--mix ...] [--profile]``.

It books ``--count`` requests (the bench's sale/refund/void mix, decoded once up front) through
:class:`host.service.HostService` on a fresh SQLite file (``synchronous=FULL``), ``--batch``
at a time through the same group-commit batch runner the server uses (``--batch 1`` calls
``handle`` per request), and prints CPU and wall microseconds per message and the number of
SQL statements per message; on PostgreSQL also the round trips per message (the calls into
psycopg that wait for the server: each ``execute`` and ``executemany``, COMMIT and ROLLBACK,
counted in one more untimed run without the statement counter, which would turn off the
request path's fast path), and the CPU of the PostgreSQL server process that served the
timed run (the host's one pooled connection; read from ``/proc``, so the server must run on
the same machine). ``--profile`` adds the top of a cProfile (``--sort``,
``--lines``). Figures are for reading, not asserting (docs/performance.md).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from protocol import Codec
from scenarios.loadgen.workload import DEFAULT_PAN, build_plans, parse_mix


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; exit 0."""
    parser = argparse.ArgumentParser(prog="python -m scenarios.loadgen.profile_service")
    parser.add_argument("--count", type=int, default=2000, help="requests to book")
    parser.add_argument("--batch", type=int, default=25, help="requests per group commit")
    parser.add_argument("--terminals", type=int, default=50)
    parser.add_argument("--mix", default="sale=60,refund=30,void=10")
    parser.add_argument("--db", help="database (default: a fresh temporary SQLite file)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key (with --profile)")
    parser.add_argument("--lines", type=int, default=25, help="cProfile lines (with --profile)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.batch < 1 or args.terminals < 1:
        parser.error("--count, --batch and --terminals must be >= 1")

    from sqlalchemy import event

    from host.clock import SystemClock
    from host.config import load_config
    from host.group_commit import batch_runner
    from host.service import HostService

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or str(Path(tmp) / "profile.db")
        service = HostService(load_config(None), db, SystemClock(),
                              allow_unknown_terminals=True)
        run = batch_runner(service) if args.batch > 1 else None
        codec = Codec()
        plans = build_plans(codec, args.terminals, parse_mix(args.mix), mid="BENCHMERCHANT01",
                            currency="CNY", pan=DEFAULT_PAN, seed=11, tid_prefix="PS")
        # Warm-up: one sale per terminal (caches, terminal rows, first batches).
        _book(service, run, codec, plans, len(plans), args.batch, sales_only=True)
        prof = cProfile.Profile() if args.profile else None
        timer = _Timer(prof)
        backend = _backend(service.engine)
        kinds = _book(service, run, codec, plans, args.count, args.batch, timer=timer)
        cpu, wall = timer.cpu, timer.wall
        server = _server_cpu(service.engine, backend)
        # Statements are counted in a second, untimed run: a cursor listener costs CPU itself.
        statements = [0]

        def counter(*_a: Any) -> None:
            statements[0] += 1

        event.listen(service.engine, "before_cursor_execute", counter)
        counted = max(args.count // 4, 1)
        _book(service, run, codec, plans, counted, args.batch)
        event.remove(service.engine, "before_cursor_execute", counter)
        trips = None
        if service.engine.dialect.driver == "psycopg":
            with _round_trips() as trips:
                _book(service, run, codec, plans, counted, args.batch)
        report = service.verify()
        service.close()
    n = args.count
    print(f"{n} requests ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}), "
          f"batch {args.batch}: CPU {cpu / n * 1e6:.0f} µs/msg, wall {wall / n * 1e6:.0f} µs/msg, "
          f"{statements[0] / counted:.1f} SQL statements/msg"
          + ("" if trips is None else f", {trips[0] / counted:.1f} round trips/msg")
          + ("" if server is None else f", PostgreSQL server CPU {server / n * 1e6:.0f} µs/msg")
          + f", verify ok={report['ok']}")
    if prof is not None:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(args.sort).print_stats(args.lines)
        print(out.getvalue())
    return 0 if report["ok"] else 1


def _backend(engine: Any) -> tuple[int, float] | None:
    """PostgreSQL: the pid of the server process behind the pooled connection, and its CPU
    seconds so far (None elsewhere, or when ``/proc`` does not show it)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    cpu = _proc_cpu(pid)
    return None if cpu is None else (pid, cpu)


def _server_cpu(engine: Any, before: tuple[int, float] | None) -> float | None:
    """CPU seconds the server process of ``before`` used since, if it is still the one behind
    the pooled connection."""
    after = _backend(engine)
    if before is None or after is None or after[0] != before[0]:
        return None
    return after[1] - before[1]


def _proc_cpu(pid: int) -> float | None:
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _round_trips() -> Iterator[list[int]]:
    """Count psycopg's calls that wait for the server while the block runs: ``[count]``."""
    import psycopg

    count = [0]
    patched = [(psycopg.Cursor, "execute"), (psycopg.Cursor, "executemany"),
               (psycopg.Connection, "commit"), (psycopg.Connection, "rollback")]
    saved = [(cls, name, getattr(cls, name)) for cls, name in patched]

    def counting(fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            return fn(*args, **kwargs)
        return call

    for cls, name, fn in saved:
        setattr(cls, name, counting(fn))
    try:
        yield count
    finally:
        for cls, name, fn in saved:
            setattr(cls, name, fn)


class _Timer:
    """Accumulates CPU and wall time (and the profile) around the service calls only."""

    def __init__(self, prof: cProfile.Profile | None) -> None:
        self.prof = prof
        self.cpu = self.wall = 0.0

    def __call__(self, fn: Any, *args: Any) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        if self.prof is not None:
            self.prof.enable()
        try:
            return fn(*args)
        finally:
            if self.prof is not None:
                self.prof.disable()
            self.cpu += time.process_time() - cpu
            self.wall += time.perf_counter() - wall


def _book(service: Any, run: Any, codec: Codec, plans: list[Any], count: int, batch: int,
          *, sales_only: bool = False, timer: Any = None) -> dict[str, int]:
    """Send ``count`` requests round-robin over the plans; feed outcomes back to the plans."""
    kinds: dict[str, int] = {}
    sent = 0
    while sent < count:
        pending = []
        for plan in plans[: min(batch, count - sent, len(plans))]:
            kind, raw, target = plan.next_request()
            if sales_only:
                kind, raw, target = "sale", plan.templates["sale"].render(plan.next_stan()), None
            pending.append((plan, kind, target, codec.decode(raw)[1]))
            sent += 1
        batch_fields = [f for *_, f in pending]
        call = run if run is not None else (lambda b: [service.handle(f) for f in b])
        replies = timer(call, batch_fields) if timer is not None else call(batch_fields)
        for (plan, kind, target, _), reply in zip(pending, replies, strict=True):
            resp = reply.response
            ok = resp is not None and resp.response_code == "00"
            plan.settle(kind, target, ok, getattr(resp, "rrn", None))
            kinds[kind] = kinds.get(kind, 0) + 1
        plans[:] = plans[len(pending):] + plans[:len(pending)]  # every terminal gets traffic
    return kinds


if __name__ == "__main__":
    sys.exit(main())
