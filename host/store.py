"""The host's transaction store: transactions, terminals, batches, reviews, tombstones, events.

SQLAlchemy Core on the same database (and in the same transactions) as :mod:`host.ledger`.
Card data is only ever a masked PAN plus a keyed hash. Tables:

``txn``
    One row per financial request the host decided (approved or declined): ``kind`` (``sale``,
    ``refund``, ``void``, ``auth``, ``completion``), the request key it arrived under, merchant,
    terminal, STAN, ``business_date``, ``at_ms``, amount and currency, ``pan_masked`` and
    ``pan_hash``, ``original_id`` (the sale of a refund, the target of a void, the hold of a
    completion), ``state`` (``approved`` = effective, ``declined``, ``reversed``, ``voided``,
    ``rejected``; holds ``authorized`` / ``completed``), DE39/DE44, the host-assigned ``rrn``
    (12 characters from the row id, so never reused after a restart) and ``approval_code``,
    ``batch_id``, ``group_id`` (its main ledger group), ``review_state``, the refund ``reason``,
    ``evidence``, ``operator`` and the checks that fired.
``terminal``
    Known terminals (configured ones are added on first use, unknown ones enrolled in
    development mode): merchant, open batch id, sign-on state. Writers lock a terminal's row to
    serialise batch assignment.
``batch``
    A terminal's batch: ``open`` until an 0500 balances (or settlement's cut-off closes it),
    then ``closed`` with its number, totals and content hash (immutable from then on).
``reversal_mark``
    Every reversal the host accepted, by (MID, TID, STAN, business date): ``target_id`` the
    transaction it reversed, or NULL for a **tombstone** (the original never arrived; if it
    arrives later it is declined 12 REVERSED_BEFORE_ARRIVAL).
``review`` / ``review_approval``
    Refunds held for review, their required level (1 or 2 distinct approvers) and who approved.
``event``
    The audit trail shown by the admin API (received, decided, reversed, reviewed ...), each
    row with the ledger ``chain`` of the host that wrote it (its event stream's own rows).
``host_meta``
    Key/value: the generated card hash key when the config has none.

History is protected twice (docs/tamper-evidence.md). Triggers (:func:`create_store_schema`)
refuse DELETE on every history table, UPDATE on ``event``, ``reversal_mark`` and
``review_approval``, UPDATE of a transaction's fixed columns (everything but ``state``,
``review_state`` and the ids :data:`TXN_ONCE`, which may only go from NULL to a value once),
of a review's subject and level, and of a closed batch. And every ``txn`` and ``event`` row
carries ``mac``, the chain key's MAC over its fixed content (:data:`TXN_FIXED`), so an edit
made after dropping the triggers still shows; the mutable ``state`` is cross-checked against
the ledger and the event log (:func:`host.store_verify.store_checks`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    type_coerce,
    update,
)

from host.canonical_json import stored_text
from host.domain import TxnKind, TxnState
from host.ledger.book import recall
from host.ledger.chain import ChainKey
from host.ledger.chains import MAIN
from host.ledger.prepared import Prepared
from host.ledger.schema import (
    add_chain_column,
    chain_column,
    create_append_only_triggers,
    put_sqlite_trigger,
    request_log,
    update_indexes,
)
from host.ledger.verify import ExtraCheck, Violation
from host.rules import OriginalView

metadata = MetaData()
_ID = BigInteger().with_variant(Integer, "sqlite")
# The predicates of the partial indexes. A query uses such an index when its WHERE implies
# the predicate: ``original_id = ?`` implies ``original_id IS NOT NULL``. No predicate names a
# constant: SQLite would then re-prepare every statement comparing that column with a bound
# value (``kind = ?``) each time it runs, to see whether the index applies.
_ORIGINAL_SET = text("original_id IS NOT NULL")
_TOMBSTONE_ROW = text("target_id IS NULL")

txn = Table(
    "txn", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("rrn", String(12), unique=True),
    Column("approval_code", String(6)),
    Column("kind", String(16), nullable=False),
    Column("mti", String(4), nullable=False),
    Column("processing_code", String(6), nullable=False),
    Column("request_key", String(128), nullable=False, unique=True),
    Column("merchant_id", String(15), nullable=False),
    Column("terminal_id", String(8), nullable=False),
    Column("stan", String(6), nullable=False),
    Column("business_date", String(10), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("pan_masked", String(19)),
    Column("pan_hash", String(64)),
    Column("original_id", _ID),
    Column("state", String(16), nullable=False),
    Column("response_code", String(2), nullable=False),
    Column("rule", String(25)),
    Column("batch_id", _ID),
    Column("group_id", BigInteger),
    Column("review_state", String(16)),
    Column("reason", String(32)),
    Column("evidence", String(200)),
    Column("operator", String(40)),
    Column("rules_fired", Text, nullable=False, default="[]"),
    Column("mac", String(64), nullable=False),
    # Partial: a sale (most rows) has no original, and its NULL would only make the index
    # bigger and every insert dearer.
    Index("ix_txn_original_set", "original_id", sqlite_where=_ORIGINAL_SET,
          postgresql_where=_ORIGINAL_SET),
    Index("ix_txn_key", "merchant_id", "terminal_id", "stan", "business_date"),
    Index("ix_txn_merchant_day", "merchant_id", "business_date", "kind"),
    Index("ix_txn_batch", "batch_id"),
    sqlite_autoincrement=True,
)  # fmt: skip

terminal = Table(
    "terminal", metadata,
    Column("terminal_id", String(8), primary_key=True),
    Column("merchant_id", String(15), nullable=False),
    Column("enrolled", Integer, nullable=False, default=0),
    Column("open_batch_id", _ID),
    Column("signed_on", Integer, nullable=False, default=0),
    Column("since_ms", BigInteger, nullable=False),
)  # fmt: skip

batch = Table(
    "batch", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("terminal_id", String(8), nullable=False),
    Column("merchant_id", String(15), nullable=False),
    Column("state", String(8), nullable=False),
    Column("business_date", String(10), nullable=False),
    Column("opened_ms", BigInteger, nullable=False),
    Column("closed_ms", BigInteger),
    Column("number", String(16)),
    Column("closed_by", String(16)),
    Column("totals", Text),
    Column("content_hash", String(64)),
    sqlite_autoincrement=True,
)  # fmt: skip

reversal_mark = Table(
    "reversal_mark", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("merchant_id", String(15), nullable=False),
    Column("terminal_id", String(8), nullable=False),
    Column("stan", String(6), nullable=False),
    Column("business_date", String(10), nullable=False),
    Column("target_id", _ID),
    Column("at_ms", BigInteger, nullable=False),
    # Only tombstones are looked up (on every request's arrival).
    Index("ix_reversal_tombstone", "merchant_id", "terminal_id", "stan", "business_date",
          sqlite_where=_TOMBSTONE_ROW, postgresql_where=_TOMBSTONE_ROW),
    sqlite_autoincrement=True,
)  # fmt: skip

review = Table(
    "review", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("txn_id", _ID, nullable=False, unique=True),
    Column("level", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("decided_ms", BigInteger),
    Column("reason", Text),
    sqlite_autoincrement=True,
)  # fmt: skip

review_approval = Table(
    "review_approval", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("review_id", _ID, nullable=False),
    Column("approver", String(64), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("at_ms", BigInteger, nullable=False),
    UniqueConstraint("review_id", "approver"),
)  # fmt: skip

event = Table(
    "event", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("txn_id", _ID),
    Column("at_ms", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False, default="{}"),
    Column("mac", String(64), nullable=False),
    chain_column(),
    Index("ix_event_txn", "txn_id"),
    sqlite_autoincrement=True,
)  # fmt: skip

host_meta = Table(
    "host_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)  # fmt: skip

# -- statements of the request path, built once ----------------------------------------------
# Building a Core statement per call (``insert(t).values(...)``, ``select(...).where(...)``)
# and running it through ``Connection.execute`` costs far more CPU than SQLite's own work
# (docs/performance.md). These are built at import with bind parameters, take their values at
# run time and run as prepared statements (:mod:`host.ledger.prepared`).

_TERMINAL = Prepared(select(terminal).where(terminal.c.terminal_id == bindparam("tid")))
_TERMINAL_LOCKED = Prepared(_TERMINAL.stmt.with_for_update())
_TERMINAL_INSERT = Prepared(insert(terminal))
_TERMINAL_UPDATE = Prepared(update(terminal).where(terminal.c.terminal_id == bindparam("tid")))
_BATCH = Prepared(select(batch).where(batch.c.id == bindparam("bid")))
_BATCH_STATE = Prepared(select(batch.c.state).where(batch.c.id == bindparam("bid")))
_BATCH_INSERT = Prepared(insert(batch))
_TXN_INSERT = Prepared(insert(txn))
_TXN_UPDATE = Prepared(update(txn).where(txn.c.id == bindparam("txn_id_")))
_TXN_BY_ID = Prepared(select(txn).where(txn.c.id == bindparam("txn_id_")))
_TXN_BY_ID_LOCKED = Prepared(_TXN_BY_ID.stmt.with_for_update())
_TXN_BY_RRN = Prepared(select(txn).where(txn.c.rrn == bindparam("rrn_")))
_TXN_BY_RRN_LOCKED = Prepared(_TXN_BY_RRN.stmt.with_for_update())
_TXN_BY_KEY_LOCKED = Prepared(select(txn).where(txn.c.request_key == bindparam("key_"))
                              .with_for_update())
_HOLD_WHERE = (txn.c.kind == TxnKind.AUTH, txn.c.terminal_id == bindparam("tid"),
               txn.c.merchant_id == bindparam("mid"), txn.c.approval_code == bindparam("code"))
_HOLD = Prepared(select(txn).where(*_HOLD_WHERE).order_by(txn.c.id.desc()).with_for_update())
_HOLD_BY_RRN = Prepared(select(txn).where(*_HOLD_WHERE, txn.c.rrn == bindparam("rrn_"))
                        .order_by(txn.c.id.desc()).with_for_update())
_REFUND_STATS = Prepared(
    select(func.coalesce(func.sum(txn.c.amount_minor), 0), func.count())
    .where(txn.c.original_id == bindparam("sale_id"), txn.c.kind == TxnKind.REFUND,
           txn.c.state == TxnState.APPROVED))
# A refund's or void's original with what the rules need of it, in one read (:meth:`view`).
_refund = txn.alias("refund")
_REFUNDS_OF = (_refund.c.original_id == txn.c.id, _refund.c.kind == TxnKind.REFUND,
               _refund.c.state == TxnState.APPROVED)
_ORIGINAL = Prepared(select(
    txn,
    select(func.coalesce(func.sum(_refund.c.amount_minor), 0)).where(*_REFUNDS_OF)
    .scalar_subquery().label("refunded_minor"),
    select(func.count()).where(*_REFUNDS_OF).scalar_subquery().label("refund_count"),
    select(batch.c.state).where(batch.c.id == txn.c.batch_id).scalar_subquery()
    .label("batch_state"),
).where(txn.c.rrn == bindparam("rrn_")).with_for_update(of=txn))
_MERCHANT_REFUNDED = Prepared(select(func.coalesce(func.sum(txn.c.amount_minor), 0)).where(
    txn.c.merchant_id == bindparam("mid"), txn.c.business_date == bindparam("bdate"),
    txn.c.kind == TxnKind.REFUND, txn.c.state == TxnState.APPROVED))
_REVERSAL_TARGET = Prepared(select(txn).where(
    txn.c.merchant_id == bindparam("mid"), txn.c.terminal_id == bindparam("tid"),
    txn.c.stan == bindparam("stan_"), txn.c.business_date == bindparam("bdate"),
    txn.c.state != TxnState.DECLINED).order_by(txn.c.id.desc()).with_for_update())
_MARK_INSERT = Prepared(insert(reversal_mark))
_TOMBSTONE_WHERE = (
    reversal_mark.c.merchant_id == bindparam("mid"),
    reversal_mark.c.terminal_id == bindparam("tid"),
    reversal_mark.c.stan == bindparam("stan_"),
    or_(reversal_mark.c.business_date == bindparam("bdate"),
        reversal_mark.c.business_date == bindparam("bdate2")),
    reversal_mark.c.target_id.is_(None))
_TOMBSTONE = Prepared(select(reversal_mark.c.id).where(*_TOMBSTONE_WHERE).limit(1))
# A request's first reads in one statement: its terminal (locked), the answer stored under its
# request key and whether a reversal left a tombstone for it. No row: the terminal is new.
_ARRIVAL = Prepared(
    select(terminal, request_log.c.fingerprint, request_log.c.result,
           # Read as an integer: a Boolean result type would need SQLAlchemy's processing.
           type_coerce(exists().where(*_TOMBSTONE_WHERE), Integer).label("tombstoned"))
    .select_from(terminal.outerjoin(request_log, request_log.c.key == bindparam("key_")))
    .where(terminal.c.terminal_id == bindparam("tid")).with_for_update(of=terminal))
# SQLite: the highest transaction id ever used (AUTOINCREMENT's counter, so never reused).
_sqlite_sequence = Table("sqlite_sequence", MetaData(), Column("name", Text),
                         Column("seq", BigInteger))
_TXN_LAST_ID = Prepared(select(_sqlite_sequence.c.seq)
                        .where(_sqlite_sequence.c.name == literal("txn")))
# PostgreSQL: the next value of the id column's own sequence (every engine draws from it).
_next_txn_id = func.nextval(func.pg_get_serial_sequence(literal("txn"), literal("id")))
_TXN_NEXT_ID = Prepared(select(_next_txn_id))
# PostgreSQL, a request that books a row: the first reads and its id in one round trip.
_ARRIVAL_RESERVING = Prepared(_ARRIVAL.stmt.add_columns(_next_txn_id.label("next_txn_id")))
_REVIEW_INSERT = Prepared(insert(review))
_REVIEW = Prepared(select(review).where(review.c.id == bindparam("rid")))
_REVIEW_LOCKED = Prepared(_REVIEW.stmt.with_for_update())
_REVIEW_OF = Prepared(select(review).where(review.c.txn_id == bindparam("txn_id_")))
_REVIEW_UPDATE = Prepared(update(review).where(review.c.id == bindparam("rid")))
_APPROVALS = Prepared(select(review_approval)
                      .where(review_approval.c.review_id == bindparam("rid"))
                      .order_by(review_approval.c.id))
_APPROVAL_INSERT = Prepared(insert(review_approval))
_EVENT_INSERT = Prepared(insert(event))
_EVENTS = Prepared(select(event).where(event.c.txn_id == bindparam("txn_id_"))
                   .order_by(event.c.id))

_LAST_TXN_ID = "poslab_last_txn_id"  # Connection.info: [transaction, last id it reserved]
_RESERVED_TXN_ID = "poslab_reserved_txn_id"  # Connection.info: a drawn, unused sequence value

#: Every column of ``txn`` an insert may leave out (stable key set: one compiled statement).
_TXN_OPTIONAL = {"pan_masked": None, "pan_hash": None, "original_id": None, "rule": None,
                 "batch_id": None, "group_id": None, "review_state": None, "reason": None,
                 "evidence": None, "operator": None, "rules_fired": "[]"}

#: Transaction kinds that capture money and belong to a terminal batch.
BATCHED_KINDS = (TxnKind.SALE, TxnKind.REFUND, TxnKind.VOID, TxnKind.COMPLETION)
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def txn_reference(txn_id: int) -> str:
    """The ledger reference of a transaction's posting groups (``txn:<id>``)."""
    return f"txn:{txn_id}"


def approval_code_for(txn_id: int) -> str:
    """Six base-36 characters derived from the row id (unique for 2 billion transactions)."""
    out = ""
    n = txn_id
    while n:
        n, d = divmod(n, 36)
        out = _B36[d] + out
    return out.rjust(6, "0")[-6:]


def rrn_for(prefix: str, txn_id: int) -> str:
    """The 12-character RRN of a row id: the configured prefix, then the id zero-padded."""
    return f"{prefix}{txn_id:0{12 - len(prefix)}d}"


#: The columns of ``txn`` fixed at insert: covered by the row's MAC, refused by the trigger.
TXN_FIXED = ("kind", "mti", "processing_code", "request_key", "merchant_id", "terminal_id",
             "stan", "business_date", "at_ms", "amount_minor", "currency", "pan_masked",
             "pan_hash", "original_id", "response_code", "rule", "batch_id", "reason",
             "evidence", "operator", "rules_fired")
#: Written with the row (:meth:`Store.insert_txn`); rows of older versions got them in one
#: UPDATE after the insert. Never changed once set.
TXN_ONCE = ("rrn", "approval_code", "group_id")


_FIXED_VALUES = itemgetter(*TXN_FIXED)


def txn_mac(key: ChainKey, values: Mapping[str, Any]) -> str:
    """The MAC of a transaction row's fixed columns."""
    return key.mac(("txn", _FIXED_VALUES(values)))


def event_mac(key: ChainKey, txn_id: int | None, at_ms: int, kind: str, detail: str) -> str:
    """The MAC of one audit event."""
    return key.mac_text(f"event|{txn_id}|{at_ms}|{len(kind)}:{kind}|{detail}")


class Store:
    """Queries and updates on the store's tables, always on the caller's connection.

    ``key`` is the chain key the rows' MACs are made with; ``chain`` the host's ledger chain
    (:mod:`host.ledger.chains`), which each audit event carries."""

    def __init__(self, key: ChainKey, rrn_prefix: str = "", chain: str = MAIN) -> None:
        self.key = key
        self.rrn_prefix = rrn_prefix
        self.chain = chain

    # -- meta and card key -----------------------------------------------------------------

    def card_key(self, conn: Connection, configured: str | None) -> bytes:
        """The PAN hash key: from the config, else the one stored in the database (made once)."""
        if configured:
            return bytes.fromhex(configured)
        row = conn.execute(select(host_meta.c.value).where(host_meta.c.key == "card_hash_key")
                           ).scalar()
        if row is None:
            row = secrets.token_hex(32)
            conn.execute(host_meta.insert().values(key="card_hash_key", value=row))
        return bytes.fromhex(row)

    # -- terminals and batches ----------------------------------------------------------------

    def terminal(self, conn: Connection, tid: str, *, lock: bool = False) -> Row[Any] | None:
        """The terminal's row, optionally locked for update."""
        return (_TERMINAL_LOCKED if lock else _TERMINAL).run(conn, {"tid": tid}).first()

    def ensure_terminal(self, conn: Connection, tid: str, mid: str, at_ms: int, *,
                        enrolled: bool, locked: Row[Any] | None = None) -> Row[Any]:
        """The terminal's locked row, created on first use; ``locked`` is that row when the
        caller already read it locked in this transaction (it is not read again)."""
        row = locked if locked is not None else self.terminal(conn, tid, lock=True)
        if row is None:
            _TERMINAL_INSERT.run(conn, {"terminal_id": tid, "merchant_id": mid,
                                            "enrolled": int(enrolled), "since_ms": at_ms,
                                            "signed_on": 0})
            row = self.terminal(conn, tid, lock=True)
        assert row is not None
        return row

    def set_signed_on(self, conn: Connection, tid: str, signed_on: bool) -> None:
        """Record sign-on or sign-off."""
        _TERMINAL_UPDATE.run(conn, {"tid": tid, "signed_on": int(signed_on)})

    def open_batch(self, conn: Connection, tid: str, mid: str, at_ms: int,
                   business_date: str, *, locked: Row[Any] | None = None) -> int:
        """The terminal's open batch id, opening one when there is none (terminal row locked;
        ``locked``: the row as the caller read it locked in this transaction)."""
        row = self.ensure_terminal(conn, tid, mid, at_ms, enrolled=False, locked=locked)
        if row.open_batch_id is not None:
            return int(row.open_batch_id)
        key = _BATCH_INSERT.run(conn, {
            "terminal_id": tid, "merchant_id": mid, "state": "open",
            "business_date": business_date, "opened_ms": at_ms}).inserted_primary_key
        assert key is not None
        bid = int(key[0])
        _TERMINAL_UPDATE.run(conn, {"tid": tid, "open_batch_id": bid})
        return bid

    def current_batch(self, conn: Connection, tid: str) -> Row[Any] | None:
        """The terminal's open batch row, or None."""
        row = self.terminal(conn, tid, lock=True)
        if row is None or row.open_batch_id is None:
            return None
        return _BATCH.run(conn, {"bid": row.open_batch_id}).first()

    def batch_row(self, conn: Connection, batch_id: int | None) -> Row[Any] | None:
        """A batch by id."""
        if batch_id is None:
            return None
        return _BATCH.run(conn, {"bid": batch_id}).first()

    def batch_open(self, conn: Connection, batch_id: int | None) -> bool:
        """True when the batch exists and is open."""
        if batch_id is None:
            return False
        return _BATCH_STATE.run(conn, {"bid": batch_id}).scalar() == "open"

    def batch_totals(self, conn: Connection, batch_id: int, currency: str) -> dict[str, int]:
        """Effective debits (sales, completions) and credits (refunds) of a batch in a currency."""
        rows = conn.execute(
            select(txn.c.kind, func.count(), func.coalesce(func.sum(txn.c.amount_minor), 0))
            .where(txn.c.batch_id == batch_id, txn.c.state == TxnState.APPROVED,
                   txn.c.currency == currency,
                   txn.c.kind.in_((TxnKind.SALE, TxnKind.COMPLETION, TxnKind.REFUND)))
            .group_by(txn.c.kind)).all()
        out = {"debits_count": 0, "debits_minor": 0, "credits_count": 0, "credits_minor": 0}
        for kind, count, total in rows:
            side = "credits" if kind == TxnKind.REFUND else "debits"
            out[f"{side}_count"] += int(count)
            out[f"{side}_minor"] += int(total)
        return out

    @staticmethod
    def batch_content_hash(conn: Connection, batch_id: int) -> str:
        """SHA-256 over the batch's membership (id, kind, amount, currency of each transaction).

        States are left out on purpose: a review decision may still change a member's state
        after close, but nothing may join, leave or change amount."""
        rows = conn.execute(select(txn.c.id, txn.c.kind, txn.c.amount_minor, txn.c.currency)
                            .where(txn.c.batch_id == batch_id).order_by(txn.c.id)).all()
        doc = [[int(r.id), r.kind, int(r.amount_minor), r.currency] for r in rows]
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()

    def close_batch(self, conn: Connection, batch_id: int, *, number: str | None, at_ms: int,
                    closed_by: str, totals: Mapping[str, object]) -> None:
        """Close a batch: record number, totals and content hash; the terminal gets none open."""
        row = self.batch_row(conn, batch_id)
        assert row is not None
        conn.execute(batch.update().where(batch.c.id == batch_id).values(
            state="closed", closed_ms=at_ms, number=number, closed_by=closed_by,
            totals=json.dumps(totals, sort_keys=True),
            content_hash=self.batch_content_hash(conn, batch_id)))
        conn.execute(terminal.update().where(terminal.c.terminal_id == row.terminal_id,
                                             terminal.c.open_batch_id == batch_id)
                     .values(open_batch_id=None))

    def last_batch_number(self, conn: Connection, tid: str, *,
                          before: int | None = None) -> str | None:
        """The number of the terminal's most recently closed batch that has one (of the batches
        opened before batch id ``before``, when given), or None."""
        q = select(batch.c.number).where(batch.c.terminal_id == tid, batch.c.state == "closed",
                                         batch.c.number.is_not(None))
        if before is not None:
            q = q.where(batch.c.id < before)
        number: str | None = conn.execute(q.order_by(batch.c.id.desc()).limit(1)).scalar()
        return number

    def batches_since_number(self, conn: Connection, tid: str) -> list[Row[Any]]:
        """The terminal's batches opened after its last closed numbered batch, oldest first:
        those a settlement cut-off closed (no number) and the open one."""
        last = (select(func.max(batch.c.id))
                .where(batch.c.terminal_id == tid, batch.c.state == "closed",
                       batch.c.number.is_not(None)).scalar_subquery())
        rows: Any = conn.execute(select(batch).where(
            batch.c.terminal_id == tid, batch.c.id > func.coalesce(last, 0))
            .order_by(batch.c.id)).all()
        return list(rows)

    def batch_members(self, conn: Connection, batch_id: int) -> list[Row[Any]]:
        """The transactions of a batch (id, kind, state, stan, amount, currency, masked PAN),
        oldest first."""
        rows: Any = conn.execute(
            select(txn.c.id, txn.c.kind, txn.c.state, txn.c.stan, txn.c.amount_minor,
                   txn.c.currency, txn.c.pan_masked)
            .where(txn.c.batch_id == batch_id).order_by(txn.c.id)).all()
        return list(rows)

    def closed_batch(self, conn: Connection, tid: str, number: str) -> Row[Any] | None:
        """The most recent closed batch of a terminal with this number."""
        return conn.execute(select(batch).where(batch.c.terminal_id == tid,
                                                batch.c.number == number,
                                                batch.c.state == "closed")
                            .order_by(batch.c.id.desc())).first()

    # -- transactions -------------------------------------------------------------------------

    def new_txn(self, conn: Connection) -> tuple[int, str, str]:
        """Reserve the next transaction id: ``(id, rrn, approval_code)``, for a row that
        :meth:`insert_txn` writes later in the same transaction.

        Knowing the id first lets the ledger group (reference ``txn:<id>``) be posted before
        the row, and the row be written once, complete with its RRN, approval code and group.
        SQLite: the first reservation of a transaction reads AUTOINCREMENT's counter, the
        next ones count on from it in memory (the write lock, held from ``BEGIN IMMEDIATE``,
        keeps every other writer out until the COMMIT); an id whose savepoint is rolled back
        is left unused. PostgreSQL: ``nextval`` of the column's sequence (never handed out
        twice, whichever engine asks). Either way an id, and so an RRN, is never reused.
        """
        if conn.dialect.name != "sqlite":
            # Reserved by arrival() (any sequence value is unused until taken, whatever
            # happened to the transaction that drew it), else drawn now.
            reserved = conn.info.pop(_RESERVED_TXN_ID, None)
            txn_id = reserved if reserved is not None else \
                int(_TXN_NEXT_ID.run(conn).scalar_one())
        else:
            info = conn.info
            transaction = conn.get_transaction()
            counter = info.get(_LAST_TXN_ID)
            if counter is None or counter[0] is not transaction:
                counter = [transaction, int(_TXN_LAST_ID.run(conn).scalar() or 0)]
                info[_LAST_TXN_ID] = counter
            counter[1] += 1
            txn_id = counter[1]
        return txn_id, rrn_for(self.rrn_prefix, txn_id), approval_code_for(txn_id)

    def insert_txn(self, conn: Connection, **values: Any) -> tuple[int, str, str]:
        """Insert a transaction row; returns ``(id, rrn, approval_code)``.

        ``id``, ``rrn`` and ``approval_code`` come from :meth:`new_txn` (reserved here when
        ``values`` has no ``id``); the row is written complete, in one statement."""
        if "id" not in values:
            values["id"], values["rrn"], values["approval_code"] = self.new_txn(conn)
        row = {**_TXN_OPTIONAL, **values}
        row["mac"] = txn_mac(self.key, row)
        _TXN_INSERT.later(conn, row)  # PostgreSQL: sent with the request's other writes
        return row["id"], row["rrn"], row["approval_code"]

    def arrival(self, conn: Connection, tid: str, mid: str, stan: str,
                business_dates: Sequence[str], key: str, *, books: bool = False
                ) -> tuple[Row[Any] | None, tuple[str, str] | None, bool]:
        """A request's first reads: ``(terminal row locked or None, (fingerprint, stored
        answer) under ``key`` or None, tombstoned)``, where tombstoned is :meth:`tombstoned`
        for (``mid``, ``tid``, ``stan``) on ``business_dates`` (the current and the previous
        business date).

        One statement when the terminal is known; a terminal's first request reads the three
        apart. ``books``: the request will likely insert a transaction row; on PostgreSQL the
        same round trip then reserves its id for :meth:`new_txn`."""
        first, second = business_dates
        reserving = books and conn.dialect.name != "sqlite"
        row = (_ARRIVAL_RESERVING if reserving else _ARRIVAL).run(conn, {
            "tid": tid, "key_": key, "mid": mid, "stan_": stan, "bdate": first,
            "bdate2": second}).first()
        if row is None:
            return (self.terminal(conn, tid, lock=True), recall(conn, key),
                    self.tombstoned(conn, mid, tid, stan, business_dates))
        if reserving:
            conn.info[_RESERVED_TXN_ID] = int(row.next_txn_id)
        answered = None if row.fingerprint is None else (row.fingerprint, row.result)
        return row, answered, bool(row.tombstoned)

    def update_txn(self, conn: Connection, txn_id: int, **values: Any) -> None:
        """Change columns of one transaction (state, group, batch, review state)."""
        _TXN_UPDATE.run(conn, {"txn_id_": txn_id, **values})

    def txn_by_id(self, conn: Connection, txn_id: int | None, *,
                  lock: bool = False) -> Row[Any] | None:
        """A transaction by id (optionally locked for update)."""
        if txn_id is None:
            return None
        return (_TXN_BY_ID_LOCKED if lock else _TXN_BY_ID).run(conn, {"txn_id_": txn_id}).first()

    def txn_by_rrn(self, conn: Connection, rrn: str, *, lock: bool = False) -> Row[Any] | None:
        """A transaction by its host-assigned RRN (optionally locked for update)."""
        return (_TXN_BY_RRN_LOCKED if lock else _TXN_BY_RRN).run(conn, {"rrn_": rrn}).first()

    def txn_by_request_key(self, conn: Connection, key: str) -> Row[Any] | None:
        """The transaction a request with this request key booked, locked for update."""
        return _TXN_BY_KEY_LOCKED.run(conn, {"key_": key}).first()

    def txns(self, conn: Connection, tid: str | None, stan: str | None,
             limit: int = 500, before_id: int | None = None) -> list[Row[Any]]:
        """Transactions filtered by terminal and/or STAN, newest first; ``before_id`` pages on
        (only rows older than that one)."""
        q = select(txn)
        if tid is not None:
            q = q.where(txn.c.terminal_id == tid)
        if stan is not None:
            q = q.where(txn.c.stan == stan)
        if before_id is not None:
            q = q.where(txn.c.id < before_id)
        return list(conn.execute(q.order_by(txn.c.id.desc()).limit(limit)).all())

    def find_hold(self, conn: Connection, tid: str, mid: str, approval_code: str,
                  rrn: str | None) -> Row[Any] | None:
        """The authorization hold an 0220 completes (by DE38, and DE37 when sent), locked."""
        params = {"tid": tid, "mid": mid, "code": approval_code}
        if rrn:
            return _HOLD_BY_RRN.run(conn, {**params, "rrn_": rrn}).first()
        return _HOLD.run(conn, params).first()

    def refund_stats(self, conn: Connection, sale_id: int) -> tuple[int, int]:
        """``(refunded_minor, count)`` of the sale's effective refunds."""
        row: Any = _REFUND_STATS.run(conn, {"sale_id": sale_id}).one()
        return int(row[0]), int(row[1])

    def merchant_refunded(self, conn: Connection, mid: str, business_date: str) -> int:
        """Sum of the merchant's effective refunds on one business date."""
        return int(_MERCHANT_REFUNDED.run(conn, {"mid": mid, "bdate": business_date}
                                ).scalar_one())

    def view(self, conn: Connection, row: Row[Any]) -> OriginalView:
        """The rules' view of a transaction row (with refund totals and batch state)."""
        refunded, count = self.refund_stats(conn, int(row.id))
        return _view(row, refunded, count, self.batch_open(conn, row.batch_id))

    def original(self, conn: Connection, rrn: str
                 ) -> tuple[Row[Any], OriginalView] | tuple[None, None]:
        """The transaction with this RRN, locked, and the rules' view of it (:meth:`view`),
        read in one statement; ``(None, None)`` when there is none."""
        row = _ORIGINAL.run(conn, {"rrn_": rrn}).first()
        if row is None:
            return None, None
        return row, _view(row, int(row.refunded_minor), int(row.refund_count),
                          row.batch_state == "open")

    # -- reversals and tombstones ------------------------------------------------------------

    def reversal_target(self, conn: Connection, mid: str, tid: str, stan: str,
                        business_dates: Sequence[str]) -> Row[Any] | None:
        """The newest non-declined transaction with this (MID, TID, STAN) on the first of
        ``business_dates`` (current first, then the previous one) that has any."""
        for bdate in business_dates:
            row = _REVERSAL_TARGET.run(conn, {"mid": mid, "tid": tid, "stan_": stan,
                                              "bdate": bdate}).first()
            if row is not None:
                return row
        return None

    def mark_reversal(self, conn: Connection, mid: str, tid: str, stan: str,
                      business_date: str, target_id: int | None, at_ms: int) -> None:
        """Record an accepted reversal; ``target_id`` None makes it a tombstone."""
        _MARK_INSERT.run(conn, {"merchant_id": mid, "terminal_id": tid, "stan": stan,
                                    "business_date": business_date, "target_id": target_id,
                                    "at_ms": at_ms})

    def tombstoned(self, conn: Connection, mid: str, tid: str, stan: str,
                   business_dates: Sequence[str]) -> bool:
        """True when a reversal for (MID, TID, STAN) arrived before any original and left a
        tombstone on one of ``business_dates``."""
        first, *rest = business_dates
        if len(rest) > 1:
            raise ValueError("tombstoned looks at one or two business dates")
        return _TOMBSTONE.run(conn, {"mid": mid, "tid": tid, "stan_": stan, "bdate": first,
                                     "bdate2": rest[0] if rest else first}).first() is not None

    # -- reviews ---------------------------------------------------------------------------

    def add_review(self, conn: Connection, txn_id: int, level: int, at_ms: int) -> int:
        """Open a review for a held refund."""
        key = _REVIEW_INSERT.run(conn, {"txn_id": txn_id, "level": level,
                                            "state": "pending_review", "created_ms": at_ms}
                           ).inserted_primary_key
        assert key is not None
        return int(key[0])

    def review_row(self, conn: Connection, review_id: int, *,
                   lock: bool = False) -> Row[Any] | None:
        """A review by id."""
        return (_REVIEW_LOCKED if lock else _REVIEW).run(conn, {"rid": review_id}).first()

    def review_of(self, conn: Connection, txn_id: int) -> Row[Any] | None:
        """The review of a transaction, if any."""
        return _REVIEW_OF.run(conn, {"txn_id_": txn_id}).first()

    def approvals(self, conn: Connection, review_id: int) -> list[Row[Any]]:
        """Who approved a review, in order."""
        return list(_APPROVALS.run(conn, {"rid": review_id}).all())

    def add_approval(self, conn: Connection, review_id: int, approver: str, note: str,
                     at_ms: int) -> None:
        """Record one approver's approval."""
        _APPROVAL_INSERT.run(conn, {"review_id": review_id, "approver": approver,
                                        "note": note, "at_ms": at_ms})

    def decide_review(self, conn: Connection, review_id: int, state: str, at_ms: int,
                      reason: str | None = None) -> None:
        """Set a review's final state."""
        _REVIEW_UPDATE.run(conn, {"rid": review_id, "state": state, "decided_ms": at_ms,
                                      "reason": reason})

    def reviews(self, conn: Connection, state: str | None) -> list[Row[Any]]:
        """Reviews, optionally by state, newest first."""
        q = select(review)
        if state:
            q = q.where(review.c.state == state)
        return list(conn.execute(q.order_by(review.c.id.desc())).all())

    # -- events ----------------------------------------------------------------------------

    def add_event(self, conn: Connection, txn_id: int | None, at_ms: int, kind: str,
                  **detail: Any) -> None:
        """Append one audit event."""
        text = stored_text(detail)
        _EVENT_INSERT.later(conn, {"txn_id": txn_id, "at_ms": at_ms, "kind": kind,
                                   "detail": text,
                                   "mac": event_mac(self.key, txn_id, at_ms, kind, text),
                                   "chain": self.chain})

    def events(self, conn: Connection, txn_id: int) -> list[dict[str, Any]]:
        """The audit events of one transaction, oldest first."""
        rows = _EVENTS.run(conn, {"txn_id_": txn_id}).all()
        return [{"at_ms": int(r.at_ms), "kind": r.kind, **json.loads(r.detail)} for r in rows]


def _view(row: Row[Any], refunded: int, count: int, batch_open: bool) -> OriginalView:
    return OriginalView(kind=row.kind, state=row.state, merchant_id=row.merchant_id,
                        terminal_id=row.terminal_id, currency=row.currency,
                        amount_minor=int(row.amount_minor), pan_hash=row.pan_hash,
                        created_ms=int(row.at_ms), batch_open=batch_open,
                        refunded_minor=refunded, refund_count=count)


# -- store invariants, composed by host.store_verify.store_checks ---------------------------


def check_one_txn_per_key(conn: Connection) -> list[Violation]:
    """I5: at most one transaction per request key."""
    rows = conn.execute(select(txn.c.request_key, func.count()).group_by(txn.c.request_key)
                        .having(func.count() > 1)).all()
    return [{"invariant": "I5", "detail": f"request key {k!r} has {n} transactions"}
            for k, n in rows]


def check_refunds_within_sale(conn: Connection) -> list[Violation]:
    """I9 on the transaction table: effective refunds of a sale never exceed it."""
    out = []
    sales = {int(r.id): r for r in conn.execute(
        select(txn.c.id, txn.c.rrn, txn.c.state, txn.c.amount_minor)
        .where(txn.c.kind.in_((TxnKind.SALE, TxnKind.COMPLETION)))).all()}
    rows = conn.execute(select(txn.c.original_id, func.sum(txn.c.amount_minor))
                        .where(txn.c.kind == TxnKind.REFUND, txn.c.state == TxnState.APPROVED,
                               txn.c.original_id.is_not(None))
                        .group_by(txn.c.original_id)).all()
    for sale_id, total in rows:
        sale = sales.get(int(sale_id))
        limit = int(sale.amount_minor) \
            if sale is not None and sale.state == TxnState.APPROVED else 0
        if int(total) > limit:
            rrn = sale.rrn if sale is not None else "?"
            out.append({"invariant": "I9", "detail": f"sale {rrn} (txn {sale_id}) has effective "
                                                     f"refunds of {int(total)} above {limit}"})
    return out


def check_batch_membership(conn: Connection) -> list[Violation]:
    """I12: every effective captured transaction belongs to a batch of its own terminal."""
    rows = conn.execute(select(txn.c.id, txn.c.rrn, txn.c.terminal_id, batch.c.terminal_id)
                        .select_from(txn.outerjoin(batch, batch.c.id == txn.c.batch_id))
                        .where(txn.c.state == TxnState.APPROVED,
                               txn.c.kind.in_(BATCHED_KINDS))).all()
    out = []
    for tid, rrn, term, batch_term in rows:
        if batch_term is None:
            out.append({"invariant": "I12", "detail": f"txn {tid} ({rrn}) is in no batch"})
        elif batch_term != term:
            out.append({"invariant": "I12", "detail": f"txn {tid} ({rrn}) of terminal {term} "
                                                      f"sits in a batch of {batch_term}"})
    return out


def check_closed_batches(conn: Connection) -> list[Violation]:
    """I12: a closed batch's content still hashes to what was recorded at close."""
    out = []
    for row in conn.execute(select(batch).where(batch.c.state == "closed")).all():
        if row.content_hash != Store.batch_content_hash(conn, int(row.id)):
            out.append({"invariant": "I12", "detail": f"closed batch {row.id} of terminal "
                                                      f"{row.terminal_id} changed after close"})
    return out


def _has_store(conn: Connection) -> bool:
    from sqlalchemy import inspect

    return bool(inspect(conn).has_table("txn"))


def guarded(check: Any) -> ExtraCheck:
    """``check`` skipped (no violations) on a database without the store's tables."""

    def run(conn: Connection) -> list[Violation]:
        return list(check(conn)) if _has_store(conn) else []

    run.__doc__ = check.__doc__
    return run


_FIXED_LIST = ", ".join(TXN_FIXED + ("mac",))
_SQLITE_TRIGGERS = (  # each: CREATE TRIGGER <name> ... (host.ledger.schema.put_sqlite_trigger)
    f"CREATE TRIGGER txn_fixed BEFORE UPDATE OF {_FIXED_LIST} ON txn "
    "BEGIN SELECT RAISE(ABORT, 'history table txn: its fixed columns never change'); END",
    "CREATE TRIGGER txn_once BEFORE UPDATE OF rrn, approval_code, group_id ON txn "
    "WHEN (OLD.rrn IS NOT NULL AND NEW.rrn IS NOT OLD.rrn) "
    "OR (OLD.approval_code IS NOT NULL AND NEW.approval_code IS NOT OLD.approval_code) "
    "OR (OLD.group_id IS NOT NULL AND NEW.group_id IS NOT OLD.group_id) "
    "BEGIN SELECT RAISE(ABORT, 'history table txn: rrn, approval_code and group_id are "
    "written once'); END",
    "CREATE TRIGGER review_fixed BEFORE UPDATE OF id, txn_id, level, created_ms "
    "ON review BEGIN SELECT RAISE(ABORT, 'history table review: its subject never changes'); "
    "END",
    "CREATE TRIGGER batch_closed_fixed BEFORE UPDATE ON batch "
    "WHEN OLD.state = 'closed' "
    "BEGIN SELECT RAISE(ABORT, 'history table batch: a closed batch never changes'); END",
)
_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION poslab_fixed_columns() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'txn' THEN
    IF ROW(OLD.id, {", ".join("OLD." + c for c in TXN_FIXED + ("mac",))})
       IS DISTINCT FROM ROW(NEW.id, {", ".join("NEW." + c for c in TXN_FIXED + ("mac",))})
    THEN RAISE EXCEPTION 'history table txn: its fixed columns never change'; END IF;
    IF (OLD.rrn IS NOT NULL AND NEW.rrn IS DISTINCT FROM OLD.rrn)
       OR (OLD.approval_code IS NOT NULL AND NEW.approval_code IS DISTINCT FROM OLD.approval_code)
       OR (OLD.group_id IS NOT NULL AND NEW.group_id IS DISTINCT FROM OLD.group_id)
    THEN RAISE EXCEPTION 'history table txn: rrn, approval_code and group_id are written once';
    END IF;
  ELSIF TG_TABLE_NAME = 'review' THEN
    IF ROW(OLD.id, OLD.txn_id, OLD.level, OLD.created_ms)
       IS DISTINCT FROM ROW(NEW.id, NEW.txn_id, NEW.level, NEW.created_ms)
    THEN RAISE EXCEPTION 'history table review: its subject never changes'; END IF;
  ELSIF TG_TABLE_NAME = 'batch' AND OLD.state = 'closed' THEN
    RAISE EXCEPTION 'history table batch: a closed batch never changes';
  END IF;
  RETURN NEW;
END $$
"""
#: Tables that only ever grow.
APPEND_ONLY = ("event", "reversal_mark", "review_approval")
#: Tables whose rows change in restricted ways but are never deleted.
NO_DELETE = ("txn", "review", "batch")


#: Indexes of earlier versions that :func:`create_store_schema` replaces by partial ones on the
#: same columns (``ix_txn_original_set``, ``ix_reversal_tombstone``).
RETIRED_INDEXES = ("ix_txn_original", "ix_reversal_key")


def create_store_schema(conn: Connection) -> None:
    """Create the store's tables and the triggers that keep its history (idempotent).

    A database made by an earlier version gets the current indexes, and loses the ones they
    replace (:data:`RETIRED_INDEXES`); its rows are untouched."""
    metadata.create_all(conn)
    add_chain_column(conn, event.name)
    update_indexes(conn, metadata, RETIRED_INDEXES)
    create_append_only_triggers(conn, APPEND_ONLY)
    if conn.dialect.name == "sqlite":
        for sql in _SQLITE_TRIGGERS:
            put_sqlite_trigger(conn, sql.split()[2], sql)
        for table in NO_DELETE:
            put_sqlite_trigger(conn, f"{table}_no_delete", (
                f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'history table {table} is append-only: DELETE "
                f"refused'); END"))
        return
    conn.exec_driver_sql(_PG_FUNCTION)
    for table in NO_DELETE:
        conn.exec_driver_sql(
            f"CREATE OR REPLACE TRIGGER {table}_fixed BEFORE UPDATE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION poslab_fixed_columns()")
        conn.exec_driver_sql(
            f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION poslab_append_only()")
        conn.exec_driver_sql(
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION poslab_append_only()")


def drop_store_triggers(conn: Connection) -> None:
    """Remove the store's triggers (tests use this to tamper with history on purpose)."""
    from host.ledger.schema import drop_append_only_triggers

    drop_append_only_triggers(conn, APPEND_ONLY + NO_DELETE)
    if conn.dialect.name == "sqlite":
        for name in ("txn_fixed", "txn_once", "review_fixed", "batch_closed_fixed"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for table in NO_DELETE:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_fixed ON {table}")
