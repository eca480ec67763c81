"""Tamper evidence on SQLite and PostgreSQL: someone with write access to the database (triggers
dropped) cannot cut, rewrite, forge or re-hash history without verify naming it; the chain key
stays outside the database; anchors prove the chain was not cut back."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection, select, text

from host.clock import ManualClock
from host.config import load_config
from host.ledger import (
    ChainKey,
    chain_head,
    drop_append_only_triggers,
    key_path,
    read_key,
)
from host.ledger.book import Group, group_hash
from host.ledger.schema import head_mac, ledger_entry, ledger_head, posting_group
from host.service import HostService
from host.store import drop_store_triggers
from host.store_verify import verify_host_database as verify_database
from tests.host.engine.conftest import Term

ATTACKER = ChainKey(b"attacker's own key, not the host" * 2)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    """A fresh database of each backend."""
    return str(request.getfixturevalue("db" if request.param == "sqlite" else "pg_url"))


@dataclass
class Book:
    """A host that booked a sale, a refund on it, and a voided second sale."""

    service: HostService
    url: str
    sale: int
    voided: int

    def verify(self, anchor: object = None) -> set[str]:
        """The invariants verify names (each violation has a detail)."""
        report = verify_database(self.url, anchor=anchor)  # type: ignore[arg-type]
        assert all(v["detail"] for v in report["violations"])
        return {v["invariant"] for v in report["violations"]}

    def tamper(self, *statements: str) -> None:
        """Drop every history trigger, then run ``statements`` in one transaction."""
        with self.service.engine.begin() as conn:
            drop_append_only_triggers(conn)
            drop_store_triggers(conn)
            for sql in statements:
                conn.execute(text(sql))


@pytest.fixture
def book(make_service: Callable[..., HostService], url: str, clock: ManualClock) -> Book:
    """Sale 100.00 with a 20.00 refund, and a 50.00 sale that was voided; verify is clean."""
    service = make_service(db_url=url)
    term = Term(service, clock)
    sale_rrn = term.approved_sale(10_000)
    assert term.send(term.refund(2_000, sale_rrn)).response.response_code == "00"  # type: ignore[union-attr]
    other = term.approved_sale(5_000)
    assert term.send(term.void(other, 5_000)).response.response_code == "00"  # type: ignore[union-attr]
    with service.engine.connect() as conn:
        ids = {r.rrn: int(r.id) for r in conn.execute(text("SELECT id, rrn FROM txn")).all()}
        conn.rollback()
    out = Book(service, url, ids[sale_rrn], ids[other])
    assert out.verify() == set()
    return out


def _head(conn: Connection) -> tuple[int, str, int]:
    row = conn.execute(select(ledger_head)).one()
    return int(row.last_id), row.last_hash, int(row.entries)


def test_deleting_the_last_group_and_rewinding_the_head_is_caught(book: Book) -> None:
    """The newest group deleted and the head wound back to its predecessor: HEAD (its MAC)
    and STATE (the void's group is gone) flag it, and an earlier anchor proves the cut."""
    with book.service.engine.connect() as conn:
        anchor = chain_head(conn)
        last, _, entries = _head(conn)
        prev_hash = conn.execute(select(posting_group.c.hash).where(
            posting_group.c.id == last - 1)).scalar_one()
        legs = len(conn.execute(select(ledger_entry).where(
            ledger_entry.c.group_id == last)).all())
        conn.rollback()
    book.tamper(f"DELETE FROM ledger_entry WHERE group_id = {last}",
                f"DELETE FROM posting_group WHERE id = {last}",
                f"UPDATE ledger_head SET last_id = {last - 1}, last_hash = '{prev_hash}', "
                f"entries = {entries - legs}")
    assert {"HEAD", "STATE"} <= book.verify()
    assert "ANCHOR" in book.verify(anchor)


def _rehash(conn: Connection, key: ChainKey) -> None:
    """Recompute every group's link and hash, and the head, with ``key``."""
    prev, count, last = "0" * 64, 0, 0
    for r in conn.execute(select(posting_group).order_by(posting_group.c.id)).all():
        legs = [(e.account, e.side, int(e.amount_minor)) for e in conn.execute(
            select(ledger_entry).where(ledger_entry.c.group_id == r.id)
            .order_by(ledger_entry.c.id)).all()]
        g = Group(int(r.id), r.kind, r.reference, r.reverses, r.parent_id, r.currency,
                  int(r.amount_minor), int(r.at_ms), r.memo)
        digest = group_hash(key, prev, g, legs)
        conn.execute(posting_group.update().where(posting_group.c.id == r.id)
                     .values(prev_hash=prev, hash=digest))
        prev, count, last = digest, count + len(legs), int(r.id)
    conn.execute(ledger_head.update().values(last_id=last, last_hash=prev, entries=count,
                                             mac=head_mac(key, last, prev, count)))


def test_editing_a_group_and_rehashing_the_chain_is_caught(book: Book) -> None:
    """The sale's group cut to 1.00 (entries and group) and the whole chain re-hashed without
    the host's key: every hash fails under the real key."""
    book.tamper("UPDATE ledger_entry SET amount_minor = 100 WHERE group_id = 1",
                "UPDATE posting_group SET amount_minor = 100 WHERE id = 1")
    with book.service.engine.begin() as conn:
        _rehash(conn, ATTACKER)
    found = book.verify()
    assert {"CHAIN", "HEAD", "STATE"} <= found


def test_appending_a_forged_balanced_group_is_caught(book: Book) -> None:
    """A balanced group appended with a correct-looking link, hash and head (made with a key
    other than the host's) is reported as forged."""
    with book.service.engine.begin() as conn:
        drop_append_only_triggers(conn)
        last, last_hash, entries = _head(conn)
        forged = Group(last + 1, "settlement", "settlement:forged", None, None, "CNY", 99_999,
                       1, "")
        legs = [("merchant_payable:MERCHANT0000001", "D", 99_999), ("bank", "C", 99_999)]
        digest = group_hash(ATTACKER, last_hash, forged, legs)
        conn.execute(posting_group.insert().values(
            id=forged.id, kind=forged.kind, reference=forged.reference, currency="CNY",
            amount_minor=99_999, at_ms=1, memo="", prev_hash=last_hash, hash=digest))
        conn.execute(ledger_entry.insert(), [
            {"group_id": forged.id, "account": a, "side": s, "amount_minor": m,
             "currency": "CNY"} for a, s, m in legs])
        conn.execute(ledger_head.update().values(
            last_id=forged.id, last_hash=digest, entries=entries + 2,
            mac=head_mac(ATTACKER, forged.id, digest, entries + 2)))
    assert {"CHAIN", "HEAD"} <= book.verify()


def test_raising_a_transactions_amount_is_caught(book: Book) -> None:
    """txn.amount_minor raised tenfold: the row's MAC fails and it disagrees with its group."""
    book.tamper(f"UPDATE txn SET amount_minor = 100000 WHERE id = {book.sale}")
    assert {"TXN", "STATE"} <= book.verify()


def test_unvoiding_a_sale_is_caught(book: Book) -> None:
    """A voided sale set back to approved: the ledger says its group was mirrored by a void."""
    book.tamper(f"UPDATE txn SET state = 'approved' WHERE id = {book.voided}")
    report = verify_database(book.url)
    assert any(v["invariant"] == "STATE" and f"txn {book.voided} " in v["detail"]
               and "voided" in v["detail"] for v in report["violations"])


def test_rewriting_a_pan_hash_is_caught(book: Book) -> None:
    """Another card's hash written into a transaction fails the row's MAC."""
    book.tamper(f"UPDATE txn SET pan_hash = '{'ab' * 32}' WHERE id = {book.sale}")
    assert "TXN" in book.verify()


def test_rewriting_a_stored_reply_is_caught(book: Book) -> None:
    """A stored reply edited (an approval turned into a decline) fails its MAC."""
    book.tamper("UPDATE request_log SET result = replace(result, '\"39\":\"00\"', "
                "'\"39\":\"05\"')")
    assert "REQUEST" in book.verify()


def test_deleting_a_transaction_or_an_event_is_caught(book: Book) -> None:
    """A transaction row deleted (with its events) leaves its ledger groups and stored reply."""
    book.tamper(f"DELETE FROM event WHERE txn_id = {book.voided}",
                f"DELETE FROM txn WHERE id = {book.voided}")
    assert {"TXN", "REQUEST"} <= book.verify()


HISTORY_EDITS = (
    "UPDATE txn SET amount_minor = 1",
    "UPDATE txn SET pan_hash = 'x'",
    "UPDATE txn SET rrn = 'X00000000001'",
    "DELETE FROM txn",
    "UPDATE request_log SET result = '{}'",
    "DELETE FROM request_log",
    "UPDATE event SET detail = '{}'",
    "DELETE FROM event",
    "DELETE FROM reversal_mark",
    "UPDATE review_approval SET approver = 'x'",
    "DELETE FROM batch",
)


def test_history_tables_refuse_update_and_delete(book: Book) -> None:
    """Triggers refuse each edit of history; only a transaction's state columns may change."""
    from sqlalchemy.exc import DBAPIError

    with book.service.engine.begin() as conn:  # rows for the tables this book leaves empty
        conn.execute(text("INSERT INTO reversal_mark (merchant_id, terminal_id, stan, "
                          "business_date, at_ms) VALUES ('M', 'T', '000009', '2026-03-02', 1)"))
        conn.execute(text("INSERT INTO review_approval (review_id, approver, note, at_ms) "
                          "VALUES (1, 'a', '', 1)"))
    # One book for all the edits: a refused edit changes nothing, and an accepted one is a
    # failure named below whatever it did to the rows.
    accepted = []
    for statement in HISTORY_EDITS:
        try:
            with book.service.engine.begin() as conn:
                conn.execute(text(statement))
        except DBAPIError as exc:
            assert "history table" in str(exc), (statement, exc)
        else:
            accepted.append(statement)
    assert accepted == [], f"history edits not refused: {accepted}"
    with book.service.engine.begin() as conn:  # the state column stays writable
        conn.execute(text(f"UPDATE txn SET state = state WHERE id = {book.sale}"))


def test_a_ledger_written_with_another_key_fails_clearly(book: Book, tmp_path: Path) -> None:
    """Verify with a different key names the key, not a thousand broken hashes; the host
    refuses to start on it."""
    other = tmp_path / "other.key"
    other.write_text("11" * 32)
    report = verify_database(book.url, read_key(other))
    assert [v["invariant"] for v in report["violations"]] == ["KEY"]
    assert "different chain key" in report["violations"][0]["detail"]
    os.environ["POSLAB_CHAIN_KEY_FILE"] = str(other)
    try:
        with pytest.raises(Exception, match="different chain key"):
            HostService(load_config(), book.url, ManualClock(book.service.clock.now()))
    finally:
        del os.environ["POSLAB_CHAIN_KEY_FILE"]


def test_key_file_generated_beside_the_database(db: str, make_service: Callable[...,
                                                                                 HostService],
                                                caplog: pytest.LogCaptureFixture) -> None:
    """First start writes a 0600 key file beside the SQLite database and logs its path, never
    the key; nothing of it is stored in the database."""
    service = make_service()
    path = key_path(db)
    assert path == Path(db + ".chain-key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert str(path) in caplog.text and secret not in caplog.text
    assert secret not in repr(service.chain_key)
    with service.engine.connect() as conn:
        for table in ("host_meta", "ledger_head"):
            dump = str(conn.execute(text(f"SELECT * FROM {table}")).all())
            assert secret not in dump


def test_a_database_from_before_the_keyed_chain_is_refused(
        db: str, clock: ManualClock, capsys: pytest.CaptureFixture[str]) -> None:
    """An old ledger (head without a MAC) is refused with a message saying why, by the host
    and by ledger verify (one line, exit 2)."""
    from sqlalchemy import create_engine

    from host.cli import main

    old = create_engine(f"sqlite:///{db}")
    with old.begin() as conn:
        conn.execute(text("CREATE TABLE ledger_head (id INTEGER PRIMARY KEY, last_id BIGINT, "
                          "last_hash VARCHAR(64))"))
    old.dispose()
    with pytest.raises(Exception, match="before the keyed hash chain"):
        HostService(load_config(), db, clock)
    assert main(["ledger", "verify", "--db", db]) == 2
    err = capsys.readouterr().err
    assert "before the keyed hash chain" in err and err.count("\n") == 1


def _snapshot(db: str, to: str) -> None:
    import sqlite3

    src, dst = sqlite3.connect(db), sqlite3.connect(to)
    src.backup(dst)
    src.close()
    dst.close()


def test_a_saved_anchor_proves_a_rollback_to_an_old_copy(
        db: str, tmp_path: Path, make_service: Callable[..., HostService], clock: ManualClock,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An old copy of the database put back is self-consistent (verify alone is clean), but
    the anchor from ``ledger anchor`` or the settlement report proves the chain was cut."""
    from host.cli import main

    service = make_service()
    term = Term(service, clock)
    term.approved_sale(1_000)
    old = str(tmp_path / "old.db")
    _snapshot(db, old)
    term.approved_sale(2_000)
    assert main(["ledger", "anchor", "--db", db]) == 0
    anchor = capsys.readouterr().out.strip()
    assert anchor.startswith("poslab-anchor:v1:2:")
    assert main(["report", "settlement", "--db", db]) == 0
    report = tmp_path / "settlement.csv"
    report.write_text(capsys.readouterr().out)
    assert report.read_text().splitlines()[-1] == f"# ledger anchor {anchor}"
    assert main(["ledger", "verify", "--db", db, "--anchor", str(report)]) == 0
    service.close()
    _snapshot(old, db)  # the attacker puts the old copy back
    capsys.readouterr()
    assert main(["ledger", "verify", "--db", db]) == 0
    assert main(["ledger", "verify", "--db", db, "--anchor", anchor]) == 1
    assert "ANCHOR: the anchored group 2 is missing" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--anchor", "poslab-anchor:v1:1:xyz"], "no anchor of the form"),
    (["--key-file", "/nonexistent/chain.key"], "no chain key file"),
])
def test_ledger_verify_bad_anchor_or_key_is_one_line(
        db: str, make_service: Callable[..., HostService], capsys: pytest.CaptureFixture[str],
        argv: list[str], message: str) -> None:
    """A malformed anchor or a missing key file: one line on stderr naming it, exit 2."""
    from host.cli import main

    make_service()
    assert main(["ledger", "verify", "--db", db, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_every_legitimate_state_change_verifies_clean(
        url: str, make_service: Callable[..., HostService], clock: ManualClock) -> None:
    """Sales, refunds, voids, reversals, holds and completions (voided and reversed), refunds
    held for review (approved and rejected): state cross-checks raise nothing; in particular a
    voided completion puts its hold back to authorized, as the ledger says."""
    from tests.host.engine.conftest import config_with

    service = make_service(config_with(refund={"review_amount_minor": 5_000}), db_url=url)
    term = Term(service, clock)
    sale = term.approved_sale(20_000)
    for amount in (1_000, 6_000, 7_000):  # the last two are held for review
        assert term.send(term.refund(amount, sale)).response.response_code == "00"  # type: ignore[union-attr]
    held = service.reviews("pending_review")
    service.approve_review(held[0]["id"], "alice")
    service.reject_review(held[1]["id"], "bob", "no receipt")
    voided = term.approved_sale(3_000)
    void = term.void(voided, 3_000)
    term.send(void)
    term.send(term.reversal(void))  # the void undone: the sale is live again
    reversed_sale = term.sale(4_000)
    term.send(reversed_sale)
    term.send(term.reversal(reversed_sale))
    for undo in ("void", "reversal"):
        hold = term.send(term.auth(5_000)).response
        fields = term.completion(4_000, hold.approval_code, hold.rrn)  # type: ignore[union-attr]
        done = term.send(fields).response
        assert done is not None and done.response_code == "00"
        term.send(term.void(done.rrn, 4_000) if undo == "void"  # type: ignore[attr-defined]
                  else term.reversal(fields))
    report = service.verify()
    assert report["ok"], report["violations"]
    with service.engine.connect() as conn:
        states = [r.state for r in conn.execute(text(
            "SELECT state FROM txn WHERE kind = 'auth' ORDER BY id")).all()]
        conn.rollback()
    assert states == ["authorized", "authorized"]


def test_the_settlement_report_anchors_every_chain(
        db: str, tmp_path: Path, make_service: Callable[..., HostService], clock: ManualClock,
        capsys: pytest.CaptureFixture[str]) -> None:
    """With a partitioned host on the database the report ends with one anchor per chain
    (``main`` first); an old copy put back is caught by the partition's anchor in the
    report, though verify alone and ``main``'s anchor are clean."""
    import tomllib

    from host.cli import main
    from host.config import default_config_text
    from tests.host.engine.conftest import config_with

    make_service()  # the host without a partition: chain main, nothing posted
    merchants = [{**m, "partition": "p1"} for m in tomllib.loads(default_config_text())
                 ["merchants"]]
    service = make_service(config_with(server={"partition": "p1"}, merchants=merchants))
    term = Term(service, clock)
    term.approved_sale(1_000)
    old = str(tmp_path / "old.db")
    _snapshot(db, old)
    term.approved_sale(2_000)
    assert main(["report", "settlement", "--db", db]) == 0
    report = tmp_path / "settlement.csv"
    report.write_text(capsys.readouterr().out)
    anchors = [line for line in report.read_text().splitlines() if line.startswith("# ledger")]
    assert len(anchors) == 2 and anchors[0] == "# ledger anchor poslab-anchor:v1:0:" + "0" * 64
    assert main(["ledger", "verify", "--db", db, "--anchor", str(report)]) == 0
    service.close()
    _snapshot(old, db)  # the attacker puts the old copy back
    capsys.readouterr()
    assert main(["ledger", "verify", "--db", db, "--anchor", anchors[0].split()[-1]]) == 0
    assert main(["ledger", "verify", "--db", db, "--anchor", str(report)]) == 1
    assert "is missing: the chain was cut back" in capsys.readouterr().out
