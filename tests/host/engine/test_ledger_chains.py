"""Several ledger chains in one database: two writers on PostgreSQL post without waiting for
each other, each chain links only to itself, deleting or altering a chain is named by verify,
a chain refuses to post past its id range and verify names a group beyond it, a database from
before chains opens as the chain ``main``, and each host's event stream publishes its own rows
however the two hosts' commits interleave."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text, update
from twisted.internet.defer import succeed

from host.clock import ManualClock
from host.config import ConfigError, HostConfig, load_config
from host.event_stream import EventBus, NotificationEvent, SettlementEvent, StageEvent
from host.event_tail import EventTail
from host.ledger import chains, drop_append_only_triggers, pending
from host.ledger.chains import SPAN, Chain, ChainFull, head_mac
from host.ledger.schema import GENESIS_HASH, ledger_head, posting_group
from host.service import HostService
from host.settlement.jobs import (
    SETTLEMENT_HISTORY,
    SETTLEMENT_RULES,
    create_desk_schema,
    settlement,
)
from host.settlement.notifications import Outbox
from host.sql_storage import SqlStorage
from host.store import event, txn
from host.store_verify import verify_host_database
from tests.host.engine.conftest import Term, config_with, rc

AT_MS = 1_772_416_800_000


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    """A fresh database of each backend."""
    return str(request.getfixturevalue("db" if request.param == "sqlite" else "pg_url"))


def _partition(name: str | None) -> HostConfig:
    return config_with(server={"partition": name}) if name else load_config()


@pytest.fixture
def open_chain() -> Iterator[Callable[[str, str], SqlStorage]]:
    """``open_chain(url, partition)``: a host's storage writing that chain, closed at the end."""
    made: list[SqlStorage] = []

    def open_(url: str, name: str) -> SqlStorage:
        made.append(SqlStorage.open(url, _partition(name)))
        return made[-1]

    yield open_
    for storage in made:
        storage.close()


def _post(storage: SqlStorage, conn: Connection, tag: str, amount: int = 1_000) -> int:
    """One balanced group, sent to the database at once (its head lock taken)."""
    gid = storage.ledger.post_group(conn, [("cash", "D", amount), (f"sales:{tag}", "C", amount)],
                                    currency="CNY", at_ms=AT_MS, reference=f"test:{tag}",
                                    kind="test")
    pending.flush(conn)
    return gid


def _commit_one(storage: SqlStorage, tag: str) -> int:
    with storage.begin() as conn:
        return _post(storage, conn, tag)


def _links(storage: SqlStorage) -> dict[str, list[tuple[int, str, str]]]:
    """Per chain: ``(id, prev_hash, hash)`` of its groups in id order."""
    out: dict[str, list[tuple[int, str, str]]] = {}
    with storage.engine.connect() as conn:
        for r in conn.execute(select(posting_group.c.chain, posting_group.c.id,
                                     posting_group.c.prev_hash, posting_group.c.hash)
                              .order_by(posting_group.c.id)):
            out.setdefault(r.chain, []).append((int(r.id), r.prev_hash, r.hash))
        conn.rollback()
    return out


def _violations(url: str) -> list[tuple[str, str]]:
    return [(v["invariant"], v["detail"]) for v in verify_host_database(url)["violations"]]


def test_two_chains_post_while_the_other_holds_its_transaction(
        pg_url: str, open_chain: Callable[[str, str], SqlStorage]) -> None:
    """Host b commits while host a's posting transaction is open (a shared head lock would
    make b time out), and each chain's groups link only to the same chain's."""
    a, b = open_chain(pg_url, "a"), open_chain(pg_url, "b")
    with a.begin() as conn_a:
        first_a = _post(a, conn_a, "a1")
        with b.begin() as conn_b:
            conn_b.execute(text("SET LOCAL lock_timeout = '2s'"))
            first_b = _post(b, conn_b, "b1")
            _post(b, conn_b, "b2")  # the one-round-trip path (the head hint holds)
        _post(a, conn_a, "a2")
    _commit_one(b, "b3")
    _commit_one(a, "a3")
    assert (first_a, first_b) == (SPAN + 1, 2 * SPAN + 1)
    chains = _links(a)
    assert sorted(chains) == ["a", "b"]
    for name, slot in (("a", 1), ("b", 2)):
        rows = chains[name]
        assert [r[0] for r in rows] == [slot * SPAN + i for i in (1, 2, 3)]
        assert [r[1] for r in rows] == [GENESIS_HASH, rows[0][2], rows[1][2]]
    assert _violations(pg_url) == []


def test_deleting_or_altering_a_chain_is_named(
        url: str, open_chain: Callable[[str, str], SqlStorage]) -> None:
    """Chain b deleted whole (head and groups) is caught by the registry; one of b's groups
    altered is caught and b named."""
    a, b = open_chain(url, "a"), open_chain(url, "b")
    for tag in ("a1", "a2"):
        _commit_one(a, tag)
    for tag in ("b1", "b2"):
        _commit_one(b, tag)
    assert _violations(url) == []
    with b.engine.begin() as conn:
        drop_append_only_triggers(conn)
        conn.execute(text(f"UPDATE posting_group SET memo = 'x' WHERE id = {2 * SPAN + 1}"))
    altered = _violations(url)
    assert altered and all("'b'" in detail for _, detail in altered)
    assert "CHAIN" in {inv for inv, _ in altered}
    with b.engine.begin() as conn:
        conn.execute(text(f"DELETE FROM ledger_entry WHERE group_id > {2 * SPAN}"))
        conn.execute(text("DELETE FROM posting_group WHERE chain = 'b'"))
        conn.execute(text("DELETE FROM ledger_head WHERE chain = 'b'"))
    deleted = _violations(url)
    assert [inv for inv, _ in deleted] == ["REGISTRY"]
    assert "chain 'b' is registered but has no head row" in deleted[0][1]


def test_a_hosts_event_tail_publishes_its_own_chain_only(
        url: str, open_chain: Callable[[str, str], SqlStorage]) -> None:
    """Host a's tail publishes a's postings, each once, while b commits higher ids between
    them; its hello holds a's position and the balances of a's postings."""
    a, b = open_chain(url, "a"), open_chain(url, "b")
    bus = EventBus()
    bus.armed = True
    seen: list[int] = []
    bus.subscribe(lambda item: seen.append(int(getattr(item.event, "group", 0) or 0)))
    tail = EventTail(bus, a.engine, None, lambda fn, *args: succeed(fn(*args)), None,
                     chain=a.ledger.chain)
    tail.read()  # the starting point: a's empty chain
    _commit_one(b, "b1")
    first = _commit_one(a, "a1")
    _commit_one(b, "b2")
    tail.read()
    second = _commit_one(a, "a2")
    _commit_one(b, "b3")
    tail.read()
    assert [g for g in seen if g] == [first, second] == [SPAN + 1, SPAN + 2]
    hello = tail.snapshot().result  # type: ignore[attr-defined]
    assert hello["ledger_head"] == second
    assert hello["balances"]["sales:a1"] == {"CNY": -1_000} and "sales:b1" not in hello["balances"]


def _near_the_end(storage: SqlStorage | HostService, left: int) -> None:
    """Move the chain's (empty) head to ``left`` ids before the end of its range, MAC'd with
    the key, as a chain that has used up the rest would be."""
    chain = storage.ledger.chain
    last = chain.end - 1 - left
    with storage.engine.begin() as conn:
        conn.execute(update(ledger_head).where(ledger_head.c.chain == chain.name).values(
            last_id=last, mac=head_mac(storage.chain_key, last, GENESIS_HASH, 0, chain.name)))
    storage.ledger.forget_head()


def test_a_chain_refuses_to_post_past_its_range(
        url: str, open_chain: Callable[[str, str], SqlStorage],
        caplog: pytest.LogCaptureFixture) -> None:
    """With two ids left, chain a books two groups in one group commit (a savepoint each) and
    refuses a third (after the transaction's pending end, from its hint, and from the head read
    under lock), naming the chain in the error and the log; nothing of the refused postings is
    written, and the head row holds the last group booked."""
    a = open_chain(url, "a")
    _near_the_end(a, 2)
    booked: list[int] = []
    with a.begin() as conn:
        for tag in ("a1", "a2", "a3"):
            with pytest.raises(ChainFull, match="ledger chain 'a' is full") if tag == "a3" \
                    else nullcontext(), a.savepoint(conn):
                booked.append(_post(a, conn, tag))  # SQLite: a3 after the deferred head
    for read_head in (False, True):
        if read_head:
            a.ledger.forget_head()
        with pytest.raises(ChainFull, match="ledger chain 'a' is full"):
            _commit_one(a, "a4")
    assert booked == [2 * SPAN - 2, 2 * SPAN - 1]
    groups = _links(a)["a"]
    assert [r[0] for r in groups] == booked
    with a.engine.connect() as conn:
        head = conn.execute(select(ledger_head.c.last_id, ledger_head.c.last_hash)
                            .where(ledger_head.c.chain == "a")).one()
        conn.rollback()
    assert tuple(head) == (booked[-1], groups[-1][2])
    assert "ledger chain 'a' is full" in caplog.text


def test_a_sale_on_a_full_chain_is_answered_96_and_nothing_is_booked(
        make_service: Callable[..., HostService], clock: ManualClock,
        caplog: pytest.LogCaptureFixture) -> None:
    """A host whose chain has no id left answers a sale 96; no transaction or group is
    stored and the error log names the chain."""
    service = make_service()
    _near_the_end(service, 0)
    term = Term(service, clock)
    assert rc(term.send(term.sale(1_000))) == ("96", "SYSTEM_ERROR")
    with service.engine.connect() as conn:
        stored = [conn.execute(select(func.count()).select_from(table)).scalar_one()
                  for table in (txn, posting_group)]
        conn.rollback()
    assert stored == [0, 0]
    assert "ledger chain 'main' is full" in caplog.text


def test_verify_names_a_group_past_its_chains_range(
        db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chains of 4 ids: main books 3 groups and verifies clean; a fourth, written as a
    version without the range check would, is named by verify as outside main's range."""
    monkeypatch.setattr(chains, "SPAN", 4)
    storage = SqlStorage.open(db, load_config())
    try:
        booked = [_commit_one(storage, tag) for tag in ("m1", "m2", "m3")]
        assert booked == [1, 2, 3] and _violations(db) == []
        monkeypatch.setattr(Chain, "next_id", lambda chain, last_id: last_id + 1)
        assert _commit_one(storage, "m4") == 4
    finally:
        storage.close()
    assert _violations(db) == [("CHAIN", "chain 'main': group 4 lies outside the chain's id "
                                         "range (1 to 3): the chain ran past its end, or the "
                                         "group was moved from another chain")]


def _tail(storage: SqlStorage) -> tuple[EventTail, list[tuple[str, str]]]:
    """A host's event tail reading in the caller's thread, and what it published: per stage,
    settlement and notification event, its type and the merchant it names."""
    bus = EventBus()
    bus.armed = True
    seen: list[tuple[str, str]] = []

    def keep(item: Any) -> None:
        ev = item.event
        if isinstance(ev, StageEvent):
            seen.append(("stage", str(ev.detail.get("merchant"))))
        elif isinstance(ev, SettlementEvent | NotificationEvent):
            seen.append((ev.type, str(ev.merchant_id)))

    bus.subscribe(keep)
    tail = EventTail(bus, storage.engine, None, lambda fn, *args: succeed(fn(*args)), None,
                     chain=storage.ledger.chain)
    tail.read()  # the starting point
    return tail, seen


def _outbox(storage: SqlStorage) -> Outbox:
    """The host's notification outbox, its rows carrying the host's chain (as build_desk sets)."""
    outbox = Outbox(storage.engine)
    outbox.chain = storage.ledger.chain.name
    return outbox


def _write_rows(storage: SqlStorage, outbox: Outbox, conn: Connection, mid: str) -> None:
    """One stage (audit event), one notification and one settlement of ``mid``, written as
    the host writes them (the settlement as its desk does), sent at once (ids taken)."""
    chain = storage.ledger.chain.name
    storage.store.add_event(conn, None, AT_MS, "batch_closed", merchant=mid)
    outbox.add(conn, "merchant_funded", datetime(2026, 3, 2, tzinfo=UTC), merchant_id=mid,
               amount_minor=100, currency="CNY")
    conn.execute(settlement.insert().values(
        merchant_id=mid, batch=f"{mid}:1", currency="CNY", business_date=date(2026, 3, 2),
        closed_at=datetime(2026, 3, 2, tzinfo=UTC), content_hash="0" * 64, figures={},
        funding_date=date(2026, 3, 3), status="closed", chain=chain))
    pending.flush(conn)


def test_each_hosts_stream_has_its_own_rows_that_commit_out_of_id_order(
        pg_url: str, open_chain: Callable[[str, str], SqlStorage]) -> None:
    """Host b writes a stage, a settlement and a notification, a writes its own with higher
    ids and commits first, and both tails read before b commits: b's stream still gets each
    of b's rows once, a's only a's (reading past the last id seen would skip b's)."""
    a, b = open_chain(pg_url, "a"), open_chain(pg_url, "b")
    outbox_a, outbox_b = _outbox(a), _outbox(b)
    with a.engine.begin() as conn:  # the settlement table, as a host's desk makes it
        create_desk_schema(conn, a.chain_key, SETTLEMENT_HISTORY, SETTLEMENT_RULES)
    (tail_a, seen_a), (tail_b, seen_b) = _tail(a), _tail(b)
    with b.begin() as conn_b:
        _write_rows(b, outbox_b, conn_b, "MB")
        with a.begin() as conn_a:
            _write_rows(a, outbox_a, conn_a, "MA")
        tail_a.read()
        tail_b.read()
    tail_a.read()
    tail_b.read()
    mine = [("stage", "{}"), ("settlement", "{}"), ("notification", "{}")]
    assert seen_a == [(kind, m.format("MA")) for kind, m in mine]
    assert seen_b == [(kind, m.format("MB")) for kind, m in mine]


def _to_pre_chain_schema(conn: Connection) -> None:
    """Reshape a ledger into the schema of the version before chains: no ``chain`` columns,
    no registry (its rows and MACs were the same then for the one chain)."""
    conn.execute(text("DROP INDEX ux_head_chain"))
    conn.execute(text("ALTER TABLE ledger_head DROP COLUMN chain"))
    conn.execute(text("ALTER TABLE posting_group DROP COLUMN chain"))
    conn.execute(text("DROP TABLE ledger_registry"))
    conn.execute(text("ALTER TABLE event DROP COLUMN chain"))


def test_a_database_from_before_chains_continues_as_main(url: str) -> None:
    """A ledger with one head row and no chain columns verifies as it is, opens as ``main``
    (nothing re-MAC'd; its audit events get ``chain`` = main), continues its ids and
    verifies after."""
    storage = SqlStorage.open(url, load_config())
    for tag in ("m1", "m2"):
        _commit_one(storage, tag)
    with storage.begin() as conn:
        storage.store.add_event(conn, None, AT_MS, "tombstone")
    with storage.engine.begin() as conn:
        _to_pre_chain_schema(conn)
        before = conn.execute(select(posting_group.c.id, posting_group.c.hash)).all()
    storage.close()
    assert _violations(url) == []  # ledger verify on the old shape, before any host opened it
    storage = SqlStorage.open(url, load_config())
    try:
        assert storage.ledger.chain.name == "main" and _commit_one(storage, "m3") == 3
        with storage.engine.connect() as conn:
            rows = conn.execute(select(posting_group.c.id, posting_group.c.hash,
                                       posting_group.c.chain)).all()
            heads = conn.execute(select(ledger_head.c.chain, ledger_head.c.last_id)).all()
            events = conn.execute(select(event.c.chain)).scalars().all()
            conn.rollback()
    finally:
        storage.close()
    assert [(r.id, r.hash) for r in rows][:2] == [tuple(r) for r in before]
    assert {r.chain for r in rows} == {"main"} and [tuple(h) for h in heads] == [("main", 3)]
    assert events == ["main"]  # the audit events' chain column too, for the event stream
    assert _violations(url) == []


def test_a_partition_is_a_short_name_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    """``[server] partition`` takes a short lower-case name; another value is refused with
    the file, the key and the expected form named."""
    path = tmp_path / "host.toml"
    path.write_text('[server]\npartition = "east-1"\n')
    assert load_config(path).server.partition == "east-1"
    path.write_text('[server]\npartition = "Front Desk"\n')
    with pytest.raises(ConfigError, match=r"host\.toml: server\.partition: .*pattern"):
        load_config(path)


def test_ledger_anchor_names_a_partitions_chain(
        db: str, open_chain: Callable[[str, str], SqlStorage],
        capsys: pytest.CaptureFixture[str]) -> None:
    """``ledger anchor --chain p1`` prints p1's head (an id in p1's range) that ``verify
    --anchor`` accepts; a chain the ledger does not hold is one line on stderr, exit 2."""
    from host.cli import main

    storage = open_chain(db, "p1")
    gid = _commit_one(storage, "p1")
    assert gid > SPAN
    assert main(["ledger", "anchor", "--db", db, "--chain", "p1"]) == 0
    anchor = capsys.readouterr().out.strip()
    assert anchor.startswith(f"poslab-anchor:v1:{gid}:")
    assert main(["ledger", "verify", "--db", db, "--anchor", anchor]) == 0
    capsys.readouterr()
    assert main(["ledger", "anchor", "--db", db, "--chain", "nope"]) == 2
    err = capsys.readouterr().err
    assert "holds no chain 'nope'" in err and err.count("\n") == 1
