"""The settlement desk: clock-driven jobs for cut-off, merchant funding and refund posting.

One :class:`SettlementDesk` per host, built by the service on the host's database engine and
clock. It owns three tables (``merchant_day``, ``settlement``, ``refund_posting``) and schedules
three kinds of due events on the clock, each idempotent and each in one database transaction:

``cutoff:<merchant>``
    At the merchant's cut-off (see :mod:`host.settlement.cutoffs` for the business-date rule)
    the host closes the merchant's batches of the ending business date through the engine's
    :class:`BatchBook`, records one settlement per (batch, currency) with its figures
    (:mod:`host.settlement.fees`), its content hash and its funding date, records each settled
    refund's posting date, and advances the business date by one day.
``fund:<settlement id>``
    At 09:00 local on the funding date: posts one balanced ledger group (fees
    ``merchant_payable -> acquirer_fee_income``, payout ``merchant_payable -> bank``) through the
    :class:`LedgerPoster`, marks the settlement ``funded`` and emits ``merchant_funded``.
``post:<refund rrn>``
    At 09:00 local on the posting date: the refund goes ``settled -> posted`` and
    ``refund_posted`` is emitted.

Everything needed to reschedule lives in the tables, so :meth:`SettlementDesk.install` after a
restart re-creates the pending events (missed ones run at once, in time order).

Refund states: the engine owns ``approved`` (and review states); this desk adds ``settled``
(its batch closed) and ``posted`` (reached the card), see :meth:`SettlementDesk.refund_state`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from host.canonical_json import dumps_sorted
from host.clock import ManualClock, SystemClock
from host.domain import TxnKind, TxnState
from host.ledger.accounts import ACQUIRER_FEE_INCOME, BANK, merchant_payable
from host.ledger.chain import ChainKey
from host.ledger.chains import MAIN
from host.ledger.db import schema_transaction
from host.ledger.schema import (
    UpdateRule,
    add_chain_column,
    chain_column,
    create_history_triggers,
)
from host.reports import RefundRow, refunds_report
from host.settlement.calendar import BusinessCalendar, calendar_for
from host.settlement.cutoffs import CutoffSchedule, funding_date, refund_posting_date, resolve_local
from host.settlement.fees import FeeSchedule, Figures, Line, figures
from host.settlement.notifications import Outbox

BANK_TIME = time(9, 0)
"""Local time at which funding and refund posting happen on their dates."""

metadata = MetaData()

merchant_day = Table(
    "merchant_day", metadata,
    Column("merchant_id", String(32), primary_key=True),
    Column("business_date", Date, nullable=False),
)  # fmt: skip

settlement = Table(
    "settlement", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("merchant_id", String(32), nullable=False),
    Column("batch", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("business_date", Date, nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("figures", JSON, nullable=False),
    Column("funding_date", Date, nullable=False),
    Column("status", String(16), nullable=False),  # closed | funded
    Column("funded_at", DateTime(timezone=True)),
    Column("ledger_group", String(64)),
    Column("mac", String(64)),  # the chain key's MAC over SETTLEMENT_SEALED (NULL: no key)
    # The ledger chain of the host that wrote it: what its event stream publishes.
    chain_column(),
    UniqueConstraint("batch", "currency"),
)  # fmt: skip

refund_posting = Table(
    "refund_posting", metadata,
    Column("rrn", String(12), primary_key=True),
    Column("merchant_id", String(32), nullable=False),
    Column("settlement_id", Integer, nullable=False),
    Column("pan_masked", String(19)),
    Column("amount_minor", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("settlement_date", Date, nullable=False),
    Column("posting_date", Date, nullable=False),
    Column("state", String(16), nullable=False),  # settled | posted
    Column("posted_at", DateTime(timezone=True)),
    Column("mac", String(64)),  # the chain key's MAC over POSTING_SEALED (NULL: no key)
)  # fmt: skip

# -- what may change once written (docs/tamper-evidence.md) --------------------------------------

#: Columns of a settlement covered by its MAC: everything decided at the cut-off.
SETTLEMENT_SEALED = ("merchant_id", "batch", "currency", "business_date", "content_hash",
                     "figures", "funding_date")
#: Columns of a refund posting covered by its MAC.
POSTING_SEALED = ("rrn", "merchant_id", "settlement_id", "pan_masked", "amount_minor",
                  "currency", "settlement_date", "posting_date")

SETTLEMENT_RULES = (
    UpdateRule("settlement_fixed", "settlement", "only status, funded_at and ledger_group change",
               ("id", *SETTLEMENT_SEALED, "closed_at", "mac", "chain")),
    UpdateRule("settlement_funded_once", "settlement",
               "status moves once, closed -> funded, with funded_at and ledger_group",
               ("status", "funded_at", "ledger_group"),
               "OLD.status = 'closed' AND NEW.status = 'funded' AND NEW.funded_at IS NOT NULL"),
    UpdateRule("refund_posting_fixed", "refund_posting", "only state and posted_at change",
               (*POSTING_SEALED, "mac")),
    UpdateRule("refund_posting_posted_once", "refund_posting",
               "state moves once, settled -> posted, with posted_at", ("state", "posted_at"),
               "OLD.state = 'settled' AND NEW.state = 'posted' AND NEW.posted_at IS NOT NULL"),
)
"""The named UPDATE rules of the desk's history tables (:func:`create_history_triggers`)."""
SETTLEMENT_HISTORY = ("settlement", "refund_posting")
"""Tables of the desk whose rows are never deleted. ``merchant_day`` is the current business
date of each merchant, not history."""


def _sealed(row: Mapping[str, Any], columns: Sequence[str]) -> list[Any]:
    """A row's sealed values as its MAC covers them (dates as ISO text, JSON sorted)."""
    out: list[Any] = []
    for c in columns:
        value = row[c]
        if isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, dict):
            value = dumps_sorted(value)
        out.append(value)
    return out


def settlement_mac(key: ChainKey, row: Mapping[str, Any]) -> str:
    """The MAC of a settlement row's sealed columns (:data:`SETTLEMENT_SEALED`)."""
    return key.mac(["settlement", *_sealed(row, SETTLEMENT_SEALED)])


def posting_mac(key: ChainKey, row: Mapping[str, Any]) -> str:
    """The MAC of a refund posting's sealed columns (:data:`POSTING_SEALED`)."""
    return key.mac(["refund_posting", *_sealed(row, POSTING_SEALED)])


# -- what the engine provides ------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One effective item of a closed batch, as the engine reports it.

    ``kind``: ``sale``, ``refund`` or ``adjustment`` (a post-close event booked in the open batch,
    e.g. a late reversal of a settled sale: negative ``amount_minor``). For refunds,
    ``sale_minor`` and ``refunded_before_minor`` describe the original sale (for the
    ``refund_mdr_prorata`` policy). ``fee_minor`` overrides the computed fee when not None.
    """

    kind: str
    rrn: str
    amount_minor: int
    currency: str
    pan_masked: str | None = None
    sale_minor: int = 0
    refunded_before_minor: int = 0
    fee_minor: int | None = None


@dataclass(frozen=True)
class ClosedBatch:
    """A batch the engine closed: its label (``TID/batch no``), content hash and members."""

    batch: str
    content_hash: str
    members: Sequence[Member] = field(default_factory=tuple)


class BatchBook(Protocol):
    """The engine side of the cut-off (host/store.py implements it)."""

    def close_batches(
        self, conn: Connection, merchant_id: str, business_date: date, at: datetime
    ) -> list[ClosedBatch]:
        """Close every still-open batch of ``merchant_id`` with business date <= ``business_date``
        (and return those the terminals closed with 0500 that have not been settled yet), in
        the caller's transaction; each closed batch is immutable from now on."""
        ...

    def content_hash(self, conn: Connection, batch: str) -> str | None:
        """Recompute a closed batch's content hash from its members (for verify)."""
        ...


class LedgerPoster(Protocol):
    """The ledger side of funding (host/ledger implements it)."""

    def post(
        self,
        conn: Connection,
        entries: Sequence[tuple[str, str, int]],
        *,
        currency: str,
        at: datetime,
        reference: str,
    ) -> str:
        """Post one balanced group of ``(account, "D"|"C", amount_minor)``; return its id."""
        ...


class RefundSource(Protocol):
    """The engine's refund records for the refunds report (host/service.py implements it)."""

    def refund_records(self, start: date | None, end: date | None) -> list[dict[str, Any]]:
        """Refunds created in ``[start, end]`` (business dates; None = open-ended): dicts with
        merchant_id, rrn, amount_minor, currency, reason, state (approved | pending_review |
        rejected | reversed ...) and created (date or ISO string)."""
        ...

    def sales_totals(self, start: date | None, end: date | None) -> dict[str, tuple[int, int]]:
        """Effective sales per merchant in the same range: ``{mid: (count, amount_minor)}``."""
        ...


# -- merchant terms from the config -----------------------------------------------------------


@dataclass(frozen=True)
class MerchantTerms:
    """Everything timing- and fee-related about one merchant, resolved from the config."""

    merchant_id: str
    schedule: CutoffSchedule
    calendar: BusinessCalendar
    fees: FeeSchedule
    funding_days: int = 1
    posting_days: tuple[int, int] = (3, 7)
    seed: str = "poslab"


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    """The first attribute (or mapping key) of ``names`` present on ``obj``."""
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return default


def terms_from_config(config: Any) -> dict[str, MerchantTerms]:
    """Merchant terms for every ``[[merchants]]`` entry of a HostConfig (duck-typed)."""
    out: dict[str, MerchantTerms] = {}
    for m in _get(config, "merchants", default=[]):
        terms = merchant_terms(config, m)
        out[terms.merchant_id] = terms
    return out


def merchant_terms(config: Any, m: Any) -> MerchantTerms:
    """The terms of one merchant entry ``m``, with the config's ``[settlement]`` and
    ``[refund]`` defaults for what the entry leaves out (duck-typed)."""
    settlement_cfg = _get(config, "settlement", default={})
    refund_cfg = _get(config, "refund", default={})
    cutoff = str(_get(settlement_cfg, "cutoff", default="23:00"))
    funding_days = int(_get(settlement_cfg, "funding_days", default=1))
    seed = str(_get(refund_cfg, "posting_seed", "seed", default="poslab"))
    refund = _get(m, "refund", default=None) or refund_cfg
    fees_cfg = _get(m, "fees", default=m)
    fees = FeeSchedule.from_config(
        str(_get(fees_cfg, "mdr_percent", default="0")),
        int(_get(fees_cfg, "fixed_fee_minor", "fixed_minor", default=0)),
        str(_get(refund, "fee_policy", default=_get(refund_cfg, "fee_policy",
                                                    default="keep_mdr"))),
        int(_get(refund, "per_refund_fee_minor",
                 default=_get(refund_cfg, "per_refund_fee_minor", default=0))),
    )
    lo, hi = _get(refund, "posting_days", default=_get(refund_cfg, "posting_days",
                                                       default=(3, 7)))
    return MerchantTerms(
        merchant_id=str(_get(m, "id")),
        schedule=CutoffSchedule.parse(str(_get(m, "timezone", default="UTC")),
                                      str(_get(m, "cutoff", default=cutoff))),
        calendar=calendar_for(str(_get(m, "country", default="US")), _get(m, "subdivision")),
        fees=fees,
        funding_days=int(_get(m, "funding_days", default=funding_days)),
        posting_days=(int(lo), int(hi)),
        seed=seed,
    )


# -- the desk -----------------------------------------------------------------------------------


def member_line(member: Member, fees: FeeSchedule) -> Line:
    """The settlement line (with its signed fee) for one batch member."""
    if member.fee_minor is not None:
        return Line(member.kind, member.amount_minor, member.fee_minor)
    if member.kind == TxnKind.SALE:
        return Line("sale", member.amount_minor, fees.sale_fee(member.amount_minor))
    if member.kind == TxnKind.REFUND:
        fee = fees.refund_fee(member.amount_minor, sale_minor=member.sale_minor or
                              member.amount_minor,
                              refunded_before_minor=member.refunded_before_minor)
        return Line("refund", member.amount_minor, fee)
    # A late reversal of a settled sale (negative adjustment) gives the sale's MDR back.
    fee = -fees.sale_fee(-member.amount_minor) if member.amount_minor < 0 else 0
    return Line(member.kind, member.amount_minor, fee)


def funding_entries(fig: Figures, merchant_id: str) -> list[tuple[str, str, int]]:
    """The balanced entries that fund a settlement: fees, then the payout (either may be 0)."""
    payable = merchant_payable(merchant_id)
    entries: list[tuple[str, str, int]] = []
    if fig.fees_minor > 0:
        entries += [(payable, "D", fig.fees_minor), (ACQUIRER_FEE_INCOME, "C", fig.fees_minor)]
    elif fig.fees_minor < 0:
        entries += [(ACQUIRER_FEE_INCOME, "D", -fig.fees_minor), (payable, "C", -fig.fees_minor)]
    if fig.net_minor > 0:
        entries += [(payable, "D", fig.net_minor), (BANK, "C", fig.net_minor)]
    elif fig.net_minor < 0:  # refunds exceeded sales: the merchant pays in
        entries += [(BANK, "D", -fig.net_minor), (payable, "C", -fig.net_minor)]
    return entries


def create_desk_schema(conn: Connection, key: ChainKey | None, no_delete: Sequence[str],
                       rules: Sequence[UpdateRule]) -> None:
    """Create the desk's tables and their history triggers (idempotent).

    A database from before settlements and postings carried a MAC gets the ``mac`` column,
    and its rows are sealed with ``key`` once, at that upgrade (before any trigger exists)."""
    from sqlalchemy import inspect

    inspector = inspect(conn)
    for table, mac in ((settlement, settlement_mac), (refund_posting, posting_mac)):
        if inspector.has_table(table.name) and "mac" not in {
                c["name"] for c in inspector.get_columns(table.name)}:
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN mac VARCHAR(64)")
            if key is not None:
                pk = table.primary_key.columns.values()[0]
                for row in conn.execute(select(table)).all():
                    conn.execute(update(table).where(pk == row._mapping[pk.name])
                                 .values(mac=mac(key, dict(row._mapping))))
    add_chain_column(conn, settlement.name)
    metadata.create_all(conn)
    create_history_triggers(conn, no_delete, rules)


class SettlementDesk:
    """Clock-driven settlement for every merchant (see module docstring).

    ``key`` is the chain key settlement and posting rows are sealed with (None: unsealed, as in
    tests without a ledger)."""

    history_rules: tuple[UpdateRule, ...] = SETTLEMENT_RULES
    """The UPDATE rules of the desk's tables (a subclass adds those of its own tables)."""
    history_tables: tuple[str, ...] = SETTLEMENT_HISTORY
    """The desk's tables whose rows are never deleted."""

    def __init__(
        self,
        engine: Engine,
        terms: Mapping[str, MerchantTerms],
        clock: ManualClock | SystemClock,
        book: BatchBook,
        ledger: LedgerPoster | None = None,
        outbox: Outbox | None = None,
        key: ChainKey | None = None,
    ) -> None:
        self.engine = engine
        self.terms = dict(terms)
        self.clock = clock
        self.book = book
        self.ledger = ledger
        self.outbox = outbox
        self.key = key
        self.notified: Callable[[], None] | None = None
        """Called after a commit that added notifications (the runtime pumps the webhook)."""
        self.refund_source: RefundSource | None = None
        """Where the refunds report reads the engine's refunds (set by the service's hook)."""
        self.settles: Callable[[str], bool] | None = None
        """Whether this desk runs a merchant's jobs when several hosts share the database
        (:meth:`host.config.HostConfig.settles`); None: every merchant's."""
        self.chain = MAIN
        """The host's ledger chain, which each settlement row carries (its event stream's)."""
        with schema_transaction(engine) as conn:
            create_desk_schema(conn, key, self.history_tables, self.history_rules)

    # -- setup and business dates --------------------------------------------------------------

    def install(self) -> None:
        """Create missing merchant days and schedule every pending event from the tables."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            known = {r.merchant_id: r.business_date
                     for r in conn.execute(select(merchant_day)).all()}
            for mid, terms in self.terms.items():
                if mid not in known:
                    known[mid] = terms.schedule.business_date(now)
                    conn.execute(merchant_day.insert().values(merchant_id=mid,
                                                              business_date=known[mid]))
            unfunded = conn.execute(select(settlement.c.id, settlement.c.merchant_id,
                                           settlement.c.funding_date)
                                    .where(settlement.c.status == "closed")).all()
            unposted = conn.execute(select(refund_posting.c.rrn, refund_posting.c.merchant_id,
                                           refund_posting.c.posting_date)
                                    .where(refund_posting.c.state == "settled")).all()
        for mid, day in known.items():
            if mid in self.terms:
                self._schedule_cutoff(mid, day)
        owned = self.settles or (lambda mid: True)
        for sid, mid, day in unfunded:
            if owned(mid):  # another host's merchant is funded by that host
                self._schedule_funding(sid, mid, day)
        for rrn, mid, day in unposted:
            if owned(mid):
                self._schedule_posting(rrn, mid, day)

    def enrol(self, terms: MerchantTerms) -> bool:
        """Start settling a merchant the config does not list (a terminal enrolled in
        development mode): its business day is created and its cut-off scheduled, so its
        batches close, settle and fund like a listed merchant's. False when already known."""
        mid = terms.merchant_id
        if mid in self.terms:
            return False
        try:
            with self.engine.begin() as conn:
                day = self._merchant_day(conn, mid)
                if day is None:
                    day = terms.schedule.business_date(self.clock.now())
                    conn.execute(merchant_day.insert().values(merchant_id=mid,
                                                              business_date=day))
        except IntegrityError:  # another host on the database created it first
            with self.engine.connect() as conn:
                day = self._merchant_day(conn, mid)
        # Known only once its day exists: a failed attempt is retried in full.
        self.terms[mid] = terms
        self._schedule_cutoff(mid, day)
        return True

    @staticmethod
    def _merchant_day(conn: Connection, merchant_id: str) -> Any:
        return conn.execute(select(merchant_day.c.business_date)
                            .where(merchant_day.c.merchant_id == merchant_id)).scalar()

    def business_date(self, merchant_id: str, at: datetime) -> date:
        """The business date a transaction of ``merchant_id`` stamped ``at`` belongs to.

        Never earlier than the merchant's current business date, so a wall clock that jumps
        back cannot put a transaction into a closed day.
        """
        terms = self.terms[merchant_id]
        with self.engine.connect() as conn:
            floor = conn.execute(select(merchant_day.c.business_date)
                                 .where(merchant_day.c.merchant_id == merchant_id)).scalar()
        by_clock = terms.schedule.business_date(at)
        return max(by_clock, floor) if floor is not None else by_clock

    def _bank_instant(self, merchant_id: str, day: date) -> datetime:
        terms = self.terms[merchant_id]
        return resolve_local(day, BANK_TIME, terms.schedule.tz)

    def _schedule_cutoff(self, merchant_id: str, day: date) -> None:
        at = self.terms[merchant_id].schedule.cutoff_instant(day)
        self.clock.schedule(at, lambda when: self.run_cutoff(merchant_id),
                            key=f"cutoff:{merchant_id}")

    def _schedule_funding(self, sid: int, merchant_id: str, day: date) -> None:
        self.clock.schedule(self._bank_instant(merchant_id, day),
                            lambda when: self.run_funding(sid), key=f"fund:{sid}")

    def _schedule_posting(self, rrn: str, merchant_id: str, day: date) -> None:
        self.clock.schedule(self._bank_instant(merchant_id, day),
                            lambda when: self.run_posting(rrn), key=f"post:{rrn}")

    # -- jobs ----------------------------------------------------------------------------------

    def run_cutoff(self, merchant_id: str) -> list[int]:
        """Close the merchant's ending business date if its cut-off has passed; returns the new
        settlement ids. Runs every missed cut-off in order (catch-up after downtime)."""
        terms = self.terms[merchant_id]
        created: list[tuple[int, date]] = []
        postings: list[tuple[str, date]] = []
        while True:
            with self.engine.begin() as conn:
                day = conn.execute(select(merchant_day.c.business_date)
                                   .where(merchant_day.c.merchant_id == merchant_id)).scalar_one()
                cut = terms.schedule.cutoff_instant(day)
                if self.clock.now() < cut:
                    break
                for batch in self.book.close_batches(conn, merchant_id, day, cut):
                    ids, refunds = self._record(conn, terms, batch, day, cut)
                    created += ids
                    postings += refunds
                conn.execute(update(merchant_day).where(merchant_day.c.merchant_id == merchant_id)
                             .values(business_date=day + timedelta(days=1)))
        for sid, fday in created:
            self._schedule_funding(sid, merchant_id, fday)
        for rrn, pday in postings:
            self._schedule_posting(rrn, merchant_id, pday)
        self._schedule_cutoff(merchant_id, day)
        return [sid for sid, _ in created]

    def _record(
        self, conn: Connection, terms: MerchantTerms, batch: ClosedBatch, day: date,
        closed_at: datetime,
    ) -> tuple[list[tuple[int, date]], list[tuple[str, date]]]:
        fund_day = funding_date(day, terms.calendar, terms.funding_days)
        created: list[tuple[int, date]] = []
        postings: list[tuple[str, date]] = []
        for currency in sorted({m.currency for m in batch.members}):
            members = [m for m in batch.members if m.currency == currency]
            fig = figures(member_line(m, terms.fees) for m in members)
            values = {"merchant_id": terms.merchant_id, "batch": batch.batch,
                      "currency": currency, "business_date": day,
                      "content_hash": batch.content_hash, "figures": fig.as_dict(),
                      "funding_date": fund_day}
            key = conn.execute(settlement.insert().values(
                **values, closed_at=closed_at, status="closed", chain=self.chain,
                mac=self._seal(settlement_mac, values))).inserted_primary_key
            assert key is not None
            sid = key[0]
            created.append((int(sid), fund_day))
            for m in members:
                if m.kind != TxnKind.REFUND:
                    continue
                pday = refund_posting_date(day, terms.calendar, terms.seed, m.rrn,
                                           terms.posting_days)
                posting = {"rrn": m.rrn, "merchant_id": terms.merchant_id,
                           "settlement_id": int(sid), "pan_masked": m.pan_masked,
                           "amount_minor": m.amount_minor, "currency": currency,
                           "settlement_date": day, "posting_date": pday}
                conn.execute(refund_posting.insert().values(
                    **posting, state="settled", mac=self._seal(posting_mac, posting)))
                postings.append((m.rrn, pday))
        return created, postings

    def _seal(self, mac: Callable[[ChainKey, Mapping[str, Any]], str],
              values: Mapping[str, Any]) -> str | None:
        return None if self.key is None else mac(self.key, values)

    def run_funding(self, sid: int) -> bool:
        """Fund settlement ``sid`` (once): ledger group, status ``funded``, notification."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = conn.execute(select(settlement).where(settlement.c.id == sid)).one_or_none()
            if row is None or row.status != "closed":
                return False
            fig = Figures(**{k: v for k, v in row.figures.items() if k != "net_minor"})
            entries = funding_entries(fig, row.merchant_id)
            group = None
            if entries and self.ledger is not None:
                group = self.ledger.post(conn, entries, currency=row.currency, at=now,
                                         reference=f"settlement:{sid}")
            conn.execute(update(settlement).where(settlement.c.id == sid).values(
                status="funded", funded_at=now, ledger_group=group))
            if self.outbox is not None:
                self.outbox.add(conn, "merchant_funded", now, merchant_id=row.merchant_id,
                                reference=f"settlement:{sid}", amount_minor=fig.net_minor,
                                currency=row.currency, batch=row.batch,
                                business_date=row.business_date.isoformat(),
                                funding_date=row.funding_date.isoformat(),
                                fees_minor=fig.fees_minor)
        self._after_commit()
        return True

    def run_posting(self, rrn: str) -> bool:
        """Post settled refund ``rrn`` to the cardholder (once): state ``posted``, notification."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = conn.execute(select(refund_posting)
                               .where(refund_posting.c.rrn == rrn)).one_or_none()
            if row is None or row.state != "settled":
                return False
            conn.execute(update(refund_posting).where(refund_posting.c.rrn == rrn)
                         .values(state="posted", posted_at=now))
            if self.outbox is not None:
                self.outbox.add(conn, "refund_posted", now, merchant_id=row.merchant_id,
                                rrn=rrn, reference=f"settlement:{row.settlement_id}",
                                pan=row.pan_masked, amount_minor=row.amount_minor,
                                currency=row.currency,
                                posting_date=row.posting_date.isoformat())
        self._after_commit()
        return True

    def _after_commit(self) -> None:
        if self.outbox is not None:
            self.outbox.flush_file()
        if self.notified is not None:
            self.notified()

    # -- hooks the engine calls inside its own transaction --------------------------------------

    def notify(self, conn: Connection, event: str, *, at: datetime | None = None,
               **fields: Any) -> None:
        """Emit ``refund_approved`` / ``refund_rejected`` in the engine's transaction ``conn``;
        the engine calls :meth:`committed` after its commit."""
        if self.outbox is not None:
            self.outbox.add(conn, event, at or self.clock.now(), **fields)

    def committed(self) -> None:
        """The engine committed a transaction that may have emitted notifications."""
        self._after_commit()

    # -- queries -------------------------------------------------------------------------------

    def refund_state(self, rrn: str) -> dict[str, Any] | None:
        """``{"state": "settled"|"posted", "settlement_date", "posting_date", ...}`` or None
        while the refund's batch is still open."""
        with self.engine.connect() as conn:
            return refund_state(conn, rrn)

    def settlements(self, on: date | None = None, merchant_id: str | None = None
                    ) -> list[dict[str, Any]]:
        """Settlement records (optionally of one business date / merchant), report-shaped."""
        query = select(settlement).order_by(settlement.c.business_date, settlement.c.id)
        if on is not None:
            query = query.where(settlement.c.business_date == on)
        if merchant_id is not None:
            query = query.where(settlement.c.merchant_id == merchant_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [settlement_dict(row) for row in rows]

    def merchant_days(self) -> dict[str, str]:
        """Each merchant's current (open) business date."""
        with self.engine.connect() as conn:
            return {r.merchant_id: r.business_date.isoformat()
                    for r in conn.execute(select(merchant_day)).all()}

    def refunds_report(self, source: RefundSource, start: date | None, end: date | None
                       ) -> dict[str, Any]:
        """The refunds report over ``[start, end]``: the engine's refund records with the
        settled/posted states from this desk, and the engine's sales totals for the rates."""
        records = source.refund_records(start, end)
        sales = source.sales_totals(start, end)
        with self.engine.connect() as conn:  # after the source's reads: one connection at a time
            rows = refund_rows(records, lambda rrn: refund_state(conn, rrn))
        return refunds_report(rows, sales, end or self.clock.now().date())

    def verify(self, conn: Connection) -> list[dict[str, str]]:
        """I12 checks owned here: closed batch hashes unchanged; funded settlements have a
        ledger group when they moved money; figures add up."""
        problems: list[dict[str, str]] = []
        for row in conn.execute(select(settlement)).all():
            now_hash = self.book.content_hash(conn, row.batch)
            if now_hash is not None and now_hash != row.content_hash:
                problems.append({"invariant": "I12", "detail":
                                 f"batch {row.batch} changed after close (hash {now_hash[:12]} "
                                 f"!= recorded {row.content_hash[:12]})"})
            fig = Figures(**{k: v for k, v in row.figures.items() if k != "net_minor"})
            if fig.net_minor != row.figures.get("net_minor"):
                problems.append({"invariant": "I12", "detail":
                                 f"settlement {row.id}: net does not add up"})
            moved = funding_entries(fig, row.merchant_id)
            if row.status == "funded" and self.ledger and moved and not row.ledger_group:
                problems.append({"invariant": "I12", "detail":
                                 f"settlement {row.id} funded without a ledger group"})
        return problems


def refund_state(conn: Connection, rrn: str) -> dict[str, Any] | None:
    """A refund's settlement-side state (see :meth:`SettlementDesk.refund_state`)."""
    row = conn.execute(select(refund_posting).where(refund_posting.c.rrn == rrn)).one_or_none()
    if row is None:
        return None
    return {"state": row.state, "settlement_date": row.settlement_date.isoformat(),
            "posting_date": row.posting_date.isoformat(), "settlement_id": row.settlement_id,
            "posted_at": _iso(row.posted_at)}


def refund_rows(records: Sequence[Mapping[str, Any]],
                later: Callable[[str], dict[str, Any] | None]) -> list[RefundRow]:
    """Refund report rows: the engine's records, ``approved`` upgraded to the settled/posted
    state ``later(rrn)`` knows of."""
    rows = []
    for r in records:
        state, posted = str(r["state"]), None
        known = later(str(r["rrn"])) if state == TxnState.APPROVED else None
        if known is not None:
            state = known["state"]
            if known["posted_at"]:
                posted = datetime.fromisoformat(known["posted_at"]).date()
        rows.append(RefundRow(str(r["merchant_id"]), str(r["rrn"]), int(r["amount_minor"]),
                              str(r["currency"]), str(r.get("reason") or ""), state,
                              _as_date(r["created"]), posted))
    return rows


def settlement_dict(row: Any) -> dict[str, Any]:
    """A settlement row as the reports and the admin API show it."""
    return {
        "id": row.id, "merchant_id": row.merchant_id, "batch": row.batch,
        "currency": row.currency, "business_date": row.business_date.isoformat(),
        "closed_at": _iso(row.closed_at), "content_hash": row.content_hash, **row.figures,
        "funding_date": row.funding_date.isoformat(), "status": row.status,
        "funded_at": _iso(row.funded_at), "ledger_group": row.ledger_group,
    }  # fmt: skip


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return datetime.fromisoformat(str(value)).date()


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()

