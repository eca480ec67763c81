"""Concurrent refunds of one sale, each thread with its own HostService on the same database,
never exceed the sale (SQLite with BEGIN IMMEDIATE; PostgreSQL with row locks)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from host.clock import ManualClock
from host.config import load_config
from host.service import HostService, Reply

from .conftest import MID, Term


def race(db_url: str, clock: ManualClock, threads: int, amount: int, sale: int = 10000
         ) -> tuple[Counter[str], HostService]:
    """One sale, then ``threads`` refunds of ``amount`` released together by a barrier."""
    seller = HostService(load_config(), db_url, clock)
    term = Term(seller, clock)
    rrn = term.approved_sale(sale)
    requests = [term.refund(amount, rrn) for _ in range(threads)]
    services = [HostService(load_config(), db_url, clock) for _ in range(threads)]
    barrier = threading.Barrier(threads)
    replies: list[Reply | None] = [None] * threads

    def worker(i: int) -> None:
        barrier.wait()
        replies[i] = services[i].handle(requests[i])

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    for svc in services:
        svc.close()
    codes = Counter(r.response.response_code for r in replies if r and r.response)
    return codes, seller


@pytest.mark.parametrize(("threads", "amount"), [(8, 6000), (8, 1250), (16, 3000)])
def test_concurrent_refunds_sqlite(db: str, clock: ManualClock, threads: int,
                                   amount: int) -> None:
    """SQLite: exactly floor(sale/amount) refunds are approved, the rest get 13."""
    codes, seller = race(db, clock, threads, amount)
    approved = min(threads, 10000 // amount)
    assert codes == Counter({"00": approved, "13": threads - approved})
    assert seller.balances()["merchant_payable:" + MID]["CNY"] == -(10000 - approved * amount)
    assert seller.verify()["ok"]
    seller.close()


@pytest.mark.parametrize(("threads", "amount"), [(8, 6000), (12, 3000)])
def test_concurrent_refunds_postgresql(pg_url: str, clock: ManualClock, threads: int,
                                       amount: int) -> None:
    """PostgreSQL: the same bound holds with SELECT ... FOR UPDATE on the sale."""
    codes, seller = race(pg_url, clock, threads, amount)
    approved = min(threads, 10000 // amount)
    assert codes == Counter({"00": approved, "13": threads - approved})
    report = seller.verify()
    assert report["ok"], report["violations"]
    seller.close()


def test_postgresql_duplicates_and_triggers(pg_url: str, clock: ManualClock) -> None:
    """On PostgreSQL too: exact duplicates replay, and ledger rows refuse UPDATE."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    svc = HostService(load_config(), pg_url, clock)
    term = Term(svc, clock)
    req = term.sale(500)
    assert svc.handle(req).response == svc.handle(dict(req)).response
    with pytest.raises(DBAPIError, match="append-only"):
        with svc.engine.begin() as conn:
            conn.execute(text("UPDATE ledger_entry SET amount_minor = 1"))
    assert svc.verify()["ok"]
    svc.close()
