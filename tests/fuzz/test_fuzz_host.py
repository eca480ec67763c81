"""A small seeded fuzz run against a real poslab-host process, on SQLite and PostgreSQL.

3,000 frames on SQLite, the first 1,000 of the same seeded sequence on PostgreSQL (most of them
mutated) each get an answer or a close, never silence, while one client pipelines 3 MB of echo
frames without reading; the host's resident memory stays within a fixed bound of where it
started. The long run is ``make fuzz`` (docs/hardening.md).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from fuzz_host import fuzz, start_host

pytestmark = pytest.mark.long

FRAMES = {"sqlite": 3000, "postgresql": 1000}
"""Frames per backend: one seeded sequence, cut shorter on PostgreSQL. Most mutations are
refused by the parser, the limits or the flow control before any storage, the same code on
both backends; PostgreSQL adds the storage of the frames that pass, and its first 1,000 cover
that at a third of the cost (a host start there costs more too)."""
SEED = 20261203
FLOOD_MB = 3.0
RSS_GROWTH_MB = 32.0
"""Allowed growth of the host's RSS over the run (before flow control: ~28 MB per MB flooded)."""


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """The ledger backend of the host under fuzz."""
    name: str = request.param
    return name


@pytest.fixture
def db(request: pytest.FixtureRequest, backend: str) -> str | None:
    """None (the fuzzer's own SQLite file), or a private PostgreSQL schema."""
    if backend == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


def test_every_fuzzed_frame_gets_one_outcome_and_memory_stays_bounded(
        backend: str, db: str | None, run: Any) -> None:
    """Seeded mutations of valid frames: 0 silent, 0 answered twice, RSS growth bounded."""
    frames = FRAMES[backend]
    with tempfile.TemporaryDirectory(prefix="poslab-fuzz-") as tmp:
        host = start_host(db, Path(tmp))
        try:
            report = run(fuzz(host.ready["iso_port"], host.pid, frames, SEED,
                              flood_mb=FLOOD_MB), timeout=120)
        finally:
            status = host.stop()
    summary = report.as_dict()
    assert report.outcomes["silence"] == 0, summary
    assert report.outcomes["extra_answer"] == 0, summary
    assert sum(report.outcomes.values()) == frames
    assert report.rss_peak_mb - report.rss_start_mb < RSS_GROWTH_MB, summary["rss_mb"]
    assert status == 0
