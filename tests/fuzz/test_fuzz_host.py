"""A small seeded fuzz run against a real poslab-host process, on SQLite and PostgreSQL.

3,000 frames (most of them mutated) each get an answer or a close, never silence, while one
client pipelines 3 MB of echo frames without reading; the host's resident memory stays within
a fixed bound of where it started. The long run is ``make fuzz`` (docs/hardening.md).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from fuzz_host import fuzz, start_host

FRAMES = 3000
SEED = 20261203
FLOOD_MB = 3.0
RSS_GROWTH_MB = 32.0
"""Allowed growth of the host's RSS over the run (before flow control: ~28 MB per MB flooded)."""


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None (the fuzzer's own SQLite file), or a private PostgreSQL schema."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


def test_every_fuzzed_frame_gets_one_outcome_and_memory_stays_bounded(db: str | None,
                                                                      run: Any) -> None:
    """Seeded mutations of valid frames: 0 silent, 0 answered twice, RSS growth bounded."""
    with tempfile.TemporaryDirectory(prefix="poslab-fuzz-") as tmp:
        host = start_host(db, Path(tmp))
        try:
            report = run(fuzz(host.ready["iso_port"], host.pid, FRAMES, SEED,
                              flood_mb=FLOOD_MB), timeout=120)
        finally:
            status = host.stop()
    summary = report.as_dict()
    assert report.outcomes["silence"] == 0, summary
    assert report.outcomes["extra_answer"] == 0, summary
    assert sum(report.outcomes.values()) == FRAMES
    assert report.rss_peak_mb - report.rss_start_mb < RSS_GROWTH_MB, summary["rss_mb"]
    assert status == 0
