"""``poslab-host console --serve``: the console in web browsers, one console per tab.

textual-serve serves a page with xterm.js and, for every websocket (every browser tab), starts
``poslab-host console`` with the options the server was given, so every tab is its own console
attached to the same host. The admin token, when given, reaches the tabs through the
environment (``$POSLAB_ADMIN_TOKEN``), never their command line.

This is a small host-side copy of what ``terminal.webserver`` does for the terminal (port 0,
ready file, a page without the remote web font, a quick stop): ``host`` and ``terminal`` may not
import each other, and the only layer below both, ``protocol``, stays free of web and screen
code, so the two servers cannot share a module.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import re
import shlex
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROG = "poslab-host console"
DEFAULT_PORT = 8001

#: A ``<link>`` to a stylesheet on another site (textual-serve's web font).
_REMOTE_STYLESHEET = re.compile(r"<link\b[^>]*\bhref=\"https?://[^>]*>", re.IGNORECASE)


class ServeError(ValueError):
    """The server cannot start as asked; the text says why."""


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
    if _is_loopback(options.bind):
        return None
    if not options.allow_remote:
        raise ServeError(f"--bind {options.bind} would let other machines steer the host "
                         "(approve refunds, move the clock); add --allow-remote to do that "
                         "on purpose")
    return (f"WARNING: serving on {options.bind}: anyone who can reach this address can "
            "watch and steer the host with its admin token (no login, no TLS). Use it only "
            "on a classroom network you trust.")


def _is_loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


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
    logging.basicConfig(level=logging.WARNING, format=f"{PROG} serve: %(message)s")
    server = _console_server(options)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await server.run(stop)

    try:
        asyncio.run(main())
    except ServeError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    return 0


def _console_server(options: ServeOptions) -> Any:
    """The server; textual-serve and aiohttp are imported here so a console run in a terminal
    never loads them."""
    import aiohttp_jinja2
    import jinja2
    from aiohttp import web
    from textual_serve.server import Server, to_int

    class LocalPageLoader(jinja2.FileSystemLoader):
        """textual-serve's templates without links to other sites: a classroom network may
        block the web font, and a stylesheet that never answers holds the page up."""

        def get_source(self, environment: jinja2.Environment,
                       template: str) -> tuple[str, str, Callable[[], bool]]:
            source, filename, uptodate = super().get_source(environment, template)
            return _REMOTE_STYLESHEET.sub("", source), filename, uptodate

    class ConsoleServer(Server):
        """textual-serve's server on the asked address, announcing once bound."""

        def __init__(self) -> None:
            # textual-serve runs the command through /bin/sh; exec leaves one process per tab
            super().__init__("exec " + shlex.join(options.command), host=options.bind,
                             port=options.port, title="poslab host console")
            self._sessions: set[asyncio.Task[Any]] = set()

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            aiohttp_jinja2.setup(app, loader=LocalPageLoader(self.templates_path))
            return app

        async def on_startup(self, app: web.Application) -> None:
            """No banner: :meth:`run` prints the URL once the port is bound."""

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            """One tab's console, remembered so that a stop can end it."""
            task = asyncio.current_task()
            assert task is not None
            self._sessions.add(task)
            try:
                return await super().handle_websocket(request)
            finally:
                self._sessions.discard(task)

        async def on_shutdown(self, app: web.Application) -> None:
            """End every tab's console now, rather than wait for their websockets to time out."""
            sessions = list(self._sessions)
            for task in sessions:
                task.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)

        @aiohttp_jinja2.template("app_index.html")
        async def handle_index(self, request: web.Request) -> dict[str, Any]:
            """The page, its links on the address the browser used (loopback or classroom)."""
            ws_scheme = "wss" if request.scheme == "https" else "ws"
            return {
                "font_size": to_int(request.query.get("fontsize", "16"), 16),
                "app_websocket_url": f"{ws_scheme}://{request.host}/ws",
                "config": {"static": {"url": f"{request.scheme}://{request.host}/static/"}},
                "application": {"name": self.title},
            }

        async def run(self, stop: asyncio.Event) -> None:
            """Listen, announce, serve until ``stop`` is set, then end every tab."""
            runner = web.AppRunner(await self._make_app(), handle_signals=False)
            await runner.setup()
            try:
                site = web.TCPSite(runner, options.bind, options.port)
                try:
                    await site.start()
                except OSError as exc:
                    raise ServeError(f"cannot listen on {options.bind}:{options.port}: "
                                     f"{exc.strerror or exc}") from None
                _announce(options, int(runner.addresses[0][1]))
                await stop.wait()
            finally:
                await runner.cleanup()

    return ConsoleServer()


def _announce(options: ServeOptions, port: int) -> None:
    host = f"[{options.bind}]" if ":" in options.bind else options.bind
    url = f"http://{host}:{port}/"
    if options.ready_file is not None:  # first: whoever reads the printed line finds it
        info = {"url": url, "port": port, "bind": options.bind, "pid": os.getpid()}
        tmp = options.ready_file.with_name(options.ready_file.name + ".tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        tmp.replace(options.ready_file)  # readers never see half a file
    print(f"{PROG}: serving the console on {url}; one console per browser tab; Ctrl+C stops",
          flush=True)
