"""Fixtures for the host shell tests: a whole host started in-process on the shared reactor."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from shell_helpers import NOW, TOKEN, FakeService, limits_config  # noqa: E402

from host.clock import ManualClock  # noqa: E402
from host.logs import MessageLog  # noqa: E402
from host.runtime import HostRuntime  # noqa: E402


@dataclass
class RunningHost:
    """A started host and what tests inspect."""

    runtime: HostRuntime
    service: Any
    log: io.StringIO

    @property
    def iso_port(self) -> int:
        return self.runtime.iso_port

    @property
    def admin_port(self) -> int:
        return self.runtime.admin_port

    def log_lines(self) -> list[str]:
        return self.log.getvalue().splitlines()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A ledger of each backend: an SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def start_host(run: Callable[..., Any], tmp_path: Path) -> Iterator[Callable[..., RunningHost]]:
    """Start hosts with a fake service (or a given one); stop them after the test."""
    started: list[HostRuntime] = []

    def _start(profile: str = "iso87-ascii", service: Any = None, with_fields: bool = False,
               **limits: float) -> RunningHost:
        svc = service if service is not None else FakeService()
        stream = io.StringIO()
        runtime = HostRuntime(log=MessageLog(stream, with_fields=with_fields),
                              service_factory=lambda *a, **k: svc)
        run(runtime.start(limits_config(**limits), str(tmp_path / "host.db"), ManualClock(NOW),
                          profile=profile, admin_token=TOKEN))
        started.append(runtime)
        return RunningHost(runtime, svc, stream)

    yield _start
    for runtime in started:
        run(runtime.stop())
