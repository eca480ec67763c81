"""Group commit: requests that arrive while the worker is busy share the next durable commit.

With ``synchronous=FULL`` every SQLite COMMIT waits for an fsync of the WAL, so one commit per
request caps the host at the disk's fsync rate whatever the CPU could do. The server hands
requests to :meth:`GroupCommitter.submit` instead of calling ``service.handle`` directly; the
committer runs, in the one worker thread, ``service.handle_batch(requests)`` on everything that
queued up since the last batch. The service executes each request in its own savepoint inside
one transaction and commits once; only after that COMMIT is durable do the replies go back to
the loop, so the response-after-commit rule (docs/design-notes.md) holds for every request.

At low load a batch is one request and nothing waits; under load the batch grows by itself to
what arrived during the previous commit (no timer, no added latency).

**Overlap** (``[host] sqlite_wal_overlap`` or ``POSLAB_WAL_OVERLAP=1``, off by default;
:func:`committer_for`). One worker call (a *turn*) then runs batch after batch as long as
requests are queued, and hands each batch's replies to the reactor itself
(``callFromThread``) instead of returning and waiting for the reactor to schedule it again.
The turn ends when the queue is empty, or as soon as another worker call (an admin request, a
clock event) is queued behind it
(:meth:`ServiceWorker.waiting <host.worker.ServiceWorker.waiting>`): that call runs after at most
one more batch, and the next turn is queued behind it. On SQLite FULL each batch also commits
without its fsync, and its replies go to a :class:`~host.wal_sync.WalSyncer`, whose thread
fsyncs the WAL and then delivers them while the worker runs the next batch. Replies leave in
batch order either way; a failed COMMIT or a failed fsync fails every request of the batches
concerned (no reply). A failed fsync also calls :attr:`GroupCommitter.on_failed` once: the host
then stops with exit status 74, so that a supervisor restarts it and SQLite's recovery decides
what of the unsynced batches survived (none of them was answered).

The overlap is off by default because on a 2-core machine the engine is bound by the GIL, and
threads running side by side cost more CPU per message than the waits they remove
(docs/performance.md).

The batch runner is :func:`batch_runner`: the service's ``handle_batch``
(:meth:`host.service.HostService.handle_batch`), where a request that fails or declines
silently rolls back its own savepoint only. A service without one gets one call per request.
Set ``POSLAB_GROUP_COMMIT=0`` to switch group commit off (one commit per request, for
comparison).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from host.ledger.db import commits_unsynced
from host.wal_sync import WalSync, WalSyncer, WalSyncFailed, wal_sync_for
from host.worker import ServiceWorker

log = logging.getLogger(__name__)
ENV = "POSLAB_GROUP_COMMIT"
OVERLAP_ENV = "POSLAB_WAL_OVERLAP"


#: Runs a batch of requests in one commit and returns their replies.
BatchRunner = Callable[[Sequence[Mapping[str, str]]], list[Any]]

#: One batch's outcome, per request: its Deferred, the reply or the error, and which it is.
Results = list[tuple[Deferred[Any], Any, bool]]


def batch_runner(service: Any) -> BatchRunner | None:
    """How to run a batch of requests in one commit for ``service``, or None when it cannot."""
    if os.environ.get(ENV, "1") == "0":
        return None
    own: BatchRunner | None = getattr(service, "handle_batch", None)
    return own


def committer_for(worker: ServiceWorker, service: Any, *, overlap: bool = False) -> GroupCommitter:
    """The host's group committer for ``service``: with overlap when ``overlap`` (``[host]
    sqlite_wal_overlap``) or ``POSLAB_WAL_OVERLAP=1``."""
    if not overlap and os.environ.get(OVERLAP_ENV, "0") != "1":
        return GroupCommitter(worker, service)
    return GroupCommitter(worker, service, continuous=True, wal=wal_sync_for(service))


class GroupCommitter:
    """Queue requests on the loop; drain them in batches in the worker thread.

    ``continuous``: a turn runs batches while requests are queued (else one batch per turn).
    ``wal`` (:func:`host.wal_sync.wal_sync_for`): the WAL to sync; when given, the batches
    commit without their fsync and the syncer thread syncs it before their replies go out.
    None: each COMMIT is durable when it returns (PostgreSQL, SQLite NORMAL).

    :ivar batches: number of batches run (for metrics and tests).
    :ivar largest: the largest batch so far.
    :ivar requests: requests run in batches so far.
    """

    def __init__(self, worker: ServiceWorker, service: Any, *, max_batch: int = 256,
                 continuous: bool = False, wal: WalSync | None = None) -> None:
        self._worker = worker
        self._continuous = continuous
        self._reactor = worker.reactor
        self._batch = batch_runner(service)
        self._single: Callable[[Mapping[str, str]], Any] = service.handle
        self._max = max_batch
        # deque append (loop) and popleft (worker) are atomic: no lock needed between them.
        self._queue: deque[tuple[Mapping[str, str], Deferred[Any]]] = deque()
        self._scheduled = False
        self._syncer: WalSyncer[Results] | None = None
        if wal is not None and self._batch is not None:
            self._syncer = WalSyncer(self._reactor, wal, self._synced)
            worker.barrier = self._syncer.wait_synced
        self.on_failed: Callable[[WalSyncFailed], None] | None = None
        """Called once on the loop when the WAL sync fails (the host stops: nothing it commits
        afterwards could be acknowledged)."""
        self._failure_reported = False
        self.batches = 0
        self.largest = 0
        self.requests = 0

    @property
    def enabled(self) -> bool:
        """True when requests are batched (False: one service call per request)."""
        return self._batch is not None

    @property
    def syncs(self) -> int:
        """WAL fsyncs the syncer did (0 when the fsync stays inside each COMMIT)."""
        return self._syncer.syncs if self._syncer is not None else 0

    @property
    def overlapped(self) -> bool:
        """True when the WAL fsync runs in the syncer thread, beside the next batch."""
        return self._syncer is not None

    def submit(self, request: Mapping[str, str]) -> Deferred[Any]:
        """Queue one valid request; the Deferred fires (on the loop) with its reply."""
        if self._batch is None:
            return self._worker.call(self._single, request)
        d: Deferred[Any] = Deferred()
        self._queue.append((request, d))
        if not self._scheduled:
            self._scheduled = True
            self._next_turn()
        return d

    def close(self) -> None:
        """Deliver what the syncer holds and end its thread (the host is stopping)."""
        if self._syncer is not None:
            self._syncer.close()

    def _next_turn(self) -> None:
        self._worker.call_past_barrier(self._turn).addBoth(self._turn_ended)

    def _turn(self) -> Results | None:
        """Worker thread: run a batch and return its results for the loop to deliver; when
        continuous, run batches while requests are queued and no other call waits, handing
        each one's results to the loop (or the syncer) at once."""
        if not self._continuous:
            return self._run(self._take()) if self._queue else None
        while self._queue:
            results = self._run(self._take())
            if self._syncer is not None:
                self._syncer.submit(results)
            else:
                self._reactor.callFromThread(self._deliver, results)
            if self._worker.waiting():
                break
        return None

    def _take(self) -> list[tuple[Mapping[str, str], Deferred[Any]]]:
        taken: list[tuple[Mapping[str, str], Deferred[Any]]] = []
        while self._queue and len(taken) < self._max:
            taken.append(self._queue.popleft())
        return taken

    def _run(self, taken: list[tuple[Mapping[str, str], Deferred[Any]]]) -> Results:
        """Worker thread: one batch in one commit; its replies, or its error for each."""
        assert self._batch is not None
        if self._syncer is not None and self._syncer.failed is not None:
            return [(d, self._syncer.failed, False) for _, d in taken]  # nothing more written
        unsynced: AbstractContextManager[None] = (
            commits_unsynced() if self._syncer is not None else nullcontext())
        try:
            with unsynced:
                replies = self._batch([fields for fields, _ in taken])
            return [(d, reply, True) for (_, d), reply in zip(taken, replies, strict=True)]
        except Exception as exc:  # the whole batch failed (COMMIT error): each request fails
            return [(d, exc, False) for _, d in taken]

    def _synced(self, batches: list[Results], error: WalSyncFailed | None) -> None:
        """Loop: the syncer made these batches durable (or failed to: ``error``)."""
        for results in batches:
            if error is not None:
                results = [(d, error, False) for d, _, _ in results]
            self._deliver(results)
        if error is not None and not self._failure_reported:
            self._failure_reported = True
            if self.on_failed is not None:
                self.on_failed(error)

    def _deliver(self, results: Results) -> None:
        """Loop: fire each request's Deferred."""
        self.batches += 1
        self.requests += len(results)
        self.largest = max(self.largest, len(results))
        for d, value, ok in results:
            if ok:
                d.callback(value)
            else:
                d.errback(value)

    def _turn_ended(self, result: Any) -> None:
        """Loop: start another turn if requests arrived since the worker last looked."""
        if isinstance(result, Failure):  # a bug: the batch's requests are never answered
            log.error("group commit turn failed: %s", result.getTraceback())
        elif result is not None:
            self._deliver(result)
        if self._queue:
            self._next_turn()
        else:
            self._scheduled = False
