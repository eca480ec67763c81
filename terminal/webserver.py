"""The web server of ``poslab-terminal --serve``, built on textual-serve.

textual-serve serves a page with xterm.js and, for every websocket (every browser tab), starts
a new process running the session command, whose screen travels over that websocket. The page's
links are built from the address the browser used (its ``Host`` header), so the same server
works on ``127.0.0.1`` and, when allowed, on a classroom address. The page loads nothing from
elsewhere: textual-serve's page links a web font from the internet, which a classroom network
may block or a firewall may leave hanging (a stylesheet holds the page up until it answers), so
that link is left out and the terminal uses the browser's monospace font.
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
import sys
from collections.abc import Callable
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.server import Server, to_int

from terminal.serve import ServeError, ServeOptions, SessionPlan, check_bind
from terminal.tidpool import describe

#: A ``<link>`` to a stylesheet on another site (textual-serve's web font).
_REMOTE_STYLESHEET = re.compile(r"<link\b[^>]*\bhref=\"https?://[^>]*>", re.IGNORECASE)


class _LocalPageLoader(jinja2.FileSystemLoader):
    """textual-serve's templates without links to other sites."""

    def get_source(self, environment: jinja2.Environment,
                   template: str) -> tuple[str, str, Callable[[], bool]]:
        """The template's text with remote stylesheet links removed."""
        source, filename, uptodate = super().get_source(environment, template)
        return _REMOTE_STYLESHEET.sub("", source), filename, uptodate


class TerminalServer(Server):
    """textual-serve's server, listening where asked and quiet about its command line."""

    def __init__(self, plan: SessionPlan, options: ServeOptions) -> None:
        # textual-serve runs the command through /bin/sh; exec leaves one process per tab
        super().__init__("exec " + shlex.join(plan.command), host=options.bind, port=options.port,
                         title=f"poslab terminals {describe(plan.tids)}")
        self.plan = plan
        self.options = options
        self._sessions: set[asyncio.Task[Any]] = set()

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        aiohttp_jinja2.setup(app, loader=_LocalPageLoader(self.templates_path))
        return app

    async def on_startup(self, app: web.Application) -> None:
        """No banner: :func:`serve` prints the URL once the port is bound."""

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One tab's session, remembered so that a stop can end it."""
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            return await super().handle_websocket(request)
        finally:
            self._sessions.discard(task)

    async def on_shutdown(self, app: web.Application) -> None:
        """End every open tab's session now: textual-serve then tells its terminal to quit and
        waits for it. Left alone, open websockets would hold the stop up for many seconds."""
        sessions = list(self._sessions)
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """The page, with its static and websocket links on the address the browser used."""
        base = f"{request.scheme}://{request.host}"
        ws_scheme = "wss" if request.scheme == "https" else "ws"
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{ws_scheme}://{request.host}/ws",
            "config": {"static": {"url": f"{base}/static/"}},
            "application": {"name": self.title},
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Listen, announce, serve until ``stop`` is set, then end every session."""
        runner = web.AppRunner(await self._make_app(), handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.options.bind, self.options.port)
            try:
                await site.start()
            except OSError as exc:
                raise ServeError(f"cannot listen on {self.options.bind}:{self.options.port}: "
                                 f"{exc.strerror or exc}") from None
            port = int(runner.addresses[0][1])
            self._announce(port)
            await stop.wait()
        finally:
            await runner.cleanup()  # closes the websockets; each session is told to quit

    def _announce(self, port: int) -> None:
        host = f"[{self.options.bind}]" if ":" in self.options.bind else self.options.bind
        url = f"http://{host}:{port}/"
        if self.options.ready_file is not None:  # first: whoever reads the line finds it
            info = {"url": url, "port": port, "bind": self.options.bind,
                    "host": self.plan.host, "tids": list(self.plan.tids), "pid": os.getpid()}
            tmp = self.options.ready_file.with_name(self.options.ready_file.name + ".tmp")
            tmp.write_text(json.dumps(info), encoding="utf-8")
            tmp.replace(self.options.ready_file)  # readers never see half a file
        print(f"poslab-terminal: serving terminals {describe(self.plan.tids)} on {url} "
              f"(host {self.plan.host}); one terminal per browser tab; Ctrl+C stops",
              flush=True)


def serve(plan: SessionPlan, options: ServeOptions) -> int:
    """Run the web server until SIGINT or SIGTERM; 0 on a normal stop."""
    warning = check_bind(options)
    if warning is not None:
        print(f"poslab-terminal: {warning}", file=sys.stderr, flush=True)
    logging.basicConfig(level=logging.WARNING, format="poslab-terminal serve: %(message)s")
    server = TerminalServer(plan, options)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await server.run(stop)

    asyncio.run(main())
    return 0


