"""check steps against canned admin API answers: settlements, notifications, rules, absent."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from scenarios.checks import run_check
from scenarios.outcome import StepOutcome
from scenarios.runner import StepFailed
from scenarios.schema import Check

ANSWERS: dict[str, Any] = {
    "/settlements?date=2026-03-06": {"settlements": [
        {"business_date": "2026-03-06", "currency": "CNY", "sales_minor": 10000,
         "fees_minor": 60, "net_minor": 9940, "funding_date": "2026-03-09", "status": "funded"}]},
    "/notifications": {"notifications": [
        {"event": "merchant_funded", "rrn": None, "amount_minor": 9940, "currency": "CNY"},
        {"event": "refund_posted", "rrn": "000000000002", "amount_minor": 8000,
         "currency": "CNY"}]},
    "/transactions/000000000001": {"rrn": "000000000001", "currency": "CNY",
                                   "amount_minor": 10000, "rules_fired": ["within_remaining"],
                                   "rule": "REFUND_EXCEEDS_REMAINING: over by 10.00"},
}


async def _call(session: Any, method: str, path: str, body: Any = None) -> Any:
    return ANSWERS[path]


def _session() -> Any:
    refund = SimpleNamespace(rrn="000000000002")
    return SimpleNamespace(journal={"r1": refund}, target=SimpleNamespace(currency="CNY"))


def check(run: Any, **keys: Any) -> StepOutcome:
    """Run one check step on the canned answers; StepFailed propagates."""
    result = StepOutcome(1, "check", 1)
    run(run_check(_session(), Check(**keys), result, _call))
    return result


def test_settlement_matches_minor_units_and_dates(run):
    """net "99.40" matches net_minor 9940; funding date and status compare as text."""
    check(run, settlement={"date": "2026-03-06", "net": "99.40", "funding_date": "2026-03-09",
                           "status": "funded", "fees": "0.60"})
    with pytest.raises(StepFailed) as failed:
        check(run, settlement={"date": "2026-03-06", "net": "99.41"})
    assert failed.value.actual == "1 rows, none matching; first: [{'net': 9940}]"


def test_notification_kind_means_event_and_transaction_means_its_rrn(run):
    """kind is the host's event; transaction: r1 is the RRN the refund step got."""
    check(run, notification={"kind": "refund_posted", "transaction": "r1", "amount": "80.00"})
    with pytest.raises(StepFailed):
        check(run, notification={"kind": "refund_approved", "transaction": "r1"})


def test_absent_passes_only_when_nothing_matches(run):
    """absent: true asserts that no row matches (e.g. not posted yet)."""
    result = check(run, notification={"kind": "refund_rejected", "absent": True})
    assert result.expected == "no notification with kind refund_rejected"
    with pytest.raises(StepFailed) as failed:
        check(run, notification={"kind": "refund_posted", "transaction": "r1", "absent": True})
    assert failed.value.expected == "no notification with kind refund_posted, transaction r1"
    assert failed.value.actual == "one found"


def test_rule_is_the_de44_id_and_rules_are_the_checks_that_ran(run):
    """rule compares the transaction's DE44 rule id; rules, the host's rules_fired names."""
    check(run, transaction="000000000001", rule="REFUND_EXCEEDS_REMAINING",
          rules=["within_remaining"], amount="100.00")
    with pytest.raises(StepFailed) as failed:
        check(run, transaction="000000000001", rule="REFUND_WINDOW_EXPIRED",
              rules=["refund_window"])
    assert failed.value.actual == ("rule REFUND_EXCEEDS_REMAINING; "
                                   "checks run within_remaining")
