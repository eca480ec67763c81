"""``poslab-host console``: parse its options and run :class:`host.console.app.ConsoleApp`.

::

    poslab-host console [--admin URL --token T | --ready-file F] [--theme default|projector]

Exit status: 0 after quitting, 2 when the options do not say where the host is (one line on
stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

THEMES = ("default", "projector")


def add_console_parser(sub: Any) -> None:
    """Add the ``console`` subcommand to ``poslab-host``'s subparsers."""
    p = sub.add_parser("console", help="watch and steer a running host (Textual console)")
    p.add_argument("--admin", dest="console_admin", metavar="URL",
                   help="the host's admin API, e.g. http://127.0.0.1:8584")
    p.add_argument("--token", help="admin token (default $POSLAB_ADMIN_TOKEN)")
    p.add_argument("--ready-file", dest="console_ready_file", metavar="F",
                   help="read the admin port and token from the host's --ready-file")
    p.add_argument("--theme", choices=THEMES, default="default",
                   help="projector: large, high-contrast (white and yellow on black)")


def run_console(args: argparse.Namespace, prog: str = "poslab-host") -> int:
    """Run the console until the user quits; 2 when the host cannot be located."""
    from host.console.client import AdminApi, ConnectionProblem, connection

    try:
        url, token = connection(args.console_admin, args.token, args.console_ready_file)
    except ConnectionProblem as exc:
        print(f"{prog} console: {exc}", file=sys.stderr)
        return 2
    from host.console.app import ConsoleApp

    ConsoleApp(AdminApi(url, token), theme_name=args.theme).run()
    return 0
