"""Reversals and their originals on either side of the host's business-date cut-off.

The default merchant's cut-off is 23:00 Asia/Shanghai (15:00 UTC), so on the conftest's start
day ``CUTOFF`` ends business date 2026-03-02 and starts 2026-03-03.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from host.clock import ManualClock
from host.service import HostService

from .conftest import MID, Term, rc

PAYABLE = "merchant_payable:" + MID
CUTOFF = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
BEFORE, AFTER = CUTOFF - timedelta(seconds=1), CUTOFF + timedelta(seconds=30)


def net(service: HostService) -> int:
    """The merchant's payable balance (0 when nothing is effective)."""
    return service.balances().get(PAYABLE, {}).get("CNY", 0)


def sale_state(service: HostService) -> str:
    """The state of the first sale row."""
    sales = [t for t in service.transactions() if t["kind"] == "sale"]
    return str(sales[-1]["state"])


def assert_reversed(service: HostService) -> None:
    """The sale is reversed, nothing is left on the merchant's payable and verify is clean."""
    assert net(service) == 0 and sale_state(service) == "reversed"
    report = service.verify()
    assert report["ok"], report["violations"]


@pytest.mark.parametrize("reversals", [("0400",), ("0400", "0401"), ("0401",),
                                       ("0401", "0401")])
def test_reversal_just_after_cutoff_reverses_the_sale(term: Term, service: HostService,
                                                      clock: ManualClock,
                                                      reversals: tuple[str, ...]) -> None:
    """Sale at cut-off - 1 s, 0400/0401 at cut-off + 30 s: the sale is reversed, net 0."""
    clock.set(BEFORE)
    sale = term.sale(1000)
    first = term.send(sale)
    assert rc(first) == ("00", None)
    rrn = first.log["rrn"]
    assert net(service) == -1000
    clock.set(AFTER)
    for mti in reversals:
        reply = term.send(term.reversal(sale, repeat=mti == "0401"))
        assert rc(reply) == ("00", None)
        assert reply.log["rrn"] == rrn
    assert net(service) == 0 and sale_state(service) == "reversed"
    assert service.health()["posting_groups"] == 2  # the sale and its one mirror
    assert_reversed(service)


def test_reversal_after_cutoff_of_closed_batch_is_an_adjustment(term: Term, service: HostService,
                                                                clock: ManualClock) -> None:
    """Sale settled by 0500 before the cut-off, 0400 after it: adjustment in the open batch."""
    clock.set(BEFORE)
    sale = term.sale(1000)
    assert rc(term.send(sale)) == ("00", None)
    assert rc(term.send(term.settle("000001", (1, 1000), (0, 0)))) == ("00", None)
    clock.set(AFTER)
    reply = term.send(term.reversal(sale))
    assert rc(reply) == ("00", None) and reply.log.get("adjustment")
    assert_reversed(service)


def test_original_after_its_reversal_across_cutoff_is_declined(term: Term, service: HostService,
                                                               clock: ManualClock) -> None:
    """0400 at cut-off - 1 s (tombstone), its sale at cut-off + 30 s: declined 12, net 0."""
    clock.set(BEFORE)
    sale = term.sale(1000)
    assert rc(term.send(term.reversal(sale))) == ("00", "REVERSAL_UNKNOWN")
    clock.set(AFTER)
    assert rc(term.send(sale)) == ("12", "REVERSED_BEFORE_ARRIVAL")
    assert rc(term.send(term.reversal(sale, repeat=True))) == ("00", "REVERSAL_UNKNOWN")
    assert net(service) == 0 and service.balances() == {}
    assert sale_state(service) == "declined"
    assert service.verify()["ok"]


def test_reversal_without_de90_two_business_dates_later_finds_nothing(
        term: Term, service: HostService, clock: ManualClock) -> None:
    """As documented: an 0400 without DE90 two business dates after its sale answers 00
    REVERSAL_UNKNOWN, leaves the sale effective and a tombstone that declines a new original
    with that STAN."""
    clock.set(BEFORE)
    sale = term.sale(1000)
    assert rc(term.send(sale)) == ("00", None)
    clock.set(AFTER + timedelta(days=1))  # business date 2026-03-04
    bare = {k: v for k, v in term.reversal(sale).items() if k != "90"}
    assert rc(term.send(bare)) == ("00", "REVERSAL_UNKNOWN")
    assert sale_state(service) == "approved"  # (the payable itself was funded meanwhile)
    again = dict(sale, **{"7": clock.now().strftime("%m%d%H%M%S")})  # same STAN, new message
    assert rc(term.send(again)) == ("12", "REVERSED_BEFORE_ARRIVAL")
    assert sale_state(service) == "approved" and service.verify()["ok"]


@pytest.mark.parametrize("days_later", [1, 9])
def test_reversal_with_de90_finds_its_sale_at_any_age(term: Term, service: HostService,
                                                      clock: ManualClock,
                                                      days_later: int) -> None:
    """DE90 names the sale exactly: days after its batch settled, the 0400 reverses it with a
    late adjustment in the open batch; the 0401 repeat adds nothing; verify stays clean."""
    clock.set(BEFORE)
    sale = term.sale(1000)
    first = term.send(sale)
    assert rc(first) == ("00", None)
    clock.set(AFTER + timedelta(days=days_later))
    reversal = term.reversal(sale)
    reply = term.send(reversal)
    assert rc(reply) == ("00", None) and reply.log["rrn"] == first.log["rrn"]
    assert reply.log.get("adjustment")
    assert sale_state(service) == "reversed"
    assert rc(term.send(term.reversal(sale, repeat=True))) == ("00", None)
    adjustments = [t for t in service.transactions() if t["kind"] == "adjustment"]
    assert [t["amount_minor"] for t in adjustments] == [-1000]
    assert service.verify()["ok"]
