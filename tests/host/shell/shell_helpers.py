"""Test helpers for the host shell: request builders, an asyncio ISO client and a fake service.

The fake service answers like :class:`host.service.HostService` closely enough to drive
the server and admin API; tests that need the real rules use :class:`host.service.HostService`.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from protocol import (
    CardData,
    Codec,
    EntryMode,
    FinancialResponse,
    Money,
    NetworkCode,
    NetworkRequest,
    NetworkResponse,
    Pan,
    RefundRequest,
    SaleRequest,
    ValidationError,
    frame,
    mask_pan,
    parse_request,
    response_mti,
)

PAN = "4761739001010119"
TID = "TERM0001"
MID = "MERCHANT0000001"
#: The admin token the shell tests' hosts run with.
TOKEN = "test-admin-token"

NOW = datetime(2025, 3, 14, 10, 30, tzinfo=UTC)


def sale(stan: str = "000001", amount_minor: int = 1000, tid: str = TID,
         mid: str = MID) -> dict[str, str]:
    """A valid 0200 purchase field dict."""
    return SaleRequest(
        stan=stan, terminal_id=tid, merchant_id=mid, transmitted_at="0314103000",
        card=CardData(EntryMode.MANUAL, pan=Pan(PAN), expiry="2812"),
        amount=Money(amount_minor, "USD"), local_time="103000", local_date="0314",
    ).to_fields()


def refund(rrn: str, stan: str = "000002", amount_minor: int = 400) -> dict[str, str]:
    """A valid 0200 refund field dict referencing ``rrn``."""
    return RefundRequest(
        stan=stan, terminal_id=TID, merchant_id=MID, transmitted_at="0314103100",
        card=CardData(EntryMode.MANUAL, pan=Pan(PAN), expiry="2812"),
        amount=Money(amount_minor, "USD"), local_time="103100", local_date="0314",
        original_rrn=rrn,
    ).to_fields()


def echo(stan: str = "000009") -> dict[str, str]:
    """A valid 0800 echo test."""
    return NetworkRequest(stan=stan, terminal_id=TID, merchant_id=MID,
                          transmitted_at="0314103000", code=NetworkCode.ECHO).to_fields()


class IsoClient:
    """A plain asyncio ISO 8583 client (independent of the host's Twisted code)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 codec: Codec) -> None:
        self.reader, self.writer, self.codec = reader, writer, codec
        self.header = codec.profile.length_header

    @classmethod
    async def connect(cls, port: int, profile: str = "iso87-ascii") -> IsoClient:
        """Open a connection to the host."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, Codec(profile))

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are."""
        self.writer.write(data)

    def send(self, fields: dict[str, str], tpdu: bytes | None = None) -> None:
        """Encode and frame one message."""
        from protocol import Tpdu

        body = self.codec.encode(fields, Tpdu(tpdu) if tpdu else None)
        self.send_raw(frame(body, self.header))

    def send_body(self, body: bytes) -> None:
        """Frame an already encoded (possibly broken) body."""
        self.send_raw(frame(body, self.header))

    async def read_payload(self) -> bytes:
        """The next frame's payload."""
        if self.header == "2b":
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        else:
            n = int(await self.reader.readexactly(4))
        return await self.reader.readexactly(n)

    async def receive(self) -> dict[str, str]:
        """The next response, decoded."""
        _, fields = self.codec.decode(await self.read_payload())
        return fields

    async def request(self, fields: dict[str, str]) -> dict[str, str]:
        """Send one request and wait for its response."""
        self.send(fields)
        return await self.receive()

    async def closed_by_host(self) -> bool:
        """Wait until the host closes the connection; True if it sent nothing more."""
        data = await self.reader.read()
        return data == b""

    def close(self) -> None:
        """Close our side."""
        self.writer.close()


@dataclass(frozen=True)
class FakeReply:
    """Same shape as host.service.Reply."""

    response: Any
    log: dict[str, object]
    silent: bool = False


@dataclass
class FakeService:
    """A contract-shaped stand-in for HostService: approves, echoes, assigns RRNs.

    :ivar threads: names of the threads each call ran in (proves the single worker thread).
    :ivar gate: when set, ``handle`` waits on it first (to hold requests in flight).
    """

    config: Any = None
    db_url: str = ""
    clock: Any = None
    strict: bool = False
    allow_unknown_terminals: bool = False
    threads: set[str] = field(default_factory=set)
    gate: threading.Event | None = None
    closed: bool = False
    _rrn: int = 0
    reviews_list: list[dict[str, Any]] = field(default_factory=lambda: [
        review_view(1, "pending_review")])

    def _seen(self) -> None:
        self.threads.add(threading.current_thread().name)

    def handle(self, fields: dict[str, str]) -> FakeReply:
        self._seen()
        if self.gate is not None:
            self.gate.wait(10)
        req = parse_request(fields)
        kind = type(req).__name__
        if isinstance(req, NetworkRequest):
            resp: Any = NetworkResponse(mti_value="0810", response_code="00", stan=req.stan,
                                        terminal_id=req.terminal_id, merchant_id=req.merchant_id,
                                        code=req.code.value)
            return FakeReply(resp, {"kind": kind, "rc": "00"})
        self._rrn += 1
        amount = getattr(req, "amount", None)
        rc = "05" if amount is not None and amount.minor % 100 == 5 else "00"
        resp = FinancialResponse(
            mti_value=response_mti(req.mti), response_code=rc, stan=req.stan,
            terminal_id=req.terminal_id, merchant_id=req.merchant_id,
            processing_code=fields.get("3", "000000"), amount=amount,
            rrn=f"{self._rrn:012d}", approval_code="A1B2C3" if rc == "00" else None,
            rule="CARD_DECLINED" if rc == "05" else None)
        return FakeReply(resp, {"kind": kind, "rc": rc, "pan": mask_pan(PAN)})

    def format_error(self, error: ValidationError) -> FakeReply:
        self._seen()
        f = error.fields
        if not all(k in f for k in ("t", "11", "41")) or not f["t"].isdigit():
            return FakeReply(None, {"kind": "format_error"})
        resp = FinancialResponse(
            mti_value=response_mti(f["t"]), response_code="30", stan=f["11"],
            terminal_id=f["41"], merchant_id=f.get("42", MID),
            processing_code=f.get("3", "000000"), rule="FORMAT_ERROR")
        return FakeReply(resp, {"kind": "format_error", "rc": "30"})

    def health(self) -> dict[str, Any]:
        self._seen()
        return {"status": "ok", "database": "fake", "transactions": 0, "posting_groups": 0,
                "strict": False, "allow_unknown_terminals": False}

    def transaction(self, rrn: str) -> dict[str, Any] | None:
        if rrn != "000000000001":
            return None
        return {**txn_summary(rrn), "rules_fired": [], "events": [], "original_rrn": None,
                "ledger": []}

    def transactions(self, tid: str | None = None, stan: str | None = None) -> list[dict[str, Any]]:
        return [txn_summary("000000000001", tid or TID, stan or "000001")]

    def transactions_page(self, tid: str | None = None, stan: str | None = None,
                          limit: int = 500, cursor: str | None = None) -> dict[str, Any]:
        return {"transactions": self.transactions(tid, stan), "next": None,
                "asked": {"limit": limit, "cursor": cursor}}

    def balances(self) -> dict[str, Any]:
        return {"merchant_payable:M1": {"USD": 0}}

    def verify(self) -> dict[str, Any]:
        return {"ok": True, "violations": [], "checked": {"entries": 0}}

    def reviews(self, state: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.reviews_list if state in (None, r["state"])]

    def approve_review(self, review_id: int, approver: str, note: str = "") -> dict[str, Any]:
        if review_id != 1:
            raise _AdminError(404, f"no review {review_id}")
        return review_view(1, "approved", approved_by=[
            {"approver": approver, "note": note, "at": "2026-11-26T01:00:00.000+00:00"}])

    def reject_review(self, review_id: int, approver: str, reason: str) -> dict[str, Any]:
        if review_id != 1:
            raise _AdminError(404, f"no review {review_id}")
        return review_view(1, "rejected", reason=reason)

    def close(self) -> None:
        self.closed = True


def txn_summary(rrn: str, tid: str = "TERM0001", stan: str = "000001") -> dict[str, Any]:
    """A transaction summary of the admin API's shape (an approved sale)."""
    return {"rrn": rrn, "kind": "sale", "mti": "0200", "processing_code": "000000",
            "stan": stan, "terminal_id": tid, "merchant_id": "MERCHANT0000001",
            "amount_minor": 1000, "currency": "USD", "pan": "411111******1111",
            "business_date": "2026-11-26", "at": "2026-11-26T01:00:00.000+00:00",
            "response_code": "00", "rule": None, "approval_code": "A1B2C3",
            "state": "approved", "capture_state": "CAPTURED", "settlement_state": "OPEN_BATCH",
            "review_state": None}


def review_view(review_id: int, state: str, **over: Any) -> dict[str, Any]:
    """A refund review of the admin API's shape, holding a 900.00 refund."""
    return {"id": review_id, "state": state, "level": 2, "approvals_needed": 2,
            "approved_by": [], "reason": None, "created": "2026-11-26T01:00:00.000+00:00",
            "decided": None, "rrn": "000000000002", "merchant_id": "MERCHANT0000001",
            "terminal_id": "TERM0001", "amount_minor": 90000, "currency": "USD",
            "pan": "411111******1111", "refund_reason": "damaged", **over}


class _AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def limits_config(**limits: float) -> SimpleNamespace:
    """A config object with only a ``limits`` section (enough for the fake service)."""
    return SimpleNamespace(limits=SimpleNamespace(**limits), host=SimpleNamespace(admin_token=None))
