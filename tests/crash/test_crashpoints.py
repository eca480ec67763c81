"""Deterministic crash points x terminal recovery paths.

The host SIGKILLs itself before the COMMIT, after the COMMIT but before the answer is written,
or just after the answer left. The terminal then resolves by repeating the request or by
reversing it, against a restarted host on the same ledger. Whatever the combination, the
terminal's final view equals the ledger and nothing is booked twice -- on SQLite and on
PostgreSQL (``pg_url``: skipped without ``POSLAB_TEST_PG_URL``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from host import crashpoints
from host.ledger.db import open_engine
from scenarios.admin import verify
from scenarios.loadgen.hostctl import (
    MID,
    admin,
    host_transactions,
    is_effective,
    start_host,
    terminal_problems,
)
from scenarios.loadgen.journal import JournalingTerminal
from scenarios.loadgen.procs import ServerFailed

pytest.importorskip("host.service", reason="the host engine (host.service) has not landed")

# point -> (the terminal saw the approval before the host died, the ledger has the sale)
POINTS = {"before_commit": (False, False), "after_commit_before_send": (False, True),
          "after_send": (True, True)}


@pytest.mark.parametrize("strategy", ["repeat", "reverse"])
@pytest.mark.parametrize("point", list(POINTS))
def test_crashpoint_then_recovery(point: str, strategy: str, ledger_db: str,
                                  verify_offline: Callable[[], tuple[int, str]],
                                  run: Callable[..., Any]) -> None:
    """Crash at ``point``; restart; the terminal's ``strategy`` leaves ledger == terminal view."""
    _crash_and_recover(point, strategy, ledger_db, verify_offline, run, [])


# before_commit fires in the engine, as in the one-process host; these two fire in the front.
@pytest.mark.parametrize("point", ["after_commit_before_send", "after_send"])
def test_crashpoint_with_front_processes(point: str, ledger_db: str,
                                         verify_offline: Callable[[], tuple[int, str]],
                                         run: Callable[..., Any]) -> None:
    """The same with a front process: a crash in the front takes the engine with it; a
    repeat after the restart leaves ledger == terminal view."""
    _crash_and_recover(point, "repeat", ledger_db, verify_offline, run,
                       ["--front-processes", "1"])


def _crash_and_recover(point: str, strategy: str, ledger_db: str,
                       verify_offline: Callable[[], tuple[int, str]], run: Callable[..., Any],
                       extra: list[str]) -> None:
    db = ledger_db
    crashing = start_host(db, env={"POSLAB_CRASHPOINT": point}, extra=extra)
    term = JournalingTerminal("127.0.0.1", int(crashing.ready["iso_port"]), "CP000001", MID,
                              timeout=3.0)
    entry = run(term.sale(2500))
    assert crashing.proc.wait(10) == -9, "the host did not die at the crash point"
    crashing.close()
    seen, booked = POINTS[point]
    assert (entry.state == "approved") == seen

    host = start_host(db, extra=extra)
    try:
        term.port = int(host.ready["iso_port"])
        client = admin(host)
        before = [t for t in host_transactions(client, term.tid) if is_effective(t)]
        assert len(before) == (1 if booked else 0), f"after the crash at {point}: {before}"
        rrn_seen = entry.rrn
        # after_send: the terminal got its answer; it still may repeat (unsure) or reverse
        # (customer cancels), and both must stay consistent.
        entry.state = "in_flight" if entry.state == "approved" else entry.state
        assert run(term.resolve(entry, strategy))  # type: ignore[arg-type]
        expected = "approved" if strategy == "repeat" else "reversed"
        assert entry.state == expected
        if rrn_seen is not None and strategy == "repeat":
            assert entry.rrn == rrn_seen, "a repeat after the crash must replay the same answer"
        assert terminal_problems(client, term) == []
        report = client.fetch(verify())
        assert report.ok, report.violations
    finally:
        host.stop()
    status, output = verify_offline()
    assert status == 0, f"poslab-host ledger verify: {output}"


def test_before_commit_fires_on_writing_commits_only(ledger_db: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Armed before_commit: hit by a commit that wrote only, with no cursor listener installed."""
    monkeypatch.setattr(crashpoints, "ACTIVE", "before_commit")
    hits: list[str] = []
    monkeypatch.setattr(crashpoints, "hit", hits.append)
    engine = open_engine(ledger_db)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE cp_probe (n INTEGER)"))
        crashpoints.install_before_commit(engine)
        with engine.begin() as conn:
            # a cursor listener would switch off the prepared fast path the host really runs
            assert not conn.dispatch.before_cursor_execute
            conn.execute(text("SELECT count(*) FROM cp_probe")).scalar_one()
        with engine.connect() as conn:
            conn.execute(text("INSERT INTO cp_probe VALUES (1)"))
            conn.rollback()
        assert hits == [], "a read-only or rolled-back transaction must not count"
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO cp_probe VALUES (2)"))
        assert hits == ["before_commit"]
    finally:
        engine.dispose()


def test_unknown_crashpoint_is_a_clear_start_error(tmp_path: Path) -> None:
    """A mistyped POSLAB_CRASHPOINT stops the host at start with a one-line reason."""
    with pytest.raises(ServerFailed) as info:
        start_host(tmp_path / "ledger.db", env={"POSLAB_CRASHPOINT": "before_comit"})
    text = str(info.value)
    assert "POSLAB_CRASHPOINT='before_comit'" in text and "Traceback" not in text
