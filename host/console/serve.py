"""``poslab-host console --serve``: the console in web browsers, one console per tab.

Every browser tab runs ``poslab-host console`` with the options the server was given, so every
tab is its own console attached to the same host. The admin token, when given, reaches the tabs
through the environment (``$POSLAB_ADMIN_TOKEN``), never their command line. The web server is
:mod:`webshell.server`, shared with ``poslab-terminal --serve`` and imported only by
:func:`serve`, so a console run in a terminal never loads it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from webshell import Listen, ServeError, remote_bind_warning

__all__ = ["DEFAULT_PORT", "PROG", "ServeError", "ServeOptions", "bind_warning", "serve",
           "tab_command"]

PROG = "poslab-host console"
DEFAULT_PORT = 8001


@dataclass(frozen=True)
class ServeOptions:
    """Where the console's web server listens, what it announces, and what each tab runs.

    :ivar command: the console command every tab runs (see :func:`tab_command`).
    :ivar ready_file: written (JSON) once the server listens, for scripts and tests.
    """

    command: list[str]
    bind: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    allow_remote: bool = False
    ready_file: Path | None = None

    def listen(self) -> Listen:
        """The address part, as the shared web server takes it."""
        return Listen(bind=self.bind, port=self.port, allow_remote=self.allow_remote,
                      ready_file=self.ready_file)


def tab_command(admin: str | None, ready_file: str | None, theme: str,
                lang: str = "en") -> list[str]:
    """The command a tab runs: this Python, ``host console`` and the connection and display
    options the server was given (a host ready file as an absolute path, since tabs may start
    elsewhere)."""
    argv = [sys.executable, "-m", "host", "console", "--theme", theme, "--lang", lang]
    if admin:
        argv += ["--admin", admin]
    if ready_file:
        argv += ["--ready-file", str(Path(ready_file).resolve())]
    return argv


def bind_warning(options: ServeOptions) -> str | None:
    """Refuse a non-loopback address without ``allow_remote``; the warning to print when it
    is allowed, else ``None``."""
    return remote_bind_warning(
        options.bind, options.allow_remote,
        lets_others="steer the host (approve refunds, move the clock)",
        anyone_can="watch and steer the host with its admin token")


def serve(options: ServeOptions) -> int:
    """Run the web server until SIGINT or SIGTERM; 0 on a normal stop, 2 when it cannot
    listen or may not bind where asked (one line on stderr)."""
    try:
        warning = bind_warning(options)
    except ServeError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if warning is not None:
        print(f"{PROG}: {warning}", file=sys.stderr, flush=True)
    from webshell.server import Site
    from webshell.server import serve as serve_tabs

    site = Site(command=options.command, title="poslab host console",
                banner=lambda url: (f"{PROG}: serving the console on {url}; one console per "
                                    "browser tab; Ctrl+C stops"))
    try:
        serve_tabs(site, options.listen(), log_prefix=f"{PROG} serve")
    except ServeError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    return 0
