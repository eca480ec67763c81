"""Tamper evidence of the settlement-timing history on SQLite and PostgreSQL: settled items,
settlements, refund postings and notifications refuse edits beyond their documented moves, and
an edit made with the triggers dropped is named by ``ledger verify``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from host.clock import ManualClock
from host.config import load_config
from host.ledger import ChainKey, key_path, open_engine, read_key, verify_connection
from host.ledger.chain import KEY_FILE_ENV
from host.service import HostService
from host.store_verify import store_checks, verify_host_database
from tests.host.engine.conftest import START, Term

SH = ZoneInfo("Asia/Shanghai")
TABLES = ("settled_item", "settlement", "refund_posting", "notification")


def _drop_triggers(conn: Connection) -> None:
    """Drop every trigger on the settlement tables, as an attacker with file access would."""
    for table in TABLES:
        if conn.dialect.name == "sqlite":
            names = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                      "AND tbl_name = :t"), {"t": table}).scalars().all()
            for name in names:
                conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            names = conn.execute(text("SELECT tgname FROM pg_trigger WHERE tgrelid = "
                                      "CAST(:t AS regclass) AND NOT tgisinternal"),
                                 {"t": table}).scalars().all()
            for name in names:
                conn.execute(text(f"DROP TRIGGER {name} ON {table}"))


@dataclass
class Ledger:
    """A database holding the book of :func:`write_book`, with its chain key and the ids and
    RRNs of the book's transactions (``id_A``, ``rrn_R``...)."""

    url: str
    key: ChainKey
    ids: dict[str, int]
    rrns: dict[str, str]


def write_book(service: HostService, url: str, clock: ManualClock) -> Ledger:
    """Write the book on ``service``'s database (``url``) through its terminal interface.

    Monday: sales A 100.00, B 50.00, C 30.00 and refund R 20.00 of A; cut-off settles them
    (settlement 1), then C is reversed late. Tuesday's cut-off settles C's adjustment
    (settlement 2, C's item marked adjusted). Both are funded; R is posted. Checks that verify
    is clean and every table holds rows in their final states."""
    term = Term(service, clock)
    rrns = {"A": term.approved_sale(10_000), "B": term.approved_sale(5_000)}
    c_fields = term.sale(3_000)
    rrns["C"] = term.send(c_fields).response.rrn  # type: ignore[union-attr]
    refund = term.send(term.refund(2_000, rrns["A"])).response
    assert refund is not None and refund.response_code == "00"
    rrns["R"] = refund.rrn  # type: ignore[attr-defined]
    clock.set(datetime(2026, 3, 2, 23, 30, tzinfo=SH))  # Monday's cut-off
    assert term.send(term.reversal(c_fields)).response.response_code == "00"  # type: ignore[union-attr]
    clock.set(datetime(2026, 3, 16, 12, 0, tzinfo=SH))  # later cut-offs, fundings, posting
    with service.engine.connect() as conn:
        ids = {k: int(conn.execute(text("SELECT id FROM txn WHERE rrn = :r"), {"r": r})
                      .scalar_one()) for k, r in rrns.items()}
        states = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                  for t in TABLES}
        funded = conn.execute(text("SELECT status FROM settlement ORDER BY id")).scalars().all()
        posted = conn.execute(text("SELECT state FROM refund_posting")).scalars().all()
        adjusted = conn.execute(text("SELECT txn_id FROM settled_item WHERE adjusted = TRUE")
                                ).scalars().all()
        conn.rollback()
    assert states == {"settled_item": 4, "settlement": 2, "refund_posting": 1,
                      "notification": 4}
    assert funded == ["funded", "funded"] and posted == ["posted"] and adjusted == [ids["C"]]
    assert verify_host_database(url)["violations"] == []
    return Ledger(url, read_key(key_path(url)), {f"id_{k}": v for k, v in ids.items()},
                  {f"rrn_{k}": v for k, v in rrns.items()})


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Ledger]:
    """The book written once per module and backend; each test edits it in a transaction of
    its own that is rolled back (:func:`book`), so every test starts from the same rows."""
    with pytest.MonkeyPatch.context() as env:
        if request.param == "sqlite":
            env.delenv(KEY_FILE_ENV, raising=False)  # the key beside the file
            url = str(tmp_path_factory.mktemp("tamper") / "host.db")
        else:
            url = request.getfixturevalue("module_pg_url")
        clock = ManualClock(START)
        service = HostService(load_config(), url, clock)
        try:
            yield write_book(service, url, clock)
        finally:
            service.close()


@dataclass
class Book:
    """The book of :func:`write_book` seen through one connection inside a transaction that
    the test's end rolls back: edits and ``verify`` see each other, later tests see neither."""

    conn: Connection
    key: ChainKey
    ids: dict[str, int]
    rrns: dict[str, str]

    def violations(self) -> list[tuple[str, str]]:
        """(invariant, detail) of every violation verify reports: the checks of
        ``poslab-host ledger verify``, on this connection."""
        report = verify_connection(self.conn, self.key, store_checks(self.key))
        return [(v["invariant"], v["detail"]) for v in report["violations"]]

    def tamper(self, *statements: str | Callable[[Connection], object]) -> None:
        """Drop the triggers, then run ``statements``, as one step."""
        with self.conn.begin_nested():
            _drop_triggers(self.conn)
            for sql in statements:
                if isinstance(sql, str):
                    self.conn.execute(text(sql.format(**self.ids, **self.rrns)))
                else:
                    sql(self.conn)

    def run(self, sql: str) -> None:
        """Run one statement with the triggers in place (a refused one changes nothing)."""
        with self.conn.begin_nested():
            self.conn.execute(text(sql.format(**self.ids, **self.rrns)))


@pytest.fixture(scope="module")
def ledger_engine(ledger: Ledger) -> Iterator[Engine]:
    """One engine on the module's ledger: each test takes a connection from its pool."""
    engine = open_engine(ledger.url)
    yield engine
    engine.dispose()


@pytest.fixture
def book(ledger: Ledger, ledger_engine: Engine) -> Iterator[Book]:
    """See :class:`Book`; verify is clean when the test starts."""
    with ledger_engine.connect() as conn:
        conn.begin()
        out = Book(conn, ledger.key, ledger.ids, ledger.rrns)
        assert out.violations() == []
        yield out
        conn.rollback()


HISTORY_EDITS = (
    "UPDATE settled_item SET amount_minor = 1 WHERE txn_id = {id_A}",
    "UPDATE settled_item SET batch = 'TERM0001/9' WHERE txn_id = {id_A}",
    "UPDATE settled_item SET adjusted = FALSE WHERE txn_id = {id_C}",
    "DELETE FROM settled_item WHERE txn_id = {id_B}",
    "UPDATE settlement SET figures = '{{}}' WHERE id = 1",
    "UPDATE settlement SET funding_date = business_date WHERE id = 1",
    "UPDATE settlement SET status = 'closed' WHERE id = 1",
    "UPDATE settlement SET ledger_group = '1' WHERE id = 1",
    "UPDATE settlement SET mac = NULL WHERE id = 1",
    "DELETE FROM settlement WHERE id = 2",
    "UPDATE refund_posting SET amount_minor = 1",
    "UPDATE refund_posting SET posting_date = settlement_date",
    "UPDATE refund_posting SET state = 'settled', posted_at = NULL",
    "DELETE FROM refund_posting",
    "UPDATE notification SET amount_minor = 1",
    "UPDATE notification SET detail = '{{}}'",
    "UPDATE notification SET attempts = attempts + 2",
    "DELETE FROM notification",
)


def test_settlement_history_refuses_edits(book: Book) -> None:
    """Each edit outside a table's documented moves is refused by a trigger naming the table."""
    # One book for all the edits: a refused edit changes nothing, and an accepted one is a
    # failure named below whatever it did to the rows.
    wrong = []
    for statement in HISTORY_EDITS:
        table = statement.split()[2 if statement.startswith("DELETE") else 1]
        try:
            book.run(statement)
        except DBAPIError as exc:
            if f"history table {table}" not in str(exc):
                wrong.append(f"{statement}: {exc}")
        else:
            wrong.append(f"{statement}: accepted")
    assert wrong == [], "\n".join(wrong)


def test_settlement_history_allows_its_documented_moves(book: Book) -> None:
    """An item may become adjusted once; a notification is written to file once, counts its
    attempts one by one and is delivered once; the reverse moves are refused."""
    book.run("UPDATE settled_item SET adjusted = TRUE WHERE txn_id = {id_B}")
    book.run("UPDATE notification SET file_written = TRUE, attempts = attempts + 1, "
             "last_error = 'HTTP 500'")
    book.run("UPDATE notification SET attempts = attempts + 1, last_error = NULL, "
             "delivered_at = CURRENT_TIMESTAMP")
    for refused in ("UPDATE settled_item SET adjusted = FALSE WHERE txn_id = {id_B}",
                    "UPDATE notification SET file_written = FALSE",
                    "UPDATE notification SET delivered_at = NULL",
                    "UPDATE notification SET attempts = 0"):
        with pytest.raises(DBAPIError, match="history table .*UPDATE refused"):
            book.run(refused)


def _figures(conn: Connection, **change: int) -> None:
    """Rewrite settlement 1's figures consistently (net follows), as a careful attacker would."""
    fig = json.loads(conn.execute(text("SELECT CAST(figures AS TEXT) FROM settlement "
                                       "WHERE id = 1")).scalar_one())
    fig.update(change)
    fig["net_minor"] = (fig["sales_minor"] - fig["refunds_minor"] + fig["adjustments_minor"]
                        - fig["fees_minor"])
    conn.execute(text("UPDATE settlement SET figures = :f WHERE id = 1"), {"f": json.dumps(fig)})


TAMPERING: list[tuple[str, list[str | Callable[[Connection], object]], str, str]] = [
    ("item amount", ["UPDATE settled_item SET amount_minor = 1 WHERE txn_id = {id_A}"],
     "SETTLED", "settled item of txn {id_A} "),
    ("item deleted", ["DELETE FROM settled_item WHERE txn_id = {id_B}"],
     "SETTLEMENT", "settlement 1 "),
    ("item forged", ["INSERT INTO settled_item (txn_id, merchant_id, kind, amount_minor, "
                     "currency, batch, adjusted) VALUES (999, 'MERCHANT0000001', 'sale', 100, "
                     "'CNY', 'TERM0001/1', FALSE)"],
     "SETTLED", "settled item of txn 999 "),
    ("item un-adjusted", ["UPDATE settled_item SET adjusted = FALSE WHERE txn_id = {id_C}"],
     "SETTLEMENT", "merchant MERCHANT0000001 CNY"),
    ("item falsely adjusted", ["UPDATE settled_item SET adjusted = TRUE WHERE txn_id = {id_A}"],
     "SETTLED", "settled item of txn {id_A} "),
    ("settlement fees", [lambda conn: _figures(conn, fees_minor=0)],
     "SETTLEMENT", "settlement 1 "),
    ("settlement sales", [lambda conn: _figures(conn, sales_minor=1)],
     "SETTLEMENT", "settlement 1 "),
    ("settlement funding date", ["UPDATE settlement SET funding_date = business_date "
                                 "WHERE id = 1"], "SETTLEMENT", "settlement 1 "),
    ("settlement un-funded", ["UPDATE settlement SET status = 'closed', funded_at = NULL, "
                              "ledger_group = NULL, mac = mac WHERE id = 1"],
     "SETTLEMENT", "settlement 1 "),
    ("settlement deleted", ["DELETE FROM settlement WHERE id = 1"],
     "SETTLEMENT", "settlement:1 "),
    ("settlement unsealed", ["UPDATE settlement SET mac = NULL WHERE id = 2"],
     "SETTLEMENT", "settlement 2 "),
    ("posting amount", ["UPDATE refund_posting SET amount_minor = 1"],
     "POSTING", "refund posting {rrn_R} "),
    ("posting date", ["UPDATE refund_posting SET posting_date = settlement_date"],
     "POSTING", "refund posting {rrn_R} "),
    ("posting rewound", ["UPDATE refund_posting SET state = 'settled', posted_at = NULL"],
     "NOTICE", "refund posting {rrn_R} "),
    ("posting deleted", ["DELETE FROM refund_posting"], "POSTING", "settled refund {rrn_R} "),
    ("notice amount", ["UPDATE notification SET amount_minor = 1 "
                       "WHERE event = 'refund_approved'"], "NOTICE", "refund_approved {rrn_R})"),
    ("notice of posting deleted", ["DELETE FROM notification WHERE event = 'refund_posted'"],
     "NOTICE", "refund posting {rrn_R} "),
    ("notice of funding deleted", ["DELETE FROM notification WHERE event = 'merchant_funded' "
                                   "AND reference = 'settlement:2'"],
     "NOTICE", "settlement 2 "),
    ("notice of approval deleted", ["DELETE FROM notification WHERE event = 'refund_approved'"],
     "NOTICE", "approved refund {rrn_R} "),
]


@pytest.mark.parametrize(("edit", "invariant", "names"),
                         [pytest.param(t[1], t[2], t[3], id=t[0]) for t in TAMPERING])
def test_settlement_tampering_is_named_by_verify(
        book: Book, edit: list[str | Callable[[Connection], object]], invariant: str,
        names: str) -> None:
    """An edit made with the triggers dropped is reported under its invariant, naming the row."""
    book.tamper(*edit)
    found = book.violations()
    want = names.format(**book.ids, **book.rrns)
    assert any(inv == invariant and want in detail for inv, detail in found), found


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database of each backend."""
    if request.param == "sqlite":
        monkeypatch.delenv(KEY_FILE_ENV, raising=False)  # the key beside the file
        return str(request.getfixturevalue("db"))
    return str(request.getfixturevalue("pg_url"))


def test_settlements_written_before_their_macs_are_sealed_on_upgrade(
        make_service: Callable[..., HostService], url: str, clock: ManualClock) -> None:
    """A database whose settlement and posting rows predate their MAC column gets the column
    at start, its rows sealed once, and verifies clean; later edits are caught again."""
    service = make_service(db_url=url)
    write_book(service, url, clock)
    with service.engine.begin() as conn:
        _drop_triggers(conn)
        for table in ("settlement", "refund_posting"):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN mac"))
    service.close()
    service = make_service(db_url=url)
    assert verify_host_database(url)["violations"] == []
    with service.engine.begin() as conn:
        _drop_triggers(conn)
        conn.execute(text("UPDATE refund_posting SET posting_date = settlement_date"))
    assert [v["invariant"] for v in verify_host_database(url)["violations"]] == ["POSTING"]


def test_an_older_databases_history_triggers_give_way_to_this_versions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A history trigger an earlier version left in an SQLite database (here one that lets
    audit events change) is replaced by this version's rule when a host opens the database."""
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    db = tmp_path / "host.db"
    clock = ManualClock(START)
    service = HostService(load_config(), str(db), clock)
    Term(service, clock).approved_sale(1_000)
    service.close()
    edit = "UPDATE event SET kind = 'edited'"
    with sqlite3.connect(db) as old:  # the rule as an older version might have written it
        old.execute("DROP TRIGGER event_no_update")
        old.execute("CREATE TRIGGER event_no_update BEFORE UPDATE ON event WHEN 0 "
                    "BEGIN SELECT 1; END")
        old.execute("SAVEPOINT probe")
        assert old.execute(edit).rowcount > 0  # the old rule lets it through
        old.execute("ROLLBACK TO probe")
    HostService(load_config(), str(db), clock).close()
    with sqlite3.connect(db) as now, pytest.raises(sqlite3.DatabaseError,
                                                   match="history table event"):
        now.execute(edit)
