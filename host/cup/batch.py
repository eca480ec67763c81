"""The CUP batch number the host keeps for a terminal, and the CUP totals of a batch.

A CUP terminal takes its batch number (60.2) from the host's sign-on answer and moves to the
next number once a settlement closed its batch. The host derives the same number from its own
batches: one more than the terminal's last closed batch number (``000001`` when it has none),
wrapping after ``999999`` as the terminal does. Nothing extra is stored. The settlement cut-off
closes a batch without a number and without a message to the terminal, so the terminal keeps
its number and the batch opened after the cut-off carries the same one.

The totals are counted the CUP way: every sale and completion (request or advice) stays a debit
once approved, also when it was voided or refunded later; refunds, voids and completion voids
are credits; reversed and declined rows count for nothing. Pre-authorizations and their cancels
capture nothing and sit in no batch, so they count for nothing either. Cards with a UnionPay BIN
(``62``) are domestic, all others foreign.
"""

from __future__ import annotations

from collections.abc import Iterable

from host.domain import TxnKind, TxnState
from host.pipeline.context import Context
from host.pipeline.ports import Record
from protocol.cup_private import CupTotals, SchemeTotals

_DEBIT_STATES = frozenset({TxnState.APPROVED, TxnState.VOIDED})
_DEBITS = frozenset({TxnKind.SALE, TxnKind.COMPLETION})
_CREDITS = frozenset({TxnKind.REFUND, TxnKind.VOID})


def next_batch(closed: str | None) -> str:
    """The batch after ``closed`` (six digits; ``000001`` after none or a non-CUP number)."""
    if closed is None or not closed.isdigit() or len(closed) != 6:
        return "000001"
    return f"{int(closed) % 999999 + 1:06d}"


def host_batch(ctx: Context) -> str:
    """The batch number the host expects from the request's terminal now."""
    tid = ctx.message.terminal_id
    return next_batch(ctx.host.store.last_batch_number(ctx.conn, tid))


def batch_number_of(ctx: Context, batch_id: int | None) -> str | None:
    """The CUP number of one of the host's batches, as the terminal named it in 60.2: the number
    its 0500 or upload closed it with, else (open, or closed by the settlement cut-off, which is
    no message and numbers nothing) the number the host gave while it was open: one more than
    the terminal's last numbered batch before it. None for no batch."""
    store = ctx.host.store
    row = store.batch_row(ctx.conn, batch_id)
    if row is None:
        return None
    if row.number is not None:
        return str(row.number)
    return next_batch(store.last_batch_number(ctx.conn, row.terminal_id, before=int(row.id)))


def is_domestic(pan_masked: str | None) -> bool:
    """A UnionPay card (BIN 62) is domestic in CUP totals and uploads."""
    return bool(pan_masked and pan_masked.startswith("62"))


def cup_totals(rows: Iterable[Record]) -> CupTotals:
    """The CUP totals of a batch's transaction rows (see the module docstring)."""
    sums = {True: [0, 0, 0, 0], False: [0, 0, 0, 0]}
    for row in rows:
        if row.kind in _DEBITS and row.state in _DEBIT_STATES:
            at = 0
        elif row.kind in _CREDITS and row.state in _DEBIT_STATES:
            at = 2
        else:
            continue
        side = sums[is_domestic(row.pan_masked)]
        side[at] += int(row.amount_minor)
        side[at + 1] += 1
    return CupTotals(SchemeTotals(*sums[True]), SchemeTotals(*sums[False]))
