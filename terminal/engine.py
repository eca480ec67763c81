"""Runs a finished draft against the host: journal first, then the wire, then the outcome.

The engine owns the order of things a real terminal must respect:

1. pending reversals are forwarded before anything new is sent (store and forward);
2. a request is journalled as ``PENDING`` *before* it is sent, so a crash leaves a trace;
3. no answer within the timeout means a reversal: 0400, then 0401 repeats up to the configured
   count; an unacknowledged reversal stays in the journal for the next attempt;
4. an answer arriving after its request timed out is counted as late on the journal line and
   never turns the transaction into an approval.

The clock is a parameter so tests can pin the transmission times. :attr:`Engine.observers`
hear about every completed exchange (``--record`` writes them as a scenario).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from protocol.codes import NetworkCode, RefundReason, response_text
from protocol.errors import ProtocolError
from protocol.messages import (
    AnyResponse,
    BatchTotals,
    BatchUploadRequest,
    FinancialRequest,
    FinancialResponse,
    NetworkRequest,
    NetworkResponse,
    OriginalData,
    ReconciliationRequest,
    ReconciliationResponse,
    RefundRequest,
    ReversalRequest,
    SaleRequest,
    VoidRequest,
    parse_response,
)
from protocol.money import Money
from terminal import receipt
from terminal.config import TerminalConfig
from terminal.flow import Draft, Outcome
from terminal.journal import Journal, Txn, TxnKind, TxnStatus
from terminal.link import Link, LinkError, LinkTimeout, Traffic
from terminal.recorder import Exchanged

Clock = Callable[[], datetime]


def _local_now() -> datetime:
    return datetime.now().astimezone()


@dataclass(frozen=True)
class SettleOutcome:
    """What a settlement did.

    :ivar balanced: the host agreed with the terminal's totals at once.
    :ivar uploaded: how many transactions were uploaded (0320) after a 95.
    """

    ok: bool
    balanced: bool
    uploaded: int
    closed_batch: str
    new_batch: str
    detail: str


def build_request(draft: Draft, stan: str, config: TerminalConfig, now: datetime
                  ) -> FinancialRequest:
    """The protocol message for ``draft`` (pure)."""
    card = draft.card.present(draft.entry_mode) if draft.card and draft.entry_mode else None
    utc = now.astimezone(UTC)
    common = dict(stan=stan, terminal_id=config.terminal_id, merchant_id=config.merchant_id,
                  transmitted_at=utc.strftime("%m%d%H%M%S"), local_time=now.strftime("%H%M%S"),
                  local_date=now.strftime("%m%d"))
    if draft.kind is TxnKind.SALE:
        return SaleRequest(card=card, amount=draft.amount, **common)
    assert draft.original is not None
    if draft.kind is TxnKind.REFUND:
        return RefundRequest(card=card, amount=draft.amount, original_rrn=draft.original.rrn,
                             reason=draft.reason or RefundReason.OTHER, operator=draft.operator,
                             **common)
    return VoidRequest(card=card, amount=draft.amount, original_rrn=draft.original.rrn,
                       voids_refund=draft.original.kind is TxnKind.REFUND,
                       operator=draft.operator, **common)


class Engine:
    """Sends transactions for one terminal and keeps its journal straight."""

    def __init__(self, config: TerminalConfig, journal: Journal, link: Link,
                 clock: Clock = _local_now) -> None:
        self.config = config
        self.journal = journal
        self.link = link
        self.clock = clock
        #: called with each completed exchange: request, answer or timeout, reversal.
        self.observers: list[Callable[[Exchanged], None]] = []
        # The settlement's first 0500 and its answer (what a recorded ``settle`` step expects).
        self._first_0500: tuple[ReconciliationRequest, ReconciliationResponse, datetime] | None \
            = None
        link.listeners.append(self._late_watch)

    def _observe(self, event: Exchanged) -> None:
        for observer in list(self.observers):
            observer(event)

    # -- network management ------------------------------------------------------------------

    async def sign_on(self) -> NetworkResponse:
        """Connect if needed and sign on; remembers the host's business date."""
        await self.link.connect()
        return await self._network(NetworkCode.SIGN_ON)

    async def echo(self) -> NetworkResponse:
        """Echo test; reconnects and signs on again when the link had dropped."""
        if not self.link.connected:
            return await self.sign_on()
        return await self._network(NetworkCode.ECHO)

    async def _network(self, code: NetworkCode) -> NetworkResponse:
        req = NetworkRequest(code=code, **self._ids())
        at = self.clock()
        resp = await self.link.send(req, self.config.timeout_s_response)
        if not isinstance(resp, NetworkResponse):
            raise LinkError(f"the host answered a network request with {resp.mti}")
        self.journal.set_business_date(resp.business_date)
        self._observe(Exchanged(req, resp, at))
        return resp

    def _ids(self) -> dict[str, str]:
        return dict(stan=self.journal.next_stan(), terminal_id=self.config.terminal_id,
                    merchant_id=self.config.merchant_id,
                    transmitted_at=self.clock().astimezone(UTC).strftime("%m%d%H%M%S"))

    # -- financial transactions --------------------------------------------------------------

    async def transact(self, draft: Draft) -> Outcome:
        """Send ``draft`` and return what the result screen shows."""
        try:
            await self.link.connect()
        except LinkError as exc:
            return Outcome("failed", "HOST OFFLINE", str(exc))
        if not await self.forward_reversals():
            return Outcome("failed", "REVERSAL PENDING",
                           "An earlier transaction still waits for its reversal to reach "
                           "the host. Check the link and try again.")
        now = self.clock()
        stan = self.journal.next_stan()
        request = build_request(draft, stan, self.config, now)
        txn = self.journal.add(self._new_txn(draft, request, now))
        card_name = draft.card.name if draft.card else (
            draft.original.card_name if draft.original else None)
        answer: AnyResponse | None = None
        why = ""
        try:
            answer = await self.link.send(request, self.config.timeout_s_response)
        except LinkTimeout:
            pass
        except (LinkError, ProtocolError) as exc:
            # Not sent, or sent and the link dropped: either way the host may hold it.
            why = str(exc)
        response = answer if isinstance(answer, FinancialResponse) else None
        if answer is not None and response is None:
            why = f"unexpected answer {answer.mti}"
        if response is None:
            outcome, reversal = await self._timed_out(txn, why)
            self._observe(Exchanged(request, None, now, card_name, reversal=reversal))
            return outcome
        outcome = self._answered(txn, response)
        self._observe(Exchanged(request, response, now, card_name))
        return outcome

    def _new_txn(self, draft: Draft, request: FinancialRequest, now: datetime) -> Txn:
        card = draft.card
        return Txn(seq=0, kind=draft.kind, stan=request.stan, batch=self.journal.batch_number,
                   amount_minor=draft.amount.minor, currency=draft.amount.currency,
                   processing_code=request.processing_code,
                   transmitted_at=request.transmitted_at or "",
                   local_time=now.isoformat(timespec="seconds"),
                   masked_pan=card.masked if card else (
                       draft.original.masked_pan if draft.original else None),
                   card_name=card.name if card else None,
                   entry_mode=draft.entry_mode.value if draft.entry_mode else None,
                   original_rrn=draft.original.rrn if draft.original else None,
                   reason=draft.reason.value if draft.reason else None,
                   operator=draft.operator)

    def _answered(self, txn: Txn, response: FinancialResponse) -> Outcome:
        txn.response_code = response.response_code
        txn.rule = response.rule
        txn.rrn = response.rrn or txn.rrn
        txn.approval_code = response.approval_code
        txn.business_date = response.business_date
        txn.host_date, txn.host_time = response.host_date, response.host_time
        self.journal.set_business_date(response.business_date)
        text = response_text(response.response_code)
        if response.approved:
            txn.status = TxnStatus.APPROVED
            if txn.kind is TxnKind.VOID and txn.original_rrn:
                original = self.journal.by_rrn(txn.original_rrn)
                if original is not None:
                    original.voided = True
            detail = response.explanation() if response.rule else text
            if response.remaining is not None and txn.kind is TxnKind.REFUND:
                detail = f"Remaining refundable: {response.remaining.format()}"
            outcome_status, title = "approved", "APPROVED"
        else:
            txn.status = TxnStatus.DECLINED
            txn.explanation = response.explanation()
            detail = txn.explanation
            outcome_status, title = "declined", f"DECLINED {response.response_code} {text}"
        self._finish(txn)
        return Outcome(outcome_status, title, detail, response.response_code, txn.seq)

    def _finish(self, txn: Txn) -> None:
        path = receipt.save(txn, self.config.data_dir, self.config.merchant_id,
                            self.config.terminal_id, self.config.timezone)
        txn.receipt = path.name
        self.journal.update(txn)

    async def _timed_out(self, txn: Txn, why: str = "") -> tuple[Outcome, str | None]:
        """Reverse an unanswered request: the outcome and the DE39 that acknowledged it."""
        txn.status = TxnStatus.REVERSAL_PENDING
        self.journal.update(txn)
        acknowledged = await self._reverse(txn)
        self._finish(txn)
        lead = why or f"The host did not answer within {self.config.timeout_s_response:g} s."
        if acknowledged:
            detail = f"{lead} The transaction was reversed: no money has moved."
        else:
            detail = (f"{lead} A reversal could not be delivered yet; it is kept and will be "
                      "sent before the next transaction.")
        return Outcome("no_response", "NO RESPONSE", detail, None, txn.seq), acknowledged

    # -- reversals ---------------------------------------------------------------------------

    def _reversal(self, txn: Txn, repeat: bool) -> ReversalRequest:
        now = self.clock().astimezone(UTC).strftime("%m%d%H%M%S")
        return ReversalRequest(stan=txn.stan, terminal_id=self.config.terminal_id,
                               merchant_id=self.config.merchant_id, transmitted_at=now,
                               processing_code=txn.processing_code,
                               amount=Money(txn.amount_minor, txn.currency), repeat=repeat,
                               original=OriginalData("0200", txn.stan, txn.transmitted_at))

    async def _reverse(self, txn: Txn, attempts: int | None = None) -> str | None:
        """0400 (or 0401 once one was sent) until acknowledged or the attempts run out;
        the acknowledging DE39 (00, or 25 when the host never saw the original) or None."""
        tries = attempts if attempts is not None else 1 + self.config.reversal_repeats
        for _ in range(tries):
            request = self._reversal(txn, repeat=txn.reversal_attempts > 0)
            txn.reversal_attempts += 1
            self.journal.update(txn)
            try:
                await self.link.connect()
                response = await self.link.send(request, self.config.timeout_s_response)
            except (LinkError, ProtocolError):
                continue
            if isinstance(response, FinancialResponse) and response.response_code in (
                    "00", "25"):
                txn.status = TxnStatus.REVERSED
                txn.response_code = None
                self.journal.update(txn)
                return response.response_code
        return None

    async def forward_reversals(self) -> bool:
        """Send every stored reversal once more; True when none is left."""
        for txn in self.journal.pending_reversals():
            await self._reverse(txn, attempts=1)
        return not self.journal.pending_reversals()

    def _late_watch(self, item: Traffic) -> None:
        if not item.late or item.direction != "received" or not item.fields:
            return
        try:
            answer = parse_response(item.fields)
        except ProtocolError:
            return
        txn = self.journal.find(answer.stan)
        if txn is not None and isinstance(answer, FinancialResponse) and answer.mti == "0210":
            txn.late_responses += 1
            self.journal.update(txn)

    # -- settlement --------------------------------------------------------------------------

    async def settle(self) -> SettleOutcome:
        """Close the batch: 0500; on 95 upload each transaction (0320) and close with 960000."""
        self._first_0500 = None
        outcome = await self._settle()
        if self._first_0500 is not None:
            request, response, at = self._first_0500
            self._observe(Exchanged(request, response, at, settled=outcome.ok,
                                    uploaded=outcome.uploaded))
        return outcome

    async def _settle(self) -> SettleOutcome:
        batch = self.journal.batch_number
        try:
            await self.link.connect()
            if not await self.forward_reversals():
                return SettleOutcome(False, False, 0, batch, batch,
                                     "A reversal still waits for the host; settle later.")
            totals = self.journal.totals(self.config.currency)
            first = await self._reconcile(batch, totals, after_upload=False)
            if first.approved:
                new = self.journal.close_batch()
                return SettleOutcome(True, True, 0, batch, new, "Batch balanced and closed.")
            if first.response_code != "95":
                return SettleOutcome(False, False, 0, batch, batch,
                                     f"Settlement refused: {response_text(first.response_code)}")
            uploaded = 0
            for txn in self.journal.open_batch():
                if txn.effective and txn.rrn:
                    await self._upload(batch, txn)
                    uploaded += 1
            last = await self._reconcile(batch, totals, after_upload=True)
        except LinkError as exc:
            return SettleOutcome(False, False, 0, batch, batch, str(exc))
        if not last.approved:
            return SettleOutcome(False, False, uploaded, batch, batch,
                                 f"Closing after upload failed: "
                                 f"{response_text(last.response_code)}")
        new = self.journal.close_batch()
        return SettleOutcome(True, False, uploaded, batch, new,
                             f"Totals differed; {uploaded} transaction"
                             f"{'' if uploaded == 1 else 's'} uploaded, batch closed.")

    async def _reconcile(self, batch: str, totals: BatchTotals, after_upload: bool
                         ) -> ReconciliationResponse:
        req = ReconciliationRequest(batch_number=batch, totals=totals, after_upload=after_upload,
                                    **self._ids())
        at = self.clock()
        resp = await self.link.send(req, self.config.timeout_s_response)
        if not isinstance(resp, ReconciliationResponse):
            raise LinkError(f"the host answered the settlement with {resp.mti}")
        self.journal.set_business_date(resp.business_date)
        if not after_upload:
            self._first_0500 = (req, resp, at)
        return resp

    async def _upload(self, batch: str, txn: Txn) -> None:
        assert txn.rrn is not None
        local = datetime.fromisoformat(txn.local_time)
        req = BatchUploadRequest(
            stan=txn.stan, terminal_id=self.config.terminal_id,
            merchant_id=self.config.merchant_id,
            transmitted_at=self.clock().astimezone(UTC).strftime("%m%d%H%M%S"),
            batch_number=batch, processing_code=txn.processing_code,
            amount=Money(txn.amount_minor, txn.currency), rrn=txn.rrn,
            approval_code=txn.approval_code, local_time=local.strftime("%H%M%S"),
            local_date=local.strftime("%m%d"))
        await self.link.send(req, self.config.timeout_s_response)

