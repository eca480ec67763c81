"""The CUP handlers: what the CUP profile does differently from the generic one.

Sales, pre-authorizations, completions, refunds, voids and reversals run the generic handlers
of :mod:`host.pipeline.handlers` -- the same rules, ledger postings and events -- behind the
checks only CUP has: a void's DE61 must name its original's batch and trace, a refund's 61.3 its
original's date, a completion's DE61 names its pre-authorization (batch, trace, date) and its
DE38 must be that one's approval code, and a refund (an 0220 advice) is not undone by an
0400. Sign-on, settlement
and the batch upload are CUP's own:

* sign-on ``0800`` (60.3 ``003``: PIN and MAC keys; ``004``: and the data key) answers the
  host's batch number in 60.2 and the working keys in DE62; sign-off ``0820`` signs off;
* settlement ``0500`` compares the terminal's CUP totals (DE48) with the host's, counted the
  CUP way (:func:`host.cup.batch.cup_totals`): equal -> the batch closes and the 0510 echoes
  the terminal's totals with result flag ``1``; different -> the batch stays open and the 0510
  carries the host's totals with flag ``2``; DE39 is ``00`` either way;
* batch upload ``0320`` 60.3 ``201``: each 40-digit record is checked against the batch (an
  ``uploaded`` event per record says whether the host has that trace with that amount); the
  closing ``0320`` 60.3 ``207`` closes the batch.

The batch a CUP terminal settles is its batch number (60.2), which the settlement cut-off
knows nothing of: the cut-off closes the host's batch without a number (and funds it), the
terminal keeps its number, and the host's next batch carries the same one. So the 0500 and the
upload compare with every batch since the terminal's last settled number -- those the cut-off
closed and the open one -- as an acquirer reconciles a terminal's batch by its number. Closing
closes the open one with the number; when the cut-off closed all of it, an empty batch closed
with the number records that the terminal settled it, and the next sign-on gives the next
number.

Batches close through the same store calls and ``batch_closed`` event as the generic 0500, so
settlement (:mod:`host.settlement`) funds them alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from host.cup.batch import batch_number_of, cup_totals, host_batch, is_domestic
from host.domain import TxnKind
from host.pipeline import handlers as generic
from host.pipeline.context import Context
from host.pipeline.handlers import Handler, financial
from host.pipeline.ports import Record
from host.pipeline.replies import Reply, log_context
from host.request_key import request_key_of
from host.rules import Decision
from host.settlement.cutoffs import zone
from protocol.codes import NetworkCode, RuleId
from protocol.cup_private import CupFacts, CupTotals, De60, SettlementResult
from protocol.masking import Pan
from protocol.messages import (
    AuthorizationRequest,
    BatchUploadResponse,
    CompletionAdvice,
    CupUploadRequest,
    FinancialResponse,
    NetworkRequest,
    NetworkResponse,
    ReconciliationRequest,
    ReconciliationResponse,
    RefundRequest,
    ReversalRequest,
    VoidRequest,
    response_mti,
)
from protocol.transactions import TxnType

#: 60.3 of the sign-on that asks for the data key too.
_WITH_DATA_KEY = "004"
#: 60.3 of the sign-on that asks for single-length DES PIN and MAC keys.
_SINGLE_LENGTH = "001"


def _facts(ctx: Context) -> CupFacts:
    facts = ctx.message.cup
    assert facts is not None  # the CUP reader sets it on every request
    return facts


# == 0800 / 0820 =============================================================================


def network(ctx: Context) -> Reply:
    """Sign-on (keys in DE62, the host's batch in 60.2) or sign-off."""
    req = ctx.message
    assert isinstance(req, NetworkRequest)
    facts, store = _facts(ctx), ctx.host.store
    signing_on = req.code is NetworkCode.SIGN_ON
    store.ensure_terminal(ctx.conn, req.terminal_id, req.merchant_id, ctx.now_ms,
                          enrolled=False)
    store.set_signed_on(ctx.conn, req.terminal_id, signing_on)
    mti = response_mti(req.mti)
    resp = NetworkResponse(
        mti_value=mti, stan=req.stan, terminal_id=req.terminal_id,
        merchant_id=req.merchant_id, response_code="00", business_date=ctx.de15,
        cup_data=CupFacts(mti, De60("00", host_batch(ctx), facts.network_code)))
    security = ctx.host.security
    if security is not None:
        resp = security.sign_on(ctx.conn, req, resp,
                                data_key=facts.network_code == _WITH_DATA_KEY,
                                single_length=facts.network_code == _SINGLE_LENGTH)
    return Reply(resp, log_context(ctx.fields, "network", resp.response_code, resp.rule))


# == 0200 void / 0220 refund / 0400 ===========================================================


#: What each CUP void may name: a void (60.1 ``23``) a sale, a completion void (``21``) a
#: completion; the other kind is 25 ORIGINAL_NOT_A_SALE.
_VOIDED_KIND: Mapping[TxnType, tuple[str, ...]] = {
    TxnType.VOID: (TxnKind.SALE.value,), TxnType.VOID_COMPLETION: (TxnKind.COMPLETION.value,)}


def void(ctx: Context, req: VoidRequest, pan: Pan | None, pre: Decision | None) -> Reply:
    """A void (``23``, of a sale) or completion void (``21``, of a completion) whose DE61
    (original batch and trace) must name the original DE37 names. The batch is the one the
    terminal had when it made the original, also once the cut-off closed it: then the generic
    rules answer the settled-original decline (VOID_AFTER_SETTLEMENT, CUP ``25``). Voiding a
    completion makes its pre-authorization's hold live again (the generic void)."""
    named = _facts(ctx).original
    if pre is None and named is not None:
        original = ctx.host.store.txn_by_rrn(ctx.conn, req.original_rrn)
        if original is not None and (original.stan != named.trace or
                                     batch_number_of(ctx, original.batch_id) != named.batch):
            pre = Decision.decline(RuleId.ORIGINAL_NOT_FOUND, ("cup_original",), "DE61")
    return generic.void(ctx, req, pan, pre, kinds=_VOIDED_KIND[ctx.txn])


def refund(ctx: Context, req: RefundRequest, pan: Pan | None, pre: Decision | None) -> Reply:
    """A refund (0220) whose 61.3 must be its original's date (MMDD, merchant's time zone)."""
    original_data = _facts(ctx).original
    if pre is None and original_data is not None and req.original_rrn:
        original = ctx.host.store.txn_by_rrn(ctx.conn, req.original_rrn)
        if original is not None and original_data.date_mmdd != _mmdd(ctx, original):
            pre = Decision.decline(RuleId.ORIGINAL_NOT_FOUND, ("cup_original",), "DATE")
    return generic.refund(ctx, req, pan, pre)


def _named_preauth(ctx: Context, pre: Decision | None) -> tuple[str, Decision | None]:
    """The pre-authorization a completion or a pre-authorization cancel names, as the RRN the
    generic handler then locks it by, and the decline when it names none.

    DE61 names the pre-authorization by the batch (61.1) and trace (61.2) it was sent with, and
    61.3 its date; DE38 quotes its approval code. The host finds it by the request key those
    make (MTI class ``010``, TID, trace, batch: the key the pre-authorization was booked under).
    DE61 naming no pre-authorization of this terminal and merchant is 25
    ``ORIGINAL_NOT_FOUND:DE61``; a DE38 that is not its code, 25 ``ORIGINAL_NOT_FOUND:DE38``;
    another date, 25 ``ORIGINAL_NOT_FOUND:DATE``. With none named, the RRN is one no row has,
    so that a DE38 quoting some other pre-authorization's code links the decline to nothing."""
    facts, req = _facts(ctx), ctx.message
    named = facts.original
    assert named is not None  # the CUP routes require DE61
    key = request_key_of(AuthorizationRequest.MTI, req.terminal_id, named.trace,
                         f"B{named.batch}")
    row = ctx.host.store.txn_by_request_key(ctx.conn, key)
    if row is not None and (row.kind != TxnKind.AUTH or row.merchant_id != req.merchant_id):
        row = None
    if pre is None:
        if row is None:
            pre = Decision.decline(RuleId.ORIGINAL_NOT_FOUND, ("cup_original",), "DE61")
        elif row.approval_code != facts.approval_code:
            pre = Decision.decline(RuleId.ORIGINAL_NOT_FOUND, ("cup_original",), "DE38")
        elif named.date_mmdd != _NO_DATE and named.date_mmdd != _mmdd(ctx, row):
            pre = Decision.decline(RuleId.ORIGINAL_NOT_FOUND, ("cup_original",), "DATE")
    return (str(row.rrn) if row is not None else _NO_RRN), pre


def completion(ctx: Context, req: CompletionAdvice, pan: Pan | None,
               pre: Decision | None) -> Reply:
    """A pre-authorization completion: the request (0200 / 000000 / 06 / 20) or the advice
    (offline completion, 0220 / 000000 / 06 / 24), booked alike. The pre-authorization is the
    one DE61 and DE38 name (:func:`_named_preauth`); the generic completion captures it under
    the generic rules (not completed yet, same currency, at most the held amount)."""
    rrn, pre = _named_preauth(ctx, pre)
    return generic.completion(ctx, replace(req, original_rrn=rrn), pan, pre)


def cancel(ctx: Context, req: VoidRequest, pan: Pan | None, pre: Decision | None) -> Reply:
    """A pre-authorization cancel (0100 / 200000 / 06 / 11): the pre-authorization DE61 and
    DE38 name (:func:`_named_preauth`) is released by the generic cancel, when it is still
    open (not completed, cancelled or reversed: else 25 ORIGINAL_NOT_EFFECTIVE) and DE4 is its
    whole amount (else 64 VOID_AMOUNT_MISMATCH)."""
    rrn, pre = _named_preauth(ctx, pre)
    return generic.cancel(ctx, replace(req, original_rrn=rrn), pan, pre)


#: An RRN no transaction has (RRNs are 12 letters and digits).
_NO_RRN = "-"


#: 61.3 of a DE61 sent without the original's date.
_NO_DATE = "0000"


def _mmdd(ctx: Context, row: Record) -> str:
    """The date (MMDD) the host gave ``row`` in its answer's DE13."""
    local = datetime.fromtimestamp(int(row.at_ms) / 1000, zone(ctx.merchant.timezone))
    return f"{local.month:02d}{local.day:02d}"


#: The MTI of an advice: a refund or a completion advice, which an 0400 does not undo.
_ADVICE = "0220"


def reversal(ctx: Context) -> Reply:
    """An 0400; an advice (0220: a refund, a completion advice) is not reversed: 25
    ORIGINAL_NOT_A_SALE."""
    req = ctx.message
    assert isinstance(req, ReversalRequest)
    target = ctx.host.store.reversal_target(ctx.conn, req.merchant_id, req.terminal_id,
                                            req.stan, ctx.match_dates)
    reply = None
    if target is not None and target.mti == _ADVICE:
        decision = Decision.decline(RuleId.ORIGINAL_NOT_A_SALE, ("reversal_match",), "0220")
        resp = FinancialResponse(
            mti_value="0410", stan=req.stan, terminal_id=req.terminal_id,
            merchant_id=req.merchant_id, response_code=decision.code, rule=decision.de44,
            business_date=ctx.de15, processing_code=req.processing_code, amount=req.amount)
        reply = Reply(resp, log_context(ctx.fields, "reversal", decision.code, decision.de44))
    else:
        reply = generic.reversal(ctx)
    reply.log["reason"] = req.reason_code
    return reply


# == 0500 / 0320 =============================================================================


def _terminal_batch(ctx: Context) -> tuple[Record | None, list[Record]]:
    """The host's side of the batch the terminal settles (see the module docstring): its
    open batch (None when there is none) and the transactions of every batch since the
    terminal's last settled number, oldest first."""
    store, tid = ctx.host.store, ctx.message.terminal_id
    batches = store.batches_since_number(ctx.conn, tid)
    members = [row for b in batches for row in store.batch_members(ctx.conn, int(b.id))]
    return next((b for b in batches if b.state == "open"), None), members


def _close(ctx: Context, open_batch: Record | None, number: str, closed_by: str) -> None:
    """Close the open batch as the generic 0500 does (number, generic totals, event); with
    none open, an empty one, so that the number counts as settled."""
    store, req = ctx.host.store, ctx.message
    currency = ctx.merchant.currency
    batch_id = int(open_batch.id) if open_batch is not None else store.open_batch(
        ctx.conn, req.terminal_id, req.merchant_id, ctx.now_ms, ctx.bdate)
    store.close_batch(ctx.conn, batch_id, number=number, at_ms=ctx.now_ms, closed_by=closed_by,
                      totals=store.batch_totals(ctx.conn, batch_id, currency))
    store.add_event(ctx.conn, None, ctx.now_ms, "batch_closed", batch=batch_id,
                    terminal=req.terminal_id, number=number,
                    after_upload=closed_by == "0320")


def _same(ours: CupTotals, theirs: CupTotals) -> bool:
    return ours.domestic == theirs.domestic and ours.foreign == theirs.foreign


def settle(ctx: Context) -> Reply:
    """0500: compare the CUP totals; close the batch when they agree (see the module)."""
    req = ctx.message
    assert isinstance(req, ReconciliationRequest)
    facts = _facts(ctx)
    theirs = facts.totals
    assert theirs is not None  # the reader requires DE48
    open_batch, members = _terminal_batch(ctx)
    ours = cup_totals(members)
    balanced = _same(ours, theirs)
    if balanced:
        answer = replace(theirs, result=SettlementResult.BALANCED)
        _close(ctx, open_batch, facts.batch, "0500")
    else:
        answer = replace(ours, result=SettlementResult.NOT_BALANCED)
    rule = None if balanced else RuleId.RECONCILE_MISMATCH.value
    resp = ReconciliationResponse(
        mti_value="0510", stan=req.stan, terminal_id=req.terminal_id,
        merchant_id=req.merchant_id, response_code="00", rule=rule, business_date=ctx.de15,
        batch_number=facts.batch, cup_data=CupFacts("0510", facts.de60, totals=answer))
    return Reply(resp, log_context(ctx.fields, "reconciliation", "00", rule,
                                   balanced=balanced))


def upload(ctx: Context) -> Reply:
    """0320: records checked against the open batch (201), or the upload's end (207)."""
    req = ctx.message
    assert isinstance(req, CupUploadRequest)
    facts, store, conn = _facts(ctx), ctx.host.store, ctx.conn
    open_batch, rows = _terminal_batch(ctx)
    if req.closing:
        _close(ctx, open_batch, facts.batch, "0320")
    else:
        members: Mapping[str, Record] = {
            row.stan: row for row in rows if row.kind != TxnKind.ADJUSTMENT}
        for record in facts.records:
            row = members.get(record.trace)
            matches = row is not None and int(row.amount_minor) == record.amount and \
                is_domestic(row.pan_masked) != record.foreign
            store.add_event(conn, int(row.id) if row is not None else None, ctx.now_ms,
                            "uploaded", terminal=req.terminal_id, trace=record.trace,
                            batch=facts.batch, matches=matches)
    resp = BatchUploadResponse(
        mti_value="0330", stan=req.stan, terminal_id=req.terminal_id,
        merchant_id=req.merchant_id, response_code="00", business_date=ctx.de15,
        batch_number=facts.batch, cup_data=CupFacts("0330", facts.de60))
    return Reply(resp, log_context(ctx.fields, "upload", "00", None,
                                   records=len(facts.records)))


_NETWORK = Handler(network, deduplicated=False)

#: The handler of each logical transaction the CUP profile carries.
CUP_HANDLERS: Mapping[TxnType, Handler] = {
    TxnType.SALE: generic.HANDLERS[TxnType.SALE],
    TxnType.AUTHORIZATION: generic.HANDLERS[TxnType.AUTHORIZATION],
    TxnType.REFUND: Handler(financial(refund)),
    TxnType.VOID: Handler(financial(void)),
    TxnType.VOID_COMPLETION: Handler(financial(void)),
    TxnType.COMPLETION: Handler(financial(completion)),
    TxnType.AUTH_CANCEL: Handler(financial(cancel)),
    TxnType.REVERSAL: Handler(reversal),
    TxnType.SETTLEMENT: Handler(settle),
    TxnType.BATCH_UPLOAD: Handler(upload),
    TxnType.SIGN_ON: _NETWORK,
    TxnType.SIGN_OFF: _NETWORK,
}
