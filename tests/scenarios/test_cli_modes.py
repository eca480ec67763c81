"""The CLI's parallel mode (--jobs) and its --host mode against a running poslab host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import scenarios
from scenarios import cli

LIBRARY = Path(scenarios.__file__).parent / "library"
ROOT = Path(scenarios.__file__).parent.parent
# A handful of library scenarios with cases, reversals, a timeout and admin checks.
SUBSET = "cent or recall or duplicate or reversal_before or lost"
PAN = "4111111111111111"
ON_A_SHARED_HOST = f"""\
name: refund on a running host
steps:
  - sale: {{card: "{PAN}", amount: "80.00"}}
    id: s1
  - refund: {{original: s1, amount: "30.00", reason: product_recall}}
    expect: {{remaining: "50.00"}}
  - advance: {{hours: 2}}
  - check: {{transaction: s1, refunded: "30.00", remaining: "50.00"}}
  - check: {{ledger: verified}}
"""


def _without_timings(doc: dict[str, Any]) -> dict[str, Any]:
    """The JSON report with wall-clock durations removed (they differ run to run)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if "duration" not in k}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(doc)  # type: ignore[no-any-return]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scenarios", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=240, check=False)


def test_jobs_2_gives_the_same_results_as_jobs_1(tmp_path, in_process_cli, capsys):
    """--jobs 2 (worker processes) reports exactly what --jobs 1 reports, in file order."""
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    # --jobs 1 runs on the test's loop (one interpreter less); --jobs 2 is a real process
    # with its worker processes.
    first = cli.main(["run", str(LIBRARY), "-k", SUBSET, "-q", "--jobs", "1", "--json", str(one)])
    second = _cli("run", str(LIBRARY), "-k", SUBSET, "-q", "--jobs", "2", "--json", str(two))
    # Equal results are the point here; whether they pass is test_library's business.
    assert first in (0, 1), capsys.readouterr().out
    assert second.returncode == first, second.stdout + second.stderr
    doc1, doc2 = json.loads(one.read_text()), json.loads(two.read_text())
    assert len(doc1["scenarios"]) >= 6
    assert _without_timings(doc1) == _without_timings(doc2)


@pytest.fixture
def running_host(run, tmp_path):
    """A poslab host (HostRuntime, simulated clock, admin API) started before the CLI runs."""
    from host.clock import ManualClock
    from host.config import load_config
    from host.runtime import HostRuntime
    from scenarios.runner import DEFAULT_START
    from scenarios.targets import _quiet_log

    runtime = HostRuntime(log=_quiet_log())
    iso_port, admin_port = run(runtime.start(load_config(None), str(tmp_path / "host.db"),
                                             ManualClock(DEFAULT_START), admin_token="qa-token"))
    yield f"127.0.0.1:{iso_port}", f"http://127.0.0.1:{admin_port}"
    run(runtime.stop())


@pytest.fixture
def in_process_cli(monkeypatch):
    """The CLI run on the test loop: it must not stop the reactor's thread pool."""
    monkeypatch.setattr("scenarios.loop.release_threads", lambda: None)


def test_host_mode_with_admin_runs_clock_and_checks(running_host, in_process_cli, write,
                                                    tmp_path, capsys):
    """--host with --admin drives a running host: advance and checks run, none is skipped."""
    iso, admin = running_host
    path = write("shared.yaml", ON_A_SHARED_HOST)
    report = tmp_path / "r.json"
    status = cli.main(["run", str(path), "--host", iso, "--admin", admin, "--token", "qa-token",
                       "--json", str(report)])
    assert status == 0, capsys.readouterr().out
    (outcome,) = json.loads(report.read_text())["scenarios"]
    assert [s["status"] for s in outcome["steps"]] == ["passed"] * 5
    assert outcome["steps"][2]["actual"] == "clock now 2026-03-02T04:00:00+00:00"  # 10:00+08 +2h


def test_host_mode_without_admin_skips_with_the_reason(running_host, in_process_cli, write,
                                                       tmp_path, capsys):
    """--host without an admin API: message steps run, advance/check are skipped with why."""
    iso, _ = running_host
    path = write("shared.yaml", ON_A_SHARED_HOST)
    junit = tmp_path / "j.xml"
    assert cli.main(["run", str(path), "--host", iso, "--junit", str(junit)]) == 0
    out = capsys.readouterr().out
    assert "1 scenarios: 1 passed" in out
    statuses = _steps_of(junit)
    why = "no admin API (run with --admin URL --token T)"
    assert statuses == [f"skipped step 3 (advance): {why}", f"skipped step 4 (check): {why}",
                        f"skipped step 5 (check): {why}"]


def test_host_mode_with_a_wrong_token_fails_the_check(running_host, in_process_cli, write,
                                                      capsys):
    """A wrong admin token is a failure that says so, not a silent skip."""
    iso, admin = running_host
    path = write("shared.yaml", ON_A_SHARED_HOST)
    assert cli.main(["run", str(path), "--host", iso, "--admin", admin, "--token", "wrong"]) == 1
    out = capsys.readouterr().out
    assert "step 3 (advance)" in out and "401" in out


def _steps_of(junit: Path) -> list[str]:
    import xml.etree.ElementTree as ET

    node = ET.parse(junit).getroot().find("testcase/system-out")
    assert node is not None and node.text
    return node.text.splitlines()


def test_output_into_a_closed_pipe_is_no_traceback(tmp_path: Path) -> None:
    """`poslab-scenarios run ... | head` when head has already gone: no BrokenPipeError
    traceback, the run still finishes, writes its JUnit report and exits 0 (all passed)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has left before the first line
    junit = tmp_path / "junit.xml"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "scenarios", "run", str(LIBRARY / "card_declines.yaml"),
             "--junit", str(junit)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120,
            check=False)
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert result.stderr == ""
    assert result.returncode == 0
    assert "<testsuite" in junit.read_text()


@pytest.mark.parametrize("argv, message", [
    (["--admin", "http://127.0.0.1:1"], "--admin needs --host"),
    (["--tls-ca", "ca.pem"], "--tls-ca, --tls-cert and --tls-key need --host"),
    (["--host", "127.0.0.1:1", "--admin", "http://127.0.0.1:2", "--lesson", "--jobs", "2"],
     "--jobs cannot be used with it"),
])
def test_run_options_that_do_not_combine_exit_2(argv: list[str], message: str,
                                                 capsys: Any) -> None:
    """Options of ``run`` that need another, or exclude one, exit 2 naming both."""
    scenario = LIBRARY / "over_refund_declined.yaml"
    assert cli.main(["run", str(scenario), *argv]) == 2
    assert message in capsys.readouterr().out
