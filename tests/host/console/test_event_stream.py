"""The admin event stream (GET /events) against a live host, read with a real HTTP client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from host.event_stream import EventBus
from tests.host.console.conftest import PAN, TOKEN, LiveHost

AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def host_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The stream reads committed rows: each test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    url: str = request.getfixturevalue("pg_url")
    return url


async def _events(source: Any) -> AsyncIterator[ServerSentEvent]:
    async for sse in source.aiter_sse():
        if sse.data:  # the opening ``retry:`` record carries no event
            yield sse


async def _until(it: AsyncIterator[ServerSentEvent], want: str,
                 seen: list[ServerSentEvent]) -> ServerSentEvent:
    """Read records into ``seen`` until one of type ``want`` (the caller bounds the wait)."""
    async for sse in it:
        seen.append(sse)
        if sse.event == want:
            return sse
    raise AssertionError(f"the stream ended before a {want!r} record")


def test_stream_refuses_a_missing_token_and_other_methods(live_host: LiveHost, run: Any) -> None:
    """GET /events without the token is 401 (with an audit line); POST is 405."""

    async def script() -> tuple[int, int, int]:
        async with httpx.AsyncClient(base_url=live_host.admin_url) as http:
            none = await http.get("/events")
            wrong = await http.get("/events", headers={"authorization": "Bearer nope"})
            post = await http.post("/events", headers=AUTH)
            return none.status_code, wrong.status_code, post.status_code

    assert run(script()) == (401, 401, 405)


def test_a_sale_streams_its_messages_stage_and_posting(live_host: LiveHost, run: Any) -> None:
    """A terminal's sale over TCP gives message in/out, a stage and a balanced posting."""

    async def script() -> list[ServerSentEvent]:
        seen: list[ServerSentEvent] = []
        async with httpx.AsyncClient(base_url=live_host.admin_url, timeout=None) as http, \
                aconnect_sse(http, "GET", "/events", headers=AUTH) as source:
            it = _events(source)
            hello = await asyncio.wait_for(_until(it, "hello", seen), 5)
            assert json.loads(hello.data)["ledger_head"] == 0
            assert json.loads(hello.data)["merchants"]["MERCHANT0000001"] == {
                "country": "CN", "subdivision": None, "timezone": "Asia/Shanghai"}
            answer = await live_host.sale("000101", 12_500)
            assert answer["39"] == "00"
            await asyncio.wait_for(_until(it, "posting", seen), 5)
        return seen

    seen = run(script())
    data = [json.loads(s.data) for s in seen if s.event != "hello"]
    by_type = {d["type"]: d for d in data}
    into, out = [d for d in data if d["type"] == "message"][:2]
    assert (into["direction"], out["direction"]) == ("in", "out")
    assert into["txn_type"] == "sale" and into["amount_minor"] == 12_500
    assert into["pan"] == "411111******1111" and PAN not in json.dumps(data)
    assert out["rc"] == "00" and out["rrn"] and out["tid"] == "TERM0001"
    assert any(f[0] == "2" and f[2] == "411111******1111" for f in into["fields"])
    assert by_type["stage"]["stage"] == "decided" and by_type["stage"]["rrn"] == out["rrn"]
    posting = by_type["posting"]
    assert posting["rrn"] == out["rrn"] and posting["kind"] == "sale"
    legs = {(e["account"], e["side"]): e["amount_minor"] for e in posting["entries"]}
    assert legs == {("scheme_settlement", "D"): 12_500,
                    ("merchant_payable:MERCHANT0000001", "C"): 12_500}
    ids = [int(s.id) for s in seen if s.id]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_reconnecting_with_last_event_id_replays_what_was_missed(live_host: LiveHost,
                                                                   run: Any) -> None:
    """Events published while the client was away come back after Last-Event-ID, no hello."""

    async def script() -> tuple[list[ServerSentEvent], list[ServerSentEvent]]:
        first: list[ServerSentEvent] = []
        async with httpx.AsyncClient(base_url=live_host.admin_url, timeout=None) as http:
            async with aconnect_sse(http, "GET", "/events", headers=AUTH) as source:
                it = _events(source)
                await asyncio.wait_for(_until(it, "hello", first), 5)
                await live_host.sale("000201", 1_000)
                await asyncio.wait_for(_until(it, "posting", first), 5)
            last = [s.id for s in first if s.id][-1]
            await live_host.sale("000202", 2_000)  # nobody listens now
            again: list[ServerSentEvent] = []
            async with aconnect_sse(http, "GET", "/events",
                                    headers={**AUTH, "last-event-id": last}) as source:
                await asyncio.wait_for(_until(_events(source), "posting", again), 5)
        return first, again

    first, again = run(script())
    assert "hello" not in [s.event for s in again]
    missed = [json.loads(s.data) for s in again]
    assert int(again[0].id) == int([s.id for s in first if s.id][-1]) + 1
    assert [m["amount_minor"] for m in missed if m["type"] == "message"][:2] == [2_000, 2_000]
    assert [m["amount_minor"] for m in missed if m["type"] == "posting"] == [2_000]


def test_an_id_the_buffer_does_not_hold_gets_reset_then_hello(live_host: LiveHost,
                                                             run: Any) -> None:
    """A Last-Event-ID from another run of the host: a reset record, then a fresh hello."""

    async def script() -> list[str]:
        seen: list[ServerSentEvent] = []
        async with httpx.AsyncClient(base_url=live_host.admin_url, timeout=None) as http, \
                aconnect_sse(http, "GET", "/events",
                             headers={**AUTH, "last-event-id": "987654"}) as source:
            await asyncio.wait_for(_until(_events(source), "hello", seen), 5)
        return [s.event for s in seen]

    assert run(script()) == ["reset", "hello"]


def test_a_bad_last_event_id_is_400(live_host: LiveHost, run: Any) -> None:
    """Last-Event-ID that is not an event id answers 400 saying so."""

    async def script() -> httpx.Response:
        async with httpx.AsyncClient(base_url=live_host.admin_url) as http:
            return await http.get("/events", headers={**AUTH, "last-event-id": "abc"})

    answer = run(script())
    assert answer.status_code == 400 and "Last-Event-ID" in answer.json()["error"]


def test_clock_moves_and_review_decisions_are_streamed(live_host: LiveHost, run: Any) -> None:
    """An admin clock move gives a clock event; a held refund's review stages are streamed."""

    async def script() -> list[dict[str, Any]]:
        seen: list[ServerSentEvent] = []
        async with httpx.AsyncClient(base_url=live_host.admin_url, timeout=None) as http, \
                aconnect_sse(http, "GET", "/events", headers=AUTH) as source:
            it = _events(source)
            await asyncio.wait_for(_until(it, "hello", seen), 5)
            sale = await live_host.sale("000301", 900_000)
            refund = await live_host.refund("000302", sale["37"], 800_000)
            assert refund["39"] == "00"
            reviews = (await http.get("/reviews", headers=AUTH)).json()["reviews"]
            review_id = reviews[0]["id"]
            await http.post(f"/reviews/{review_id}/approve", headers=AUTH,
                            json={"approver": "alice"})
            while not any(json.loads(s.data).get("stage") == "review_approved"
                          for s in seen if s.event == "stage"):
                await asyncio.wait_for(_until(it, "stage", seen), 5)
            await http.post("/clock/advance", headers=AUTH, json={"hours": 1})
            await asyncio.wait_for(_until(it, "clock", seen), 5)
        return [json.loads(s.data) for s in seen if s.event != "hello"]

    data = run(script())
    stages = [d["stage"] for d in data if d["type"] == "stage"]
    assert "review_opened" in stages and "review_approved" in stages
    clock = [d for d in data if d["type"] == "clock"][0]
    assert clock["previous"] < clock["now"]
    held = [d for d in data if d["type"] == "posting" and d["kind"] == "review_release"]
    assert held and {e["account"] for e in held[0]["entries"]} == {"refunds_under_review",
                                                                    "scheme_settlement"}


def test_an_unwatched_bus_builds_no_events() -> None:
    """Until a listener subscribes, message() records nothing; afterwards it numbers events."""
    bus = EventBus(capacity=2)
    fields = {"t": "0200", "3": "000000", "11": "000001", "4": "000000001000", "2": PAN}
    bus.message("in", 1, fields)
    assert bus.last_id == 0
    got: list[Any] = []
    bus.subscribe(got.append)
    for _ in range(3):
        bus.message("in", 1, fields)
    assert [item.id for item in got] == [1, 2, 3]
    backlog, lost = EventBus.subscribe(bus, lambda _: None, after=0)
    assert [item.id for item in backlog] == [2, 3] and lost


def test_a_disarmed_bus_records_nothing_and_a_resume_learns_of_the_gap() -> None:
    """Armed without a subscriber, messages are kept without their field rendering; once
    disarmed they cost nothing, and a listener resuming from its last id learns of the gap."""
    bus = EventBus()
    fields = {"t": "0200", "3": "000000", "11": "000001", "4": "000000001000"}
    seen: list[Any] = []
    bus.subscribe(seen.append)
    bus.message("in", 1, fields)
    bus.unsubscribe(seen.append)
    bus.message("in", 1, fields)  # armed, nobody subscribed right now: kept, not rendered
    kept, _ = bus.subscribe(seen.append, after=seen[-1].id)
    bus.unsubscribe(seen.append)
    assert seen[0].event.fields and kept[0].event.fields == []
    bus.disarm()
    bus.message("in", 1, fields)  # nobody listens: not recorded
    assert not bus.armed and bus.last_id == 3  # the skipped id marks the gap
    backlog, lost = bus.subscribe(lambda _: None, after=seen[-1].id)
    assert backlog == [] and lost


class _FakeRequest:
    """Just what the stream writes to: bytes written, finished or not."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.finished = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def unregisterProducer(self) -> None:  # noqa: N802 - Twisted naming
        pass

    def finish(self) -> None:
        self.finished = True


def test_a_client_that_stops_reading_is_held_then_cut_off() -> None:
    """While the socket is full records wait (in order, none written); past QUEUE_MAX waiting
    the stream is closed, so a stuck client cannot grow the host's memory."""
    from twisted.internet.task import Clock

    from host.event_sse import QUEUE_MAX, _Client

    closed: list[Any] = []
    request = _FakeRequest()
    client = _Client(request, Clock(), closed.append)
    client.write(b"a")
    client.pauseProducing()
    client.write(b"b")
    client.write(b"c")
    assert request.written == [b"a"]
    client.resumeProducing()
    assert request.written == [b"a", b"b", b"c"]
    client.pauseProducing()
    for _ in range(QUEUE_MAX + 1):
        client.write(b"x")
    assert closed == [client] and request.finished
