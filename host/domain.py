"""The host's vocabulary as enums: transaction kinds and states, review states, ledger sides.

Each is a :class:`enum.StrEnum`, so a member *is* its string: the values stored in the database,
written to JSON and compared with rows read back are the same text as before these enums
existed (``TxnState.APPROVED == "approved"``).
"""

from __future__ import annotations

import enum


class TxnKind(enum.StrEnum):
    """What a transaction row records (the ``kind`` column)."""

    SALE = "sale"
    AUTH = "auth"  # an authorization hold
    COMPLETION = "completion"  # the capture of a hold
    REFUND = "refund"
    VOID = "void"
    ADJUSTMENT = "adjustment"  # a late reversal booked into the terminal's open batch
    AUTH_CANCEL = "auth_cancel"  # the release of a hold before completion: in no batch


class TxnState(enum.StrEnum):
    """Where a transaction stands (the ``state`` column)."""

    APPROVED = "approved"  # effective
    DECLINED = "declined"
    AUTHORIZED = "authorized"  # an open hold
    COMPLETED = "completed"  # a hold that was captured
    REVERSED = "reversed"
    VOIDED = "voided"
    REJECTED = "rejected"  # a refund an operator rejected in review


class ReviewState(enum.StrEnum):
    """Where a refund held for review stands (``review_state``, ``refund_review.state``)."""

    PENDING = "pending_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class Side(enum.StrEnum):
    """The side of a ledger entry."""

    DEBIT = "D"
    CREDIT = "C"
