"""Database engines for the ledger: URL handling and the SQLite settings
(docs/design-notes.md, "Storage settings").

A plain path means an SQLite file; ``sqlite:///...`` and ``postgresql://`` /
``postgresql+psycopg://`` URLs go to SQLAlchemy (``postgresql://`` and ``postgres://`` are
normalised to the psycopg 3 driver).

SQLite runs in WAL mode with ``synchronous=FULL`` (``NORMAL`` is an opt-in fast mode that may
lose the last commits on an OS crash or power cut, never on a process crash), a busy timeout,
and **every transaction starts with ``BEGIN IMMEDIATE``**: Python's sqlite3 module would
otherwise open the transaction only at the first INSERT, so a refund's "SELECT refunded total,
then INSERT" check would run outside the transaction and two concurrent refunds could both pass
it. The recipe is SQLAlchemy's (SQLite dialect docs, "Serializable isolation"): switch off the
driver's own BEGIN in a ``connect`` event and emit ``BEGIN IMMEDIATE`` in a ``begin`` event.

PostgreSQL keeps its defaults (``fsync``, ``synchronous_commit`` on); callers serialise per
row with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, create_engine, event, text

SCHEMA_LOCK_ID = 858_301
"""PostgreSQL advisory lock id held while creating tables (many hosts may start at once)."""


def normalise_url(db: str) -> str:
    """Turn a plain path or a database URL into the SQLAlchemy URL poslab uses."""
    if "://" not in db:
        return f"sqlite:///{Path(db).expanduser().resolve()}"
    scheme, rest = db.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return db


def open_engine(db: str, *, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> Engine:
    """An engine for ``db`` (path or URL) with poslab's durability settings."""
    url = normalise_url(db)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_settings(engine, synchronous)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_settings(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # no implicit BEGIN from the driver
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        # Each request of a group commit runs in a savepoint, whose journal of changed pages
        # grows past SQLite's in-memory limit (64 KiB) within a batch and then goes to a
        # temporary file, one write per page (docs/performance.md): kept in memory instead.
        # Only the current transaction's rollback data lives there; nothing durable.
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_sqlite(engine: Engine | Connection) -> bool:
    """True for the SQLite backend."""
    return engine.dialect.name == "sqlite"


@contextmanager
def schema_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction that excludes other processes creating the same schema."""
    with engine.begin() as conn:
        if not is_sqlite(conn):
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK_ID})
        yield conn
