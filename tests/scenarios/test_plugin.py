"""The pytest plugin, through its installed pytest11 entry point, in a child pytest run."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CONFTEST = f"""\
import sys
sys.path.insert(0, {str(HERE)!r})
import scenarios.cli
from fakehost import CONFIG, FakeService
from scenarios.targets import start_local

async def fake_target(scenario, start):
    return await start_local(scenario, start, config=CONFIG,
                             service_factory=lambda *a, **k: FakeService())

scenarios.cli.make_target_factory = lambda remote: fake_target
"""
# The child runs get the scenario plugin from its entry point like any installation; the other
# installed plugins, which they never use, would add ~1.5 s of start-up to each child process
# and xdist worker (textual-snapshot alone imports Textual).
CHILD_OPTIONS = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:schemathesis",
                 "-p", "no:textual-snapshot", "-p", "no:syrupy", "-p", "no:anyio",
                 "-p", "no:platformdirs"]
# The parent's PYTEST_ADDOPTS (CI sets hypothesis options there) would reach the child,
# whose hypothesis plugin is off, and make it refuse its command line.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}


@pytest.mark.long
def test_plugin_collects_runs_and_reports(tmp_path):
    """pytest DIR collects scenario files (not other YAML), runs them, renders failures; -k
    selects by tag."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "ok.yaml").write_text('name: echo works\ntags: [net]\nsteps:\n  - echo:\n')
    (tmp_path / "bad.yaml").write_text(
        'name: sale declined\nsteps:\n  - sale: {card: "4111111111111111", amount: "1.05"}\n')
    (tmp_path / "other.yaml").write_text(
        'name: echo again\ntags: [slow]\nsteps:\n  - echo:\n')
    (tmp_path / "ci.yaml").write_text("name: CI\njobs:\n  t:\n    steps: []\n")
    junit = tmp_path / "junit.xml"
    # One child run (each costs an interpreter and the plugin's imports): "net" selects
    # "echo works" by its tag alone, "declined" selects by name, "echo again" is left out;
    # a collected ci.yaml would add a second deselected item.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path), *CHILD_OPTIONS,
         f"--junitxml={junit}", "-q", "-k", "net or declined", "--rootdir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=CHILD_ENV)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "1 failed, 1 passed, 1 deselected" in out
    assert "expected: response 00 (Approved)" in out
    assert "actual:   response 05 (Do not honour), rule CARD_DECLINED" in out
    assert "411111******1111" in out and "4111111111111111" not in out
    names = sorted(c.get("name") for c in ET.parse(junit).getroot().iter("testcase"))
    assert names == ["echo works", "sale declined"]


@pytest.mark.long
def test_plugin_runs_under_xdist(tmp_path):
    """Scenario items distribute over pytest-xdist workers (-n 2) and fail the same way."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    for i in range(3):
        (tmp_path / f"ok{i}.yaml").write_text(f"name: echo {i}\nsteps:\n  - echo:\n")
    (tmp_path / "bad.yaml").write_text(
        'name: sale declined\nsteps:\n  - sale: {card: "4111111111111111", amount: "1.05"}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path), *CHILD_OPTIONS, "-n", "2",
         "-q", "--rootdir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=CHILD_ENV)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 3 passed" in proc.stdout, proc.stdout
    assert "rule CARD_DECLINED" in proc.stdout
