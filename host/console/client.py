"""The console's side of the admin API: JSON calls and the event stream, over httpx.

:func:`connection` finds the admin URL and token (given, or from a host's ``--ready-file``).
:class:`AdminApi` makes calls; errors become :class:`AdminApiError` with the host's own
message. :meth:`AdminApi.events` reads ``GET /events`` and reconnects with ``Last-Event-ID``
after a drop, so a restarted stream resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

TOKEN_ENV = "POSLAB_ADMIN_TOKEN"
RECONNECT_S = 1.0


class AdminApiError(Exception):
    """An admin call that failed: ``status`` (0 = the host could not be reached) and the
    host's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConnectionProblem(Exception):
    """Where the admin API is cannot be worked out (the message says why)."""


@dataclass(frozen=True)
class StreamRecord:
    """One record of the event stream: its id (None for ``hello``/``reset``), type, data."""

    id: int | None
    type: str
    data: dict[str, Any]


def connection(admin: str | None, token: str | None, ready_file: str | None) -> tuple[str, str]:
    """``(url, token)`` from ``--admin``/``--token`` (token default ``$POSLAB_ADMIN_TOKEN``),
    or from a host's ready file; :class:`ConnectionProblem` otherwise."""
    if ready_file:
        try:
            info = json.loads(Path(ready_file).read_text(encoding="utf-8"))
            port = int(info["admin_port"])
            return admin or f"http://127.0.0.1:{port}", token or str(info["admin_token"])
        except FileNotFoundError:
            raise ConnectionProblem(f"--ready-file {ready_file}: no such file (is the host "
                                    f"started with --ready-file {ready_file}?)") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConnectionProblem(f"--ready-file {ready_file}: not a host ready file "
                                    f"({type(exc).__name__})") from None
    if not admin:
        raise ConnectionProblem("give --admin URL (with --token T) or --ready-file F")
    if not admin.startswith(("http://", "https://")):
        raise ConnectionProblem(f"--admin {admin!r}: expected a URL such as "
                                f"http://127.0.0.1:8584")
    token = token or os.environ.get(TOKEN_ENV)
    if not token:
        raise ConnectionProblem(f"--admin needs --token T (or ${TOKEN_ENV})")
    return admin.rstrip("/"), token


class AdminApi:
    """Async admin client with the bearer token."""

    def __init__(self, url: str, token: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self._http = httpx.AsyncClient(base_url=url, timeout=timeout_s,
                                       headers={"authorization": f"Bearer {token}"})

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON call; the decoded answer, or :class:`AdminApiError`."""
        try:
            answer = await self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise AdminApiError(0, f"cannot reach the host at {self.url}: "
                                   f"{type(exc).__name__}") from None
        try:
            data = answer.json()
        except ValueError:
            data = {"error": answer.text[:200]}
        if answer.status_code >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            raise AdminApiError(answer.status_code, str(message or answer.reason_phrase))
        return data

    async def events(self) -> AsyncIterator[StreamRecord]:
        """The event stream, for ever: reconnects (with the last id seen) when it drops;
        :class:`AdminApiError` when the host refuses it (a wrong token)."""
        last: str | None = None
        stream = httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(10.0, read=None),
                                   headers=self._http.headers)
        try:
            while True:
                headers = {"last-event-id": last} if last else {}
                try:
                    async with aconnect_sse(stream, "GET", "/events", headers=headers) as src:
                        if src.response.status_code != 200:
                            raise await _refused(src.response)
                        async for sse in src.aiter_sse():
                            if not sse.data:  # the opening ``retry:`` record
                                continue
                            if sse.id:
                                last = sse.id
                            yield StreamRecord(int(sse.id) if sse.id else None, sse.event,
                                               json.loads(sse.data))
                except (httpx.HTTPError, ValueError):
                    pass
                yield StreamRecord(None, "disconnected", {})
                await asyncio.sleep(RECONNECT_S)  # a host restarting: try again shortly
        finally:
            await stream.aclose()

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()


async def _refused(response: httpx.Response) -> AdminApiError:
    """The host's own reason for refusing the stream (a wrong token, a host without one)."""
    await response.aread()
    try:
        message = str(response.json().get("error") or response.reason_phrase)
    except (ValueError, AttributeError):
        message = response.reason_phrase
    return AdminApiError(response.status_code, f"GET /events: {message}")
