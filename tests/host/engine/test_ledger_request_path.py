"""The ledger's request-path shortcuts keep its guarantees: the in-memory chain-head hint never
forks the chain (other writers and rollbacks only make it miss), and host.ledger.prepared's
fast path (SQLite and PostgreSQL) behaves like Connection.execute (rows, counts, errors, new
keys) and steps aside for cursor listeners and connections outside a transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    bindparam,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from host.ledger import (
    ChainKey,
    Ledger,
    create_schema,
    drop_append_only_triggers,
    ensure_key,
    key_path,
    open_engine,
    schema_transaction,
)
from host.ledger.prepared import Prepared
from host.ledger.schema import request_log
from host.store import event as event_table
from host.store import metadata as store_metadata
from host.store_verify import verify_host_database as verify_database

SALE = [("scheme_settlement", "D", 100), ("merchant_payable:M", "C", 100)]
INSERT = Prepared(insert(request_log))
BY_KEY = Prepared(select(request_log).where(request_log.c.key == bindparam("k")))
TOUCH = Prepared(update(request_log).where(request_log.c.key == bindparam("k")))
ALL_KEYS = Prepared(select(request_log.c.key).where(request_log.c.at_ms > 0)
                    .order_by(request_log.c.key))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    """A fresh database of each backend the fast path serves (sqlite3, psycopg)."""
    return str(request.getfixturevalue("db" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
def key(url: str) -> ChainKey:
    """The chain key of the test database (generated in its default place)."""
    return ensure_key(key_path(url))[0]


@pytest.fixture
def engine(url: str, key: ChainKey) -> Iterator[Engine]:
    """An empty ledger database (request_log without its append-only triggers: the fast-path
    tests below use it as a plain table and update it)."""
    eng = open_engine(url)
    with schema_transaction(eng) as conn:
        create_schema(conn, key)
        drop_append_only_triggers(conn, ["request_log"])
    yield eng
    eng.dispose()


def _row(key: str, at_ms: int = 1) -> dict[str, object]:
    return {"key": key, "fingerprint": "f", "result": "{}", "at_ms": at_ms, "mac": "m"}


def test_rows_counts_and_scalars_match_the_plain_path(engine: Engine) -> None:
    """Fast and plain runs return the same rows, attributes, rowcounts and scalars."""
    with engine.begin() as conn:
        INSERT.run_many(conn, [_row("a"), _row("b")])
        fast = BY_KEY.run(conn, {"k": "a"}).first()
        plain = conn.execute(BY_KEY.stmt, {"k": "a"}).first()
        assert fast is not None and plain is not None
        assert type(fast) is not type(plain)  # the fast path really ran
        assert tuple(fast) == tuple(plain) and fast.key == "a" and fast._mapping["at_ms"] == 1
        assert TOUCH.run(conn, {"k": "b", "at_ms": 5}).rowcount == 1
        assert TOUCH.run(conn, {"k": "zz", "at_ms": 5}).rowcount == 0
        assert ALL_KEYS.run(conn).scalars().all() == ["a", "b"]
        assert BY_KEY.run(conn, {"k": "missing"}).first() is None
    with engine.connect() as conn:  # outside a transaction: the plain path, same answer
        row = BY_KEY.run(conn, {"k": "b"}).first()
        assert row is not None and row.at_ms == 5
        conn.rollback()


def test_inserted_primary_keys_are_the_new_rows_keys(engine: Engine) -> None:
    """An INSERT that leaves the key to the database reports the key it got (lastrowid on
    SQLite, the RETURNING row on PostgreSQL), as execute does."""
    add = Prepared(insert(event_table))
    with schema_transaction(engine) as conn:
        store_metadata.create_all(conn)
    with engine.begin() as conn:
        row = {"txn_id": None, "at_ms": 1, "kind": "k", "detail": "{}", "mac": "m"}
        keys = [add.run(conn, row).inserted_primary_key[0] for _ in range(3)]
        plain = conn.execute(add.stmt, row).inserted_primary_key[0]
        stored = conn.execute(select(event_table.c.id).order_by(event_table.c.id)).scalars()
        assert keys + [plain] == list(stored) and len(set(keys)) == 3


def test_a_duplicate_key_raises_sqlalchemys_integrity_error(engine: Engine) -> None:
    """A constraint violation on the fast path is sqlalchemy.exc.IntegrityError, as execute
    raises it (callers retry on it)."""
    with engine.begin() as conn:
        INSERT.run(conn, _row("a"))
        with pytest.raises(IntegrityError):
            INSERT.run(conn, _row("a"))


class _Shouted(TypeDecorator[str]):
    """Text stored upper-cased: a bind processor whose effect shows in the stored row."""

    impl = String(10)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else value.upper()


def test_bind_processing_and_name_order_match_execute(engine: Engine) -> None:
    """Columns whose type processes the value (DateTime, a TypeDecorator) store on the fast
    path what execute stores, and unprocessed columns beside them are left alone, whichever
    order the caller names the values in."""
    stamped = Table("stamped", MetaData(), Column("id", Integer, primary_key=True),
                    Column("name", String(10)), Column("at", DateTime), Column("n", Integer),
                    Column("loud", _Shouted), Column("note", String(10)))
    add = Prepared(insert(stamped))
    at = datetime(2026, 3, 2, 10, 0, 5, 123000)
    with schema_transaction(engine) as conn:
        stamped.create(conn)

    def row(i: int) -> dict[str, object]:
        return {"id": i, "name": "a", "at": at, "n": 7, "loud": "quiet", "note": "x"}

    with engine.begin() as conn:
        add.run(conn, row(1))
        add.run(conn, dict(reversed(row(2).items())))  # the same names, reordered
        add.later(conn, row(3))
        conn.execute(add.stmt, row(4))
    with engine.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT id, name, CAST(at AS VARCHAR(40)), n, loud, note FROM stamped ORDER BY id"
        ).all()
    assert [r[0] for r in stored] == [1, 2, 3, 4]
    assert {tuple(r[1:]) for r in stored} == {tuple(stored[3][1:])}  # as execute stored it
    assert tuple(stored[0][3:]) == (7, "QUIET", "x")


def test_cursor_listeners_see_every_statement(engine: Engine) -> None:
    """With a before_cursor_execute listener installed every statement goes through it."""
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: seen.append(statement.split()[0]))
    with engine.begin() as conn:
        INSERT.run(conn, _row("a"))
        BY_KEY.run(conn, {"k": "a"}).first()
    assert seen.count("INSERT") == 1 and seen.count("SELECT") == 1


def _post(engine: Engine, book: Ledger, ref: str) -> int:
    with engine.begin() as conn:
        return book.post_group(conn, SALE, currency="CNY", at_ms=1, reference=ref)


def test_two_ledgers_interleaving_on_one_database_keep_one_chain(engine: Engine, url: str,
                                                                 key: ChainKey) -> None:
    """Two Ledger instances (two services) alternate: ids run 1..6 and the chain verifies."""
    first, second = Ledger(key), Ledger(key)
    ids = [_post(engine, book, f"r{i}") for i, book in enumerate([first, second] * 3)]
    assert ids == [1, 2, 3, 4, 5, 6]
    assert verify_database(url)["ok"]


def test_a_rolled_back_posting_leaves_no_gap(engine: Engine, url: str, key: ChainKey) -> None:
    """A posting whose transaction rolls back does not advance the chain for the next one."""
    book = Ledger(key)
    _post(engine, book, "kept")
    with engine.connect() as conn, conn.begin() as txn:
        book.post_group(conn, SALE, currency="CNY", at_ms=1, reference="rolled back")
        txn.rollback()
    assert _post(engine, book, "next") == 2
    assert verify_database(url)["ok"]


def test_a_rolled_back_savepoint_leaves_no_gap(engine: Engine, url: str, key: ChainKey) -> None:
    """Inside one transaction, a posting in a rolled-back savepoint is not built upon."""
    book = Ledger(key)
    with engine.begin() as conn:
        book.post_group(conn, SALE, currency="CNY", at_ms=1, reference="a")
        with conn.begin_nested() as sp:
            book.post_group(conn, SALE, currency="CNY", at_ms=1, reference="gone")
            sp.rollback()
        assert book.post_group(conn, SALE, currency="CNY", at_ms=1, reference="b") == 2
    assert verify_database(url)["ok"]


def _head_row(engine: Engine) -> tuple[int, int]:
    from host.ledger.schema import ledger_head

    with engine.connect() as conn:
        row = conn.execute(select(ledger_head.c.last_id, ledger_head.c.entries)).one()
        conn.rollback()
    return int(row.last_id), int(row.entries)


def test_one_transaction_writes_the_head_twice_on_sqlite(engine: Engine, url: str,
                                                         key: ChainKey) -> None:
    """Three postings in one SQLite transaction write the head row twice, at the first posting
    and before the commit (PostgreSQL: once per posting, its row lock orders writers); the
    committed head is the chain's end."""
    book = Ledger(key)
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_a: seen.append(sql))
    with engine.begin() as conn:
        for ref in ("a", "b", "c"):
            book.post_group(conn, SALE, currency="CNY", at_ms=1, reference=ref)
    # On PostgreSQL a posting after the first updates the head inside its INSERT's WITH.
    updates = sum("UPDATE ledger_head" in s for s in seen)
    assert updates == (2 if url.startswith("/") or "sqlite" in url else 3)
    assert _head_row(engine) == (3, 6)
    assert verify_database(url)["ok"]


@pytest.mark.parametrize("lost", [[0], [1], [2], [1, 2], [0, 1, 2]])
def test_postings_in_rolled_back_plain_savepoints_never_reach_the_head(
        engine: Engine, url: str, key: ChainKey, lost: list[int]) -> None:
    """As the service's group commit does (plain SQL savepoints, one per request): whichever
    requests' savepoints roll back -- the first, a middle one, the last -- the chain and the
    committed head hold exactly the kept postings, and the next transaction links to them."""
    from host.ledger.prepared import run_plain

    book = Ledger(key)
    with engine.begin() as conn:
        for i in range(3):
            run_plain(conn, "SAVEPOINT poslab_request")
            book.post_group(conn, SALE, currency="CNY", at_ms=1, reference=f"r{i}")
            run_plain(conn, ("ROLLBACK TO SAVEPOINT poslab_request" if i in lost
                             else "RELEASE SAVEPOINT poslab_request"))
            if i in lost:
                run_plain(conn, "RELEASE SAVEPOINT poslab_request")
    kept = 3 - len(lost)
    assert _head_row(engine) == (kept, 2 * kept)
    assert _post(engine, book, "next") == kept + 1
    assert verify_database(url)["ok"]
