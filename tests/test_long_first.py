"""The suite's own scheduling aid (tests/long_first.py): long tests at the heads of the batches
``--dist worksteal`` hands to its workers, the modules sharing a module-scoped fixture before
those sharing nothing."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import pytest
from long_first import batch_sizes, long_first, shared_fixtures_early, shares_module_fixture


@dataclass
class FakeItem:
    """What the plugin reads of a test item: its id, its ``long`` marker and the scopes of the
    fixtures it asks for."""

    nodeid: str
    long: bool = False
    shared: bool = False

    def get_closest_marker(self, name: str) -> Any:
        """The marker object (any truthy stand-in) when ``name`` is ``long`` and it is set."""
        return object() if name == "long" and self.long else None

    @property
    def _fixtureinfo(self) -> Any:
        scope = "module" if self.shared else "function"
        return SimpleNamespace(name2fixturedefs={"f": (SimpleNamespace(scope=scope),)})


def items(*specs: str) -> list[pytest.Item]:
    """Items from ``module::name`` ids; a trailing ``!`` marks one long, a trailing ``*`` one
    that asks for a module-scoped fixture."""
    return cast(list[pytest.Item], [FakeItem(s.rstrip("!*"), s.endswith("!"), s.endswith("*"))
                                    for s in specs])


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


def test_sharing_modules_run_before_the_rest_of_their_batch() -> None:
    """Within each batch: long tests first, then every test of a module where one test asks for
    a module-scoped fixture, then the rest; each kind keeps its order, no test crosses into
    another batch."""
    suite = items("k::1!", "a::1", "s::1*", "s::2", "b::1",
                  "c::1", "t::1", "t::2*", "d::1", "e::1")
    ordered = [i.nodeid for i in shared_fixtures_early(suite, 2)]
    assert ordered == ["k::1", "s::1", "s::2", "a::1", "b::1",
                       "t::1", "t::2", "c::1", "d::1", "e::1"]
    assert shared_fixtures_early(suite, 1) == suite


def test_a_module_scoped_fixture_is_told_from_function_and_session_ones(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """On real items: a test asking for a module-scoped fixture (directly or through another)
    shares one; a test with only function- and session-scoped fixtures does not."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # the in-process run needs none
    path = pytester.makepyfile("""
        import pytest

        @pytest.fixture(scope="module")
        def host():
            return 1

        @pytest.fixture
        def client(host):
            return host

        @pytest.fixture(scope="session")
        def loop():
            return 2

        def test_direct(host): pass
        def test_through(client): pass
        def test_plain(tmp_path, loop): pass
    """)
    found = {item.name: shares_module_fixture(item) for item in pytester.getitems(path)}
    assert found == {"test_direct": True, "test_through": True, "test_plain": False}
