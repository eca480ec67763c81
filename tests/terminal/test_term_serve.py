"""``poslab-terminal --serve`` without a browser: options, the TID pool, the binding policy,
the session hand-over and the served page's links."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from browser import served_terminals
from textual.widgets import Static

from terminal.cli import (
    build_config,
    classroom_host_arguments,
    main,
    parse_command_line,
    serve_options,
    session_arguments,
)
from terminal.config import TerminalConfig
from terminal.serve_session import LOCK_FOLDER, NoticeApp, pool_full_message, run_session
from terminal.tidpool import PoolError, claim, parse_pool


@pytest.mark.parametrize(("spec", "tids"), [
    ("TERM0001-TERM0003", ("TERM0001", "TERM0002", "TERM0003")),
    ("LAB00009-LAB00011,SPARE001", ("LAB00009", "LAB00010", "LAB00011", "SPARE001")),
    (" TERM0007 ", ("TERM0007",)),
    ("00000001-00000002", ("00000001", "00000002")),
])
def test_pool_specs(spec: str, tids: tuple[str, ...]) -> None:
    """Ranges keep their prefix and digit width; lists and ranges mix, in order."""
    assert parse_pool(spec) == tids


@pytest.mark.parametrize(("spec", "message"), [
    ("TERM0003-TERM0001", "ends before it starts"),
    ("TERM0001-LAB00002", "same prefix and digit count"),
    ("TERM01-TERM0002", "same prefix and digit count"),
    ("TERM0001,,TERM0002", "empty entry"),
    ("TERM1", "'TERM1' is not a terminal id"),
    ("TERM/001", "is not a terminal id"),
    ("TERM0001,TERM0001", "TERM0001 appears twice"),
    ("A-B-C", "a range is FIRST-LAST"),
])
def test_bad_pool_specs(spec: str, message: str) -> None:
    """A malformed pool says which part is wrong and why."""
    with pytest.raises(PoolError, match=message):
        parse_pool(spec)


def test_claims_are_exclusive_until_the_holder_dies(tmp_path: Path) -> None:
    """A TID held by another process is skipped; when that process is killed (-9), the id is
    free again; the pool exhausted is None."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from terminal.tidpool import claim; c = claim(('TERM0001',), Path(sys.argv[1])); "
         "print(c.tid, flush=True); sys.stdin.read()", str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "TERM0001"
        mine = claim(("TERM0001", "TERM0002"), tmp_path)
        assert mine is not None and mine.tid == "TERM0002"
        assert claim(("TERM0001", "TERM0002"), tmp_path) is None
    finally:
        holder.kill()
        holder.wait()
    again = claim(("TERM0001", "TERM0002"), tmp_path)
    assert again is not None and again.tid == "TERM0001"
    mine.release()
    again.release()


def test_session_runs_as_the_claimed_id_in_its_own_folder(tmp_path: Path) -> None:
    """A tab's terminal runs as the first free id, in DATA-DIR/<TID>, and gives the id back
    when it ends."""
    taken = claim(("LAB00001",), tmp_path / LOCK_FOLDER)
    seen: list[TerminalConfig] = []

    def terminal(config: TerminalConfig) -> int:
        seen.append(config)
        return 0

    pool = ("LAB00001", "LAB00002")
    assert run_session(TerminalConfig(data_dir=tmp_path), pool, terminal) == 0
    assert [(c.terminal_id, c.data_dir) for c in seen] == [("LAB00002", tmp_path / "LAB00002")]
    assert taken is not None
    taken.release()
    held = claim(pool, tmp_path / LOCK_FOLDER)
    assert held is not None and held.tid == "LAB00001"  # both free again
    held.release()


def test_exhausted_pool_is_explained_not_run(tmp_path: Path, run: Any,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """With every id held, no terminal runs: the tab's notice and the server's output both
    name the pool and --tid-pool, and the status is 2."""
    held = [claim((tid,), tmp_path / LOCK_FOLDER) for tid in ("LAB00001", "LAB00002")]
    shown: list[str] = []

    def terminal(config: TerminalConfig) -> int:
        raise AssertionError("a terminal ran without an id")

    pool = ("LAB00001", "LAB00002")
    assert run_session(TerminalConfig(data_dir=tmp_path), pool, terminal, shown.append) == 2
    assert shown == [pool_full_message(pool)]
    assert "LAB00001..LAB00002 (2 ids)" in shown[0] and "--tid-pool" in shown[0]
    assert shown[0] in capsys.readouterr().err
    screen: list[str] = []

    async def look() -> None:
        app = NoticeApp(shown[0])
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            screen.append(str(app.query_one("#notice", Static).render()))

    run(look())
    assert shown[0] in screen[0] and "Restart" in screen[0]
    for claimed in held:
        assert claimed is not None
        claimed.release()


def test_session_arguments_carry_the_terminal_settings(tmp_path: Path) -> None:
    """What a tab's process parses back is the server's terminal config, pool included."""
    argv = ["--serve", "--host", "10.1.2.3:9000", "--mid", "MERCHANT0000042", "--currency",
            "EUR", "--data-dir", str(tmp_path), "--timeout", "2.5", "--reversal-repeats", "1",
            "--echo", "0", "--supervisor-password", "1234", "--no-supervisor",
            "--tid-pool", "LAB00001-LAB00004"]
    args, _ = parse_command_line(argv)
    config = build_config(args)
    child, _ = parse_command_line(["--serve-session", *session_arguments(args, config)])
    assert build_config(child) == config
    assert serve_options(child)[1] == parse_pool("LAB00001-LAB00004")


def test_session_arguments_carry_tls(tmp_path: Path) -> None:
    """A served tab connects over TLS when the server was told to."""
    args, _ = parse_command_line(["--serve", "--tls", "--data-dir", str(tmp_path)])
    config = build_config(args)
    child, _ = parse_command_line(["--serve-session", *session_arguments(args, config)])
    assert build_config(child) == config
    assert config.tls is not None


def test_classroom_host_enrols_pool_ids_unless_configured() -> None:
    """The embedded host of --serve accepts the pool's ids unless a --config is given."""
    assert classroom_host_arguments(["--strict"]) == ["--strict", "--allow-unknown-terminals"]
    assert classroom_host_arguments(["--config=c.toml"]) == ["--config=c.toml"]
    assert classroom_host_arguments(["--allow-unknown-terminals"]).count(
        "--allow-unknown-terminals") == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["--port", "8000"], "--port only applies with --serve"),
    (["--tid-pool", "TERM0001-TERM0002"], "--tid-pool only applies with --serve"),
    (["--allow-remote"], "--allow-remote only applies with --serve"),
    (["--serve", "--tid", "TERM0001"], "--tid names one terminal"),
    (["--serve", "--record", "x.yaml"], "--record records one terminal"),
    (["--serve", "--port", "70000"], "--port must be between 0 and 65535"),
    (["--serve", "--tid-pool", "TERM1-TERM3"], "--tid-pool: 'TERM1' is not a terminal id"),
    (["--serve", "--bind", "0.0.0.0"], "--bind 0.0.0.0 would let other machines"),
    (["--serve", "--bind", "classroom.example"], "add --allow-remote"),
])
def test_bad_serve_options_are_one_line(argv: list[str], message: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Each wrong --serve combination exits 2 with one line naming the option."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_remote_bind_is_refused_before_a_host_starts(tmp_path: Path) -> None:
    """--bind elsewhere without --allow-remote starts no embedded host."""
    assert main(["--serve", "--with-host", "--bind", "0.0.0.0", "--data-dir",
                 str(tmp_path)]) == 2
    assert not (tmp_path / "host.log").exists()


def test_served_page_links_back_to_the_address_used(tmp_path: Path) -> None:
    """The ready file names the bound port; the page's websocket and static links use the
    address the browser asked for, and the page is titled with the pool."""
    ready = tmp_path / "ready.json"
    with served_terminals(tmp_path / "data", "--ready-file", str(ready),
                          "--tid-pool", "LAB00001-LAB00003") as served:
        url = served.url
        info = json.loads(ready.read_text())
        assert info["url"] == url and url == f"http://127.0.0.1:{info['port']}/"
        assert info["tids"] == ["LAB00001", "LAB00002", "LAB00003"]
        request = urllib.request.Request(url, headers={"Host": f"localhost:{info['port']}"})
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
            page = resp.read().decode()
    assert f'data-session-websocket-url="ws://localhost:{info["port"]}/ws"' in page
    assert f"http://localhost:{info['port']}/static/js/textual.js" in page
    assert "LAB00001..LAB00003 (3 ids)" in page


def test_allowed_remote_bind_warns(tmp_path: Path) -> None:
    """--bind 0.0.0.0 --allow-remote serves, after a warning on stderr."""
    with served_terminals(tmp_path, "--bind", "0.0.0.0", "--allow-remote") as served:
        assert served.url.startswith("http://0.0.0.0:")
        served.stop()
    err = "".join(served.stderr)
    assert "WARNING: serving on 0.0.0.0" in err and "anyone who can reach" in err


def test_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A --port another program holds ends in one line naming the address, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--serve", "--port", str(port), "--host", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
    assert err.count("\n") == 1
