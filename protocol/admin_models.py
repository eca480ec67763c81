"""The admin API's JSON bodies as typed models, shared by the host (which builds its answers
through them) and the scenario layer's admin client (which reads answers into them).

Each response body the host's admin API sends has one model here; request bodies that have a
fixed shape have one too. Every model accepts members it does not name (``extra="allow"``):
the host may add a member without breaking an older client, and a detail such as a
notification's free-form ``detail`` columns passes through unchanged. A member that the host
sends only sometimes (a refund's ``reason``, a sale's ``refunded_minor``) has a default, and
the host writes only the members it set, so the JSON on the wire is what it was before the
models existed.

Amounts are integer minor units (``amount_minor``) with their ISO 4217 ``currency``; instants
are ISO 8601 text; card numbers are masked (first 6, last 4) before they reach any model.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel


class AdminModel(BaseModel):
    """Base of every admin body: unknown members are kept, not refused."""

    model_config = ConfigDict(extra="allow")


# -- errors and small answers ----------------------------------------------------------------


class ErrorBody(AdminModel):
    """Every error answer: what went wrong, plus the accepted methods on a 405."""

    error: str
    allow: list[str] | None = None


class Deleted(AdminModel):
    """How many objects a DELETE removed."""

    deleted: int


# -- health and ledger ----------------------------------------------------------------------


class Health(AdminModel):
    """``GET /health``: the service is up, its database and a few counts."""

    status: str
    database: str
    transactions: int
    posting_groups: int
    strict: bool
    allow_unknown_terminals: bool
    open_connections: int


class Balances(RootModel[dict[str, dict[str, int]]]):
    """``GET /ledger/balances``: account -> currency -> net debit in minor units."""


class Violation(AdminModel):
    """One broken ledger or store invariant (``I1``, ``CHAIN`` ...) and where."""

    invariant: str
    detail: str


class VerifyReport(AdminModel):
    """``GET /ledger/verify``: whether every invariant holds, and what was checked."""

    ok: bool
    violations: list[Violation]
    checked: dict[str, int | bool]


# -- transactions and reviews ---------------------------------------------------------------


class Approval(AdminModel):
    """One approver's sign-off on a held refund."""

    approver: str
    note: str | None = None
    at: str


class Review(AdminModel):
    """A refund review: its state, the approvals so far and the refund it holds."""

    id: int
    state: str
    level: int
    approvals_needed: int
    approved_by: list[Approval]
    reason: str | None
    created: str
    decided: str | None
    rrn: str | None
    merchant_id: str
    terminal_id: str
    amount_minor: int
    currency: str
    pan: str | None
    refund_reason: str | None


class ReviewList(AdminModel):
    """``GET /reviews``."""

    reviews: list[Review]


class TxnEvent(AdminModel):
    """One audit event of a transaction; its details are extra members."""

    at_ms: int
    kind: str


class LedgerGroupView(AdminModel):
    """One posting group booked for a transaction, with its entries
    ``[account, side, amount_minor]``."""

    group: int
    kind: str
    amount_minor: int
    currency: str
    reverses: int | None
    memo: str | None
    effective: bool
    entries: list[tuple[str, str, int]]


class RefundSettlement(AdminModel):
    """A refund's settlement-side state once its batch closed."""

    state: str
    settlement_date: str
    posting_date: str
    settlement_id: int
    posted_at: str | None


class TxnSummary(AdminModel):
    """A transaction's identifiers, amount, codes and capture/settlement/review state.

    ``reason``, ``evidence`` and ``operator`` are sent for refunds only.
    """

    rrn: str | None
    kind: str
    mti: str
    processing_code: str
    stan: str
    terminal_id: str
    merchant_id: str
    amount_minor: int
    currency: str
    pan: str | None
    business_date: str
    at: str
    response_code: str | None
    rule: str | None
    approval_code: str | None
    state: str
    capture_state: str
    settlement_state: str | None
    review_state: str | None
    reason: str | None = None
    evidence: str | None = None
    operator: str | None = None


class TxnDetail(TxnSummary):
    """``GET /transactions/{rrn}``: the summary plus rules, events, refunds, review, ledger.

    The refund totals are sent for refundable kinds (sales, completions) only; ``review`` for
    a held refund; ``refund_settlement`` once the host runs settlement. A refund that settles
    or settled has ``fee_minor``, its own fee in the settlement figures (positive: charged to
    the merchant, negative: given back; before the cut-off, what a cut-off now would book),
    and ``fee_policy`` (``keep_mdr``, ``refund_mdr`` or ``per_refund_fee``).
    """

    rules_fired: list[Any]
    events: list[TxnEvent]
    original_rrn: str | None
    refunded_minor: int | None = None
    remaining_minor: int | None = None
    refund_count: int | None = None
    refund_state: str | None = None
    refunds: list[TxnSummary] | None = None
    review: Review | None = None
    ledger: list[LedgerGroupView]
    refund_settlement: RefundSettlement | None = None
    fee_minor: int | None = None
    fee_policy: str | None = None


class TxnPage(AdminModel):
    """``GET /transactions``: one page, newest first; ``next`` is the cursor of the next."""

    transactions: list[TxnSummary]
    next: str | None


class ApproveBody(AdminModel):
    """``POST /reviews/{id}/approve``."""

    approver: str = Field(min_length=1)
    note: str | None = None


class RejectBody(AdminModel):
    """``POST /reviews/{id}/reject``."""

    approver: str = Field(min_length=1)
    reason: str = Field(min_length=1)


# -- faults ---------------------------------------------------------------------------------


class FaultView(AdminModel):
    """One fault rule as the host shows it: the rule's own members plus ``applied`` (and
    ``remaining`` for a counted rule); a PAN matcher appears masked."""

    id: str
    action: str
    applied: int


class FaultList(AdminModel):
    """``GET /faults`` and ``POST /faults``."""

    faults: list[FaultView]


# -- security ---------------------------------------------------------------------------------


class TerminalKeys(AdminModel):
    """One terminal's key state: algorithms and check values, never a key."""

    tid: str
    algorithm: str | None
    kcv: str | None
    source: str | None
    mac: str
    key_management: str
    signed_on: bool
    pin_key_kcv: str | None
    mac_key_kcv: str | None


class SecurityKeys(AdminModel):
    """``GET /security/keys``."""

    terminals: list[TerminalKeys]



# -- clock, settlement, notifications, reports ----------------------------------------------


class PendingEvent(AdminModel):
    """A scheduled clock event (a cut-off, a funding run)."""

    at: str
    key: str | None


class ClockView(AdminModel):
    """``GET /clock`` and the answer to a clock move."""

    mode: str
    now: str
    pending_events: list[PendingEvent]
    speed: float | None = None
    business_dates: dict[str, str] | None = None


class AdvanceBody(AdminModel):
    """``POST /clock/advance``: one calendar duration, or business days of one merchant."""

    seconds: float | None = None
    minutes: float | None = None
    hours: float | None = None
    days: float | None = None
    business_days: int | None = None
    merchant: str | None = None


class SetClockBody(AdminModel):
    """``POST /clock/set``: an ISO 8601 instant with a UTC offset, never earlier than now."""

    instant: str = Field(json_schema_extra={"format": "date-time"})


class SettlementRow(AdminModel):
    """One merchant's settlement of one batch, with its figures and funding."""

    id: int
    merchant_id: str
    batch: str
    currency: str
    business_date: str
    closed_at: str | None
    content_hash: str
    sales_count: int
    sales_minor: int
    refunds_count: int
    refunds_minor: int
    adjustments_count: int
    adjustments_minor: int
    fees_minor: int
    net_minor: int
    funding_date: str
    status: str
    funded_at: str | None
    ledger_group: str | None


class SettlementList(AdminModel):
    """``GET /settlements`` (JSON)."""

    settlements: list[SettlementRow]


class Notification(AdminModel):
    """One notification of the outbox; event-specific details are extra members."""

    id: int
    at: str
    event: str
    merchant_id: str | None
    rrn: str | None
    reference: str | None
    pan: str | None
    amount_minor: int | None
    currency: str | None
    delivered: bool
    attempts: int


class NotificationList(AdminModel):
    """``GET /notifications``."""

    notifications: list[Notification]


class Tally(AdminModel):
    """A count and the amount it sums to."""

    count: int
    amount_minor: int


class MerchantRefunds(AdminModel):
    """One merchant's refunds against its sales; rates are decimal text, None without sales."""

    merchant_id: str
    refunds_count: int
    refunds_minor: int
    sales_count: int
    sales_minor: int
    refund_rate_amount: str | None
    refund_rate_count: str | None


class RefundsReport(AdminModel):
    """``GET /reports/refunds`` (JSON): refunds by reason, state and age, and per merchant."""

    as_of: str
    by_reason: dict[str, Tally]
    by_state: dict[str, Tally]
    by_age: dict[str, Tally]
    merchants: list[MerchantRefunds]
