"""The runner's two connections to a host, both async on the shared Twisted asyncio reactor.

:class:`IsoClient` is the terminal's own :class:`~terminal.link.Link` (one correlation rule:
response MTI and STAN) seen in the runner's terms: no answer within the wait is None, a host
that closes the connection is a :class:`WireError`, raw bytes (malformed-input scenarios) may be
written, and answers nobody waited for -- a duplicate, a late answer after a reversal -- are
kept in :attr:`IsoClient.stray` for the report.

:class:`AdminClient` calls the host's HTTP admin API through ``twisted.web.client.Agent``. It
never blocks: an in-process host serves the same loop, and a blocking HTTP call there would
deadlock. The reactor is imported lazily: importing it first would install the wrong one.
"""

from __future__ import annotations

import asyncio
import io
import json
import warnings
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from protocol import Codec
from terminal.link import Link, LinkDown, LinkError, LinkTimeout, Traffic

Fields = dict[str, str]


class WireError(Exception):
    """The host could not be reached, or answered the admin API with an error."""


class IsoClient:
    """One terminal connection: ``await request(fields, timeout_s)``; connects on demand."""

    def __init__(self, host: str, port: int, codec: Codec, timeout_s_connect: float = 5.0
                 ) -> None:
        self.host, self.port, self.codec = host, port, codec
        self.link = Link(host, port, codec, timeout_s_connect)
        self.stray: list[Fields] = []
        self.link.listeners.append(self._traffic)

    @property
    def connected(self) -> bool:
        """True while the TCP connection is open."""
        return self.link.connected

    async def connect(self) -> None:
        """Open the connection (again, after the host closed it)."""
        try:
            await self.link.connect()
        except LinkError:
            raise WireError(f"cannot connect to {self.host}:{self.port}") from None

    async def request(self, fields: Fields, timeout_s: float) -> Fields | None:
        """Send ``fields``; the matching response, or None when none came within the timeout.

        Raises :class:`WireError` when the host closes the connection before answering.
        """
        return await self.send_and_wait(self.codec.encode(fields), fields, timeout_s)

    async def send_and_wait(self, payload: bytes, fields: Fields | None, timeout_s: float,
                            framed: bool = True) -> Fields | None:
        """Send ``fields`` (already encoded as ``payload``) and wait for its answer; with
        ``fields`` None write ``payload`` (framed, or as it is) and take the first answer."""
        if not self.link.connected:
            await self.connect()
        try:
            if fields is not None:
                return await self.link.send_fields(fields, timeout_s)
            return await self.link.send_raw(payload, timeout_s, framed)
        except LinkTimeout:
            return None
        except LinkDown:
            raise WireError("the host closed the connection") from None

    async def wait_closed(self, timeout_s: float) -> bool:
        """True when the host closes the connection within ``timeout_s``."""
        return await self.link.wait_closed(timeout_s)

    def close(self) -> None:
        """Drop the connection."""
        self.link.close()

    def _traffic(self, item: Traffic) -> None:
        if item.late and item.fields:
            self.stray.append(item.fields)


class AdminClient:
    """JSON over HTTP to the host's admin API, with a Bearer token."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    async def get(self, path: str) -> Any:
        """GET ``path``; the decoded JSON body. Raises WireError on a non-2xx answer."""
        return await self.call("GET", path)

    async def post(self, path: str, body: Any = None) -> Any:
        """POST a JSON body to ``path``; the decoded JSON answer."""
        return await self.call("POST", path, body)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request; 404 on an endpoint the host lacks raises ``WireError`` with status."""
        from twisted.web.client import Agent, FileBodyProducer, readBody
        from twisted.web.http_headers import Headers

        headers = Headers({b"Content-Type": [b"application/json"]})
        if self.token:
            headers.addRawHeader(b"Authorization", f"Bearer {self.token}".encode())
        producer: Any = None
        if body is not None:
            producer = FileBodyProducer(io.BytesIO(json.dumps(body).encode()))  # type: ignore[no-untyped-call]
        agent = Agent.usingEndpointFactory(_reactor(), _DirectEndpoints())  # type: ignore[no-untyped-call]
        url = (self.base_url + path).encode()
        try:
            response = await _future(agent.request(method.encode(), url, headers, producer))
            with warnings.catch_warnings():
                # Twisted warns about its own transport type here; nothing to act on.
                warnings.simplefilter("ignore", DeprecationWarning)
                body_d = readBody(response)
            raw = await _future(body_d)
        except Exception as exc:  # twisted raises many connection error types
            raise WireError(f"admin API {method} {path}: {exc}") from None
        text = raw.decode("utf-8", "replace")
        try:
            data = json.loads(text) if text.strip() else None
        except ValueError:
            data = text
        if not 200 <= response.code < 300:
            detail = data.get("error", data) if isinstance(data, dict) else data
            raise AdminStatus(response.code, f"admin API {method} {path}: HTTP {response.code} "
                                             f"{detail}")
        return data


class AdminStatus(WireError):
    """The admin API answered with an HTTP error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@implementer(IAgentEndpointFactory)
class _DirectEndpoints:
    """Plain TCP endpoints: an IP address needs no resolver thread (the default Agent's
    getaddrinfo runs in the reactor's thread pool, which then keeps the process alive)."""

    def endpointForURI(self, uri: Any) -> Any:  # noqa: N802 - Twisted naming
        from twisted.internet.endpoints import TCP4ClientEndpoint

        return TCP4ClientEndpoint(_reactor(), uri.host.decode(), uri.port, timeout=10)


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _future(d: Deferred[Any]) -> asyncio.Future[Any]:
    return d.asFuture(asyncio.get_running_loop())
