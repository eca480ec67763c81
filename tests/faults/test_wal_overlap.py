"""The group committer's turn and its WAL syncer: no gap between batches, replies only after the
fsync that covers them, a failed fsync answers nothing more, admin calls are not starved."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from host.group_commit import GroupCommitter
from host.wal_sync import WalSyncFailed
from host.worker import ServiceWorker

WAIT_S = 5.0  # how long a test waits for the other thread before calling it a failure


class RecordingService:
    """Answers each request with its STAN and records every batch and admin call, in order.

    ``hold`` blocks the first batch until set; ``ran`` is set once ``expect`` batches ran."""

    def __init__(self, expect: int = 1, hold_first: bool = False) -> None:
        self.events: list[str] = []
        self.started = threading.Event()
        self.hold = threading.Event()
        if not hold_first:
            self.hold.set()
        self.ran = threading.Event()
        self.expect = expect

    def handle(self, fields: dict[str, str]) -> str:
        raise AssertionError("called through handle_batch only")

    def handle_batch(self, batch: list[dict[str, str]]) -> list[str]:
        self.events.append("batch " + ",".join(f["11"] for f in batch))
        self.started.set()
        self.hold.wait(WAIT_S)
        if sum(e.startswith("batch") for e in self.events) >= self.expect:
            self.ran.set()
        return [f"reply-{f['11']}" for f in batch]

    def admin(self) -> str:
        self.events.append("admin")
        return "admin done"


class HeldSync:
    """A WAL sync that blocks until released (or raises ``error``); counts its calls."""

    def __init__(self, error: OSError | None = None) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.error = error
        self.calls = 0

    def close(self) -> None:
        """Nothing held."""

    def sync(self) -> None:
        self.calls += 1
        self.entered.set()
        if not self.release.wait(WAIT_S):
            raise AssertionError("the test never released the sync")
        if self.error is not None:
            raise self.error


async def _in_thread(event: threading.Event) -> bool:
    """Wait for a threading event without blocking the loop."""
    return await asyncio.to_thread(event.wait, WAIT_S)


async def _result(d: Deferred[Any]) -> Any:
    try:
        return await d.asFuture(asyncio.get_running_loop())
    except Exception as exc:  # noqa: BLE001 -- the test inspects it
        return exc


def _fired(d: Deferred[Any]) -> bool:
    return bool(d.called)


def test_queued_batches_run_back_to_back_without_the_reactor(
        worker: ServiceWorker, run: Callable[..., Any]) -> None:
    """Three queued batches run while the reactor thread is blocked: the worker does not
    wait for the loop to schedule each next batch."""
    service = RecordingService(expect=3)
    committer = GroupCommitter(worker, service, max_batch=1, continuous=True)

    async def scenario() -> tuple[bool, list[Any]]:
        ds = [committer.submit({"11": f"00000{i}"}) for i in range(1, 4)]
        all_ran = service.ran.wait(WAIT_S)  # blocks the reactor thread on purpose
        return all_ran, [await _result(d) for d in ds]

    all_ran, replies = run(scenario())
    assert all_ran, "the worker waited for the reactor between batches"
    assert replies == ["reply-000001", "reply-000002", "reply-000003"]
    assert service.events == ["batch 000001", "batch 000002", "batch 000003"]


def test_an_admin_call_runs_between_batches_of_a_stream(
        worker: ServiceWorker, run: Callable[..., Any]) -> None:
    """An admin call queued during a batch runs right after it, before the queued batches."""
    service = RecordingService(hold_first=True)
    committer = GroupCommitter(worker, service, max_batch=1, continuous=True)

    async def scenario() -> list[Any]:
        ds = [committer.submit({"11": f"00000{i}"}) for i in range(1, 5)]
        assert await _in_thread(service.started)
        admin = worker.call(service.admin)
        service.hold.set()
        return [await _result(d) for d in [admin, *ds]]

    replies = run(scenario())
    assert replies[0] == "admin done" and replies[1:] == [f"reply-00000{i}" for i in range(1, 5)]
    assert service.events == ["batch 000001", "admin", "batch 000002", "batch 000003",
                              "batch 000004"]


def test_a_reply_is_not_delivered_before_the_sync_that_covers_it(
        worker: ServiceWorker, run: Callable[..., Any]) -> None:
    """While the WAL sync is held the batch's reply stays undelivered, and the worker already
    runs the next batch; releasing the sync delivers both in order."""
    service = RecordingService()
    sync = HeldSync()
    committer = GroupCommitter(worker, service, continuous=True, wal=sync)
    assert committer.overlapped

    async def scenario() -> list[Any]:
        first = committer.submit({"11": "000001"})
        assert await _in_thread(sync.entered)
        service.ran.clear()
        second = committer.submit({"11": "000002"})
        assert await _in_thread(service.ran)  # the second batch ran beside the held sync
        assert not _fired(first) and not _fired(second)
        sync.release.set()
        return [await _result(first), await _result(second)]

    try:
        assert run(scenario()) == ["reply-000001", "reply-000002"]
    finally:
        sync.release.set()
        committer.close()
    assert service.events == ["batch 000001", "batch 000002"]
    assert committer.batches == 2


def test_a_worker_call_waits_for_the_sync_of_the_batches_before_it(
        worker: ServiceWorker, run: Callable[..., Any]) -> None:
    """An admin call submitted after a batch runs only once that batch's sync is done, and its
    result reaches the loop after the batch's reply."""
    service = RecordingService()
    sync = HeldSync()
    committer = GroupCommitter(worker, service, continuous=True, wal=sync)
    order: list[str] = []

    async def scenario() -> None:
        batch = committer.submit({"11": "000001"}).addCallback(order.append)
        assert await _in_thread(sync.entered)
        admin = worker.call(service.admin).addCallback(order.append)
        assert service.events == ["batch 000001"]
        sync.release.set()
        await _result(admin)
        await _result(batch)

    try:
        run(scenario())
    finally:
        sync.release.set()
        committer.close()
    assert order == ["reply-000001", "admin done"]
    assert service.events == ["batch 000001", "admin"]


def test_a_failed_fsync_fails_its_requests_and_every_later_one(
        worker: ServiceWorker, run: Callable[..., Any]) -> None:
    """An fsync error fails the requests it covered; later requests fail without being run
    and later worker calls raise: nothing more is answered as if durable; the host is told
    once."""
    service = RecordingService()
    sync = HeldSync(error=OSError(5, "Input/output error"))
    sync.release.set()
    committer = GroupCommitter(worker, service, continuous=True, wal=sync)
    reported: list[Exception] = []
    committer.on_failed = reported.append

    async def scenario() -> list[Any]:
        first = await _result(committer.submit({"11": "000001"}))
        later = await _result(committer.submit({"11": "000002"}))
        admin = await _result(worker.call(service.admin))
        return [first, later, admin]

    try:
        first, later, admin = run(scenario())
    finally:
        committer.close()
    assert isinstance(first, WalSyncFailed) and "Input/output error" in str(first)
    assert isinstance(later, WalSyncFailed) and isinstance(admin, WalSyncFailed)
    assert service.events == ["batch 000001"]  # the later request was never run
    assert sync.calls == 1
    assert reported == [first]  # the host is told once, so that it stops


def _synchronous(engine: Any) -> int:
    with engine.begin() as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar())


def test_commits_unsynced_leave_out_only_their_own_fsync(tmp_path: Any) -> None:
    """On a FULL engine a transaction begun under commits_unsynced runs with NORMAL (1), the
    next plain one with FULL (2) again; a NORMAL engine has no WAL sync to leave out."""
    from host.ledger.db import commits_unsynced, open_engine, wal_path

    full = open_engine(str(tmp_path / "full.db"))
    normal = open_engine(str(tmp_path / "normal.db"), synchronous="NORMAL")
    try:
        assert _synchronous(full) == 2
        with commits_unsynced():
            assert _synchronous(full) == 1
            assert _synchronous(normal) == 1
        assert _synchronous(full) == 2
        assert wal_path(full) == tmp_path / "full.db-wal"
        assert wal_path(normal) is None
    finally:
        full.dispose()
        normal.dispose()


def test_the_wal_file_sync_fails_loudly_when_the_wal_is_gone(tmp_path: Any) -> None:
    """WalFile syncs an existing WAL by path and raises OSError (not silence) without one."""
    from host.wal_sync import WalFile

    wal = tmp_path / "x.db-wal"
    wal.write_bytes(b"frames")
    WalFile(wal).sync()
    wal.unlink()
    with pytest.raises(OSError):
        WalFile(wal).sync()


def test_the_host_overlaps_only_when_asked(worker: ServiceWorker, tmp_path: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """committer_for keeps each COMMIT's fsync by default; ``[host] sqlite_wal_overlap`` or
    POSLAB_WAL_OVERLAP=1 on an SQLite FULL engine gives the overlapped committer."""
    from host.group_commit import committer_for
    from host.ledger.db import open_engine

    service = RecordingService()
    service.engine = open_engine(str(tmp_path / "x.db"))  # type: ignore[attr-defined]
    try:
        monkeypatch.delenv("POSLAB_WAL_OVERLAP", raising=False)
        assert not committer_for(worker, service).overlapped
        configured = committer_for(worker, service, overlap=True)
        assert configured.overlapped
        configured.close()
        monkeypatch.setenv("POSLAB_WAL_OVERLAP", "1")
        committer = committer_for(worker, service)
        assert committer.overlapped
        committer.close()
    finally:
        service.engine.dispose()  # type: ignore[attr-defined]


def test_the_host_stops_with_status_74_when_the_wal_cannot_be_synced(tmp_path: Any) -> None:
    """With the overlap on, a WAL that cannot be synced stops poslab-host with exit status 74
    and a `fatal` log line, and the request that sync covered is never answered."""
    import json
    import os
    import socket
    from pathlib import Path

    from protocol import Codec
    from protocol.framing import frame
    from scenarios.loadgen.procs import ServerProcess, python_module
    from scenarios.loadgen.workload import build_plans

    db, log = tmp_path / "ledger.db", tmp_path / "host.log"
    server = ServerProcess(
        [*python_module("host"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
         "--db", str(db), "--allow-unknown-terminals", "--log-file", str(log)],
        name="poslab-host", env={**os.environ, "POSLAB_WAL_OVERLAP": "1"})
    try:
        Path(f"{db}-wal").unlink()  # the next sync finds no WAL to sync: it fails
        codec = Codec()
        [plan] = build_plans(codec, 1, {"sale": 1}, mid="BENCHMERCHANT01", currency="CNY",
                             pan="4761739001010119", seed=1, tid_prefix="WS")
        with socket.create_connection(("127.0.0.1", server.ready["iso_port"]), timeout=20) as s:
            s.sendall(frame(plan.templates["sale"].render("000001")))
            assert s.recv(2) == b""  # closed with no answer
        assert server.proc.wait(timeout=30) == 74
    finally:
        server.stop()
    fatal = [json.loads(line) for line in log.read_text().splitlines() if '"fatal"' in line]
    assert len(fatal) == 1 and fatal[0]["exit_code"] == 74
    assert "could not be synced" in fatal[0]["reason"]
