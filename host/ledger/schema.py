"""The ledger's tables and the triggers that make them append-only.

``posting_group``
    One balanced journal entry: ``id`` (1, 2, 3 ... in chain order, never reused), ``kind``
    (free text: ``sale``, ``refund``, ``reversal`` ...), ``reference`` (opaque, set by the
    caller, e.g. ``txn:42`` or ``settlement:7``), ``reverses`` (the group this one mirrors, or
    NULL), ``parent_id`` (the group this one draws against, e.g. a refund against its sale; the
    sum of effective children never exceeds the parent, invariant I9), ``currency``,
    ``amount_minor`` (sum of the debits), ``at_ms`` (host clock), ``memo``, ``prev_hash`` and
    ``hash`` (SHA-256 chain, see :mod:`host.ledger.book`).
``ledger_entry``
    One leg of a group: ``group_id``, ``account``, ``side`` (``D``/``C``), ``amount_minor``
    (> 0), ``currency``.
``ledger_head``
    One row: the last group's id and hash. Writers lock it (``FOR UPDATE`` on PostgreSQL; the
    SQLite write lock covers it) so the chain never forks.
``request_log``
    Idempotency records: an opaque key, the fingerprint of the request's content and the stored
    result (JSON text). A key is recorded once (primary key, invariant I5).

Triggers on SQLite and PostgreSQL refuse UPDATE and DELETE on ``posting_group`` and
``ledger_entry`` (and TRUNCATE on PostgreSQL): corrections are new groups (invariant I4).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

posting_group = Table(
    "posting_group", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("reverses", BigInteger, ForeignKey("posting_group.id")),
    Column("parent_id", BigInteger, ForeignKey("posting_group.id")),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("memo", Text, nullable=False, default=""),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_group_reference", "reference"),
    Index("ix_group_reverses", "reverses"),
    Index("ix_group_parent", "parent_id"),
)  # fmt: skip

ledger_entry = Table(
    "ledger_entry", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("group_id", BigInteger, ForeignKey("posting_group.id"), nullable=False),
    Column("account", String(64), nullable=False),
    Column("side", String(1), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    CheckConstraint("side IN ('D', 'C')", name="ck_entry_side"),
    Index("ix_entry_group", "group_id"),
)  # fmt: skip

ledger_head = Table(
    "ledger_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_id", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
)  # fmt: skip

request_log = Table(
    "request_log", metadata,
    Column("key", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("result", Text, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
)  # fmt: skip

GENESIS_HASH = "0" * 64
APPEND_ONLY_TABLES = ("posting_group", "ledger_entry")

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION poslab_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger table % is append-only: % refused', TG_TABLE_NAME, TG_OP;
END $$
"""


def create_schema(conn: Connection) -> None:
    """Create the tables, the head row and the append-only triggers (idempotent)."""
    metadata.create_all(conn)
    if conn.execute(ledger_head.select()).first() is None:
        conn.execute(ledger_head.insert().values(id=1, last_id=0, last_hash=GENESIS_HASH))
    if conn.dialect.name == "sqlite":
        for table in APPEND_ONLY_TABLES:
            for op in ("UPDATE", "DELETE"):
                conn.execute(text(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'ledger table {table} is append-only: "
                    f"{op} refused'); END"))
    else:
        conn.execute(text(_PG_FUNCTION))
        for table in APPEND_ONLY_TABLES:
            conn.execute(text(
                f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON "
                f"{table} FOR EACH ROW EXECUTE FUNCTION poslab_append_only()"))
            conn.execute(text(
                f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION poslab_append_only()"))


def drop_append_only_triggers(conn: Connection) -> None:
    """Remove the triggers (tests use this to tamper with history on purpose)."""
    for table in APPEND_ONLY_TABLES:
        if conn.dialect.name == "sqlite":
            for op in ("update", "delete"):
                conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{op}"))
        else:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}"))
