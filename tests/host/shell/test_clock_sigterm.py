"""SIGTERM during a long clock move: the host stops at the move's next slice and exits 0,
on SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import threading
from datetime import datetime
from pathlib import Path

import pytest

from host.config import default_config_text
from protocol.admin_models import ClockView
from scenarios.admin import AdminCallError, advance_clock, clock
from scenarios.admin import BlockingAdminClient as AdminClient
from scenarios.loadgen.procs import ServerProcess, python_module

START = "2025-03-14T10:30:00+00:00"


def test_sigterm_stops_a_long_clock_move(db: str, tmp_path: Path) -> None:
    """A host busy moving its clock 30,000 days (allowed by config) stops on SIGTERM within
    seconds and exits 0; before, the move ran to its end and SIGTERM waited for it."""
    config = tmp_path / "host.toml"
    config.write_text(default_config_text().replace("max_clock_move_days = 366",
                                                    "max_clock_move_days = 36600"))
    host = ServerProcess([*python_module("host"), "--config", str(config), "--db", db,
                          "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                          "--clock", "simulated", "--start", START], name="poslab-host")
    api = AdminClient(host.ready["admin_port"], host.ready["admin_token"], timeout=60)
    outcome: list[object] = []

    def move() -> None:
        try:
            outcome.append(api.fetch(advance_clock(days=30000)))
        except AdminCallError as exc:
            outcome.append(exc.status)
        except OSError as exc:  # the host went away mid-call
            outcome.append(type(exc).__name__)

    mover = threading.Thread(target=move)
    try:
        mover.start()
        # GET /clock is answered between two slices of the move: wait until it has begun.
        for _ in range(200):
            if datetime.fromisoformat(api.fetch(clock()).now) > datetime.fromisoformat(START):
                break
        else:
            pytest.fail("the clock did not start moving")
        host.proc.send_signal(signal.SIGTERM)
        try:
            status = host.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM did not stop the host within 20 s of a long clock move")
        assert status == 0, host.stderr_tail()
    finally:
        host.stop()
        mover.join(30)
    assert outcome and outcome[0] != 200 and not isinstance(outcome[0], ClockView)
