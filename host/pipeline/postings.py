"""Posting recipes as data: which accounts each booking debits and credits.

A recipe is a tuple of :class:`Leg` rows; :func:`entries` turns one into the ledger's entries
for a merchant and an amount. Every recipe moves one amount, so it balances by construction.

=====================  ======================================================================
``CAPTURE``            sale or completion: D scheme_settlement, C merchant_payable:<mid>
``HOLD``               authorization: D pending_holds, C merchant_holds:<mid>
``REFUND``             D merchant_payable:<mid>, C scheme_settlement
``REFUND_FOR_REVIEW``  D merchant_payable:<mid>, C refunds_under_review
``REVIEW_RELEASE``     a reviewed refund approved: D refunds_under_review, C scheme_settlement
=====================  ======================================================================

Undoing a booking (void, reversal, a rejected review, a hold's release) mirrors its groups in
the ledger instead of following a recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from host.domain import Side
from host.ledger import accounts as acct

#: An account: a fixed name, or a merchant's own account by merchant id.
Account = str | Callable[[str], str]


class Leg(NamedTuple):
    """One side of a recipe."""

    account: Account
    side: Side


Recipe = tuple[Leg, ...]

CAPTURE: Recipe = (Leg(acct.SCHEME_SETTLEMENT, Side.DEBIT),
                   Leg(acct.merchant_payable, Side.CREDIT))
HOLD: Recipe = (Leg(acct.PENDING_HOLDS, Side.DEBIT), Leg(acct.merchant_holds, Side.CREDIT))
REFUND: Recipe = (Leg(acct.merchant_payable, Side.DEBIT),
                  Leg(acct.SCHEME_SETTLEMENT, Side.CREDIT))
REFUND_FOR_REVIEW: Recipe = (Leg(acct.merchant_payable, Side.DEBIT),
                             Leg(acct.REFUNDS_UNDER_REVIEW, Side.CREDIT))
REVIEW_RELEASE: Recipe = (Leg(acct.REFUNDS_UNDER_REVIEW, Side.DEBIT),
                          Leg(acct.SCHEME_SETTLEMENT, Side.CREDIT))


def entries(recipe: Recipe, merchant_id: str, amount_minor: int) -> list[tuple[str, str, int]]:
    """The ledger entries of ``recipe`` for one merchant and amount."""
    return [(leg.account if isinstance(leg.account, str) else leg.account(merchant_id),
             leg.side.value, amount_minor) for leg in recipe]
