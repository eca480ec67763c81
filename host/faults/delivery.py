"""A fault decision, and carrying out its delivery part on a connection.

This is the half of fault injection that happens where the answer is written: send the
answer late, twice, garbled, not at all, or close the connection. The one-process server and
a front process (:mod:`host.front.process`) both call :func:`deliver`, so the two layouts
cannot drift apart. The other half (which rule matches, whether the request is processed) is
:mod:`host.faults.rules` and :mod:`host.faults.actions`, and runs where the registry is.

Light on purpose: a front imports it, and a front loads neither pydantic nor the database.
:class:`FaultDecision` is a msgspec struct so that it crosses the engine link as it is
(:class:`host.front.link.Answer`); it names the rule and the action, never a card.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from twisted.internet.defer import Deferred

from host.timers import Timer


class FaultDecision(msgspec.Struct, frozen=True, array_like=True):
    """What the server must do with one request (the rule that matched it, and how)."""

    fault_id: str
    action: str
    process: bool
    delay_ms: int = 0
    response_code: str | None = None

    def log(self) -> dict[str, object]:
        """Facts for the JSON log line of an applied fault."""
        out: dict[str, object] = {"fault": self.fault_id, "action": self.action,
                                  "process": self.process}
        if self.action == "delay":
            out["delay_ms"] = self.delay_ms
        if self.response_code is not None:
            out["response_code"] = self.response_code
        return out


def deliver(decision: FaultDecision, timer: Timer, send: Callable[[bytes], None],
            close: Callable[[], None], payload: bytes | None) -> Deferred[None] | None:
    """Send ``payload`` (None: nothing to send) the way the fault says.

    Returns a Deferred when the send happens later (``delay`` with ``process: true``); the
    server chains the connection's next answer on it, so the answers keep their order.
    """
    action = decision.action
    if action == "delay" and decision.process and payload is not None:
        d: Deferred[None] = Deferred()

        def _late() -> None:
            send(payload)
            d.callback(None)

        timer.callLater(decision.delay_ms / 1000, _late)
        return d
    if action in ("delay", "respond") and payload is not None:
        send(payload)
    elif action == "duplicate" and payload is not None:
        send(payload)
        send(payload)
    elif action == "garble":
        send(garble(payload or b"GARBLED"))
    elif action == "close":
        close()
    # drop: nothing leaves
    return None


def garble(payload: bytes) -> bytes:
    """A same-length payload that is not an ISO 8583 message (every byte XOR 0xA5)."""
    return bytes(b ^ 0xA5 for b in payload) or b"\xa5"
