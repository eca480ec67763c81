"""The engine side of the cut-off: :class:`StoreBatchBook` over :mod:`host.store`'s tables, and
:func:`build_desk`, the one hook the service calls to get its settlement desk.

At a merchant's cut-off the book, in the desk's transaction:

1. closes every still-open batch of the merchant with business date <= the ending date
   (``closed_by = "cutoff"``, totals per currency, content hash recorded by the store);
2. hands over each closed batch not settled yet with its members **as they were at close**
   (a member undone after close still counts here, and is adjusted in step 3); refunds still
   held for review are left out until a reviewer approves them;
3. hands over one extra ``<mid>/late/<date>`` batch for what happened after earlier closes:
   refunds released by review since, and **adjustments** for settled members that were undone
   since without an adjustment row of their own (a late reversal or void of a settled sale
   gives ``-amount``; of a settled refund, ``+amount``). So a closed batch's figures never
   change: I12's "post-close events go to the open business date as adjustments".

A reversal the engine accepts after the original's batch closed (:mod:`host.service`) books an
``adjustment`` row in the terminal's open batch (``original_id`` = the reversed transaction,
signed amount). When that batch closes, the row is a member of kind ``adjustment`` -- provided
the reversed transaction was settled and not adjusted yet (a refund still held for review when
its batch closed was never settled, so reversing it moves no money). A member undone after its
batch closed still counts in that batch: "after" is decided by the adjustment row when there is
one (a frozen simulated clock gives the 0500 and the 0400 the same instant), else by time.

``settled_item`` remembers every member settled and whether it has been adjusted, so each item
is settled once and adjusted at most once, whichever of step 3 or an adjustment row comes first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)

from host.domain import ReviewState, TxnKind, TxnState
from host.ledger import MAIN_CHAIN, to_ms
from host.ledger.prepared import Prepared
from host.ledger.schema import UpdateRule
from host.settlement.jobs import (
    ClosedBatch,
    Member,
    MerchantTerms,
    SettlementDesk,
    member_line,
    merchant_terms,
    metadata,
    settlement,
    terms_from_config,
)
from host.settlement.notifications import Outbox
from host.store import Store, batch, event, terminal, txn

settled_item = Table(
    "settled_item", metadata,
    Column("txn_id", Integer, primary_key=True),
    Column("merchant_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount_minor", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("batch", String(64), nullable=False),
    Column("adjusted", Boolean, nullable=False, default=False),
)  # fmt: skip

SETTLED_ITEM_RULES = (
    UpdateRule("settled_item_fixed", "settled_item", "only the adjusted flag changes",
               ("txn_id", "merchant_id", "kind", "amount_minor", "currency", "batch")),
    UpdateRule("settled_item_adjusted_once", "settled_item", "adjusted moves once, false -> true",
               ("adjusted",), "NOT OLD.adjusted AND NEW.adjusted"),
)
"""The named UPDATE rules of ``settled_item`` (an item is settled once, adjusted at most once)."""

# The refund and its sale's RRN in one statement, built once (notify_refund runs on the
# request path for every approved refund).
_sale = txn.alias("sale")
_REFUND_FOR_NOTICE = Prepared(
    select(txn.c.merchant_id, txn.c.rrn, txn.c.pan_masked, txn.c.amount_minor, txn.c.currency,
           txn.c.reason, _sale.c.rrn.label("sale_rrn"))
    .select_from(txn.outerjoin(_sale, _sale.c.id == txn.c.original_id))
    .where(txn.c.id == bindparam("txn_id_")))

_CAPTURES = (TxnKind.SALE, TxnKind.COMPLETION, TxnKind.REFUND)
_MEMBER_KINDS = (*_CAPTURES, TxnKind.ADJUSTMENT)
_UNDO_EVENTS = ("reversed", "voided", "review_rejected")


@dataclass(frozen=True, slots=True)
class RefundNotice:
    """What a refund's notification tells the customer, as its transaction row holds it
    (``sale_rrn``: the RRN of the sale it refunds, None for an unreferenced refund)."""

    merchant_id: str
    rrn: str
    sale_rrn: str | None
    pan_masked: str | None
    amount_minor: int
    currency: str
    reason: str | None


def _label(row: Any) -> str:
    return f"{row.terminal_id}/{row.id}"


def _late_label(merchant_id: str, day: date) -> str:
    return f"{merchant_id}/late/{day.isoformat()}"


def _hash(members: list[Member]) -> str:
    doc = [[m.kind, m.rrn, m.amount_minor, m.currency] for m in members]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


def capture_member(conn: Connection, row: Any, *, settled: bool = False) -> Member:
    """The settlement member of capture ``row`` (a sale, completion or refund ``txn`` row).

    For a refund, ``refunded_before_minor`` is what the refund policy prorates against: the
    refunds of the same sale settled and not adjusted. The cut-off asks before it settles
    ``row``; with ``settled`` (``row`` was settled already) only the refunds settled before it
    count, in the order the cut-offs settled them (settlement, then transaction), as they
    stand now: a sibling adjusted since no longer counts.
    """
    kind = TxnKind.SALE if row.kind == TxnKind.COMPLETION else row.kind
    sale_minor = before = 0
    if kind == TxnKind.REFUND and row.original_id is not None:
        sale_minor = int(conn.execute(select(txn.c.amount_minor)
                                      .where(txn.c.id == row.original_id)).scalar() or 0)
        joined = settled_item.join(txn, txn.c.id == settled_item.c.txn_id)
        siblings = (select(func.coalesce(func.sum(settled_item.c.amount_minor), 0))
                    .where(txn.c.original_id == row.original_id,
                           settled_item.c.kind == TxnKind.REFUND,
                           settled_item.c.adjusted.is_(False)))
        if settled:
            joined = joined.join(settlement, and_(settlement.c.batch == settled_item.c.batch,
                                                  settlement.c.currency == row.currency))
            mine = _settlement_of(conn, int(row.id))
            siblings = siblings.where(or_(settlement.c.id < mine, and_(
                settlement.c.id == mine, settled_item.c.txn_id < row.id)))
        before = int(conn.execute(siblings.select_from(joined)).scalar_one())
    return Member(kind, str(row.rrn), int(row.amount_minor), row.currency, row.pan_masked,
                  sale_minor=sale_minor or int(row.amount_minor),
                  refunded_before_minor=min(before, sale_minor))


def _settlement_of(conn: Connection, txn_id: int) -> int | None:
    """The id of the settlement that settled item ``txn_id`` (its batch, in its currency)."""
    return conn.execute(select(settlement.c.id).select_from(settled_item.join(
        settlement, and_(settlement.c.batch == settled_item.c.batch,
                         settlement.c.currency == settled_item.c.currency)))
        .where(settled_item.c.txn_id == txn_id)).scalar()


def _due_before(conn: Connection, row: Any) -> int:
    """What the refunds of ``row``'s sale made before it and not settled yet, but due to
    settle (approved, not held for review), add up to: the next cut-off settles them first."""
    if row.original_id is None:
        return 0
    return int(conn.execute(
        select(func.coalesce(func.sum(txn.c.amount_minor), 0))
        .select_from(txn.outerjoin(settled_item, settled_item.c.txn_id == txn.c.id))
        .where(txn.c.original_id == row.original_id, txn.c.kind == TxnKind.REFUND,
               txn.c.id < row.id, txn.c.state == TxnState.APPROVED,
               or_(txn.c.review_state.is_(None), txn.c.review_state == ReviewState.APPROVED),
               settled_item.c.txn_id.is_(None))).scalar_one())


class StoreBatchBook:
    """:class:`host.settlement.jobs.BatchBook` on the engine's ``txn`` / ``batch`` tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def close_batches(
        self, conn: Connection, merchant_id: str, business_date: date, at: datetime
    ) -> list[ClosedBatch]:
        """See the module docstring, steps 1-3."""
        day = business_date.isoformat()
        at_ms = to_ms(at)
        for row in conn.execute(select(batch).where(
                batch.c.merchant_id == merchant_id, batch.c.state == "open",
                batch.c.business_date <= day).order_by(batch.c.id)).all():
            currencies = conn.execute(select(txn.c.currency).distinct()
                                      .where(txn.c.batch_id == row.id)).scalars().all()
            totals = {c: self.store.batch_totals(conn, int(row.id), c) for c in currencies}
            self.store.close_batch(conn, int(row.id), number=row.number, at_ms=at_ms,
                                   closed_by="cutoff", totals=totals)
        settled = set(conn.execute(select(settlement.c.batch).distinct()
                                   .where(settlement.c.merchant_id == merchant_id)).scalars())
        out = []
        for row in conn.execute(select(batch).where(
                batch.c.merchant_id == merchant_id, batch.c.state == "closed",
                batch.c.business_date <= day).order_by(batch.c.id)).all():
            if _label(row) in settled:
                continue
            members = self._members_at_close(conn, row)
            if members:
                out.append(ClosedBatch(_label(row), str(row.content_hash), members))
        label = _late_label(merchant_id, business_date)
        late = self._late(conn, merchant_id, label)
        if late:
            out.append(ClosedBatch(label, _hash(late), late))
        return out

    def content_hash(self, conn: Connection, label: str) -> str | None:
        """The store's recomputed hash of a real batch; None for a ``late`` batch."""
        if "/late/" in label:
            return None
        return self.store.batch_content_hash(conn, int(label.rsplit("/", 1)[1]))

    # -- members ---------------------------------------------------------------------------------

    def _undone_ms(self, conn: Connection, txn_id: int) -> int | None:
        return conn.execute(select(func.min(event.c.at_ms)).where(
            event.c.txn_id == txn_id, event.c.kind.in_(_UNDO_EVENTS))).scalar()

    def _has_adjustment(self, conn: Connection, txn_id: int) -> bool:
        return conn.execute(select(txn.c.id).where(
            txn.c.original_id == txn_id, txn.c.kind == TxnKind.ADJUSTMENT).limit(1)
        ).first() is not None

    def _adjustment(self, conn: Connection, row: Any) -> Member | None:
        """The settlement member of an engine adjustment row, once per settled item."""
        item = conn.execute(select(settled_item).where(
            settled_item.c.txn_id == row.original_id,
            settled_item.c.adjusted.is_(False))).one_or_none()
        if item is None:
            return None  # never settled, or already adjusted by step 3
        conn.execute(update(settled_item).where(settled_item.c.txn_id == row.original_id)
                     .values(adjusted=True))
        original = self.store.txn_by_id(conn, int(row.original_id))
        rrn = original.rrn if original is not None else row.rrn
        return Member(TxnKind.ADJUSTMENT, str(rrn), int(row.amount_minor), row.currency,
                      row.pan_masked)

    def _member(self, conn: Connection, row: Any, label: str) -> Member:
        member = capture_member(conn, row)
        conn.execute(settled_item.insert().values(
            txn_id=int(row.id), merchant_id=row.merchant_id, kind=member.kind,
            amount_minor=int(row.amount_minor), currency=row.currency, batch=label,
            adjusted=False))
        return member

    def _members_at_close(self, conn: Connection, brow: Any) -> list[Member]:
        closed_ms = int(brow.closed_ms or 0)
        out = []
        for row in conn.execute(select(txn).where(txn.c.batch_id == brow.id,
                                                  txn.c.kind.in_(_MEMBER_KINDS))
                                .order_by(txn.c.id)).all():
            if row.kind == TxnKind.ADJUSTMENT:
                adjustment = self._adjustment(conn, row) if row.state == TxnState.APPROVED else None
                if adjustment is not None:
                    out.append(adjustment)
                continue
            if row.state == TxnState.DECLINED or \
                    row.review_state in (ReviewState.PENDING, ReviewState.CANCELLED):
                continue  # a cancelled review: held at close, undone before any release
            if row.state != TxnState.APPROVED and not self._has_adjustment(conn, int(row.id)):
                undone = self._undone_ms(conn, int(row.id))
                if undone is None or undone <= closed_ms:
                    continue  # undone before close: never part of the closed batch
            if row.kind == TxnKind.REFUND and row.review_state == ReviewState.REJECTED:
                continue
            out.append(self._member(conn, row, _label(brow)))
        return out

    def _late(self, conn: Connection, merchant_id: str, label: str) -> list[Member]:
        out: list[Member] = []
        # Refunds released by review after their batch closed, never settled.
        released = conn.execute(
            select(txn).select_from(
                txn.join(batch, batch.c.id == txn.c.batch_id)
                .outerjoin(settled_item, settled_item.c.txn_id == txn.c.id))
            .where(txn.c.merchant_id == merchant_id, txn.c.kind == TxnKind.REFUND,
                   txn.c.state == TxnState.APPROVED, txn.c.review_state == ReviewState.APPROVED,
                   batch.c.state == "closed", settled_item.c.txn_id.is_(None))
            .order_by(txn.c.id)).all()
        for row in released:
            out.append(self._member(conn, row, label))
        # Settled items undone since: one adjustment each.
        undone = conn.execute(
            select(settled_item, txn.c.rrn, txn.c.pan_masked)
            .select_from(settled_item.join(txn, txn.c.id == settled_item.c.txn_id))
            .where(settled_item.c.merchant_id == merchant_id,
                   settled_item.c.adjusted.is_(False),
                   txn.c.state != TxnState.APPROVED)
            .order_by(settled_item.c.txn_id)).all()
        for row in undone:
            sign = -1 if row.kind == TxnKind.SALE else 1
            out.append(Member(TxnKind.ADJUSTMENT, str(row.rrn), sign * int(row.amount_minor),
                              row.currency, row.pan_masked))
            conn.execute(update(settled_item).where(settled_item.c.txn_id == row.txn_id)
                         .values(adjusted=True))
        return out


class StoreRefundSource:
    """:class:`host.settlement.jobs.RefundSource` on the ``txn`` table (declined ones left out).

    A refund's state is the engine's: ``approved``, ``pending_review``, ``rejected`` or
    ``reversed``; the desk turns ``approved`` into ``settled`` / ``posted`` when it applies.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _range(self, query: Any, start: date | None, end: date | None) -> Any:
        if start is not None:
            query = query.where(txn.c.business_date >= start.isoformat())
        if end is not None:
            query = query.where(txn.c.business_date <= end.isoformat())
        return query

    def refund_records(self, start: date | None, end: date | None) -> list[dict[str, Any]]:
        """Refunds with a business date in ``[start, end]``."""
        query = self._range(select(txn).where(txn.c.kind == TxnKind.REFUND,
                                              txn.c.state != TxnState.DECLINED), start, end)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(txn.c.id)).all()
        return [{"merchant_id": r.merchant_id, "rrn": r.rrn, "amount_minor": int(r.amount_minor),
                 "currency": r.currency, "reason": r.reason or "", "created": r.business_date,
                 "state": ReviewState.PENDING if r.state == TxnState.APPROVED
                 and r.review_state == ReviewState.PENDING else r.state} for r in rows]

    def sales_totals(self, start: date | None, end: date | None) -> dict[str, tuple[int, int]]:
        """Effective sales and completions per merchant in the range."""
        query = self._range(
            select(txn.c.merchant_id, func.count(), func.coalesce(func.sum(txn.c.amount_minor), 0))
            .where(txn.c.kind.in_((TxnKind.SALE, TxnKind.COMPLETION)),
                   txn.c.state == TxnState.APPROVED),
            start, end).group_by(txn.c.merchant_id)
        with self.engine.connect() as conn:
            return {mid: (int(n), int(total)) for mid, n, total in conn.execute(query).all()}


class EngineDesk(SettlementDesk):
    """The settlement desk of a running host: adds the engine's refund notifications, and
    settles merchants that only development-mode enrolment knows (``unlisted_terms``)."""

    history_rules = (*SettlementDesk.history_rules, *SETTLED_ITEM_RULES)
    history_tables = (*SettlementDesk.history_tables, "settled_item")

    unlisted_terms: Callable[[str], MerchantTerms] | None = None
    """The terms of a merchant the config does not list (the default profile under its id)."""

    def install(self) -> None:
        """Also settle every merchant with a terminal enrolled in development mode, including
        one whose enrolment committed just before the host stopped."""
        if self.unlisted_terms is not None:
            with self.engine.connect() as conn:
                enrolled = conn.execute(select(terminal.c.merchant_id).distinct()
                                        .where(terminal.c.enrolled == 1)).scalars().all()
            for mid in set(enrolled) - set(self.terms):
                if self.settles is None or self.settles(mid):  # not another host's merchant
                    self.terms[mid] = self.unlisted_terms(mid)
        super().install()

    def enrol_unlisted(self, merchant_id: str) -> bool:
        """:meth:`enrol` a merchant the config does not list; False when already known or
        when another host settles the merchants it does not list."""
        if merchant_id in self.terms or self.unlisted_terms is None:
            return False
        if self.settles is not None and not self.settles(merchant_id):
            return False
        return self.enrol(self.unlisted_terms(merchant_id))

    def refund_fee(self, conn: Connection, row: Any) -> dict[str, Any] | None:
        """``{"fee_minor", "fee_policy"}`` of refund ``row`` (a ``txn`` row) under its merchant's
        terms, through the line the cut-off books (:func:`member_line`): the fee its settlement
        booked once settled, what a cut-off now would book before. Signed as in the figures:
        positive is charged to the merchant, negative given back. None when no fee applies:
        not a refund, never approved, rejected or undone in review, or an unknown merchant."""
        if row.kind != TxnKind.REFUND:
            return None
        settled = conn.execute(select(settled_item.c.txn_id)
                               .where(settled_item.c.txn_id == row.id)).first() is not None
        if not settled and (row.state != TxnState.APPROVED or row.review_state in
                            (ReviewState.REJECTED, ReviewState.CANCELLED)):
            return None
        terms = self.terms.get(row.merchant_id)
        if terms is None and self.unlisted_terms is not None:
            terms = self.unlisted_terms(row.merchant_id)
        if terms is None:
            return None
        member = capture_member(conn, row, settled=settled)
        if not settled:  # the earlier refunds of the sale that the cut-off settles first
            member = replace(member, refunded_before_minor=min(
                member.sale_minor, member.refunded_before_minor + _due_before(conn, row)))
        line = member_line(member, terms.fees)
        return {"fee_minor": line.fee_minor, "fee_policy": terms.fees.refund_policy.value}

    def notify_refund(self, conn: Connection, event_name: str, txn_id: int, at: datetime,
                      **detail: Any) -> None:
        """Emit ``refund_approved`` / ``refund_rejected`` for refund ``txn_id`` in the engine's
        transaction ``conn`` (the notification exists exactly when the decision commits)."""
        if self.outbox is None:
            return
        row = _REFUND_FOR_NOTICE.run(conn, {"txn_id_": txn_id}).one_or_none()
        if row is None:
            return
        self.notify_refund_of(conn, event_name, RefundNotice(
            row.merchant_id, row.rrn, row.sale_rrn, row.pan_masked, int(row.amount_minor),
            row.currency, row.reason), at, **detail)

    def notify_refund_of(self, conn: Connection, event_name: str, refund: RefundNotice,
                         at: datetime, **detail: Any) -> None:
        """:meth:`notify_refund` for a refund whose row the caller has just written: the
        values it wrote are handed over instead of read back."""
        if self.outbox is None:
            return
        self.outbox.add_later(conn, event_name, at, merchant_id=refund.merchant_id,
                              rrn=refund.rrn, reference=refund.sale_rrn, pan=refund.pan_masked,
                              amount_minor=refund.amount_minor, currency=refund.currency,
                              refund_reason=refund.reason, **detail)


def build_desk(service: Any) -> EngineDesk | None:
    """The settlement desk for a :class:`host.service.HostService` (its engine, clock, store,
    ledger and config), installed on the clock; None when the clock cannot schedule."""
    clock = service.clock
    if not callable(getattr(clock, "schedule", None)):
        return None
    config = service.config
    notif = getattr(config, "notifications", None)
    outbox = Outbox(service.engine, getattr(notif, "file", None))
    # The rows it writes carry the host's ledger chain (host.event_tail publishes its own).
    chain = getattr(service.ledger, "chain", MAIN_CHAIN).name
    outbox.chain = chain
    # With several hosts on one database, each settles and notifies its own merchants only.
    outbox.owns = config.settles
    terms = {mid: terms for mid, terms in terms_from_config(config).items()
             if config.settles(mid)}
    desk = EngineDesk(service.engine, terms, clock, StoreBatchBook(service.store),
                      service.ledger, outbox, service.chain_key)
    desk.settles = config.settles
    desk.chain = chain
    desk.refund_source = StoreRefundSource(service.engine)
    desk.unlisted_terms = lambda mid: merchant_terms(service.config,
                                                     service.merchant_profile(mid))
    desk.install()
    return desk
