"""What the admin API shows of a transaction and of a refund review (plain dicts for JSON).

:class:`TxnViews` reads through the store and the ledger on a connection the caller opened
(the service holds its lock and rolls the read back). Card numbers appear only masked: the
rows hold nothing else, and free text (refund evidence, operator) is scrubbed again on the way
out for rows an older version stored unmasked.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from host import rules
from host.domain import ReviewState, TxnKind, TxnState
from host.ledger import Ledger
from host.store import Store, txn_reference
from host.store import txn as txn_table
from protocol.masking import scrub


class TxnViews:
    """Summaries, details and review views built from the store and the ledger."""

    def __init__(self, store: Store, ledger: Ledger) -> None:
        self.store = store
        self.ledger = ledger

    def summary(self, conn: Connection, row: Row[Any]) -> dict[str, Any]:
        """One transaction's identifiers, amount, codes and capture/settlement/review state."""
        out: dict[str, Any] = {
            "rrn": row.rrn, "kind": row.kind, "mti": row.mti,
            "processing_code": row.processing_code, "stan": row.stan,
            "terminal_id": row.terminal_id, "merchant_id": row.merchant_id,
            "amount_minor": int(row.amount_minor), "currency": row.currency,
            "pan": row.pan_masked, "business_date": row.business_date,
            "at": iso_ms(int(row.at_ms)), "response_code": row.response_code, "rule": row.rule,
            "approval_code": row.approval_code if row.state != TxnState.DECLINED else None,
            "state": row.state, "capture_state": capture_state(row),
            "settlement_state": settlement_state(self.store.batch_row(conn, row.batch_id)),
            "review_state": row.review_state,
        }
        if row.kind == TxnKind.REFUND:
            # Masked again on the way out: rows written before free text was masked on entry.
            out.update(reason=row.reason, evidence=_masked(row.evidence),
                       operator=_masked(row.operator))
        return out

    def detail(self, conn: Connection, row: Row[Any]) -> dict[str, Any]:
        """The summary plus rules fired, audit events, refund totals, review and ledger groups."""
        out = self.summary(conn, row)
        out["rules_fired"] = json.loads(row.rules_fired or "[]")
        out["events"] = self.store.events(conn, int(row.id))
        original = self.store.txn_by_id(conn, row.original_id)
        out["original_rrn"] = original.rrn if original is not None else None
        if row.kind in rules.REFUNDABLE_KINDS:
            view = self.store.view(conn, row)
            out["refunded_minor"] = view.refunded_minor
            out["remaining_minor"] = view.remaining_minor
            out["refund_count"] = view.refund_count
            out["refund_state"] = ("NONE" if view.refunded_minor == 0 else
                                   "FULL" if view.refunded_minor >= view.amount_minor else
                                   "PARTIAL")
            out["refunds"] = [self.summary(conn, r) for r in conn.execute(
                select(txn_table).where(txn_table.c.original_id == row.id,
                                        txn_table.c.kind == TxnKind.REFUND)
                .order_by(txn_table.c.id)).all()]
        rev = self.store.review_of(conn, int(row.id))
        if rev is not None:
            out["review"] = self.review(conn, rev)
        out["ledger"] = [{"group": g.id, "kind": g.kind, "amount_minor": g.amount_minor,
                          "currency": g.currency, "reverses": g.reverses, "memo": g.memo,
                          "effective": self.ledger.effective(conn, g.id),
                          "entries": self.ledger.entries(conn, g.id)}
                         for g in self.ledger.groups(conn, txn_reference(int(row.id)))]
        return out

    def review(self, conn: Connection, rev: Row[Any] | None) -> dict[str, Any]:
        """A refund review: state, approvals so far and the refund it holds."""
        assert rev is not None
        row = self.store.txn_by_id(conn, int(rev.txn_id))
        assert row is not None
        return {
            "id": int(rev.id), "state": rev.state, "level": int(rev.level),
            "approvals_needed": int(rev.level),
            "approved_by": [{"approver": a.approver, "note": a.note, "at": iso_ms(int(a.at_ms))}
                            for a in self.store.approvals(conn, int(rev.id))],
            "reason": rev.reason, "created": iso_ms(int(rev.created_ms)),
            "decided": iso_ms(int(rev.decided_ms)) if rev.decided_ms is not None else None,
            "rrn": row.rrn, "merchant_id": row.merchant_id, "terminal_id": row.terminal_id,
            "amount_minor": int(row.amount_minor), "currency": row.currency,
            "pan": row.pan_masked, "refund_reason": row.reason,
        }


def capture_state(row: Row[Any]) -> str:
    """The transaction's state as the admin API names it (CAPTURED, VOIDED, PENDING_REVIEW...)."""
    if row.state == TxnState.DECLINED:
        return "DECLINED"
    if row.kind == TxnKind.AUTH:
        return {"authorized": "AUTHORIZED", "completed": "CAPTURED",
                "reversed": "CANCELLED"}.get(row.state, str(row.state).upper())
    if row.kind == TxnKind.REFUND and row.state == TxnState.APPROVED:
        return "PENDING_REVIEW" if row.review_state == ReviewState.PENDING else "APPROVED"
    if row.kind == TxnKind.ADJUSTMENT:
        return "ADJUSTMENT"
    return {"approved": "CAPTURED", "voided": "VOIDED", "reversed": "REVERSED",
            "rejected": "REJECTED"}.get(row.state, str(row.state).upper())


def settlement_state(batch_row: Row[Any] | None) -> str | None:
    """OPEN_BATCH or CLOSED_BATCH for the transaction's batch; None when it has none."""
    if batch_row is None:
        return None
    return "OPEN_BATCH" if batch_row.state == "open" else "CLOSED_BATCH"


def _masked(text: str | None) -> str | None:
    return scrub(text) if text else text


def iso_ms(at_ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="milliseconds")
