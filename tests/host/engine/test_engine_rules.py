"""The pure rules, table-driven: each check's DE39 and DE44, and the order they run in."""

from __future__ import annotations

from dataclasses import replace

import pytest

from host.config import RefundPolicy, VoidPolicy
from host.rules import (
    DAY_MS,
    OriginalView,
    RefundAsk,
    VoidAsk,
    evaluate_completion,
    evaluate_refund,
    evaluate_reversal,
    evaluate_void,
    missing_field,
    review_level,
)
from protocol.codes import RuleId

SALE = OriginalView(kind="sale", state="approved", merchant_id="M", terminal_id="T",
                    currency="CNY", amount_minor=10000, pan_hash="h1", created_ms=0)
ASK = RefundAsk(merchant_id="M", currency="CNY", amount_minor=4000, pan_hash="h1",
                referenced=True, now_ms=DAY_MS)
POLICY = RefundPolicy()


@pytest.mark.parametrize(("ask", "original", "policy", "rule"), [
    (ASK, None, POLICY, RuleId.ORIGINAL_NOT_FOUND),
    (ASK, replace(SALE, kind="refund"), POLICY, RuleId.ORIGINAL_NOT_A_SALE),
    (ASK, replace(SALE, state="voided"), POLICY, RuleId.ORIGINAL_NOT_EFFECTIVE),
    (ASK, replace(SALE, state="reversed"), POLICY, RuleId.ORIGINAL_NOT_EFFECTIVE),
    (ASK, replace(SALE, merchant_id="OTHER"), POLICY, RuleId.ORIGINAL_OTHER_MERCHANT),
    (replace(ASK, pan_hash="h2"), SALE, POLICY, RuleId.REFUND_CARD_MISMATCH),
    (replace(ASK, currency="USD"), SALE, POLICY, RuleId.REFUND_CURRENCY_MISMATCH),
    (replace(ASK, now_ms=31 * DAY_MS), SALE, POLICY, RuleId.REFUND_WINDOW_EXPIRED),
    (replace(ASK, amount_minor=0), SALE, POLICY, RuleId.ZERO_AMOUNT),
    (replace(ASK, amount_minor=10001), SALE, POLICY, RuleId.REFUND_EXCEEDS_REMAINING),
    (ASK, replace(SALE, refunded_minor=6001), POLICY, RuleId.REFUND_EXCEEDS_REMAINING),
    (ASK, SALE, RefundPolicy(partial_allowed=False), RuleId.PARTIAL_REFUND_NOT_ALLOWED),
    (ASK, replace(SALE, refund_count=2), RefundPolicy(max_count=2), RuleId.REFUND_COUNT_LIMIT),
    (replace(ASK, merchant_refunded_today_minor=7000), SALE,
     RefundPolicy(daily_amount_cap_minor=10000), RuleId.REFUND_DAILY_LIMIT),
    (replace(ASK, referenced=False), None, POLICY, RuleId.UNREFERENCED_REFUND),
])
def test_refund_declines(ask: RefundAsk, original: OriginalView | None, policy: RefundPolicy,
                         rule: RuleId) -> None:
    """Each failing refund check declines with its rule and that rule's DE39."""
    decision = evaluate_refund(ask, original, policy)
    assert not decision.approved
    assert (decision.rule, decision.code) == (rule, rule.code)
    assert decision.de44 == rule.value


@pytest.mark.parametrize(("ask", "original", "policy", "level"), [
    (ASK, SALE, POLICY, 0),
    (replace(ASK, amount_minor=6000), replace(SALE, refunded_minor=4000), POLICY, 0),
    (replace(ASK, now_ms=30 * DAY_MS), SALE, POLICY, 0),
    (replace(ASK, pan_hash="other"), SALE, RefundPolicy(require_same_pan=False), 0),
    (replace(ASK, referenced=False), None, RefundPolicy(allow_unreferenced=True), 0),
    (ASK, SALE, RefundPolicy(review_amount_minor=3999), 1),
    (ASK, SALE, RefundPolicy(review_amount_minor=4000), 0),
    (ASK, SALE, RefundPolicy(review_amount_minor=100, second_approval_amount_minor=3999), 2),
    (replace(ASK, amount_minor=10000), SALE, RefundPolicy(partial_allowed=False), 0),
])
def test_refund_approvals(ask: RefundAsk, original: OriginalView | None, policy: RefundPolicy,
                          level: int) -> None:
    """Refunds inside every limit are approved; above the review amounts they are held."""
    decision = evaluate_refund(ask, original, policy)
    assert decision.approved and decision.code == "00"
    assert decision.review_level == level
    assert decision.rule == (RuleId.REFUND_PENDING_REVIEW if level else None)


def test_refund_checks_fire_in_order() -> None:
    """The card is checked before the amount: a wrong card and too much gives 14, not 13."""
    decision = evaluate_refund(replace(ASK, pan_hash="x", amount_minor=99999), SALE, POLICY)
    assert decision.rule is RuleId.REFUND_CARD_MISMATCH
    assert decision.fired[-1] == "same_card" and "within_remaining" not in decision.fired


def test_review_levels() -> None:
    """Amounts strictly above the thresholds need one, then two approvers."""
    p = RefundPolicy(review_amount_minor=100, second_approval_amount_minor=1000)
    assert [review_level(a, p) for a in (100, 101, 1000, 1001)] == [0, 1, 1, 2]


VOID = VoidAsk(merchant_id="M", terminal_id="T", amount_minor=10000, voids_refund=False)


@pytest.mark.parametrize(("ask", "original", "rule"), [
    (VOID, None, RuleId.ORIGINAL_NOT_FOUND),
    (VOID, replace(SALE, kind="refund"), RuleId.ORIGINAL_NOT_A_SALE),
    (replace(VOID, voids_refund=True), SALE, RuleId.ORIGINAL_NOT_A_SALE),
    (VOID, replace(SALE, state="reversed"), RuleId.ORIGINAL_NOT_EFFECTIVE),
    (VOID, replace(SALE, merchant_id="X"), RuleId.ORIGINAL_OTHER_MERCHANT),
    (VOID, replace(SALE, terminal_id="T2"), RuleId.VOID_OTHER_TERMINAL),
    (VOID, replace(SALE, batch_open=False), RuleId.VOID_AFTER_SETTLEMENT),
    (replace(VOID, amount_minor=9999), SALE, RuleId.VOID_AMOUNT_MISMATCH),
    (VOID, replace(SALE, refund_count=1, refunded_minor=1), RuleId.VOID_AFTER_REFUND),
])
def test_void_declines(ask: VoidAsk, original: OriginalView | None, rule: RuleId) -> None:
    """Each failing void check declines with its rule and DE39."""
    decision = evaluate_void(ask, original, VoidPolicy())
    assert (decision.approved, decision.rule, decision.code) == (False, rule, rule.code)


def test_void_approved_for_sale_and_refund() -> None:
    """A same-terminal full-amount void in an open batch is approved (sale or refund)."""
    assert evaluate_void(VOID, SALE, VoidPolicy()).approved
    refund = replace(SALE, kind="refund", amount_minor=4000)
    assert evaluate_void(replace(VOID, voids_refund=True, amount_minor=4000), refund,
                         VoidPolicy()).approved


def test_completion_rules() -> None:
    """Completions need an open hold and at most its amount."""
    hold = replace(SALE, kind="auth", state="authorized")
    assert evaluate_completion(10000, "CNY", hold).approved
    assert evaluate_completion(10001, "CNY", hold).rule is RuleId.COMPLETION_EXCEEDS_AUTH
    assert evaluate_completion(1, "CNY", None).rule is RuleId.ORIGINAL_NOT_FOUND
    assert evaluate_completion(1, "CNY", replace(hold, state="completed")).rule is \
        RuleId.ORIGINAL_NOT_EFFECTIVE


def test_reversal_rules() -> None:
    """Reversals after the batch closed become late adjustments (voids excepted); sales with
    refunds cannot be reversed, open batch or not."""
    assert evaluate_reversal(SALE).approved
    assert "late_adjustment" not in evaluate_reversal(SALE).fired
    late = evaluate_reversal(replace(SALE, batch_open=False))
    assert late.approved and late.code == "00" and late.fired[-1] == "late_adjustment"
    assert evaluate_reversal(replace(SALE, kind="refund", batch_open=False)).approved
    assert evaluate_reversal(replace(SALE, kind="void", batch_open=False)).rule is \
        RuleId.REVERSAL_AFTER_SETTLEMENT
    assert evaluate_reversal(replace(SALE, refund_count=1)).rule is RuleId.REVERSAL_AFTER_REFUND
    assert evaluate_reversal(replace(SALE, refund_count=1, batch_open=False)).rule is \
        RuleId.REVERSAL_AFTER_REFUND
    assert evaluate_reversal(replace(SALE, kind="auth", batch_open=False)).fired == (
        "no_refunds",)


def test_missing_field_names_the_first_gap() -> None:
    """Strict mode names the first mandatory field missing, and card data as field 2."""
    full = {"t": "0200", "3": "000000", "4": "1", "7": "0302100000", "11": "1", "12": "100000",
            "13": "0302", "22": "012", "25": "00", "41": "T", "42": "M", "49": "156",
            "2": "4111111111111111"}
    assert missing_field(full) is None
    assert missing_field({k: v for k, v in full.items() if k != "41"}) == "41"
    assert missing_field({k: v for k, v in full.items() if k != "2"}) == "2"
