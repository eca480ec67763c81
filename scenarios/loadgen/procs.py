"""Server subprocesses for the benchmark: start with a ready file, measure CPU and RSS, stop.

The host and the ceiling server always run in their own processes, so the generator's CPU is
never counted as theirs. CPU comes from ``/proc/<pid>/stat`` (utime + stime, clock ticks),
RSS from ``/proc/<pid>/status``; on systems without /proc both read as ``None``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ServerFailed(RuntimeError):
    """A server subprocess exited or never became ready; the message has its stderr tail."""


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces; fields after the closing paren are fixed.
    rest = stat[stat.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / _TICK


def _parent(pid: str) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of ``pid`` and of each of its child processes (a host with front
    processes is the engine plus its fronts), by process id; empty without /proc."""
    out: dict[int, float] = {}
    own = cpu_seconds(pid)
    if own is None:
        return out
    out[pid] = own
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _parent(entry.name) == pid:
            child = cpu_seconds(int(entry.name))
            if child is not None:
                out[int(entry.name)] = child
    return out


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid``."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class ServerProcess:
    """A server started as ``argv + ['--ready-file', path]`` that writes JSON when listening."""

    def __init__(self, argv: list[str], *, name: str, env: dict[str, str] | None = None,
                 ready_timeout: float = 30.0) -> None:
        self.name = name
        self._dir = tempfile.TemporaryDirectory(prefix="poslab-bench-")
        self.ready_path = Path(self._dir.name) / "ready.json"
        self._stderr: IO[bytes] = open(Path(self._dir.name) / "stderr.log", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*argv, "--ready-file", str(self.ready_path)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self._stderr, env=env)
        self.ready = self._wait_ready(ready_timeout)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    @property
    def workdir(self) -> Path:
        """A temporary directory that lives as long as this object."""
        return Path(self._dir.name)

    def _wait_ready(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"{self.name} exited with status {self.proc.returncode}: "
                                   f"{self.stderr_tail()}")
            if self.ready_path.exists():
                try:
                    data: dict[str, Any] = json.loads(self.ready_path.read_text())
                    return data
                except ValueError:
                    pass  # being written: poll again
            time.sleep(0.02)  # a child reports readiness only by its file: poll, with a deadline
        self.stop()
        raise ServerFailed(f"{self.name} did not become ready within {timeout:.0f} s: "
                           f"{self.stderr_tail()}")

    def stderr_tail(self, limit: int = 2000) -> str:
        """The last bytes the server wrote to stderr."""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-limit:].strip()

    def kill(self) -> int:
        """SIGKILL the server (no clean-up of any kind) and reap it; returns the status."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait, then SIGKILL if it hangs; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.close()
        return self.proc.returncode

    def close(self) -> None:
        """Remove the temporary directory (after the process has ended)."""
        if not self._stderr.closed:
            self._stderr.close()
        self._dir.cleanup()


def python_module(module: str) -> list[str]:
    """argv running ``module`` with this interpreter (works without console scripts on PATH)."""
    return [sys.executable, "-m", module]
