"""``poslab-terminal --serve``: what the web server is asked to do, and the binding policy.

Every tab of the served page runs :attr:`SessionPlan.command`, ``poslab-terminal
--serve-session ...``: one terminal whose id comes from the pool (:mod:`terminal.tidpool`).
The web server is :mod:`webshell.server`, shared with the host console and imported only by
:func:`serve`, so the ordinary terminal starts without web imports.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from terminal.tidpool import describe
from webshell import Listen as ServeOptions
from webshell import ServeError, remote_bind_warning

__all__ = ["ServeError", "ServeOptions", "SessionPlan", "check_bind", "serve",
           "session_command"]


@dataclass(frozen=True)
class SessionPlan:
    """What every tab runs: the session command, the pool it draws from, the host it uses."""

    command: list[str]
    tids: tuple[str, ...]
    host: str


def check_bind(options: ServeOptions) -> str | None:
    """Refuse a non-loopback address without ``allow_remote``; return the warning to print
    when it is allowed, else ``None``."""
    return remote_bind_warning(options.bind, options.allow_remote,
                               lets_others="use the terminals", anyone_can="drive the terminals")


def serve(plan: SessionPlan, options: ServeOptions) -> int:
    """Serve one terminal per browser tab until SIGINT or SIGTERM; 0 on a normal stop,
    :class:`ServeError` when the server cannot listen."""
    from webshell.server import Site
    from webshell.server import serve as serve_tabs

    warning = check_bind(options)
    if warning is not None:
        print(f"poslab-terminal: {warning}", file=sys.stderr, flush=True)
    pool = describe(plan.tids)
    site = Site(command=plan.command, title=f"poslab terminals {pool}",
                banner=lambda url: (f"poslab-terminal: serving terminals {pool} on {url} "
                                    f"(host {plan.host}); one terminal per browser tab; "
                                    "Ctrl+C stops"),
                ready_info={"host": plan.host, "tids": list(plan.tids)})
    serve_tabs(site, options, log_prefix="poslab-terminal serve")
    return 0


def session_command(argv: list[str]) -> list[str]:
    """The command a tab runs: this Python, the terminal module, ``--serve-session``, then the
    terminal options ``argv`` (host, profile, merchant, data folder, pool...)."""
    return [sys.executable, "-m", "terminal", "--serve-session", *argv]
