"""Running a transaction again when it lost a race, decided by the driver's error code.

The message text of an error depends on the driver version and the server's language; the codes
do not. A transaction is retried when it lost a race it can win on a second try:

- SQLite (``sqlite3.Error.sqlite_errorcode``): ``SQLITE_BUSY`` or ``SQLITE_LOCKED``, with their
  extended codes (``SQLITE_BUSY_SNAPSHOT``, ...): another connection holds the write lock
  longer than the busy timeout. ``SQLITE_CONSTRAINT_UNIQUE`` / ``_PRIMARYKEY``: a concurrent
  twin inserted the same key first (the retry finds its result).
- PostgreSQL (psycopg's ``sqlstate``): ``40001`` serialization_failure, ``40P01``
  deadlock_detected, ``55P03`` lock_not_available; ``23505`` unique_violation for the twin.

Every other error (a CHECK or foreign-key violation, a syntax error, a full disk, a lost
connection) is raised at once: running the same transaction again would fail the same way.

:class:`RetryTransaction` is raised by the host itself when a transaction counted on
something that another writer, or a rolled-back savepoint, changed meanwhile (the ledger's
chain head, :mod:`host.ledger.pending`): it is always retried.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

T = TypeVar("T")

#: Primary result codes: the low byte of an extended code such as SQLITE_BUSY_SNAPSHOT.
_SQLITE_RETRY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_SQLITE_DUPLICATE = frozenset({sqlite3.SQLITE_CONSTRAINT_UNIQUE,
                               sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY})
_PG_RETRY = frozenset({"40001", "40P01", "55P03"})
_PG_DUPLICATE = "23505"


class RetryTransaction(SQLAlchemyError):
    """The transaction lost a race the host found itself; running it again wins it. A
    database error like the others for whoever does not retry (a request answers 96)."""


def is_retryable(exc: DBAPIError) -> bool:
    """Whether the transaction that raised ``exc`` may succeed if run again (module doc)."""
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is None:
            return False
        if isinstance(exc, IntegrityError):
            return code in _SQLITE_DUPLICATE
        return isinstance(exc, OperationalError) and code & 0xFF in _SQLITE_RETRY
    state = getattr(orig, "sqlstate", None)  # psycopg (3) errors; None for other drivers
    if isinstance(exc, IntegrityError):
        return state == _PG_DUPLICATE
    return isinstance(exc, OperationalError) and state in _PG_RETRY


def run_retrying(fn: Callable[[], T], attempts: int) -> T:
    """``fn()``, run up to ``attempts`` times while it raises a retryable error; any other
    error, or the last attempt's, is raised. ``fn`` must open and commit its own transaction."""
    for attempt in range(attempts):
        try:
            return fn()
        except RetryTransaction:
            if attempt == attempts - 1:
                raise
        except (IntegrityError, OperationalError) as exc:
            if attempt == attempts - 1 or not is_retryable(exc):
                raise
    raise ValueError(f"attempts must be at least 1, not {attempts}")
