"""The host's engine: :class:`HostService` runs the request pipeline and answers admin queries.

``handle(request)`` takes one decoded request (an :class:`~host.pipeline.request.IsoRequest`
from the server, or a plain field mapping) and returns a :class:`Reply` after its effects are
committed. The request goes through the stages of :mod:`host.pipeline.stages`:

1. **validate**: strict mode: a field the request's wire profile makes mandatory missing -> 30
   ``MISSING_FIELD:<n>``; otherwise DE7/DE12/DE13 are filled from the host clock when
   absent; typed parsing (:func:`protocol.messages.parse_request`; failures answer 30);
2. **authenticate**: message security's checks (none yet);
3. in **one write transaction** (``BEGIN IMMEDIATE`` on SQLite, row locks on PostgreSQL):
   **identify** the terminal and merchant (unknown TID -> 58, unknown or mismatched MID -> 03;
   development mode enrols them with the default merchant profile), **de-duplicate** on the
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

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from host import cards
from host.clock import Clock
from host.config import HostConfig, MerchantConfig, RefundPolicy
from host.ledger.db_retry import run_retrying
from host.pipeline import stages
from host.pipeline.context import Context, Decline
from host.pipeline.handlers import HANDLERS, Handler
from host.pipeline.replies import (
    Reply,
    format_error_reply,
    plain_reply,
    stamped,
)
from host.pipeline.request import IsoRequest
from host.queries import Queries
from host.reviews import Reviews
from host.settlement import CutoffSchedule, zone
from host.settlement_book import build_desk
from host.sql_storage import SqlStorage
from host.txn_views import TxnViews
from protocol.codes import RuleId
from protocol.errors import ValidationError
from protocol.masking import Pan

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRIES = 8


class HostService:
    """The acquirer host's engine: ISO traffic in, committed decisions out; admin queries."""

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
        self._card_key = storage.card_key
        self.views = TxnViews(self.store, self.ledger)
        limits = config.text_limits
        self._de48_limits = {"EV": limits.evidence_max, "OP": limits.operator_max}
        self._lock = threading.RLock()
        self._batch_conn: Connection | None = None  # set while handle_batch runs
        # Per (time zone, cut-off): the schedule and the business-date window last seen.
        self._schedules: dict[tuple[str, str],
                              tuple[CutoffSchedule, tuple[date, datetime, datetime]]] = {}
        self._unlisted: dict[str, MerchantConfig] = {}  # default profile copied per MID
        self._unsettled: set[str] = set()  # merchants enrolled since the last commit
        # Settlement timing (cut-offs, funding, refund posting, notifications): one hook.
        self.settlement = build_desk(self)
        self.queries = Queries(self.engine, self._lock, self.store, self.ledger, self.views,
                               self.chain_key, lambda: self.settlement)
        self.review_desk = Reviews(self.engine, self._lock, clock, self.store, self.ledger,
                                   self.views, config.text_limits, lambda: self.settlement)

    # == ISO traffic ==========================================================================

    def handle_batch(self, batch: Sequence[Mapping[str, str]]) -> list[Reply]:
        """Decide several requests in one transaction with one COMMIT (group commit).

        Each request runs as :meth:`handle` does, in its own savepoint: one that fails, is
        retried or declines silently rolls back only its own writes. This returns only after
        the COMMIT, so every reply leaves after its effects are durable (docs/design-notes.md);
        when the COMMIT fails it raises and no reply of the batch may be sent.
        """
        with self._lock:
            with self.storage.begin() as conn:
                self._batch_conn = conn
                try:
                    replies = [self.handle(fields) for fields in batch]
                finally:
                    self._batch_conn = None
            self._start_settling()
            return replies

    def _write(self) -> AbstractContextManager[Connection]:
        """One request's write transaction: its own (BEGIN IMMEDIATE on SQLite), or a savepoint
        of the batch's transaction inside :meth:`handle_batch`."""
        conn = self._batch_conn
        return self.storage.begin() if conn is None else self.storage.savepoint(conn)

    def handle(self, fields: Mapping[str, str]) -> Reply:
        """Decide one request and commit its effects; see the module docstring.

        ``fields`` is an :class:`~host.pipeline.request.IsoRequest` from the server, or a
        plain field mapping, taken as decoded with the default wire profile.
        """
        with self._lock:
            envelope = IsoRequest.of(fields)
            try:
                reply = self._handle(envelope)
                if self._batch_conn is None:  # committed: not part of a batch
                    self._start_settling()
                return reply
            except ValidationError as exc:
                if not exc.fields:
                    exc.fields = dict(envelope.fields)
                return self.format_error(exc)
            except Decline as exc:
                return exc.reply
            except SQLAlchemyError as exc:
                log.error("database error, answering 96: %s", type(exc).__name__)
                return plain_reply(envelope.fields, "96", RuleId.SYSTEM_ERROR.value)

    def _start_settling(self) -> None:
        """After a commit: merchants first enrolled in it get cut-offs and funding like listed
        ones (their enrolment is durable now; a restart finds them in the terminal table)."""
        if not self._unsettled:  # the usual case, once per request
            return
        desk = self.settlement
        if desk is None:  # a clock that cannot schedule: nothing is settled
            self._unsettled.clear()
            return
        for mid in sorted(self._unsettled):
            try:
                if self.config.merchant(mid) is None:
                    desk.enrol_unlisted(mid)
            except SQLAlchemyError as exc:
                # The requests are committed and their replies must go out: try again after
                # the next commit (and a restart finds the merchant in the terminal table).
                log.error("could not start settling merchant %s yet: %s", mid,
                          type(exc).__name__)
                continue
            self._unsettled.discard(mid)

    def format_error(self, error: ValidationError) -> Reply:
        """MTI+10 with RC 30 when MTI, STAN and TID are readable; otherwise send nothing."""
        return format_error_reply(error)

    # -- pipeline -----------------------------------------------------------------------------

    def _handle(self, envelope: IsoRequest) -> Reply:
        ctx = stages.validate(self, envelope, self.clock.now(), strict=self.strict,
                              text_limits=self._de48_limits)
        refused = stages.authenticate(ctx)
        if refused is not None:
            return refused
        handler = HANDLERS[ctx.txn]
        return self._retrying(lambda: self._transact(ctx, handler))

    def _retrying(self, fn: Callable[[], T]) -> T:
        # A concurrent twin inserted the same key first, or the database was busy or chose us
        # as a deadlock victim: run again; the retry sees the other's result.
        return run_retrying(fn, _RETRIES)

    def _transact(self, ctx: Context, handler: Handler) -> Reply:
        with self._write() as conn:
            stages.identify(ctx, conn)
            local = ctx.now.astimezone(zone(ctx.merchant.timezone))
            if not handler.deduplicated:
                return stamped(handler.run(ctx), local)
            digest = stages.fingerprint(ctx)
            replayed = stages.deduplicate(ctx, digest)
            if replayed is not None:
                return replayed
            reply = stamped(handler.run(ctx), local)
            stages.remember(ctx, digest, reply)
            return reply

    # -- what the pipeline asks of the host (host.pipeline.context.Services) ------------------

    def merchant_profile(self, mid: str) -> MerchantConfig:
        """The merchant's config entry, or for a merchant only development-mode enrolment
        knows, the default merchant's profile under its id."""
        found = self.config.merchant(mid)
        if found is not None:
            return found
        copied = self._unlisted.get(mid)
        if copied is None:  # the config does not change while the host runs
            copied = self.config.default_merchant.model_copy(update={"id": mid,
                                                                     "terminals": ()})
            self._unlisted[mid] = copied
        return copied

    def refund_policy(self, merchant: MerchantConfig) -> RefundPolicy:
        """The merchant's refund policy (the default merchant's for an unlisted one)."""
        if self.config.merchant(merchant.id) is not None:
            return self.config.refund_policy(merchant.id)
        return self.config.refund_policy(self.config.default_merchant.id)

    def business_date(self, merchant: MerchantConfig, now: datetime) -> date:
        """The merchant's business date at ``now`` (its own cut-off first)."""
        cutoff = merchant.cutoff or self.config.settlement.cutoff
        key = (merchant.timezone, cutoff)
        # The business date only changes at a cut-off: remember the current window per
        # schedule rather than resolving local cut-off times on every request.
        known = self._schedules.get(key)
        if known is not None:
            sched, (day, start, end) = known
            if start <= now < end:
                return day
        else:
            sched = CutoffSchedule.parse(merchant.timezone, cutoff)
        window = sched.window(now)
        self._schedules[key] = (sched, window)
        return window[0]

    def card_hash(self, pan: Pan) -> str:
        """The keyed hash a card number is stored and compared as."""
        return cards.card_hash(self._card_key, pan)

    def enrolled(self, mid: str) -> None:
        """A merchant first enrolled in this transaction: settled from the next commit on."""
        self._unsettled.add(mid)


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
