"""Admin routes for the clock, settlements, notifications and the refunds report, over HTTP."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from settlement_fakes import SHANGHAI, World, admin_http, make_terms

from host.admin import AdminContext, admin_site
from host.clock import SystemClock
from host.logs import MessageLog
from host.metrics import Metrics
from host.worker import ServiceWorker
from tests.host.engine.conftest import config_with

TOKEN = "settle-token"


@dataclass
class FakeService:
    """Just what the settlement routes use of the engine's service."""

    settlement: Any
    config: Any = None

    def refund_records(self, start: date | None, end: date | None) -> list[dict[str, Any]]:
        return [{"merchant_id": "M1", "rrn": "000000000002", "amount_minor": 400,
                 "currency": "CNY", "reason": "damaged", "state": "approved",
                 "created": "2026-11-27"}]

    def sales_totals(self, start: date | None, end: date | None) -> dict[str, tuple[int, int]]:
        return {"M1": (1, 1000)}


Call = Callable[..., tuple[int, Any]]


def _http(port: int, method: str, path: str, body: object = None) -> tuple[int, Any]:
    return admin_http(port, TOKEN, method, path, body)


def _serve(run: Any, service: Any, clock: Any) -> Iterator[Call]:
    from twisted.internet import reactor

    worker = ServiceWorker(reactor)
    worker.start()
    ctx = AdminContext(service, worker, Metrics(), MessageLog(io.StringIO()), clock)
    port = reactor.listenTCP(0, admin_site(ctx, TOKEN),  # type: ignore[attr-defined]
                             interface="127.0.0.1")

    def call(method: str, path: str, body: object = None) -> tuple[int, Any]:
        return run(asyncio.to_thread(_http, port.getHost().port, method, path, body))  # type: ignore[no-any-return]

    try:
        yield call
    finally:
        run(port.stopListening().asFuture(asyncio.get_event_loop()))
        worker.stop()


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path, datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI), [make_terms()])
    w.txn("sale", "000000000001", 1000)
    w.txn("refund", "000000000002", 400, sale=1000)
    return w


@pytest.fixture
def api(run: Any, world: World) -> Iterator[Call]:
    service = FakeService(world.desk)
    world.desk.refund_source = service
    yield from _serve(run, service, world.clock)


def test_clock_advance_runs_cutoff_and_funding(api: Call) -> None:
    """Advancing by hours closes the day; by business days and hours funds it (Fri -> Mon)."""
    status, clock = api("GET", "/clock")
    assert status == 200 and clock["mode"] == "simulated"
    assert clock["business_dates"] == {"M1": "2026-11-27"}
    assert [e["key"] for e in clock["pending_events"]] == ["cutoff:M1"]
    status, clock = api("POST", "/clock/advance", {"hours": 14})
    assert status == 200 and clock["business_dates"] == {"M1": "2026-11-28"}
    status, body = api("GET", "/settlements?date=2026-11-27")
    (s,) = body["settlements"]
    assert (s["status"], s["funding_date"], s["net_minor"]) == ("closed", "2026-11-30", 594)
    status, clock = api("POST", "/clock/advance", {"business_days": 1, "merchant": "M1"})
    assert clock["now"].startswith("2026-11-29T16:00")  # Monday 00:00 Shanghai
    api("POST", "/clock/advance", {"hours": 9})
    status, body = api("GET", "/notifications?event=merchant_funded")
    (note,) = body["notifications"]
    assert note["amount_minor"] == 594 and note["reference"] == f"settlement:{s['id']}"


def test_clock_set_forward_only_and_bad_bodies(api: Call) -> None:
    """set accepts a later instant; earlier instants, junk and unknown units are 400s."""
    status, clock = api("POST", "/clock/set", {"instant": "2026-11-28T09:00:00+08:00"})
    assert status == 200 and clock["now"] == "2026-11-28T01:00:00+00:00"
    assert api("POST", "/clock/set", {"instant": "2026-11-27T09:00:00+08:00"})[0] == 400
    assert api("POST", "/clock/set", {"instant": "2026-11-29T09:00:00"})[0] == 400
    assert api("POST", "/clock/set", {"instant": "soon"})[0] == 400
    assert api("POST", "/clock/advance", {"weeks": 1})[0] == 400
    assert api("POST", "/clock/advance", {"business_days": -1})[0] == 400
    assert api("POST", "/clock/advance", {"business_days": 1, "merchant": "NOPE"})[0] == 400
    assert api("GET", "/settlements?date=yesterday")[0] == 400
    assert api("GET", "/settlements?format=xml")[0] == 400


def test_settlements_csv_and_refunds_report(api: Call) -> None:
    """CSV settlements have the documented header; the refunds report merges settled state."""
    api("POST", "/clock/advance", {"days": 1})
    status, text = api("GET", "/settlements?format=csv")
    assert status == 200 and text.splitlines()[0].startswith("merchant_id,batch,business_date")
    assert len(text.splitlines()) == 2
    status, report = api("GET", "/reports/refunds?from=2026-11-01&to=2026-11-30")
    assert status == 200 and report["by_state"] == {"settled": {"count": 1, "amount_minor": 400}}
    assert report["merchants"][0]["refund_rate_amount"] == "0.4000"


def test_business_days_on_a_partitioned_host(run: Any, world: World) -> None:
    """A host of partition p1 counts business days in its own merchant's calendar; another
    partition's merchant is a 400 naming both partitions and saying to advance that host's
    clock, and a host that settles no merchant is a 400 saying to advance by days or hours."""
    service = FakeService(world.desk)
    service.config = config_with(server={"partition": "p1"}, merchants=[
        {"id": "M1", "partition": "p1"}, {"id": "M2", "partition": "p2"}])
    for api in _serve(run, service, world.clock):
        status, body = api("POST", "/clock/advance", {"business_days": 1, "merchant": "M2"})
        assert (status, body["error"]) == (400, (
            "merchant M2 belongs to partition p2; this host serves partition p1: its business "
            "days run on that host's clock, so advance that host (each host has a clock of its "
            "own); this one settles M1"))
        status, clock = api("POST", "/clock/advance", {"business_days": 1})
        assert (status, clock["now"]) == (200, "2026-11-30T02:00:00+00:00")  # M1: Mon 10:00
        world.desk.terms.clear()
        status, body = api("POST", "/clock/advance", {"business_days": 1})
        assert status == 400 and body["error"] == (
            "this host settles no merchant, so it has no business calendar to count in: "
            'advance it by "days" or "hours" instead')


def test_real_clock_cannot_be_moved(run: Any, world: World) -> None:
    """On the real clock, advance and set answer 409; GET /clock still works."""
    for call in _serve(run, FakeService(world.desk), SystemClock()):
        assert call("POST", "/clock/advance", {"hours": 1})[0] == 409
        assert call("POST", "/clock/set", {"instant": "2030-01-01T00:00:00Z"})[0] == 409
        assert call("GET", "/clock")[1]["mode"] == "real"


def test_without_a_desk_settlement_routes_are_503(run: Any, world: World) -> None:
    """A host without settlement answers 503 with a message, not a traceback."""
    for call in _serve(run, object(), world.clock):
        status, body = call("GET", "/settlements")
        assert status == 503 and "settlement" in body["error"]
