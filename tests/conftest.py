"""Root test harness: one asyncio loop with the Twisted asyncio reactor bound to it.

Installed at import time, before anything imports ``twisted.internet.reactor``; tests are plain
sync functions that drive coroutines with the ``run`` fixture (docs/design-notes.md, "One loop,
one reactor").
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from hypothesis import settings
from twisted.internet import asyncioreactor

# With the collector's defaults (700, 10, 10) the Textual app runs, which allocate millions of
# short-lived objects, set off a full collection every few seconds: in test_term_app and
# test_term_snapshots 19 of them, ~0.2 s each, 4 of the 18 s of CPU. Collecting less often
# cuts that to under 1 s; the peak memory grows 2 % (233 -> 237 MB), and pytest still
# collects fully at session end.
gc.set_threshold(10_000, 50, 100)

LOOP = asyncio.new_event_loop()
asyncio.set_event_loop(LOOP)
asyncioreactor.install(LOOP)

from twisted.internet import reactor  # noqa: E402

reactor.startRunning(installSignalHandlers=False)  # type: ignore[attr-defined]

pytest_plugins = ["card_data_scan", "long_first", "pg_schema", "pytester"]

# `--hypothesis-profile=ci` (.ci/run): no example database, so a run never replays what an
# earlier run on the same checkout saved, and a failure prints the blob that reproduces it.
# .ci/run also picks and prints the seed. Locally the default profile keeps .hypothesis/, which
# replays a failing example first until it is fixed (`make clean` removes it).
settings.register_profile("ci", database=None, print_blob=True)

Runner = Callable[..., Any]


@pytest.fixture(autouse=True)
def _shared_loop_is_current() -> None:
    """Make the shared loop current again before each test.

    Code under test that calls ``asyncio.run()`` (the load generator's CLI, for one) leaves the
    main thread with no current loop when it returns; later tests that ask asyncio for the
    current loop must still get the one the reactor runs on.
    """
    asyncio.set_event_loop(LOOP)


@pytest.fixture(scope="session")
def loop() -> asyncio.AbstractEventLoop:
    """The one loop Twisted and Textual share in tests."""
    return LOOP


@pytest.fixture(scope="session")
def run() -> Runner:
    """Run a coroutine to completion on the shared loop, with a timeout in seconds."""

    def _run(coro: Coroutine[Any, Any, Any], timeout: float = 20) -> Any:
        return LOOP.run_until_complete(asyncio.wait_for(coro, timeout))

    return _run
