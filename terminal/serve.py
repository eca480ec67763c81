"""``poslab-terminal --serve``: what the web server is asked to do, and the binding policy.

Every tab of the served page runs :attr:`SessionPlan.command`, ``poslab-terminal
--serve-session ...``: one terminal whose id comes from the pool (:mod:`terminal.tidpool`).
The server itself is :mod:`terminal.webserver`; this module stays free of web imports so the
ordinary terminal starts without them.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path


class ServeError(ValueError):
    """The server cannot start as asked; the text says why."""


@dataclass(frozen=True)
class ServeOptions:
    """Where the web server listens and what it announces once it does.

    :ivar bind: the address to listen on; loopback unless ``allow_remote``.
    :ivar port: the TCP port, 0 for a free one (the ready file and the printed URL say which).
    :ivar ready_file: written (JSON) once the server listens, for scripts and tests.
    """

    bind: str = "127.0.0.1"
    port: int = 8000
    allow_remote: bool = False
    ready_file: Path | None = None


@dataclass(frozen=True)
class SessionPlan:
    """What every tab runs: the session command, the pool it draws from, the host it uses."""

    command: list[str]
    tids: tuple[str, ...]
    host: str


def is_loopback(bind: str) -> bool:
    """Whether ``bind`` only accepts connections from this machine."""
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(options: ServeOptions) -> str | None:
    """Refuse a non-loopback address without ``allow_remote``; return the warning to print
    when it is allowed, else ``None``."""
    if is_loopback(options.bind):
        return None
    if not options.allow_remote:
        raise ServeError(f"--bind {options.bind} would let other machines use the terminals; "
                         "add --allow-remote to do that on purpose")
    return (f"WARNING: serving on {options.bind}: anyone who can reach this address can drive "
            "the terminals (no login, no TLS). Use it only on a classroom network you trust.")


def session_command(argv: list[str]) -> list[str]:
    """The command a tab runs: this Python, the terminal module, ``--serve-session``, then the
    terminal options ``argv`` (host, profile, merchant, data folder, pool...)."""
    return [sys.executable, "-m", "terminal", "--serve-session", *argv]
