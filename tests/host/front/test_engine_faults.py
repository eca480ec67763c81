"""Fault rules in the engine: one registry for every front, decisions sent back with the answers.

In-process: two of the engine's front channels on one pool, their pipes replaced by lists, the
group committer by a recorder, the clock simulated. (Which front the kernel hands a connection
to cannot be chosen from outside, so "count over all fronts" is proven here, where it can.)
"""

from __future__ import annotations

import io
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from host.event_stream import EventBus
from host.faults.actions import FaultHook
from host.faults.rules import FaultRegistry, parse_rule
from host.front.engine import FrontChannel, FrontPool
from host.front.link import Answer, Submit, frame
from host.logs import MessageLog
from host.metrics import Metrics
from protocol import Codec
from tests.host.front.link_pipe import LinkPipe

PAN = "4111111111111111"


class _Response:
    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields

    def to_fields(self) -> dict[str, str]:
        return dict(self.fields)


class _Reply:
    def __init__(self, request: Any) -> None:
        fields = request.fields
        self.response = _Response({"t": "0210", "11": fields["11"], "41": fields["41"],
                                   "37": "RRN" + fields["11"], "39": "00"})
        self.log: dict[str, object] = {"kind": "sale"}
        self.silent = False


class _Committer:
    """Stands in for the group committer: approves at once, remembers what it processed."""

    def __init__(self) -> None:
        self.processed: list[str] = []

    def submit(self, request: Any) -> Deferred[Any]:
        self.processed.append(request.fields["11"])
        return succeed(_Reply(request))


def _engine(*rules: dict[str, object]) -> tuple[list[FrontChannel], _Committer, FaultHook,
                                                 Clock, io.StringIO]:
    clock, out = Clock(), io.StringIO()
    log = MessageLog(out)
    metrics = Metrics()
    hook = FaultHook(FaultRegistry(parse_rule(r) for r in rules), metrics, log, clock)
    committer = _Committer()
    pool = FrontPool(clock, 2, None, None, committer, None,  # type: ignore[arg-type]
                     Codec("iso87-ascii"), log, metrics, EventBus(), faults=hook)
    channels = [FrontChannel(pool, index) for index in (0, 1)]
    for channel in channels:
        channel.transport = LinkPipe()  # type: ignore[assignment]
    return channels, committer, hook, clock, out


def _submit(channel: FrontChannel, rid: int, stan: str, tid: str = "TERM0001") -> None:
    fields = {"t": "0200", "2": PAN, "3": "000000", "4": "000000001500", "11": stan, "41": tid,
              "42": "MERCHANT0000001"}
    channel.childDataReceived(1, frame(Submit(rid, fields, b"")))


def _answers(channel: FrontChannel) -> list[Answer]:
    pipe: Any = channel.transport
    return [a for a in pipe.messages if isinstance(a, Answer)]


def test_a_count_one_rule_fires_once_over_all_fronts_and_its_decision_rides_the_answer() -> None:
    """drop/process:true, count 1: the first request of either front is booked and answered
    with the decision; the other front's requests are untouched; the list shows 0 left."""
    channels, committer, hook, _, log = _engine(
        {"id": "lost", "action": "drop", "process": True, "count": 1, "mti": "0200"})
    _submit(channels[0], 1, "000001")
    _submit(channels[1], 1, "000002")
    _submit(channels[1], 2, "000003")
    assert committer.processed == ["000001", "000002", "000003"]
    [first] = _answers(channels[0])
    assert first.fault is not None and (first.fault.fault_id, first.fault.action,
                                        first.fault.process) == ("lost", "drop", True)
    assert first.fields is not None and first.fields["39"] == "00"  # processed: its answer
    assert [a.fault for a in _answers(channels[1])] == [None, None]
    [rule] = hook.registry.list()
    assert (rule["applied"], rule["remaining"]) == (1, 0)
    assert PAN not in log.getvalue() and '"conn":"front0"' in log.getvalue()


def test_process_false_rules_are_answered_without_the_service_or_after_their_delay() -> None:
    """respond/process:false answers 91 FORCED unbooked; delay/process:false reaches the
    service only once the (simulated) delay has passed, then answers with its decision."""
    channels, committer, _, clock, _ = _engine(
        {"id": "no", "action": "respond", "process": False, "response_code": "91",
         "tid": "TERM0091"},
        {"id": "late", "action": "delay", "process": False, "delay_ms": 300, "tid": "TERM0300"})
    _submit(channels[0], 1, "000011", tid="TERM0091")
    [forced] = _answers(channels[0])
    assert committer.processed == []
    assert forced.fields is not None and (forced.fields["39"], forced.fields["44"]) == \
        ("91", "FORCED")
    assert forced.fault is not None and forced.fault.response_code == "91"
    _submit(channels[1], 1, "000012", tid="TERM0300")
    clock.advance(0.299)
    assert committer.processed == [] and _answers(channels[1]) == []
    clock.advance(0.001)
    [late] = _answers(channels[1])
    assert committer.processed == ["000012"]
    assert late.fault is not None and (late.fault.action, late.fault.delay_ms) == ("delay", 300)
