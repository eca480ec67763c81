"""Merchants known only from development-mode enrolment are settled like listed ones: cut-off,
settlement record, T+1 funding, and again after a restart."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import OperationalError

from host.clock import ManualClock
from host.config import load_config
from host.service import HostService
from host.settlement.jobs import SettlementDesk
from protocol import CardData, EntryMode, Money, Pan, SaleRequest

SH = ZoneInfo("Asia/Shanghai")  # the default merchant profile's zone (cut-off 23:00)
TID, MID = "DEVT0001", "DEVMERCHANT0001"
CARD = CardData(EntryMode.MANUAL, pan=Pan("4111111111111111"), expiry="3012")


def _service(db: Path, clock: ManualClock) -> HostService:
    return HostService(load_config(None), str(db), clock, allow_unknown_terminals=True)


def _desk(service: HostService) -> SettlementDesk:
    desk = service.settlement
    assert isinstance(desk, SettlementDesk)
    return desk


def _sale(service: HostService, stan: str, amount: int) -> str:
    reply = service.handle(SaleRequest(stan=stan, terminal_id=TID, merchant_id=MID, card=CARD,
                                       amount=Money(amount, "CNY")).to_fields())
    assert reply.response is not None and reply.response.response_code == "00"
    return str(reply.response.rrn)


def test_enrolled_merchant_is_cut_off_settled_and_funded(tmp_path: Path) -> None:
    """An unlisted MID enrolled by its first sale gets the default profile's cut-off, a
    settlement record with its MDR fee, and T+1 funding."""
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=SH))  # a Thursday
    service = _service(tmp_path / "host.db", clock)
    try:
        assert MID not in _desk(service).terms
        _sale(service, "000001", 2000)
        assert MID in _desk(service).terms
        clock.set(datetime(2026, 11, 26, 23, 0, tzinfo=SH))  # the cut-off
        (record,) = _desk(service).settlements(date(2026, 11, 26), merchant_id=MID)
        assert (record["sales_count"], record["sales_minor"], record["fees_minor"]) == (1, 2000,
                                                                                      12)
        assert (record["funding_date"], record["status"]) == ("2026-11-27", "closed")
        clock.set(datetime(2026, 11, 27, 12, 0, tzinfo=SH))
        (record,) = _desk(service).settlements(date(2026, 11, 26), merchant_id=MID)
        assert record["status"] == "funded"
        assert service.verify()["ok"]
    finally:
        service.close()


def test_enrolled_merchant_is_settled_after_a_restart(tmp_path: Path) -> None:
    """A host restarted on the same database finds the enrolled merchant in the terminal table
    and closes its batch at the next cut-off."""
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=SH))
    first = _service(tmp_path / "host.db", clock)
    _sale(first, "000001", 3000)
    first.close()
    second = _service(tmp_path / "host.db", clock)
    try:
        assert MID in _desk(second).terms
        clock.set(datetime(2026, 11, 26, 23, 30, tzinfo=SH))
        (record,) = _desk(second).settlements(date(2026, 11, 26), merchant_id=MID)
        assert (record["sales_count"], record["sales_minor"]) == (1, 3000)
    finally:
        second.close()


def test_listed_merchants_are_not_enrolled_twice(tmp_path: Path) -> None:
    """A listed merchant keeps its configured terms; only unlisted ones are enrolled."""
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=SH))
    service = _service(tmp_path / "host.db", clock)
    try:
        desk = _desk(service)
        listed = dict(desk.terms)
        assert desk.enrol(listed["MERCHANT0000001"]) is False
        assert desk.terms == listed
    finally:
        service.close()


def test_an_enrolment_that_fails_never_fails_the_committed_requests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If starting to settle a new merchant fails after the commit, the request still gets
    its approval, and the merchant is enrolled after the next commit."""
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=SH))
    service = _service(tmp_path / "host.db", clock)
    desk = _desk(service)
    real = desk._merchant_day
    calls: list[str] = []

    def flaky(conn: Any, mid: str) -> Any:  # the desk's first read of the merchant's day
        calls.append(mid)
        if len(calls) == 1:
            raise OperationalError("SELECT", {}, Exception("database is locked"))
        return real(conn, mid)

    monkeypatch.setattr(desk, "_merchant_day", flaky)
    try:
        _sale(service, "000001", 1000)  # approved although the enrolment failed
        assert MID not in desk.terms
        _sale(service, "000002", 1000)
        assert MID in desk.terms and calls == [MID, MID]
    finally:
        service.close()
