"""Writes that wait for the next round trip (host.ledger.pending): on PostgreSQL a request's
INSERTs after its posting reach the server as one statement, before anything else on the
connection and before the COMMIT, in their order; a failing one rolls back its own request
only, inside a group commit, and is answered 96 with nothing of it stored. SQLite runs them at
once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from host.clock import ManualClock
from host.ledger import open_engine, pending
from host.ledger.db_retry import is_retryable
from host.ledger.prepared import Prepared
from host.service import HostService

from .conftest import MID, Term

_META = MetaData()
NOTE = Table("pending_note", _META,
             Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                    autoincrement=True),
             Column("tag", String(16), nullable=False, unique=True),
             Column("kind", String(16)))
NOTE_TAG = Prepared(insert(NOTE))
TAGS = Prepared(select(NOTE.c.tag).where(NOTE.c.id > bindparam("after")).order_by(NOTE.c.id))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    """A fresh database of each backend."""
    return str(request.getfixturevalue("db" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    """An engine on ``url`` with one plain table, ``pending_note``."""
    eng = open_engine(url)
    _META.create_all(eng)
    yield eng
    eng.dispose()


def _raw_count(conn: Any) -> int:
    """Rows of ``pending_note`` as the server has them now (past any queue)."""
    cur = conn.connection.dbapi_connection.cursor()
    try:
        cur.execute("SELECT count(*) FROM pending_note")
        return int(cur.fetchone()[0])
    finally:
        cur.close()


def test_a_queued_insert_is_sent_with_the_next_statement(engine: Engine) -> None:
    """``later`` waits on PostgreSQL (the server has no row yet) and runs at once on SQLite;
    either way the next prepared read sees the row."""
    with engine.begin() as conn:
        NOTE_TAG.later(conn, {"tag": "a"})
        waits = engine.dialect.name == "postgresql"
        assert pending.queued(conn) is waits
        assert _raw_count(conn) == (0 if waits else 1)
        assert TAGS.run(conn, {"after": 0}).scalars().all() == ["a"]
        assert not pending.queued(conn)


def test_sqlalchemy_statements_and_the_commit_send_the_queue_first(engine: Engine) -> None:
    """A plain ``Connection.execute`` sees a queued row, and a transaction committed with rows
    still queued stores them."""
    with engine.begin() as conn:
        NOTE_TAG.later(conn, {"tag": "seen"})
        assert conn.execute(select(func.count()).select_from(NOTE)).scalar_one() == 1
        NOTE_TAG.later(conn, {"tag": "committed"})
    with engine.connect() as conn:
        assert sorted(conn.execute(select(NOTE.c.tag)).scalars()) == ["committed", "seen"]


def test_a_rollback_drops_the_queue(engine: Engine) -> None:
    """Rows queued in a transaction that is rolled back are never written, and the next
    transaction on the same connection starts with an empty queue."""
    with engine.connect() as conn:
        with conn.begin() as txn:
            NOTE_TAG.later(conn, {"tag": "undone"})
            txn.rollback()
        assert not pending.queued(conn)
        with conn.begin():
            NOTE_TAG.later(conn, {"tag": "kept"})
        assert conn.execute(select(NOTE.c.tag)).scalars().all() == ["kept"]


def test_queued_rows_keep_their_order(engine: Engine) -> None:
    """Rows queued one after the other keep their order (their ids ascend), and a row of
    another shape for the same table comes after them, not beside them."""
    with engine.begin() as conn:
        NOTE_TAG.later_many(conn, [{"tag": t} for t in ("r1", "r2", "r3")])
        NOTE_TAG.later(conn, {"tag": "r4", "kind": "other"})  # another column set
        NOTE_TAG.later(conn, {"tag": "r5"})
        assert TAGS.run(conn, {"after": 0}).scalars().all() == ["r1", "r2", "r3", "r4", "r5"]


def test_a_failing_queued_insert_raises_sqlalchemys_error_at_the_flush(engine: Engine) -> None:
    """A duplicate key of a queued row is raised as SQLAlchemy's IntegrityError (a retryable
    one, as the retry decides from the driver's code), by the statement that sends it."""
    with engine.begin() as conn:
        NOTE_TAG.run(conn, {"tag": "twin"})
    with engine.connect() as conn, conn.begin():
        try:
            NOTE_TAG.later(conn, {"tag": "twin"})
        except IntegrityError as exc:  # SQLite: at once
            assert engine.dialect.name == "sqlite"
            err = exc
        else:
            with pytest.raises(IntegrityError) as raised:
                pending.flush(conn)
            err = raised.value
        assert is_retryable(err)
        assert not pending.queued(conn)


# -- the request path ------------------------------------------------------------------------


@pytest.fixture
def on_url(url: str, make_service: Callable[..., HostService]) -> Callable[..., HostService]:
    """Services on ``url``."""
    return lambda **kw: make_service(db_url=url, **kw)


def _refuse_request_key(service: HostService, suffix: str) -> Callable[[], int]:
    """Make the request log refuse, as a unique violation, the key ending in ``suffix``;
    returns how many inserts it refused so far (PostgreSQL; SQLite: 0)."""
    with service.engine.begin() as conn:
        if service.engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_key BEFORE INSERT ON request_log "
                f"WHEN NEW.key LIKE '%{suffix}' BEGIN SELECT RAISE(ABORT, 'twin'); END")
            return lambda: 0
        conn.exec_driver_sql("CREATE SEQUENCE refused")  # not rolled back with the attempts
        conn.exec_driver_sql(
            "CREATE FUNCTION refuse_key() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.key LIKE '%%{suffix}' THEN PERFORM nextval('refused'); "
            "RAISE EXCEPTION 'twin' USING ERRCODE = 'unique_violation'; END IF; "
            "RETURN NEW; END $$")
        conn.exec_driver_sql("CREATE TRIGGER refuse_key BEFORE INSERT ON request_log "
                             "FOR EACH ROW EXECUTE FUNCTION refuse_key()")

    def refused() -> int:
        with service.engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM refused"))
                .scalar_one())
    return refused


def _drop_refusal(service: HostService) -> None:
    with service.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse_key" if service.engine.dialect.name
                             == "sqlite" else "DROP TRIGGER refuse_key ON request_log")


def test_a_request_whose_queued_write_fails_rolls_back_alone_in_its_group(
        on_url: Callable[..., HostService], clock: ManualClock) -> None:
    """The request log insert of the middle request of a group commit fails (a unique
    violation; on PostgreSQL that insert waits for the end of the request and fails there,
    and is retried 8 times): that request is answered 96 and leaves nothing, the others of
    the group are committed and approved, the database verifies, and the same request sent
    again is approved as new."""
    service = on_url()
    term = Term(service, clock)
    term.approved_sale(100)  # the terminal's row and batch exist: the group below only books
    batch = [term.sale(1001), term.sale(1002), term.sale(1003)]
    failing = batch[1]
    refused = _refuse_request_key(service, f"|{failing['11']}|{failing['7']}")
    replies = service.handle_batch(batch)
    codes = [r.response.response_code if r.response is not None else None for r in replies]
    assert codes == ["00", "96", "00"], codes
    if service.engine.dialect.name == "postgresql":
        assert refused() == 8  # the retry ran it again each time: the error was its own
    amounts = sorted(int(t["amount_minor"]) for t in service.transactions())
    assert amounts == [100, 1001, 1003], amounts
    with service.engine.connect() as conn:
        keys = conn.execute(text("SELECT key FROM request_log")).scalars().all()
    assert not [k for k in keys if k.endswith(f"|{failing['11']}|{failing['7']}")]
    assert service.verify()["ok"]
    _drop_refusal(service)
    again = service.handle(failing)
    assert again.response is not None and again.response.response_code == "00"
    assert sorted(int(t["amount_minor"]) for t in service.transactions()) == [
        100, 1001, 1002, 1003]
    assert service.verify()["ok"]


def _sent(service: HostService) -> Iterator[list[str]]:
    """The SQL psycopg sends while the generator is suspended (PostgreSQL only)."""
    seen: list[str] = []
    execute = psycopg.Cursor.execute

    def record(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(" ".join(str(query).split()))
        return execute(self, query, *args, **kwargs)

    psycopg.Cursor.execute = record  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]


def test_a_sale_is_three_round_trips_in_a_group(
        pg_url: str, make_service: Callable[..., HostService], clock: ManualClock) -> None:
    """On PostgreSQL a sale in a group commit sends its savepoint, its first read, and then
    one statement: the chain head's advance, the group, its entries, the transaction row,
    the event and the request log together; nothing else."""
    service = make_service(db_url=pg_url)
    term = Term(service, clock)
    term.approved_sale(100)
    recorder = _sent(service)
    seen = next(recorder)
    replies = service.handle_batch([term.sale(201), term.sale(202)])
    recorder.close()
    assert [r.response.response_code for r in replies if r.response] == ["00", "00"]
    sale = ["SELECT terminal.", "WITH poslab_head AS (UPDATE ledger_head"]
    expected = [";", "SAVEPOINT poslab_request", *sale,  # ";": the pool's ping
                "RELEASE SAVEPOINT poslab_request; SAVEPOINT poslab_request", *sale]
    assert len(seen) == len(expected), seen
    assert all(s.startswith(e) for s, e in zip(seen, expected, strict=True)), seen
    for statement in (seen[3], seen[6]):  # one statement each
        for table in ("posting_group", "ledger_entry", "txn", "event", "request_log"):
            assert f"INSERT INTO {table} " in statement
    assert service.verify()["ok"]


def test_a_posting_whose_chain_head_moved_runs_again_and_is_approved(
        pg_url: str, make_service: Callable[..., HostService], clock: ManualClock) -> None:
    """Two services on one PostgreSQL database take turns: a sale whose head advance waited
    in its request's statement finds the head moved by the other service, writes nothing
    there, and runs again reading the head under lock; both sales are approved, the RRNs
    are new, and the one chain verifies."""
    first = make_service(db_url=pg_url)
    term = Term(first, clock)
    term.approved_sale(100)  # first's chain-head hint is now its own last group
    second = make_service(db_url=pg_url, allow_unknown_terminals=True)
    other = Term(second, clock, tid="TERM0002", mid=MID)
    assert other.approved_sale(200)  # the head moves under first's hint
    recorder = _sent(first)
    seen = next(recorder)
    reply = first.handle_batch([term.sale(300)])[0]
    recorder.close()
    assert reply.response is not None and reply.response.response_code == "00"
    guarded = [s for s in seen if s.startswith("WITH poslab_head AS")]
    locked = [s for s in seen if s.startswith("SELECT ledger_head.") and "FOR UPDATE" in s]
    assert len(guarded) == 1 and len(locked) == 1, seen  # the miss, then the locked read
    amounts = sorted(int(t["amount_minor"]) for t in first.transactions())
    assert amounts == [100, 200, 300], amounts
    assert first.verify()["ok"]


def test_a_queued_write_failing_at_the_commit_commits_nothing(engine: Engine) -> None:
    """A transaction whose queued row is refused when the COMMIT sends it raises the
    driver's error as IntegrityError and stores none of its rows; the connection serves
    the next transaction."""
    with engine.begin() as conn:
        NOTE_TAG.run(conn, {"tag": "twin"})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        NOTE_TAG.run(conn, {"tag": "before"})
        NOTE_TAG.later(conn, {"tag": "twin"})
    with engine.begin() as conn:
        NOTE_TAG.later(conn, {"tag": "after"})
    with engine.connect() as conn:
        assert sorted(conn.execute(select(NOTE.c.tag)).scalars()) == ["after", "twin"]
