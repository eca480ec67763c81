"""The indexes of the hot tables: every statement of the request path is an index search, and a
database made by an earlier version is brought to the current indexes when it is opened."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from contextlib import closing
from typing import Any

import pytest
from sqlalchemy import event, inspect, text

from host.clock import ManualClock
from host.service import HostService

from .conftest import Term

# Tables that grow with the ledger: a full scan of one would grow with it.
_GROWING = ("txn", "event", "reversal_mark", "posting_group", "ledger_entry", "request_log",
            "terminal", "batch", "review", "notification")
_FULL_SCAN = re.compile(rf"^SCAN ({'|'.join(_GROWING)})\b(?!.*\bINDEX\b)")
# What the indexes of an earlier version looked like (their names are retired).
_OLDER_INDEXES = (
    "CREATE INDEX ix_txn_original ON txn (original_id)",
    "CREATE INDEX ix_reversal_key ON reversal_mark (merchant_id, terminal_id, stan, "
    "business_date)",
    "CREATE INDEX ix_group_reverses ON posting_group (reverses)",
    "CREATE INDEX ix_group_parent ON posting_group (parent_id)",
)
_REPLACED_BY = ("ix_txn_original_set", "ix_reversal_tombstone", "ix_group_reverses_set")


def _rrn(reply: Any) -> str:
    response = reply.response
    assert response is not None and response.response_code == "00", response
    return str(response.rrn)


def test_every_statement_of_the_request_path_searches_an_index(
        service: HostService, clock: ManualClock, db: str) -> None:
    """Sales, refunds, voids, reversals, a tombstone and its late original, an authorization
    and its completion: no statement they run scans a table that grows with the ledger."""
    term = Term(service, clock)
    seen: dict[str, None] = {}

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen[statement] = None

    event.listen(service.engine, "before_cursor_execute", record)
    sale = term.sale(5000)
    rrn = _rrn(term.send(sale))
    _rrn(term.send(term.refund(1000, rrn)))
    voided = _rrn(term.send(term.sale(700)))
    _rrn(term.send(term.void(voided, 700)))
    late = term.sale(800)
    term.send(term.reversal(late))  # the original never arrived: a tombstone
    assert term.send(late).response is not None
    term.send(term.reversal(sale))
    hold = term.send(term.auth(900))
    assert hold.response is not None and hold.response.response_code == "00"
    term.send(term.completion(900, str(hold.response.approval_code)))
    event.remove(service.engine, "before_cursor_execute", record)

    scans = {}
    # Foreign keys off: their checks' plans (children of a new group) would be listed too,
    # though an INSERT only runs them while a violation is outstanding, which fails it.
    with closing(sqlite3.connect(db)) as conn:
        for sql in seen:
            if not re.match(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", sql):
                continue
            plan = conn.execute("EXPLAIN QUERY PLAN " + sql, (None,) * sql.count("?")).fetchall()
            full = [row[3] for row in plan if _FULL_SCAN.match(row[3])]
            if full:
                scans[" ".join(sql.split())] = full
    assert len(seen) > 20
    assert not scans, scans


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    """A fresh database of each backend."""
    return str(request.getfixturevalue("db" if request.param == "sqlite" else "pg_url"))


def _indexes(service: HostService) -> dict[str, set[str]]:
    with service.engine.connect() as conn:
        found = inspect(conn)
        return {t: {str(ix["name"]) for ix in found.get_indexes(t)}
                for t in ("txn", "reversal_mark", "posting_group")}


def test_an_older_database_gets_the_current_indexes(
        url: str, make_service: Callable[..., HostService], clock: ManualClock) -> None:
    """A database with the indexes of an earlier version loses the retired ones and gains
    their replacements when the host opens it; its rows stay and it still verifies."""
    first = make_service(db_url=url)
    rrn = _rrn(Term(first, clock).send(Term(first, clock).sale(1200)))
    current = _indexes(first)
    with first.engine.begin() as conn:  # back to how an earlier version left it
        for name in _REPLACED_BY:
            conn.execute(text(f"DROP INDEX {name}"))
        for ddl in _OLDER_INDEXES:
            conn.execute(text(ddl))
    first.close()

    reopened = make_service(db_url=url)
    assert _indexes(reopened) == current
    term = Term(reopened, clock, tid="TERM0001")
    term.stan = 100
    _rrn(term.send(term.refund(200, rrn)))
    assert reopened.verify()["ok"]
