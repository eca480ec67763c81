"""Where a web server listens, and whether it may listen there: no web imports."""

from __future__ import annotations

import argparse
import ipaddress
from dataclasses import dataclass
from pathlib import Path


class ServeError(ValueError):
    """The server cannot start as asked; the text says why."""


@dataclass(frozen=True)
class Listen:
    """Where the web server listens and what it announces once it does.

    :ivar bind: the address to listen on; loopback unless ``allow_remote``.
    :ivar port: the TCP port, 0 for a free one (the ready file and the printed URL say which).
    :ivar ready_file: written (JSON) once the server listens, for scripts and tests.
    """

    bind: str = "127.0.0.1"
    port: int = 8000
    allow_remote: bool = False
    ready_file: Path | None = None


def is_loopback(bind: str) -> bool:
    """Whether ``bind`` only accepts connections from this machine."""
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def remote_bind_warning(bind: str, allow_remote: bool, *, lets_others: str,
                        anyone_can: str) -> str | None:
    """Refuse a non-loopback ``bind`` without ``allow_remote`` (:class:`ServeError`); the
    warning to print when it is allowed, else ``None``.

    :param lets_others: what other machines could do, in the refusal ("use the terminals").
    :param anyone_can: what anyone on the network can do, in the warning ("drive the
        terminals").
    """
    if is_loopback(bind):
        return None
    if not allow_remote:
        raise ServeError(f"--bind {bind} would let other machines {lets_others}; "
                         "add --allow-remote to do that on purpose")
    return (f"WARNING: serving on {bind}: anyone who can reach this address can {anyone_can} "
            "(no login, no TLS). Use it only on a classroom network you trust.")


def port_problem(port: int) -> str | None:
    """What is wrong with ``--port``, or ``None`` when it is a TCP port (0 = a free one)."""
    if 0 <= port < 65536:
        return None
    return f"--port must be between 0 and 65535, got {port}"


def add_listen_arguments(group: argparse._ArgumentGroup, default_port: int) -> None:
    """``--port``, ``--bind`` and ``--allow-remote``, worded the same for every ``--serve``."""
    group.add_argument("--port", type=int, metavar="N",
                       help=f"--serve: the HTTP port, 0 = a free one (default {default_port})")
    group.add_argument("--bind", metavar="ADDR",
                       help="--serve: the address to listen on (default 127.0.0.1); any "
                            "non-loopback address also needs --allow-remote")
    group.add_argument("--allow-remote", action="store_true",
                       help="--serve: allow --bind on an address other machines can reach")
