"""Decide and book: one handler per logical transaction, and the table that picks it.

A handler runs inside the request's write transaction, after the identify and de-duplicate
stages. It gathers the facts the pure rules need (:mod:`host.rules`, :mod:`host.cards`), takes
their :class:`~host.rules.Decision`, reserves the transaction's id, posts the ledger group of
the booking's recipe (:mod:`host.pipeline.postings`) under it, then writes the transaction row
whole, and returns the typed answer. Nothing here reads a field number: the typed request
(``ctx.message``) carries what a handler needs. Kinds, states and review states are enums here
and plain strings at the storage port (``.value``: an exact ``str`` binds to a SQL parameter
faster than a ``str`` subclass).

:data:`HANDLERS` maps each :class:`~protocol.transactions.TxnType` to its handler; adding a
message type means adding a row there (and its parsing in :mod:`protocol.messages`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from host import cards, rules, wire
from host.domain import ReviewState, TxnKind, TxnState
from host.pipeline import postings
from host.pipeline.context import Context
from host.pipeline.ports import Record
from host.pipeline.replies import Reply, financial_reply, log_context
from host.request_key import request_key_of
from host.rules import Decision
from host.settlement.book import RefundNotice
from host.store import txn_reference
from protocol.codes import NetworkCode, RuleId
from protocol.masking import Pan
from protocol.messages import (
    AuthorizationRequest,
    BatchTotals,
    BatchUploadRequest,
    BatchUploadResponse,
    CompletionAdvice,
    FinancialRequest,
    FinancialResponse,
    NetworkRequest,
    NetworkResponse,
    ReconciliationRequest,
    ReconciliationResponse,
    RefundRequest,
    ReversalRequest,
    SaleRequest,
    VoidRequest,
)
from protocol.money import Money
from protocol.transactions import TxnType


@dataclass(frozen=True)
class Handler:
    """How one logical transaction is decided and booked.

    :ivar run: the handler.
    :ivar deduplicated: whether the request key is checked and the answer stored (network
        management is answered afresh every time).
    """

    run: Callable[[Context], Reply]
    deduplicated: bool = True


# == 0800 =====================================================================================


def network(ctx: Context) -> Reply:
    """Sign-on, sign-off and echo: a sign-on/off records the terminal's standing."""
    req = ctx.message
    assert isinstance(req, NetworkRequest)
    store = ctx.host.store
    if req.code is not NetworkCode.ECHO:
        store.ensure_terminal(ctx.conn, req.terminal_id, req.merchant_id, ctx.now_ms,
                              enrolled=False)
        store.set_signed_on(ctx.conn, req.terminal_id, req.code is NetworkCode.SIGN_ON)
    resp = NetworkResponse(mti_value="0810", stan=req.stan, terminal_id=req.terminal_id,
                           merchant_id=req.merchant_id, transmitted_at=req.transmitted_at,
                           response_code="00", business_date=ctx.de15, code=req.code.value)
    security = ctx.host.security
    if security is not None:
        resp = security.sign_on(ctx.conn, req, resp)  # working keys in DE62
    return Reply(resp, log_context(ctx.fields, "network", resp.response_code, resp.rule))


# == 0100 / 0200 / 0220 =======================================================================

FinancialHandler = Callable[[Context, Any, "Pan | None", "Decision | None"], Reply]

_KIND = {AuthorizationRequest: "auth", SaleRequest: "sale", RefundRequest: "refund",
         VoidRequest: "void", CompletionAdvice: "completion"}


def financial(handler: FinancialHandler) -> Callable[[Context], Reply]:
    """``handler`` behind the steps every financial request takes: a ``no_response`` test
    card answers nothing, then the common checks (:func:`precheck`)."""

    def run(ctx: Context) -> Reply:
        req = ctx.message
        assert isinstance(req, FinancialRequest)
        pan = req.card.account if req.card is not None else None
        if pan is not None and cards.silent_card(ctx.host.config, pan):
            kind = _KIND.get(type(req), "financial")
            return Reply(None, log_context(ctx.fields, kind, "", None, note="no_response"),
                         silent=True)
        return handler(ctx, req, pan, precheck(ctx, req, pan))

    return run


def precheck(ctx: Context, req: FinancialRequest, pan: Pan | None) -> Decision | None:
    """Checks common to every financial request; a decline or None."""
    if pan is not None and not pan.luhn_ok():
        return Decision.decline(RuleId.INVALID_CARD_NUMBER, ("luhn",))
    declined = rules.currency_accepted(ctx.merchant, req.amount.currency)
    if declined is not None:
        return declined
    if ctx.tombstoned:  # read by the identify stage
        return Decision.decline(RuleId.REVERSED_BEFORE_ARRIVAL, ("tombstone",))
    security = ctx.host.security
    if security is None:
        return None
    return security.check_pin(ctx.conn, ctx.fields, pan, ctx.bdate, ctx.now_ms,
                              ctx.card_hash)  # DE52, when the host holds a PIN key


#: The issuer's approval of a purchase: one value, shared (a decision is immutable).
_ISSUER_APPROVED = Decision.approve(("issuer",))


def purchase(ctx: Context, req: SaleRequest | AuthorizationRequest, pan: Pan | None,
             pre: Decision | None) -> Reply:
    """A sale (captured) or an authorization (held)."""
    assert pan is not None  # parse_request guarantees card data on 0100/0200 purchases
    config = ctx.host.config
    decision = pre
    if decision is None and req.amount.minor <= 0:
        decision = Decision.decline(RuleId.ZERO_AMOUNT, ("amount_positive",))
    if decision is None:
        issuer = cards.issuer_decision(config, pan, req.amount.minor)
        if issuer.approved:
            decision = _ISSUER_APPROVED
        else:
            assert issuer.rule is not None
            decision = Decision(False, issuer.code, issuer.rule, ("issuer",))
    is_auth = isinstance(req, AuthorizationRequest)
    kind = TxnKind.AUTH if is_auth else TxnKind.SALE
    ids = ctx.host.store.new_txn(ctx.conn)
    group = None
    if decision.approved:
        recipe = postings.HOLD if is_auth else postings.CAPTURE
        group = post(ctx, ids[0], kind,
                     postings.entries(recipe, req.merchant_id, req.amount.minor),
                     req.amount.currency)
    _, rrn, code = insert(ctx, ids, req, kind, decision, pan, group_id=group,
                          state=TxnState.AUTHORIZED if is_auth else TxnState.APPROVED,
                          batched=not is_auth)
    return financial_reply(ctx.fields, req, kind, decision, rrn, code, pan, ctx.de15)


def completion(ctx: Context, req: CompletionAdvice, pan: Pan | None,
               pre: Decision | None) -> Reply:
    """Capture (part of) an authorization hold: release the hold, book the capture."""
    host, conn = ctx.host, ctx.conn
    hold = host.store.find_hold(conn, req.terminal_id, req.merchant_id, req.approval_code,
                                req.original_rrn)
    view = host.store.view(conn, hold) if hold is not None else None
    decision = pre or rules.evaluate_completion(req.amount.minor, req.amount.currency, view)
    if pan is None and hold is not None:
        pan_masked, pan_hash = hold.pan_masked, hold.pan_hash
    else:
        pan_masked, pan_hash = (pan.masked, ctx.card_hash(pan)) if pan else (None, None)
    ids = host.store.new_txn(conn)
    group = None
    amount = req.amount.minor
    if decision.approved and hold is not None:
        host.ledger.reverse(conn, int(hold.group_id), at_ms=ctx.now_ms,
                            reference=txn_reference(ids[0]), kind="hold_release")
        group = post(ctx, ids[0], TxnKind.COMPLETION,
                     postings.entries(postings.CAPTURE, req.merchant_id, amount),
                     req.amount.currency)
    _, rrn, code = insert(ctx, ids, req, TxnKind.COMPLETION, decision, None, group_id=group,
                          original_id=hold.id if hold is not None else None,
                          pan_masked=pan_masked, pan_hash=pan_hash)
    if group is not None:
        assert hold is not None
        restate(ctx, int(hold.id), TxnState.COMPLETED, "completed", by=rrn, amount_minor=amount)
    return financial_reply(ctx.fields, req, TxnKind.COMPLETION, decision, rrn, code, pan,
                           ctx.de15)


def refund(ctx: Context, req: RefundRequest, pan: Pan | None, pre: Decision | None) -> Reply:
    """A refund, referenced to its sale by RRN (or unreferenced where the policy allows);
    above the review amount it is approved but held for an operator's review."""
    assert pan is not None
    host, conn = ctx.host, ctx.conn
    original, view = (host.store.original(conn, req.original_rrn) if req.original_rrn
                      else (None, None))
    decision = pre
    if decision is None:
        ask = rules.RefundAsk(
            merchant_id=req.merchant_id, currency=req.amount.currency,
            amount_minor=req.amount.minor, pan_hash=ctx.card_hash(pan),
            referenced=bool(req.original_rrn), now_ms=ctx.now_ms,
            # Summed only when a daily cap is set: it reads every refund of the day.
            merchant_refunded_today_minor=host.store.merchant_refunded(
                conn, req.merchant_id, ctx.bdate)
            if ctx.policy.daily_amount_cap_minor is not None else 0)
        decision = rules.evaluate_refund(ask, view, ctx.policy)
    review = decision.review_level if decision.approved else 0
    ids = host.store.new_txn(conn)
    row_id = ids[0]
    group = None
    if decision.approved:
        recipe = postings.REFUND_FOR_REVIEW if review else postings.REFUND
        parent = int(original.group_id) if original is not None and \
            original.group_id is not None else None
        group = post(ctx, row_id, TxnKind.REFUND,
                     postings.entries(recipe, req.merchant_id, req.amount.minor),
                     req.amount.currency, parent_id=parent)
    _, rrn, code = insert(
        ctx, ids, req, TxnKind.REFUND, decision, pan, group_id=group,
        original_id=original.id if original is not None else None,
        review_state=ReviewState.PENDING.value if review else None, reason=req.reason.value,
        evidence=req.evidence, operator=req.operator)
    remaining = None
    if view is not None and view.kind in rules.REFUNDABLE_KINDS and view.merchant_id == \
            req.merchant_id:
        left = view.remaining_minor - (req.amount.minor if decision.approved else 0)
        remaining = Money(max(left, 0), view.currency)
    if decision.approved:
        amount = req.amount.minor
        if review:
            review_id = host.store.add_review(conn, row_id, review, ctx.now_ms)
            host.store.add_event(conn, row_id, ctx.now_ms, "review_opened",
                                 review_id=review_id, level=review)
        if original is not None:
            host.store.add_event(conn, int(original.id), ctx.now_ms, "refunded", by=rrn,
                                 amount_minor=amount)
        if not review and host.settlement is not None:
            # The values just written to the refund's row, not read back.
            host.settlement.notify_refund_of(conn, "refund_approved", RefundNotice(
                req.merchant_id, rrn, original.rrn if original is not None else None,
                pan.masked, amount, req.amount.currency, req.reason.value), ctx.now)
    return financial_reply(ctx.fields, req, TxnKind.REFUND, decision, rrn, code, pan, ctx.de15,
                           remaining=remaining)


def void(ctx: Context, req: VoidRequest, pan: Pan | None, pre: Decision | None,
         kinds: tuple[str, ...] = ()) -> Reply:
    """Cancel a sale (or a refund) in the open batch: its ledger groups are mirrored.
    ``kinds``: the kinds of original this void may name (see :class:`rules.VoidAsk`)."""
    host, conn = ctx.host, ctx.conn
    original, view = host.store.original(conn, req.original_rrn)
    ask = rules.VoidAsk(req.merchant_id, req.terminal_id, req.amount.minor, req.voids_refund,
                        kinds)
    decision = pre or rules.evaluate_void(ask, view, host.config.void)
    pan_masked = original.pan_masked if original is not None else None
    pan_hash = original.pan_hash if original is not None else None
    posts = decision.approved and original is not None
    ids = host.store.new_txn(conn)
    groups = mirror(ctx, original, ids[0], "void") if posts else []
    _, rrn, code = insert(ctx, ids, req, TxnKind.VOID, decision, None,
                          group_id=groups[0] if groups else None,
                          original_id=original.id if original is not None else None,
                          pan_masked=pan_masked, pan_hash=pan_hash, operator=req.operator)
    if posts:
        assert original is not None
        host.store.update_txn(conn, int(original.id), state=TxnState.VOIDED.value)
        if original.kind == TxnKind.COMPLETION and original.original_id is not None:
            # The void mirrored the hold's release too: the hold is live again, as after
            # a reversal of the completion (undo).
            host.store.update_txn(conn, int(original.original_id), state=TxnState.AUTHORIZED.value)
        cancel_review(ctx, int(original.id), "voided")
        host.store.add_event(conn, int(original.id), ctx.now_ms, "voided", by=rrn)
    return financial_reply(ctx.fields, req, TxnKind.VOID, decision, rrn, code, pan, ctx.de15)


def cancel(ctx: Context, req: VoidRequest, pan: Pan | None, pre: Decision | None) -> Reply:
    """Release the authorization hold ``req.original_rrn`` names before it is completed (a
    pre-authorization cancel): the hold's group is mirrored as a reversal of it would be, the
    hold is ``reversed`` (the admin API's CANCELLED), and the cancel is a row of its own
    (``auth_cancel``), in no batch: no money was captured, so there is nothing to settle."""
    host, conn = ctx.host, ctx.conn
    hold, view = host.store.original(conn, req.original_rrn)
    ask = rules.VoidAsk(req.merchant_id, req.terminal_id, req.amount.minor, False)
    decision = pre or rules.evaluate_cancel(ask, view)
    posts = decision.approved and hold is not None
    ids = host.store.new_txn(conn)
    groups = mirror(ctx, hold, ids[0], "reversal") if posts else []
    card = {"pan_masked": hold.pan_masked, "pan_hash": hold.pan_hash} if hold is not None \
        else {}
    _, rrn, code = insert(ctx, ids, req, TxnKind.AUTH_CANCEL, decision, pan, batched=False,
                          group_id=groups[0] if groups else None,
                          original_id=hold.id if hold is not None else None,
                          operator=req.operator, **card)
    if posts:
        assert hold is not None
        restate(ctx, int(hold.id), TxnState.REVERSED, "reversed", by=rrn, cancelled=True)
    return financial_reply(ctx.fields, req, TxnKind.AUTH_CANCEL, decision, rrn, code, pan,
                           ctx.de15)


def restate(ctx: Context, txn_id: int, state: TxnState, event: str, **detail: Any) -> None:
    """Move transaction ``txn_id`` to ``state`` and record ``event`` on its audit trail."""
    ctx.host.store.update_txn(ctx.conn, txn_id, state=state.value)
    ctx.host.store.add_event(ctx.conn, txn_id, ctx.now_ms, event, **detail)


def mirror(ctx: Context, original: Record | None, txn_id: int, kind: str) -> list[int]:
    """Mirror every effective ledger group of ``original`` under transaction ``txn_id`` (its
    id reserved, its row not written yet) as groups of ``kind``; returns the mirrors."""
    assert original is not None
    return ctx.host.ledger.reverse_reference(
        ctx.conn, txn_reference(int(original.id)), at_ms=ctx.now_ms,
        new_reference=txn_reference(txn_id), kind=kind)


# == 0400 / 0401 ==============================================================================


def reversal(ctx: Context) -> Reply:
    """Match an 0400/0401 to its original and undo it (see :func:`rules.evaluate_reversal`).

    Matching: the newest non-declined transaction with the reversal's (MID, TID, STAN) on
    the current business date, else on the previous one -- a reversal sent just after the
    cut-off still finds the sale made just before it. Two dates are enough because a
    terminal reuses a STAN only after its counter wraps. Nothing found: 00
    REVERSAL_UNKNOWN (or 25) and a **tombstone** on the current date, unless one already
    exists on either date (a repeat). An original arriving later is declined 12
    REVERSED_BEFORE_ARRIVAL when a tombstone sits on its business date or the previous
    one: both dates come from the host's clock at arrival and the original arrives after
    its reversal, so its date is the tombstone's or later, never earlier (an original
    already stored on date D when the reversal comes on D+1 is matched, not tombstoned).
    With DE90 the original is found exactly, at any age: DE90's MTI, STAN and DE7 are the
    request key the original was stored under. Only a reversal without DE90 (or whose DE90
    names nothing stored) relies on the two-date match: two or more business dates after
    its original it finds nothing, answers 00 REVERSAL_UNKNOWN, leaves a tombstone and the
    original stays effective.
    """
    req = ctx.message
    assert isinstance(req, ReversalRequest)
    host, conn = ctx.host, ctx.conn
    store = host.store
    target = named_original(ctx, req) or store.reversal_target(
        conn, req.merchant_id, req.terminal_id, req.stan, ctx.match_dates)
    if target is not None and target.kind == TxnKind.ADJUSTMENT:
        # The newest row with this key is the adjustment a late reversal booked: a repeat
        # of that reversal is answered for the transaction it reversed.
        target = store.txn_by_id(conn, target.original_id, lock=True)
    rrn = target.rrn if target is not None else None
    adjustment = None
    if target is None:
        if not ctx.tombstoned:  # read by the identify stage
            store.mark_reversal(conn, req.merchant_id, req.terminal_id, req.stan,
                                ctx.bdate, None, ctx.now_ms)
            store.add_event(conn, None, ctx.now_ms, "tombstone", stan=req.stan,
                            terminal=req.terminal_id)
        if host.config.reversal.unknown_original_reply == "25":
            decision = Decision.decline(RuleId.ORIGINAL_NOT_FOUND, ("reversal_match",))
        else:
            decision = Decision(True, "00", RuleId.REVERSAL_UNKNOWN, ("reversal_match",))
    elif target.state in (TxnState.APPROVED, TxnState.AUTHORIZED):
        decision = rules.evaluate_reversal(store.view(conn, target))
        if decision.approved:
            groups = undo(ctx, target)
            if "late_adjustment" in decision.fired:
                adjustment = late_adjustment(ctx, req, target, groups)
    elif target.state == TxnState.COMPLETED:
        decision = Decision.decline(RuleId.ORIGINAL_NOT_EFFECTIVE, ("reversal_match",))
    else:  # already reversed (a repeat), voided or rejected: nothing left to undo
        decision = Decision.approve(("reversal_match", "already_undone"))
    resp = FinancialResponse(
        mti_value="0410", stan=req.stan, terminal_id=req.terminal_id,
        merchant_id=req.merchant_id, transmitted_at=req.transmitted_at,
        response_code=decision.code, rule=decision.de44, business_date=ctx.de15,
        processing_code=req.processing_code, amount=req.amount, rrn=rrn)
    pan = req.card.account if req.card is not None else None
    more = {"adjustment": adjustment} if adjustment else {}
    return Reply(resp, log_context(ctx.fields, "reversal", decision.code, decision.de44,
                                   rrn=rrn, pan=pan, **more))


def named_original(ctx: Context, req: ReversalRequest) -> Record | None:
    """The transaction DE90 names (this terminal's, this merchant's, not declined)."""
    named = req.original
    if named is None:
        return None
    key = request_key_of(named.mti, req.terminal_id, named.stan, named.transmitted_at)
    row = ctx.host.store.txn_by_request_key(ctx.conn, key)
    if row is None or row.merchant_id != req.merchant_id or row.state == TxnState.DECLINED:
        return None
    return row


def late_adjustment(ctx: Context, req: ReversalRequest, target: Record,
                    groups: list[int]) -> str:
    """Book a reversal that came after the original's batch closed: the closed batch and its
    content hash stay as they are; the terminal's open batch gets an ``adjustment`` row of
    the opposite sign (-amount for a sale, +amount for a refund) that settlement nets in
    the merchant's next funding. Returns the adjustment's RRN."""
    store, conn = ctx.host.store, ctx.conn
    sign = 1 if target.kind == TxnKind.REFUND else -1
    amount = sign * int(target.amount_minor)
    batch_id = store.open_batch(conn, target.terminal_id, target.merchant_id, ctx.now_ms,
                                ctx.bdate)
    row_id, rrn, _ = store.insert_txn(
        conn, kind=TxnKind.ADJUSTMENT.value, mti=req.mti, processing_code=req.processing_code,
        request_key=f"{ctx.key}|adjustment",
        merchant_id=target.merchant_id, terminal_id=target.terminal_id, stan=target.stan,
        business_date=ctx.bdate, at_ms=ctx.now_ms, amount_minor=amount,
        currency=target.currency, pan_masked=target.pan_masked, pan_hash=target.pan_hash,
        original_id=int(target.id), state=TxnState.APPROVED.value, response_code="00",
        batch_id=batch_id, group_id=groups[0] if groups else None,
        rules_fired=json.dumps(["late_adjustment"]))
    store.add_event(conn, row_id, ctx.now_ms, "adjustment", of=target.rrn,
                    amount_minor=amount, batch=batch_id)
    store.add_event(conn, int(target.id), ctx.now_ms, "late_reversal",
                    adjustment=rrn, batch=batch_id)
    return rrn


def undo(ctx: Context, target: Record) -> list[int]:
    """Reverse an effective transaction: mirror its groups and restore what it changed;
    returns the mirror groups."""
    host, conn = ctx.host, ctx.conn
    store = host.store
    tid = int(target.id)
    groups = host.ledger.reverse_reference(conn, txn_reference(tid), at_ms=ctx.now_ms,
                                           new_reference=txn_reference(tid), kind="reversal")
    store.update_txn(conn, tid, state=TxnState.REVERSED.value)
    store.mark_reversal(conn, target.merchant_id, target.terminal_id, target.stan,
                        ctx.bdate, tid, ctx.now_ms)
    store.add_event(conn, tid, ctx.now_ms, "reversed")
    original = store.txn_by_id(conn, target.original_id, lock=True)
    if target.kind == TxnKind.VOID and original is not None:
        restate(ctx, int(original.id), TxnState.APPROVED, "void_reversed", by=target.rrn)
        if original.kind == TxnKind.COMPLETION and original.original_id is not None:
            # the void's mirror of the hold's release is undone too: the hold is completed
            store.update_txn(conn, int(original.original_id), state=TxnState.COMPLETED.value)
    elif target.kind in (TxnKind.COMPLETION, TxnKind.AUTH_CANCEL) and original is not None:
        # the hold is live again
        store.update_txn(conn, int(original.id), state=TxnState.AUTHORIZED.value)
        if target.kind == TxnKind.AUTH_CANCEL:
            store.add_event(conn, int(original.id), ctx.now_ms, "cancel_reversed",
                            by=target.rrn)
    elif target.kind == TxnKind.REFUND:
        cancel_review(ctx, tid, "reversed")
        if original is not None:
            store.add_event(conn, int(original.id), ctx.now_ms, "refund_reversed",
                            by=target.rrn, amount_minor=int(target.amount_minor))
    return groups


def cancel_review(ctx: Context, txn_id: int, why: str) -> None:
    """Cancel the pending review of a refund that was voided or reversed."""
    store = ctx.host.store
    rev = store.review_of(ctx.conn, txn_id)
    if rev is not None and rev.state == ReviewState.PENDING:
        store.decide_review(ctx.conn, int(rev.id), ReviewState.CANCELLED.value, ctx.now_ms,
                            why)
        store.update_txn(ctx.conn, txn_id, review_state=ReviewState.CANCELLED.value)


# == 0500 / 0320 ==============================================================================


def reconcile(ctx: Context) -> Reply:
    """Close the terminal's batch when its totals match ours (or after an upload); 95 when
    they do not."""
    req = ctx.message
    assert isinstance(req, ReconciliationRequest)
    store, conn, cur = ctx.host.store, ctx.conn, req.totals.currency
    open_batch = store.current_batch(conn, req.terminal_id)
    theirs = _totals_dict(req.totals)
    if open_batch is None:
        closed = store.closed_batch(conn, req.terminal_id, req.batch_number)
        ours = json.loads(closed.totals) if closed is not None and closed.totals else \
            {k: 0 for k in theirs}
        ok = ours == theirs or req.after_upload
    else:
        ours = store.batch_totals(conn, int(open_batch.id), cur)
        ok = ours == theirs or req.after_upload
        if ok:
            store.close_batch(conn, int(open_batch.id), number=req.batch_number,
                              at_ms=ctx.now_ms, closed_by="0500", totals=ours)
            store.add_event(conn, None, ctx.now_ms, "batch_closed",
                            batch=int(open_batch.id), terminal=req.terminal_id,
                            number=req.batch_number, after_upload=req.after_upload)
    rule = None if ok else RuleId.RECONCILE_MISMATCH.value
    resp = ReconciliationResponse(
        mti_value="0510", stan=req.stan, terminal_id=req.terminal_id,
        merchant_id=req.merchant_id, transmitted_at=req.transmitted_at,
        response_code="00" if ok else "95", rule=rule, business_date=ctx.de15,
        batch_number=req.batch_number, processing_code=wire.Echo.of(ctx.fields).processing_code,
        totals=BatchTotals(cur, ours["debits_count"], ours["debits_minor"],
                           ours["credits_count"], ours["credits_minor"]))
    return Reply(resp, log_context(ctx.fields, "reconciliation", resp.response_code, rule))


def upload(ctx: Context) -> Reply:
    """One transaction of a batch the host disagreed with: recorded against ours."""
    req = ctx.message
    assert isinstance(req, BatchUploadRequest)
    store = ctx.host.store
    row = store.txn_by_rrn(ctx.conn, req.rrn)
    found = row is not None and row.terminal_id == req.terminal_id
    store.add_event(ctx.conn, int(row.id) if row is not None and found else None,
                    ctx.now_ms, "uploaded", terminal=req.terminal_id, rrn=req.rrn,
                    batch=req.batch_number, matches=bool(
                        found and row is not None
                        and int(row.amount_minor) == req.amount.minor))
    rule = None if found else RuleId.ORIGINAL_NOT_FOUND.value
    resp = BatchUploadResponse(
        mti_value="0330", stan=req.stan, terminal_id=req.terminal_id,
        merchant_id=req.merchant_id, transmitted_at=req.transmitted_at,
        response_code="00" if found else "25", rule=rule, business_date=ctx.de15,
        rrn=req.rrn, batch_number=req.batch_number)
    return Reply(resp, log_context(ctx.fields, "upload", resp.response_code, rule,
                                   rrn=req.rrn))


# == writing ==================================================================================


def insert(ctx: Context, ids: tuple[int, str, str], req: FinancialRequest, kind: TxnKind,
           decision: Decision, pan: Pan | None, *, state: TxnState = TxnState.APPROVED,
           batched: bool = True, **extra: Any) -> tuple[int, str, str]:
    """Insert the transaction row under ``ids`` (:meth:`TxnStore.new_txn`), whole: its ledger
    group (``group_id`` in ``extra``) is posted first, so the row needs no UPDATE after."""
    store = ctx.host.store
    values: dict[str, Any] = {
        "id": ids[0], "rrn": ids[1], "approval_code": ids[2],
        "kind": kind.value, "mti": req.mti, "processing_code": req.processing_code,
        "request_key": ctx.key,
        "merchant_id": req.merchant_id, "terminal_id": req.terminal_id, "stan": req.stan,
        "business_date": ctx.bdate, "at_ms": ctx.now_ms, "amount_minor": req.amount.minor,
        "currency": req.amount.currency,
        "state": (state if decision.approved else TxnState.DECLINED).value,
        "response_code": decision.code, "rule": decision.de44,
        "rules_fired": _fired_text(decision.fired),
    }
    if pan is not None:
        values["pan_masked"], values["pan_hash"] = pan.masked, ctx.card_hash(pan)
    values.update(extra)
    if decision.approved and batched:
        locked = ctx.terminal
        if locked is not None and locked.terminal_id != req.terminal_id:
            locked = None
        values["batch_id"] = store.open_batch(ctx.conn, req.terminal_id, req.merchant_id,
                                              ctx.now_ms, ctx.bdate, locked=locked)
    store.insert_txn(ctx.conn, **values)
    store.add_event(ctx.conn, ids[0], ctx.now_ms, "decided", rc=decision.code,
                    rule=decision.de44, fired=list(decision.fired))
    return ids


@functools.lru_cache(maxsize=256)
def _fired_text(fired: tuple[str, ...]) -> str:
    # Decisions fire a handful of distinct check lists: each is encoded once, not per row.
    return json.dumps(list(fired))


def post(ctx: Context, txn_id: int, kind: TxnKind, legs: list[tuple[str, str, int]],
         currency: str, parent_id: int | None = None) -> int:
    """Post the ledger group of transaction ``txn_id`` (reserved, its row not written yet)."""
    return ctx.host.ledger.post_group(ctx.conn, legs, currency=currency, at_ms=ctx.now_ms,
                                      reference=txn_reference(txn_id), kind=kind.value,
                                      parent_id=parent_id)


def _totals_dict(totals: BatchTotals) -> dict[str, int]:
    return {"debits_count": totals.debits_count, "debits_minor": totals.debits_minor,
            "credits_count": totals.credits_count, "credits_minor": totals.credits_minor}


_NETWORK = Handler(network, deduplicated=False)
_VOID = Handler(financial(void))

#: The handler of each logical transaction.
HANDLERS: Mapping[TxnType, Handler] = {
    TxnType.SALE: Handler(financial(purchase)),
    TxnType.AUTHORIZATION: Handler(financial(purchase)),
    TxnType.REFUND: Handler(financial(refund)),
    TxnType.VOID: _VOID,
    TxnType.VOID_REFUND: _VOID,
    TxnType.COMPLETION: Handler(financial(completion)),
    TxnType.REVERSAL: Handler(reversal),
    TxnType.SETTLEMENT: Handler(reconcile),
    TxnType.SETTLEMENT_AFTER_UPLOAD: Handler(reconcile),
    TxnType.BATCH_UPLOAD: Handler(upload),
    TxnType.SIGN_ON: _NETWORK,
    TxnType.SIGN_OFF: _NETWORK,
    TxnType.ECHO: _NETWORK,
}
