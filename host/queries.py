"""The admin API's read side: health, transactions, balances, the integrity check.

Every query reads in its own short transaction that it rolls back (nothing here writes), under
the service's lock, so a reader never sees a request half booked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, func, select

from host.ledger import ChainKey, Ledger, verify_connection
from host.ledger.schema import posting_group
from host.settlement.book import EngineDesk
from host.store import Store
from host.store import txn as txn_table
from host.store_verify import store_checks
from host.txn_views import TxnViews


class Queries:
    """Read-only views of one host database."""

    def __init__(self, engine: Engine, lock: threading.RLock, store: Store, ledger: Ledger,
                 views: TxnViews, chain_key: ChainKey,
                 settlement: Callable[[], EngineDesk | None]) -> None:
        self._engine, self._lock = engine, lock
        self._store, self._ledger, self._views = store, ledger, views
        self._chain_key = chain_key
        self._settlement = settlement

    def counts(self) -> dict[str, Any]:
        """The database's dialect and how many transactions and posting groups it holds."""
        with self._lock, self._engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(txn_table)).scalar_one()
            groups = conn.execute(select(func.count()).select_from(posting_group)).scalar_one()
            conn.rollback()
        return {"database": self._engine.dialect.name, "transactions": int(count),
                "posting_groups": int(groups)}

    def transaction(self, rrn: str) -> dict[str, Any] | None:
        """One transaction with its capture/refund/settlement state, amounts, rules, events."""
        desk = self._settlement()
        with self._lock, self._engine.connect() as conn:
            row = self._store.txn_by_rrn(conn, rrn)
            out = self._views.detail(conn, row) if row is not None else None
            fee = desk.refund_fee(conn, row) if row is not None and desk is not None else None
            conn.rollback()
        if out is not None and fee is not None:
            out.update(fee)  # fee_minor, fee_policy: the refund's own line of its settlement
        if out is not None and desk is not None:
            out["refund_settlement"] = desk.refund_state(rrn)  # settled / posted
        return out

    def transactions_page(self, tid: str | None = None, stan: str | None = None,
                          limit: int = 500, cursor: str | None = None) -> dict[str, Any]:
        """One page of transactions, newest first: ``{"transactions": [...], "next": cursor}``.

        ``next`` is None on the last page; passing it back as ``cursor`` gives the following
        (older) page. Rows booked meanwhile never shift a page: the cursor is a position.
        """
        before = int(cursor) if cursor is not None else None
        with self._lock, self._engine.connect() as conn:
            rows = self._store.txns(conn, tid, stan, limit + 1, before)
            page = [self._views.summary(conn, r) for r in rows[:limit]]
            conn.rollback()
        more = len(rows) > limit
        return {"transactions": page, "next": str(rows[limit - 1].id) if more else None}

    def balances(self) -> dict[str, dict[str, int]]:
        """Net debit (debits - credits) per account per currency, in minor units."""
        with self._lock, self._engine.connect() as conn:
            out = self._ledger.balances(conn)
            conn.rollback()
        return out

    def verify(self) -> dict[str, Any]:
        """Check the ledger and store invariants; each violation named precisely."""
        with self._lock, self._engine.connect() as conn:
            report = verify_connection(conn, self._chain_key, store_checks(self._chain_key))
            conn.rollback()
        return report
