"""The suite's own scheduling aid (tests/long_first.py): long tests at the heads of the batches
``--dist worksteal`` hands to its workers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest
from long_first import batch_sizes, long_first


@dataclass
class FakeItem:
    """What :func:`long_first` reads of a test item: its id and its ``long`` marker."""

    nodeid: str
    long: bool = False

    def get_closest_marker(self, name: str) -> Any:
        """The marker object (any truthy stand-in) when ``name`` is ``long`` and it is set."""
        return object() if name == "long" and self.long else None


def items(*specs: str) -> list[pytest.Item]:
    """Items from ``module::name`` ids; a trailing ``!`` marks one long."""
    return cast(list[pytest.Item], [FakeItem(s.rstrip("!"), s.endswith("!")) for s in specs])


def test_batch_sizes_are_worksteals_even_cut() -> None:
    """Each batch is the pending tests over the workers left to serve, rounded down."""
    assert batch_sizes(10, 3) == [3, 3, 4]
    assert batch_sizes(2400, 3) == [800, 800, 800]


def test_long_modules_lead_separate_batches_and_the_rest_keep_their_order() -> None:
    """Two long modules go to the heads of two batches; a module's long tests stay together;
    every other test keeps its relative order and nothing is lost or repeated."""
    suite = items("a::1", "a::2", "b::1", "b::2", "c::1", "c::2", "k::1!", "k::2!", "m::1!")
    ordered = [i.nodeid for i in long_first(suite, 3)]
    assert ordered == ["k::1", "k::2", "a::1", "m::1", "a::2", "b::1",
                       "b::2", "c::1", "c::2"]
    assert sorted(ordered) == sorted(i.nodeid for i in suite)


def test_nothing_moves_without_long_tests_or_room() -> None:
    """No long test, one worker, or a batch too small for its share: the order is kept."""
    plain = items("a::1", "a::2", "b::1")
    assert long_first(plain, 3) == plain
    crowded = items("k::1!", "k::2!", "k::3!", "a::1")
    assert long_first(crowded, 1) == crowded
    assert long_first(crowded, 3) == crowded
