"""A TLS set-up that cannot work is one line naming the file and the problem, exit status 2.

``poslab-host`` checks its certificate files before it opens the database, so these run the
CLI in-process and never start a reactor; the terminal and the scenario runner check theirs
when they parse the command line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tls_pki import Pki

from host.cli import main as host_main
from scenarios import cli as scenarios_cli
from terminal.cli import main as terminal_main


def _config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "host.toml"
    path.write_text(body, encoding="utf-8")
    return str(path)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("problem", ["missing", "not_pem", "foreign_key"])
def test_bad_certificate_file_in_config_is_one_line_exit_2(
        problem: str, pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing certificate file, a file without PEM and a key of another certificate each
    stop the host with one line naming the file, status 2, and no database is created."""
    cert, key = pki.server.cert, pki.server.key
    expected = {"missing": "cannot read the file", "not_pem": "no PEM certificate",
                "foreign_key": "does not belong to the certificate"}[problem]
    if problem == "missing":
        cert = tmp_path / "nowhere.pem"
    elif problem == "not_pem":
        cert = tmp_path / "garbage.pem"
        cert.write_text("this is not a certificate\n", encoding="utf-8")
    else:
        key = pki.client("TERM0001").key
    config = _config(tmp_path, f'[tls.iso]\ncert_file = "{cert}"\nkey_file = "{key}"\n')
    db = tmp_path / "ledger.db"
    assert host_main(["--config", config, "--db", str(db), "--listen", "127.0.0.1:0",
                      "--admin", "127.0.0.1:0"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("poslab-host: TLS: [tls.iso] server")
    assert expected in line and (str(cert) in line or str(key) in line)
    assert not db.exists()


def test_bad_admin_key_flag_names_the_file(pki: Pki, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``--admin-tls-key`` pointing at a missing file: one line naming it, status 2."""
    missing = tmp_path / "admin.key"
    assert host_main(["--db", str(tmp_path / "l.db"), "--admin-tls-cert", str(pki.server.cert),
                      "--admin-tls-key", str(missing)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "[tls.admin] server key" in line and str(missing) in line


@pytest.mark.parametrize(("argv", "expected"), [
    (["--tls-cert", "x.pem"], "cert_file and key_file go together"),
    (["--tls-require-client-cert"], "require_client_cert needs client_ca_file"),
    (["--tls-tid-in-cert"], "tid_in_certificate needs client_ca_file"),
])
def test_inconsistent_tls_options_are_one_line_exit_2(
        argv: list[str], expected: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Options that cannot make a TLS port are refused by name before anything starts."""
    assert host_main(["--db", str(tmp_path / "l.db"), *argv]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("poslab-host: bad config:") and expected in line


def test_unknown_tls_key_in_config_is_refused(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A misspelt ``[tls.iso]`` key is named, not ignored."""
    config = _config(tmp_path, '[tls.iso]\ncert = "x.pem"\n')
    assert host_main(["--config", config, "--db", str(tmp_path / "l.db")]) == 2
    assert "tls.iso.cert: unknown key" in _one_line(capsys.readouterr().err)


def test_terminal_bad_tls_file_is_one_line_exit_2(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``poslab-terminal --tls-ca`` naming a missing file stops before the screen opens."""
    missing = tmp_path / "ca.pem"
    assert terminal_main(["--tls-ca", str(missing), "--data-dir", str(tmp_path)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("poslab-terminal: --tls-ca") and str(missing) in line


def test_terminal_client_certificate_needs_its_key(pki: Pki, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``--tls-cert`` without ``--tls-key`` is a usage error saying both go together."""
    cert = pki.client("TERM0001").cert
    assert terminal_main(["--tls-cert", str(cert), "--data-dir", str(tmp_path)]) == 2
    assert "go together" in _one_line(capsys.readouterr().err)


def test_scenarios_bad_tls_file_is_exit_2(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """``poslab-scenarios run --host ... --tls-ca`` with a missing file runs nothing, status 2."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nsteps:\n  - echo: {}\n", encoding="utf-8")
    missing = tmp_path / "ca.pem"
    assert scenarios_cli.main(["run", str(scenario), "--host", "127.0.0.1:9",
                               "--tls-ca", str(missing)]) == 2
    out = capsys.readouterr().out
    assert str(missing) in out and "cannot read the file" in out
