"""The shared web server of ``--serve``: its page, its ready file, its errors and its binding
policy, through :mod:`webshell` alone (no host, no terminal)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import textual_serve

from webshell import Listen, ServeError, port_problem, remote_bind_warning
from webshell.server import Site, TabServer

Runner = Callable[..., Any]
TEMPLATE = Path(textual_serve.__file__).parent / "templates" / "app_index.html"


def _site(**ready_info: object) -> Site:
    return Site(command=[sys.executable, "-c", "pass"], title="webshell under test",
                banner=lambda url: f"test: serving on {url}", ready_info=ready_info)


@asynccontextmanager
async def _serving(server: TabServer) -> AsyncIterator[TabServer]:
    """The server running on the test loop until the block ends; a start error is raised."""
    stop = asyncio.Event()
    task = asyncio.ensure_future(server.run(stop))
    listening = asyncio.ensure_future(server.listening.wait())
    await asyncio.wait([task, listening], return_when=asyncio.FIRST_COMPLETED)
    listening.cancel()
    if task.done():
        task.result()  # raises what stopped the start
    try:
        yield server
    finally:
        stop.set()
        await task


async def _page(url: str, host: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url, headers={"Host": host}) as r:
        assert r.status == 200
        return await r.text()


def test_page_loads_nothing_from_other_sites(run: Runner) -> None:
    """textual-serve's template links a remote stylesheet; the served page does not, and keeps
    its own script, on the address the browser asked for."""
    assert 'href="https://' in TEMPLATE.read_text(encoding="utf-8")

    async def scenario() -> str:
        async with _serving(TabServer(_site(), Listen(port=0))) as server:
            assert server.url is not None
            return await _page(server.url, "classroom.example:8123")

    page = run(scenario())
    assert "fonts.googleapis.com" not in page and "https://" not in page
    assert "http://classroom.example:8123/static/js/textual.js" in page
    assert 'data-session-websocket-url="ws://classroom.example:8123/ws"' in page
    assert "<div>webshell under test</div>" in page


def test_ready_file_names_the_bound_port_before_the_banner(
        run: Runner, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With port 0 the ready file (whole JSON, with the caller's extra keys) and then the
    banner give the port actually bound."""
    ready = tmp_path / "ready.json"

    async def scenario() -> dict[str, Any]:
        server = TabServer(_site(tids=["LAB00001"]), Listen(port=0, ready_file=ready))
        async with _serving(server):
            info: dict[str, Any] = json.loads(ready.read_text(encoding="utf-8"))
            with socket.create_connection(("127.0.0.1", info["port"]), timeout=5):
                pass  # something listens there
            return info

    info = run(scenario())
    assert info == {"url": f"http://127.0.0.1:{info['port']}/", "port": info["port"],
                    "bind": "127.0.0.1", "tids": ["LAB00001"], "pid": os.getpid()}
    assert info["port"] != 0
    assert capsys.readouterr().out == f"test: serving on {info['url']}\n"
    assert not ready.with_name("ready.json.tmp").exists()


def test_a_taken_port_is_a_serve_error(run: Runner, tmp_path: Path) -> None:
    """A port another socket holds is a :class:`ServeError` naming the address; no ready
    file is written."""
    ready = tmp_path / "ready.json"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = TabServer(_site(), Listen(port=port, ready_file=ready))
        with pytest.raises(ServeError, match=f"cannot listen on 127.0.0.1:{port}: "):
            run(server.run(asyncio.Event()))
    assert not ready.exists()


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_loopback_binds_quietly(bind: str) -> None:
    """A loopback address needs no --allow-remote and prints no warning."""
    assert remote_bind_warning(bind, False, lets_others="x", anyone_can="y") is None


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.168.1.20", "::", "classroom.example"])
def test_remote_binds_are_refused_or_warned(bind: str) -> None:
    """Any other address (a host name included) is refused without --allow-remote, in the
    caller's words, and warned about with it."""
    with pytest.raises(ServeError) as refused:
        remote_bind_warning(bind, False, lets_others="drive the lab", anyone_can="steer it")
    assert str(refused.value) == (f"--bind {bind} would let other machines drive the lab; "
                                  "add --allow-remote to do that on purpose")
    warning = remote_bind_warning(bind, True, lets_others="drive the lab", anyone_can="steer it")
    assert warning is not None
    assert warning.startswith(f"WARNING: serving on {bind}: anyone who can reach this address "
                              "can steer it (no login, no TLS)")


@pytest.mark.parametrize(("port", "problem"), [
    (0, None), (8000, None), (65535, None),
    (-1, "--port must be between 0 and 65535, got -1"),
    (65536, "--port must be between 0 and 65535, got 65536"),
])
def test_port_range(port: int, problem: str | None) -> None:
    """Ports 0 (a free one) to 65535 are accepted; anything else says the range."""
    assert port_problem(port) == problem
