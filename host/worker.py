"""The one worker thread that runs every blocking service call.

:class:`HostService` does database I/O and commits before it returns, so the event loop must
never call it directly. Both the ISO server and the admin API submit their calls here; a pool
of exactly one thread makes the service single-threaded (no locking inside it) and keeps the
calls in submission order, which is also the order their results come back to the reactor.

Work that runs long in the thread (the group committer's drain, :mod:`host.group_commit`) asks
:meth:`ServiceWorker.waiting` between its steps and gives the thread back when another call is
queued, so an admin call never waits behind a stream of batches. A :attr:`ServiceWorker.barrier`
runs in the thread before every :meth:`~ServiceWorker.call`: the WAL syncer
(:mod:`host.wal_sync`) uses it so that nothing a call returns can leave the process before the
commits it may have read are durable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")


class ServiceWorker:
    """A single-thread pool bound to a reactor.

    :ivar in_flight: calls submitted and not yet finished (the runtime waits for them on stop).
    :ivar stopping: set when the host begins to stop; work made of many calls (a long clock
        move) checks it between calls and gives up, so a shutdown does not wait for it.
    """

    def __init__(self, reactor: Any, name: str = "poslab-service") -> None:
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=name)
        self._started = False
        self.in_flight = 0
        self.stopping = False
        self.barrier: Callable[[], None] | None = None
        """Run in the thread before each :meth:`call` (None: nothing); its error fails the call."""
        # Calls submitted (counted on the reactor) and begun (counted in the thread): each
        # counter has one writer, so the thread can read their difference without a lock.
        self._submitted = 0
        self._begun = 0

    @property
    def reactor(self) -> Any:
        """The reactor results are delivered on."""
        return self._reactor

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if not self._started:
            self._pool.start()
            self._started = True

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Deferred[T]:
        """Run ``fn(*args, **kwargs)`` in the worker thread, after the :attr:`barrier`; the
        Deferred fires on the reactor."""
        return self._submit(True, fn, *args, **kwargs)

    def call_past_barrier(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Deferred[T]:
        """As :meth:`call` without the :attr:`barrier`: for work that makes its own results
        durable before they leave (the group committer's drain)."""
        return self._submit(False, fn, *args, **kwargs)

    def waiting(self) -> int:
        """Calls submitted and not begun yet (read in the thread: is someone queued?)."""
        return self._submitted - self._begun

    def _submit(self, fenced: bool, fn: Callable[..., T], *args: Any, **kwargs: Any
                ) -> Deferred[T]:
        if not self._started:
            raise RuntimeError("the service worker is not running")
        self.in_flight += 1
        self._submitted += 1

        def run() -> T:
            self._begun += 1
            barrier = self.barrier
            if fenced and barrier is not None:
                barrier()
            return fn(*args, **kwargs)

        d: Deferred[T] = deferToThreadPool(self._reactor, self._pool, run)

        def _done(result: object) -> object:
            self.in_flight -= 1
            return result

        d.addBoth(_done)
        return d

    def stop(self) -> None:
        """Finish queued calls and join the thread (blocks briefly; call once work is drained)."""
        if self._started:
            self._started = False
            self._pool.stop()
