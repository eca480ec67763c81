"""``poslab-host console --serve``: its option errors, and the console in a real browser
(headless system Chromium) against a live host process."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from host.cli import main
from host.console.serve import ServeOptions, bind_warning
from protocol import CardData, Codec, EntryMode, Money, Pan, SaleRequest, frame
from tests.terminal.browser import Tab, chromium_or_skip, launch

HOST = [sys.executable, "-m", "host"]
PAN = "4111111111111111"
STARTUP_TIMEOUT_S = 60.0


@pytest.mark.parametrize(("argv", "message"), [
    (["--port", "0"], "--port only applies with --serve"),
    (["--allow-remote"], "--allow-remote only applies with --serve"),
    (["--serve-ready-file", "x.json"], "--serve-ready-file only applies with --serve"),
    (["--serve", "--port", "70000"], "--port must be between 0 and 65535, got 70000"),
    (["--serve", "--bind", "0.0.0.0"], "--bind 0.0.0.0 would let other machines steer the host"),
    (["--serve"], "give --admin URL (with --token T) or --ready-file F"),
    (["--serve", "--ready-file", "missing.json"], "--ready-file missing.json: no such file"),
])
def test_serve_option_errors_are_one_line_and_exit_2(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong or misplaced --serve option is refused in one stderr line, exit 2, no server."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POSLAB_ADMIN_TOKEN", raising=False)
    assert main(["console", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"poslab-host console: {message}"), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_remote_bind_allowed_on_purpose_is_warned_about() -> None:
    """Loopback binds quietly; --bind 0.0.0.0 --allow-remote is allowed with a warning that
    anyone who reaches it can steer the host."""
    assert bind_warning(ServeOptions([], bind="127.0.0.1")) is None
    assert bind_warning(ServeOptions([], bind="::1")) is None
    warning = bind_warning(ServeOptions([], bind="0.0.0.0", allow_remote=True))
    assert warning is not None and warning.startswith("WARNING: serving on 0.0.0.0")
    assert "steer the host" in warning


def test_serve_port_must_be_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    """--port abc is an argparse error in one line, exit 2."""
    with pytest.raises(SystemExit) as exited:
        main(["console", "--serve", "--port", "abc"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--port: invalid int value: 'abc'" in err and err.count("\n") == 1


def _wait_for_file(path: Path, proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Poll for a subprocess's ready file (the one allowed polling case)."""
    end = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < end:
        if path.exists():
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {proc.communicate()[1]}")
        time.sleep(0.05)
    raise AssertionError(f"no {path.name}")


def _stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM and wait; its stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[1]


@pytest.fixture
def host_process(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A real ``poslab-host`` on free ports with a simulated clock: its ready file and info."""
    ready = tmp_path / "host.json"
    proc = subprocess.Popen(
        [*HOST, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ready-file", str(ready),
         "--db", str(tmp_path / "ledger.db"), "--log-file", str(tmp_path / "host.log"),
         "--allow-unknown-terminals", "--clock", "simulated", "--start", "2025-03-14T10:30:00Z"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield ready, _wait_for_file(ready, proc)
    finally:
        _stop(proc)


def _sale_over_tcp(iso_port: int) -> dict[str, str]:
    """One 0200 sale of 12.34 USD over a real TCP connection; the host's answer."""
    codec = Codec()
    request = SaleRequest(
        stan="000001", terminal_id="TERM0001", merchant_id="MERCHANT0000001",
        transmitted_at="0314103000", card=CardData(EntryMode.MANUAL, pan=Pan(PAN), expiry="2812"),
        amount=Money(1234, "USD"), local_time="103000", local_date="0314").to_fields()
    with socket.create_connection(("127.0.0.1", iso_port), timeout=10) as sock:
        sock.sendall(frame(codec.encode(request)))
        (n,) = struct.unpack("!H", sock.recv(2, socket.MSG_WAITALL))
        return codec.decode(sock.recv(n, socket.MSG_WAITALL))[1]


def test_browser_console_shows_a_live_sale_on_the_ladder(
        tmp_path: Path, host_process: tuple[Path, dict[str, Any]]) -> None:
    """A browser tab on ``console --serve --ready-file HOST.json``, once live, shows the
    ladder line of a sale then made over TCP (MTI, type, amount, RC, RRN), PAN never in full;
    the page fetched nothing from elsewhere; SIGTERM stops the server with exit 0."""
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    host_ready, info = host_process
    served_ready = tmp_path / "console.json"
    proc = subprocess.Popen(
        [*HOST, "console", "--serve", "--port", "0", "--ready-file", str(host_ready),
         "--serve-ready-file", str(served_ready)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL)
    try:
        url = _wait_for_file(served_ready, proc)["url"]
        assert url.startswith("http://127.0.0.1:")
        with sync_playwright() as pw:
            browser = launch(pw, chromium)
            tab = Tab(browser.new_page(viewport={"width": 1280, "height": 760}), url)
            tab.wait_for("stream: live")  # attached: the sale below reaches this console
            answer = _sale_over_tcp(int(info["iso_port"]))
            assert answer["t"] == "0210" and answer.get("37"), answer
            rrn = answer["37"]
            screen = tab.wait_for(rrn)
            browser.close()
    finally:
        err = _stop(proc)
    answer_line = next(line for line in screen.splitlines() if "0210" in line and rrn in line)
    assert "sale" in answer_line and "12.34" in answer_line, answer_line
    assert answer["39"] in answer_line and "TERM0001 / 000001" in answer_line, answer_line
    assert PAN not in screen
    assert tab.elsewhere == []
    assert proc.returncode == 0 and "Traceback" not in err, err
