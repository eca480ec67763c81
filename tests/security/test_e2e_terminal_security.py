"""The terminal's security against the real host's (host.security): the scenarios of
scenarios/security on a fresh in-process host each, over real TCP. Skipped until the host side
exists in this tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("host.security")

import scenarios  # noqa: E402
from scenarios.loader import load_paths  # noqa: E402
from scenarios.report import render_failure  # noqa: E402
from scenarios.runner import run_scenario  # noqa: E402
from scenarios.targets import start_local  # noqa: E402

LOADED, PROBLEMS = load_paths([Path(scenarios.__file__).parent / "security"])


def test_security_scenarios_load() -> None:
    """The security scenarios (and their host: overrides) are valid."""
    assert PROBLEMS == [] and LOADED


@pytest.mark.parametrize("item", LOADED, ids=[item.name for item in LOADED])
def test_security_scenario_on_real_host(item: Any, run: Any) -> None:
    """The terminal side (runner + terminal session + MAC guard) and the host side agree:
    keys, MACs both ways, PIN blocks and DUKPT."""
    outcome = run(run_scenario(item, start_local), timeout=60)
    assert outcome.status == "passed", render_failure(outcome)
