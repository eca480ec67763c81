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
one, and each later worker call raises :class:`WalSyncFailed`: the host answers nothing more,
and stops (exit status 74) so that it is restarted and SQLite recovers the WAL from what
reached the disk.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, Generic, Protocol, TypeVar

from host.ledger.db import wal_path

log = logging.getLogger(__name__)
T = TypeVar("T")


class WalSyncFailed(Exception):
    """The WAL could not be made durable: nothing more may be answered until a restart."""


class WalFile:
    """Makes an SQLite ``-wal`` file durable, as SQLite's own commit under FULL does.

    The descriptor is kept between syncs (one ``fdatasync`` per sync): SQLite restarts and
    truncates the WAL in place, so the file stays the same. Only when the last connection
    closes does SQLite delete the WAL, and a new one may then appear under the same name; each
    sync therefore looks up the name too (``stat``), and a new file (another inode) is opened
    and synced as well, with its directory, so the new name is durable.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._inode: int | None = None

    def sync(self) -> None:
        """fdatasync the WAL (and its directory once per new file); OSError when it fails."""
        if self._fd is not None:
            os.fdatasync(self._fd)
        inode = os.stat(self.path).st_ino
        if inode != self._inode:  # first sync, or SQLite made a new WAL under the name
            self._open_new()

    def _open_new(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        os.fdatasync(fd)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        self.close()
        self._fd, self._inode = fd, os.fstat(fd).st_ino

    def close(self) -> None:
        """Let go of the descriptor."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class WalSync(Protocol):
    """What the syncer needs of a WAL: sync it, and let go of it at the end."""

    def sync(self) -> None:
        """Make everything written to the WAL so far durable (OSError when it cannot)."""

    def close(self) -> None:
        """Release what the syncs held (a descriptor)."""


def wal_sync_for(service: Any) -> WalSync | None:
    """The WAL sync a group committer may take out of the COMMITs of ``service``, or None:
    each COMMIT stays durable by itself (PostgreSQL, ``synchronous = "NORMAL"``)."""
    engine = getattr(service, "engine", None)
    path = wal_path(engine) if engine is not None else None
    return WalFile(path) if path is not None else None


_CLOSE = object()  # queued by close(): sync what came before, then end the thread


class WalSyncer(Generic[T]):
    """A thread that syncs the WAL, then delivers the batches committed before the sync.

    ``deliver(batches, error)`` runs on the reactor with the batches one sync covered, in the
    order they were submitted; ``error`` is None, or the :class:`WalSyncFailed` that fails them.

    :ivar syncs: fsyncs done (for metrics and tests).
    """

    def __init__(self, reactor: Any, wal: WalSync,
                 deliver: Callable[[list[T], WalSyncFailed | None], None]) -> None:
        self._reactor = reactor
        self._wal = wal
        self._deliver = deliver
        # A C queue and two counters, each written by one thread: the hand-off per batch takes
        # no Python lock (the syncer competes with the worker for the GIL; keep it brief).
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._submitted = 0  # batches handed over (worker thread)
        self._synced = 0  # batches delivered after their sync (syncer thread)
        self._waiter: threading.Event | None = None  # set by wait_synced while it waits
        self._failed: WalSyncFailed | None = None
        self._thread = threading.Thread(target=self._run, name="poslab-wal-sync", daemon=True)
        self._thread.start()
        self.syncs = 0

    @property
    def failed(self) -> WalSyncFailed | None:
        """The error that stopped the syncs, or None."""
        return self._failed

    def submit(self, batch: T) -> None:
        """Worker thread, after the batch's COMMIT: deliver it once a sync covers it."""
        self._submitted += 1
        self._queue.put(batch)

    def wait_synced(self) -> None:
        """Worker thread: block until every batch submitted so far is durable and delivered;
        raise :class:`WalSyncFailed` when the WAL could not be synced."""
        target = self._submitted
        while self._synced < target and self._failed is None:
            waiter = self._waiter = threading.Event()
            if self._synced >= target or self._failed is not None:  # the syncer was quicker
                break
            waiter.wait()
        self._waiter = None
        if self._failed is not None:
            raise self._failed

    def close(self) -> None:
        """Sync and deliver what is queued, end the thread, release the WAL."""
        if self._thread.is_alive():
            self._queue.put(_CLOSE)
            self._thread.join()
        self._wal.close()

    def _run(self) -> None:
        closing = False
        while not closing:
            covered: list[T] = []
            item = self._queue.get()
            while True:  # everything committed by now: one sync covers it all
                if item is _CLOSE:
                    closing = True
                else:
                    covered.append(item)
                try:
                    item = self._queue.get_nowait()
                except Empty:
                    break
            if covered:
                self._sync_and_deliver(covered)

    def _sync_and_deliver(self, covered: list[T]) -> None:
        if self._failed is None:
            try:
                self._wal.sync()
                self.syncs += 1
            except Exception as exc:  # OSError, or a bug: either way nothing is known durable
                self._failed = WalSyncFailed(
                    f"the WAL could not be synced ({exc}): the host answers nothing more "
                    "and stops")
                log.critical("%s; %d batches of requests are not answered", self._failed,
                             len(covered))
        # Handed to the reactor before the worker may go on past wait_synced, so what the
        # worker returns next reaches the reactor after these replies.
        self._reactor.callFromThread(self._deliver, covered, self._failed)
        self._synced += len(covered)
        waiter = self._waiter
        if waiter is not None:
            waiter.set()
