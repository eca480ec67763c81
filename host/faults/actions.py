"""Apply fault decisions where the registry is (the Twisted side of :mod:`host.faults.rules`).

Two steps, one on each side of the service call:

* :meth:`FaultHook.match` and :meth:`FaultHook.submit` replace ``service.handle(request)``:
  they find the rule, then process the request now, later (``delay`` with ``process: false``)
  or not at all (``process: false``), and put a ``respond`` rule's forced answer in its place;
* :func:`host.faults.delivery.deliver` replaces ``sendFrame(payload)``: it sends, delays,
  drops, garbles, duplicates or closes the connection, wherever the answer is written.

In the one-process host both happen in the server. With front processes the engine matches
and submits (:mod:`host.front.engine`), and the decision travels back to the front with the
answer, where the same :func:`~host.faults.delivery.deliver` carries out its delivery part.

Every applied fault is logged (``event: "fault"``) and counted in
``poslab_faults_applied_total{action, fault}`` where it is matched. A delayed answer keeps its
place in the connection's response order, because ``deliver`` returns a Deferred the server
chains on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, succeed

from host.faults.delivery import FaultDecision
from host.faults.rules import FaultRegistry, forced_response
from host.wire import log_ids


@dataclass(frozen=True)
class SkippedReply:
    """What the server gets instead of a service reply: no response (processing skipped), or
    a forced one (``respond``)."""

    response: Any = None
    log: dict[str, object] = field(default_factory=dict)
    silent: bool = False  # the fault decides what the terminal gets, not this flag


@dataclass(frozen=True)
class _Forced:
    """A response given as a field dict (the server only calls ``to_fields``)."""

    fields: dict[str, str]

    def to_fields(self) -> dict[str, str]:
        return dict(self.fields)


class FaultHook:
    """The registry plus what applying a fault needs: metrics, log and a timer."""

    def __init__(self, registry: FaultRegistry, metrics: Any, log: Any, timer: Any) -> None:
        self.registry = registry
        self.log = log
        self.timer = timer
        self._counter = metrics.counter(
            "poslab_faults_applied_total", "Fault rules applied to requests, by action and rule.")

    def match(self, conn_id: int | str, fields: Mapping[str, str]) -> FaultDecision | None:
        """The fault for this request (counted and logged), or None; ``conn_id`` is the
        connection's number, or ``front<N>`` for a request from a front process."""
        decision = self.registry.match(fields)
        if decision is not None:
            self._counter.inc(action=decision.action, fault=decision.fault_id)
            mti, stan, tid, _ = log_ids(fields)
            self.log.event("fault", conn=conn_id, mti=mti, stan=stan, tid=tid, **decision.log())
        return decision

    def submit(self, decision: FaultDecision, request: Mapping[str, str],
               process: Callable[[], Deferred[Any]]) -> Deferred[Any]:
        """Process now, after the delay, or not at all, as the decision says.

        For ``respond`` the reply's response is replaced by the forced answer (built on the
        real response when the request was processed, so its RRN stays).
        """
        if decision.process:
            d = process()
        elif decision.action == "delay":
            d = Deferred()
            self.timer.callLater(decision.delay_ms / 1000, lambda: process().chainDeferred(d))
        else:
            d = succeed(SkippedReply(log={"fault": decision.fault_id,
                                          "action": decision.action}))
        if decision.action == "respond":
            d.addCallback(self._force, decision, request)
        return d

    @staticmethod
    def _force(reply: Any, decision: FaultDecision, request: Mapping[str, str]) -> SkippedReply:
        response = getattr(reply, "response", None)
        real = response.to_fields() if response is not None else None
        assert decision.response_code is not None
        log = dict(getattr(reply, "log", {}))
        log.update(fault=decision.fault_id, action=decision.action)
        return SkippedReply(_Forced(forced_response(request, decision.response_code, real)),
                            log)
