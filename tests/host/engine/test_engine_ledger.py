"""The ledger on its own: balanced posting, mirrors, append-only triggers, verify catching
tampered rows and broken hash chains, the CLI entry point verify_database."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from host.config import load_config
from host.ledger import (
    ChainKey,
    Ledger,
    LedgerError,
    create_schema,
    drop_append_only_triggers,
    ensure_key,
    key_path,
    normalise_url,
    open_engine,
    schema_transaction,
)
from host.service import HostService
from host.store_verify import verify_host_database as verify_database


@pytest.fixture
def key(db: str) -> ChainKey:
    """The chain key of the test database (generated beside it)."""
    return ensure_key(key_path(db))[0]


@pytest.fixture
def engine(db: str, key: ChainKey) -> Iterator[Engine]:
    """A ledger database with one sale, one refund drawn on it and a reversal of the refund."""
    eng = open_engine(db)
    with schema_transaction(eng) as conn:
        create_schema(conn, key)
    book = Ledger(key)
    with eng.begin() as conn:
        sale = book.post_group(conn, [("scheme_settlement", "D", 1000), ("merchant_payable:M", "C",
                                                                        1000)],
                               currency="CNY", at_ms=1, reference="txn:1", kind="sale")
        refund = book.post_group(conn, [("merchant_payable:M", "D", 400),
                                        ("scheme_settlement", "C", 400)],
                                 currency="CNY", at_ms=2, reference="txn:2", kind="refund",
                                 parent_id=sale)
        book.reverse(conn, refund, at_ms=3, reference="txn:2")
    yield eng
    eng.dispose()


def test_clean_ledger_verifies(engine: Engine, db: str) -> None:
    """A consistent ledger reports ok with counts."""
    report = verify_database(db)
    assert report["ok"] and report["checked"]["groups"] == 3 and report["checked"]["entries"] == 6


def test_posting_rules(engine: Engine, key: ChainKey) -> None:
    """Unbalanced, empty and non-positive postings are refused; a group reverses only once."""
    book = Ledger(key)
    with engine.begin() as conn:
        for entries in ([("a", "D", 1), ("b", "C", 2)], [], [("a", "D", 0), ("b", "C", 0)],
                        [("a", "X", 1), ("b", "C", 1)]):
            with pytest.raises(LedgerError):
                book.post_group(conn, entries, currency="CNY", at_ms=1, reference="r")
        with pytest.raises(LedgerError, match="already reversed"):
            book.reverse(conn, 2, at_ms=4, reference="again")


@pytest.mark.parametrize("statement", [
    "UPDATE ledger_entry SET amount_minor = 1",
    "DELETE FROM ledger_entry",
    "UPDATE posting_group SET memo = 'x'",
    "DELETE FROM posting_group WHERE id = 3",
])
def test_append_only_triggers(engine: Engine, statement: str) -> None:
    """UPDATE and DELETE on entries and groups are refused by triggers."""
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text(statement))


@pytest.mark.parametrize(("statement", "invariants"), [
    ("UPDATE ledger_entry SET amount_minor = 999 WHERE id = 1", {"I1", "I2", "CHAIN"}),
    ("UPDATE posting_group SET memo = 'forged' WHERE id = 1", {"CHAIN"}),
    ("DELETE FROM ledger_entry WHERE id = 6", {"I1", "I2", "I7", "CHAIN"}),
    ("UPDATE ledger_entry SET account = 'bank' WHERE id = 5", {"I7", "CHAIN"}),
    ("INSERT INTO ledger_entry (group_id, account, side, amount_minor, currency) "
     "VALUES (1, 'bank', 'D', 5, 'CNY')", {"I1", "I2", "CHAIN"}),
    ("UPDATE posting_group SET parent_id = 2 WHERE id = 1", {"I9", "CHAIN"}),
])
def test_verify_catches_tampering(engine: Engine, db: str, statement: str,
                                  invariants: set[str]) -> None:
    """A hand-edited row (triggers dropped) is reported under the invariants it breaks."""
    with engine.begin() as conn:
        drop_append_only_triggers(conn)
        conn.execute(text(statement))
    report = verify_database(db)
    assert not report["ok"]
    found = {v["invariant"] for v in report["violations"]}
    assert invariants <= found, report["violations"]
    assert all(v["detail"] for v in report["violations"])


def test_verify_reports_the_group(engine: Engine, db: str) -> None:
    """The violation text names the altered group so a person can find the row."""
    with engine.begin() as conn:
        drop_append_only_triggers(conn)
        conn.execute(text("UPDATE posting_group SET memo = 'forged' WHERE id = 2"))
    details = [v["detail"] for v in verify_database(db)["violations"]]
    assert any("group 2" in d and "altered" in d for d in details)


def test_url_normalisation() -> None:
    """Plain paths become SQLite URLs; postgresql:// gets the psycopg 3 driver."""
    assert normalise_url("/tmp/x.db") == "sqlite:////tmp/x.db"
    assert normalise_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_url("sqlite:///rel.db") == "sqlite:///rel.db"


def test_sqlite_settings(engine: Engine) -> None:
    """SQLite runs in WAL with synchronous=FULL and a busy timeout."""
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


@pytest.mark.parametrize(("mode", "pragma"), [("FULL", 2), ("NORMAL", 1)])
def test_service_takes_sqlite_synchronous_from_config(
        make_service: Callable[..., HostService], mode: str, pragma: int) -> None:
    """[host] sqlite_synchronous reaches the service's SQLite connections (FULL by default)."""
    config = load_config()
    assert config.host.sqlite_synchronous == "FULL"
    service = make_service(config.model_copy(update={
        "host": config.host.model_copy(update={"sqlite_synchronous": mode})}))
    with service.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == pragma
