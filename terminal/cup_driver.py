"""The TUI's driver on the China UnionPay profile: :class:`~terminal.cup_engine.CupEngine`
behind the calls the app makes of :class:`~terminal.engine.Engine` (sign on, echo, transact,
settle), so the screens need not know which profile the terminal speaks.

A CUP terminal has no echo test of its own: the app's echo timer only signs on again when the
connection dropped. :attr:`CupDriver.observers` are the engine's: ``--record`` hears its
sign-ons, transactions and settlements and writes a ``profile: cup`` scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol.cup_private import SettlementResult
from protocol.specs import WireProfile, get_profile
from terminal.cards import Card
from terminal.config import TerminalConfig
from terminal.cup_engine import CupEngine
from terminal.cup_session import CupSession
from terminal.engine import SessionDriver, SettleOutcome
from terminal.flow import Draft, Outcome
from terminal.i18n import _, ngettext
from terminal.journal import Journal
from terminal.link import Link
from terminal.security.keystore import KeyStore, KeyStoreError
from terminal.security.state import TerminalSecurity
from terminal.session import Clock, TerminalSession


@dataclass(frozen=True)
class SignOnAnswer:
    """What the status line needs of an 0810: accepted or not, and its DE39."""

    approved: bool
    response_code: str


class CupDriver(SessionDriver):
    """Drives a CUP session for the TUI (see the module docstring)."""

    def __init__(self, config: TerminalConfig, journal: Journal, link: Link, clock: Clock,
                 deck: list[Card]) -> None:
        profile = get_profile(config.profile)
        #: the wrapped terminal session (journal, counters, the keys of the data directory)
        self.session = TerminalSession(config, journal, clock, receipts=self._receipt,
                                       security=cup_security(config, profile))
        self.cup = CupSession(self.session, deck=deck, profile=profile)
        self.core = CupEngine(self.cup, link)
        self.link = link
        self.observers: list[Callable[[Any], None]] = self.core.observers

    async def sign_on(self) -> SignOnAnswer:
        """Connect and sign on (0800, 60.3 ``004``); the host's batch becomes the open batch,
        and the working keys of DE62 the terminal's.

        :raises SignOnRefused: the working keys failed their check values at every try.
        :raises LinkError: the host could not be reached or did not answer.
        """
        approved = await self.core.sign_on()
        return SignOnAnswer(approved, self.cup.sign_on_code or "")

    async def echo(self) -> SignOnAnswer:
        """Sign on again when the connection dropped; otherwise the standing sign-on."""
        if not self.link.connected:
            return await self.sign_on()
        return SignOnAnswer(self.cup.signed_on, self.cup.sign_on_code or "")

    async def transact(self, draft: Draft) -> Outcome:
        """Send ``draft`` (signing on first when needed)."""
        return await self.core.transact(draft)

    async def settle(self) -> SettleOutcome:
        """The CUP settlement (0500, and the upload after result flag 2), told as the
        settlement screen tells any profile's."""
        done = await self.core.settle()
        balanced = done.result is SettlementResult.BALANCED
        if not done.ok:
            detail = done.why
        elif balanced:
            detail = _("The host's totals agree (result 1); batch closed.")
        else:
            detail = ngettext("Totals differed (result 2); {count} transaction uploaded, batch "
                              "closed.", "Totals differed (result 2); {count} transactions "
                              "uploaded, batch closed.", done.uploaded).format(count=done.uploaded)
        return SettleOutcome(done.ok, balanced, done.uploaded, done.closed_batch, done.new_batch,
                             detail)


def cup_security(config: TerminalConfig, profile: WireProfile) -> TerminalSecurity:
    """The terminal's keys from its data directory, as the generic terminal reads them.

    :raises KeyStoreError: a DUKPT key file: CUP terminals take working keys at sign-on under
        a TMK, and the CUP layout has no field for a KSN.
    """
    store = KeyStore(config.data_dir)
    if store.dukpt_path.exists():
        raise KeyStoreError(f"{store.dukpt_path}: DUKPT is not used on the cup profile (a CUP "
                            "terminal gets working keys at sign-on under its TMK); import a "
                            "TMK with poslab-terminal keys import, or remove the file")
    return TerminalSecurity(profile, store)
