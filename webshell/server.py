"""The web server: textual-serve's page and one process per websocket (browser tab).

textual-serve serves a page with xterm.js and, for every websocket, starts a new process
running the command, whose screen travels over that websocket. Its :class:`Server` is extended
here where version 1.1 offers no option:

- the page's links are built from the address the browser used (its ``Host`` header), not the
  bind address, so one server works on ``127.0.0.1`` and on a classroom address;
- the page loads nothing from elsewhere: textual-serve links a web font from the internet,
  which a classroom network may block or a firewall leave hanging (a stylesheet holds the page
  up until it answers), so that link is left out and xterm.js uses the browser's monospace font;
- the server listens on the asked port (0 = a free one), writes a ready file and prints one
  line once bound, so scripts and tests wait for either, never a sleep;
- a stop ends every tab's process at once instead of waiting for its websocket to time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.server import Server, to_int

from webshell.binding import Listen, ServeError

#: A ``<link>`` to a stylesheet on another site (textual-serve's web font).
_REMOTE_STYLESHEET = re.compile(r"<link\b[^>]*\bhref=\"https?://[^>]*>", re.IGNORECASE)


@dataclass(frozen=True)
class Site:
    """What every tab runs and how the server presents itself.

    :ivar command: the program every tab runs, one process per tab.
    :ivar title: the page title.
    :ivar banner: the line printed once listening, given the server's URL.
    :ivar ready_info: what the ready file says besides ``url``, ``port``, ``bind`` and
        ``pid``.
    """

    command: Sequence[str]
    title: str
    banner: Callable[[str], str]
    ready_info: Mapping[str, object] = field(default_factory=dict)


class LocalPageLoader(jinja2.FileSystemLoader):
    """textual-serve's templates without links to stylesheets on other sites."""

    def get_source(self, environment: jinja2.Environment,
                   template: str) -> tuple[str, str, Callable[[], bool]]:
        """The template's text with remote stylesheet links removed."""
        source, filename, uptodate = super().get_source(environment, template)
        return _REMOTE_STYLESHEET.sub("", source), filename, uptodate


class TabServer(Server):
    """textual-serve's server on the asked address, announcing once bound, one process per
    tab, every process ended on stop."""

    def __init__(self, site: Site, listen: Listen) -> None:
        # textual-serve runs the command through /bin/sh; exec leaves one process per tab
        super().__init__("exec " + shlex.join(site.command), host=listen.bind,
                         port=listen.port, title=site.title)
        self.site = site
        self.listen = listen
        #: set once the port is bound, the ready file written and the banner printed
        self.listening = asyncio.Event()
        self.url: str | None = None
        self._sessions: set[asyncio.Task[Any]] = set()

    async def _make_app(self) -> web.Application:
        app: web.Application = await super()._make_app()
        aiohttp_jinja2.setup(app, loader=LocalPageLoader(self.templates_path))
        return app

    async def on_startup(self, app: web.Application) -> None:
        """No banner here: :meth:`run` prints the URL once the port is bound."""

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One tab's process, remembered so that a stop can end it."""
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            response: web.WebSocketResponse = await super().handle_websocket(request)
            return response
        finally:
            self._sessions.discard(task)

    async def on_shutdown(self, app: web.Application) -> None:
        """End every open tab now: textual-serve then tells its process to quit and waits for
        it. Left alone, open websockets would hold the stop up for many seconds."""
        sessions = list(self._sessions)
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """The page, with its static and websocket links on the address the browser used."""
        ws_scheme = "wss" if request.scheme == "https" else "ws"
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{ws_scheme}://{request.host}/ws",
            "config": {"static": {"url": f"{request.scheme}://{request.host}/static/"}},
            "application": {"name": self.title},
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Listen, announce, serve until ``stop`` is set, then end every tab's process;
        :class:`ServeError` when the address cannot be listened on."""
        runner = web.AppRunner(await self._make_app(), handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.listen.bind, self.listen.port)
            try:
                await site.start()
            except OSError as exc:
                raise ServeError(f"cannot listen on {self.listen.bind}:{self.listen.port}: "
                                 f"{exc.strerror or exc}") from None
            self._announce(int(runner.addresses[0][1]))
            await stop.wait()
        finally:
            await runner.cleanup()  # closes the websockets; each process is told to quit

    def _announce(self, port: int) -> None:
        bind = self.listen.bind
        self.url = f"http://{f'[{bind}]' if ':' in bind else bind}:{port}/"
        if self.listen.ready_file is not None:  # first: whoever reads the line finds it
            info = {"url": self.url, "port": port, "bind": bind, **self.site.ready_info,
                    "pid": os.getpid()}
            write_ready_file(self.listen.ready_file, info)
        print(self.site.banner(self.url), flush=True)
        self.listening.set()


def write_ready_file(path: Path, info: Mapping[str, object]) -> None:
    """Write ``info`` as JSON to ``path`` so that readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info), encoding="utf-8")
    tmp.replace(path)


def serve(site: Site, listen: Listen, log_prefix: str) -> None:
    """Run the web server until SIGINT, SIGTERM or SIGHUP; :class:`ServeError` when it cannot
    listen. Warnings of the web libraries are logged as ``{log_prefix}: message``."""
    logging.basicConfig(level=logging.WARNING, format=f"{log_prefix}: %(message)s")
    server = TabServer(site, listen)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await server.run(stop)

    asyncio.run(main())
