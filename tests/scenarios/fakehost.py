"""A tiny rule-less host service for testing the scenario runner itself.

Behaviour the runner tests rely on, independent of the real host's rules: every sale is
approved except amounts ending in .05 (05 CARD_DECLINED); the card 4000000000000119 gets no
answer; a refund over the sale's remaining amount gets 13 REFUND_EXCEEDS_REMAINING with DE54;
reversals answer 00; echo answers 00; a content error answers 30 FORMAT_ERROR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from protocol.messages import (
    FinancialResponse,
    NetworkRequest,
    NetworkResponse,
    RefundRequest,
    ReversalRequest,
    SaleRequest,
    parse_request,
    response_mti,
)
from protocol.money import Money

SILENT_PAN = "4000000000000119"
CONFIG = SimpleNamespace(host=SimpleNamespace(admin_token=None), limits=SimpleNamespace())


@dataclass(frozen=True)
class Reply:
    """Same shape as host.service.Reply."""

    response: Any
    log: dict[str, object]
    silent: bool = False


@dataclass
class FakeService:
    """Approves, tracks remaining refundable amounts by RRN, answers admin queries."""

    config: Any = None
    db_url: str = ""
    clock: Any = None
    strict: bool = False
    allow_unknown_terminals: bool = False
    sales: dict[str, list[int]] = field(default_factory=dict)  # rrn -> [amount, refunded]
    _rrn: int = 0

    def handle(self, fields: dict[str, str]) -> Reply:
        req = parse_request(fields)
        base = {"stan": req.stan, "terminal_id": req.terminal_id, "merchant_id": req.merchant_id}
        if isinstance(req, NetworkRequest):
            return Reply(NetworkResponse(mti_value="0810", response_code="00",
                                         code=req.code.value, **base), {})
        card = getattr(req, "card", None)
        silent = card is not None and card.account.digits == SILENT_PAN
        if silent and not isinstance(req, ReversalRequest):
            return Reply(None, {"note": "no_response"}, silent=True)  # a deliberate silence
        amount: Money = req.amount  # type: ignore[union-attr]
        self._rrn += 1
        rrn, rc, rule, remaining = f"{self._rrn:012d}", "00", None, None
        if isinstance(req, SaleRequest):
            if amount.minor % 100 == 5:
                rc, rule = "05", "CARD_DECLINED"
            else:
                self.sales[rrn] = [amount.minor, 0]
        elif isinstance(req, RefundRequest) and req.original_rrn in self.sales:
            sale = self.sales[req.original_rrn]
            left = sale[0] - sale[1]
            if amount.minor > left:
                rc, rule = "13", "REFUND_EXCEEDS_REMAINING"
            else:
                sale[1] += amount.minor
                left -= amount.minor
            remaining = Money(left, amount.currency)
        elif isinstance(req, ReversalRequest):
            rrn = None  # type: ignore[assignment]
        resp = FinancialResponse(mti_value=response_mti(req.mti), response_code=rc,
                                 processing_code=fields["3"], amount=amount, rrn=rrn,
                                 approval_code="123456" if rc == "00" else None, rule=rule,
                                 remaining=remaining, **base)
        return Reply(resp, {})

    def format_error(self, error: Any) -> Reply:
        f = error.fields
        if not all(k in f for k in ("t", "11", "41")):
            return Reply(None, {})
        resp = FinancialResponse(mti_value=response_mti(f["t"]), response_code="30",
                                 stan=f["11"], terminal_id=f["41"], merchant_id=f.get("42", ""),
                                 processing_code=f.get("3", "000000"), rule="FORMAT_ERROR")
        return Reply(resp, {})

    def transaction(self, rrn: str) -> dict[str, Any] | None:
        sale = self.sales.get(rrn)
        if sale is None:
            return None
        return {"rrn": rrn, "kind": "sale", "mti": "0200", "processing_code": "000000",
                "stan": "000001", "terminal_id": "T1", "merchant_id": "M1",
                "currency": "CNY", "amount_minor": sale[0], "pan": None,
                "business_date": "2026-01-01", "at": "2026-01-01T00:00:00.000+00:00",
                "response_code": "00", "rule": None, "approval_code": "123456",
                "state": "approved", "settlement_state": None, "review_state": None,
                "rules_fired": [], "events": [], "original_rrn": None, "ledger": [],
                "refunded_minor": sale[1], "remaining_minor": sale[0] - sale[1],
                "capture_state": "captured"}

    def verify(self) -> dict[str, Any]:
        return {"ok": True, "violations": [], "checked": {}}

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "database": "fake", "transactions": len(self.sales),
                "posting_groups": 0, "strict": False, "allow_unknown_terminals": True}

    def close(self) -> None:
        """Nothing to release."""
