"""poslab-host as a real process: ready file, a sale over TCP, SIGTERM -> exit 0, and the
one-line failures (bad config, port in use, unreachable database)."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from shell_helpers import sale

from protocol import Codec, frame

pytest.importorskip("host.service", reason="the host engine (host.service) has not landed")
pytest.importorskip("host.config", reason="the host engine (host.config) has not landed")

HOST = [sys.executable, "-m", "host"]


def wait_for_file(path: Path, proc: subprocess.Popen[str],
                  deadline_s: float = 20) -> dict[str, Any]:
    """Poll for the subprocess's ready file (the one allowed polling case)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if path.exists():
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        if proc.poll() is not None:
            raise AssertionError(f"host exited {proc.returncode}: {proc.communicate()[1]}")
        time.sleep(0.05)
    raise AssertionError("no ready file")


def test_host_process_answers_a_sale_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    """Started with port 0, the host writes its ready file, answers a sale, stops on SIGTERM."""
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [*HOST, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ready-file", str(ready),
         "--db", str(tmp_path / "ledger.db"), "--log-file", str(tmp_path / "host.log"),
         "--allow-unknown-terminals", "--clock", "simulated", "--start", "2025-03-14T10:30:00Z"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = wait_for_file(ready, proc)
        assert info["pid"] == proc.pid and info["admin_token"]
        codec = Codec()
        with socket.create_connection(("127.0.0.1", info["iso_port"]), timeout=10) as sock:
            sock.sendall(frame(codec.encode(sale())))
            (n,) = struct.unpack("!H", sock.recv(2, socket.MSG_WAITALL))
            _, answer = codec.decode(sock.recv(n, socket.MSG_WAITALL))
        assert (answer["t"], answer["11"]) == ("0210", "000001") and "39" in answer
        req = urllib.request.Request(f"http://127.0.0.1:{info['admin_port']}/health",
                                     headers={"Authorization": f"Bearer {info['admin_token']}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    log = (tmp_path / "host.log").read_text()
    assert '"direction":"out"' in log and "4761739001010119" not in log
    verify = subprocess.run([*HOST, "ledger", "verify", "--db", str(tmp_path / "ledger.db")],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_host_process_exits_0_on_sigint(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) stops the host like SIGTERM: exit 0, no traceback."""
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [*HOST, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ready-file", str(ready),
         "--db", str(tmp_path / "ledger.db")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_file(ready, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def run_host(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run poslab-host expecting it to fail fast."""
    return subprocess.run([*HOST, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_bad_config_one_line_exit_2(tmp_path: Path) -> None:
    """An unknown config key stops the host with one stderr line naming file and key."""
    config = tmp_path / "host.toml"
    config.write_text("[host]\nno_such_key = 1\n")
    done = run_host(["--config", str(config), "--listen", "127.0.0.1:0",
                     "--admin", "127.0.0.1:0"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no_such_key" in done.stderr
    assert "Traceback" not in done.stderr


def test_port_in_use_one_line_exit_2(tmp_path: Path) -> None:
    """A taken ISO port stops the host with one line saying which address."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_host(["--listen", f"127.0.0.1:{port}", "--admin", "127.0.0.1:0",
                         "--db", str(tmp_path / "x.db")], tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [x for x in done.stderr.splitlines() if x.startswith("poslab-host:")]
    assert lines == [f"poslab-host: cannot listen for ISO 8583 on 127.0.0.1:{port}: "
                     "Address already in use"]
    assert "Traceback" not in done.stderr


def test_unreachable_database_exit_2(tmp_path: Path) -> None:
    """A database that cannot be reached stops the host with one line and no password."""
    done = run_host(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                     "--db", "postgresql://poslab:s3cret@127.0.0.1:1/poslab"], tmp_path)
    assert done.returncode == 2
    assert "cannot open the database postgresql://poslab:***@127.0.0.1:1/poslab" in done.stderr
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr
