"""pytest plugin: under xdist, start the ``long`` tests first, one share at the head of each
worker's initial batch of tests.

``--dist worksteal`` (``make test``) hands each of W workers one contiguous 1/W of the
collection, and an idle worker steals from the *end* of a busy one's queue. A test of 10-50 s
that sits late in a batch therefore starts when the others have nothing left to do, and the
run waits for it alone. Here the tests marked ``@pytest.mark.long`` are dealt out by module
(a module's module-scoped fixtures stay on one worker) to the heads of the W batches, cut as
worksteal cuts them.

Behind its long share each batch runs the modules that share a module-scoped fixture (a host
process, a browser, a CA) before the modules that share nothing. Stealing takes the *end* of a
batch, one half after another, down to single tests: a module cut there starts its shared
host again on every worker that gets a piece of it (the TLS hosts at the end of the collection
started up to three times each). The tests that set up nothing shared are the ones to cut.
Within each kind the order is kept. Outside xdist nothing moves.
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


def shares_module_fixture(item: pytest.Item) -> bool:
    """Whether ``item`` asks for a fixture set up once per module (or package)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(defs and defs[-1].scope in ("module", "package")
               for defs in info.name2fixturedefs.values())


def shared_fixtures_early(items: Sequence[pytest.Item], workers: int) -> list[pytest.Item]:
    """``items`` with each worksteal batch reordered: its ``long`` tests stay at the head, then
    come the modules that share a module-scoped fixture (any of whose tests asks for one),
    then the rest; within each kind the order is kept."""
    if workers < 2:
        return list(items)
    sharing = {item.nodeid.split("::")[0] for item in items if shares_module_fixture(item)}

    def kind(item: pytest.Item) -> int:
        if item.get_closest_marker("long") is not None:
            return 0
        return 1 if item.nodeid.split("::")[0] in sharing else 2

    ordered: list[pytest.Item] = []
    start = 0
    for size in batch_sizes(len(items), workers):
        ordered += sorted(items[start:start + size], key=kind)  # sorted() is stable
        start += size
    return ordered


@pytest.hookimpl(trylast=True)  # after pytest groups the tests by their fixtures' parameters
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reorder on xdist workers; every worker computes the same order, as xdist requires.

    A worker is not told the ``--dist`` mode (xdist resets it there): the batches are cut for
    worksteal, and under another mode only the order changes."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        workers = int(workerinput["workercount"])
        items[:] = shared_fixtures_early(long_first(items, workers), workers)
