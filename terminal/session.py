"""One terminal session, headless and sans-IO: what a terminal knows and decides, no sockets.

A :class:`TerminalSession` owns the terminal's state -- the journal (STAN and batch counters,
every transaction and its status), the host's business date, the sign-on and the slot for
working keys -- and builds every request the terminal sends from it. It never waits and never
touches the network: a driver sends what it builds through a link and hands the answer back.

The drivers (see docs/architecture.md, "Terminal session"):

* :class:`terminal.engine.Engine` for the TUI, over the Twisted :class:`terminal.link.Link`;
* the scenario runner, over its own wire client, judging each answer against the scenario;
* the load generator, which pre-encodes the session's requests and patches STANs;
* the host's engine tests, which hand the session's requests straight to the service.

The order a driver must keep (the engine is the reference):

1. :meth:`TerminalSession.pending_reversals` are forwarded before anything new (store and
   forward); :meth:`TerminalSession.reversal_for` builds each attempt, 0400 first, 0401 after;
2. :meth:`TerminalSession.begin` journals the request ``PENDING`` before it is sent;
3. :meth:`TerminalSession.answered` or :meth:`TerminalSession.unanswered` records what came of
   it; an unanswered request is reversed up to :attr:`TerminalSession.reversal_tries` times and
   :meth:`TerminalSession.reversal_answered` says whether the host acknowledged;
4. :meth:`TerminalSession.late_answer` counts an answer that came after its request timed out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from protocol.codes import NetworkCode, RefundReason, response_text
from protocol.messages import (
    AnyResponse,
    AuthorizationRequest,
    BatchTotals,
    BatchUploadRequest,
    CompletionAdvice,
    FinancialRequest,
    FinancialResponse,
    Message,
    NetworkRequest,
    NetworkResponse,
    OriginalData,
    ReconciliationRequest,
    RefundRequest,
    ReversalRequest,
    SaleRequest,
    VoidRequest,
)
from protocol.money import Money
from protocol.security import WorkingKeys
from terminal.config import TerminalConfig
from terminal.flow import Draft, Outcome
from terminal.i18n import _
from terminal.journal import Journal, Txn, TxnKind, TxnStatus
from terminal.security.state import SecurityUnavailable, TerminalSecurity

Clock = Callable[[], datetime]
#: Called when a transaction reached its final state; returns the receipt's file name, if any.
ReceiptSink = Callable[[Txn], str | None]
#: The DE39 values that acknowledge a reversal: 00, or 25 when the host never saw the original.
REVERSAL_ACKNOWLEDGED = ("00", "25")


def local_now() -> datetime:
    """The terminal's wall clock, with its UTC offset."""
    return datetime.now().astimezone()


@dataclass(frozen=True)
class Exchanged:
    """One exchange the terminal completed (what the ``--record`` observer hears).

    :ivar request: the typed request (sale, refund, void, 0500 or 0800).
    :ivar response: the host's typed answer; None when it never answered.
    :ivar at: the terminal's local time when the request was sent.
    :ivar card_name: the deck name of the presented card (for a void: of the original's card).
    :ivar reversal: for an unanswered financial request, the DE39 that acknowledged the
        terminal's reversal (None: not acknowledged yet).
    :ivar settled: for a settlement, whether the batch was closed in the end.
    :ivar uploaded: for a settlement, how many transactions were uploaded after a 95.
    """

    request: Message
    response: AnyResponse | None
    at: datetime
    card_name: str | None = None
    reversal: str | None = None
    settled: bool = False
    uploaded: int = 0


@dataclass
class SignOn:
    """The session's standing with the host.

    :ivar signed_on: an 0800 sign-on was answered 00 on the current connection's watch.
    :ivar keys: working keys from the sign-on (checked against their KCVs), None when the host
        sent none; the MAC guard and the PIN block read them through the session's security.
    """

    signed_on: bool = False
    keys: WorkingKeys | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Pending:
    """A financial request journalled and ready to send.

    :ivar txn: its journal line (status ``PENDING`` until answered or reversed).
    :ivar at: the terminal's local time stamped into it.
    """

    txn: Txn
    request: FinancialRequest
    at: datetime
    card_name: str | None = None


@dataclass
class TerminalSession:
    """The state and decisions of one terminal (see the module docstring).

    :ivar receipts: called once a transaction is final; the TUI saves a receipt file there.
    """

    config: TerminalConfig
    journal: Journal
    clock: Clock = local_now
    receipts: ReceiptSink | None = None
    sign_on_state: SignOn = field(default_factory=SignOn)
    #: the terminal's keys (TMK, working keys, DUKPT); None: a terminal without security.
    security: TerminalSecurity | None = None

    # -- counters and identity ---------------------------------------------------------------

    def next_stan(self) -> str:
        """The next trace number (persisted with the journal)."""
        return self.journal.next_stan()

    def ids(self, stan: str | None = None, at: datetime | None = None) -> dict[str, str]:
        """DE11/DE41/DE42/DE7 for a new request: the next STAN unless one is given."""
        now = at or self.clock()
        return dict(stan=stan or self.next_stan(), terminal_id=self.config.terminal_id,
                    merchant_id=self.config.merchant_id,
                    transmitted_at=now.astimezone(UTC).strftime("%m%d%H%M%S"))

    @property
    def reversal_tries(self) -> int:
        """How many reversal attempts follow an unanswered request: one 0400 and the repeats."""
        return 1 + self.config.reversal_repeats

    # -- network management ------------------------------------------------------------------

    def network_request(self, code: NetworkCode) -> NetworkRequest:
        """An 0800 (sign-on, sign-off, echo)."""
        return NetworkRequest(code=code, **self.ids())

    def network_answered(self, request: NetworkRequest, response: NetworkResponse) -> None:
        """Remember the host's business date and, for a sign-on, that it was accepted and the
        working keys it carried.

        :raises SignOnKeyError: the sign-on's working keys failed their check (the session is
            then not signed on and holds no working keys).
        """
        self.journal.set_business_date(response.business_date)
        if request.code is NetworkCode.SIGN_ON:
            self.sign_on_state.signed_on = False
            if response.approved and self.security is not None:
                self.sign_on_state.keys = None
                self.sign_on_state.keys = self.security.accept_sign_on(response.wrapped_keys)
            self.sign_on_state.signed_on = response.approved
        elif request.code is NetworkCode.SIGN_OFF and response.approved:
            self.sign_on_state = SignOn()
            if self.security is not None:
                self.security.forget_keys()

    def link_lost(self) -> None:
        """The connection dropped: a new one must sign on again."""
        self.sign_on_state.signed_on = False

    # -- financial transactions --------------------------------------------------------------

    def build_request(self, draft: Draft, stan: str, now: datetime,
                      evidence: str | None = None) -> FinancialRequest:
        """The protocol message for ``draft`` (pure: no counter moves)."""
        return build_request(draft, stan, self.config, now, evidence)

    def begin(self, draft: Draft, stan: str | None = None, evidence: str | None = None
              ) -> Pending:
        """Build the request for ``draft`` and journal it ``PENDING`` (before it is sent).

        A draft with a PIN gets its PIN block (DE52), security control (DE53) and, under
        DUKPT, the KSN (DE62); the clear PIN goes no further than this call.

        :raises SecurityUnavailable: the draft has a PIN and the terminal has no PIN key (nothing
            is journalled then).
        """
        now = self.clock()
        request = self.build_request(draft, stan or self.next_stan(), now, evidence)
        if draft.pin is not None:
            request = self._with_pin(request, draft.pin)
        txn = self.journal.add(_new_txn(draft, request, now, self.journal.batch_number))
        card_name = draft.card.name if draft.card else (
            draft.original.card_name if draft.original else None)
        return Pending(txn, request, now, card_name)

    def _with_pin(self, request: FinancialRequest, pin: str) -> FinancialRequest:
        if self.security is None or request.card is None:
            raise SecurityUnavailable("this terminal takes no PIN: it has no keys")
        block, control, ksn = self.security.pin_data(pin, request.card.account.digits)
        card = replace(request.card, pin_block=block, security_control=control)
        return replace(request, card=card, ksn=ksn)

    def answered(self, txn: Txn, response: FinancialResponse) -> Outcome:
        """Record the host's answer and return what the result screen shows."""
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
                detail = _("Remaining refundable: {amount}").format(
                    amount=response.remaining.format())
            outcome_status, title = "approved", "APPROVED"
        else:
            txn.status = TxnStatus.DECLINED
            txn.explanation = response.explanation()
            detail = txn.explanation
            outcome_status, title = "declined", f"DECLINED {response.response_code} {text}"
        self.finish(txn)
        return Outcome(outcome_status, title, detail, response.response_code, txn.seq)

    def unanswered(self, txn: Txn) -> None:
        """No answer (timeout, dropped link, wrong answer): the host may hold it, so reverse."""
        txn.status = TxnStatus.REVERSAL_PENDING
        self.journal.update(txn)

    def no_answer_outcome(self, txn: Txn, acknowledged: str | None, why: str = "") -> Outcome:
        """The result screen of an unanswered request after its reversal attempts."""
        self.finish(txn)
        lead = self.no_answer_lead(why)
        if acknowledged:
            detail = _("{why} The transaction was reversed: no money has moved.").format(why=lead)
        else:
            detail = _("{why} A reversal could not be delivered yet; it is kept and will be "
                       "sent before the next transaction.").format(why=lead)
        return Outcome("no_response", "NO RESPONSE", detail, None, txn.seq)

    def no_answer_lead(self, why: str = "") -> str:
        """The first sentence of a no-answer result: ``why``, else the timeout."""
        if why:
            return why if why.endswith((".", "。")) else f"{why}."  # a link error's words
        return _("The host did not answer within {seconds} s.").format(
            seconds=f"{self.config.timeout_s_response:g}")

    def finish(self, txn: Txn) -> None:
        """A transaction reached its final state here: receipt (if any), then persist."""
        if self.receipts is not None:
            txn.receipt = self.receipts(txn)
        self.journal.update(txn)

    # -- reversals ---------------------------------------------------------------------------

    def pending_reversals(self) -> list[Txn]:
        """Unanswered requests whose reversal the host has not acknowledged (store and forward)."""
        return self.journal.pending_reversals()

    def reversal_request(self, txn: Txn, repeat: bool) -> ReversalRequest:
        """The 0400 (0401) for ``txn``: its STAN, processing code, amount; DE90 (pure)."""
        return ReversalRequest(stan=txn.stan, terminal_id=self.config.terminal_id,
                               merchant_id=self.config.merchant_id,
                               transmitted_at=self.clock().astimezone(UTC).strftime("%m%d%H%M%S"),
                               processing_code=txn.processing_code,
                               amount=Money(txn.amount_minor, txn.currency), repeat=repeat,
                               original=OriginalData(_original_mti(txn), txn.stan,
                                                     txn.transmitted_at))

    def reversal_for(self, txn: Txn) -> ReversalRequest:
        """The next reversal attempt for ``txn`` (0401 once one was sent); counts the attempt."""
        request = self.reversal_request(txn, repeat=txn.reversal_attempts > 0)
        txn.reversal_attempts += 1
        self.journal.update(txn)
        return request

    def reversal_answered(self, txn: Txn, response: AnyResponse | None) -> str | None:
        """The acknowledging DE39 when ``response`` acknowledges the reversal of ``txn``
        (the line is then ``REVERSED``), else None (the reversal stays stored)."""
        if isinstance(response, FinancialResponse) and \
                response.response_code in REVERSAL_ACKNOWLEDGED:
            txn.status = TxnStatus.REVERSED
            txn.response_code = None
            self.journal.update(txn)
            return response.response_code
        return None

    def late_answer(self, answer: AnyResponse) -> None:
        """An 0210 that came after its request timed out: counted on the line, never approved."""
        if not isinstance(answer, FinancialResponse) or answer.mti != "0210":
            return
        txn = self.journal.find(answer.stan)
        if txn is not None:
            txn.late_responses += 1
            self.journal.update(txn)

    # -- settlement --------------------------------------------------------------------------

    def totals(self) -> BatchTotals:
        """The open batch's totals in the terminal's currency."""
        return self.journal.totals(self.config.currency)

    def reconciliation(self, totals: BatchTotals | None = None, after_upload: bool = False
                       ) -> ReconciliationRequest:
        """The 0500 closing the open batch (920000; 960000 after an upload)."""
        return ReconciliationRequest(batch_number=self.journal.batch_number,
                                     totals=totals or self.totals(), after_upload=after_upload,
                                     **self.ids())

    def uploads(self, currency: str | None = None) -> list[BatchUploadRequest]:
        """One 0320 per effective transaction of the open batch (after a 95), in ``currency``
        when given."""
        batch = self.journal.batch_number
        out = []
        for txn in self.journal.open_batch():
            if not (txn.effective and txn.rrn) or currency not in (None, txn.currency):
                continue
            local = datetime.fromisoformat(txn.local_time)
            out.append(BatchUploadRequest(
                stan=txn.stan, terminal_id=self.config.terminal_id,
                merchant_id=self.config.merchant_id,
                transmitted_at=self.clock().astimezone(UTC).strftime("%m%d%H%M%S"),
                batch_number=batch, processing_code=txn.processing_code,
                amount=Money(txn.amount_minor, txn.currency), rrn=txn.rrn,
                approval_code=txn.approval_code, local_time=local.strftime("%H%M%S"),
                local_date=local.strftime("%m%d")))
        return out

    def close_batch(self) -> str:
        """The host accepted the batch: open the next one and return its number."""
        return self.journal.close_batch()


def build_request(draft: Draft, stan: str, config: TerminalConfig, now: datetime,
                  evidence: str | None = None) -> FinancialRequest:
    """The protocol message for ``draft`` (pure)."""
    card = draft.card.present(draft.entry_mode) if draft.card and draft.entry_mode else None
    utc = now.astimezone(UTC)
    common: dict[str, Any] = dict(
        stan=stan, terminal_id=config.terminal_id, merchant_id=config.merchant_id,
        transmitted_at=utc.strftime("%m%d%H%M%S"), local_time=now.strftime("%H%M%S"),
        local_date=now.strftime("%m%d"))
    if draft.kind is TxnKind.SALE:
        return SaleRequest(card=card, amount=draft.amount, **common)
    if draft.kind is TxnKind.AUTHORIZE:
        return AuthorizationRequest(card=card, amount=draft.amount, **common)
    rrn = draft.original.rrn if draft.original else None
    if draft.kind is TxnKind.COMPLETION:
        assert draft.original is not None and draft.original.approval_code, \
            "a completion quotes its hold's approval code"
        return CompletionAdvice(card=card, amount=draft.amount, original_rrn=rrn,
                                approval_code=draft.original.approval_code, **common)
    if draft.kind is TxnKind.REFUND:
        return RefundRequest(card=card, amount=draft.amount, original_rrn=rrn,
                             reason=draft.reason or RefundReason.OTHER, evidence=evidence,
                             operator=draft.operator, **common)
    assert draft.original is not None, "a void needs its original"
    return VoidRequest(card=card, amount=draft.amount, original_rrn=draft.original.rrn,
                       voids_refund=draft.original.kind is TxnKind.REFUND,
                       operator=draft.operator, **common)


def _new_txn(draft: Draft, request: FinancialRequest, now: datetime, batch: str) -> Txn:
    card = draft.card
    return Txn(seq=0, kind=draft.kind, stan=request.stan, batch=batch,
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


_ORIGINAL_MTI = {TxnKind.AUTHORIZE: AuthorizationRequest.MTI,
                 TxnKind.COMPLETION: CompletionAdvice.MTI}


def _original_mti(txn: Txn) -> str:
    return _ORIGINAL_MTI.get(txn.kind, SaleRequest.MTI)
