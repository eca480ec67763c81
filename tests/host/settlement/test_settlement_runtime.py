"""Settlement in a running host (HostRuntime): notifications to the file and a loopback webhook
with retries, a speed-factor clock that runs due events by itself, per-merchant terms."""

from __future__ import annotations

import asyncio
import json
import re
import struct
import tomllib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from settlement_fakes import Receiver, admin_http
from twisted.internet.defer import Deferred
from twisted.web.server import Site

from host.clock import ManualClock
from host.config import HostConfig, default_config_text, parse_config
from host.runtime import HostRuntime
from protocol import (
    CardData,
    Codec,
    EntryMode,
    Money,
    Pan,
    RefundRequest,
    SaleRequest,
    frame,
)

SH = ZoneInfo("Asia/Shanghai")
TOKEN = "runtime-settle-token"
PAN = "4111111111111111"
TID, MID = "TERM0001", "MERCHANT0000001"
CARD = CardData(EntryMode.MANUAL, pan=Pan(PAN), expiry="3012")


def _config(**sections: dict[str, Any]) -> HostConfig:
    data = tomllib.loads(default_config_text())
    data.update(sections)
    return parse_config(data, "<test>")


class Iso:
    """A plain asyncio ISO 8583 client (iso87-ascii, 2-byte length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.codec, self.stan = reader, writer, Codec(), 0

    async def send(self, fields: dict[str, str]) -> dict[str, str]:
        self.writer.write(frame(self.codec.encode(fields), "2b"))
        (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        return self.codec.decode(await self.reader.readexactly(n))[1]

    def next_stan(self) -> str:
        self.stan += 1
        return f"{self.stan:06d}"

    async def sale(self, amount: int) -> dict[str, str]:
        return await self.send(SaleRequest(
            stan=self.next_stan(), terminal_id=TID, merchant_id=MID, card=CARD,
            amount=Money(amount, "CNY")).to_fields())

    async def refund(self, rrn: str, amount: int) -> dict[str, str]:
        return await self.send(RefundRequest(
            stan=self.next_stan(), terminal_id=TID, merchant_id=MID, card=CARD,
            amount=Money(amount, "CNY"), original_rrn=rrn).to_fields())


class Running:
    """A started HostRuntime with its ISO client and admin caller."""

    def __init__(self, run: Callable[..., Any], runtime: HostRuntime, clock: ManualClock) -> None:
        self.run, self.runtime, self.clock = run, runtime, clock
        self.iso: Iso | None = None

    def admin(self, method: str, path: str, body: object = None) -> Any:
        status, answer = self.run(asyncio.to_thread(admin_http, self.runtime.admin_port, TOKEN,
                                                    method, path, body))
        assert status == 200, answer
        return answer

    def client(self) -> Iso:
        if self.iso is None:
            reader, writer = self.run(asyncio.open_connection("127.0.0.1",
                                                              self.runtime.iso_port))
            self.iso = Iso(reader, writer)
        return self.iso

    def stop(self) -> None:
        if self.iso is not None:
            self.iso.writer.close()
            self.iso = None
        self.run(self.runtime.stop())


@pytest.fixture
def start(run: Callable[..., Any], tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start real hosts (HostService on SQLite in tmp_path); stop them after the test."""
    started: list[Running] = []

    def _start(config: HostConfig, clock: ManualClock, **kw: Any) -> Running:
        runtime = HostRuntime(**kw)
        run(runtime.start(config, str(tmp_path / "host.db"), clock, admin_token=TOKEN))
        host = Running(run, runtime, clock)
        started.append(host)
        return host

    yield _start
    for host in started:
        host.stop()


@pytest.fixture
def receiver(run: Callable[..., Any]) -> Iterator[tuple[Receiver, str]]:
    """A loopback webhook on port 0 that fails its first two POSTs."""
    from twisted.internet import reactor

    hook = Receiver(failures=2)
    port = reactor.listenTCP(0, Site(hook), interface="127.0.0.1")  # type: ignore[attr-defined]
    yield hook, f"http://127.0.0.1:{port.getHost().port}/hook"
    run(port.stopListening().asFuture(asyncio.get_event_loop()))


def test_every_notification_reaches_file_and_webhook(
        start: Callable[..., Running], receiver: tuple[Receiver, str], run: Any,
        tmp_path: Path) -> None:
    """Sale, refund, a rejected held refund, then a clock run through cut-off, funding and
    posting: the webhook gets all four kinds (after two failed POSTs, retried), the JSON-lines
    file gets each notification once, written right after its commit, PAN masked."""
    hook, url = receiver
    jsonl = tmp_path / "notifications.jsonl"
    config = _config(notifications={"file": str(jsonl), "webhook_url": url,
                                    "max_attempts": 4, "backoff_s": 0.01})
    host = start(config, ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=SH)))
    iso = host.client()
    sale = run(iso.sale(3000))
    refund = run(iso.refund(sale["37"], 1000))
    assert refund["39"] == "00"
    assert host.runtime.notifier is not None
    run(host.runtime.notifier.when_idle().asFuture(asyncio.get_event_loop()))
    (line,) = [json.loads(x) for x in jsonl.read_text().splitlines()]  # before any admin call
    assert (line["event"], line["rrn"], line["pan"]) == ("refund_approved", refund["37"],
                                                         "411111******1111")
    big = run(iso.sale(2_000_000))
    held = run(iso.refund(big["37"], 600_000))
    assert held["44"].startswith("REFUND_PENDING_REVIEW")
    (review,) = host.admin("GET", "/reviews?state=pending_review")["reviews"]
    host.admin("POST", f"/reviews/{review['id']}/reject", {"approver": "qa",
                                                           "reason": "no receipt"})
    host.admin("POST", "/clock/advance", {"business_days": 10})
    notes = host.admin("GET", "/notifications")["notifications"]
    assert {n["event"] for n in notes} == {"refund_approved", "refund_rejected",
                                           "refund_posted", "merchant_funded"}
    run(hook.wait_for(len(notes)).asFuture(asyncio.get_event_loop()), timeout=15)
    assert sorted(hook.delivered) == sorted(n["id"] for n in notes)
    assert len(hook.posts) == len(notes) + 2  # the two 500s were retried
    again = host.admin("GET", "/notifications")["notifications"]
    assert all(n["delivered"] for n in again)
    assert sum(n["attempts"] for n in again) == len(notes) + 2
    detail = host.admin("GET", f"/transactions/{refund['37']}")
    assert detail["refund_settlement"]["state"] == "posted"
    host.stop()
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert [x["id"] for x in lines] == [n["id"] for n in notes]
    assert PAN not in jsonl.read_text()


def test_stop_cuts_webhook_retries_short(start: Callable[..., Running], run: Any) -> None:
    """A webhook that always fails, with a long back-off: stopping the host does not wait for
    the retries; the notification stays undelivered for the next run."""
    from twisted.internet import reactor

    hook = Receiver(failures=10**6)
    port = reactor.listenTCP(0, Site(hook), interface="127.0.0.1")  # type: ignore[attr-defined]
    try:
        url = f"http://127.0.0.1:{port.getHost().port}/hook"
        config = _config(notifications={"webhook_url": url, "max_attempts": 5,
                                        "backoff_s": 600})
        host = start(config, ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=SH)))
        first_post: Deferred[None] = Deferred()
        original = hook.render_POST

        def observed(request: Any) -> bytes:
            answer = original(request)
            if not first_post.called:
                first_post.callback(None)
            return answer

        hook.render_POST = observed  # type: ignore[method-assign]
        iso = host.client()
        sale = run(iso.sale(3000))
        run(iso.refund(sale["37"], 1000))
        run(first_post.asFuture(asyncio.get_event_loop()))
        run(host.runtime.stop(), timeout=5)  # well before the 600 s back-off
        assert len(hook.posts) == 1
    finally:
        run(port.stopListening().asFuture(asyncio.get_event_loop()))


def test_speed_clock_runs_due_events_as_time_passes(start: Callable[..., Running],
                                                    run: Any) -> None:
    """--speed 3600: with the real-time source moved by 3 s the simulated clock is 3 h later
    and the host has run the 23:00 cut-off by itself (no admin call): the sale's settlement
    exists and the business date moved on."""
    from twisted.internet import reactor

    real = [1000.0]
    clock = ManualClock(datetime(2026, 11, 26, 21, 0, tzinfo=SH), speed=3600,
                        monotonic=lambda: real[0])
    host = start(_config(), clock, clock_poll_s=0.01)
    assert host.runtime.notifier is None  # no file, no webhook: the outbox table suffices
    sale = run(host.client().sale(2500))
    assert sale["39"] == "00"
    passed: Deferred[datetime] = Deferred()
    clock.schedule(datetime(2026, 11, 26, 23, 0, 1, tzinfo=SH),
                   lambda at: reactor.callFromThread(passed.callback, at))  # type: ignore[attr-defined]
    real[0] += 3.0  # three real seconds: three simulated hours
    at = run(passed.asFuture(asyncio.get_event_loop()), timeout=10)
    assert at == datetime(2026, 11, 26, 23, 0, 1, tzinfo=SH)
    (row,) = host.admin("GET", "/settlements?date=2026-11-26")["settlements"]
    assert (row["sales_count"], row["sales_minor"]) == (1, 2500)
    view = host.admin("GET", "/clock")
    assert view["speed"] == 3600 and view["business_dates"] == {MID: "2026-11-27"}
    assert datetime.fromisoformat(view["now"]) == datetime(2026, 11, 27, 0, 0, tzinfo=SH)


def test_per_merchant_cutoff_and_funding_days(start: Callable[..., Running], run: Any) -> None:
    """A merchant with its own cutoff "02:00" and funding_days 0: its 23:30 sale belongs to the
    same business date, which closes at 02:00 and is funded that day; the other merchant keeps
    [settlement] (23:00, T+1)."""
    early = {"id": "MERCHANT0000002", "terminals": ["TERM0002"], "cutoff": "02:00",
             "funding_days": 0}
    data = tomllib.loads(default_config_text())
    config = parse_config({**data, "merchants": [*data["merchants"], early]}, "<test>")
    clock = ManualClock(datetime(2026, 11, 26, 23, 30, tzinfo=SH))
    host = start(config, clock)
    iso = host.client()
    mine = run(iso.send(SaleRequest(stan="000001", terminal_id="TERM0002",
                                    merchant_id="MERCHANT0000002", card=CARD,
                                    amount=Money(1000, "CNY")).to_fields()))
    other = run(iso.sale(1000))
    assert host.admin("GET", f"/transactions/{mine['37']}")["business_date"] == "2026-11-26"
    assert host.admin("GET", f"/transactions/{other['37']}")["business_date"] == "2026-11-27"
    host.admin("POST", "/clock/set", {"instant": "2026-11-27T02:00:00+08:00"})
    rows = host.admin("GET", "/settlements?date=2026-11-26")["settlements"]
    assert [(r["merchant_id"], r["funding_date"], r["status"]) for r in rows] == [
        ("MERCHANT0000002", "2026-11-26", "funded")]
    host.admin("POST", "/clock/advance", {"hours": 22})  # past MERCHANT0000001's 23:00
    rows = host.admin("GET", "/settlements?date=2026-11-27")["settlements"]
    assert [(r["merchant_id"], r["funding_date"]) for r in rows] == [
        (MID, "2026-11-30")]


def test_config_schema_for_notifications_and_merchant_terms() -> None:
    """[notifications] and the merchant cutoff/funding_days are validated with the key named;
    retry delays double from backoff_s."""
    from host.config import ConfigError

    cfg = _config(notifications={"max_attempts": 4, "backoff_s": 0.5})
    assert cfg.notifications.retry_delays() == (0.5, 1.0, 2.0)
    assert _config().notifications.webhook_url is None
    for sections, where in (({"notifications": {"webhook_url": "ftp://x"}},
                             "notifications.webhook_url"),
                            ({"notifications": {"max_attempts": 0}},
                             "notifications.max_attempts"),
                            ({"notifications": {"retries": 3}}, "notifications.retries"),
                            ({"merchants": [{"id": "M1", "cutoff": "24:00"}]},
                             "merchants[0].cutoff"),
                            ({"merchants": [{"id": "M1", "funding_days": -1}]},
                             "merchants[0].funding_days")):
        with pytest.raises(ConfigError, match=re.escape(f"<test>: {where}: ")):
            _config(**sections)


def test_cli_speed_option(capsys: pytest.CaptureFixture[str]) -> None:
    """--speed takes a positive factor for the simulated clock; 0, negative, nan, words and
    use without --clock simulated are one-line errors with exit 2."""
    from host.cli import _clock, build_parser, main

    args = build_parser().parse_args(["--clock", "simulated", "--start",
                                      "2026-11-27T09:00:00+08:00", "--speed", "3600"])
    clock = _clock(args)
    assert isinstance(clock, ManualClock) and clock.speed == 3600
    assert _clock(build_parser().parse_args(["--clock", "simulated"])).speed == 0
    for bad in ("0", "-5", "nan", "inf", "fast"):
        with pytest.raises(SystemExit) as info:
            build_parser().parse_args(["--clock", "simulated", "--speed", bad])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "--speed" in err and len(err.strip().splitlines()) == 1
    assert main(["--speed", "60"]) == 2
    assert "--speed needs --clock simulated" in capsys.readouterr().err


def test_next_look_follows_the_earliest_event() -> None:
    """The runtime looks at a speed clock again when its next event is due in real time."""
    from host.runtime import _next_look

    clock = ManualClock(datetime(2026, 11, 26, 22, 0, tzinfo=SH), speed=3600,
                        monotonic=lambda: 0.0)
    assert _next_look(clock, 3600, 1.0) == 1.0  # nothing pending
    clock.schedule(clock.now() + timedelta(minutes=6), lambda at: None)
    assert _next_look(clock, 3600, 1.0) == pytest.approx(0.1)
    clock.schedule(clock.now() - timedelta(minutes=1), lambda at: None)
    assert _next_look(clock, 3600, 1.0) == 0.001
