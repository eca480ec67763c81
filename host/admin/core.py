"""The core admin routes: health, transactions, the ledger, refund reviews and metrics::

    GET  /health                       service health plus open connections
    GET  /transactions/{rrn}           one transaction with its events, or 404
    GET  /transactions?tid=&stan=&limit=&cursor=
                                       {"transactions": [...], "next": cursor or null}
    GET  /ledger/balances              per account per currency
    GET  /ledger/verify                {"ok": bool, "violations": [...], "checked": {...}}
    GET  /reviews?state=               {"reviews": [...]}
    POST /reviews/{id}/approve         body {"approver": str, "note": str?}
    POST /reviews/{id}/reject          body {"approver": str, "reason": str}
    GET  /metrics                      Prometheus text
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.defer import Deferred

from host.admin.api import (
    DB_INT_MAX,
    PROMETHEUS_TYPE,
    AdminContext,
    AdminRequest,
    AdminResponse,
    HttpError,
    Query,
    db_int,
    route,
)
from protocol.admin_models import (
    ApproveBody,
    Balances,
    Health,
    RejectBody,
    Review,
    ReviewList,
    TxnDetail,
    TxnPage,
    VerifyReport,
)

PAGE_DEFAULT = 500
"""Transactions per page of ``GET /transactions`` unless ``limit`` says otherwise."""
PAGE_MAX = 1000
"""The largest ``limit`` ``GET /transactions`` accepts."""
_REVIEW_STATES = ["pending_review", "approved", "rejected", "cancelled"]


@route("GET", "/health", model=Health)
def health(ctx: AdminContext, req: AdminRequest) -> Deferred[Health]:
    """Service health, its database and counts, plus the open ISO connections."""

    def add_server(facts: dict[str, Any]) -> Health:
        return Health.model_validate(
            {**facts, "open_connections": int(ctx.metrics.open_connections.get())})

    return ctx.call(ctx.service.health).addCallback(add_server)


@route("GET", "/transactions/{rrn}", model=TxnDetail, errors=(404,))
def transaction(ctx: AdminContext, req: AdminRequest) -> Deferred[TxnDetail]:
    """One transaction with its rules, events, refunds, review and ledger groups."""
    rrn = req.params["rrn"]
    if "\x00" in rrn:  # %00 in the path: no RRN holds a NUL, and PostgreSQL cannot compare it
        raise HttpError(404, f"no transaction with RRN {rrn!r}")

    def found(txn: dict[str, Any] | None) -> TxnDetail:
        if txn is None:
            raise HttpError(404, f"no transaction with RRN {rrn}")
        return TxnDetail.model_validate(txn)

    return ctx.call(ctx.service.transaction, rrn).addCallback(found)


@route("GET", "/transactions", model=TxnPage, query=(
    Query("tid", "only this terminal's transactions"),
    Query("stan", "only this STAN (1-6 digits)", {"type": "string", "pattern": "^[0-9]{1,6}$"}),
    Query("limit", f"rows per page (default {PAGE_DEFAULT})",
          {"type": "integer", "minimum": 1, "maximum": PAGE_MAX}),
    Query("cursor", "the 'next' value of the previous page",
          {"type": "integer", "minimum": 0, "maximum": DB_INT_MAX}),
))
def transactions(ctx: AdminContext, req: AdminRequest) -> Deferred[TxnPage]:
    """Transactions newest first, one page at a time."""
    tid, stan = req.query.get("tid"), req.query.get("stan")
    limit, cursor = req.query.get("limit", str(PAGE_DEFAULT)), req.query.get("cursor")
    if stan is not None and re.fullmatch(r"[0-9]{1,6}", stan) is None:
        raise HttpError(400, "stan must be digits, at most 6")
    if re.fullmatch(r"[0-9]{1,4}", limit) is None or not 1 <= int(limit) <= PAGE_MAX:
        raise HttpError(400, f"limit must be a whole number from 1 to {PAGE_MAX}")
    if cursor is not None and db_int(cursor) is None:
        raise HttpError(400, "cursor must be the 'next' value of an earlier page")
    return ctx.call(ctx.service.transactions_page, tid=tid, stan=stan, limit=int(limit),
                    cursor=cursor).addCallback(TxnPage.model_validate)


@route("GET", "/ledger/balances", model=Balances)
def balances(ctx: AdminContext, req: AdminRequest) -> Deferred[Balances]:
    """Net debit per account per currency, in minor units."""
    return ctx.call(ctx.service.balances).addCallback(Balances.model_validate)


@route("GET", "/ledger/verify", model=VerifyReport)
def verify(ctx: AdminContext, req: AdminRequest) -> Deferred[VerifyReport]:
    """Every ledger and store invariant checked; each violation named."""
    return ctx.call(ctx.service.verify).addCallback(VerifyReport.model_validate)


@route("GET", "/reviews", model=ReviewList, query=(
    Query("state", "only reviews in this state", {"type": "string", "enum": _REVIEW_STATES}),
))
def reviews(ctx: AdminContext, req: AdminRequest) -> Deferred[ReviewList]:
    """Refund reviews, optionally of one state."""
    state = req.query.get("state")
    if state is not None and state not in _REVIEW_STATES:  # a typo would list nothing
        raise HttpError(400, f"state must be one of {', '.join(_REVIEW_STATES)}")
    return ctx.call(ctx.service.reviews, state).addCallback(
        lambda rows: ReviewList(reviews=rows))


@route("POST", "/reviews/{id}/approve", model=Review, body=ApproveBody, errors=(404, 409))
def approve(ctx: AdminContext, req: AdminRequest) -> Deferred[Review]:
    """Add one approval; at the required count the refund is released."""
    review_id = req.int_param("id")
    approver = req.require(str, "approver")
    note = req.optional(str, "note", "") or ""
    ctx.log.audit("review_approve", review=review_id, approver=approver)
    return ctx.call(ctx.service.approve_review, review_id, approver, note).addCallback(
        Review.model_validate)


@route("POST", "/reviews/{id}/reject", model=Review, body=RejectBody, errors=(404, 409))
def reject(ctx: AdminContext, req: AdminRequest) -> Deferred[Review]:
    """Reject a held refund with a reason."""
    review_id = req.int_param("id")
    approver = req.require(str, "approver")
    reason = req.require(str, "reason")
    ctx.log.audit("review_reject", review=review_id, approver=approver)
    return ctx.call(ctx.service.reject_review, review_id, approver, reason).addCallback(
        Review.model_validate)


@route("GET", "/metrics", text_type=PROMETHEUS_TYPE)
def metrics(ctx: AdminContext, req: AdminRequest) -> AdminResponse:
    """Prometheus text exposition of the host's counters and histograms."""
    return AdminResponse(ctx.metrics.render(), content_type=PROMETHEUS_TYPE)
