"""How a financial request reaches the database: its first reads in one statement, its
transaction row written once (the ledger group first, under an id reserved ahead), and RRNs
that stay unique across batches, restarts and two services on one database."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError

from host.clock import ManualClock
from host.service import HostService

from .conftest import MID, Term


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    """A fresh database of each backend."""
    return str(request.getfixturevalue("db" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
def on_url(url: str, make_service: Callable[..., HostService]) -> Callable[..., HostService]:
    """Services on ``url`` (a restart is a second call)."""
    return lambda **kw: make_service(db_url=url, **kw)


def _statements(service: HostService) -> Iterator[list[str]]:
    """The SQL text of every statement ``service`` runs while the generator is suspended."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(service.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(service.engine, "before_cursor_execute", record)


def _rrn(reply: Any) -> str:
    response = reply.response
    assert response is not None and response.response_code == "00", response
    return str(response.rrn)


def test_a_sale_reads_once_and_writes_its_row_once(on_url: Callable[..., HostService],
                                                   clock: ManualClock) -> None:
    """A sale on a known terminal reads its terminal, stored answer and tombstone in one
    statement and inserts its transaction row complete: no UPDATE of ``txn`` follows."""
    service = on_url()
    term = Term(service, clock)
    term.approved_sale(1000)  # the terminal's row and its open batch exist from here on
    recorder = _statements(service)
    seen = next(recorder)
    _rrn(service.handle(term.sale(2500)))
    recorder.close()
    first_reads = [s for s in seen if re.search(r"\b(terminal|request_log|reversal_mark)\b", s)
                   and s.startswith("SELECT")]
    assert len(first_reads) == 1, first_reads
    assert all(name in first_reads[0] for name in ("terminal", "request_log", "reversal_mark"))
    txn_writes = [s for s in seen if re.match(r"(INSERT INTO|UPDATE) txn\b", s)]
    assert len(txn_writes) == 1 and txn_writes[0].startswith("INSERT INTO txn"), txn_writes


def test_rrns_stay_unique_across_batches_restarts_and_two_services(
        on_url: Callable[..., HostService], clock: ManualClock) -> None:
    """Ids reserved ahead of the insert never repeat: sales in one batch, in the next batch,
    after a restart and from a second service on the same database all get new RRNs, and
    the database verifies (new terminals: their first request reads apart)."""
    first = on_url(allow_unknown_terminals=True)
    term = Term(first, clock)
    rrns = [_rrn(r) for r in first.handle_batch([term.sale(100 + i) for i in range(3)])]
    rrns += [_rrn(r) for r in first.handle_batch([term.sale(200), term.sale(201)])]
    # A second engine on the same database, taking turns with the first.
    second = on_url(allow_unknown_terminals=True)
    other = Term(second, clock, tid="TERM0002", mid=MID)
    rrns += [_rrn(r) for r in second.handle_batch([other.sale(300), other.sale(301)])]
    rrns += [_rrn(first.handle(term.sale(400)))]
    first.close()
    restarted = on_url(allow_unknown_terminals=True)
    rrns += [_rrn(r) for r in restarted.handle_batch([Term(restarted, clock, tid="TERM0003")
                                                      .sale(500)])]
    assert len(set(rrns)) == len(rrns) == 9, rrns
    assert rrns == sorted(rrns)  # each new id above every one handed out before
    assert restarted.verify()["ok"]


def test_a_failed_request_in_a_batch_rolls_back_alone(on_url: Callable[..., HostService],
                                                      clock: ManualClock,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A request that fails after writing its row and posting is answered 96 and leaves
    nothing, while the requests before and after it in the same batch commit (PostgreSQL
    releases a request's savepoint only with the next one's)."""
    service = on_url()
    term = Term(service, clock)
    term.approved_sale(100)  # the terminal's row and batch exist: the batch below only books
    batch = [term.sale(1001), term.sale(1002), term.sale(1003)]
    failing = batch[1]
    remember = service.pipeline.ledger.remember

    def remember_or_fail(conn: Any, key: str, *args: Any) -> None:
        if key.endswith(f"|{failing['11']}|{failing['7']}"):  # MTI|TID|STAN|DE7
            raise SQLAlchemyError("the disk went away")
        remember(conn, key, *args)

    monkeypatch.setattr(service.pipeline.ledger, "remember", remember_or_fail)
    replies = service.handle_batch(batch)
    codes = [r.response.response_code if r.response is not None else None for r in replies]
    assert codes == ["00", "96", "00"], codes
    amounts = sorted(int(t["amount_minor"]) for t in service.transactions())
    assert amounts == [100, 1001, 1003], amounts
    assert service.verify()["ok"]
    monkeypatch.undo()
    assert _rrn(service.handle(term.sale(1004)))  # the chain goes on after the rolled-back one
    assert service.verify()["ok"]
