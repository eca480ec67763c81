"""Fixtures shared by the group-commit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.internet import reactor

from host.worker import ServiceWorker


@pytest.fixture
def worker() -> Iterator[ServiceWorker]:
    """A started one-thread service worker on the test reactor, stopped afterwards."""
    w = ServiceWorker(reactor)
    w.start()
    yield w
    w.stop()
