"""The runner's two connections to a host, both async on the shared Twisted asyncio reactor.

:class:`IsoClient` speaks framed ISO 8583 over TCP like a terminal, but also writes raw bytes
(malformed-input scenarios) and notices when the host closes the connection. Responses are
matched by (response MTI, STAN); anything else that arrives -- a duplicate, a late answer after
a reversal -- is kept in :attr:`IsoClient.stray` for the report.

:class:`AdminClient` calls the host's HTTP admin API through ``twisted.web.client.Agent``. It
never blocks: an in-process host serves the same loop, and a blocking HTTP call there would
deadlock. The reactor is imported lazily: importing it first would install the wrong one.
"""

from __future__ import annotations

import asyncio
import io
import json
import warnings
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, connectionDone
from twisted.python.failure import Failure
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from protocol import Codec, ProtocolError
from protocol.messages import response_mti
from protocol.transport import FramedProtocol

Fields = dict[str, str]


class WireError(Exception):
    """The host could not be reached, or answered the admin API with an error."""


@dataclass
class _Pending:
    key: tuple[str, str]
    future: asyncio.Future[Fields]


class _IsoProtocol(FramedProtocol):
    def __init__(self, client: IsoClient) -> None:
        self.client = client

    def connectionMade(self) -> None:  # noqa: N802 - Twisted naming
        super().connectionMade()
        self.client._made(self)

    def frameReceived(self, payload: bytes) -> None:  # noqa: N802
        self.client._frame(payload)

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self.client._lost()


class _Factory(ClientFactory):
    def __init__(self, client: IsoClient) -> None:
        self.client = client

    def buildProtocol(self, addr: Any) -> _IsoProtocol:  # noqa: N802
        return _IsoProtocol(self.client)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:  # noqa: N802
        self.client._failed(reason)


@dataclass
class IsoClient:
    """One terminal connection: ``await connect()``, ``await request(fields, timeout_s)``."""

    host: str
    port: int
    codec: Codec
    stray: list[Fields] = field(default_factory=list)
    garbled: list[bytes] = field(default_factory=list)
    _proto: _IsoProtocol | None = None
    _pending: list[_Pending] = field(default_factory=list)
    _connected: asyncio.Future[None] | None = None
    _closed: asyncio.Future[None] | None = None

    @property
    def connected(self) -> bool:
        """True while the TCP connection is open."""
        return self._proto is not None

    async def connect(self, timeout_s: float = 5.0) -> None:
        """Open the connection (again, after the host closed it)."""
        loop = asyncio.get_running_loop()
        self._connected = loop.create_future()
        self._closed = loop.create_future()
        _reactor().connectTCP(self.host, self.port, _Factory(self), timeout=timeout_s)
        try:
            await asyncio.wait_for(self._connected, timeout_s)
        except TimeoutError:
            raise WireError(f"cannot connect to {self.host}:{self.port}: timed out") from None

    async def request(self, fields: Fields, timeout_s: float) -> Fields | None:
        """Send ``fields``; the matching response, or None when none came within the timeout.

        Raises :class:`WireError` when the host closes the connection before answering.
        """
        return await self.send_and_wait(self.codec.encode(fields), fields, timeout_s)

    async def send_and_wait(self, payload: bytes, fields: Fields | None, timeout_s: float,
                            framed: bool = True) -> Fields | None:
        """Write ``payload`` (framed, or as it is) and wait for the answer to ``fields``.

        With ``fields`` None the first response of any kind is the answer.
        """
        if self._proto is None or self._proto.transport is None:
            await self.connect()
        assert self._proto is not None and self._proto.transport is not None
        loop = asyncio.get_running_loop()
        key = (response_mti(fields["t"]), fields.get("11", "")) if fields else ("*", "*")
        pending = _Pending(key, loop.create_future())
        self._pending.append(pending)
        if framed:
            self._proto.sendFrame(payload)
        else:
            transport: Any = self._proto.transport
            transport.write(payload)
        closed = self._closed
        assert closed is not None
        waits: set[asyncio.Future[Any]] = {pending.future, closed}
        try:
            done, _ = await asyncio.wait(waits, timeout=timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            if pending in self._pending:
                self._pending.remove(pending)
        if pending.future in done:
            return pending.future.result()
        if closed in done:
            raise WireError("the host closed the connection")
        return None

    async def wait_closed(self, timeout_s: float) -> bool:
        """True when the host closes the connection within ``timeout_s``."""
        if self._closed is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout_s)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Drop the connection."""
        if self._proto is not None and self._proto.transport is not None:
            transport: Any = self._proto.transport
            transport.loseConnection()

    # -- protocol callbacks
    def _made(self, proto: _IsoProtocol) -> None:
        self._proto = proto
        if self._connected is not None and not self._connected.done():
            self._connected.set_result(None)

    def _failed(self, reason: Failure) -> None:
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(
                WireError(f"cannot connect to {self.host}:{self.port}: {reason.getErrorMessage()}"))

    def _lost(self) -> None:
        self._proto = None
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def _frame(self, payload: bytes) -> None:
        try:
            _, fields = self.codec.decode(payload)
        except ProtocolError:
            self.garbled.append(payload)
            return
        key = (fields.get("t", ""), fields.get("11", ""))
        for pending in self._pending:
            if pending.key in (key, ("*", "*")) and not pending.future.done():
                pending.future.set_result(fields)
                return
        self.stray.append(fields)


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
