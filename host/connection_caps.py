"""The host's ``[limits]`` connection caps and the connection series of ``/metrics``.

One :class:`ConnectionCaps` per host counts its open ISO 8583 connections, in all and per peer
IP address, whichever process holds them: the one-process server
(:class:`host.server.IsoServerFactory`) as its connections open and close, and with front
processes the engine (:mod:`host.front.engine`), as each front claims a slot for a connection
it accepted and releases it when the connection is gone (the link's
:class:`~host.front.link.Claim` and :class:`~host.front.link.Release`). Both layouts therefore
refuse, count and report by the same rules.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from host.metrics import Metrics

OVER_LIMIT = "over_limit"
OVER_PEER_LIMIT = "over_peer_limit"


class Caps(Protocol):
    """The two caps (``host.server.ServerLimits`` has them)."""

    @property
    def max_connections(self) -> int: ...
    @property
    def max_connections_per_peer(self) -> int: ...


class ConnectionCaps:
    """Open connections, in all and per peer IP address, under ``max_connections`` and
    ``max_connections_per_peer``.

    :ivar open: the connections open now.
    """

    def __init__(self, limits: Caps, metrics: Metrics) -> None:
        self.limits = limits
        self.metrics = metrics
        self.open = 0
        self._per_peer: Counter[str] = Counter()

    def refusal(self, peer: str) -> str | None:
        """Why one more connection from ``peer`` is refused (counted in
        ``poslab_connections_closed_total``), or None when it may open."""
        if self.open >= self.limits.max_connections:
            refused = OVER_LIMIT
        elif self._per_peer[peer] >= self.limits.max_connections_per_peer:
            refused = OVER_PEER_LIMIT
        else:
            return None
        self.metrics.closed.inc(reason=refused)
        return refused

    def take(self, peer: str) -> None:
        """A connection from ``peer`` is open."""
        self.open += 1
        self._per_peer[peer] += 1
        self.metrics.connections.inc()
        self.metrics.open_connections.set(self.open)

    def release(self, peer: str) -> None:
        """A connection from ``peer`` is gone."""
        self.open -= 1
        self._per_peer[peer] -= 1
        if not self._per_peer[peer]:
            del self._per_peer[peer]
        self.metrics.open_connections.set(self.open)

    def claim(self, peer: str) -> str | None:
        """Take a slot for a connection from ``peer`` if the caps allow it; else the
        refusal's reason, taking nothing."""
        refused = self.refusal(peer)
        if refused is None:
            self.take(peer)
        return refused
