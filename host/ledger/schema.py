"""The ledger's tables and the triggers that make them append-only.

``posting_group``
    One balanced journal entry: ``id`` (1, 2, 3 ... in chain order, never reused), ``kind``
    (free text: ``sale``, ``refund``, ``reversal`` ...), ``reference`` (opaque, set by the
    caller, e.g. ``txn:42`` or ``settlement:7``), ``reverses`` (the group this one mirrors, or
    NULL), ``parent_id`` (the group this one draws against, e.g. a refund against its sale; the
    sum of effective children never exceeds the parent, invariant I9), ``currency``,
    ``amount_minor`` (sum of the debits), ``at_ms`` (host clock), ``memo``, ``prev_hash`` and
    ``hash`` (keyed MAC chain, see :mod:`host.ledger.book` and
    :mod:`host.ledger.chain`), ``chain`` (the chain it belongs to; its id lies in that chain's
    range, and ``prev_hash`` is the hash of the chain's previous group).
``ledger_entry``
    One leg of a group: ``group_id``, ``account``, ``side`` (``D``/``C``), ``amount_minor``
    (> 0), ``currency``.
``ledger_head``
    One row per chain (:mod:`host.ledger.chains`), found by its ``chain`` name (``id`` is its
    slot + 1): the chain's last group id and hash, its number of entries, ``mac`` (the chain
    key's MAC over those three and the chain's name, so the head cannot be wound back without
    the key) and ``key_check`` (identifies the chain key the ledger is written with, and its MAC
    scheme). Writers lock their chain's row (``FOR UPDATE`` on PostgreSQL; the SQLite write
    lock covers it) so the chain never forks; writers of other chains do not wait for it.
``ledger_registry``
    One row: the list of chains with their slots and its MAC (a chain deleted whole shows).
``request_log``
    Idempotency records: an opaque key, the fingerprint of the request's content, the stored
    result (JSON text) and ``mac`` over all of them. A key is recorded once (primary key,
    invariant I5).

Triggers on SQLite and PostgreSQL refuse UPDATE and DELETE on ``posting_group``,
``ledger_entry`` and ``request_log`` (and TRUNCATE on PostgreSQL): corrections are new groups
(invariant I4). Triggers stop mistakes and casual edits; someone who can drop them is caught by
the keyed MACs instead (:mod:`host.ledger.verify`).

A database written before the chain was keyed has no ``ledger_head.mac``: :func:`create_schema`
refuses it with :class:`SchemaVersionError` rather than mix unkeyed and keyed history. One
written before chains gains the ``chain`` columns in place (every row is ``main``, nothing is
re-MAC'd) and a registry listing ``main``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    inspect,
    select,
    text,
)
from sqlalchemy.schema import CreateColumn, CreateIndex

from host.ledger.chain import ChainKey, ChainKeyError
from host.ledger.chains import (
    MAIN,
    Chain,
    head_mac,
    next_slot,
    parse_registry,
    registry_mac,
    registry_text,
)

metadata = MetaData()
_REVERSES_SET = text("reverses IS NOT NULL")

def chain_column() -> Column[str]:
    """The ``chain`` column of a table whose rows a host writes on its own chain (head rows,
    posting groups, audit events, settlements, notifications): the chain's name, ``main`` in
    the rows of a database from before chains."""
    return Column("chain", String(16), nullable=False, server_default=MAIN)


posting_group = Table(
    "posting_group", metadata,
    # INTEGER on SQLite: the id is then the rowid, not a second B-tree beside it.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
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
    chain_column(),
    Index("ix_group_reference", "reference"),
    # Only reversals have ``reverses``; no query looks groups up by ``parent_id``.
    Index("ix_group_reverses_set", "reverses", sqlite_where=_REVERSES_SET,
          postgresql_where=_REVERSES_SET),
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
    Column("entries", BigInteger, nullable=False),
    Column("mac", String(64), nullable=False),
    Column("key_check", String(64), nullable=False),
    chain_column(),
    Index("ux_head_chain", "chain", unique=True),
)  # fmt: skip

ledger_registry = Table(
    "ledger_registry", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("chains", Text, nullable=False),
    Column("mac", String(64), nullable=False),
)  # fmt: skip

request_log = Table(
    "request_log", metadata,
    Column("key", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("result", Text, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("mac", String(64), nullable=False),
)  # fmt: skip

#: Indexes of earlier versions that :func:`create_schema` removes: ``ix_group_reverses_set``
#: replaces the first, and nothing reads groups by ``parent_id``.
RETIRED_INDEXES = ("ix_group_reverses", "ix_group_parent")
GENESIS_HASH = "0" * 64
APPEND_ONLY_TABLES = ("posting_group", "ledger_entry", "request_log")

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION poslab_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'history table % is append-only: % refused', TG_TABLE_NAME, TG_OP;
END $$
"""


class SchemaVersionError(Exception):
    """The database was written by a poslab version whose ledger this one cannot extend."""


class ChainRegistryError(Exception):
    """The chain registry is missing or altered: the host does not add a chain to it."""


def create_schema(conn: Connection, key: ChainKey, chain: str = MAIN) -> Chain:
    """Create the tables, the append-only triggers and the head row of ``chain``, registering
    the chain when it is new (idempotent); return the chain (its slot gives its id range).

    ``key`` switches to the MAC scheme of an existing ledger (:meth:`ChainKey.adopt`); a new
    ledger gets the key's own. Raises :class:`SchemaVersionError` on a ledger from before the
    keyed chain, :class:`~host.ledger.chain.ChainKeyError` on one written with another chain
    key and :class:`ChainRegistryError` when a new chain would join a registry that is gone or
    altered. Run under :func:`host.ledger.db.schema_transaction`, so hosts starting together
    register one after the other."""
    check_schema_version(conn)
    metadata.create_all(conn)
    upgraded = _add_chain_columns(conn)
    update_indexes(conn, metadata, RETIRED_INDEXES)
    mine = _register(conn, key, chain, upgraded)
    create_append_only_triggers(conn, APPEND_ONLY_TABLES)
    return mine


def _add_chain_columns(conn: Connection) -> bool:
    """Give a database from before chains its ``chain`` columns (every row: ``main``); True
    when the head row got one now."""
    upgraded = False
    for table in (ledger_head, posting_group):
        added = add_chain_column(conn, table.name)
        upgraded = upgraded or (added and table is ledger_head)
    return upgraded


def held_columns(conn: Connection, table: str) -> set[str]:
    """The names of the columns ``table`` has in this database (none: no such table)."""
    inspector = inspect(conn)
    return {c["name"] for c in inspector.get_columns(table)} if inspector.has_table(table) \
        else set()


def add_chain_column(conn: Connection, table: str) -> bool:
    """Give ``table`` of an older database its ``chain`` column (:func:`chain_column`), every
    row ``main`` (the one writer there was); True when it was missing. On PostgreSQL 11+ and
    SQLite adding a column with a constant default rewrites no row, and no trigger fires."""
    held = held_columns(conn, table)
    if not held or "chain" in held:
        return False
    column = CreateColumn(chain_column()).compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column}"))
    return True


def stored_columns(conn: Connection, table: Table) -> list[Column[Any]]:
    """The columns of ``table`` that the database holds: all of them, less those an older
    version did not have (:func:`add_chain_column`) on a database no host of this version
    has opened yet, which ``ledger verify`` and the reports read as they are."""
    held = held_columns(conn, table.name)
    return [c for c in table.c if c.name in held]


def _register(conn: Connection, key: ChainKey, name: str, upgraded: bool) -> Chain:
    """The chain ``name``; its head row and registry entry are written when it is new.

    An existing chain is taken from its head row (``id`` = slot + 1) whatever the registry
    says: a registry that was tampered with is verify's to report, not a reason to stop."""
    registry = conn.execute(select(ledger_registry).where(ledger_registry.c.id == 1)
                            .with_for_update()).first()
    heads = conn.execute(select(ledger_head).order_by(ledger_head.c.id)).all()
    if heads and not key.adopt(heads[0].key_check):  # an older ledger keeps its MAC scheme
        raise ChainKeyError(
            f"the ledger in this database was written with a different chain key than the one "
            f"in {key.path}: start with the key file it was written with")
    listed = None if registry is None else str(registry.chains)
    if listed is None and (upgraded or not heads):  # a new ledger, or one from before chains
        listed = registry_text([Chain.of_head(h) for h in heads])
        conn.execute(ledger_registry.insert().values(id=1, chains=listed,
                                                     mac=registry_mac(key, listed)))
    for head in heads:
        if head.chain == name:
            return Chain.of_head(head)
    if listed is None or registry is not None and registry.mac != registry_mac(key, listed):
        raise ChainRegistryError(
            f"cannot add the ledger chain {name!r}: the chain registry is "
            f"{'missing' if listed is None else 'altered'}; run 'poslab-host ledger verify'")
    chains = parse_registry(listed)
    new = Chain(name, next_slot(chains, name))
    conn.execute(ledger_head.insert().values(
        id=new.head_id, chain=name, last_id=new.base, last_hash=GENESIS_HASH, entries=0,
        key_check=key.check, mac=head_mac(key, new.base, GENESIS_HASH, 0, name)))
    listed = registry_text([*chains, new])
    conn.execute(ledger_registry.update().where(ledger_registry.c.id == 1).values(
        chains=listed, mac=registry_mac(key, listed)))
    return new


def check_schema_version(conn: Connection) -> None:
    """Raise :class:`SchemaVersionError` when the ledger predates the keyed chain."""
    inspector = inspect(conn)
    if inspector.has_table("ledger_head") and "mac" not in {
            c["name"] for c in inspector.get_columns("ledger_head")}:
        raise SchemaVersionError(
            "this database holds a ledger from before the keyed hash chain (no ledger_head.mac)"
            "; this version cannot extend or verify it: use the poslab version that wrote it, "
            "and start this one on a new database")


def update_indexes(conn: Connection, tables: MetaData, retired: Sequence[str]) -> None:
    """Bring the indexes of a database made by an earlier version up to date: drop the
    ``retired`` ones where they exist and create those of ``tables`` it lacks (``create_all``
    creates a table's indexes only with the table). A no-op on a current database."""
    for name in retired:
        conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
    for table in tables.sorted_tables:
        for index in table.indexes:
            conn.execute(CreateIndex(index, if_not_exists=True))


def put_sqlite_trigger(conn: Connection, name: str, statement: str) -> None:
    """Create the SQLite trigger ``name`` as ``statement`` (``CREATE TRIGGER name ...``), or
    replace a trigger of that name whose definition differs (idempotent).

    SQLite has no ``CREATE OR REPLACE TRIGGER``, and ``IF NOT EXISTS`` would keep the rule an
    earlier version wrote into the database: a rule that now also fixes a new column (the
    ``chain`` of an audit event, a settlement, a notification) would not guard it there. SQLite
    keeps each trigger's statement as written (less ``IF NOT EXISTS``), so the stored text says
    whether it is the current one."""
    held = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)).scalar()
    if held == statement:
        return
    if held is not None:
        conn.exec_driver_sql(f"DROP TRIGGER {name}")
    conn.exec_driver_sql(statement)


def create_append_only_triggers(conn: Connection, tables: Sequence[str]) -> None:
    """Triggers refusing UPDATE and DELETE (and TRUNCATE on PostgreSQL) on ``tables``."""
    if conn.dialect.name == "sqlite":
        for table in tables:
            for op in ("UPDATE", "DELETE"):
                name = f"{table}_no_{op.lower()}"
                put_sqlite_trigger(conn, name, (
                    f"CREATE TRIGGER {name} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'history table {table} is append-only: "
                    f"{op} refused'); END"))
    else:
        conn.execute(text(_PG_FUNCTION))
        for table in tables:
            conn.execute(text(
                f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON "
                f"{table} FOR EACH ROW EXECUTE FUNCTION poslab_append_only()"))
            conn.execute(text(
                f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION poslab_append_only()"))


def drop_append_only_triggers(conn: Connection, tables: Sequence[str] = APPEND_ONLY_TABLES
                              ) -> None:
    """Remove the triggers (tests use this to tamper with history on purpose)."""
    for table in tables:
        if conn.dialect.name == "sqlite":
            for op in ("update", "delete"):
                conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{op}"))
        else:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}"))


# -- history tables whose rows move on, in named steps ------------------------------------------

_PG_REFUSE = """
CREATE OR REPLACE FUNCTION poslab_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'history table %: % refused (%)', TG_TABLE_NAME, TG_OP, TG_ARGV[0];
END $$
"""


@dataclass(frozen=True)
class UpdateRule:
    """One named rule every UPDATE of a history table keeps; a trigger refuses the others.

    The rule holds when the ``fixed`` columns keep their values, or else when ``unless`` (SQL
    over ``OLD`` and ``NEW``, the same on SQLite and PostgreSQL) is true: the one move the code
    legitimately makes, e.g. ``OLD.status = 'closed' AND NEW.status = 'funded'``."""

    name: str
    """Also the trigger's name (unique in the database)."""
    table: str
    says: str
    """What the rule allows, in the refusal's message."""
    fixed: tuple[str, ...]
    unless: str | None = None

    def condition(self, dialect: str) -> str:
        """The SQL boolean that holds for every update this rule allows."""
        # PostgreSQL's json type has no equality: compare every column as text there.
        same = " AND ".join(
            f"OLD.{c} IS NEW.{c}" if dialect == "sqlite" else
            f"OLD.{c}::text IS NOT DISTINCT FROM NEW.{c}::text" for c in self.fixed)
        return f"({same}) OR ({self.unless})" if self.unless else f"({same})"


def create_history_triggers(conn: Connection, no_delete: Sequence[str],
                            rules: Sequence[UpdateRule]) -> None:
    """Triggers refusing DELETE (and TRUNCATE on PostgreSQL) on ``no_delete`` and every UPDATE
    that breaks one of ``rules``; each refusal names the table and the rule (idempotent)."""
    sqlite = conn.dialect.name == "sqlite"
    if not sqlite:
        conn.execute(text(_PG_FUNCTION))
        conn.execute(text(_PG_REFUSE))
    for table in no_delete:
        if sqlite:
            put_sqlite_trigger(conn, f"{table}_no_delete", (
                f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'history table {table}: DELETE refused'); END"))
        else:
            conn.execute(text(
                f"CREATE OR REPLACE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION poslab_append_only()"))
            conn.execute(text(
                f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION poslab_append_only()"))
    for rule in rules:
        why = f"{rule.name}: {rule.says}".replace("'", "")
        when = f"({rule.condition(conn.dialect.name)}) IS NOT TRUE"
        if sqlite:
            put_sqlite_trigger(conn, rule.name, (
                f"CREATE TRIGGER {rule.name} BEFORE UPDATE ON {rule.table} "
                f"WHEN {when} BEGIN SELECT RAISE(ABORT, 'history table {rule.table}: UPDATE "
                f"refused ({why})'); END"))
        else:
            conn.execute(text(
                f"CREATE OR REPLACE TRIGGER {rule.name} BEFORE UPDATE ON {rule.table} "
                f"FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION poslab_refuse('{why}')"))


def drop_history_triggers(conn: Connection, no_delete: Sequence[str],
                          rules: Sequence[UpdateRule]) -> None:
    """Remove what :func:`create_history_triggers` made (tests tamper with history so)."""
    sqlite = conn.dialect.name == "sqlite"
    for table in no_delete:
        if sqlite:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))
        else:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}"))
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}"))
    for rule in rules:
        conn.execute(text(f"DROP TRIGGER IF EXISTS {rule.name}" +
                          ("" if sqlite else f" ON {rule.table}")))
