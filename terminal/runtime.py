"""One asyncio loop, Twisted bound to it, Textual running it.

:func:`install` is idempotent: the first call creates the loop, installs Twisted's asyncio
reactor on it and starts the reactor without signal handlers; later calls return the same loop.
When something else (the test harness) already installed the asyncio reactor, its loop is
adopted; any other reactor is an error, because Twisted I/O would then never run.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, cast

_LOOP: asyncio.AbstractEventLoop | None = None


def install() -> asyncio.AbstractEventLoop:
    """The shared loop, creating it and installing the reactor on first use."""
    global _LOOP
    if _LOOP is not None:
        return _LOOP
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        existing = cast(asyncio.AbstractEventLoop | None,
                        getattr(reactor, "_asyncioEventloop", None))
        if existing is None:
            raise RuntimeError("a non-asyncio Twisted reactor is already installed; the "
                               "terminal needs the asyncio reactor on Textual's loop")
        _LOOP = existing
        return existing
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    cast(Any, asyncioreactor).install(loop)
    from twisted.internet import reactor

    cast(Any, reactor).startRunning(installSignalHandlers=False)
    _LOOP = loop
    return loop


def shutdown() -> None:
    """Stop the reactor after the app returned: run its shutdown triggers, close the loop."""
    global _LOOP
    if _LOOP is None:
        return
    from twisted.internet import reactor

    if cast(Any, reactor).running:
        cast(Any, reactor).stop()
        _LOOP.run_forever()  # the reactor's crash() stops the loop once shutdown is done
    _LOOP.close()
    _LOOP = None
