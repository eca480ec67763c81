"""The ledger's in-memory chain-head hint never forks the chain: other writers on the same
database and rolled-back postings only make the hint miss."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from host.ledger import Ledger, create_schema, open_engine, schema_transaction, verify_database

SALE = [("scheme_settlement", "D", 100), ("merchant_payable:M", "C", 100)]


@pytest.fixture
def engine(db: str) -> Iterator[Engine]:
    """An empty ledger database."""
    eng = open_engine(db)
    with schema_transaction(eng) as conn:
        create_schema(conn)
    yield eng
    eng.dispose()


def _post(engine: Engine, book: Ledger, ref: str) -> int:
    with engine.begin() as conn:
        return book.post_group(conn, SALE, currency="CNY", at_ms=1, reference=ref)


def test_two_ledgers_interleaving_on_one_database_keep_one_chain(engine: Engine, db: str) -> None:
    """Two Ledger instances (two services) alternate: ids run 1..6 and the chain verifies."""
    first, second = Ledger(), Ledger()
    ids = [_post(engine, book, f"r{i}") for i, book in enumerate([first, second] * 3)]
    assert ids == [1, 2, 3, 4, 5, 6]
    assert verify_database(db)["ok"]


def test_a_rolled_back_posting_leaves_no_gap(engine: Engine, db: str) -> None:
    """A posting whose transaction rolls back does not advance the chain for the next one."""
    book = Ledger()
    _post(engine, book, "kept")
    with engine.connect() as conn, conn.begin() as txn:
        book.post_group(conn, SALE, currency="CNY", at_ms=1, reference="rolled back")
        txn.rollback()
    assert _post(engine, book, "next") == 2
    assert verify_database(db)["ok"]


def test_a_rolled_back_savepoint_leaves_no_gap(engine: Engine, db: str) -> None:
    """Inside one transaction, a posting in a rolled-back savepoint is not built upon."""
    book = Ledger()
    with engine.begin() as conn:
        book.post_group(conn, SALE, currency="CNY", at_ms=1, reference="a")
        with conn.begin_nested() as sp:
            book.post_group(conn, SALE, currency="CNY", at_ms=1, reference="gone")
            sp.rollback()
        assert book.post_group(conn, SALE, currency="CNY", at_ms=1, reference="b") == 2
    assert verify_database(db)["ok"]
