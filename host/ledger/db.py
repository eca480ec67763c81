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

Under FULL, a group commit may leave the WAL's fsync out of its COMMIT and do it in a thread
of its own (:mod:`host.wal_sync`): :func:`commits_unsynced` marks the transactions begun in
its block, which then run under ``synchronous=NORMAL``. SQLite refuses to change the setting
inside a transaction, so it is set on the connection just before ``BEGIN IMMEDIATE``, and only
when it differs from what the connection has (back to FULL at the next unmarked BEGIN).

PostgreSQL keeps its defaults (``fsync``, ``synchronous_commit`` on); callers serialise per
row with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from weakref import WeakSet

from sqlalchemy import Connection, Engine, create_engine, event, text

SCHEMA_LOCK_ID = 858_301
"""PostgreSQL advisory lock id held while creating tables (many hosts may start at once)."""

_UNSYNCED: ContextVar[bool] = ContextVar("poslab_commits_unsynced", default=False)
_SYNCHRONOUS = "poslab_synchronous"  # DBAPI connection info: the level last set on it
_FULL: WeakSet[Engine] = WeakSet()  # SQLite engines opened with synchronous=FULL


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
        if synchronous == "FULL":
            _FULL.add(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_settings(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # no implicit BEGIN from the driver
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        _record.info[_SYNCHRONOUS] = synchronous
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
        if synchronous == "FULL":  # NORMAL never syncs at COMMIT: nothing to leave out
            wanted = "NORMAL" if _UNSYNCED.get() else "FULL"
            info = conn.connection.info
            if info.get(_SYNCHRONOUS) != wanted:  # outside the transaction: SQLite's rule
                conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                    f"PRAGMA synchronous={wanted}")
                info[_SYNCHRONOUS] = wanted
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def commits_unsynced() -> Iterator[None]:
    """Transactions begun in this block (this thread) on an SQLite FULL engine commit without
    the WAL fsync; the caller syncs the WAL (:func:`wal_path`) before anyone learns of them."""
    token = _UNSYNCED.set(True)
    try:
        yield
    finally:
        _UNSYNCED.reset(token)


def wal_path(engine: Engine) -> Path | None:
    """The ``-wal`` file whose fsync a FULL SQLite engine's commits may leave to the caller
    (:func:`commits_unsynced`); None for other engines (PostgreSQL, NORMAL, in memory)."""
    if engine not in _FULL:
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(f"{database}-wal")


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
