"""Settlement on the real engine: host cut-off, void vs refund, late reversal, funding, ledger."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("host.service", reason="the host engine (host.service) has not landed")

from host.clock import ManualClock  # noqa: E402
from host.config import load_config  # noqa: E402
from host.service import HostService  # noqa: E402
from host.settlement.jobs import SettlementDesk  # noqa: E402
from protocol import (  # noqa: E402
    BatchTotals,
    CardData,
    EntryMode,
    Money,
    Pan,
    ReconciliationRequest,
    RefundRequest,
    ReversalRequest,
    SaleRequest,
    VoidRequest,
)

SH = ZoneInfo("Asia/Shanghai")
PAN = "4111111111111111"
TID, MID = "TERM0001", "MERCHANT0000001"
CARD = CardData(EntryMode.MANUAL, pan=Pan(PAN), expiry="3012")


class Host:
    """A real HostService on a simulated clock with its settlement desk."""

    def __init__(self, tmp: Path, start: datetime) -> None:
        self.clock = ManualClock(start)
        self.svc = HostService(load_config(None), str(tmp / "host.db"), self.clock)
        desk = self.svc.settlement
        assert isinstance(desk, SettlementDesk)
        self.desk = desk
        self.stan = 0

    def _next(self) -> str:
        self.stan += 1
        return f"{self.stan:06d}"

    def sale(self, amount: int) -> Any:
        reply = self.svc.handle(SaleRequest(stan=self._next(), terminal_id=TID, merchant_id=MID,
                                            card=CARD, amount=Money(amount, "CNY")).to_fields())
        return reply.response

    def refund(self, rrn: str, amount: int) -> Any:
        return self.svc.handle(RefundRequest(
            stan=self._next(), terminal_id=TID, merchant_id=MID, card=CARD,
            amount=Money(amount, "CNY"), original_rrn=rrn).to_fields()).response

    def void(self, rrn: str, amount: int) -> Any:
        return self.svc.handle(VoidRequest(
            stan=self._next(), terminal_id=TID, merchant_id=MID, card=CARD,
            amount=Money(amount, "CNY"), original_rrn=rrn).to_fields()).response

    def reverse(self, stan: str, amount: int) -> Any:
        return self.svc.handle(ReversalRequest(
            stan=stan, terminal_id=TID, merchant_id=MID, processing_code="000000",
            amount=Money(amount, "CNY"), card=CARD).to_fields()).response

    def close_0500(self, number: str, debits: tuple[int, int], credits: tuple[int, int]) -> Any:
        totals = BatchTotals("CNY", debits[0], debits[1], credits[0], credits[1])
        return self.svc.handle(ReconciliationRequest(
            stan=self._next(), terminal_id=TID, merchant_id=MID, batch_number=number,
            totals=totals).to_fields()).response


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(tmp_path, datetime(2026, 11, 26, 10, 0, tzinfo=SH))  # a Thursday
    yield h
    h.svc.close()


def test_void_before_cutoff_refund_after(host: Host) -> None:
    """Before the cut-off a void is approved; after it the batch is closed, void is declined
    and a refund of the same sale is approved."""
    first, second = host.sale(1000), host.sale(2000)
    assert host.void(first.rrn, 1000).response_code == "00"
    host.clock.set(datetime(2026, 11, 26, 23, 0, tzinfo=SH))
    late_void = host.void(second.rrn, 2000)
    assert late_void.response_code != "00" and late_void.rule == "VOID_AFTER_SETTLEMENT"
    assert host.refund(second.rrn, 500).response_code == "00"
    (s,) = host.desk.settlements(date(2026, 11, 26))
    assert (s["sales_count"], s["sales_minor"], s["fees_minor"]) == (1, 2000, 12)
    assert s["funding_date"] == "2026-11-27"


def _batches(host: Host) -> list[dict[str, Any]]:
    """The terminal's batches as stored: id, state, totals and recorded content hash."""
    from sqlalchemy import select

    from host.store import batch

    with host.svc.engine.connect() as conn:
        rows = conn.execute(select(batch).where(batch.c.terminal_id == TID)
                            .order_by(batch.c.id)).all()
        out = [{"id": r.id, "state": r.state, "totals": r.totals, "hash": r.content_hash,
                "now_hash": host.svc.store.batch_content_hash(conn, int(r.id))} for r in rows]
        conn.rollback()
    return out


def _adjustments(host: Host) -> list[dict[str, Any]]:
    return [t for t in host.svc.transactions(TID) if t["kind"] == "adjustment"]


def _batch_of(host: Host, rrn: str) -> int:
    """The batch id holding transaction ``rrn``."""
    with host.svc.engine.connect() as conn:
        row = host.svc.store.txn_by_rrn(conn, rrn)
        conn.rollback()
    assert row is not None and row.batch_id is not None
    return int(row.batch_id)


def test_late_reversal_after_close(host: Host) -> None:
    """K4: a sale, 0500 closes its batch (balanced), then its 0400 -> 00: the closed batch's
    totals and hash are unchanged, the open batch holds a -amount adjustment, a repeat adds
    nothing, funding nets the sale out and the ledger verifies clean."""
    sale = host.sale(5000)
    assert host.close_0500("000001", (1, 5000), (0, 0)).response_code == "00"
    (closed,) = _batches(host)
    reversal = host.reverse(sale.stan, 5000)  # same simulated instant as the 0500
    assert (reversal.response_code, reversal.rule, reversal.rrn) == ("00", None, sale.rrn)
    before, after = closed, _batches(host)[0]
    assert after == before and after["state"] == "closed" and after["hash"] == after["now_hash"]
    (adj,) = _adjustments(host)
    assert (adj["amount_minor"], adj["state"], adj["capture_state"]) == (-5000, "approved",
                                                                         "ADJUSTMENT")
    assert adj["settlement_state"] == "OPEN_BATCH" and adj["stan"] == sale.stan
    detail = host.svc.transaction(sale.rrn)
    assert detail is not None and detail["state"] == "reversed"
    assert [e["kind"] for e in detail["events"]][-1] == "late_reversal"
    assert host.reverse(sale.stan, 5000).response_code == "00"  # 0401-style repeat
    assert len(_adjustments(host)) == 1
    assert host.svc.balances()[f"merchant_payable:{MID}"]["CNY"] == 0
    host.clock.set(datetime(2026, 11, 27, 12, 0, tzinfo=SH))  # cut-off, then T+1 funding
    rows = host.desk.settlements(date(2026, 11, 26))
    assert [(r["sales_minor"], r["adjustments_minor"], r["fees_minor"], r["status"])
            for r in rows] == [(5000, 0, 30, "funded"), (0, -5000, -30, "funded")]
    assert rows[1]["batch"] == f"{TID}/{_batch_of(host, adj['rrn'])}"
    assert sum(r["net_minor"] for r in rows) == 0
    balances = host.svc.balances()
    assert balances[f"merchant_payable:{MID}"]["CNY"] == balances["bank"]["CNY"] == 0
    host.clock.advance(timedelta(days=2))  # nothing new: no second adjustment
    assert len(host.desk.settlements()) == 2
    assert host.svc.verify()["ok"]
    with host.svc.engine.connect() as conn:
        assert host.desk.verify(conn) == []
        conn.rollback()


def test_late_reversal_of_a_refund_is_a_positive_adjustment(host: Host) -> None:
    """A refund reversed after its batch closed: +amount adjustment, the sale is refundable
    again in full, and the settled refund is netted by the adjustment."""
    sale = host.sale(3000)
    refund = host.refund(sale.rrn, 1000)
    assert host.close_0500("000001", (1, 3000), (1, 1000)).response_code == "00"
    host.clock.advance(timedelta(minutes=5))
    assert host.reverse(refund.stan, 1000).response_code == "00"
    (adj,) = _adjustments(host)
    assert adj["amount_minor"] == 1000
    detail = host.svc.transaction(sale.rrn)
    assert detail is not None and detail["remaining_minor"] == 3000
    assert host.reverse(sale.stan, 3000).response_code == "00"  # no refunds left: reversible
    host.clock.set(datetime(2026, 11, 27, 0, 0, tzinfo=SH))
    rows = host.desk.settlements(date(2026, 11, 26))
    assert sum(r["net_minor"] for r in rows) == 0
    assert sum(r["adjustments_minor"] for r in rows) == -3000 + 1000
    assert host.svc.verify()["ok"]


def test_late_reversal_refused_when_the_sale_has_refunds(host: Host) -> None:
    """After the close a sale with a refund still cannot be reversed (12 REVERSAL_AFTER_REFUND);
    nothing is booked."""
    sale = host.sale(3000)
    host.refund(sale.rrn, 1000)
    assert host.close_0500("000001", (1, 3000), (1, 1000)).response_code == "00"
    reply = host.reverse(sale.stan, 3000)
    assert (reply.response_code, reply.rule) == ("12", "REVERSAL_AFTER_REFUND")
    assert _adjustments(host) == []


def test_late_reversal_of_a_held_refund_moves_no_money(host: Host) -> None:
    """A refund held for review when its batch closed was never settled: reversing it later
    books an adjustment row, but the settlement only pays the sale."""
    sale = host.sale(2_000_000)
    held = host.refund(sale.rrn, 600_000)
    assert held.rule == "REFUND_PENDING_REVIEW"
    assert host.close_0500("000001", (1, 2_000_000), (1, 600_000)).response_code == "00"
    assert host.reverse(held.stan, 600_000).response_code == "00"
    assert host.svc.reviews("pending_review") == []
    host.clock.set(datetime(2026, 11, 27, 0, 0, tzinfo=SH))
    rows = host.desk.settlements(date(2026, 11, 26))
    assert [(r["sales_minor"], r["refunds_minor"], r["adjustments_minor"]) for r in rows] == [
        (2_000_000, 0, 0)]
    assert host.svc.verify()["ok"]


def test_funding_posts_balanced_groups_and_reports_match_ledger(host: Host) -> None:
    """Two days of sales and refunds funded T+1 (Fri -> Mon): the merchant payable nets to
    zero, bank = sum of nets, fee income = sum of fees; verify stays clean."""
    a = host.sale(10000)
    host.refund(a.rrn, 2500)
    host.clock.advance(timedelta(days=1))  # Friday
    host.sale(7777)
    host.clock.set(datetime(2026, 12, 1, 12, 0, tzinfo=SH))
    rows = host.desk.settlements()
    assert [(r["business_date"], r["funding_date"], r["status"]) for r in rows] == [
        ("2026-11-26", "2026-11-27", "funded"), ("2026-11-27", "2026-11-30", "funded")]
    balances = host.svc.balances()
    assert balances[f"merchant_payable:{MID}"]["CNY"] == 0
    assert -balances["bank"]["CNY"] == sum(r["net_minor"] for r in rows)
    assert -balances["acquirer_fee_income"]["CNY"] == sum(r["fees_minor"] for r in rows) == 107
    funded = host.desk.outbox.entries(event="merchant_funded") if host.desk.outbox else []
    assert [n["amount_minor"] for n in funded] == [r["net_minor"] for r in rows]
    assert host.svc.verify()["ok"]


def test_refund_goes_settled_then_posted(host: Host) -> None:
    """A refund settles at the cut-off and is posted to the card on its posting date."""
    sale = host.sale(3000)
    host.clock.advance(timedelta(days=1))
    refund = host.refund(sale.rrn, 1000)
    assert host.desk.refund_state(refund.rrn) is None
    host.clock.advance(timedelta(days=1))
    state = host.desk.refund_state(refund.rrn)
    assert state is not None and state["state"] == "settled"
    host.clock.set(datetime.fromisoformat(state["posting_date"]).replace(tzinfo=SH)
                   + timedelta(hours=10))
    assert host.desk.refund_state(refund.rrn)["state"] == "posted"  # type: ignore[index]
    assert host.desk.outbox is not None
    (note,) = host.desk.outbox.entries(event="refund_posted")
    assert note["rrn"] == refund.rrn and note["pan"] == "411111******1111"


def test_refunds_report_from_the_store(host: Host) -> None:
    """The refunds report reads the engine's refunds: reason, settled state, rate per merchant."""
    sale = host.sale(4000)
    host.refund(sale.rrn, 1000)
    host.clock.advance(timedelta(days=1))
    assert host.desk.refund_source is not None
    report = host.desk.refunds_report(host.desk.refund_source, None, None)
    assert report["by_reason"] == {"other": {"count": 1, "amount_minor": 1000}}
    assert report["by_state"] == {"settled": {"count": 1, "amount_minor": 1000}}
    assert report["merchants"][0]["refund_rate_amount"] == "0.2500"


def test_cli_reports_match_the_admin_view(host: Host, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`poslab-host report settlement|refunds` print what the desk holds; bad input exits 2."""
    import json

    from host.cli import main

    sale = host.sale(4000)
    host.refund(sale.rrn, 1000)
    host.clock.advance(timedelta(days=1))
    db = str(tmp_path / "host.db")
    assert main(["report", "settlement", "--db", db, "--format", "json",
                 "--date", "2026-11-26"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    (desk_row,) = host.desk.settlements(date(2026, 11, 26))
    assert row["net_minor"] == desk_row["net_minor"] == 4000 - 1000 - 24
    assert main(["report", "refunds", "--db", db]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith(f"{MID},1,1000,1,4000,0.2500")
    assert main(["report", "settlement", "--db", str(tmp_path / "none.db")]) == 2
    assert "no database file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "settlement", "--date", "tomorrow"])
    assert exit_info.value.code == 2


def test_a_database_from_before_the_chain_column_is_verified_and_reported(
        host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Audit events, settlements and notifications without their ``chain`` column (a database
    of an older version, not opened since): ledger verify finds it clean and `report
    settlement` prints its settlement."""
    import json

    from sqlalchemy import text

    from host.cli import main
    from host.ledger.schema import drop_history_triggers
    from host.settlement.notifications import NOTIFICATION_RULES
    from host.store_verify import verify_host_database

    host.sale(4000)
    host.clock.advance(timedelta(days=2))  # closed and funded: a merchant_funded notification
    with host.svc.engine.begin() as conn:
        drop_history_triggers(conn, host.desk.history_tables, host.desk.history_rules)
        drop_history_triggers(conn, ("notification",), NOTIFICATION_RULES)
        for table in ("event", "settlement", "notification"):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN chain"))
    db = str(tmp_path / "host.db")
    host.svc.close()
    assert verify_host_database(db)["violations"] == []
    assert main(["report", "settlement", "--db", db, "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["merchant_id"], row["net_minor"]) == (MID, 4000 - 24)


def test_review_held_refund_waits_then_settles_and_notifies(host: Host) -> None:
    """A refund held for review is not settled at cut-off; approval notifies and the next
    cut-off settles it; a rejected one notifies with the reason and never settles."""
    big = host.sale(2_000_000)
    held = host.refund(big.rrn, 600_000)
    other = host.refund(big.rrn, 700_000)
    assert held.response_code == other.response_code == "00"
    host.clock.advance(timedelta(days=1))
    assert host.desk.refund_state(held.rrn) is None
    first, second = sorted(host.svc.reviews("pending_review"), key=lambda r: r["id"])
    host.svc.approve_review(first["id"], "alice")
    host.svc.reject_review(second["id"], "bob", "no receipt")
    assert host.desk.outbox is not None
    events = [(n["event"], n["rrn"]) for n in host.desk.outbox.entries()]
    assert ("refund_approved", held.rrn) in events and ("refund_rejected", other.rrn) in events
    (rejected,) = host.desk.outbox.entries(event="refund_rejected")
    assert rejected["reason"] == "no receipt" and rejected["reference"] == big.rrn
    host.clock.advance(timedelta(days=1))
    state = host.desk.refund_state(held.rrn)
    assert state is not None and state["state"] == "settled"
    assert host.desk.refund_state(other.rrn) is None
    detail = host.svc.transaction(held.rrn)
    assert detail is not None and detail["refund_settlement"]["state"] == "settled"
    late = [r for r in host.desk.settlements() if "/late/" in r["batch"]]
    assert [(r["refunds_count"], r["refunds_minor"]) for r in late] == [(1, 600_000)]


def test_online_refund_approval_is_notified(host: Host) -> None:
    """An online-approved refund emits refund_approved in the same commit, PAN masked."""
    sale = host.sale(3000)
    refund = host.refund(sale.rrn, 1000)
    assert host.desk.outbox is not None
    (note,) = host.desk.outbox.entries(event="refund_approved")
    assert (note["rrn"], note["reference"], note["amount_minor"]) == (refund.rrn, sale.rrn, 1000)
    assert note["pan"] == "411111******1111" and note["refund_reason"] == "other"
    row = host.svc.transaction(refund.rrn)
    assert row is not None
    assert (note["merchant_id"], note["currency"]) == (row["merchant_id"], row["currency"])
