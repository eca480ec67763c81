"""The one per-request value the pipeline's stages share: :class:`Context`.

Stages keep no state of their own (the service is shared by every connection): what one
request needs travels in its :class:`Context`. The validate stage creates it; the identify
stage, inside the request's write transaction, fills in the connection, the merchant and the
request key; the handlers read it and book through :attr:`Context.host`.

:class:`Services` is what stages and handlers may use of the host: its configuration, the
storage port's repositories (:mod:`host.pipeline.ports`), settlement, and a few lookups.
:class:`~host.service.HostService` provides it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol

from host.config import HostConfig, MerchantConfig, RefundPolicy
from host.pipeline.ports import Book, Record, Tx, TxnStore
from host.pipeline.replies import Reply
from host.pipeline.request import IsoRequest
from host.rules import Decision
from host.settlement.book import EngineDesk
from protocol.masking import Pan
from protocol.messages import NetworkRequest, NetworkResponse, Request
from protocol.transactions import TxnType


class Services(Protocol):
    """What the pipeline uses of the host."""

    config: HostConfig
    allow_unknown_terminals: bool

    @property
    def store(self) -> TxnStore:
        """Terminals, batches, transaction rows, reviews and events."""

    @property
    def ledger(self) -> Book:
        """The ledger and the remembered answers."""

    @property
    def settlement(self) -> EngineDesk | None:
        """Settlement timing and notifications (None with a clock that cannot schedule)."""

    def merchant_profile(self, mid: str) -> MerchantConfig:
        """The merchant's config entry, or the default profile under its id."""

    def terminal_owner(self, tid: str) -> MerchantConfig | None:
        """The configured merchant owning terminal ``tid``, or None (not listed)."""

    def foreign(self, mid: str) -> str | None:
        """Why this host does not serve merchant ``mid`` (another partition's), or None."""

    def refund_policy(self, merchant: MerchantConfig) -> RefundPolicy:
        """The refund policy that applies to ``merchant``."""

    def business_date(self, merchant: MerchantConfig, now: datetime) -> date:
        """The merchant's business date at ``now``."""

    def card_hash(self, pan: Pan) -> str:
        """The keyed hash a card number is stored and compared as."""

    def enrolled(self, mid: str) -> None:
        """Note a merchant first enrolled in this transaction (settled after the commit)."""

    @property
    def security(self) -> MessageSecurity | None:
        """MAC, sign-on keys and PIN checks (:class:`host.security.gate.HostSecurity`), or
        None on a host without them."""


class MessageSecurity(Protocol):
    """What the pipeline asks of message security: the authenticate stage, the keys of a
    sign-on's answer, and the PIN check of a financial request."""

    def authenticate(self, message: bytes, fields: Mapping[str, str]) -> Reply | None:
        """A refusal (MAC failed, sign on first) or None to go on; nothing is booked yet."""

    def admitted(self, conn: Tx, message: bytes, fields: Mapping[str, str],
                 now_ms: int) -> None:
        """In the write transaction of a request :meth:`authenticate` let through: store what
        must outlive a restart of it (a DUKPT counter), committed or rolled back with it."""

    def sign_on(self, conn: Tx, request: NetworkRequest, response: NetworkResponse, *,
                data_key: bool = True, single_length: bool = False) -> NetworkResponse:
        """The 0810 for ``request``, with fresh working keys when it is a keyed sign-on
        (``data_key``: a track-data key too; ``single_length``: single DES keys)."""

    def check_pin(self, conn: Tx, fields: Mapping[str, str], pan: Pan | None,
                  business_date: str, now_ms: int, card_hash: Callable[[Pan], str]
                  ) -> Decision | None:
        """A decline for a wrong, locked or malformed PIN, or None."""


class Decline(Exception):
    """Answer with this reply before any transaction row is written (the request's writes
    roll back)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.log.get("rule"))
        self.reply = reply


@dataclass(eq=False, slots=True)
class Context:
    """One request's state on its way through the pipeline.

    :ivar host: the host's services.
    :ivar request: the request as received (fields, bytes, wire profile).
    :ivar sent: the fields as the terminal sent them (request key and fingerprint: nothing the
        host filled in).
    :ivar fields: the working fields (free text masked, missing times filled).
    :ivar message: the typed request.
    :ivar txn: its logical transaction.
    :ivar now: the host clock at arrival; ``now_ms`` the same in epoch milliseconds.

    Set by the identify stage: ``conn`` (the write transaction), ``merchant``, ``terminal``
    (the terminal's row, read locked; None for a configured terminal not stored yet),
    ``policy``, ``business_date`` (``bdate`` as ``YYYY-MM-DD``), ``key`` (the request key,
    :mod:`host.request_key`), ``answered`` (the fingerprint and answer stored under that key,
    or None) and ``tombstoned`` (a reversal came first for this MID, TID and STAN).
    """

    host: Services
    request: IsoRequest
    sent: dict[str, str]
    fields: dict[str, str]
    message: Request
    txn: TxnType
    now: datetime
    now_ms: int
    conn: Tx = field(init=False)
    merchant: MerchantConfig = field(init=False)
    terminal: Record | None = field(init=False)
    policy: RefundPolicy = field(init=False)
    business_date: date = field(init=False)
    bdate: str = field(init=False)
    key: str = field(init=False)
    answered: tuple[str, str] | None = field(init=False)
    tombstoned: bool = field(init=False)
    _card: tuple[str, str] | None = field(default=None, init=False, repr=False)

    def card_hash(self, pan: Pan) -> str:
        """The card's keyed hash (:meth:`Services.card_hash`), computed once per request: the
        fingerprint, the rules, the PIN check and the row all ask for the same card's."""
        known = self._card
        if known is not None and known[0] == pan.digits:
            return known[1]
        digest = self.host.card_hash(pan)
        self._card = (pan.digits, digest)
        return digest

    @property
    def match_dates(self) -> tuple[str, str]:
        """Where a reversal looks for its original (and an original for a tombstone): this
        business date, then the previous one (business dates are consecutive calendar days)."""
        return day_texts(self.business_date)[:2]

    @property
    def de15(self) -> str:
        """The business date as the answer's settlement date (``MMDD``)."""
        return day_texts(self.business_date)[2]


@functools.lru_cache(maxsize=64)
def day_texts(day: date) -> tuple[str, str, str]:
    """``day`` as ``YYYY-MM-DD``, the day before it as ``YYYY-MM-DD``, and ``day`` as ``MMDD``.

    Every request needs these texts of its business date, which changes once a day: they
    are formatted once per date, not once per request."""
    return (day.isoformat(), (day - timedelta(days=1)).isoformat(),
            f"{day.month:02d}{day.day:02d}")  # strftime costs several times more
