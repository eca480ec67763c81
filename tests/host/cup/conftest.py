"""Fixtures and helpers of the host's CUP tests (the in-process CUP terminal)."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cup_terminal import CupTerminal, config_text  # noqa: E402

from host.clock import ManualClock  # noqa: E402
from host.config import parse_config  # noqa: E402
from host.service import HostService  # noqa: E402
from protocol.cup import CUP_PROFILE  # noqa: E402

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Tuesday


@pytest.fixture(params=["sqlite", "postgresql"])
def term(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CupTerminal]:
    """TERM0001 signed on to a fresh CUP host on each backend, its clock simulated at NOW."""
    db = str(tmp_path / "host.db") if request.param == "sqlite" else \
        str(request.getfixturevalue("pg_url"))
    svc = HostService(parse_config(tomllib.loads(config_text()), "<test>"), db,
                      ManualClock(NOW))
    assert svc.security is not None
    svc.security.use_profile(CUP_PROFILE)  # as the runtime does for --profile cup
    terminal = CupTerminal(svc)
    assert terminal.sign_on()["39"] == "00"
    yield terminal
    svc.close()
