"""SIGTERM in the middle of load: the host stops accepting, answers or rolls
back what is in flight, writes no half frame, and exits 0; the ledger then matches every
terminal's view once in-flight requests are resolved against a restarted host. Runs on SQLite
and on PostgreSQL (``pg_url``: skipped without ``POSLAB_TEST_PG_URL``), with the one-process
host and with front processes (``--front-processes 2``: the fronts drain and exit first)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import pytest

from scenarios.admin import verify
from scenarios.loadgen.hostctl import MID, admin, start_host, terminal_problems
from scenarios.loadgen.journal import JournalingTerminal

pytest.importorskip("host.service", reason="the host engine (host.service) has not landed")
pytestmark = pytest.mark.long


@pytest.mark.parametrize("fronts", [0, 2])
def test_sigterm_mid_load_exits_cleanly(ledger_db: str, run: Callable[..., Any],
                                        verify_offline: Callable[[], tuple[int, str]],
                                        fronts: int) -> None:
    """SIGTERM under load: exit 0, 0 partial frames, and terminal views reconcile."""
    db = ledger_db
    server = start_host(db, extra=["--front-processes", str(fronts)])
    port = int(server.ready["iso_port"])
    terminals = [JournalingTerminal("127.0.0.1", port, f"ST{i:06d}", MID, timeout=5.0)
                 for i in range(6)]
    answered_before = asyncio.Event()

    async def drive(term: JournalingTerminal) -> None:
        while True:
            entry = await term.sale(1500)
            if entry.state == "in_flight":
                return  # the host is going away: stop like a terminal whose link dropped
            answered_before.set()

    async def scenario() -> int:
        tasks = [asyncio.ensure_future(drive(t)) for t in terminals]
        await answered_before.wait()
        await asyncio.sleep(0.2)  # let every terminal have a request in flight
        server.proc.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        status = await loop.run_in_executor(None, server.proc.wait, 20)
        await asyncio.gather(*tasks)
        return status

    status = run(scenario(), timeout=60)
    server.close()
    assert status == 0
    assert sum(t.counters.partial_frames for t in terminals) == 0
    assert sum(t.counters.garbled for t in terminals) == 0

    host = start_host(db)
    try:
        for term in terminals:
            term.port = int(host.ready["iso_port"])
            for entry in term.in_flight:
                assert run(term.resolve(entry, "repeat"))
        client = admin(host)
        problems = [p for t in terminals for p in terminal_problems(client, t)]
        assert problems == []
        assert client.fetch(verify()).ok
    finally:
        host.stop()
    status, output = verify_offline()
    assert status == 0, f"poslab-host ledger verify: {output}"
