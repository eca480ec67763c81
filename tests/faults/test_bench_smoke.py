"""A short poslab-bench run against a real host and the ceiling server: sane output, no timing
assertions (figures are reported in docs/performance.md, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("host.service", reason="the host engine (host.service) has not landed")


def test_bench_with_host_and_ceiling_reports_sane_figures(tmp_path: Path) -> None:
    """--with-host --ceiling: both runs answer requests, the JSON has every figure, exit 0."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "scenarios.loadgen.cli", "--with-host", "--ceiling",
         "--terminals", "4", "--duration", "1", "--warmup", "0.3", "--json", str(out)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    for name in ("host", "ceiling"):
        figures = result[name]
        assert figures["answered"] > 0 and figures["errors"] == 0
        assert figures["approved"] + figures["declined"] == figures["answered"]
        lat = figures["latency_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert figures["server_cpu_us_per_msg"] is not None
    assert result["host"]["by_kind"]["refund"]["approved"] > 0
    assert result["ratio_to_ceiling"] > 0
    assert "host / ceiling:" in proc.stdout and "msg/s" in proc.stdout
