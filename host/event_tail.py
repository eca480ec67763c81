"""Committed facts onto the event bus: :class:`EventTail` reads what the database gained.

Ledger postings, transaction stages (the store's audit events: decided, refunded, review
opened / approved / rejected ...), settlement cut-offs and notifications are append-only rows
with increasing ids, and every write of one host runs in its single service worker thread, so
one host's rows commit in id order. A host publishes only what it wrote itself: the postings
of its own ledger chain (:mod:`host.ledger.chains`), and the stages, settlements and
notifications whose ``chain`` column names that chain. Another host on the same database takes
ids from the same sequences (and, for postings, a range of its own) and commits them in any
order against this one's, so its rows are neither published here nor able to make the tail
skip one of this host's: reading "every row past the last id" would skip a row of the other
host that committed after a higher one was read. Two hosts that write the same chain (two
without a partition) would still see each other's rows; ``[server] partition`` is what sets
hosts apart.

The tail remembers the last id it published per table and, while somebody listens, reads the
rows past it in the worker thread -- after each answer the server sends, and every
:data:`POLL_S` seconds for what the clock's jobs did -- and publishes them as typed events
(:mod:`host.event_stream`). Only committed rows are read, so no event describes work a rollback
undid. With nobody listening it reads nothing; when a listener comes back it
catches up from where it stopped.

A frozen simulated clock that moved between two reads gives a :class:`ClockEvent`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, inspect, select
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

from host.event_stream import (
    ClockEvent,
    EventBus,
    NotificationEvent,
    PostingEvent,
    SettlementEvent,
    StageEvent,
    StreamEvent,
)
from host.ledger.chains import MAIN_CHAIN, Chain
from host.ledger.schema import ledger_entry, posting_group
from host.settlement.jobs import settlement
from host.settlement.notifications import notification
from host.store import event as event_table
from host.store import txn
from host.txn_views import iso_ms

POLL_S = 0.25
"""Longest wait between two reads while somebody listens."""
BATCH = 500
"""Rows read per table per read (the rest on the next one)."""

BlockingCall = Callable[..., "Deferred[Any]"]


@dataclass
class Positions:
    """The last id published per table (``group``: in the host's chain, its base when the
    chain is empty)."""

    group: int = 0
    event: int = 0
    settlement: int = 0
    notification: int = 0


class EventTail:
    """Publishes new committed rows of ``engine`` on ``bus``; reads run through ``call`` (the
    service worker), timed by ``reactor``; the rows of ``chain`` only (its postings, and the
    stages, settlements and notifications written by its host)."""

    def __init__(self, bus: EventBus, engine: Engine, clock: Any, call: BlockingCall,
                 reactor: Any, poll_s: float = POLL_S, chain: Chain = MAIN_CHAIN) -> None:
        self.bus = bus
        self.engine = engine
        self.chain = chain
        self.clock = clock
        self.call = call
        self.reactor = reactor
        self.poll_s = poll_s
        self.pos: Positions | None = None
        self._tables: dict[str, bool] = {}
        self._clock_seen: str | None = None
        self._listeners = 0
        self._loop: LoopingCall | None = None
        self._busy = False
        self._again = False
        bus.watch_answers(self.kick)

    # -- lifetime (event loop) -----------------------------------------------------------------

    def attach(self) -> None:
        """A listener came: read every :attr:`poll_s` (and after each answer) from now on."""
        self._listeners += 1
        if self._loop is None:
            self._loop = LoopingCall(self.kick)
            self._loop.clock = self.reactor
            self._loop.start(self.poll_s, now=True)

    def detach(self) -> None:
        """A listener left: stop reading once none is left."""
        self._listeners = max(0, self._listeners - 1)
        if self._listeners == 0 and self._loop is not None:
            if self._loop.running:
                self._loop.stop()
            self._loop = None

    def kick(self) -> None:
        """Read now (once; a read already running reads again when it ends)."""
        if not self._listeners:
            return
        if self._busy:
            self._again = True
            return
        self._busy = True
        d = self.call(self.read)
        d.addErrback(lambda _: None)  # a busy or closing database: the next read catches up
        d.addBoth(self._done)

    def _done(self, _: object) -> None:
        self._busy = False
        if self._again:
            self._again = False
            self.kick()

    def snapshot(self) -> Deferred[dict[str, Any]]:
        """Publish what is pending, then ``{"ledger_head", "balances"}`` as of exactly that
        point (one worker call: no write can come between): the chain's position and the
        balances of its postings up to there."""
        return self.call(self._snapshot)

    # -- reading (worker thread) -----------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        self.read()
        assert self.pos is not None
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ledger_entry.c.account, ledger_entry.c.currency, ledger_entry.c.side,
                       func.sum(ledger_entry.c.amount_minor))
                .where(ledger_entry.c.group_id > self.chain.base,
                       ledger_entry.c.group_id <= self.pos.group)
                .group_by(ledger_entry.c.account, ledger_entry.c.currency,
                          ledger_entry.c.side)).all()
            conn.rollback()
        balances: dict[str, dict[str, int]] = {}
        for account, currency, side, total in rows:
            per = balances.setdefault(str(account), {})
            per[str(currency)] = per.get(str(currency), 0) + (int(total) if side == "D"
                                                              else -int(total))
        return {"ledger_head": self.pos.group, "balances": balances,
                "clock": self._clock_seen}

    def read(self) -> int:
        """Publish the rows committed since the last read; return how many events."""
        with self.engine.connect() as conn:
            if self.pos is None:
                self.pos = self._heads(conn)
                self._clock_seen = self._now()
                conn.rollback()
                return 0
            events: list[StreamEvent] = []
            events += self._stages(conn)
            events += self._postings(conn)
            if self._has(conn, settlement):
                events += self._settlements(conn)
            if self._has(conn, notification):
                events += self._notifications(conn)
            conn.rollback()
        now = self._now()
        if now is not None and self._clock_seen is not None and now != self._clock_seen:
            events.append(ClockEvent(previous=self._clock_seen, now=now))
        self._clock_seen = now
        for event in events:
            self.bus.publish(event)
        return len(events)

    def _now(self) -> str | None:
        # Only a frozen simulated clock moves by command; a running one would "move" each read.
        if self.clock is None or getattr(self.clock, "mode", "") != "simulated" or \
                getattr(self.clock, "speed", 0):
            return None
        return str(self.clock.now().isoformat())

    def _has(self, conn: Connection, table: Table) -> bool:
        if table.name not in self._tables:
            self._tables[table.name] = inspect(conn).has_table(table.name)
        return self._tables[table.name]

    def _heads(self, conn: Connection) -> Positions:
        def top(table: Table) -> int:
            if not self._has(conn, table):
                return 0
            return int(conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one())

        chain = self.chain
        group = int(conn.execute(select(func.coalesce(func.max(posting_group.c.id), chain.base))
                                 .where(posting_group.c.id > chain.base,
                                        posting_group.c.id < chain.end)).scalar_one())
        return Positions(group, top(event_table), top(settlement), top(notification))

    def _postings(self, conn: Connection) -> list[StreamEvent]:
        assert self.pos is not None
        groups = conn.execute(select(posting_group).where(posting_group.c.id > self.pos.group,
                                                          posting_group.c.id < self.chain.end)
                              .order_by(posting_group.c.id).limit(BATCH)).all()
        if not groups:
            return []
        ids = [int(g.id) for g in groups]
        legs: dict[int, list[dict[str, Any]]] = {}
        for leg in conn.execute(select(ledger_entry).where(ledger_entry.c.group_id.in_(ids))
                                .order_by(ledger_entry.c.id)):
            legs.setdefault(int(leg.group_id), []).append(
                {"account": leg.account, "side": leg.side, "amount_minor": int(leg.amount_minor)})
        txn_ids = {int(g.reference[4:]) for g in groups
                   if g.reference.startswith("txn:") and g.reference[4:].isdigit()}
        rrns = dict(conn.execute(select(txn.c.id, txn.c.rrn).where(txn.c.id.in_(txn_ids))).all()) \
            if txn_ids else {}
        out: list[StreamEvent] = []
        for g in groups:
            ref = str(g.reference)
            rrn = rrns.get(int(ref[4:])) if ref.startswith("txn:") and ref[4:].isdigit() else None
            out.append(PostingEvent(
                group=int(g.id), kind=str(g.kind), reference=ref, currency=str(g.currency),
                amount_minor=int(g.amount_minor), at=iso_ms(int(g.at_ms)),
                entries=legs.get(int(g.id), []), rrn=rrn,
                reverses=int(g.reverses) if g.reverses is not None else None, memo=g.memo or ""))
        self.pos.group = ids[-1]
        return out

    def _stages(self, conn: Connection) -> list[StreamEvent]:
        assert self.pos is not None
        original = txn.alias("original")
        rows = conn.execute(
            select(event_table.c.id, event_table.c.at_ms, event_table.c.kind,
                   event_table.c.detail, txn.c.rrn, txn.c.kind.label("txn_kind"),
                   txn.c.amount_minor, txn.c.currency, original.c.rrn.label("original_rrn"))
            .select_from(event_table.outerjoin(txn, txn.c.id == event_table.c.txn_id)
                         .outerjoin(original, original.c.id == txn.c.original_id))
            .where(event_table.c.id > self.pos.event, event_table.c.chain == self.chain.name)
            .order_by(event_table.c.id).limit(BATCH)).all()
        out: list[StreamEvent] = []
        for r in rows:
            try:
                detail = json.loads(r.detail or "{}")
            except ValueError:
                detail = {}
            out.append(StageEvent(
                stage=str(r.kind), at=iso_ms(int(r.at_ms)), rrn=r.rrn, kind=r.txn_kind,
                original_rrn=r.original_rrn,
                amount_minor=int(r.amount_minor) if r.amount_minor is not None else None,
                currency=r.currency, detail=detail if isinstance(detail, dict) else {}))
            self.pos.event = int(r.id)
        return out

    def _settlements(self, conn: Connection) -> list[StreamEvent]:
        assert self.pos is not None
        rows = conn.execute(select(settlement).where(settlement.c.id > self.pos.settlement,
                                                     settlement.c.chain == self.chain.name)
                            .order_by(settlement.c.id).limit(BATCH)).all()
        out: list[StreamEvent] = []
        for r in rows:
            figures = r.figures if isinstance(r.figures, dict) else {}
            net = figures.get("net_minor")
            out.append(SettlementEvent(
                settlement=int(r.id), merchant_id=r.merchant_id, batch=r.batch,
                currency=r.currency, business_date=str(r.business_date),
                funding_date=str(r.funding_date), status=r.status,
                net_minor=int(net) if isinstance(net, int) else None))
            self.pos.settlement = int(r.id)
        return out

    def _notifications(self, conn: Connection) -> list[StreamEvent]:
        assert self.pos is not None
        rows = conn.execute(select(notification)
                            .where(notification.c.id > self.pos.notification,
                                   notification.c.chain == self.chain.name)
                            .order_by(notification.c.id).limit(BATCH)).all()
        out: list[StreamEvent] = []
        for r in rows:
            at = r.at.isoformat() if r.at is not None else ""
            out.append(NotificationEvent(
                event=r.event, at=at, merchant_id=r.merchant_id, rrn=r.rrn,
                reference=r.reference, pan=r.pan_masked,
                amount_minor=int(r.amount_minor) if r.amount_minor is not None else None,
                currency=r.currency))
            self.pos.notification = int(r.id)
        return out
