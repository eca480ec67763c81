"""Pure refund, void, completion and reversal rules: facts in, a :class:`Decision` out.

No database, no clock, no ISO 8583 fields: :mod:`host.service` gathers the facts (the request
as a small ``*Ask`` value, the original as an :class:`OriginalView` read under a lock, the
merchant's policy) and applies the decision. A decline is a value with a DE39 code and the
:class:`~protocol.codes.RuleId` that goes into DE44; ``fired`` lists every check that ran, in
order, so the admin API can show why a transaction went the way it did.

Check order for a refund (the first failing check decides)::

    unreferenced allowed? (12) -> original found (25) -> is a sale (12) -> effective (12)
    -> same merchant (12) -> same card (14) -> same currency (12) -> within window (12)
    -> amount > 0 (13) -> partial allowed (13) -> <= remaining (13) -> count cap (65)
    -> daily merchant cap (61) -> review level (approve, maybe held for review)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from protocol.codes import RuleId
from protocol.specs import DEFAULT_PROFILE, WireProfile, get_profile

if TYPE_CHECKING:  # the front process decides format errors without the config's models
    from host.config import MerchantConfig, RefundPolicy, VoidPolicy

DAY_MS = 86_400_000

#: Kinds of transaction a refund may reference.
REFUNDABLE_KINDS = frozenset({"sale", "completion"})


@dataclass(frozen=True)
class Decision:
    """The outcome of one rule evaluation.

    :ivar approved: True to approve.
    :ivar code: DE39.
    :ivar rule: DE44 rule id (declines and special approvals), or None.
    :ivar fired: names of the checks that ran, in order.
    :ivar review_level: 0 none; 1 one approver; 2 two distinct approvers (refunds only).
    :ivar detail: extra text for DE44 after the rule id (e.g. the missing field).
    """

    approved: bool
    code: str
    rule: RuleId | None = None
    fired: tuple[str, ...] = ()
    review_level: int = 0
    detail: str = ""

    @classmethod
    def approve(cls, fired: tuple[str, ...] = (), *, review_level: int = 0) -> Decision:
        """Approve; a refund held for review carries REFUND_PENDING_REVIEW."""
        rule = RuleId.REFUND_PENDING_REVIEW if review_level else None
        return cls(True, "00", rule, fired, review_level)

    @classmethod
    def decline(cls, rule: RuleId, fired: tuple[str, ...] = (), detail: str = "") -> Decision:
        """Decline with the rule's DE39 code."""
        return cls(False, rule.code, rule, fired, 0, detail)

    @property
    def de44(self) -> str | None:
        """The DE44 text: rule id, plus ``:detail`` when there is one (max 25 chars)."""
        if self.rule is None:
            return None
        text = f"{self.rule.value}:{self.detail}" if self.detail else self.rule.value
        return text[:25]


@dataclass(frozen=True)
class OriginalView:
    """What the rules need to know about a referenced transaction (sale, refund, hold).

    :ivar state: ``approved`` (effective), ``declined``, ``reversed``, ``voided``,
        ``rejected``, ``authorized`` (open hold), ``completed`` (hold captured).
    :ivar refunded_minor: sum of this sale's effective refunds.
    :ivar refund_count: number of this sale's effective refunds.
    :ivar batch_open: the batch holding the original is still open.
    """

    kind: str
    state: str
    merchant_id: str
    terminal_id: str
    currency: str
    amount_minor: int
    pan_hash: str | None
    created_ms: int
    batch_open: bool = True
    refunded_minor: int = 0
    refund_count: int = 0

    @property
    def remaining_minor(self) -> int:
        """What can still be refunded: 0 unless the original is effective."""
        if self.state != "approved":
            return 0
        return max(self.amount_minor - self.refunded_minor, 0)


@dataclass(frozen=True)
class RefundAsk:
    """A refund request reduced to its facts."""

    merchant_id: str
    currency: str
    amount_minor: int
    pan_hash: str
    referenced: bool
    now_ms: int
    merchant_refunded_today_minor: int = 0


@dataclass(frozen=True)
class VoidAsk:
    """A void request reduced to its facts.

    :ivar kinds: the kinds of original this void may name; empty: a refund when
        ``voids_refund``, else a sale or a completion (a profile that voids sales and
        completions with different messages, as CUP does, names one).
    """

    merchant_id: str
    terminal_id: str
    amount_minor: int
    voids_refund: bool
    kinds: tuple[str, ...] = ()


@dataclass
class _Trail:
    fired: list[str] = field(default_factory=list)

    def run(self, name: str) -> None:
        self.fired.append(name)

    def decline(self, rule: RuleId, detail: str = "") -> Decision:
        return Decision.decline(rule, tuple(self.fired), detail)


def currency_accepted(merchant: MerchantConfig, currency_code: str) -> Decision | None:
    """A 12 CURRENCY_NOT_ACCEPTED decline when the merchant does not take this currency."""
    if merchant.accepts(currency_code):
        return None
    return Decision.decline(RuleId.CURRENCY_NOT_ACCEPTED, ("currency_accepted",))


def review_level(amount_minor: int, policy: RefundPolicy) -> int:
    """0 no review; 1 above ``review_amount_minor``; 2 above ``second_approval_amount_minor``."""
    if (policy.second_approval_amount_minor is not None
            and amount_minor > policy.second_approval_amount_minor):
        return 2
    if policy.review_amount_minor is not None and amount_minor > policy.review_amount_minor:
        return 1
    return 0


def _original_checks(t: _Trail, original: OriginalView | None, kinds: tuple[str, ...],
                     kind_check: str, merchant_id: str, *,
                     effective_state: str = "approved") -> Decision | None:
    """The checks every referenced refund, void or cancel makes of its original, in this
    order: found (25), of a kind it may reference (12), still effective -- in
    ``effective_state``: ``approved``, or ``authorized`` for an open hold -- (12), same
    merchant (12). Returns the decline, or None when the original passes."""
    t.run("original_found")
    if original is None:
        return t.decline(RuleId.ORIGINAL_NOT_FOUND)
    t.run(kind_check)
    if original.kind not in kinds:
        return t.decline(RuleId.ORIGINAL_NOT_A_SALE)
    t.run("original_effective")
    if original.state != effective_state:
        return t.decline(RuleId.ORIGINAL_NOT_EFFECTIVE)
    t.run("same_merchant")
    if original.merchant_id != merchant_id:
        return t.decline(RuleId.ORIGINAL_OTHER_MERCHANT)
    return None


def evaluate_refund(ask: RefundAsk, original: OriginalView | None,
                    policy: RefundPolicy) -> Decision:
    """Decide a refund (see the module docstring for the order of checks)."""
    t = _Trail()
    if not ask.referenced:
        t.run("unreferenced_allowed")
        if not policy.allow_unreferenced:
            return t.decline(RuleId.UNREFERENCED_REFUND)
    else:
        refused = _original_checks(t, original, tuple(REFUNDABLE_KINDS), "original_is_sale",
                                   ask.merchant_id)
        if refused is not None:
            return refused
        assert original is not None
        if policy.require_same_pan:
            t.run("same_card")
            if original.pan_hash != ask.pan_hash:
                return t.decline(RuleId.REFUND_CARD_MISMATCH)
        t.run("same_currency")
        if original.currency != ask.currency:
            return t.decline(RuleId.REFUND_CURRENCY_MISMATCH)
        t.run("refund_window")
        if ask.now_ms - original.created_ms > policy.window_days * DAY_MS:
            return t.decline(RuleId.REFUND_WINDOW_EXPIRED)
    t.run("amount_positive")
    if ask.amount_minor <= 0:
        return t.decline(RuleId.ZERO_AMOUNT)
    if original is not None:
        if not policy.partial_allowed:
            t.run("partial_allowed")
            if ask.amount_minor != original.remaining_minor:
                return t.decline(RuleId.PARTIAL_REFUND_NOT_ALLOWED)
        t.run("within_remaining")
        if ask.amount_minor > original.remaining_minor:
            return t.decline(RuleId.REFUND_EXCEEDS_REMAINING)
        if policy.max_count is not None:
            t.run("refund_count_cap")
            if original.refund_count >= policy.max_count:
                return t.decline(RuleId.REFUND_COUNT_LIMIT)
    if policy.daily_amount_cap_minor is not None:
        t.run("daily_merchant_cap")
        if ask.merchant_refunded_today_minor + ask.amount_minor > policy.daily_amount_cap_minor:
            return t.decline(RuleId.REFUND_DAILY_LIMIT)
    t.run("review_level")
    return Decision.approve(tuple(t.fired), review_level=review_level(ask.amount_minor, policy))


def evaluate_void(ask: VoidAsk, original: OriginalView | None, policy: VoidPolicy) -> Decision:
    """Decide a void of a sale (020000) or of a refund (220000)."""
    t = _Trail()
    wanted = ask.kinds or (("refund",) if ask.voids_refund else tuple(REFUNDABLE_KINDS))
    refused = _original_checks(t, original, wanted, "original_kind", ask.merchant_id)
    if refused is not None:
        return refused
    assert original is not None
    if policy.same_terminal:
        t.run("same_terminal")
        if original.terminal_id != ask.terminal_id:
            return t.decline(RuleId.VOID_OTHER_TERMINAL)
    t.run("batch_open")
    if not original.batch_open:
        return t.decline(RuleId.VOID_AFTER_SETTLEMENT)
    if policy.full_amount_only:
        t.run("full_amount")
        if ask.amount_minor != original.amount_minor:
            return t.decline(RuleId.VOID_AMOUNT_MISMATCH)
    t.run("no_refunds")
    if original.refund_count > 0:
        return t.decline(RuleId.VOID_AFTER_REFUND)
    return Decision.approve(tuple(t.fired))


def evaluate_cancel(ask: VoidAsk, hold: OriginalView | None) -> Decision:
    """Decide the cancel of an authorization hold before it is completed: found (25), a hold
    (12), still open -- not completed, cancelled or reversed already (12) --, same merchant
    (12), the whole held amount (64)."""
    t = _Trail()
    refused = _original_checks(t, hold, ("auth",), "original_kind", ask.merchant_id,
                               effective_state="authorized")
    if refused is not None:
        return refused
    assert hold is not None
    t.run("full_amount")
    if ask.amount_minor != hold.amount_minor:
        return t.decline(RuleId.VOID_AMOUNT_MISMATCH)
    return Decision.approve(tuple(t.fired))


def evaluate_completion(amount_minor: int, currency_code: str,
                        hold: OriginalView | None) -> Decision:
    """Decide an 0220 completion of an authorization hold."""
    t = _Trail()
    t.run("hold_found")
    if hold is None or hold.kind != "auth":
        return t.decline(RuleId.ORIGINAL_NOT_FOUND)
    t.run("hold_open")
    if hold.state != "authorized":
        return t.decline(RuleId.ORIGINAL_NOT_EFFECTIVE)
    t.run("same_currency")
    if hold.currency != currency_code:
        return t.decline(RuleId.CURRENCY_NOT_ACCEPTED)
    t.run("amount_positive")
    if amount_minor <= 0:
        return t.decline(RuleId.ZERO_AMOUNT)
    t.run("within_hold")
    if amount_minor > hold.amount_minor:
        return t.decline(RuleId.COMPLETION_EXCEEDS_AUTH)
    return Decision.approve(tuple(t.fired))


#: Kinds that belong to no batch: a closed batch never stands in the way of reversing them.
_IN_NO_BATCH = frozenset({"auth", "auth_cancel"})


def evaluate_reversal(target: OriginalView) -> Decision:
    """Decide the reversal of a matched, still effective transaction.

    A sale, completion or refund whose batch is already closed (by the terminal's 0500 or the
    host's cut-off) is still reversed: the check ``late_adjustment`` is recorded and the service
    books the reversal as an adjustment in the terminal's open batch, leaving the closed batch
    as it was. A sale with effective refunds cannot be reversed (the refunds would be orphaned),
    and neither can a void once its batch closed (the voided sale was never settled, so the
    void stands; the merchant makes a new sale instead).
    """
    t = _Trail()
    t.run("no_refunds")
    if target.refund_count > 0:
        return t.decline(RuleId.REVERSAL_AFTER_REFUND)
    if target.kind not in _IN_NO_BATCH and not target.batch_open:
        if target.kind == "void":
            t.run("batch_open")
            return t.decline(RuleId.REVERSAL_AFTER_SETTLEMENT)
        t.run("late_adjustment")
    return Decision.approve(tuple(t.fired))


def missing_field(fields: Mapping[str, str], profile: WireProfile | None = None) -> str | None:
    """The first field a strict host requires that ``fields`` lacks (``"2"`` for card data)."""
    return (profile or get_profile(DEFAULT_PROFILE)).missing_field(fields)
