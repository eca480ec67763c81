"""A refund's own fee in the admin transaction view, against what its settlement books."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from host.clock import ManualClock
from host.config import default_config_text, load_config
from host.service import HostService
from protocol import CardData, EntryMode, Money, Pan, RefundRequest, SaleRequest
from protocol.admin_models import TxnDetail

SH = ZoneInfo("Asia/Shanghai")
TID, MID = "TERM0001", "MERCHANT0000001"  # the shipped default merchant: MDR 0.6 %, CNY
CARD = CardData(EntryMode.MANUAL, pan=Pan("4111111111111111"), expiry="3012")


def _host(tmp: Path, policy: str) -> HostService:
    """A host on the shipped config with the refund ``policy`` (30 fen per refund) and a
    simulated clock on a Thursday morning in Shanghai."""
    text = default_config_text().replace('fee_policy = "keep_mdr"', f'fee_policy = "{policy}"')
    text = text.replace("per_refund_fee_minor = 0", "per_refund_fee_minor = 30")
    (tmp / "host.toml").write_text(text, "utf-8")
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=SH))
    return HostService(load_config(str(tmp / "host.toml")), str(tmp / "host.db"), clock)


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
    svc = _host(tmp_path, policy)
    try:
        sale = svc.handle(SaleRequest(stan="000001", terminal_id=TID, merchant_id=MID,
                                      card=CARD, amount=Money(3333, "CNY")).to_fields())
        _cutoff(svc, 0)  # the sale settles alone: its MDR is not in the refunds' figures
        for n, want in enumerate(fees, start=1):
            refund = svc.handle(RefundRequest(
                stan=f"00000{n + 1}", terminal_id=TID, merchant_id=MID, card=CARD,
                amount=Money(1111, "CNY"), original_rrn=sale.response.rrn).to_fields())
            rrn = refund.response.rrn
            before = TxnDetail.model_validate(svc.transaction(rrn))
            _cutoff(svc, n)
            after = TxnDetail.model_validate(svc.transaction(rrn))
            assert after.refund_settlement is not None
            (booked,) = [s for s in svc.settlement.settlements()  # type: ignore[union-attr]
                         if s["id"] == after.refund_settlement.settlement_id]
            assert (booked["refunds_count"], booked["sales_count"]) == (1, 0)
            assert before.fee_minor == after.fee_minor == booked["fees_minor"] == want
            assert after.fee_policy == policy.removesuffix("_prorata")
        first = TxnDetail.model_validate(svc.transaction(sale.response.rrn))
        assert first.fee_minor is None  # a sale's view carries no refund fee
    finally:
        svc.close()
