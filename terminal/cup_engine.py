"""Drives a :class:`~terminal.cup_session.CupSession` over a link that carries field dicts
(:meth:`terminal.link.Link.send_fields` with a CUP codec): sign-on before the first
transaction and again after a ``77`` or ``A0``, reversal of an unanswered 0200, repeats of an
unanswered 0220 refund advice, and the CUP settlement with its batch upload.

An 0220 without a usable answer is sent again at once, up to the configured repeats
(``reversal_repeats``: CUP terminals have one resend count), then before each later transaction
and before the settlement, which waits until the host has answered it. A repeat is the same
0220 (rebuilt from the journal after a restart); the host answers it as it answered the first.
A ``77`` or ``A0`` to a repeat is no answer to the advice -- the host checked the sign-on or the
MAC before it looked for the advice -- so the terminal signs on again and the advice waits.

With keys (a TMK in the session's security) the engine gives the link the CUP MAC guard
(:func:`~terminal.cup_session.cup_mac_guard`), tries a sign-on whose working keys fail their
check values again up to :data:`~terminal.security.state.SIGN_ON_TRIES` times, and reverses a
0200 whose answer fails its MAC with DE39 ``A0``.

:attr:`CupEngine.observers` hear every completed sign-on, financial exchange and settlement as
a typed :class:`~terminal.session.Exchanged` (:mod:`terminal.cup_exchanged`): ``--record``
writes them as a ``profile: cup`` scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from protocol.codes import response_text
from protocol.cup_private import CupTotals, SettlementResult
from protocol.errors import ProtocolError
from terminal.cup_exchanged import financial_event, management_event
from terminal.cup_session import (
    MAC_FAILED_REASON,
    NO_ANSWER_REASON,
    SIGN_ON_AGAIN,
    CupSession,
    Fields,
    cup_mac_guard,
)
from terminal.engine import REVERSAL_WAITING, SignOnRefused
from terminal.flow import Draft, Outcome
from terminal.i18n import _, meaning
from terminal.journal import Txn
from terminal.link import LinkError, LinkTimeout, MacMismatch
from terminal.security.state import SIGN_ON_TRIES, SecurityUnavailable, SignOnKeyError
from terminal.session import Exchanged, Pending

ADVICE_MTI = "0220"
"""The CUP refund: an advice, sent again (not reversed) when it gets no answer."""


class FieldLink(Protocol):
    """What the CUP driver needs of a link: connect, and send a field dict for its answer."""

    async def connect(self) -> None:
        """Open the connection if it is not open."""

    async def send_fields(self, fields: Fields, timeout_s: float) -> Fields:
        """Send ``fields``; return the answer's fields or raise a :class:`LinkError`."""
        ...


@dataclass(frozen=True)
class CupSettleOutcome:
    """What a CUP settlement did: the host's result flag, the upload, the batches, and why it
    did not close the batch (``why``, empty when it did)."""

    ok: bool
    result: SettlementResult | None
    uploaded: int
    closed_batch: str
    new_batch: str
    why: str = ""


class CupEngine:
    """Sends one terminal's CUP transactions and keeps its journal straight."""

    def __init__(self, session: CupSession, link: FieldLink) -> None:
        self.session = session
        self.link = link
        #: called with each completed exchange (``--record`` writes them as a scenario).
        self.observers: list[Callable[[Exchanged], None]] = []
        # The settlement's 0500, its answer and when it was sent (what a recording keeps).
        self._settlement: tuple[Fields, Fields, datetime] | None = None
        codec = getattr(link, "codec", None)
        if session.security is not None and codec is not None and hasattr(link, "guard"):
            link.guard = cup_mac_guard(session.security, codec)

    @property
    def _timeout(self) -> float:
        return self.session.session.config.timeout_s_response

    def _observe(self, event: Exchanged | None) -> None:
        if event is None:
            return
        for observer in list(self.observers):
            observer(event)

    def _now(self) -> datetime:
        return self.session.session.clock()

    async def sign_on(self) -> bool:
        """Connect if needed and sign on; True when the host accepted (its batch is now ours,
        and so are the working keys of its DE62).

        :raises SignOnRefused: the working keys failed their checks on each of
            :data:`SIGN_ON_TRIES` sign-ons (the message names the key and its check values).
        """
        await self.link.connect()
        why = ""
        for _attempt in range(SIGN_ON_TRIES):
            request, at = self.session.sign_on_request(), self._now()
            answer = await self.link.send_fields(request, self._timeout)
            self._observe(management_event(request, answer, at, self.session.profile))
            try:
                return self.session.sign_on_answered(answer)
            except SignOnKeyError as exc:
                why = str(exc)
        raise SignOnRefused(f"sign-on failed {SIGN_ON_TRIES} times: {why}")

    async def transact(self, draft: Draft) -> Outcome:
        """Sign on when needed, send ``draft`` and return what the result screen shows; a
        ``77``/``A0`` answer is followed by a new sign-on."""
        not_ready = await self._ready()
        if not_ready is not None:
            return not_ready
        try:
            pending, request = self.session.begin(draft)
        except SecurityUnavailable as exc:
            return Outcome("failed", "PIN NOT SENT", f"{exc}. Nothing was sent.")
        try:
            answer = await self.link.send_fields(request, self._timeout)
        except MacMismatch as exc:
            return await self._unanswered(pending, request, str(exc), MAC_FAILED_REASON)
        except (LinkTimeout, LinkError, ProtocolError) as exc:
            return await self._unanswered(pending, request, str(exc))
        outcome = self.session.answered(pending.txn, answer)
        self._observe(financial_event(pending.request, request, answer, pending.at,
                                      pending.card_name))
        if not self.session.signed_on:
            outcome = replace(outcome, detail=f"{outcome.detail}. {await self._sign_on_again()}")
        return outcome

    async def _ready(self) -> Outcome | None:
        """Before a transaction: signed on, stored reversals delivered, unanswered advices
        sent again (signing on again when a repeat was answered 77 or A0); None when the
        transaction may go, else what the result screen shows instead."""
        try:
            await self.link.connect()
            if not self.session.signed_on and not await self.sign_on():
                return Outcome("failed", "NOT COMPLETED", "The host refused the sign-on.")
            if not await self.forward_reversals():
                return REVERSAL_WAITING
            await self.repeat_advices()
            if not self.session.signed_on and not await self.sign_on():
                return Outcome("failed", "NOT COMPLETED", "The host refused the sign-on.")
        except SignOnRefused as exc:
            return Outcome("failed", "NOT COMPLETED", f"{exc}. Nothing was sent.")
        except LinkError as exc:
            return Outcome("failed", "HOST OFFLINE", str(exc))
        return None

    async def _sign_on_again(self) -> str:
        """Sign on after a 77/A0; what the result screen adds (the next transaction tries
        again when this fails)."""
        try:
            if await self.sign_on():
                return _("The terminal signed on again (batch {batch}): try the transaction "
                         "again.").format(batch=self.session.batch)
        except (LinkError, ProtocolError) as exc:
            return _("Signing on again failed: {why}").format(why=exc)
        return _("Signing on again was refused ({code}).").format(
            code=self.session.sign_on_code or "--")

    async def _unanswered(self, pending: Pending, request: Fields, why: str,
                          reason: str = NO_ANSWER_REASON) -> Outcome:
        """No usable answer: reverse an 0200 (0400, DE39 ``reason``: 98 no answer, A0 its MAC
        failed) up to the configured tries; send an 0220 advice again."""
        base, txn = self.session.session, pending.txn
        if request["t"] == ADVICE_MTI:
            return await self._advice_unanswered(pending, request, why)
        self.session.reversal_waiting(txn, reason)
        acknowledged = None
        if request["t"] == "0200":
            reversal = self.session.reversal_fields(request, reason)
            acknowledged = await self._reverse(txn, reversal, base.reversal_tries)
        self._observe(financial_event(pending.request, request, None, pending.at,
                                      pending.card_name, acknowledged))
        return base.no_answer_outcome(txn, acknowledged, why)

    async def _advice_unanswered(self, pending: Pending, request: Fields, why: str) -> Outcome:
        """An 0220 without a usable answer: the line waits for one, and the same 0220 goes
        again up to the configured repeats."""
        txn = pending.txn
        self.session.advice_waiting(txn)
        answer = await self._repeat(request, self.session.session.config.reversal_repeats)
        self._observe(financial_event(pending.request, request, answer, pending.at,
                                      pending.card_name))
        if answer is None:
            return self.session.advice_unanswered(txn, why)
        return self.session.answered(txn, answer)

    async def _repeat(self, advice: Fields, tries: int) -> Fields | None:
        """Send the 0220 ``advice`` again, up to ``tries`` times, until the host answers it;
        the answer, or None. After a 77 or A0 (no answer to the advice) the terminal is not
        signed on, and tries no more."""
        for _attempt in range(tries):
            answer = await self._send_again(advice)
            if answer is None:
                continue
            if answer.get("39") not in SIGN_ON_AGAIN:
                return answer
            self.session.signed_on = False
            break
        return None

    async def repeat_advices(self) -> bool:
        """Send each 0220 the host has not answered once more (rebuilt from its journal line);
        True when none waits any longer."""
        waiting = False
        for txn in self.session.pending_advices():
            advice = self.session.rebuilt_request(txn)
            answer = await self._repeat(advice, 1) if advice is not None else None
            if answer is None:
                waiting = True
            else:
                self.session.answered(txn, answer)
        return not waiting

    async def _reverse(self, txn: Txn, reversal: Fields, tries: int) -> str | None:
        """Send ``reversal`` until the host acknowledges it (00, or 25: it never saw the
        original) or the tries run out; the acknowledging DE39, or None."""
        for _attempt in range(tries):
            answer = await self._send_again(reversal)
            acknowledged = self.session.reversal_answered(txn, answer)
            if acknowledged:
                return acknowledged
        return None

    async def _send_again(self, fields: Fields) -> Fields | None:
        """Send a reversal or a repeat (connecting again if the link dropped); its answer, or
        None when the link failed or no usable answer came."""
        try:
            await self.link.connect()
            return await self.link.send_fields(fields, self._timeout)
        except (LinkError, ProtocolError):
            return None

    async def forward_reversals(self) -> bool:
        """Send each stored 0400 once more; True when no 0200 waits for its reversal."""
        waiting = False
        for txn in self.session.session.pending_reversals():
            reversal = self.session.stored_reversal(txn)
            if reversal is not None and not await self._reverse(txn, reversal, 1):
                waiting = True
        return not waiting

    async def settle(self) -> CupSettleOutcome:
        """0500 with the CUP totals; on result flag 2 the batch upload and its closing 0320;
        the batch closes when the host answered 00 to each. Stored reversals go first; a link
        failure leaves the batch open."""
        self._settlement = None
        outcome = await self._settle()
        if self._settlement is not None:
            request, answer, at = self._settlement
            self._observe(management_event(request, answer, at, self.session.profile,
                                           settled=outcome.ok, uploaded=outcome.uploaded))
        return outcome

    async def _settle(self) -> CupSettleOutcome:
        batch = self.session.batch

        def refused(why: str, result: SettlementResult | None = None,
                    uploaded: int = 0) -> CupSettleOutcome:
            return CupSettleOutcome(False, result, uploaded, batch, batch, why)

        try:
            await self.link.connect()
            if not await self.forward_reversals():
                return refused(_("A reversal still waits for the host; settle later."))
            if not await self.repeat_advices():
                return refused(_("A refund advice still waits for the host's answer; settle "
                                 "later."))
            request, at = self.session.settlement_request(), self._now()
            answer = await self.link.send_fields(request, self._timeout)
            self._settlement = request, answer, at
            if answer.get("39") != "00" or "48" not in answer:
                return refused(_("Settlement refused: {meaning}").format(
                    meaning=meaning(response_text(answer.get("39", "")))))
            result = CupTotals.parse(answer["48"]).result
            uploaded = 0
            if result is SettlementResult.NOT_BALANCED:
                for upload in self.session.upload_requests():
                    reply = await self.link.send_fields(upload, self._timeout)
                    if reply.get("39") != "00":
                        return refused(_("The host refused the batch upload: {meaning}").format(
                            meaning=meaning(response_text(reply.get("39", "")))),
                            result, uploaded)
                    if upload["60"][8:] != "207":
                        uploaded += int(upload["48"][:2])
        except (LinkError, ProtocolError) as exc:
            return refused(str(exc))
        new = self.session.session.close_batch()
        return CupSettleOutcome(True, result, uploaded, batch, new)
