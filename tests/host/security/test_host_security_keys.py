"""``poslab-host keys`` and the TMK checks at start-up: generated keys are shown once and stored
sealed, a configured TMK with a wrong check value stops the host with a clear message."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from sec_client import (
    MID,
    TMK,
    TMK_HEX,
    SecureTerminal,
    config_text,
    run_host_cli,
    run_host_command,
    start_host,
)
from sqlalchemy import create_engine, text

from protocol.security import Key, KeyAlgorithm


def _generate(db: str, tid: str, run: Callable[..., CompletedProcess[str]] = run_host_command,
              ) -> Key:
    done = run("keys", "generate", "--tid", tid, "--db", db)
    assert done.returncode == 0, done.stderr
    digits = re.search(r"^tmk = ([0-9A-F]+)$", done.stdout, re.M)
    kcv = re.search(r"^kcv = ([0-9A-F]+)$", done.stdout, re.M)
    assert digits and kcv
    return Key.from_hex(digits[1], KeyAlgorithm.TDES_2KEY, kcv=kcv[1])


@pytest.mark.long
def test_generated_tmk_is_stored_sealed_listed_by_kcv_and_used_at_sign_on(
        tmp_path: Path, db_url: str) -> None:
    """``keys generate`` prints a TMK and KCV once; the database holds neither the key's hex nor
    its bytes; ``keys list`` shows the KCV only; the host wraps sign-on keys under that TMK."""
    tmk = _generate(db_url, "TERM0002")
    hex_key = tmk.get_secret_value().hex()
    engine = create_engine(db_url if "://" in db_url else f"sqlite:///{db_url}")
    with engine.connect() as conn:
        rows = [tuple(str(v) for v in row) for row in conn.execute(text(
            "SELECT terminal_id, algorithm, sealed, kcv FROM terminal_key"))]
    engine.dispose()
    assert len(rows) == 1 and rows[0][3] == tmk.kcv().hex().upper()
    assert hex_key not in rows[0][2].lower() and hex_key.upper() not in rows[0][2]
    if "://" not in db_url:
        assert tmk.get_secret_value() not in Path(db_url).read_bytes()
    listed = run_host_command("keys", "list", "--db", db_url)
    assert listed.returncode == 0 and "TERM0002" in listed.stdout
    assert tmk.kcv().hex().upper() in listed.stdout and hex_key.upper() not in listed.stdout
    again = run_host_command("keys", "generate", "--tid", "TERM0002", "--db", db_url)
    assert again.returncode == 2 and "--replace" in again.stderr
    server = start_host(tmp_path, db_url, config_text())
    try:
        term = SecureTerminal(int(server.ready["iso_port"]), "TERM0002")
        try:
            answer = term.sign_on(tmk)  # raises unless every KCV checks under this TMK
            assert answer["39"] == "00" and term.keys is not None and answer["42"] == MID
        finally:
            term.close()
    finally:
        assert server.stop() == 0


def test_a_sealed_tmk_does_not_open_for_another_terminal(tmp_path: Path) -> None:
    """A sealed TMK copied to another terminal's row is refused at sign-on (0810 without keys
    is not sent; the host answers 96 and logs no key)."""
    db = str(tmp_path / "poslab.db")
    _generate(db, "TERM0002", run_host_cli)  # the command as a process, once
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE terminal_key SET terminal_id = 'TERM0001'"))
    engine.dispose()
    server = start_host(tmp_path, db, config_text(with_tmk=False))
    try:
        term = SecureTerminal(int(server.ready["iso_port"]), "TERM0001")
        try:
            assert term.sign_on()["39"] == "96"
        finally:
            term.close()
    finally:
        assert server.stop() == 0


def test_a_wrong_tmk_check_value_stops_the_host_naming_the_terminal(tmp_path: Path) -> None:
    """A TMK whose KCV does not match exits 2 with one line naming the terminal and both check
    values, never the key digits."""
    path = tmp_path / "bad.toml"
    path.write_text(config_text(tmk_kcv="000000"), encoding="utf-8")
    done = run_host_cli("--config", str(path), "--db", str(tmp_path / "p.db"),
                        "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "TMK of terminal TERM0001" in line and "000000" in line and "\n" not in line
    assert TMK.kcv().hex().upper() in line and TMK_HEX not in line.upper()
