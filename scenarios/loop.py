"""The one asyncio loop with the Twisted asyncio reactor on it, for the runner and the plugin.

If a reactor is already installed (the test suite's conftest, an application embedding the
runner) it is reused, provided it is the asyncio reactor; otherwise a new loop is created and
the reactor installed on it. The reactor module is only imported inside functions
(docs/design-notes.md, "One loop, one reactor").
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def ensure_reactor() -> asyncio.AbstractEventLoop:
    """The loop the Twisted reactor runs on, installing the asyncio reactor if none is."""
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        loop = getattr(reactor, "_asyncioEventloop", None)
        if loop is None:
            raise RuntimeError("poslab scenarios need Twisted's asyncio reactor, and another "
                               "reactor is already installed")
        return loop  # type: ignore[no-any-return]
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)  # type: ignore[no-untyped-call]
    from twisted.internet import reactor

    reactor.startRunning(installSignalHandlers=False)
    return loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on the reactor's loop (not from inside that loop)."""
    return ensure_reactor().run_until_complete(coro)


def release_threads() -> None:
    """Stop the reactor's thread pool, if one was started, so the process can exit.

    The runner never stops the reactor (tests share it); a CLI run ends by calling this.
    """
    from twisted.internet import reactor

    stop = getattr(reactor, "_stopThreadPool", None)
    if getattr(reactor, "threadpool", None) is not None and stop is not None:
        stop()
