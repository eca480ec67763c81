"""pytest plugin: every scenario file is a test, with the runner's failure rendering.

Registered through the ``pytest11`` entry point ``poslab_scenarios``, so ``pytest
path/to/scenarios/`` works once poslab is installed; ``-k``, ``-x``, ``--junitxml`` and xdist
behave as for any test. Disable it with ``-p no:poslab_scenarios``.

Which YAML files are collected: ``.yaml``/``.yml`` files with top-level ``name:`` and
``steps:`` keys (see :func:`scenarios.loader.is_scenario_file`); other YAML (CI workflows,
compose files, fixtures) is left alone. A file with ``cases:`` gives one test per case. An
invalid file is a collection error listing every problem with file:line:column.

Each test gets its own fresh in-process host on the Twisted asyncio reactor; an already
installed asyncio reactor (a conftest's) is reused. Options: ``--scenario-seed N`` (replay a
failure), ``--scenario-host HOST:PORT`` with ``--scenario-admin URL`` and
``--scenario-token T`` (run against a running host).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from scenarios.loader import Loaded, is_scenario_file, load_file


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's command line options."""
    group = parser.getgroup("poslab-scenarios")
    group.addoption("--scenario-seed", type=int, default=None,
                    help="seed for every scenario (default: its own)")
    group.addoption("--scenario-host", default=None, metavar="HOST:PORT",
                    help="run scenarios against this running host")
    group.addoption("--scenario-admin", default=None, metavar="URL",
                    help="admin API of --scenario-host")
    group.addoption("--scenario-token", default=None, help="admin token")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect scenario YAML files."""
    if is_scenario_file(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    """One scenario file: one item, or one per case."""

    def collect(self) -> Any:
        """Load the file; all its problems at once as a collection error."""
        loaded, problems = load_file(self.path)
        if problems:
            raise self.CollectError("\n".join(str(p) for p in problems))
        for item in loaded:
            yield ScenarioItem.from_parent(self, name=item.name, loaded=item)


class ScenarioFailed(Exception):
    """Carries the outcome to :meth:`ScenarioItem.repr_failure`."""

    def __init__(self, outcome: Any) -> None:
        super().__init__(outcome.name)
        self.outcome = outcome


class ScenarioItem(pytest.Item):
    """One scenario run as a test."""

    def __init__(self, *, loaded: Loaded, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded = loaded
        # Tags are -k keywords (not markers: unregistered markers warn).
        self.extra_keyword_matches.update(loaded.scenario.tags)

    def runtest(self) -> None:
        """Run the scenario on a fresh host (or the configured one)."""
        from scenarios.cli import make_target_factory
        from scenarios.loop import run_sync
        from scenarios.runner import run_scenario

        opt = self.config.getoption
        remote = None
        if opt("--scenario-host"):
            remote = {"address": opt("--scenario-host"), "admin_url": opt("--scenario-admin"),
                      "token": opt("--scenario-token") or os.environ.get("POSLAB_ADMIN_TOKEN"),
                      "tid": None, "mid": None, "currency": None}
        outcome = run_sync(run_scenario(self.loaded, make_target_factory(remote),
                                        opt("--scenario-seed")))
        if outcome.status in ("failed", "error"):
            raise ScenarioFailed(outcome)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> Any:
        """The runner's rendering: step, expected vs actual, rule, messages (PAN masked)."""
        if isinstance(excinfo.value, ScenarioFailed):
            from scenarios.report import render_failure

            return render_failure(excinfo.value.outcome)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        """Where the scenario is, for pytest's headers."""
        line = self.loaded.step_lines[0] - 2 if self.loaded.step_lines else 0
        return self.path, max(line, 0), f"scenario: {self.name}"
