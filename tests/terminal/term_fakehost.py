"""A small in-test acquirer host: enough ISO 8583 behaviour to drive the terminal.

It approves sales, tracks what is left to refund of each sale, declines over-refunds with the
rule id and the remaining amount, never answers the no-response card, acknowledges reversals
(undoing what they reverse), and reconciles batches (95 when its totals differ). It keeps its
own ledger view so tests can check that a reversed transaction nets to zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.codec import Codec
from protocol.codes import RuleId
from protocol.messages import (
    BatchTotals,
    BatchUploadRequest,
    BatchUploadResponse,
    FinancialResponse,
    NetworkRequest,
    NetworkResponse,
    ReconciliationRequest,
    ReconciliationResponse,
    RefundRequest,
    ReversalRequest,
    SaleRequest,
    VoidRequest,
    parse_request,
)
from protocol.money import Money
from protocol.transport import FramedProtocol

NO_RESPONSE_PAN = "4000000000000119"
DECLINE_PANS = {"4000000000000002": "05", "4000000000009995": "51", "4000000000000069": "54"}


@dataclass
class Booking:
    """One transaction as the fake host booked it; ``net_minor`` is what it moved."""

    kind: str
    stan: str
    rrn: str
    amount_minor: int
    net_minor: int
    original_rrn: str | None = None
    voided: bool = False


@dataclass
class FakeHostState:
    """What the fake host knows; tests read and tweak it."""

    bookings: list[Booking] = field(default_factory=list)
    received: list[str] = field(default_factory=list)  # MTIs in arrival order
    uploads: list[str] = field(default_factory=list)  # RRNs uploaded
    extra_debits_minor: int = 0  # pretend the host saw a sale the terminal did not
    silent: bool = False  # answer nothing at all
    hold_answers: bool = False  # keep 0210s back until the reversal arrives (then send late)
    held: list[object] = field(default_factory=list)
    rrn_seq: int = 0

    def next_rrn(self) -> str:
        """A fresh 12-character RRN."""
        self.rrn_seq += 1
        return f"{self.rrn_seq:012d}"

    def by_rrn(self, rrn: str | None) -> Booking | None:
        """The booking with this RRN."""
        return next((b for b in self.bookings if b.rrn == rrn), None)

    def by_stan(self, stan: str) -> Booking | None:
        """The latest booking with this STAN."""
        return next((b for b in reversed(self.bookings) if b.stan == stan), None)

    def remaining(self, sale: Booking) -> int:
        """What is left to refund of ``sale``."""
        refunded = sum(b.net_minor * -1 for b in self.bookings
                       if b.kind == "refund" and b.original_rrn == sale.rrn)
        return sale.amount_minor - refunded

    def totals(self, currency: str) -> BatchTotals:
        """The host's view of the batch."""
        sales = [b for b in self.bookings if b.kind == "sale" and b.net_minor]
        refunds = [b for b in self.bookings if b.kind == "refund" and b.net_minor]
        return BatchTotals(currency, len(sales) + (1 if self.extra_debits_minor else 0),
                           sum(b.net_minor for b in sales) + self.extra_debits_minor,
                           len(refunds), -sum(b.net_minor for b in refunds))


class FakeHostProtocol(FramedProtocol):
    """One terminal connection to the fake host."""

    def __init__(self, state: FakeHostState) -> None:
        self.state = state
        self.codec = Codec()

    def frameReceived(self, payload: bytes) -> None:  # noqa: N802
        """Answer one request."""
        _, fields = self.codec.decode(payload)
        self.state.received.append(fields["t"])
        if self.state.silent:
            return
        request = parse_request(fields)
        answer = self.answer(request, fields)
        if isinstance(request, ReversalRequest):
            for late in self.state.held:
                self.sendFrame(self.codec.encode(late.to_fields()))  # type: ignore[attr-defined]
            self.state.held.clear()
        if answer is None:
            return
        if self.state.hold_answers and fields["t"] == "0200":
            self.state.held.append(answer)
            return
        self.sendFrame(self.codec.encode(answer.to_fields()))  # type: ignore[attr-defined]

    def answer(self, req: object, fields: dict[str, str]) -> object | None:
        """The response message, or None for silence."""
        st = self.state
        ids = dict(stan=fields["11"], terminal_id=fields["41"], merchant_id=fields["42"],
                   transmitted_at=fields.get("7"), business_date="0115")
        if isinstance(req, NetworkRequest):
            return NetworkResponse(mti_value="0810", response_code="00", code=req.code.value,
                                   **ids)
        if isinstance(req, SaleRequest):
            pan = req.card.account.digits if req.card else ""
            if pan == NO_RESPONSE_PAN:
                return None
            code = DECLINE_PANS.get(pan, "00")
            rrn = st.next_rrn()
            if code == "00":
                st.bookings.append(Booking("sale", req.stan, rrn, req.amount.minor,
                                           req.amount.minor))
            return FinancialResponse(mti_value="0210", response_code=code,
                                     processing_code=fields["3"], amount=req.amount, rrn=rrn,
                                     approval_code="A1B2C3" if code == "00" else None, **ids)
        if isinstance(req, RefundRequest):
            sale = st.by_rrn(req.original_rrn)
            if sale is None:
                return FinancialResponse(mti_value="0210", response_code="25",
                                         rule=RuleId.ORIGINAL_NOT_FOUND.value,
                                         processing_code=fields["3"], amount=req.amount, **ids)
            left = st.remaining(sale)
            if req.amount.minor > left:
                return FinancialResponse(
                    mti_value="0210", response_code="13",
                    rule=RuleId.REFUND_EXCEEDS_REMAINING.value, processing_code=fields["3"],
                    amount=req.amount, remaining=Money(left, req.amount.currency), **ids)
            rrn = st.next_rrn()
            st.bookings.append(Booking("refund", req.stan, rrn, req.amount.minor,
                                       -req.amount.minor, original_rrn=sale.rrn))
            return FinancialResponse(
                mti_value="0210", response_code="00", processing_code=fields["3"],
                amount=req.amount, rrn=rrn, approval_code="R00001",
                remaining=Money(left - req.amount.minor, req.amount.currency), **ids)
        if isinstance(req, VoidRequest):
            orig = st.by_rrn(req.original_rrn)
            if orig is None:
                return FinancialResponse(mti_value="0210", response_code="25",
                                         processing_code=fields["3"], amount=req.amount, **ids)
            orig.net_minor = 0
            orig.voided = True
            return FinancialResponse(mti_value="0210", response_code="00",
                                     processing_code=fields["3"], amount=req.amount,
                                     rrn=st.next_rrn(), approval_code="V00001", **ids)
        if isinstance(req, ReversalRequest):
            booking = st.by_stan(req.stan)
            if booking is not None:
                booking.net_minor = 0
            return FinancialResponse(mti_value="0410", response_code="00",
                                     processing_code=fields["3"], amount=req.amount, **ids)
        if isinstance(req, ReconciliationRequest):
            ours = st.totals(req.totals.currency)
            code = "00" if req.after_upload or ours == req.totals else "95"
            return ReconciliationResponse(mti_value="0510", response_code=code,
                                          batch_number=req.batch_number, totals=ours, **ids)
        if isinstance(req, BatchUploadRequest):
            st.uploads.append(req.rrn)
            return BatchUploadResponse(mti_value="0330", response_code="00", rrn=req.rrn,
                                       **ids)
        return None


def listen(state: FakeHostState) -> tuple[int, object]:
    """Listen on 127.0.0.1 port 0 with the shared reactor; return (port, listening port)."""
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory

    factory = Factory()
    factory.buildProtocol = lambda addr: FakeHostProtocol(state)  # type: ignore[method-assign]
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    return port.getHost().port, port
