"""The review workflow of refunds held for an operator: approve, reject, list.

A refund above ``review_amount_minor`` is approved online but credited to
``refunds_under_review`` (:mod:`host.pipeline.postings`); here an operator releases it to
``scheme_settlement`` once enough distinct approvers agreed (one, or two above
``second_approval_amount_minor``), or rejects it, which mirrors its ledger group. Refusals are
domain errors (:mod:`host.errors`): :class:`~host.errors.Invalid` for a missing approver or
reason, :class:`~host.errors.NotFound` for an unknown review, :class:`~host.errors.Conflict`
for a decided review or the same approver twice.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row

from host.clock import Clock
from host.config import TextLimitsSection
from host.domain import ReviewState, TxnState
from host.errors import Conflict, Invalid, NotFound
from host.ledger import Ledger, to_ms
from host.ledger.db_retry import run_retrying
from host.pipeline import postings
from host.settlement.book import EngineDesk
from host.store import Store, txn_reference
from host.txn_views import TxnViews

T = TypeVar("T")
_RETRIES = 8


def same_person(name: str) -> str:
    """An approver's name as compared for the two-approver rule: NFKC-normalised and case
    folded (``ALICE``, ``alice`` and full-width ``ａｌｉｃｅ`` are one person)."""
    return unicodedata.normalize("NFKC", name).casefold()


class Reviews:
    """Refund reviews on one database; thread-safe under the service's lock."""

    def __init__(self, engine: Engine, lock: threading.RLock, clock: Clock, store: Store,
                 ledger: Ledger, views: TxnViews, limits: TextLimitsSection,
                 settlement: Callable[[], EngineDesk | None]) -> None:
        self._engine, self._lock, self._clock = engine, lock, clock
        self._store, self._ledger, self._views = store, ledger, views
        self._limits = limits
        self._settlement = settlement

    def list(self, state: str | None = None) -> list[dict[str, Any]]:
        """Refund reviews (optionally by state: pending_review, approved, rejected, cancelled)."""
        with self._lock, self._engine.connect() as conn:
            out = [self._views.review(conn, r) for r in self._store.reviews(conn, state)]
            conn.rollback()
        return out

    def approve(self, review_id: int, approver: str, note: str = "") -> dict[str, Any]:
        """Add one approval; at the required count the refund is released for settlement.

        Raises :class:`Invalid` (no approver, or one longer than ``[text_limits]
        approver_max``), :class:`NotFound` (unknown review), :class:`Conflict` (already
        decided, or the same approver twice: names are compared after NFKC normalisation and
        case folding, so ``alice`` and ``ALICE`` are one person).
        """
        approver = self._approver(approver)
        with self._lock:
            return self._retrying(lambda: self._approve(review_id, approver, note))

    def reject(self, review_id: int, approver: str, reason: str) -> dict[str, Any]:
        """Reject a held refund: its ledger group is mirrored and the reason recorded.

        Raises :class:`Invalid` (no approver or reason), :class:`NotFound`, :class:`Conflict`
        (already decided).
        """
        approver, reason = self._approver(approver), (reason or "").strip()
        if not reason:
            raise Invalid("a reason is required to reject a refund")
        with self._lock:
            return self._retrying(lambda: self._reject(review_id, approver, reason))

    @staticmethod
    def _retrying(fn: Callable[[], T]) -> T:
        return run_retrying(fn, _RETRIES)

    def _approve(self, review_id: int, approver: str, note: str) -> dict[str, Any]:
        store = self._store
        now = self._clock.now()
        now_ms = to_ms(now)
        with self._engine.begin() as conn:
            rev = self._open_review(conn, review_id)
            names = [a.approver for a in store.approvals(conn, review_id)]
            if same_person(approver) in {same_person(n) for n in names}:
                raise Conflict(f"{approver} already approved review {review_id}; a "
                               f"second, different approver is needed")
            store.add_approval(conn, review_id, approver, note, now_ms)
            txn_id = int(rev.txn_id)
            store.add_event(conn, txn_id, now_ms, "review_approval", approver=approver,
                            note=note)
            if len(names) + 1 >= int(rev.level):
                row = store.txn_by_id(conn, txn_id, lock=True)
                assert row is not None
                mid, amount = row.merchant_id, int(row.amount_minor)
                self._ledger.post_group(conn, postings.entries(postings.REVIEW_RELEASE, mid,
                                                               amount),
                                        currency=row.currency, at_ms=now_ms,
                                        reference=txn_reference(txn_id), kind="review_release",
                                        memo=f"approved by {', '.join(names + [approver])}")
                store.decide_review(conn, review_id, ReviewState.APPROVED, now_ms)
                store.update_txn(conn, txn_id, review_state=ReviewState.APPROVED)
                desk = self._settlement()
                if desk is not None:
                    desk.notify_refund(conn, "refund_approved", txn_id, self._clock.now(),
                                       review=review_id)
                store.add_event(conn, txn_id, now_ms, "review_approved", merchant=mid)
            out = self._views.review(conn, store.review_row(conn, review_id))
        return out

    def _reject(self, review_id: int, approver: str, reason: str) -> dict[str, Any]:
        store = self._store
        now_ms = to_ms(self._clock.now())
        with self._engine.begin() as conn:
            rev = self._open_review(conn, review_id)
            txn_id = int(rev.txn_id)
            self._ledger.reverse_reference(conn, txn_reference(txn_id), at_ms=now_ms,
                                           new_reference=txn_reference(txn_id),
                                           kind="review_rejected",
                                           memo=f"rejected by {approver}: {reason}")
            store.decide_review(conn, review_id, ReviewState.REJECTED, now_ms, reason)
            store.update_txn(conn, txn_id, state=TxnState.REJECTED,
                             review_state=ReviewState.REJECTED)
            desk = self._settlement()
            if desk is not None:
                desk.notify_refund(conn, "refund_rejected", txn_id, self._clock.now(),
                                   review=review_id, reason=reason)
            store.add_event(conn, txn_id, now_ms, "review_rejected", approver=approver,
                            reason=reason)
            out = self._views.review(conn, store.review_row(conn, review_id))
        return out

    def _approver(self, name: str) -> str:
        """The approver's name as given, trimmed; :class:`Invalid` when empty or too long."""
        name = (name or "").strip()
        if not name:
            raise Invalid("approver is required")
        limit = self._limits.approver_max
        if len(name) > limit:
            raise Invalid(f"approver is {len(name)} characters; at most {limit} "
                          f"are allowed ([text_limits] approver_max)")
        return name

    def _open_review(self, conn: Connection, review_id: int) -> Row[Any]:
        rev = self._store.review_row(conn, review_id, lock=True)
        if rev is None:
            raise NotFound(f"no review {review_id}")
        if rev.state != ReviewState.PENDING:
            raise Conflict(f"review {review_id} is already {rev.state}")
        return rev
