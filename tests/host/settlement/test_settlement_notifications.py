"""Notification outbox, JSON-lines mirror and webhook delivery with retries (loopback)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from settlement_fakes import Receiver
from sqlalchemy import create_engine, select
from twisted.internet.defer import maybeDeferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from host.settlement.notifications import Outbox, WebhookSender, notification

AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
PAN = "6222021234567890123"


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    engine = create_engine(f"sqlite:///{tmp_path / 'n.db'}")
    yield Outbox(engine, tmp_path / "out" / "notifications.jsonl")
    engine.dispose()


def _emit(outbox: Outbox, event: str = "refund_posted", rrn: str = "000000000001") -> int:
    with outbox.engine.begin() as conn:
        return outbox.add(conn, event, AT, merchant_id="M1", rrn=rrn, reference="r-1", pan=PAN,
                          amount_minor=1250, currency="CNY", posting_date="2026-12-02")


def test_outbox_masks_pan_and_lists_in_order(outbox: Outbox) -> None:
    """Rows keep time, masked PAN, amount, RRN, reference and extra detail; never the full PAN."""
    _emit(outbox, "refund_approved", "000000000001")
    _emit(outbox, "refund_posted", "000000000001")
    _emit(outbox, "merchant_funded", "000000000002")
    rows = outbox.entries()
    assert [r["event"] for r in rows] == ["refund_approved", "refund_posted", "merchant_funded"]
    assert rows[0]["pan"] == "622202*********0123"
    assert rows[0]["at"] == "2026-11-27T09:00:00+00:00"  # UTC offset kept on SQLite too
    assert rows[1]["posting_date"] == "2026-12-02" and rows[1]["amount_minor"] == 1250
    assert [r["event"] for r in outbox.entries(rrn="000000000002")] == ["merchant_funded"]
    assert PAN not in json.dumps(rows)


def test_outbox_rolls_back_with_its_transaction(outbox: Outbox) -> None:
    """A notification added in a transaction that fails does not exist."""
    with pytest.raises(RuntimeError), outbox.engine.begin() as conn:
        outbox.add(conn, "refund_posted", AT, rrn="1")
        raise RuntimeError("the state change failed")
    assert outbox.entries() == []
    with pytest.raises(ValueError, match="unknown notification event"), outbox.engine.begin() as c:
        outbox.add(c, "refund_lost", AT)


def test_jsonl_file_gets_each_row_once(outbox: Outbox) -> None:
    """flush_file appends new rows only, one JSON object per line, PAN masked."""
    _emit(outbox)
    assert outbox.flush_file() == 1
    assert outbox.flush_file() == 0
    _emit(outbox, "merchant_funded")
    assert outbox.flush_file() == 1
    assert outbox.jsonl_path is not None
    lines = [json.loads(x) for x in outbox.jsonl_path.read_text().splitlines()]
    assert [x["event"] for x in lines] == ["refund_posted", "merchant_funded"]
    assert PAN not in outbox.jsonl_path.read_text()


def _deliver(run: Any, outbox: Outbox, failures: int, delays: tuple[float, ...]) -> Receiver:
    from twisted.internet import reactor

    hook = Receiver(failures)
    port = reactor.listenTCP(0, Site(hook), interface="127.0.0.1")  # type: ignore[attr-defined]
    try:
        sender = WebhookSender(f"http://127.0.0.1:{port.getHost().port}/hook", outbox,
                               maybeDeferred, lambda: AT, delays_s=delays)
        run(sender.pump().asFuture(asyncio.get_event_loop()))
    finally:
        run(port.stopListening().asFuture(asyncio.get_event_loop()))
    return hook


def test_webhook_retries_until_delivered(run: Any, outbox: Outbox) -> None:
    """Two HTTP 500s then 200: three POSTs of the same body, then marked delivered."""
    _emit(outbox)
    hook = _deliver(run, outbox, failures=2, delays=(0.01, 0.01, 0.01))
    assert len(hook.posts) == 3 and hook.posts[0] == hook.posts[2]
    assert hook.posts[0]["pan"] == "622202*********0123"
    (row,) = outbox.entries()
    assert row["delivered"] and row["attempts"] == 3
    assert outbox.undelivered(max_attempts=4) == []


def test_webhook_gives_up_after_max_attempts(run: Any, outbox: Outbox) -> None:
    """A receiver that always fails gets len(delays)+1 attempts; the row stays undelivered."""
    _emit(outbox)
    hook = _deliver(run, outbox, failures=99, delays=(0.01,))
    assert len(hook.posts) == 2
    (row,) = outbox.entries()
    assert not row["delivered"] and row["attempts"] == 2


def test_webhook_connection_refused_is_recorded(run: Any, outbox: Outbox) -> None:
    """A closed port counts as a failed attempt with the error kept, not an exception."""
    from twisted.internet import reactor

    port = reactor.listenTCP(0, Site(Receiver(0)), interface="127.0.0.1")  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port.getHost().port}/hook"
    run(port.stopListening().asFuture(asyncio.get_event_loop()))
    _emit(outbox)
    sender = WebhookSender(url, outbox, maybeDeferred, lambda: AT, delays_s=())
    run(sender.pump().asFuture(asyncio.get_event_loop()))
    (row,) = outbox.entries()
    assert row["attempts"] == 1 and not row["delivered"]
    with pytest.raises(ValueError, match="http"):
        WebhookSender("ftp://x", outbox, maybeDeferred, lambda: AT)


class _Silent(Resource):
    """A receiver that takes every POST and never answers it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.posts = 0

    def render_POST(self, request: Any) -> Any:  # noqa: N802 - twisted.web naming
        self.posts += 1
        return NOT_DONE_YET


def test_webhook_timeout_counts_as_failed_attempt(run: Any, outbox: Outbox) -> None:
    """A receiver that never answers is cut off after timeout_s and retried; the error is kept."""
    from twisted.internet import reactor

    hook = _Silent()
    port = reactor.listenTCP(0, Site(hook), interface="127.0.0.1")  # type: ignore[attr-defined]
    _emit(outbox)
    try:
        sender = WebhookSender(f"http://127.0.0.1:{port.getHost().port}/hook", outbox,
                               maybeDeferred, lambda: AT, delays_s=(0.01,), timeout_s=0.2)
        run(sender.pump().asFuture(asyncio.get_event_loop()))
    finally:
        run(port.stopListening().asFuture(asyncio.get_event_loop()))
    # The receiver got a request and never answered; on a loaded machine the second attempt's
    # timeout can fire before its request has reached the receiver, so only one is certain.
    assert 1 <= hook.posts <= 2
    (row,) = outbox.entries()
    assert not row["delivered"] and row["attempts"] == 2
    with outbox.engine.connect() as conn:
        error = conn.execute(select(notification.c.last_error)).scalar_one()
    assert error == "no answer within 0.2 s"
