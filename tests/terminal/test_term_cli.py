"""poslab-terminal's command line and start-up failures: one readable line, never a
traceback."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from term_helpers import screen_text, until

from terminal.app import PosApp
from terminal.cli import main, parse_command_line
from terminal.config import TerminalConfig
from terminal.flow import Step
from terminal.hostproc import HostProcess


@pytest.mark.parametrize(("args", "message"), [
    (["--host", "nope"], "--host expects HOST:PORT"),
    (["--host", "127.0.0.1:99999"], "--host expects HOST:PORT"),
    (["--tid", "SHORT"], "--tid must be exactly 8 characters"),
    (["--mid", "M1"], "--mid must be exactly 15 characters"),
    (["--currency", "XXX"], "--currency: unknown currency 'XXX'"),
    (["--timeout", "0"], "--timeout must be between 0 and 300"),
])
def test_bad_arguments_are_one_line(args: list[str], message: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Each bad option value exits 2 with a one-line message naming the option."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_host_that_fails_to_start_is_reported(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """--with-host, then a terminal option, then a host option the host refuses: exit 2 with
    the host's own complaint, and the host ran in the terminal's data directory."""
    assert main(["--with-host", "--data-dir", str(tmp_path), "--", "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert "poslab-host exited with status 2" in err and "--no-such-option" in err
    assert "Traceback" not in err
    assert "--no-such-option" in (tmp_path / "host.log").read_text()


@pytest.mark.parametrize(("argv", "data_dir", "host_args"), [
    (["--with-host", "--data-dir", "D"], "D", []),
    (["--data-dir", "D", "--with-host"], "D", []),
    (["--with-host", "--data-dir", "D", "--", "--strict", "--db", "x.db"], "D",
     ["--strict", "--db", "x.db"]),
    (["--with-host", "--host-arg=--strict", "--data-dir", "D", "--host-arg", "x"], "D",
     ["--strict", "x"]),
    (["--with-host", "--host-arg=--strict", "--", "--data-dir", "H"], "data/terminal",
     ["--strict", "--data-dir", "H"]),
])
def test_with_host_is_a_flag_in_any_position(argv: list[str], data_dir: str,
                                             host_args: list[str]) -> None:
    """--with-host takes no arguments: options after it stay the terminal's; the host gets
    only what follows -- and the --host-arg values."""
    args, extra = parse_command_line(argv)
    assert args.with_host and args.data_dir == data_dir and extra == host_args


def test_host_arguments_without_with_host_are_refused(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Host arguments with no embedded host to take them: exit 2, one line."""
    assert main(["--", "--strict"]) == 2
    err = capsys.readouterr().err
    assert "need --with-host" in err and err.count("\n") == 1


def test_host_command_line() -> None:
    """The embedded host listens on free loopback ports, writes a ready file and keeps its
    database in the data directory unless told otherwise."""
    cmd = HostProcess(Path("/d"), ["--strict"]).command()
    assert cmd[:3] == [sys.executable, "-m", "host"]
    assert cmd[3:9] == ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ready-file",
                        "/d/host-ready.json"]
    assert cmd[-3:] == ["--db", "sqlite:////d/host.db", "--strict"]
    assert "--db" not in HostProcess(Path("/d"), ["--db", "x"]).command()[:-2]
    assert "--db" not in HostProcess(Path("/d"), ["--db=x"]).command()
    assert HostProcess(Path("/d"), [], "iso87-ascii-4a").command()[-2:] == [
        "--profile", "iso87-ascii-4a"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_host_is_a_screen_state(tmp_path: Path, run: Any) -> None:
    """With nothing listening the terminal says OFFLINE with what to do, and a sale ends in
    HOST OFFLINE rather than an error."""
    config = TerminalConfig(port=_closed_port(), data_dir=tmp_path, echo_interval_s=0,
                            timeout_s_response=0.3)
    app = PosApp(config)
    texts: list[str] = []

    async def go() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.link_state == "OFFLINE", what="offline")
            await pilot.pause()
            texts.append(screen_text(pilot))
            await pilot.press("1", "5", "enter", "i")
            await until(pilot, lambda: app.state.step is Step.RESULT, what="the result")
            texts.append(screen_text(pilot))

    run(go())
    assert "OFFLINE" in texts[0] and "connection refused" in texts[0]
    assert "--with-host" in texts[0] and "F5" in texts[0]
    assert "HOST OFFLINE" in texts[1] and len(app.journal) == 0
