"""Names of the ledger's accounts. An account is just a name: no table row.

========================  =================================================================
``scheme_settlement``     what the card schemes owe the acquirer (debit) for captured sales
``merchant_payable:<mid>``  what the acquirer owes one merchant (credit)
``pending_holds``         authorization holds not captured yet (debit) ...
``merchant_holds:<mid>``  ... against the merchant they are held for (credit)
``refunds_under_review``  refunds approved online but held for an operator's review
``acquirer_fee_income``   MDR and per-refund fees (settlement posts these)
``bank``                  money actually paid out to merchants (settlement posts these)
========================  =================================================================

Balances are reported as net debit (debits minus credits): a merchant payable is negative
while money is owed to the merchant.
"""

from __future__ import annotations

SCHEME_SETTLEMENT = "scheme_settlement"
PENDING_HOLDS = "pending_holds"
REFUNDS_UNDER_REVIEW = "refunds_under_review"
ACQUIRER_FEE_INCOME = "acquirer_fee_income"
BANK = "bank"


def merchant_payable(merchant_id: str) -> str:
    """The payable account of one merchant."""
    return f"merchant_payable:{merchant_id}"


def merchant_holds(merchant_id: str) -> str:
    """The account holds of one merchant are booked against."""
    return f"merchant_holds:{merchant_id}"
