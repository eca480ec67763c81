"""The one worker thread that runs every blocking service call.

:class:`HostService` does database I/O and commits before it returns, so the event loop must
never call it directly. Both the ISO server and the admin API submit their calls here; a pool
of exactly one thread makes the service single-threaded (no locking inside it) and keeps the
calls in submission order, which is also the order their results come back to the reactor.
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

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if not self._started:
            self._pool.start()
            self._started = True

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Deferred[T]:
        """Run ``fn(*args, **kwargs)`` in the worker thread; the Deferred fires on the reactor."""
        if not self._started:
            raise RuntimeError("the service worker is not running")
        self.in_flight += 1
        d: Deferred[T] = deferToThreadPool(self._reactor, self._pool, fn, *args, **kwargs)

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
