"""A refund's own fee in the admin transaction view, against what its settlement books."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from host.clock import ManualClock
from host.config import default_config_text, load_config
from host.service import HostService
from protocol import (
    CardData,
    EntryMode,
    FinancialResponse,
    Money,
    Pan,
    RefundRequest,
    SaleRequest,
)
from protocol.admin_models import TxnDetail

SH = ZoneInfo("Asia/Shanghai")
TID, MID = "TERM0001", "MERCHANT0000001"  # the shipped default merchant: MDR 0.6 %, CNY
CARD = CardData(EntryMode.MANUAL, pan=Pan("4111111111111111"), expiry="3012")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "host.db")
    return str(request.getfixturevalue("pg_url"))


def _host(tmp: Path, policy: str, review_minor: int = 500000, url: str = "") -> HostService:
    """A host on the shipped config with the refund ``policy`` (30 fen per refund), refunds
    above ``review_minor`` held for review, and a simulated clock on a Thursday morning in
    Shanghai."""
    text = default_config_text().replace('fee_policy = "keep_mdr"', f'fee_policy = "{policy}"')
    text = text.replace("per_refund_fee_minor = 0", "per_refund_fee_minor = 30")
    text = text.replace("review_amount_minor = 500000", f"review_amount_minor = {review_minor}")
    (tmp / "host.toml").write_text(text, "utf-8")
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=SH))
    return HostService(load_config(str(tmp / "host.toml")), url or str(tmp / "host.db"), clock)


def _sale(svc: HostService) -> str:
    """Sell 33.33 CNY (MDR 20 fen) and settle the sale alone at the day's cut-off."""
    sale = svc.handle(SaleRequest(stan="000001", terminal_id=TID, merchant_id=MID, card=CARD,
                                  amount=Money(3333, "CNY")).to_fields())
    _cutoff(svc, 0)
    return _approved_rrn(sale.response)


def _refund(svc: HostService, sale_rrn: str, stan: int, amount: int) -> str:
    refund = svc.handle(RefundRequest(
        stan=f"{stan:06d}", terminal_id=TID, merchant_id=MID, card=CARD,
        amount=Money(amount, "CNY"), original_rrn=sale_rrn).to_fields())
    return _approved_rrn(refund.response)


def _approved_rrn(response: object) -> str:
    assert isinstance(response, FinancialResponse) and response.response_code == "00"
    return str(response.rrn)


def _fee(svc: HostService, rrn: str) -> int | None:
    return TxnDetail.model_validate(svc.transaction(rrn)).fee_minor


def _latest_settlement(svc: HostService) -> dict[str, Any]:
    return max(svc.settlement.settlements(), key=lambda s: int(s["id"]))  # type: ignore[union-attr]


def _cutoff(svc: HostService, day: int) -> None:
    """Move the simulated clock past 26+``day`` November's 23:00 cut-off."""
    svc.clock.set(datetime(2026, 11, 26 + day, 23, 1, tzinfo=SH))  # type: ignore[attr-defined]


@pytest.mark.parametrize(("policy", "fees"), [
    ("keep_mdr", (0, 0)),
    ("refund_mdr_prorata", (-7, -6)),  # 20 fen of MDR on 33.33, returned 7 then 13 in all
    ("per_refund_fee", (30, 30)),
])
def test_refund_view_fee_is_the_fee_its_settlement_books(
        tmp_path: Path, policy: str, fees: tuple[int, int]) -> None:
    """Each refund, settled alone on its own business day, shows before and after its cut-off
    the fee its settlement books, under each refund fee policy."""
    with closing(_host(tmp_path, policy)) as svc:
        sale_rrn = _sale(svc)  # alone: the sale's MDR is not in the refunds' figures
        for n, want in enumerate(fees, start=1):
            rrn = _refund(svc, sale_rrn, n + 1, 1111)
            before = TxnDetail.model_validate(svc.transaction(rrn))
            _cutoff(svc, n)
            after = TxnDetail.model_validate(svc.transaction(rrn))
            assert after.refund_settlement is not None
            (booked,) = [s for s in svc.settlement.settlements()  # type: ignore[union-attr]
                         if s["id"] == after.refund_settlement.settlement_id]
            assert (booked["refunds_count"], booked["sales_count"]) == (1, 0)
            assert before.fee_minor == after.fee_minor == booked["fees_minor"] == want
            assert after.fee_policy == policy
        assert _fee(svc, sale_rrn) is None  # a sale's view carries no refund fee


def test_refund_released_late_keeps_the_fee_of_the_order_it_settled_in(
        tmp_path: Path, url: str) -> None:
    """Pro rata, a held refund settled after a later refund of the same sale shows the fee
    its own cut-off booked (16.00 after 11.11: 9 fen back), and the later one its (7 fen),
    on both backends."""
    with closing(_host(tmp_path, "refund_mdr_prorata", review_minor=1500, url=url)) as svc:
        sale_rrn = _sale(svc)
        held, quick = _refund(svc, sale_rrn, 2, 1600), _refund(svc, sale_rrn, 3, 1111)
        _cutoff(svc, 1)  # only the quick refund settles: 7 fen of the 20 returned
        (review,) = svc.reviews("pending_review")
        svc.approve_review(int(review["id"]), "lead")
        assert _fee(svc, held) == -9  # what a cut-off now books: 16 returned in all, less 7
        _cutoff(svc, 2)
        last = _latest_settlement(svc)
        assert (last["refunds_minor"], last["fees_minor"]) == (1600, -9)
        assert (_fee(svc, held), _fee(svc, quick)) == (-9, -7)


def test_a_refund_before_its_cutoff_counts_the_earlier_one_that_settles_first(
        tmp_path: Path) -> None:
    """Pro rata, two refunds of one sale on one day: before the cut-off the second already
    shows the fee the cut-off books for it after the first (1 fen back, not 2)."""
    with closing(_host(tmp_path, "refund_mdr_prorata")) as svc:
        sale_rrn = _sale(svc)
        first, second = _refund(svc, sale_rrn, 2, 1111), _refund(svc, sale_rrn, 3, 250)
        assert (_fee(svc, first), _fee(svc, second)) == (-7, -1)
        _cutoff(svc, 1)
        last = _latest_settlement(svc)
        assert (last["refunds_count"], last["fees_minor"]) == (2, -8)
        assert (_fee(svc, first), _fee(svc, second)) == (-7, -1)
