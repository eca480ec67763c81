"""Drives a :class:`~terminal.session.TerminalSession` over a link, in the order a real
terminal must respect (the TUI's driver; the scenario runner keeps the same order):

1. pending reversals are forwarded before anything new is sent (store and forward);
2. a request is journalled as ``PENDING`` *before* it is sent, so a crash leaves a trace;
3. no answer within the timeout means a reversal: 0400, then 0401 repeats up to the configured
   count; an unacknowledged reversal stays in the journal for the next attempt;
4. an answer arriving after its request timed out is counted as late on the journal line and
   never turns the transaction into an approval.

Security (see docs/keys-and-macs.md, "Terminal"): the engine gives the link a MAC guard built
on the session's keys; a sign-on whose working keys fail their check values is tried again, up to
:data:`~terminal.security.state.SIGN_ON_TRIES` times; an answer refusing for a security reason
(63, A0, 77) makes the terminal sign on again for fresh keys; an answer whose MAC fails is
treated as no answer, so the request is reversed.

The session decides and builds; the engine only waits. The clock is a parameter so tests can
pin the transmission times. :attr:`Engine.observers` hear about every completed exchange
(``--record`` writes them as a scenario).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from protocol.codes import NetworkCode, response_text
from protocol.errors import ProtocolError
from protocol.messages import (
    AnyResponse,
    FinancialResponse,
    NetworkResponse,
    ReconciliationRequest,
    ReconciliationResponse,
    parse_response,
)
from protocol.specs import get_profile
from terminal import receipt
from terminal.config import TerminalConfig
from terminal.flow import Draft, Outcome
from terminal.i18n import _, meaning, ngettext
from terminal.journal import Journal, Txn
from terminal.link import LinkError, LinkPort, LinkTimeout, Traffic
from terminal.security.guard import MacGuard
from terminal.security.keystore import KeyStore
from terminal.security.state import (
    SIGN_ON_AGAIN,
    SIGN_ON_TRIES,
    SecurityUnavailable,
    SignOnKeyError,
    TerminalSecurity,
)
from terminal.session import Clock, Exchanged, TerminalSession, build_request, local_now

__all__ = ["Clock", "Engine", "Exchanged", "SessionDriver", "SettleOutcome", "SignOnRefused",
           "build_request"]


class SignOnRefused(LinkError):
    """The host answered the sign-on, but its working keys could not be used (each try)."""


REVERSAL_WAITING = Outcome("failed", "REVERSAL PENDING",
                           "An earlier transaction still waits for its reversal to reach the "
                           "host. Check the link and try again.")
"""What a new transaction shows while a stored reversal still cannot be delivered."""


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


class SessionDriver:
    """What the TUI reads of any driver's terminal session, whatever its profile: the
    settings (changed from the Settings screen), the journal, and the receipt each finished
    transaction saves."""

    session: TerminalSession

    @property
    def config(self) -> TerminalConfig:
        """The terminal's settings (the session's)."""
        return self.session.config

    @config.setter
    def config(self, config: TerminalConfig) -> None:
        self.session.config = config

    @property
    def journal(self) -> Journal:
        """The session's journal."""
        return self.session.journal

    def _receipt(self, txn: Txn) -> str:
        return receipt.save(txn, self.config.data_dir, self.config.merchant_id,
                            self.config.terminal_id, self.config.timezone).name


class Engine(SessionDriver):
    """Sends transactions for one terminal and keeps its journal straight."""

    def __init__(self, config: TerminalConfig, journal: Journal, link: LinkPort,
                 clock: Clock = local_now, security: TerminalSecurity | None = None) -> None:
        if security is None:
            security = TerminalSecurity(get_profile(config.profile), KeyStore(config.data_dir))
        self.session = TerminalSession(config, journal, clock, receipts=self._receipt,
                                       security=security)
        self.link = link
        codec = getattr(link, "codec", None)
        if codec is not None and hasattr(link, "guard"):
            link.guard = MacGuard(security, codec)
        #: called with each completed exchange: request, answer or timeout, reversal.
        self.observers: list[Callable[[Exchanged], None]] = []
        # The settlement's first 0500 and its answer (what a recorded ``settle`` step expects).
        self._first_0500: tuple[ReconciliationRequest, ReconciliationResponse, datetime] | None \
            = None
        listeners = getattr(link, "listeners", None)
        if listeners is not None:
            listeners.append(self._late_watch)

    @property
    def clock(self) -> Clock:
        """The session's clock."""
        return self.session.clock

    def _observe(self, event: Exchanged) -> None:
        for observer in list(self.observers):
            observer(event)

    # -- network management ------------------------------------------------------------------

    async def sign_on(self) -> NetworkResponse:
        """Connect if needed and sign on; remembers the host's business date and keys.

        Working keys that fail their check values are asked for again, up to
        :data:`SIGN_ON_TRIES` sign-ons; then :class:`SignOnRefused` says why.
        """
        await self.link.connect()
        why = ""
        for _attempt in range(SIGN_ON_TRIES):
            try:
                return await self._network(NetworkCode.SIGN_ON)
            except SignOnKeyError as exc:
                why = str(exc)
        raise SignOnRefused(f"sign-on failed {SIGN_ON_TRIES} times: {why}")

    async def echo(self) -> NetworkResponse:
        """Echo test; reconnects and signs on again when the link had dropped."""
        if not self.link.connected:
            self.session.link_lost()
            return await self.sign_on()
        return await self._network(NetworkCode.ECHO)

    async def _network(self, code: NetworkCode) -> NetworkResponse:
        req = self.session.network_request(code)
        at = self.clock()
        resp = await self.link.send(req, self.config.timeout_s_response)
        if not isinstance(resp, NetworkResponse):
            raise LinkError(f"the host answered a network request with {resp.mti}")
        try:
            self.session.network_answered(req, resp)
        finally:
            self._observe(Exchanged(req, resp, at))
        return resp

    # -- financial transactions --------------------------------------------------------------

    async def transact(self, draft: Draft) -> Outcome:
        """Send ``draft`` and return what the result screen shows."""
        try:
            await self.link.connect()
        except LinkError as exc:
            return Outcome("failed", "HOST OFFLINE", str(exc))
        if not await self.forward_reversals():
            return REVERSAL_WAITING
        try:
            pending = self.session.begin(draft)
        except SecurityUnavailable as exc:
            return Outcome("failed", "PIN NOT SENT", f"{exc}. Nothing was sent.")
        request, txn = pending.request, pending.txn
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
            self.session.unanswered(txn)
            acknowledged = await self._reverse(txn)
            outcome = self.session.no_answer_outcome(txn, acknowledged, why)
            self._observe(Exchanged(request, None, pending.at, pending.card_name,
                                    reversal=acknowledged))
            return outcome
        outcome = self.session.answered(txn, response)
        self._observe(Exchanged(request, response, pending.at, pending.card_name))
        if response.response_code in SIGN_ON_AGAIN and self.session.security is not None:
            outcome = replace(outcome, detail=f"{outcome.detail}. {await self._sign_on_again()}")
        return outcome

    async def _sign_on_again(self) -> str:
        """Sign on for fresh keys after a security refusal; what the screen should add."""
        try:
            resp = await self.sign_on()
        except LinkError as exc:
            return f"Signing on again failed: {exc}"
        if not resp.approved:
            return f"Signing on again was refused ({resp.response_code})."
        return "The terminal signed on again for fresh keys: try the transaction again."

    # -- reversals ---------------------------------------------------------------------------

    async def _reverse(self, txn: Txn, attempts: int | None = None) -> str | None:
        """0400 (or 0401 once one was sent) until acknowledged or the attempts run out;
        the acknowledging DE39 (00, or 25 when the host never saw the original) or None."""
        tries = attempts if attempts is not None else self.session.reversal_tries
        for _attempt in range(tries):
            request = self.session.reversal_for(txn)
            try:
                await self.link.connect()
                response = await self.link.send(request, self.config.timeout_s_response)
            except (LinkError, ProtocolError):
                continue
            acknowledged = self.session.reversal_answered(txn, response)
            if acknowledged:
                return acknowledged
        return None

    async def forward_reversals(self) -> bool:
        """Send every stored reversal once more; True when none is left."""
        for txn in self.session.pending_reversals():
            await self._reverse(txn, attempts=1)
        return not self.session.pending_reversals()

    def _late_watch(self, item: Traffic) -> None:
        if not item.late or item.direction != "received" or not item.fields:
            return
        try:
            answer = parse_response(item.fields)
        except ProtocolError:
            return
        self.session.late_answer(answer)

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
                                     _("A reversal still waits for the host; settle later."))
            totals = self.session.totals()
            first = await self._reconcile(self.session.reconciliation(totals))
            if first.approved:
                new = self.session.close_batch()
                return SettleOutcome(True, True, 0, batch, new, _("Batch balanced and closed."))
            if first.response_code != "95":
                return SettleOutcome(False, False, 0, batch, batch,
                                     _("Settlement refused: {meaning}").format(
                                         meaning=meaning(response_text(first.response_code))))
            uploaded = 0
            for upload in self.session.uploads():
                await self.link.send(upload, self.config.timeout_s_response)
                uploaded += 1
            last = await self._reconcile(self.session.reconciliation(totals, after_upload=True))
        except LinkError as exc:
            return SettleOutcome(False, False, 0, batch, batch, str(exc))
        if not last.approved:
            return SettleOutcome(False, False, uploaded, batch, batch,
                                 _("Closing after upload failed: {meaning}").format(
                                     meaning=meaning(response_text(last.response_code))))
        new = self.session.close_batch()
        return SettleOutcome(True, False, uploaded, batch, new,
                             ngettext("Totals differed; {count} transaction uploaded, batch "
                                      "closed.", "Totals differed; {count} transactions "
                                      "uploaded, batch closed.", uploaded).format(count=uploaded))

    async def _reconcile(self, req: ReconciliationRequest) -> ReconciliationResponse:
        at = self.clock()
        resp = await self.link.send(req, self.config.timeout_s_response)
        if not isinstance(resp, ReconciliationResponse):
            raise LinkError(f"the host answered the settlement with {resp.mti}")
        self.journal.set_business_date(resp.business_date)
        if not req.after_upload:
            self._first_0500 = (req, resp, at)
        return resp
