"""The runner's ISO 8583 connection to a host, async on the shared Twisted asyncio reactor.

:class:`IsoClient` is the terminal's own :class:`~terminal.link.Link` (one correlation rule:
response MTI and STAN) seen in the runner's terms: no answer within the wait is None, a host
that closes the connection is a :class:`WireError`, raw bytes (malformed-input scenarios) may be
written, and answers nobody waited for -- a duplicate, a late answer after a reversal -- are
kept in :attr:`IsoClient.stray` for the report.
The admin API has its own client, :mod:`scenarios.admin`.
"""

from __future__ import annotations

from protocol import Codec
from terminal.link import Link, LinkDown, LinkError, LinkTimeout, MacMismatch, Traffic
from terminal.tls import ClientTls

Fields = dict[str, str]


class WireError(Exception):
    """The host could not be reached, or closed the connection before answering."""


class AnswerMacFailed(WireError):
    """The host answered, but the answer's MAC did not verify: it is not taken as an answer."""


class IsoClient:
    """One terminal connection: ``await request(fields, timeout_s)``; connects on demand."""

    def __init__(self, host: str, port: int, codec: Codec, timeout_s_connect: float = 5.0,
                 tls: ClientTls | None = None) -> None:
        self.host, self.port, self.codec = host, port, codec
        self.link = Link(host, port, codec, timeout_s_connect, tls=tls)
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

        Raises :class:`WireError` when the host closes the connection before answering, and
        :class:`AnswerMacFailed` when its answer fails the MAC check.
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
        except MacMismatch as exc:
            raise AnswerMacFailed(str(exc)) from None
        except LinkDown as exc:
            raise WireError(str(exc)) from None

    async def wait_closed(self, timeout_s: float) -> bool:
        """True when the host closes the connection within ``timeout_s``."""
        return await self.link.wait_closed(timeout_s)

    def close(self) -> None:
        """Drop the connection."""
        self.link.close()

    def _traffic(self, item: Traffic) -> None:
        if item.late and item.fields:
            self.stray.append(item.fields)
