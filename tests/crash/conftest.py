"""Fixtures for the crash tests: the ledger each host subprocess runs on, per backend, and the
offline ``poslab-host ledger verify`` run against it."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from host import cli as host_cli


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """The ledger backend: every test that takes it runs once per backend."""
    name: str = request.param
    return name


@pytest.fixture
def ledger_db(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """The ``--db`` value for ``backend``: an SQLite file under ``tmp_path``, or the
    ``pg_url`` fixture's URL (private schema in ``?options=-csearch_path%3D...``).

    Subprocesses get it as one argv item, so nothing on the way splits or re-quotes it.
    """
    if backend == "sqlite":
        return str(tmp_path / "ledger.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def verify_offline(ledger_db: str) -> Callable[[], tuple[int, str]]:
    """Run ``poslab-host ledger verify --db <ledger_db>`` once the host has stopped; return its
    exit status (0 clean) and its output.

    The command runs through the CLI's own entry point in this process: a fresh interpreter
    per call added a second of start-up to every crash case and checked nothing more
    (tests/host/shell/test_cli_process.py runs the command as a process).
    """

    def _verify() -> tuple[int, str]:
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(out):
            status = host_cli.main(["ledger", "verify", "--db", ledger_db])
        return status, out.getvalue().strip()[-2000:]

    return _verify
