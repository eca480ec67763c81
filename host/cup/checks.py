"""The CUP host checks, in the CUP order, inside the request's write transaction.

The generic flow checks the MAC first and then the terminal. A CUP host answers in this order
(the mandatory fields, 30, were checked when the request was read):

1. merchant: unknown, or served by another host's partition -> ``03``;
2. terminal: not registered -> ``97``, registered but not enrolled -> ``58`` (a terminal of
   another merchant is ``03``, as on the generic profile);
3. signed on, and on the batch of the sign-on (60.2 = the host's batch number) -> else ``77``,
   and the terminal signs on again; sign-on and sign-off themselves are exempt, and so is the
   batch of a request answered before (a repeated 0500 names the batch it closed);
4. MAC (the CUP ECB POS MAC in DE64) -> ``A0`` when it fails, ``77`` when the terminal has no
   keys yet;
5. then, in the pipeline, the duplicate check on (DE42, DE41, DE11, 60.2).

Each refusal books nothing: it raises :class:`~host.pipeline.context.Decline`, which rolls the
transaction back.
"""

from __future__ import annotations

from host.cup.batch import host_batch
from host.pipeline import stages
from host.pipeline.context import Context, Decline
from host.pipeline.replies import plain_reply
from protocol.codes import RuleId
from protocol.transactions import TxnType

_EXEMPT = frozenset({TxnType.SIGN_ON, TxnType.SIGN_OFF})


def _refuse(ctx: Context, code: str, rule: RuleId, detail: str = "") -> Decline:
    text = f"{rule.value}:{detail}" if detail else rule.value
    return Decline(plain_reply(ctx.fields, code, text))


def merchant_and_terminal(ctx: Context) -> None:
    """Steps 1 and 2 (before the generic identify stage, which then finds both in order)."""
    host, req = ctx.host, ctx.message
    stages.served(ctx)  # another host's merchant: 03 before the terminal is looked at
    if host.allow_unknown_terminals:  # development mode enrols what it does not know
        return
    listed = host.config.merchant_of_terminal(req.terminal_id)
    row = None if listed is not None else host.store.terminal(ctx.conn, req.terminal_id)
    known = host.config.merchant(req.merchant_id) is not None or (
        row is not None and row.merchant_id == req.merchant_id)
    if not known:
        raise _refuse(ctx, "03", RuleId.UNKNOWN_MERCHANT)
    if listed is not None:
        return
    if row is None:
        raise _refuse(ctx, "97", RuleId.UNKNOWN_TERMINAL)
    if not row.enrolled:
        raise _refuse(ctx, "58", RuleId.UNKNOWN_TERMINAL, "NOT_ENROLLED")


def _answered(ctx: Context) -> bool:
    """True when this request's key was answered before: a retransmission of a settlement
    whose answer was lost names the batch it closed, and gets its answer again (or 94), not
    77."""
    return ctx.host.ledger.recall(ctx.conn, ctx.key) is not None


def signed_on_and_mac(ctx: Context) -> None:
    """Steps 3 and 4 (after the identify stage)."""
    if ctx.txn not in _EXEMPT:
        row = ctx.terminal  # read by the identify stage in this transaction
        if row is None or not row.signed_on:
            raise _refuse(ctx, "77", RuleId.SIGN_ON_REQUIRED)
        facts = ctx.message.cup
        if facts is not None and facts.batch != host_batch(ctx) and not _answered(ctx):
            raise _refuse(ctx, "77", RuleId.SIGN_ON_REQUIRED, "BATCH")
    refused = stages.authenticate(ctx)
    if refused is not None:
        raise Decline(refused)
