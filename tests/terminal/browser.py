"""Drive ``poslab-terminal --serve`` in headless Chromium through Playwright.

The browser is the system's Chromium (Debian package ``chromium``, or ``POSLAB_CHROMIUM``),
never a Playwright download. The page draws the terminal with xterm.js on a canvas, so its
text is read from xterm.js's own buffer: an init script catches each ``Terminal`` the page
creates (the first assignment of its ``_addonManager`` passes through a setter placed on
``Object.prototype``) and ``window.__poslabScreen()`` returns the visible rows as text, exactly
what the user sees.
"""

from __future__ import annotations

import fcntl
import os
import selectors
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

STARTUP_TIMEOUT_S = 60.0
STEP_TIMEOUT_MS = 30_000

CAPTURE_TERMINALS = """
Object.defineProperty(Object.prototype, "_addonManager", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "_addonManager", {value, writable: true, configurable: true});
    (window.__poslabTerminals = window.__poslabTerminals || []).push(this);
  },
});
window.__poslabScreen = () => {
  const term = (window.__poslabTerminals || [])[0];
  if (!term) return "";
  const buffer = term.buffer.active, rows = [];
  for (let y = 0; y < term.rows; y++) {
    const line = buffer.getLine(buffer.viewportY + y);
    rows.push(line ? line.translateToString(true) : "");
  }
  return rows.join("\\n");
};
"""


def chromium_or_skip() -> str:
    """The Chromium executable; skips the test (fails it when ``POSLAB_REQUIRE_BROWSER`` is
    set, as in CI) when it or Playwright is missing."""
    path = os.environ.get("POSLAB_CHROMIUM") or shutil.which("chromium")
    reason = None
    if path is None:
        reason = ("no Chromium: install Debian's chromium package (apt-get install chromium) "
                  "or set POSLAB_CHROMIUM to a Chromium binary")
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is missing (pip install -e '.[dev]')"
    if reason is not None:
        if os.environ.get("POSLAB_REQUIRE_BROWSER"):
            pytest.fail(f"POSLAB_REQUIRE_BROWSER is set but {reason}")
        pytest.skip(reason)
    assert path is not None
    return path


@dataclass
class Served:
    """A running ``--serve`` process, its URL, and what it wrote (read as it comes, so a full
    pipe never blocks it)."""

    proc: subprocess.Popen[str]
    url: str
    stderr: list[str]
    readers: list[threading.Thread]

    def stop(self) -> None:
        """SIGTERM, and wait for it to end (its host and its tabs' terminals with it) and for
        its output to be read to the end."""
        self.proc.terminate()
        self.proc.wait(timeout=30)
        for reader in self.readers:
            reader.join(timeout=30)


@contextmanager
def served_terminals(data_dir: Path, *extra: str) -> Iterator[Served]:
    """``poslab-terminal --serve --port 0 --with-host`` in ``data_dir``, once it has printed
    its URL; stopped afterwards."""
    cmd = [sys.executable, "-m", "terminal", "--serve", "--port", "0", "--with-host",
           "--data-dir", str(data_dir), "--echo", "0", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        url = _announced_url(proc)
        assert proc.stdout is not None and proc.stderr is not None
        served = Served(proc, url, [], [])
        for stream, sink in ((proc.stdout, []), (proc.stderr, served.stderr)):
            reader = threading.Thread(target=sink.extend, args=(stream,), daemon=True)
            reader.start()
            served.readers.append(reader)
        yield served
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _announced_url(proc: subprocess.Popen[str]) -> str:
    """The URL of the server's one-line announcement, read as soon as it is printed."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=STARTUP_TIMEOUT_S):
            raise AssertionError("poslab-terminal --serve printed nothing")
    line = proc.stdout.readline()
    if " on http://" not in line:
        proc.terminate()
        raise AssertionError(f"unexpected first line {line!r}; stderr: "
                             f"{proc.communicate(timeout=30)[1]}")
    return line.split(" on ", 1)[1].split()[0]


class Tab:
    """One browser tab on the served page: keys in, screen text out."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        #: what the page tried to fetch from anywhere but the server (refused, never sent)
        self.elsewhere: list[str] = []
        page.add_init_script(CAPTURE_TERMINALS)
        page.route(lambda u: not u.startswith(url), self._refuse)
        page.goto(url)
        page.wait_for_function("() => window.__poslabScreen().trim().length > 0",
                               timeout=STEP_TIMEOUT_MS)
        page.locator(".xterm-helper-textarea").focus()

    def _refuse(self, route: Any) -> None:
        self.elsewhere.append(route.request.url)
        route.abort()

    def screen(self) -> str:
        """The visible terminal rows as text."""
        return str(self.page.evaluate("window.__poslabScreen()"))

    def wait_for(self, text: str) -> str:
        """Wait until the screen shows ``text``; return the screen."""
        try:
            self.page.wait_for_function("(t) => window.__poslabScreen().includes(t)", arg=text,
                                        timeout=STEP_TIMEOUT_MS)
        except Exception as exc:  # Playwright's TimeoutError: say what the page showed instead
            raise AssertionError(f"{text!r} not on the page within {STEP_TIMEOUT_MS} ms; "
                                 f"it shows:\n{self.screen()}") from exc
        return self.screen()

    def press(self, *keys: str) -> None:
        """Press keys in order (Playwright key names: "Enter", "Delete", "1")."""
        for key in keys:
            self.page.keyboard.press(key)


def launch(playwright: Any, executable: str) -> Any:
    """Headless system Chromium (root needs --no-sandbox)."""
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return playwright.chromium.launch(executable_path=executable, args=args)


def wait_released(lock_file: Path, timeout_s: float = 30.0) -> None:
    """Block until no process holds ``lock_file``'s flock (a tab's terminal has ended)."""
    done = threading.Event()

    def take() -> None:
        fd = os.open(lock_file, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the holder exits
        finally:
            os.close(fd)
        done.set()

    threading.Thread(target=take, daemon=True).start()
    if not done.wait(timeout_s):
        raise AssertionError(f"{lock_file.name} still held after {timeout_s:g} s")
