"""A canned admin API for the console's snapshot tests: fixed records, fixed answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from host.console.client import AdminApiError, StreamRecord

SALE_FIELDS = [["t", "Message type indicator", "0200", "financial request"],
               ["2", "Primary account number", "411111******1111", ""],
               ["3", "Processing code", "000000", "purchase"],
               ["4", "Amount, transaction", "000000012500", "125.00"],
               ["11", "System trace audit number", "000101", ""],
               ["41", "Card acceptor terminal id", "TERM0001", ""]]


def message(direction: str, rc: str | None, stan: str, amount: int, txn_type: str,
            rrn: str | None, at: str) -> dict[str, Any]:
    """A ``message`` event's data (its currency DE49's numeric code, as the host sends it)."""
    return {"type": "message", "direction": direction, "conn": 1, "at": at,
            "mti": "0200" if direction == "in" else "0210", "txn_type": txn_type,
            "stan": stan, "tid": "TERM0001", "mid": "MERCHANT0000001", "rrn": rrn,
            "amount_minor": amount, "currency": "156", "pan": "411111******1111", "rc": rc,
            "rule": None, "fields": SALE_FIELDS}


RECORDS = [
    StreamRecord(None, "hello", {"last_id": 0, "ledger_head": 0, "balances": {},
                                 "merchants": {"MERCHANT0000001": {
                                     "country": "CN", "subdivision": None,
                                     "timezone": "Asia/Shanghai"}}}),
    StreamRecord(1, "message", message("in", None, "000101", 12_500, "sale", None,
                                       "2026-03-02T02:00:00.000+00:00")),
    StreamRecord(2, "message", message("out", "00", "000101", 12_500, "sale", "000000000001",
                                       "2026-03-02T02:00:00.000+00:00")),
    StreamRecord(3, "posting", {"group": 1, "kind": "sale", "currency": "CNY",
                                "rrn": "000000000001", "entries": [
                                    {"account": "scheme_settlement", "side": "D",
                                     "amount_minor": 12_500},
                                    {"account": "merchant_payable:MERCHANT0000001", "side": "C",
                                     "amount_minor": 12_500}]}),
    StreamRecord(4, "message", message("in", None, "000102", 4_000, "refund", None,
                                       "2026-03-02T02:05:00.000+00:00")),
    StreamRecord(5, "message", message("out", "00", "000102", 4_000, "refund", "000000000002",
                                       "2026-03-02T02:05:00.000+00:00")),
    StreamRecord(6, "posting", {"group": 2, "kind": "refund", "currency": "CNY",
                                "rrn": "000000000002", "entries": [
                                    {"account": "merchant_payable:MERCHANT0000001", "side": "D",
                                     "amount_minor": 4_000},
                                    {"account": "refunds_under_review", "side": "C",
                                     "amount_minor": 4_000}]}),
]

SALE = {"rrn": "000000000001", "kind": "sale", "amount_minor": 12_500, "currency": "CNY",
        "pan": "411111******1111", "at": "2026-03-02T02:00:00.000+00:00",
        "response_code": "00", "capture_state": "CAPTURED",
        "refunds": [{"rrn": "000000000002"}]}
REVIEW = {"id": 1, "state": "pending_review", "approvals_needed": 2,
          "approved_by": [{"approver": "alice", "note": "", "at": "2026-03-02T02:06:00Z"}],
          "created": "2026-03-02T02:05:00.000+00:00", "decided": None, "reason": None,
          "rrn": "000000000002", "amount_minor": 4_000, "currency": "CNY",
          "pan": "411111******1111"}
REFUND = {"rrn": "000000000002", "kind": "refund", "amount_minor": 4_000, "currency": "CNY",
          "pan": "411111******1111", "at": "2026-03-02T02:05:00.000+00:00",
          "response_code": "00", "capture_state": "PENDING_REVIEW", "reason": "RETURN",
          "evidence": "receipt 17", "original_rrn": "000000000001", "review": REVIEW,
          "settlement_state": "OPEN_BATCH", "refund_settlement": None,
          "fee_minor": 200, "fee_policy": "per_refund_fee"}
CLOCK = {"mode": "simulated", "now": "2026-03-02T02:06:00+00:00",
         "business_dates": {"MERCHANT0000001": "2026-03-02"},
         "pending_events": [{"at": "2026-03-02T15:00:00+00:00", "key": "cutoff:MERCHANT0000001"}]}


class FakeApi:
    """Answers the console's calls from the tables above; records the commands sent."""

    url = "http://127.0.0.1:8584"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []
        self.done = asyncio.Event()

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        if method != "GET":
            self.sent.append((method, path, body))
            return {**CLOCK, "now": "2026-03-02T03:06:00+00:00"} if path.startswith("/clock") \
                else {**REVIEW, "state": "approved"}
        answers: dict[str, Any] = {
            "/clock": CLOCK, "/reviews": {"reviews": [REVIEW]},
            "/ledger/verify": {"ok": True, "violations": []},
            "/transactions/000000000001": SALE, "/transactions/000000000002": REFUND,
            "/notifications?rrn=000000000002": {"notifications": []},
            "/transactions?limit=50": {"transactions": [], "next": None}}
        if path not in answers:
            raise AdminApiError(404, f"no such endpoint: {path}")
        return answers[path]

    async def events(self) -> AsyncIterator[StreamRecord]:
        for record in RECORDS:
            yield record
        self.done.set()
        await asyncio.Event().wait()  # a quiet, open stream

    async def close(self) -> None:
        pass
