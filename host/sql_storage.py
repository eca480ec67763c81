"""The storage port (:mod:`host.pipeline.ports`) on SQLAlchemy Core: SQLite and PostgreSQL.

:meth:`SqlStorage.open` is what starting a host does to its database: for a serving host,
take the hold on its ledger chain (``[server] partition``; :mod:`host.ledger.writer_hold`: one
writing host per chain, a second one refused before it writes anything), find or create the
ledger's chain key next to it, open the engine (WAL and the configured ``synchronous`` on
SQLite), create the ledger and store schemas (registering the host's ledger chain), and read
the card-hash key. The composition root (:mod:`host.runtime`) calls it and hands the result to
:class:`~host.service.HostService`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from host.config import HostConfig
from host.ledger import (
    ChainKey,
    Ledger,
    create_schema,
    ensure_key,
    is_sqlite,
    key_path,
    open_engine,
    pending,
    schema_transaction,
)
from host.ledger.chains import MAIN
from host.ledger.db_retry import run_retrying
from host.ledger.prepared import run_plain
from host.ledger.writer_hold import ChainHold, hold_chain
from host.security.tables import create_security_schema
from host.store import Store, create_store_schema

log = logging.getLogger(__name__)
T = TypeVar("T")
_RETRIES = 8
_SAVEPOINT = "SAVEPOINT poslab_request"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT poslab_request"
_RELEASE = "RELEASE SAVEPOINT poslab_request"
_HELD = "poslab_savepoint_held"  # Connection.info: the transaction whose savepoint is held


class SqlStorage:
    """One host database on SQLAlchemy.

    :ivar engine: the engine (settlement and the crash-point hooks use it too).
    :ivar chain_key: the key of the ledger's and the store's MAC chains.
    :ivar store: the transaction store; ``ledger`` the ledger.
    :ivar card_key: the key card numbers are hashed with.
    :ivar hold: a serving host's hold on its ledger chain (None for tools and tests that open
        the database without one), let go by :meth:`close`.
    """

    errors: tuple[type[Exception], ...] = (SQLAlchemyError,)

    def __init__(self, engine: Engine, chain_key: ChainKey, store: Store, ledger: Ledger,
                 card_key: bytes, hold: ChainHold | None = None) -> None:
        self.engine = engine
        self.chain_key = chain_key
        self.store = store
        self.ledger = ledger
        self.card_key = card_key
        self.hold = hold

    @classmethod
    def open(cls, db_url: str, config: HostConfig, *, serving: bool = False) -> SqlStorage:
        """Open (and on first use create) the database at ``db_url``.

        ``serving``: this is a serving host, the one writer of its ledger chain. Its hold is
        taken first (:func:`~host.ledger.writer_hold.hold_chain`), so a host refused with
        :class:`~host.ledger.writer_hold.ChainBusy` has written nothing. Tools and tests that
        open several services on one database on purpose leave it off."""
        partition = _partition(config)
        hold = hold_chain(db_url, partition) if serving else None
        try:
            return cls._open(db_url, config, partition, hold)
        except BaseException:
            if hold is not None:
                hold.release()
            raise

    @classmethod
    def _open(cls, db_url: str, config: HostConfig, partition: str,
              hold: ChainHold | None) -> SqlStorage:
        chain_key = _chain_key(db_url, config.host.chain_key_file)
        engine = open_engine(db_url, synchronous=config.host.sqlite_synchronous)
        store = Store(chain_key, config.host.rrn_prefix, partition)
        if partition != MAIN and is_sqlite(engine):
            # Not refused: partitions on SQLite still test routing, only without a gain.
            log.warning("[server] partition %r on SQLite: partitions share one database only "
                        "on PostgreSQL; with SQLite the hosts take turns on its one write "
                        "lock, so a second host adds no throughput (routing still works)",
                        partition)
        try:
            with schema_transaction(engine) as conn:
                chain = create_schema(conn, chain_key, partition)
                create_store_schema(conn)
                create_security_schema(conn)
                card_key = store.card_key(conn, config.host.card_hash_key)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, chain_key, store, Ledger(chain_key, chain), card_key, hold)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite).

        The writes left waiting (:mod:`host.ledger.pending`) are sent before the block
        ends, so their error rolls the transaction back like any other. The block is one that
        is run again on a retryable error: a request's own transaction, under
        :meth:`retrying`, or a batch's, whose requests each run in a :meth:`savepoint`."""
        with self.engine.begin() as conn, pending.retried(conn):
            yield conn
            pending.flush(conn)

    @contextmanager
    def savepoint(self, conn: Connection) -> Iterator[Connection]:
        """A savepoint inside ``conn``, released on success and rolled back alone on an error.

        On PostgreSQL a request's savepoint is released only when the next one is taken, in
        the same round trip (``RELEASE ...; SAVEPOINT ...``), or by the COMMIT; on SQLite, at
        once (its driver runs one statement per call, and a call costs no round trip).

        The request's writes left waiting (:mod:`host.ledger.pending`) are sent before the
        savepoint counts as done: their error rolls back this request alone, here."""
        # Plain SQL savepoints: SQLAlchemy's begin_nested costs ~40 µs of CPU per request for
        # bookkeeping this code does not need (one level, always released or rolled back here).
        info = conn.info
        transaction = conn.get_transaction()
        if info.get(_HELD) is transaction:
            run_plain(conn, _RELEASE, _SAVEPOINT)
        else:
            run_plain(conn, _SAVEPOINT)
        info.pop(_HELD, None)
        try:
            with pending.retried(conn):
                yield conn
                pending.flush(conn)
        except BaseException:
            pending.discard(conn)  # undone with the savepoint; never sent
            if conn.dialect.name != "sqlite":  # SQLite finds out itself (Ledger, deferred head)
                self.ledger.forget_head()  # its postings are undone: read the head under lock
            run_plain(conn, _ROLLBACK_TO)
            run_plain(conn, _RELEASE)
            raise
        if conn.dialect.name == "sqlite":
            run_plain(conn, _RELEASE)
        else:
            info[_HELD] = transaction  # released with the next SAVEPOINT, or by the COMMIT

    def retrying(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` again (up to 8 times) on a retryable database error."""
        return run_retrying(fn, _RETRIES)

    def close(self) -> None:
        """Release the database connections, then the hold on the chain (after the last
        write)."""
        self.engine.dispose()
        if self.hold is not None:
            self.hold.release()


def _partition(config: HostConfig) -> str:
    """The ledger chain this host writes: ``[server] partition``, else ``main`` (a test's
    config double may have no ``server`` section)."""
    return getattr(getattr(config, "server", None), "partition", None) or MAIN


def _chain_key(db_url: str, configured: str | None) -> ChainKey:
    """The chain key of ``db_url``, generated on first start (its path logged, never the key)."""
    path = key_path(db_url, configured)
    key, created = ensure_key(path)
    if created:
        log.warning("generated the ledger chain key %s (mode 0600): keep it, and back it up "
                    "apart from the database; without it the ledger cannot be verified", path)
    return key
