"""The host's connection caps over all its front processes, kept by the engine.

In the one-process host, :meth:`host.server.IsoServerFactory.buildProtocol` refuses a connection
over ``[limits] max_connections`` or over ``max_connections_per_peer`` from one IP address.
With front processes each front sees only its own connections, so the engine keeps the counts
for the whole host: a front claims a slot for each connection it accepts (the link's
:class:`~host.front.link.Claim`), and holds no slot once the connection is gone
(:class:`~host.front.link.Release`, or the front's exit). The connection metrics the
one-process host keeps in its factory are kept here, from the same events.
"""

from __future__ import annotations

from collections import Counter

from host.metrics import Metrics
from host.server import ServerLimits

OVER_LIMIT = "over_limit"
OVER_PEER_LIMIT = "over_peer_limit"


class ConnectionSlots:
    """Open connections of every front, in all and per peer IP address.

    :ivar open: the slots held now.
    """

    def __init__(self, limits: ServerLimits, metrics: Metrics) -> None:
        self.limits = limits
        self.metrics = metrics
        self.open = 0
        self._per_peer: Counter[str] = Counter()

    def claim(self, peer: str) -> str | None:
        """Take a slot for a connection from ``peer``; or the refusal's reason (counted as
        the one-process host counts it), taking nothing."""
        if self.open >= self.limits.max_connections:
            refused = OVER_LIMIT
        elif self._per_peer[peer] >= self.limits.max_connections_per_peer:
            refused = OVER_PEER_LIMIT
        else:
            self.open += 1
            self._per_peer[peer] += 1
            self.metrics.connections.inc()
            self.metrics.open_connections.set(self.open)
            return None
        self.metrics.closed.inc(reason=refused)
        return refused

    def release(self, peer: str) -> None:
        """Give back the slot of a connection from ``peer``."""
        self.open -= 1
        self._per_peer[peer] -= 1
        if not self._per_peer[peer]:
            del self._per_peer[peer]
        self.metrics.open_connections.set(self.open)
