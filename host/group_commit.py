"""Group commit: requests that arrive while the worker is busy share the next durable commit.

With ``synchronous=FULL`` every SQLite COMMIT waits for an fsync of the WAL, so one commit per
request caps the host at the disk's fsync rate whatever the CPU could do. The server hands
requests to :meth:`GroupCommitter.submit` instead of calling ``service.handle`` directly; the
committer runs, in the one worker thread, ``service.handle_batch(requests)`` on everything that
queued up since the last batch. The service executes each request in its own savepoint inside
one transaction and commits once; only after that COMMIT returns do the replies go back to the
loop, so the response-after-commit rule (docs/design-notes.md) holds for every request.

At low load a batch is one request and nothing waits; under load the batch grows by itself to
what arrived during the previous commit (no timer, no added latency).

The batch runner is :func:`batch_runner`: the service's ``handle_batch``
(:meth:`host.service.HostService.handle_batch`), where a request that fails or declines
silently rolls back its own savepoint only. A service without one gets one call per request.
Set ``POSLAB_GROUP_COMMIT=0`` to switch group commit off (one commit per request, for
comparison).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred

from host.worker import ServiceWorker

ENV = "POSLAB_GROUP_COMMIT"


#: Runs a batch of requests in one commit and returns their replies.
BatchRunner = Callable[[Sequence[Mapping[str, str]]], list[Any]]


def batch_runner(service: Any) -> BatchRunner | None:
    """How to run a batch of requests in one commit for ``service``, or None when it cannot."""
    if os.environ.get(ENV, "1") == "0":
        return None
    own: BatchRunner | None = getattr(service, "handle_batch", None)
    return own


class GroupCommitter:
    """Queue requests on the loop; drain them in batches in the worker thread.

    :ivar batches: number of batches run (for metrics and tests).
    :ivar largest: the largest batch so far.
    :ivar requests: requests run in batches so far.
    """

    def __init__(self, worker: ServiceWorker, service: Any, *, max_batch: int = 256) -> None:
        self._worker = worker
        self._batch = batch_runner(service)
        self._single: Callable[[Mapping[str, str]], Any] = service.handle
        self._max = max_batch
        # deque append (loop) and popleft (worker) are atomic: no lock needed between them.
        self._queue: deque[tuple[Mapping[str, str], Deferred[Any]]] = deque()
        self._scheduled = False
        self.batches = 0
        self.largest = 0
        self.requests = 0

    @property
    def enabled(self) -> bool:
        """True when requests are batched (False: one service call per request)."""
        return self._batch is not None

    def submit(self, request: Mapping[str, str]) -> Deferred[Any]:
        """Queue one valid request; the Deferred fires (on the loop) with its reply."""
        if self._batch is None:
            return self._worker.call(self._single, request)
        d: Deferred[Any] = Deferred()
        self._queue.append((request, d))
        if not self._scheduled:
            self._scheduled = True
            self._worker.call(self._drain).addBoth(self._deliver)
        return d

    def _drain(self) -> list[tuple[Deferred[Any], Any, bool]]:
        """Worker thread: take what is queued (up to max_batch) and run it as one batch."""
        taken: list[tuple[Mapping[str, str], Deferred[Any]]] = []
        while self._queue and len(taken) < self._max:
            taken.append(self._queue.popleft())
        if not taken:
            return []
        assert self._batch is not None
        try:
            replies = self._batch([fields for fields, _ in taken])
            return [(d, reply, True) for (_, d), reply in zip(taken, replies, strict=True)]
        except Exception as exc:  # the whole batch failed (COMMIT error): each request fails
            return [(d, exc, False) for _, d in taken]

    def _deliver(self, results: list[tuple[Deferred[Any], Any, bool]] | Any) -> None:
        """Loop: fire each request's Deferred; schedule the next batch if more arrived."""
        if isinstance(results, list):
            self.batches += 1 if results else 0
            self.requests += len(results)
            self.largest = max(self.largest, len(results))
            for d, value, ok in results:
                if ok:
                    d.callback(value)
                else:
                    d.errback(value)
        if self._queue:
            self._worker.call(self._drain).addBoth(self._deliver)
        else:
            self._scheduled = False
