"""The iso8583sim comparison's own logic: reading iso8583sim's report, refusing a round that
was not all approvals, and the median ratio. No iso8583sim here (it is AGPL and lives in its
own environment): the report text below is what ``iso8583sim load`` 1.6.0 printed."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from scenarios.loadgen import compare_iso8583sim as cmp

REPORT = """\
   Load test: 127.0.0.1:42929
┏━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━┓
┃ Metric         ┃              Value ┃
┡━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━┩
│ Requests       │              4,000 │
│ Responses      │              3,998 │
│ Timeouts       │                  2 │
│ Errors         │                  0 │
│ Duration       │             1.92 s │
│ Throughput     │        2,082 msg/s │
│ Latency p50    │           22.10 ms │
│ Latency p95    │           40.00 ms │
│ Latency p99    │           48.31 ms │
│ Latency max    │           60.00 ms │
│ Response codes │ 00: 3,990, 05: 8   │
└────────────────┴────────────────────┘
"""


def test_load_report_is_read_row_by_row() -> None:
    """Counts, msg/s, latencies and every response code come out of the rich table."""
    f = cmp.parse_load_report(REPORT)
    assert (f.requests, f.responses, f.timeouts, f.errors) == (4000, 3998, 2, 0)
    assert (f.msg_per_s, f.p50_ms, f.p99_ms) == (2082.0, 22.10, 48.31)
    assert f.codes == {"00": 3990, "05": 8}


def test_unreadable_report_is_a_clear_error() -> None:
    """Output without the table (iso8583sim failed to connect) names what it said instead."""
    with pytest.raises(cmp.CompareError, match="Load test failed: refused"):
        cmp.parse_load_report("Load test failed: refused\n")


def test_a_round_with_any_decline_does_not_count() -> None:
    """Every request must be answered 00, or the comparison stops and says what came back."""
    with pytest.raises(cmp.CompareError, match="3998 of 4000 answered.*'05': 8"):
        cmp._check("poslab", cmp.parse_load_report(REPORT), 4000)


def test_median_ratio_of_alternated_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sides alternate (iso8583sim first) and the median of the per-round ratios is reported."""
    order: list[str] = []
    rates = iter([1000.0, 600.0, 1000.0, 2500.0, 1000.0, 900.0])

    def fake(side: str) -> object:
        def measure(sim: Path, args: argparse.Namespace, startup_s: float = 0.0) -> cmp.LoadFigures:
            order.append(side)
            return cmp.LoadFigures(4000, 4000, 0, 0, next(rates), 1.0, 2.0, {"00": 4000})
        return measure

    monkeypatch.setattr(cmp, "measure_sim", fake("iso8583sim"))
    monkeypatch.setattr(cmp, "measure_poslab", fake("poslab"))
    monkeypatch.setattr(cmp, "load_startup_cpu", lambda sim: 0.2)
    args = argparse.Namespace(rounds=3, count=4000, concurrency=50, connections=10)
    result = cmp.compare(Path("iso8583sim"), args, out=io.StringIO())
    assert order == ["iso8583sim", "poslab"] * 3
    assert [round(r["ratio"], 2) for r in result["rounds"]] == [0.6, 2.5, 0.9]
    assert result["median_ratio"] == pytest.approx(0.9)
    assert "| 2 | 1,000 | 2,500 | 2.50 |" in cmp.render(result)


def test_missing_iso8583sim_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without the program the run stops at once with how to get it."""
    assert cmp.main(["--iso8583sim", str(tmp_path / "nope")]) == 2
    assert "make bench-compare installs it" in capsys.readouterr().err
