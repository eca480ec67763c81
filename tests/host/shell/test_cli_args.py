"""poslab-host argument handling in-process: one clear line and exit 2, never a traceback."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from host.cli import main, write_ready_file


@pytest.mark.parametrize(("argv", "message"), [
    (["--listen", "nonsense"], "expected HOST:PORT"),
    (["--admin", "127.0.0.1:70000"], "expected HOST:PORT"),
    (["--profile", "cup-bcd"], "invalid choice: 'cup-bcd'"),
    (["--clock", "fast"], "invalid choice: 'fast'"),
    (["--clock", "simulated", "--start", "2025-03-14T10:00:00"], "has no timezone"),
    (["--clock", "simulated", "--start", "yesterday"], "not an ISO 8601 instant"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--front-processes", "17"], "expected a whole number 0-16, got '17'"),
    (["--front-processes", "two"], "expected a whole number 0-16, got 'two'"),
    (["ledger"], "required: {verify,anchor}"),
])
def test_bad_arguments_one_line_exit_2(capsys: Any, argv: list[str], message: str) -> None:
    """Each bad argument exits 2 with one stderr line naming the problem."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_start_without_simulated_clock_is_refused(capsys: Any) -> None:
    """--start only makes sense with --clock simulated."""
    assert main(["--start", "2025-03-14T10:00:00Z"]) == 2
    assert capsys.readouterr().err == "poslab-host: --start needs --clock simulated\n"


def test_ledger_verify_missing_file(capsys: Any, tmp_path: Path) -> None:
    """Verifying a database file that does not exist is an error (2), not an empty ledger."""
    assert main(["ledger", "verify", "--db", str(tmp_path / "nope.db")]) == 2
    assert "no database file at" in capsys.readouterr().err


def test_ready_file_is_atomic_json_readable_by_owner_only(tmp_path: Path) -> None:
    """The ready file appears whole, as JSON, mode 0600, with no temp file left behind."""
    path = tmp_path / "ready.json"
    write_ready_file(str(path), {"iso_port": 1, "admin_port": 2, "pid": 3, "admin_token": "t"})
    assert json.loads(path.read_text())["admin_token"] == "t"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["ready.json"]


def test_ledger_verify_exit_codes(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    """ledger verify prints every violation and exits 1; a clean ledger exits 0."""
    db = tmp_path / "l.db"
    db.write_bytes(b"")
    report: dict[str, Any] = {"ok": False, "checked": {"entries": 3}, "violations": [
        {"invariant": "I1", "detail": "entry 2 unbalanced: USD +100"},
        {"invariant": "I6", "detail": "hash chain broken at entry 3"}]}
    verifier = types.ModuleType("host.store_verify")
    verifier.verify_host_database = lambda url, key, anchor=None: report  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "host.store_verify", verifier)
    fake = types.ModuleType("host.ledger")
    fake.key_path = lambda url, configured=None: Path(url)  # type: ignore[attr-defined]
    fake.read_key = lambda path: "key"  # type: ignore[attr-defined]
    fake.parse_anchors = lambda value: (value,)  # type: ignore[attr-defined]
    fake.AnchorError = fake.ChainKeyError = ValueError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "host.ledger", fake)
    assert main(["ledger", "verify", "--db", str(db)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "I1: entry 2 unbalanced: USD +100", "I6: hash chain broken at entry 3"]
    report.update(ok=True, violations=[])
    assert main(["ledger", "verify", "--db", str(db)]) == 0
    assert capsys.readouterr().out == "ledger OK (entries=3)\n"


PG_URL = "postgresql://poslab@127.0.0.1:1/poslab"


@pytest.mark.parametrize("argv", [
    ["ledger", "verify", "--db", PG_URL],
    ["report", "settlement", "--db", PG_URL.replace("postgresql", "postgresql+psycopg"),
     "--date", "2026-11-27"],
])
def test_postgresql_without_its_driver_names_the_extra(capsys: Any, monkeypatch: Any,
                                                       argv: list[str]) -> None:
    """`--db postgresql://...` with psycopg missing: exit 2, one line that says which extra
    to install, before any connection or reactor is attempted."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "pip install 'poslab[postgresql]'" in err


def test_serving_postgresql_without_its_driver_names_the_extra() -> None:
    """The same for the server itself (in a child process: serving installs a reactor)."""
    code = ("import sys; sys.modules['psycopg'] = None; from host.cli import main; "
            f"raise SystemExit(main(['--db', {PG_URL!r}, '--listen', '127.0.0.1:0', "
            "'--admin', '127.0.0.1:0']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "pip install 'poslab[postgresql]'" in result.stderr


def test_postgresql_driver_is_an_extra_of_its_own() -> None:
    """The distribution offers a `postgresql` extra that brings psycopg, which the plain
    install leaves out."""
    from importlib.metadata import metadata

    meta = metadata("poslab")
    assert "postgresql" in (meta.get_all("Provides-Extra") or [])
    requires = meta.get_all("Requires-Dist") or []
    assert any(r.startswith("psycopg") and 'extra == "postgresql"' in r for r in requires)
    assert not [r for r in requires if r.startswith("psycopg") and "extra" not in r]
