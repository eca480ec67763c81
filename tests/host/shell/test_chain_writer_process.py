"""poslab-host as a real process, refused because another host writes its ledger chain."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from host.ledger.writer_hold import hold_chain


def test_a_second_host_process_on_a_held_chain_exits_2_in_one_line(tmp_path: Path) -> None:
    """While this process holds chain main of an SQLite file, poslab-host on that file prints
    the one-line refusal naming this pid, exits 2, writes no ready file and creates neither the
    database nor its chain key."""
    db, ready = tmp_path / "ledger.db", tmp_path / "ready.json"
    hold = hold_chain(str(db), "main")
    try:
        env = {k: v for k, v in os.environ.items() if k != "POSLAB_CHAIN_KEY_FILE"}
        done = subprocess.run(
            [sys.executable, "-m", "host", "--db", str(db), "--listen", "127.0.0.1:0",
             "--admin", "127.0.0.1:0", "--ready-file", str(ready)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    finally:
        hold.release()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if not line.startswith("{")] == [
        f"poslab-host: ledger chain 'main' of this database is already being written by "
        f"another host (pid {os.getpid()} on {socket.gethostname()}); give each host its own "
        f"[server] partition"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.db.host-main.lock"]
