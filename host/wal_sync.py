"""The WAL fsync of a group commit, in a thread of its own, overlapped with the next batch.

With ``[host] sqlite_synchronous = "FULL"`` SQLite fsyncs the ``-wal`` file inside every COMMIT,
and the worker thread (the host's bottleneck) waits for it doing nothing. In WAL mode FULL
writes exactly what NORMAL writes and adds that one fsync per COMMIT (checkpoints are synced in
both modes). So the group committer (:mod:`host.group_commit`) commits its batches with the
fsync left out (:func:`host.ledger.db.commits_unsynced`) and hands each batch's replies to the
:class:`WalSyncer`: its thread fsyncs the WAL and only then passes the replies to the reactor,
while the worker already runs the next batch. One fsync covers every batch committed before it
started. Why this is as durable as FULL for every reply sent: docs/power-loss.md.

Anything else the worker returns goes out only after the commits before it are durable: the
worker runs :meth:`WalSyncer.wait_synced` before each call (:attr:`ServiceWorker.barrier
<host.worker.ServiceWorker.barrier>`).

A failed fsync cannot be retried safely (Linux may drop the dirty pages it could not write and
report success next time), so the syncer fails the replies it was covering and every later
one, and each later worker call raises :class:`WalSyncFailed`: the host answers nothing more
until it is restarted and SQLite recovers the WAL from what reached the disk.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

ENV = "POSLAB_WAL_OVERLAP"
"""Set to ``0`` to keep the fsync inside each batch's COMMIT (for comparison)."""


class WalSyncFailed(Exception):
    """The WAL could not be made durable: nothing more may be answered until a restart."""


class WalFile:
    """Makes an SQLite ``-wal`` file durable, as SQLite's own commit under FULL does.

    The file is opened by path for each sync, so a WAL that SQLite deleted and created again
    (when the last connection closed) is the one synced, never a stale descriptor. The
    directory is synced whenever the file is new (another inode), so its name is durable too.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._inode: int | None = None

    def sync(self) -> None:
        """fdatasync the WAL (and its directory once per new file); OSError when it fails."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        if inode != self._inode:
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
            self._inode = inode


def wal_sync_for(service: Any) -> Callable[[], None] | None:
    """The WAL sync a group committer may defer for ``service``, or None: keep the fsync in
    each COMMIT (PostgreSQL, ``synchronous = "NORMAL"``, ``POSLAB_WAL_OVERLAP=0``)."""
    from host.ledger.db import wal_path  # late: SQLAlchemy is heavy and not always needed

    if os.environ.get(ENV, "1") == "0":
        return None
    engine = getattr(service, "engine", None)
    path = wal_path(engine) if engine is not None else None
    return WalFile(path).sync if path is not None else None


class WalSyncer(Generic[T]):
    """A thread that syncs the WAL, then delivers the batches committed before the sync.

    ``deliver(batches, error)`` runs on the reactor with the batches one sync covered, in the
    order they were submitted; ``error`` is None, or the :class:`WalSyncFailed` that fails them.

    :ivar syncs: fsyncs done (for metrics and tests).
    """

    def __init__(self, reactor: Any, sync: Callable[[], None],
                 deliver: Callable[[list[T], WalSyncFailed | None], None]) -> None:
        self._reactor = reactor
        self._sync = sync
        self._deliver = deliver
        self._ready = threading.Condition()
        self._pending: list[T] = []
        self._submitted = 0  # batches handed over (worker thread)
        self._synced = 0  # batches delivered after their sync (syncer thread)
        self._failed: WalSyncFailed | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="poslab-wal-sync", daemon=True)
        self._thread.start()
        self.syncs = 0

    @property
    def failed(self) -> WalSyncFailed | None:
        """The error that stopped the syncer, or None."""
        return self._failed

    def submit(self, batch: T) -> None:
        """Worker thread, after the batch's COMMIT: deliver it once a sync covers it."""
        with self._ready:
            failed = self._failed
            if failed is None:
                self._pending.append(batch)
                self._submitted += 1
                self._ready.notify_all()
                return
        self._reactor.callFromThread(self._deliver, [batch], failed)

    def wait_synced(self) -> None:
        """Block until every batch submitted so far is durable and delivered; raise
        :class:`WalSyncFailed` when the WAL could not be synced."""
        with self._ready:
            target = self._submitted
            self._ready.wait_for(lambda: self._synced >= target or self._failed is not None)
            if self._failed is not None:
                raise self._failed

    def close(self) -> None:
        """Sync and deliver what is pending, then end the thread."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: bool(self._pending) or self._closing)
                if not self._pending:
                    return
                covered, self._pending = self._pending, []
            try:
                self._sync()
            except OSError as exc:
                self._fail(covered, exc)
                return
            self.syncs += 1
            # Handed to the reactor before the worker may go on past wait_synced, so what the
            # worker returns next reaches the reactor after these replies.
            self._reactor.callFromThread(self._deliver, covered, None)
            with self._ready:
                self._synced += len(covered)
                self._ready.notify_all()

    def _fail(self, covered: list[T], exc: OSError) -> None:
        failed = WalSyncFailed(f"the WAL could not be synced ({exc}): the host answers nothing "
                               "more until it is restarted")
        log.critical("%s; %d batches of requests are not answered", failed, len(covered))
        with self._ready:
            self._failed = failed
            covered += self._pending
            self._pending = []
            self._ready.notify_all()
        self._reactor.callFromThread(self._deliver, covered, failed)
