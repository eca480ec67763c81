"""The serving host's look at its ledger chain hold (host.hold_watch): on PostgreSQL a hold lost
with its session is taken again, or, when another host took the chain meanwhile, the host
stops; an outage is reported once; SQLite holds are not watched; the looks stop with the host.
"""

from __future__ import annotations

import io
import json
import socket
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from host.clock import ManualClock
from host.config import load_config
from host.hold_watch import CHECK_EVERY_S, EXIT_HOLD_LOST, HoldWatch
from host.ledger.writer_hold import ChainBusy, HoldCheck, hold_chain, lock_key
from host.logs import MessageLog
from host.runtime import HostRuntime
from tests.host.engine.conftest import START
from tests.host.engine.test_chain_writer import holders, never


def events(log: io.StringIO, name: str) -> list[dict[str, Any]]:
    """The log's lines whose event is ``name``."""
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    return [line for line in lines if line.get("event") == name]


def terminate(url: str, backend: int) -> None:
    """End PostgreSQL session ``backend`` as an administrator would (it is gone on return)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p, 5000)"),
                                {"p": backend}).scalar()
    finally:
        engine.dispose()


def started(run: Any, url: str, timer: Clock, log: io.StringIO,
            fatal: list[int] | None = None) -> HostRuntime:
    """A host serving ``url`` (chain main) whose hold looks are scheduled on ``timer``."""
    runtime = HostRuntime(log=MessageLog(log), hold_timer=timer,
                          on_fatal=(fatal.append if fatal is not None else None))
    run(runtime.start(load_config(), url, ManualClock(START)))
    return runtime


def look(run: Any, loop: Any, runtime: HostRuntime) -> None:
    """One look at the host's hold, as its timer would start it, waited for."""
    assert runtime.hold_watch is not None
    run(runtime.hold_watch.look().asFuture(loop))


def test_a_hold_lost_with_its_session_is_taken_again(run: Any, loop: Any, pg_url: str) -> None:
    """PostgreSQL: a look every CHECK_EVERY_S s of the host's timer; after pg_terminate_backend
    of the hold's session one look takes the lock again (one chain_hold_retaken warning naming
    the chain and the reason) and a second host for the chain is refused again; a look at a
    live session logs nothing; the looks stop with the host."""
    timer, log = Clock(), io.StringIO()
    runtime = started(run, pg_url, timer, log)
    try:
        assert [call.getTime() for call in timer.getDelayedCalls()] == [CHECK_EVERY_S]
        [(backend, _)] = holders(pg_url, "main")
        terminate(pg_url, backend)
        hold_chain(pg_url, "main", wait_s=0, grace_s=0, sleep=never).release()  # free: the gap
        look(run, loop, runtime)
        [retaken] = events(log, "chain_hold_retaken")
        assert retaken["level"] == "warning" and retaken["chain"] == "main"
        assert "terminat" in retaken["reason"] or "closed" in retaken["reason"]
        [(now, state)] = holders(pg_url, "main")
        assert now != backend and state == "idle"
        with pytest.raises(ChainBusy, match=r"^ledger chain 'main' of this database"):
            hold_chain(pg_url, "main", wait_s=0, grace_s=0, sleep=never)
        look(run, loop, runtime)  # alive: nothing more
        assert len(events(log, "chain_hold_retaken")) == 1 and not events(log, "fatal")
    finally:
        run(runtime.stop())
    assert timer.getDelayedCalls() == []
    assert holders(pg_url, "main") == []  # the new session let go with the host


def test_a_hold_taken_by_another_host_meanwhile_stops_the_host(
        run: Any, loop: Any, pg_url: str) -> None:
    """PostgreSQL: after pg_terminate_backend of the hold's session and another host's session
    taking the chain's lock, one look logs one fatal line naming the chain and that holder and
    stops the host with EXIT_HOLD_LOST; no further look is scheduled."""
    timer, log, fatal = Clock(), io.StringIO(), list[int]()
    runtime = started(run, pg_url, timer, log, fatal)
    name = f"poslab-host 4242@{socket.gethostname()}"  # another host's hold session
    other = create_engine(pg_url, isolation_level="AUTOCOMMIT",
                          connect_args={"application_name": name})
    try:
        [(backend, _)] = holders(pg_url, "main")
        terminate(pg_url, backend)
        with other.connect() as session:
            schema = str(session.execute(text("SELECT current_schema()")).scalar())
            assert session.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                   {"k": lock_key(schema, "main")}).scalar()
            [(thief, _)] = holders(pg_url, "main")
            look(run, loop, runtime)
            look(run, loop, runtime)  # stopping: a later look acts on nothing
    finally:
        other.dispose()
        run(runtime.stop())
    assert fatal == [EXIT_HOLD_LOST] == [69]
    [line] = events(log, "fatal")
    assert line["level"] == "critical" and line["chain"] == "main"
    assert line["holder"].startswith(f"pid 4242 on {socket.gethostname()}; "
                                     f"PostgreSQL backend {thief} from ")
    assert f"another host holds it now ({line['holder']})" in line["reason"]
    assert timer.getDelayedCalls() == []


def test_sqlite_holds_are_not_watched(run: Any, tmp_path: Any) -> None:
    """SQLite: a serving host schedules no look at its hold (a flock is not lost while the
    process lives)."""
    timer = Clock()
    runtime = started(run, str(tmp_path / "ledger.db"), timer, io.StringIO())
    try:
        assert runtime.hold_watch is None and timer.getDelayedCalls() == []
    finally:
        run(runtime.stop())


class ScriptedHold:
    """A hold whose looks find what the test says, in order."""

    chain = "p1"

    def __init__(self, *found: HoldCheck) -> None:
        self.found = list(found)

    def check(self) -> HoldCheck:
        """The next scripted outcome."""
        return self.found.pop(0)


def test_an_outage_is_reported_once_and_the_looks_go_on() -> None:
    """Unreachable database: the host keeps going, one chain_hold_unreachable line for three
    failed looks, the next tick tries again and reports the retake; stop() cancels the next
    look and a look in flight at the stop is dropped."""
    down = HoldCheck("unreachable", "server closed the connection unexpectedly")
    hold = ScriptedHold(down, down, down, HoldCheck("retaken", down.reason), HoldCheck("held"),
                        HoldCheck("taken", "x"))
    timer, log, fatal = Clock(), io.StringIO(), list[int]()
    pending: list[Deferred[HoldCheck]] = []

    def run_later(check: Any) -> Deferred[HoldCheck]:
        if len(hold.found) == 1:  # the last look is still in flight at the stop
            pending.append(Deferred())
            return pending[-1]
        return succeed(check())

    watch = HoldWatch(hold, timer, run_later, MessageLog(log), fatal.append)  # type: ignore[arg-type]
    watch.start()
    timer.pump([CHECK_EVERY_S] * 6)
    assert [e["event"] for e in map(json.loads, log.getvalue().splitlines())] == [
        "chain_hold_unreachable", "chain_hold_retaken"]
    assert len(pending) == 1 and len(timer.getDelayedCalls()) == 0
    watch.stop()
    pending[0].callback(hold.check())
    assert fatal == [] and timer.getDelayedCalls() == []
