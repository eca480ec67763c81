"""Fixtures for the scenario tests: a fake-service host factory and file writing helpers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakehost import CONFIG, FakeService  # noqa: E402

from scenarios.schema import Scenario  # noqa: E402
from scenarios.targets import Target, start_local  # noqa: E402


async def fake_target(scenario: Scenario, start: datetime) -> Target:
    """A fresh in-process host whose service is the rule-less fake."""
    return await start_local(scenario, start, config=CONFIG,
                             service_factory=lambda *a, **k: FakeService())


@pytest.fixture
def fake_factory() -> Callable[..., Any]:
    """The target factory tests hand to the runner."""
    return fake_target


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a scenario file under tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write
