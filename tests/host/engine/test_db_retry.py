"""Transactions are retried by the driver's error code, with errors raised by the real drivers
(SQLite file, PostgreSQL schema): busy, locked and serialization failures run again; other
errors, even with "locked" or "unique" in their text, are raised at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from host.ledger.db_retry import is_retryable, run_retrying

# A CHECK whose name contains "unique": matching the error text would take it for a duplicate.
_TABLE = ("CREATE TABLE item (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL"
          " CONSTRAINT amount_unique_positive CHECK (amount > 0))")


class _Attempts:
    """Runs ``fn`` through run_retrying, keeping each attempt's error."""

    def __init__(self) -> None:
        self.errors: list[DBAPIError | None] = []

    def run(self, fn: Callable[[int], object], attempts: int = 5) -> object:
        def attempt() -> object:
            self.errors.append(None)
            try:
                return fn(len(self.errors))
            except DBAPIError as exc:
                self.errors[-1] = exc
                raise

        return run_retrying(attempt, attempts)


def _first_error_then_success(
    release: Callable[[], None], action: Callable[[], None], close: Callable[[], None]
) -> DBAPIError:
    """Runs ``action`` through run_retrying while another connection holds a lock, calling
    ``release`` (that connection ends its transaction) before the second attempt; asserts the
    second attempt succeeded and returns the first attempt's error."""

    def attempt(n: int) -> int:
        if n == 2:
            release()
        action()
        return n

    attempts = _Attempts()
    try:
        assert attempts.run(attempt) == 2
    finally:
        close()
    first = attempts.errors[0]
    assert isinstance(first, OperationalError)
    return first


@pytest.fixture
def sqlite_engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one SQLite file; the second never waits for a lock (timeout 0)."""
    url = f"sqlite:///{tmp_path / 'retry.db'}"
    holder = create_engine(url)
    waiter = create_engine(url, connect_args={"timeout": 0})
    with holder.begin() as conn:
        conn.execute(text(_TABLE))
    yield holder, waiter
    holder.dispose()
    waiter.dispose()


def test_sqlite_busy_is_retried(sqlite_engines: tuple[Engine, Engine]) -> None:
    """A write refused with SQLITE_BUSY (another connection holds the write lock) runs again
    and succeeds once the lock is released."""
    holder, waiter = sqlite_engines
    raw = holder.raw_connection()
    raw.execute("BEGIN IMMEDIATE")  # hold the write lock

    def write() -> None:
        with waiter.begin() as conn:
            conn.execute(text("INSERT INTO item (id, amount) VALUES (1, 5)"))

    first = _first_error_then_success(raw.commit, write, raw.close)
    assert isinstance(first, OperationalError) and isinstance(first.orig, sqlite3.Error)
    assert first.orig.sqlite_errorname == "SQLITE_BUSY"


@pytest.mark.parametrize("sql", [
    "SELECT * FROM locked_rows",  # OperationalError "no such table: locked_rows"
    "INSERT INTO item (id, amount) VALUES (2, -1)",  # CHECK amount_unique_positive
])  # fmt: skip
def test_sqlite_other_errors_are_not_retried(
    sqlite_engines: tuple[Engine, Engine], sql: str
) -> None:
    """Errors whose code is not busy/locked/duplicate are raised after one attempt, even when
    their text says "locked" or "unique"."""
    _, engine = sqlite_engines
    attempts = _Attempts()

    def run(_n: int) -> None:
        with engine.begin() as conn:
            conn.execute(text(sql))

    with pytest.raises((OperationalError, IntegrityError)) as raised:
        attempts.run(run)
    assert len(attempts.errors) == 1
    assert "locked" in str(raised.value) or "unique" in str(raised.value)


def test_sqlite_duplicate_key_is_retryable(sqlite_engines: tuple[Engine, Engine]) -> None:
    """A primary-key clash (a concurrent twin inserted first) counts as retryable."""
    _, engine = sqlite_engines
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO item (id, amount) VALUES (3, 1)"))
    with pytest.raises(IntegrityError) as raised, engine.begin() as conn:
        conn.execute(text("INSERT INTO item (id, amount) VALUES (3, 1)"))
    assert is_retryable(raised.value)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """A PostgreSQL engine on the test's private schema, with the ``item`` table."""
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text(_TABLE))
        conn.execute(text("INSERT INTO item (id, amount) VALUES (1, 1)"))
    yield engine
    engine.dispose()


def test_postgresql_serialization_failure_is_retried(pg_engine: Engine) -> None:
    """Two SERIALIZABLE transactions that each read the table and then insert (write skew):
    the second to commit fails with SQLSTATE 40001 and succeeds when run again."""
    serializable = pg_engine.execution_options(isolation_level="SERIALIZABLE")

    def insert_after_count(n: int) -> int:
        with serializable.begin() as mine:
            count = mine.execute(text("SELECT count(*) FROM item")).scalar_one()
            if n == 1:  # a concurrent transaction reads, inserts and commits first
                with serializable.begin() as other:
                    other.execute(text("SELECT count(*) FROM item")).scalar_one()
                    other.execute(text("INSERT INTO item (id, amount) VALUES (100, 1)"))
            mine.execute(text("INSERT INTO item (id, amount) VALUES (:id, 1)"),
                         {"id": 200 + n})
        return int(count)

    attempts = _Attempts()
    assert attempts.run(insert_after_count) == 2  # the retry sees the other's row
    first = attempts.errors[0]
    assert isinstance(first, OperationalError)
    assert getattr(first.orig, "sqlstate", None) == "40001"


def test_postgresql_lock_not_available_is_retried(pg_engine: Engine) -> None:
    """SELECT ... FOR UPDATE NOWAIT on a row another transaction holds (SQLSTATE 55P03) runs
    again and succeeds once that transaction ends."""
    holder = pg_engine.connect()
    holder.begin()
    holder.execute(text("SELECT * FROM item WHERE id = 1 FOR UPDATE"))

    def lock_row() -> None:
        with pg_engine.begin() as conn:
            conn.execute(text("SELECT * FROM item WHERE id = 1 FOR UPDATE NOWAIT"))

    first = _first_error_then_success(holder.commit, lock_row, holder.close)
    assert getattr(first.orig, "sqlstate", None) == "55P03"


def test_postgresql_other_errors_are_not_retried(pg_engine: Engine) -> None:
    """A CHECK violation (SQLSTATE 23514) is raised after one attempt although the
    constraint's name says "unique"."""
    attempts = _Attempts()

    def insert(_n: int) -> None:
        with pg_engine.begin() as conn:
            conn.execute(text("INSERT INTO item (id, amount) VALUES (2, -1)"))

    with pytest.raises(IntegrityError, match="amount_unique_positive"):
        attempts.run(insert)
    assert len(attempts.errors) == 1
    error = attempts.errors[0]
    assert error is not None and getattr(error.orig, "sqlstate", None) == "23514"
