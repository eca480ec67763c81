"""The terminal's connection to the host: a Twisted client on the shared asyncio loop.

:class:`LinkProtocol` frames, encodes and decodes; every request waits on a Deferred keyed by
the response it expects (response MTI and STAN), so an 0410 and a late 0210 for the same trace
number are never confused. A response nobody waits for any more -- typically the answer to a
request that already timed out and was reversed -- is reported as *late* and never delivered
as an answer.

:class:`LinkPort` is what a terminal session's driver needs of a link: ``connect()``,
``send(message, timeout)``, ``connected``; :class:`Link` is the TUI's implementation of it, in
asyncio terms. :func:`correlation_key` is the one rule for matching an answer to its request,
shared by every client that speaks to the host. Failures come back as :class:`LinkError`
subclasses with text a person can act on. The reactor is imported lazily: importing it first
would install the wrong one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import ClientFactory
from twisted.python.failure import Failure

from protocol.codec import Codec
from protocol.errors import ProtocolError
from protocol.messages import AnyResponse, Message, parse_response, response_mti
from protocol.transport import FramedProtocol
from terminal.security.guard import MacGuard, Sealing
from terminal.tls import ClientTls

Fields = dict[str, str]


class LinkError(Exception):
    """The host could not be reached or did not answer; ``str()`` says what to do."""


class LinkDown(LinkError):
    """Not connected, or the connection dropped."""


class LinkTimeout(LinkError):
    """No answer within the response timeout."""


class MacMismatch(LinkError):
    """The host's answer arrived but its MAC did not match: it cannot be trusted as an answer."""


@dataclass(frozen=True)
class Traffic:
    """One message on the wire, for the message inspector.

    :ivar direction: ``"sent"`` or ``"received"``.
    :ivar late: a response that matched no waiting request.
    :ivar raw: the encoded body as sent or received; render it with
        :func:`terminal.inspector.safe_hex`, never directly.
    """

    at: datetime
    direction: str
    fields: Fields
    raw: bytes = field(repr=False)
    late: bool = False
    note: str = ""

    @property
    def mti(self) -> str:
        """The message type."""
        return self.fields.get("t", "????")


def correlation_key(fields: Fields, answer: bool = False) -> tuple[str, str]:
    """The (response MTI, STAN) an answer to ``fields`` carries; with ``answer`` the key
    ``fields`` (itself an answer) carries. An 0410 and a late 0210 for one STAN never match."""
    mti = fields.get("t", "")
    return (mti if answer else response_mti(mti), fields.get("11", ""))


class LinkPort(Protocol):
    """What a session's driver needs of its connection to the host."""

    @property
    def connected(self) -> bool:
        """True while a connection is up."""
        ...

    async def connect(self) -> None:
        """Connect if not connected; raise :class:`LinkError` with advice when it fails."""
        ...

    async def send(self, message: Message, timeout_s: float) -> AnyResponse:
        """The typed answer to ``message``; :class:`LinkTimeout` or :class:`LinkError`."""
        ...


class LinkProtocol(FramedProtocol):
    """Framed ISO 8583 client: request/response matched on (response MTI, STAN)."""

    def __init__(self, codec: Codec, on_traffic: Callable[[Traffic], None],
                 on_lost: Callable[[], None],
                 guard: Callable[[], MacGuard | None] = lambda: None) -> None:
        self.codec = codec
        self._guard = guard
        # How the answer to each sealed request is checked, by correlation key.
        self._sealings: dict[tuple[str, str], Sealing] = {}
        self.length_header = codec.profile.length_header
        self._on_traffic = on_traffic
        self._on_lost = on_lost
        self._pending: dict[tuple[str, str], Deferred[Fields]] = {}
        # Waiters for raw bytes (a test's malformed frame): the first answer nobody else waits
        # for is theirs, whatever its MTI and STAN.
        self._any: list[Deferred[Fields]] = []

    def request(self, fields: Fields) -> Deferred[Fields]:
        """Send ``fields`` and return a Deferred firing with the matching response fields.

        Cancelling the Deferred (the response timeout) forgets the request, so its answer, if
        it ever comes, is reported as late.
        """
        key = correlation_key(fields)
        guard = self._guard()
        sealing = None
        if guard is not None:
            fields, sealing = guard.prepare(fields)
        body = self.codec.encode(fields)
        if sealing is not None:
            body = sealing.seal(body)
            self._sealings[key] = sealing
        else:
            self._sealings.pop(key, None)

        def forget(_: Deferred[Fields]) -> None:
            self._pending.pop(key, None)
            self._sealings.pop(key, None)

        d: Deferred[Fields] = Deferred(forget)
        self._pending[key] = d
        self.sendFrame(body)
        self._on_traffic(Traffic(datetime.now(), "sent", dict(fields), body))
        return d

    def request_raw(self, payload: bytes, framed: bool = True) -> Deferred[Fields]:
        """Write ``payload`` (framed, or exactly as given) and return a Deferred firing with
        the next answer no request waits for."""

        def forget(d: Deferred[Fields]) -> None:
            if d in self._any:
                self._any.remove(d)

        d: Deferred[Fields] = Deferred(forget)
        self._any.append(d)
        if framed:
            self.sendFrame(payload)
        else:
            assert self.transport is not None
            cast(Any, self.transport).write(payload)
        self._on_traffic(Traffic(datetime.now(), "sent", {}, payload, note="raw bytes"))
        return d

    def frameReceived(self, payload: bytes) -> None:  # noqa: N802 - Twisted naming
        """Decode a response and fire whoever waits for it."""
        try:
            _, fields = self.codec.decode(payload)
        except ProtocolError as exc:
            self._on_traffic(Traffic(datetime.now(), "received", {}, payload,
                                     note=f"undecodable: {exc}"))
            return
        key = correlation_key(fields, answer=True)
        d = self._pending.pop(key, None)
        sealing = self._sealings.pop(key, None) if d is not None else None
        if d is None and self._any:
            d = self._any.pop(0)
        mac_ok = sealing is None or sealing.answer_ok(payload, fields)
        note = "" if d else "late or unexpected: no request waits"
        if not mac_ok:
            note = "MAC FAILED: the answer does not match its MAC"
        self._on_traffic(Traffic(datetime.now(), "received", fields, payload, late=d is None,
                                 note=note))
        if d is None:
            return
        if mac_ok:
            d.callback(fields)
        else:
            d.errback(MacMismatch(f"the host's {fields.get('t', '')} to STAN "
                                  f"{fields.get('11', '')} failed its MAC check"))

    def connectionLost(self, reason: Failure | None = None) -> None:  # noqa: N802
        """Fail every waiting request."""
        pending, self._pending = self._pending, {}
        self._sealings.clear()
        waiting, self._any = self._any, []
        why = "the host closed the connection"
        tls_error = _tls_error(reason)
        if tls_error:
            why = f"the TLS connection to the host failed ({tls_error})"
        for d in [*pending.values(), *waiting]:
            d.errback(LinkDown(why))
        self._on_lost()


class Link:
    """The engine's view of the host connection, in asyncio terms."""

    def __init__(self, host: str, port: int, codec: Codec, timeout_s_connect: float = 5.0,
                 on_traffic: Callable[[Traffic], None] | None = None,
                 tls: ClientTls | None = None) -> None:
        self.tls = tls
        """TLS options (terminal.tls); None connects over plain TCP."""
        self.host = host
        self.port = port
        self.codec = codec
        self.timeout_s_connect = timeout_s_connect
        self.listeners: list[Callable[[Traffic], None]] = []
        #: seals financial requests and checks their answers; None: no MACs.
        self.guard: MacGuard | None = None
        if on_traffic is not None:
            self.listeners.append(on_traffic)
        self._proto: LinkProtocol | None = None
        self._closed: asyncio.Future[None] | None = None

    @property
    def connected(self) -> bool:
        """True while a connection is up."""
        return self._proto is not None

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"

    def _traffic(self, item: Traffic) -> None:
        for listener in list(self.listeners):
            listener(item)

    def _lost(self, proto: LinkProtocol, closed: asyncio.Future[None]) -> None:
        if self._proto is proto:  # not an older connection that ends late
            self._proto = None
        if not closed.done():
            closed.set_result(None)

    async def connect(self) -> None:
        """Open the TCP connection; raise :class:`LinkDown` with advice when it fails."""
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint

        if self._proto is not None:
            return
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        proto = LinkProtocol(self.codec, self._traffic, lambda: self._lost(proto, closed),
                             lambda: self.guard)
        timeout = max(int(self.timeout_s_connect), 1)
        endpoint = (self.tls.endpoint(reactor, self.host, self.port, timeout) if self.tls
                    else TCP4ClientEndpoint(reactor, self.host, self.port, timeout=timeout))
        try:
            await endpoint.connect(cast(Any, _Factory(proto))).asFuture(asyncio.get_running_loop())
        except Exception as exc:  # noqa: BLE001 - every failure becomes advice for a person
            raise LinkDown(f"cannot reach the host at {self.address}: {_why(exc)}. Start "
                           "poslab-host there, or run poslab-terminal --with-host.") from None
        self._proto, self._closed = proto, closed

    async def send(self, message: Message, timeout_s: float) -> AnyResponse:
        """Send ``message`` and return the typed response, or raise a :class:`LinkError`."""
        return parse_response(await self.send_fields(message.to_fields(), timeout_s))

    async def send_fields(self, fields: Fields, timeout_s: float) -> Fields:
        """Send a raw field dict and return the response fields."""
        if self._proto is None:
            raise LinkDown(f"not connected to the host at {self.address}")
        return await self._wait(self._proto.request(fields), timeout_s)

    async def send_raw(self, payload: bytes, timeout_s: float, framed: bool = True) -> Fields:
        """Write raw bytes (framed or as they are) and return the next unclaimed answer."""
        if self._proto is None:
            raise LinkDown(f"not connected to the host at {self.address}")
        return await self._wait(self._proto.request_raw(payload, framed), timeout_s)

    async def _wait(self, d: Deferred[Fields], timeout_s: float) -> Fields:
        future: asyncio.Future[Any] = d.asFuture(asyncio.get_running_loop())
        try:
            return cast(Fields, await asyncio.wait_for(future, timeout_s))
        except (TimeoutError, CancelledError):
            raise LinkTimeout(f"no answer from the host within {timeout_s:g} s") from None

    async def wait_closed(self, timeout_s: float) -> bool:
        """True when the host closes the connection within ``timeout_s`` (or it is closed)."""
        if self._proto is None or self._closed is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout_s)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Drop the connection."""
        if self._proto is not None and self._proto.transport is not None:
            cast(Any, self._proto.transport).loseConnection()
        self._proto = None


class _Factory(ClientFactory):
    """Hands out the one protocol instance a connection attempt was made for."""

    def __init__(self, proto: LinkProtocol) -> None:
        self.proto = proto

    def buildProtocol(self, addr: IAddress | None) -> LinkProtocol:  # noqa: N802 - Twisted naming
        """The prepared protocol."""
        return self.proto


def _tls_error(reason: Failure | None) -> str:
    """OpenSSL's first reason when the connection ended on a TLS error, else ``""``."""
    value = getattr(reason, "value", None)
    if value is None or not type(value).__module__.startswith("OpenSSL"):
        return ""
    errors = value.args[0] if value.args and isinstance(value.args[0], list) else []
    texts = [str(e[-1]) for e in errors if isinstance(e, tuple) and e and e[-1]]
    return "; ".join(texts) or type(value).__name__


def _why(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".")
    name = type(exc).__name__
    if "refused" in text.lower() or name == "ConnectionRefusedError":
        return "connection refused"
    if "timeout" in text.lower() or "TimeoutError" in name:
        return "no answer to the connection attempt"
    return text or name
