"""In-memory stand-ins for the engine's batch book and ledger, and a desk "world" for tests.

They implement the two narrow protocols the settlement desk needs (close batches at cut-off;
post a balanced group), so the desk's timing can be tested before and apart from the engine.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, create_engine
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource

from host.clock import ManualClock
from host.settlement.calendar import BusinessCalendar
from host.settlement.cutoffs import CutoffSchedule
from host.settlement.fees import FeeSchedule
from host.settlement.jobs import ClosedBatch, Member, MerchantTerms, SettlementDesk
from host.settlement.notifications import Outbox

SHANGHAI = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
PAN = "6222021234567890123"


@dataclass
class Txn:
    merchant_id: str
    kind: str
    rrn: str
    amount_minor: int
    business_date: date
    sale_minor: int = 0
    closed: bool = False


@dataclass
class FakeBook:
    """Transactions with business dates; cut-off closes those of the ending date."""

    txns: list[Txn] = field(default_factory=list)
    closes: list[tuple[str, date, datetime]] = field(default_factory=list)

    def close_batches(self, conn: Connection, merchant_id: str, business_date: date,
                      at: datetime) -> list[ClosedBatch]:
        self.closes.append((merchant_id, business_date, at))
        members = [t for t in self.txns if t.merchant_id == merchant_id and not t.closed
                   and t.business_date <= business_date]
        if not members:
            return []
        for t in members:
            t.closed = True
        label = f"{merchant_id}/{business_date.isoformat()}"
        return [ClosedBatch(label, self._hash(label), [
            Member(t.kind, t.rrn, t.amount_minor, "CNY", PAN, sale_minor=t.sale_minor)
            for t in members])]

    def _hash(self, label: str) -> str:
        rows = sorted((t.rrn, t.amount_minor) for t in self.txns
                      if f"{t.merchant_id}/{t.business_date.isoformat()}" == label)
        return hashlib.sha256(repr(rows).encode()).hexdigest()

    def content_hash(self, conn: Connection, batch: str) -> str | None:
        return self._hash(batch)


@dataclass
class FakeLedger:
    groups: list[dict[str, Any]] = field(default_factory=list)

    def post(self, conn: Connection, entries: Any, *, currency: str, at: datetime,
             reference: str) -> str:
        debit = sum(a for _, side, a in entries if side == "D")
        credit = sum(a for _, side, a in entries if side == "C")
        assert debit == credit > 0
        self.groups.append({"entries": list(entries), "at": at, "reference": reference})
        return f"g{len(self.groups)}"

    def balance(self, account: str) -> int:
        return sum((a if side == "C" else -a) for g in self.groups
                   for acct, side, a in g["entries"] if acct == account)


def make_terms(mid: str = "M1", *, tz: str = "Asia/Shanghai", country: str = "CN",
           fees: FeeSchedule | None = None, funding_days: int = 1) -> MerchantTerms:
    return MerchantTerms(mid, CutoffSchedule.parse(tz, "23:00"), BusinessCalendar(country),
                         fees or FeeSchedule(Decimal("0.6")), funding_days, (3, 7), "seed")


class World:
    """A desk, its clock, book, ledger and outbox on a fresh SQLite file."""

    def __init__(self, tmp: Path, start: datetime, terms: list[MerchantTerms]) -> None:
        self.engine = create_engine(f"sqlite:///{tmp / 'settle.db'}")
        self.clock = ManualClock(start)
        self.book = FakeBook()
        self.ledger = FakeLedger()
        self.outbox = Outbox(self.engine, tmp / "notifications.jsonl")
        self.terms = {t.merchant_id: t for t in terms}
        self.desk = self._desk()

    def _desk(self) -> SettlementDesk:
        desk = SettlementDesk(self.engine, self.terms, self.clock, self.book, self.ledger,
                              self.outbox)
        desk.install()
        return desk

    def restart(self) -> None:
        """A new desk on the same tables and clock (pending events rebuilt from the DB)."""
        for event in self.clock.scheduler.pending():
            assert event.key is not None
            self.clock.cancel(event.key)
        self.desk = self._desk()

    def txn(self, kind: str, rrn: str, amount: int, mid: str = "M1", sale: int = 0) -> Txn:
        t = Txn(mid, kind, rrn, amount, self.desk.business_date(mid, self.clock.now()), sale)
        self.book.txns.append(t)
        return t


def admin_http(port: int, token: str, method: str, path: str,
               body: object = None) -> tuple[int, Any]:
    """One admin API call on 127.0.0.1: ``(status, parsed JSON or text)`` (blocking)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, text, kind = resp.status, resp.read().decode(), resp.headers["content-type"]
    except urllib.error.HTTPError as err:
        status, text, kind = err.code, err.read().decode(), err.headers["content-type"]
    return status, json.loads(text) if "json" in kind else text


class Receiver(Resource):
    """A loopback webhook: the first ``failures`` POSTs get HTTP 500, the rest 200."""

    isLeaf = True

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.posts: list[dict[str, Any]] = []
        self.delivered: dict[int, dict[str, Any]] = {}
        self._waiting: list[tuple[int, Deferred[None]]] = []

    def render_POST(self, request: Any) -> bytes:  # noqa: N802 - twisted.web naming
        body = json.loads(request.content.read())
        self.posts.append(body)
        if len(self.posts) <= self.failures:
            request.setResponseCode(500)
        else:
            self.delivered[body["id"]] = body
        for n, d in list(self._waiting):
            if len(self.delivered) >= n and not d.called:
                d.callback(None)
        return b"ok"

    def wait_for(self, n: int) -> Deferred[None]:
        """Fires once ``n`` distinct notifications were answered 200."""
        d: Deferred[None] = Deferred()
        self._waiting.append((n, d))
        if len(self.delivered) >= n:
            d.callback(None)
        return d
