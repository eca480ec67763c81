"""pytest plugin: under xdist, start the ``long`` tests first, one share at the head of each
worker's initial batch of tests.

``--dist worksteal`` (``make test``) hands each of W workers one contiguous 1/W of the
collection, and an idle worker steals from the *end* of a busy one's queue. A test of 10-50 s
that sits late in a batch therefore starts when the others have nothing left to do, and the
run waits for it alone. Here the tests marked ``@pytest.mark.long`` are dealt out by module
(a module's module-scoped fixtures stay on one worker) to the heads of the W batches, cut as
worksteal cuts them; the rest keep their order. Outside xdist nothing moves.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker."""
    config.addinivalue_line(
        "markers", "long: a test of several seconds; under xdist it starts at the head of a "
                   "worker's batch (tests/long_first.py)")


def batch_sizes(count: int, workers: int) -> list[int]:
    """The sizes worksteal gives ``workers`` idle workers out of ``count`` tests: each takes
    the pending tests divided by the workers still to serve, rounded down."""
    sizes = []
    for served in range(workers):
        sizes.append(count // (workers - served))
        count -= sizes[-1]
    return sizes


def long_first(items: Sequence[pytest.Item], workers: int) -> list[pytest.Item]:
    """``items`` with the ``long`` ones at the heads of the ``workers`` batches; unchanged
    when there are none or a batch could not hold its share."""
    long = [item for item in items if item.get_closest_marker("long") is not None]
    if not long or workers < 2:
        return list(items)
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for module in dict.fromkeys(item.nodeid.split("::")[0] for item in long):
        share = min(shares, key=len)
        share += [item for item in long if item.nodeid.split("::")[0] == module]
    sizes = batch_sizes(len(items), workers)
    if any(len(share) > size for share, size in zip(shares, sizes, strict=True)):
        return list(items)
    rest = iter([item for item in items if item.get_closest_marker("long") is None])
    ordered: list[pytest.Item] = []
    for share, size in zip(shares, sizes, strict=True):
        ordered += share
        ordered += [next(rest) for _ in range(size - len(share))]
    return ordered


@pytest.hookimpl(trylast=True)  # after pytest groups the tests by their fixtures' parameters
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reorder on xdist workers; every worker computes the same order, as xdist requires.

    A worker is not told the ``--dist`` mode (xdist resets it there): the batches are cut for
    worksteal, and under another mode only the order changes."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        items[:] = long_first(items, int(workerinput["workercount"]))
