"""``--with-host``: run ``poslab-host`` as a child process on free ports.

The host is started with ``--listen 127.0.0.1:0 --admin 127.0.0.1:0 --ready-file F`` and its
own SQLite database in the data directory; it writes the ports it bound to ``F`` once it
listens. Its output goes to ``host.log`` in the data directory, because the terminal's screen
belongs to Textual.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

READY_TIMEOUT_S = 30.0


class HostStartError(RuntimeError):
    """The embedded host did not come up; the text says why and where its log is."""


class HostProcess:
    """One embedded host: :meth:`start` returns its ISO 8583 port, :meth:`stop` ends it."""

    def __init__(self, data_dir: Path, extra_args: list[str] | None = None,
                 profile: str | None = None) -> None:
        self.data_dir = data_dir
        self.extra_args = list(extra_args or [])
        self.profile = profile
        self.ready_file = data_dir / "host-ready.json"
        self.log_file = data_dir / "host.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, object] = {}

    def command(self) -> list[str]:
        """The host's command line."""
        args = ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                "--ready-file", str(self.ready_file)]
        if not self._given("--db"):
            args += ["--db", f"sqlite:///{(self.data_dir / 'host.db').resolve()}"]
        if self.profile and not self._given("--profile"):
            args += ["--profile", self.profile]  # both ends must speak the same wire profile
        return [sys.executable, "-m", "host", *args, *self.extra_args]

    def _given(self, option: str) -> bool:
        """Whether the extra arguments set ``option`` (``--db URL`` or ``--db=URL``)."""
        return any(a == option or a.startswith(option + "=") for a in self.extra_args)

    def start(self) -> int:
        """Start the host and wait for its ready file; return its ISO 8583 port."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT_S
        # Polling a ready file with a deadline is how a child process reports readiness.
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise HostStartError(f"poslab-host exited with status {code} before it was "
                                     f"ready: {self._log_tail()} (full log: {self.log_file})")
            if self.ready_file.exists():
                try:
                    self.info = json.loads(self.ready_file.read_text(encoding="utf-8"))
                    return int(str(self.info["iso_port"]))
                except (ValueError, KeyError):
                    pass  # written but not complete yet
            time.sleep(0.05)
        self.stop()
        raise HostStartError(f"poslab-host was not ready within {READY_TIMEOUT_S:g} s "
                             f"(log: {self.log_file})")

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "no log"
        return " | ".join(line.strip() for line in lines[-3:] if line.strip()) or "no output"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 5 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
