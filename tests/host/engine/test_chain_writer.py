"""One writing host per ledger chain (host.ledger.writer_hold): a serving host holds its chain,
a second host for the same chain is refused in one line before it writes anything, another
partition starts beside it, and a holder that is going away (killed) is waited for."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from pg_schema import private_schema
from sqlalchemy import create_engine, text

from host import cli as host_cli
from host.clock import ManualClock
from host.config import load_config
from host.ledger.db import SCHEMA_LOCK_ID
from host.ledger.writer_hold import ChainBusy, hold_chain, lock_key
from host.logs import MessageLog
from host.runtime import HostRuntime, StartError
from host.sql_storage import SqlStorage
from tests.host.engine.conftest import START, config_with

HERE = f"pid {os.getpid()} on {socket.gethostname()}"


def refused(chain: str, holder: str) -> str:
    """The refusal a second writer of ``chain`` gets, the holder described as ``holder``."""
    return (f"ledger chain {chain!r} of this database is already being written by another "
            f"host ({holder}); give each host its own [server] partition")


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def holders(url: str, chain: str) -> list[tuple[int, str]]:
    """The server pid and state of each session holding ``chain``'s lock in ``url``'s schema."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar()
            key = lock_key(str(schema), chain) & 0xFFFF_FFFF_FFFF_FFFF
            rows = conn.execute(text(
                "SELECT a.pid, a.state FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
                " AND l.classid::bigint = :hi AND l.objid::bigint = :lo"),
                {"hi": key >> 32, "lo": key & 0xFFFF_FFFF}).all()
    finally:
        engine.dispose()
    return [(int(pid), str(state)) for pid, state in rows]


def never(_: float) -> None:
    """A pause that must not happen."""
    raise AssertionError("waited for a live holder past its grace")


def test_a_second_host_on_one_sqlite_file_is_refused_until_the_first_stops(
        run: Any, tmp_path: Path) -> None:
    """HostRuntime: a second host on the same SQLite file (chain main) fails to start with the
    one-line refusal naming this process; ledger verify and anchor still run beside the first
    host; once it stops, a new host starts."""
    db = str(tmp_path / "ledger.db")
    first, second, third = (HostRuntime(log=MessageLog(io.StringIO())) for _ in range(3))
    run(first.start(load_config(), db, ManualClock(START)))
    try:
        with pytest.raises(StartError) as caught:
            run(second.start(load_config(), db, ManualClock(START)))
        assert str(caught.value) == refused("main", HERE)
        assert second.iso_port == second.admin_port == 0  # it never listened
        with redirect_stdout(io.StringIO()):
            assert host_cli.main(["ledger", "verify", "--db", db]) == 0
            assert host_cli.main(["ledger", "anchor", "--db", db]) == 0
        run(first.stop())
        run(third.start(load_config(), db, ManualClock(START)))
    finally:
        for runtime in (first, second, third):  # stop() is safe twice and after a failed start
            run(runtime.stop())


def test_a_refused_host_writes_nothing(tmp_path: Path) -> None:
    """Refused while another holds the chain, SqlStorage.open(serving=True) has created neither
    the database file nor its chain key; a storage opened for tools (not serving) takes no
    hold and is not refused."""
    db = tmp_path / "ledger.db"
    hold = hold_chain(str(db), "main")
    try:
        with pytest.raises(ChainBusy, match=r"^ledger chain 'main' of this database"):
            SqlStorage.open(str(db), load_config(), serving=True)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.db.host-main.lock"]
        SqlStorage.open(str(db), load_config()).close()
    finally:
        hold.release()
    SqlStorage.open(str(db), load_config(), serving=True).close()


def test_a_live_holder_here_is_refused_without_waiting_the_full_bound(tmp_path: Path) -> None:
    """A holder that is a live process on this machine is given only the grace (here none):
    the refusal comes without a pause, and names the pid and machine the lock file records;
    another chain of the same file is not held."""
    db = str(tmp_path / "ledger.db")
    hold = hold_chain(db, "main")
    try:
        with pytest.raises(ChainBusy) as caught:
            hold_chain(db, "main", wait_s=60, grace_s=0, sleep=never)
        assert str(caught.value) == refused("main", HERE)
        hold_chain(db, "p1", grace_s=0, sleep=never).release()
    finally:
        hold.release()


def test_a_database_reached_through_a_link_has_one_hold(tmp_path: Path) -> None:
    """The same SQLite file named through a symbolic link is the same chain: refused."""
    db = tmp_path / "ledger.db"
    (tmp_path / "link.db").symlink_to(db)
    hold = hold_chain(str(db), "main")
    try:
        with pytest.raises(ChainBusy):
            hold_chain(f"sqlite:///{tmp_path / 'link.db'}", "main", grace_s=0, sleep=never)
    finally:
        hold.release()


def test_a_killed_holder_on_sqlite_is_waited_for(tmp_path: Path) -> None:
    """A lock file naming a process that has ended (a host killed with -9 that has not let go
    yet) is waited for past the grace: the new host takes the chain once it is free."""
    db = str(tmp_path / "ledger.db")
    hold = hold_chain(db, "main")
    Path(f"{db}.host-main.lock").write_text(f"{dead_pid()} {socket.gethostname()}\n")
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        hold.release()  # the killed host's lock goes

    hold_chain(db, "main", wait_s=60, grace_s=0, sleep=pause).release()
    assert len(pauses) == 1


def test_on_postgresql_one_host_per_chain_of_a_schema(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL: a second serving storage of chain main is refused naming the holder's pid,
    machine and session; partition p1 starts beside it; the hold's session sits idle (never
    idle in a transaction) outside the engine's pool; main in another schema of the same
    database is another ledger and starts; after close, main starts again."""
    main, p1 = config_with(server={}), config_with(server={"partition": "p1"})
    first = SqlStorage.open(pg_url, main, serving=True)
    try:
        with pytest.raises(ChainBusy) as caught:
            SqlStorage.open(pg_url, main, serving=True)
        head, _, tail = str(caught.value).partition("; PostgreSQL backend ")
        assert head == refused("main", HERE).partition(")")[0]
        assert tail.endswith(" from 127.0.0.1); give each host its own [server] partition")
        SqlStorage.open(pg_url, p1, serving=True).close()
        assert [state for _, state in holders(pg_url, "main")] == ["idle"]
        assert first.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        with pytest.MonkeyPatch.context() as env, private_schema(tmp_path, env) as elsewhere:
            hold_chain(elsewhere, "main", grace_s=0, sleep=never).release()
    finally:
        first.close()
    SqlStorage.open(pg_url, main, serving=True).close()


def test_a_killed_holder_on_postgresql_is_waited_for(pg_url: str) -> None:
    """A session holding the chain for a host process that has ended (its connection not yet
    closed by the server) is waited for past the grace; the chain is taken once it goes."""
    with create_engine(pg_url).connect() as probe:
        schema = str(probe.execute(text("SELECT current_schema()")).scalar())
    name = f"poslab-host {dead_pid()}@{socket.gethostname()}"
    killed = create_engine(pg_url, isolation_level="AUTOCOMMIT",
                           connect_args={"application_name": name})
    session = killed.connect()
    session.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(schema, "main")})
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        if not pauses:
            session.close()  # the server ends the session: its lock goes, soon
            killed.dispose()
        pauses.append(seconds)
        time.sleep(seconds)  # the hold's own pause between tries, not the test waiting

    try:
        hold_chain(pg_url, "main", wait_s=30, grace_s=0, sleep=pause).release()
    finally:
        session.close()
        killed.dispose()
    assert pauses


def test_a_hold_whose_session_was_ended_releases_quietly(pg_url: str) -> None:
    """A hold whose session the server ended (a restart, an administrator) has lost its lock:
    releasing it raises nothing, and the chain can be taken again."""
    hold = hold_chain(pg_url, "main")
    [(backend, _)] = holders(pg_url, "main")
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": backend}).scalar()
    engine.dispose()
    hold.release()
    hold_chain(pg_url, "main").release()


def test_lock_keys_are_stable_and_apart() -> None:
    """The advisory lock key is the same in every release (a changed derivation would let an
    old and a new host write one chain), differs per schema and chain, and is not the schema
    creation lock's."""
    assert lock_key("public", "main") == 2299331296626630764
    keys = {lock_key(s, c) for s in ("public", "t_1") for c in ("main", "p1", "p2")}
    assert len(keys) == 6 and SCHEMA_LOCK_ID not in keys
    assert all(-(2 ** 63) <= k < 2 ** 63 for k in keys)
