"""What `make clean`, `make pytest` and CI's hypothesis profile do, read from dry runs."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _dry_run(target: str, *assignments: str) -> str:
    done = subprocess.run(["make", "-n", target, *assignments], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout


def test_clean_removes_the_hypothesis_example_database() -> None:
    """`make clean` deletes .hypothesis/, so a saved failing example does not outlive it."""
    removed = _dry_run("clean").split()
    assert ".hypothesis" in removed and ".venv" in removed


def test_pytest_runs_on_every_core_unless_told_otherwise() -> None:
    """`make pytest` spreads the suite over 3 workers; PYTEST_WORKERS=0 is serial."""
    assert "-m pytest -n 3 --dist worksteal" in _dry_run("pytest")
    assert "-m pytest -n 0 " in _dry_run("pytest", "PYTEST_WORKERS=0") + " "


def test_ci_profile_keeps_no_example_database() -> None:
    """The profile .ci/run selects reads and writes no saved examples and prints blobs."""
    ci = settings.get_profile("ci")
    assert ci.database is None and ci.print_blob
    assert "--hypothesis-profile=ci" in (ROOT / ".ci" / "run").read_text()


def test_pytest_compiles_every_package_once_before_the_suite() -> None:
    """`make pytest` compiles all five packages before pytest starts its many interpreters."""
    lines = _dry_run("pytest").splitlines()
    compiled = next(i for i, line in enumerate(lines) if "-m compileall" in line)
    tested = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "root_packages"]
    assert compiled < tested and set(packages) <= set(lines[compiled].split())
