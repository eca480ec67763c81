"""The request pipeline without a database of its own: :class:`Pipeline`.

``handle(request)`` takes one decoded request (an :class:`~host.pipeline.request.IsoRequest`
from the server, or a plain field mapping) and returns a :class:`Reply` after its effects are
committed. It runs the stages of :mod:`host.pipeline.stages` -- validate, authenticate, then in
one write transaction identify, admitted (message security's own writes), de-duplicate, the
transaction's handler (:data:`host.pipeline.handlers.HANDLERS`) and remember -- over a storage
port (:mod:`host.pipeline.ports`): the SQL adapter in production, any other implementation in
a test that wants the decisions without a database.

It is thread-safe (one lock per instance); the reply of a request leaves only after its commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import TypeVar

from host import cards
from host.clock import Clock
from host.config import HostConfig, MerchantConfig, RefundPolicy
from host.pipeline import stages
from host.pipeline.context import Context, Decline, MessageSecurity
from host.pipeline.flow import GENERIC_FLOW, Flow, written
from host.pipeline.handlers import Handler
from host.pipeline.ports import Book, Storage, Tx, TxnStore
from host.pipeline.replies import Reply, format_error_reply, plain_reply, stamped
from host.pipeline.request import IsoRequest
from host.settlement.book import EngineDesk
from host.settlement.cutoffs import CutoffSchedule, zone
from protocol.codes import RuleId
from protocol.errors import ValidationError
from protocol.masking import Pan

log = logging.getLogger(__name__)
T = TypeVar("T")
#: A config, its merchants by terminal id and by merchant id, and why this host serves none
#: of the merchants of other partitions, by merchant id (:meth:`Pipeline._listed`).
_Listed = tuple[HostConfig, dict[str, MerchantConfig], dict[str, MerchantConfig], dict[str, str]]


class Pipeline:
    """The host's request path over a storage port (:class:`host.pipeline.context.Services`).

    :ivar settlement: the settlement desk, set by whoever builds one (None: nothing is
        settled, e.g. with a clock that cannot schedule).
    :ivar security: message security (MAC, sign-on keys, PIN), or None: no checks.
    :ivar lock: held while a request or batch runs; readers of the same storage share it.
    :ivar flows: the pipeline flow of each wire profile that has its own (by profile name,
        e.g. CUP's, :mod:`host.cup`); other profiles take the generic flow.
    """

    def __init__(self, config: HostConfig, storage: Storage, clock: Clock, *,
                 strict: bool = False, allow_unknown_terminals: bool = False,
                 flows: Mapping[str, Flow] | None = None) -> None:
        self.config = config
        self.flows: Mapping[str, Flow] = flows or {}
        self.storage = storage
        self.clock = clock
        self.strict = strict
        self.allow_unknown_terminals = allow_unknown_terminals
        self.settlement: EngineDesk | None = None
        self.security: MessageSecurity | None = None  # set by whoever builds it
        self.store: TxnStore = storage.store
        self.ledger: Book = storage.ledger
        self.lock = threading.RLock()
        self._card_key = storage.card_key
        limits = config.text_limits
        self._de48_limits = {"EV": limits.evidence_max, "OP": limits.operator_max}
        self._batch_conn: Tx | None = None  # set while handle_batch runs
        # Per (time zone, cut-off): the schedule and the business-date window last seen.
        self._schedules: dict[tuple[str, str],
                              tuple[CutoffSchedule, tuple[date, datetime, datetime]]] = {}
        self._unlisted: dict[str, MerchantConfig] = {}  # default profile copied per MID
        self._policies: dict[str, RefundPolicy] = {}  # the refund policy per MID
        self._index: _Listed | None = None  # the config's merchants by terminal and by id
        self._unsettled: set[str] = set()  # merchants enrolled since the last commit

    # == ISO traffic ==========================================================================

    def handle_batch(self, batch: Sequence[Mapping[str, str]]) -> list[Reply]:
        """Decide several requests in one transaction with one COMMIT (group commit).

        Each request runs as :meth:`handle` does, in its own savepoint: one that fails, is
        retried or declines silently rolls back only its own writes. This returns only after
        the COMMIT, so every reply leaves after its effects are durable (docs/design-notes.md);
        when the COMMIT fails it raises and no reply of the batch may be sent.
        """
        with self.lock:
            with self.storage.begin() as conn:
                self._batch_conn = conn
                try:
                    replies = [self.handle(fields) for fields in batch]
                finally:
                    self._batch_conn = None
            self._start_settling()
            return replies

    def _write(self) -> AbstractContextManager[Tx]:
        """One request's write transaction: its own (BEGIN IMMEDIATE on SQLite), or a savepoint
        of the batch's transaction inside :meth:`handle_batch`."""
        conn = self._batch_conn
        return self.storage.begin() if conn is None else self.storage.savepoint(conn)

    def handle(self, fields: Mapping[str, str]) -> Reply:
        """Decide one request and commit its effects; see the module docstring.

        ``fields`` is an :class:`~host.pipeline.request.IsoRequest` from the server, or a
        plain field mapping, taken as decoded with the default wire profile.
        """
        with self.lock:
            envelope = IsoRequest.of(fields)
            return written(envelope.profile, envelope.fields, self._decided(envelope),
                           self.flows.get(envelope.profile.name))

    def _decided(self, envelope: IsoRequest) -> Reply:
        try:
            reply = self._handle(envelope)
            if self._batch_conn is None:  # committed: not part of a batch
                self._start_settling()
            return reply
        except ValidationError as exc:
            if not exc.fields:
                exc.fields = dict(envelope.fields)
            return self.format_error(exc)
        except Decline as exc:
            return exc.reply
        except self.storage.errors as exc:
            log.error("database error, answering 96: %s", type(exc).__name__)
            return plain_reply(envelope.fields, "96", RuleId.SYSTEM_ERROR.value)

    def _start_settling(self) -> None:
        """After a commit: merchants first enrolled in it get cut-offs and funding like listed
        ones (their enrolment is durable now; a restart finds them in the terminal table)."""
        if not self._unsettled:  # the usual case, once per request
            return
        desk = self.settlement
        if desk is None:  # a clock that cannot schedule: nothing is settled
            self._unsettled.clear()
            return
        for mid in sorted(self._unsettled):
            try:
                if self.config.merchant(mid) is None:
                    desk.enrol_unlisted(mid)
            except self.storage.errors as exc:
                # The requests are committed and their replies must go out: try again after
                # the next commit (and a restart finds the merchant in the terminal table).
                log.error("could not start settling merchant %s yet: %s", mid,
                          type(exc).__name__)
                continue
            self._unsettled.discard(mid)

    def format_error(self, error: ValidationError) -> Reply:
        """MTI+10 with RC 30 when MTI, STAN and TID are readable; otherwise send nothing."""
        return format_error_reply(error)

    # -- pipeline -----------------------------------------------------------------------------

    def _handle(self, envelope: IsoRequest) -> Reply:
        ctx = stages.validate(self, envelope, self.clock.now(), strict=self.strict,
                              text_limits=self._de48_limits)
        flow = self.flows.get(envelope.profile.name, GENERIC_FLOW)
        if flow.authenticate_first:
            refused = stages.authenticate(ctx)
            if refused is not None:
                return refused
        handler = flow.handlers[ctx.txn]
        return self._retrying(lambda: self._transact(ctx, handler, flow))

    def _retrying(self, fn: Callable[[], Reply]) -> Reply:
        # A concurrent twin inserted the same key first, or the database was busy or chose us
        # as a deadlock victim: run again; the retry sees the other's result.
        return self.storage.retrying(fn)

    def _transact(self, ctx: Context, handler: Handler, flow: Flow) -> Reply:
        with self._write() as conn:
            if flow.before_identify is not None:
                ctx.conn = conn
                flow.before_identify(ctx)
            stages.identify(ctx, conn)
            if flow.after_identify is not None:
                flow.after_identify(ctx)  # CUP: authenticates here
            stages.admitted(ctx)
            local = ctx.now.astimezone(zone(ctx.merchant.timezone))
            if not handler.deduplicated:
                return stamped(handler.run(ctx), local)
            digest = stages.fingerprint(ctx)
            replayed = stages.deduplicate(ctx, digest)
            if replayed is not None:
                return replayed
            # Remembered as the profile writes it, so a repeat gets the very same answer.
            reply = written(ctx.request.profile, ctx.sent,
                            stamped(handler.run(ctx), local), flow)
            stages.remember(ctx, digest, reply)
            return reply

    # -- what the pipeline asks of the host (host.pipeline.context.Services) ------------------

    def merchant_profile(self, mid: str) -> MerchantConfig:
        """The merchant's config entry, or for a merchant only development-mode enrolment
        knows, the default merchant's profile under its id."""
        found = self._listed()[2].get(mid)
        if found is not None:
            return found
        copied = self._unlisted.get(mid)
        if copied is None:  # the config does not change while the host runs
            copied = self.config.default_merchant.model_copy(update={"id": mid,
                                                                     "terminals": ()})
            self._unlisted[mid] = copied
        return copied

    def terminal_owner(self, tid: str) -> MerchantConfig | None:
        """The configured merchant owning terminal ``tid``, or None (not listed)."""
        return self._listed()[1].get(tid)

    def foreign(self, mid: str) -> str | None:
        """Why this host does not serve merchant ``mid`` (listed in another partition), or
        None when it serves it or the config does not list it."""
        return self._listed()[3].get(mid)

    def _listed(self) -> _Listed:
        """The config's merchants by id and by terminal, and the refusals of other
        partitions' merchants, indexed once per config: it is immutable, and scanning the
        merchant list is dear on every request."""
        listed = self._index
        config = self.config
        if listed is None or listed[0] is not config:
            by_terminal: dict[str, MerchantConfig] = {}
            by_id: dict[str, MerchantConfig] = {}
            for merchant in config.merchants:  # the first listing wins, as in HostConfig
                by_id.setdefault(merchant.id, merchant)
                for tid in merchant.terminals:
                    by_terminal.setdefault(tid, merchant)
            foreign = {mid: why for mid, merchant in by_id.items()
                       if (why := config.foreign_partition(merchant)) is not None}
            listed = self._index = (config, by_terminal, by_id, foreign)
        return listed

    def refund_policy(self, merchant: MerchantConfig) -> RefundPolicy:
        """The merchant's refund policy (the default merchant's for an unlisted one)."""
        known = self._policies.get(merchant.id)
        if known is not None:
            return known
        # Merged from the config once per merchant: the config does not change while the
        # host runs, and the merge (a pydantic dump and copy) is dear on every request.
        listed = self.config.merchant(merchant.id) is not None
        policy = self.config.refund_policy(
            merchant.id if listed else self.config.default_merchant.id)
        self._policies[merchant.id] = policy
        return policy

    def business_date(self, merchant: MerchantConfig, now: datetime) -> date:
        """The merchant's business date at ``now`` (its own cut-off first)."""
        cutoff = merchant.cutoff or self.config.settlement.cutoff
        key = (merchant.timezone, cutoff)
        # The business date only changes at a cut-off: remember the current window per
        # schedule rather than resolving local cut-off times on every request.
        known = self._schedules.get(key)
        if known is not None:
            sched, (day, start, end) = known
            if start <= now < end:
                return day
        else:
            sched = CutoffSchedule.parse(merchant.timezone, cutoff)
        window = sched.window(now)
        self._schedules[key] = (sched, window)
        return window[0]

    def card_hash(self, pan: Pan) -> str:
        """The keyed hash a card number is stored and compared as."""
        return cards.card_hash(self._card_key, pan)

    def enrolled(self, mid: str) -> None:
        """A merchant first enrolled in this transaction: settled from the next commit on."""
        self._unsettled.add(mid)
