"""The host's engine: :class:`HostService` runs the request pipeline and answers admin queries.

``handle(request)`` takes one decoded request (an :class:`~host.pipeline.request.IsoRequest`
from the server, or a plain field mapping) and returns a :class:`Reply` after its effects are
committed. The request goes through the stages of :mod:`host.pipeline.stages`:

1. **validate**: strict mode: a field the request's wire profile makes mandatory missing -> 30
   ``MISSING_FIELD:<n>``; otherwise DE7/DE12/DE13 are filled from the host clock when
   absent; typed parsing (:func:`protocol.messages.parse_request`; failures answer 30);
2. **authenticate**: message security's checks (:mod:`host.security.gate`: the MAC over the
   bytes as received, sign-on first, a DUKPT counter used before -> the MAC-failure code);
3. in **one write transaction** (``BEGIN IMMEDIATE`` on SQLite, row locks on PostgreSQL):
   **identify** the terminal and merchant (unknown TID -> 58, unknown or mismatched MID -> 03;
   development mode enrols them with the default merchant profile), **admitted**: the DUKPT
   counter the request used is stored with it, **de-duplicate** on the
   request key (:mod:`host.request_key`: MTI class, TID, STAN and DE7, or without DE7 the batch
   or business date; never a value the host filled in) -- same content replays the stored
   response, different content -> 94 -- then the transaction's **handler**
   (:data:`host.pipeline.handlers.HANDLERS`: the pure rules of :mod:`host.rules` and
   :mod:`host.cards`, the ledger postings of :mod:`host.pipeline.postings`, the transaction
   rows of :mod:`host.store`), the stored response, then COMMIT;
4. the reply goes back only after that commit. A database error answers 96 with nothing
   committed; a ``no_response`` card books nothing and answers nothing.

Void, reversal and a rejected review mirror every effective ledger group of the original.

The service is thread-safe (one lock per instance); several instances may share one database,
which then serialises them (that is how concurrent refunds of one sale never exceed it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from host.clock import Clock
from host.config import HostConfig, MerchantConfig
from host.cup import cup_flow
from host.pipeline.core import Pipeline
from host.pipeline.replies import Reply
from host.queries import Queries
from host.reviews import Reviews
from host.security.gate import HostSecurity
from host.settlement.book import build_desk
from host.sql_storage import SqlStorage
from host.txn_views import TxnViews
from protocol.errors import ValidationError

__all__ = ["HostService", "Reply"]


class HostService:
    """The acquirer host's engine: ISO traffic in, committed decisions out; admin queries.

    It composes the request path (:class:`~host.pipeline.core.Pipeline`) on SQL storage with
    settlement, the admin read side (:mod:`host.queries`) and the review workflow
    (:mod:`host.reviews`); the methods below are the entry points the server, the admin API,
    the runtime, scenarios and tests call.
    """

    def __init__(self, config: HostConfig, storage: SqlStorage | str, clock: Clock, *,
                 strict: bool = False, allow_unknown_terminals: bool = False) -> None:
        """``storage``: the opened database (:meth:`SqlStorage.open`, as the composition root
        does), or a database URL for tools and tests, opened here."""
        self.config = config
        self.clock = clock
        self.strict = strict
        self.allow_unknown_terminals = allow_unknown_terminals
        if isinstance(storage, str):
            storage = SqlStorage.open(storage, config)
        self.storage = storage
        self.engine = storage.engine
        self.chain_key = storage.chain_key
        self.ledger = storage.ledger
        self.store = storage.store
        self.views = TxnViews(self.store, self.ledger)
        self.pipeline = Pipeline(config, storage, clock, strict=strict,
                                 allow_unknown_terminals=allow_unknown_terminals,
                                 # the CUP profile's own checks, handlers and answers
                                 flows={"cup": cup_flow(config.host.acquirer_id)})
        self._lock = self.pipeline.lock
        # Keys, MAC and PIN (host.security): the pipeline's authenticate stage and handlers.
        self.security = self.pipeline.security = HostSecurity(config, self.chain_key)
        with self.engine.connect() as conn:
            self.security.load(conn)  # the DUKPT counters used before a restart
        # Settlement timing (cut-offs, funding, refund posting, notifications): one hook.
        self.settlement = self.pipeline.settlement = build_desk(self)
        self.queries = Queries(self.engine, self._lock, self.store, self.ledger, self.views,
                               self.chain_key, lambda: self.settlement)
        self.review_desk = Reviews(self.engine, self._lock, clock, self.store, self.ledger,
                                   self.views, config.text_limits, lambda: self.settlement)

    # == ISO traffic (delegates: host.pipeline.core) ============================================

    def handle(self, fields: Mapping[str, str]) -> Reply:
        """Decide one request and commit its effects (:meth:`Pipeline.handle`)."""
        return self.pipeline.handle(fields)

    def handle_batch(self, batch: Sequence[Mapping[str, str]]) -> list[Reply]:
        """Decide several requests with one COMMIT (:meth:`Pipeline.handle_batch`)."""
        return self.pipeline.handle_batch(batch)

    def format_error(self, error: ValidationError) -> Reply:
        """MTI+10 with RC 30 when MTI, STAN and TID are readable; otherwise send nothing."""
        return self.pipeline.format_error(error)

    def merchant_profile(self, mid: str) -> MerchantConfig:
        """The merchant's config entry, or the default merchant's profile under its id."""
        return self.pipeline.merchant_profile(mid)

    # == admin (delegates: host.queries, host.reviews) =========================================

    def health(self) -> dict[str, Any]:
        """Liveness plus a few counts."""
        return {"status": "ok", **self.queries.counts(), "strict": self.strict,
                "allow_unknown_terminals": self.allow_unknown_terminals}

    def transaction(self, rrn: str) -> dict[str, Any] | None:
        """One transaction with its capture/refund/settlement state, amounts, rules, events."""
        return self.queries.transaction(rrn)

    def transactions(self, tid: str | None = None, stan: str | None = None) -> list[dict[str, Any]]:
        """Transactions by terminal and/or STAN, newest first (summaries; the first 500)."""
        return list(self.transactions_page(tid, stan)["transactions"])

    def transactions_page(self, tid: str | None = None, stan: str | None = None,
                          limit: int = 500, cursor: str | None = None) -> dict[str, Any]:
        """One page of :meth:`transactions` (see :meth:`host.queries.Queries.transactions_page`)."""
        return self.queries.transactions_page(tid, stan, limit, cursor)

    def balances(self) -> dict[str, dict[str, int]]:
        """Net debit (debits - credits) per account per currency, in minor units."""
        return self.queries.balances()

    def verify(self) -> dict[str, Any]:
        """Check the ledger and store invariants; each violation named precisely."""
        return self.queries.verify()

    def reviews(self, state: str | None = None) -> list[dict[str, Any]]:
        """Refund reviews (optionally by state: pending_review, approved, rejected, cancelled)."""
        return self.review_desk.list(state)

    def approve_review(self, review_id: int, approver: str, note: str = "") -> dict[str, Any]:
        """Add one approval (:meth:`host.reviews.Reviews.approve`)."""
        return self.review_desk.approve(review_id, approver, note)

    def reject_review(self, review_id: int, approver: str, reason: str) -> dict[str, Any]:
        """Reject a held refund (:meth:`host.reviews.Reviews.reject`)."""
        return self.review_desk.reject(review_id, approver, reason)

    def close(self) -> None:
        """Release the database connections."""
        with self._lock:
            self.storage.close()


# -- helpers --------------------------------------------------------------------------------
