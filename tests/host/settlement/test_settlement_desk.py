"""The settlement desk on a simulated clock, with the in-memory book and ledger of
settlement_fakes: cut-off, big/small steps, funding by calendar, refund posting, restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from settlement_fakes import NY, SHANGHAI, World, make_terms

from host.reports import SETTLEMENT_COLUMNS, render, settlement_rows
from host.settlement.calendar import BusinessCalendar
from host.settlement.cutoffs import posting_days
from host.settlement.fees import FeeSchedule, RefundFeePolicy
from host.settlement.jobs import terms_from_config


@pytest.fixture
def tmp(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_cutoff_boundary_before_at_after(tmp: Path) -> None:
    """K1 through the desk: a txn 1 ms before cut-off settles that day; at and after, next day."""
    cut = datetime(2026, 11, 27, 23, 0, tzinfo=SHANGHAI)
    w = World(tmp, cut - timedelta(milliseconds=1), [make_terms()])
    w.txn("sale", "000000000001", 1000)
    w.clock.set(cut)
    w.txn("sale", "000000000002", 2000)
    w.clock.advance(timedelta(milliseconds=1))
    w.txn("sale", "000000000003", 3000)
    assert [t.business_date for t in w.book.txns] == [date(2026, 11, 27), date(2026, 11, 28),
                                                      date(2026, 11, 28)]
    (first,) = w.desk.settlements(date(2026, 11, 27))
    assert (first["sales_count"], first["sales_minor"]) == (1, 1000)
    w.clock.advance(timedelta(days=1))
    (second,) = w.desk.settlements(date(2026, 11, 28))
    assert (second["sales_count"], second["sales_minor"]) == (2, 5000)
    assert w.desk.merchant_days() == {"M1": "2026-11-29"}


def _month(tmp: Path, steps: list[timedelta] | None) -> tuple[Any, ...]:
    """A month of daily sales and refunds driven by clock events, advanced in given steps."""
    start = datetime(2026, 10, 20, 8, 0, tzinfo=NY)
    fees = FeeSchedule(Decimal("2.5"), 10, RefundFeePolicy.REFUND_MDR)
    w = World(tmp, start, [make_terms("M1", tz="America/New_York", country="US", fees=fees)])
    counter = iter(range(1, 10_000))

    def shop(at: datetime) -> None:
        n = next(counter)
        w.txn("sale", f"{n:012d}", 1000 + n)
        if n % 3 == 0:
            w.txn("refund", f"{n + 5000:012d}", 400, sale=1000 + n)
        w.clock.schedule(at + timedelta(hours=7, minutes=13), shop, key="shop")

    w.clock.schedule(start + timedelta(minutes=30), shop, key="shop")
    if steps is None:
        w.desk.clock.advance_business_days(25, w.terms["M1"].calendar, NY)
    else:
        for step in steps:
            w.clock.advance(step)
    result = (
        [{k: v for k, v in s.items() if k != "id"} for s in w.desk.settlements()],
        [(n["event"], n["at"], n["rrn"], n["amount_minor"]) for n in w.outbox.entries()],
        [(g["reference"], g["entries"], g["at"]) for g in w.ledger.groups],
        w.clock.now(),
    )
    w.engine.dispose()
    return result


def test_big_and_small_clock_steps_give_identical_settlements(tmp: Path) -> None:
    """A month across the DST change in one business-day jump, one set, or 15-minute steps:
    identical settlements, notifications and ledger groups."""
    (tmp / "a").mkdir(), (tmp / "b").mkdir(), (tmp / "c").mkdir()
    jump = _month(tmp / "a", None)
    total = jump[3] - datetime(2026, 10, 20, 8, 0, tzinfo=NY)
    small = _month(tmp / "b", [timedelta(minutes=15)] * int(total / timedelta(minutes=15)))
    big = _month(tmp / "c", [total])
    assert jump == small == big
    settlements, notes, groups, _ = jump
    dates = [s["business_date"] for s in settlements]
    assert dates == sorted(set(dates)) and len(dates) >= 30
    assert any(e == "refund_posted" for e, *_ in notes)
    assert len(groups) == sum(1 for s in settlements if s["status"] == "funded")


def test_t_plus_1_funding_across_cn_holiday_onto_make_up_sunday(tmp: Path) -> None:
    """Sale 2018-04-04 (Qingming 4/5-4/7): funded Sunday 2018-04-08 09:00 Shanghai, exact
    fee and payout entries, merchant_funded notification."""
    w = World(tmp, datetime(2018, 4, 4, 10, 0, tzinfo=SHANGHAI), [make_terms()])
    w.txn("sale", "000000000001", 12500)
    w.clock.set(datetime(2018, 4, 8, 8, 59, tzinfo=SHANGHAI))
    (s,) = w.desk.settlements(date(2018, 4, 4))
    assert s["funding_date"] == "2018-04-08" and s["status"] == "closed"
    w.clock.advance(timedelta(minutes=1))
    (s,) = w.desk.settlements(date(2018, 4, 4))
    assert s["status"] == "funded" and (s["fees_minor"], s["net_minor"]) == (75, 12425)
    (group,) = w.ledger.groups
    assert group["entries"] == [
        ("merchant_payable:M1", "D", 75), ("acquirer_fee_income", "C", 75),
        ("merchant_payable:M1", "D", 12425), ("bank", "C", 12425)]
    assert group["at"] == datetime(2018, 4, 8, 1, 0, tzinfo=UTC)
    (note,) = w.outbox.entries(event="merchant_funded")
    assert note["amount_minor"] == 12425 and note["funding_date"] == "2018-04-08"


@pytest.mark.parametrize(("business_day", "country", "tz", "funded"), [
    (date(2026, 12, 4), "US", "America/New_York", date(2026, 12, 7)),      # Friday -> Monday
    (date(2026, 11, 25), "US", "America/New_York", date(2026, 11, 27)),    # Thanksgiving
    (date(2026, 2, 13), "CN", "Asia/Shanghai", date(2026, 2, 14)),         # make-up Saturday
    (date(2026, 12, 24), "GB", "Europe/London", date(2026, 12, 29)),       # Christmas, Boxing Day
])  # fmt: skip
def test_funding_date_by_calendar(tmp: Path, business_day: date, country: str, tz: str,
                                  funded: date) -> None:
    """T+1 funding lands on the next business day of the merchant's own calendar."""
    zone = ZoneInfo(tz)
    w = World(tmp, datetime.combine(business_day, datetime.min.time(), zone)
              + timedelta(hours=10), [make_terms(tz=tz, country=country)])
    w.txn("sale", "000000000001", 1000)
    w.clock.set(datetime.combine(funded, datetime.min.time(), zone) + timedelta(hours=12))
    (s,) = w.desk.settlements()
    assert (s["funding_date"], s["status"]) == (funded.isoformat(), "funded")
    assert w.ledger.groups[0]["at"].astimezone(zone).date() == funded


def test_refund_settles_then_posts_on_its_posting_date(tmp: Path) -> None:
    """A refund is settled at cut-off and posted N business days later (N from seed + RRN)."""
    w = World(tmp, datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI), [make_terms()])
    rrn = "000000000042"
    w.txn("refund", rrn, 500, sale=1000)
    assert w.desk.refund_state(rrn) is None  # approved, batch still open
    w.clock.set(datetime(2026, 11, 25, 0, 0, tzinfo=SHANGHAI))
    state = w.desk.refund_state(rrn)
    assert state is not None and state["state"] == "settled"
    expected = BusinessCalendar("CN").add_business_days(date(2026, 11, 24),
                                                        posting_days("seed", rrn, (3, 7)))
    assert state["posting_date"] == expected.isoformat()
    w.clock.set(datetime.combine(expected, datetime.min.time(), SHANGHAI) + timedelta(hours=8))
    assert w.desk.refund_state(rrn)["state"] == "settled"  # type: ignore[index]
    w.clock.advance(timedelta(hours=1))
    assert w.desk.refund_state(rrn)["state"] == "posted"  # type: ignore[index]
    (note,) = w.outbox.entries(event="refund_posted")
    assert note["rrn"] == rrn and note["pan"] == "622202*********0123"
    assert note["at"].startswith(f"{expected.isoformat()}T01:00")


def test_negative_net_and_returned_fees_post_balanced_groups(tmp: Path) -> None:
    """A day with only a refund under refund_mdr: MDR returned, merchant pays in; balanced."""
    fees = FeeSchedule(Decimal("2"), 0, RefundFeePolicy.REFUND_MDR)
    w = World(tmp, datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI), [make_terms(fees=fees)])
    w.txn("refund", "000000000007", 5000, sale=10000)
    w.clock.set(datetime(2026, 11, 26, 12, 0, tzinfo=SHANGHAI))
    (s,) = w.desk.settlements()
    assert (s["fees_minor"], s["net_minor"]) == (-100, -4900)
    assert w.ledger.groups[0]["entries"] == [
        ("acquirer_fee_income", "D", 100), ("merchant_payable:M1", "C", 100),
        ("bank", "D", 4900), ("merchant_payable:M1", "C", 4900)]


def test_restart_reschedules_pending_funding_and_catches_up_cutoffs(tmp: Path) -> None:
    """After a restart the pending funding still happens once, and missed cut-offs run in order."""
    w = World(tmp, datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI), [make_terms()])
    w.txn("sale", "000000000001", 1000)
    w.clock.set(datetime(2026, 11, 28, 0, 0, tzinfo=SHANGHAI))
    w.restart()
    w.clock.set(datetime(2026, 12, 2, 0, 0, tzinfo=SHANGHAI))
    assert len(w.ledger.groups) == 1
    assert [c[1] for c in w.book.closes] == [date(2026, 11, d) for d in (27, 28, 29, 30)] + [
        date(2026, 12, 1)]
    assert w.desk.run_funding(w.desk.settlements()[0]["id"]) is False  # already funded


def test_verify_detects_a_closed_batch_that_changed(tmp: Path) -> None:
    """Changing a closed batch's content breaks its recorded hash: verify reports I12."""
    w = World(tmp, datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI), [make_terms()])
    w.txn("sale", "000000000001", 1000)
    w.clock.set(datetime(2026, 11, 28, 0, 0, tzinfo=SHANGHAI))
    with w.engine.connect() as conn:
        assert w.desk.verify(conn) == []
        w.book.txns[0].amount_minor = 999
        (problem,) = w.desk.verify(conn)
    assert problem["invariant"] == "I12" and "changed after close" in problem["detail"]


def test_report_matches_the_ledger(tmp: Path) -> None:
    """Sum of funded nets = bank credits; sum of fees = acquirer fee income; CSV has the rows."""
    fees = FeeSchedule(Decimal("0.6"), 5, RefundFeePolicy.PER_REFUND_FEE, 50)
    w = World(tmp, datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI), [make_terms(fees=fees)])
    for day in range(5):
        w.txn("sale", f"{day:06d}000001", 10000 + day)
        w.txn("refund", f"{day:06d}000002", 2500, sale=10000 + day)
        w.clock.advance(timedelta(days=1))
    w.clock.advance(timedelta(days=5))
    rows = settlement_rows(w.desk.settlements())
    funded = [r for r in rows if r["status"] == "funded"]
    assert len(funded) == 5
    assert sum(r["net_minor"] for r in funded) == w.ledger.balance("bank")
    assert sum(r["fees_minor"] for r in funded) == w.ledger.balance("acquirer_fee_income")
    assert funded[0]["fees_minor"] == 60 + 5 + 50
    assert len(render(rows, "csv", SETTLEMENT_COLUMNS).splitlines()) == 6


def test_terms_from_config_reads_merchant_and_policy_settings() -> None:
    """Duck-typed config: per-merchant fees and refund overrides over the global sections."""
    config = {
        "settlement": {"cutoff": "22:00", "funding_days": 2},
        "refund": {"fee_policy": "keep_mdr", "posting_days": [2, 4]},
        "merchants": [
            {"id": "M1", "timezone": "Asia/Shanghai", "country": "CN", "mdr_percent": "0.38"},
            {"id": "M2", "timezone": "Europe/Berlin", "country": "DE", "subdivision": "BY",
             "mdr_percent": "1.2", "fixed_fee_minor": 10,
             "refund": {"fee_policy": "per_refund_fee", "per_refund_fee_minor": 25}},
        ],
    }
    terms = terms_from_config(config)
    assert terms["M1"].schedule.cutoff.hour == 22 and terms["M1"].funding_days == 2
    assert terms["M1"].posting_days == (2, 4)
    assert terms["M2"].fees.refund_policy is RefundFeePolicy.PER_REFUND_FEE
    assert terms["M2"].fees.per_refund_fee_minor == 25
    assert terms["M2"].calendar.subdivision == "BY"
