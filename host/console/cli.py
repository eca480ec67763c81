"""``poslab-host console``: parse its options and run :class:`host.console.app.ConsoleApp`.

::

    poslab-host console [--admin URL --token T | --ready-file F] [--theme default|projector]
                        [--lang en|zh-CN]
                        [--serve [--port N] [--bind ADDR --allow-remote] [--serve-ready-file F]]

Without ``--lang``, ``LC_ALL``, ``LC_MESSAGES`` or ``LANG`` naming ``zh_CN`` chooses Simplified
Chinese, as for the terminal. With ``--serve`` the console is served to web browsers instead
(:mod:`host.console.serve`), one console per tab, each with the connection and display options
given here.

Exit status: 0 after quitting, 2 when the options do not say where the host is or a
``--serve`` option is wrong (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from host.console.serve import (
    DEFAULT_PORT,
    ServeError,
    ServeOptions,
    bind_warning,
    serve,
    tab_command,
)
from protocol import i18n
from webshell import add_listen_arguments, port_problem

THEMES = ("default", "projector")
#: options that only mean something with --serve (argparse dest names)
_SERVE_ONLY = ("port", "bind", "allow_remote", "serve_ready_file")


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
    p.add_argument("--lang", choices=i18n.LANGUAGES,
                   help="language of the panels: en or zh-CN (Simplified Chinese); default "
                        "from LC_ALL / LC_MESSAGES / LANG, else en")
    web = p.add_argument_group(
        "browser classroom", "serve the console to web browsers, one console per tab, each "
        "attached to the host given above")
    web.add_argument("--serve", action="store_true",
                     help="serve consoles over HTTP instead of running one here")
    add_listen_arguments(web, DEFAULT_PORT)
    web.add_argument("--serve-ready-file", metavar="PATH",
                     help="--serve: write the URL and port here (JSON) once listening")


def run_console(args: argparse.Namespace, prog: str = "poslab-host") -> int:
    """Run the console until the user quits; 2 when the host cannot be located."""
    from host.console.client import TOKEN_ENV, AdminApi, ConnectionProblem, connection

    problem = _serve_option_problem(args)
    if problem is not None:
        print(f"{prog} console: {problem}", file=sys.stderr)
        return 2
    try:
        url, token = connection(args.console_admin, args.token, args.console_ready_file)
    except ConnectionProblem as exc:
        print(f"{prog} console: {exc}", file=sys.stderr)
        return 2
    if args.serve:
        if args.token:  # the tabs inherit it; a command line is visible to every local user
            os.environ[TOKEN_ENV] = args.token
        return serve(ServeOptions(
            command=tab_command(args.console_admin, args.console_ready_file, args.theme,
                                console_language(args)),
            bind=args.bind or "127.0.0.1",
            port=DEFAULT_PORT if args.port is None else args.port,
            allow_remote=args.allow_remote,
            ready_file=Path(args.serve_ready_file) if args.serve_ready_file else None))
    from host.console.app import ConsoleApp

    ConsoleApp(AdminApi(url, token), theme_name=args.theme, lang=console_language(args)).run()
    return 0


def console_language(args: argparse.Namespace) -> str:
    """``--lang``, else what the locale variables ask for
    (:func:`protocol.i18n.from_environment`)."""
    return str(args.lang or i18n.from_environment(os.environ))


def _serve_option_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the ``--serve`` options, so that a forgotten ``--serve`` never
    silently runs something else than asked; None when nothing is."""
    if not args.serve:
        given = [f"--{name.replace('_', '-')}" for name in _SERVE_ONLY
                 if getattr(args, name) is not None and getattr(args, name) is not False]
        return f"{given[0]} only applies with --serve" if given else None
    if args.port is not None and (problem := port_problem(args.port)) is not None:
        return problem
    if args.bind is not None:
        try:
            bind_warning(ServeOptions([], bind=args.bind, allow_remote=args.allow_remote))
        except ServeError as exc:
            return str(exc)
    return None
