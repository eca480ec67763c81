"""The host's transaction pipeline and admin queries: :class:`HostService`.

``handle(fields)`` takes one decoded, validated request and returns a :class:`Reply` after its
effects are committed. Per request, in order:

1. strict mode: a mandatory field missing -> 30 ``MISSING_FIELD:<n>``; otherwise DE7/DE12/DE13
   are filled from the host clock when absent;
2. typed parsing (:func:`protocol.messages.parse_request`; failures answer 30);
3. terminal and merchant: unknown TID -> 58, unknown or mismatched MID -> 03 (development mode
   enrols them with the default merchant profile);
4. in **one write transaction** (``BEGIN IMMEDIATE`` on SQLite, row locks on PostgreSQL):
   the duplicate check on the request key (:mod:`host.request_key`: MTI class, TID, STAN and
   DE7, or without DE7 the batch or business date; never a value the host filled in) -- same
   content replays the stored response, different content -> 94 -- then the pure rules
   (:mod:`host.rules`, :mod:`host.cards`), the ledger postings (:mod:`host.ledger`), the
   transaction rows (:mod:`host.store`) and the stored response, then COMMIT;
5. the reply goes back only after that commit. A database error answers 96 with nothing
   committed; a ``no_response`` card books nothing and answers nothing.

Ledger postings per event (accounts in :mod:`host.ledger.accounts`)::

    sale / completion   D scheme_settlement          C merchant_payable:<mid>
    authorization hold  D pending_holds              C merchant_holds:<mid>
    completion          mirror of the hold, then the capture above
    refund              D merchant_payable:<mid>     C scheme_settlement     (parent: the sale)
    refund for review   D merchant_payable:<mid>     C refunds_under_review  (parent: the sale)
    review approved     D refunds_under_review       C scheme_settlement
    review rejected     mirror of the held refund (memo: the reason)
    void / reversal     mirror of every effective group of the original

The service is thread-safe (one lock per instance); several instances may share one database,
which then serialises them (that is how concurrent refunds of one sale never exceed it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, func, select
from sqlalchemy.exc import SQLAlchemyError

from host import cards, rules
from host.canonical_json import dumps_sorted
from host.clock import Clock
from host.config import HostConfig, MerchantConfig, RefundPolicy
from host.ledger import (
    ChainKey,
    Ledger,
    create_schema,
    ensure_key,
    key_path,
    merchant_holds,
    merchant_payable,
    open_engine,
    schema_transaction,
    to_ms,
    verify_connection,
)
from host.ledger import accounts as acct
from host.ledger.db_retry import run_retrying
from host.ledger.prepared import run_plain
from host.ledger.schema import posting_group
from host.replies import (
    Reply,
    financial_reply,
    format_error_reply,
    log_context,
    pan_of,
    plain_reply,
    stamped,
)
from host.request_key import request_key, request_key_of
from host.rules import Decision
from host.security.gate import HostSecurity
from host.security.tables import create_security_schema
from host.settlement import CutoffSchedule, zone
from host.store import Store, create_store_schema, store_checks, txn_reference
from host.store import txn as txn_table
from host.txn_views import TxnViews
from protocol.codes import NetworkCode, ProcessingCode, RuleId
from protocol.errors import ValidationError
from protocol.masking import Pan
from protocol.messages import (
    AuthorizationRequest,
    BatchTotals,
    BatchUploadRequest,
    BatchUploadResponse,
    CompletionAdvice,
    FinancialRequest,
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
    parse_response,
)
from protocol.money import Money
from protocol.private_data import check_lengths, mask_card_numbers

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Fields left out of a request's content fingerprint: transmission times (part of the key),
#: card secrets (never hashed into anything) and MACs.
_VOLATILE = frozenset({"t", "p", "h", "7", "12", "13", "2", "35", "45", "36", "52", "55", "64",
                       "128"})
_RETRIES = 8
#: DE3 of the 0200s whose DE48 carries free text (refund, void of a sale, void of a refund).
_FREE_TEXT_CODES = frozenset({ProcessingCode.REFUND.value, ProcessingCode.VOID_SALE.value,
                              ProcessingCode.VOID_REFUND.value})


class AdminError(Exception):
    """A bad admin command: ``status`` is the HTTP status, ``message`` says what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Decline(Exception):
    """Internal: answer with this reply before any transaction row is written."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.log.get("rule"))
        self.reply = reply


@dataclass
class _Ctx:
    """Per-request state (never kept on the service)."""

    conn: Connection
    fields: dict[str, str]
    now: datetime
    now_ms: int
    merchant: MerchantConfig
    policy: RefundPolicy
    business_date: date
    key: str
    #: The terminal's row, read locked by :meth:`HostService._merchant` (enrolled terminals
    #: only): batch assignment uses it instead of reading it again.
    terminal: Row[Any] | None = None

    @property
    def bdate(self) -> str:
        return self.business_date.isoformat()

    @property
    def match_dates(self) -> tuple[str, str]:
        """Where a reversal looks for its original (and an original for a tombstone): this
        business date, then the previous one (business dates are consecutive calendar days)."""
        return self.bdate, (self.business_date - timedelta(days=1)).isoformat()

    @property
    def de15(self) -> str:
        return self.business_date.strftime("%m%d")


class HostService:
    """The acquirer host's engine: ISO traffic in, committed decisions out; admin queries."""

    def __init__(self, config: HostConfig, db_url: str, clock: Clock, *, strict: bool = False,
                 allow_unknown_terminals: bool = False) -> None:
        self.config = config
        self.clock = clock
        self.strict = strict
        self.allow_unknown_terminals = allow_unknown_terminals
        self.chain_key = _chain_key(db_url, config.host.chain_key_file)
        self.engine = open_engine(db_url, synchronous=config.host.sqlite_synchronous)
        self.ledger = Ledger(self.chain_key)
        self.store = Store(self.chain_key, config.host.rrn_prefix)
        self.views = TxnViews(self.store, self.ledger)
        limits = config.text_limits
        self._de48_limits = {"EV": limits.evidence_max, "OP": limits.operator_max}
        self._lock = threading.RLock()
        self._batch_conn: Connection | None = None  # set while handle_batch runs
        # Per (time zone, cut-off): the schedule and the business-date window last seen.
        self._schedules: dict[tuple[str, str],
                              tuple[CutoffSchedule, tuple[date, datetime, datetime]]] = {}
        self._unlisted: dict[str, MerchantConfig] = {}  # default profile copied per MID
        self._unsettled: set[str] = set()  # merchants enrolled since the last commit
        with schema_transaction(self.engine) as conn:
            create_schema(conn, self.chain_key)
            create_store_schema(conn)
            self._card_key = self.store.card_key(conn, config.host.card_hash_key)
            create_security_schema(conn)
        self.security = HostSecurity(config, self.chain_key)  # keys, MAC, PIN (host.security)
        # Settlement timing (cut-offs, funding, refund posting, notifications): one hook.
        from host.settlement_book import build_desk  # late: it imports this module's store

        self.settlement = build_desk(self)

    # == ISO traffic ==========================================================================

    def handle_batch(self, batch: Sequence[Mapping[str, str]]) -> list[Reply]:
        """Decide several requests in one transaction with one COMMIT (group commit).

        Each request runs as :meth:`handle` does, in its own savepoint: one that fails, is
        retried or declines silently rolls back only its own writes. This returns only after
        the COMMIT, so every reply leaves after its effects are durable (docs/design-notes.md);
        when the COMMIT fails it raises and no reply of the batch may be sent.
        """
        with self._lock:
            with self.engine.begin() as conn:
                self._batch_conn = conn
                try:
                    replies = [self.handle(fields) for fields in batch]
                finally:
                    self._batch_conn = None
            self._start_settling()
            return replies

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One request's write transaction: its own (BEGIN IMMEDIATE on SQLite), or a savepoint
        of the batch's transaction inside :meth:`handle_batch`."""
        conn = self._batch_conn
        if conn is None:
            with self.engine.begin() as conn:
                yield conn
            return
        # Plain SQL savepoints: SQLAlchemy's begin_nested costs ~40 µs of CPU per request for
        # bookkeeping this code does not need (one level, always released or rolled back here).
        run_plain(conn, "SAVEPOINT poslab_request")
        try:
            yield conn
        except BaseException:
            run_plain(conn, "ROLLBACK TO SAVEPOINT poslab_request")
            run_plain(conn, "RELEASE SAVEPOINT poslab_request")
            raise
        run_plain(conn, "RELEASE SAVEPOINT poslab_request")

    def handle(self, fields: Mapping[str, str]) -> Reply:
        """Decide one request and commit its effects; see the module docstring."""
        with self._lock:
            request = dict(fields)
            try:
                reply = self._handle(request)
                if self._batch_conn is None:  # committed: not part of a batch
                    self._start_settling()
                return reply
            except ValidationError as exc:
                if not exc.fields:
                    exc.fields = request
                return self.format_error(exc)
            except _Decline as exc:
                return exc.reply
            except SQLAlchemyError as exc:
                log.error("database error, answering 96: %s", type(exc).__name__)
                return plain_reply(request, "96", RuleId.SYSTEM_ERROR.value)

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
            except SQLAlchemyError as exc:
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

    def _handle(self, fields: dict[str, str]) -> Reply:
        if (refused := self.security.authenticate(fields)) is not None:
            return refused  # a MAC that does not hold: nothing is booked
        now = self.clock.now()
        missing = rules.missing_field(fields) if self.strict else None
        if missing is not None:
            raise ValidationError(f"mandatory field {missing} is missing", field=missing,
                                  fields=fields)
        if "48" in fields and fields.get("3") in _FREE_TEXT_CODES and fields.get("t") == "0200":
            # Refund/void free text: limits before the database, card numbers never stored.
            check_lengths(fields["48"], self._de48_limits)
            fields["48"] = mask_card_numbers(fields["48"])
        fingerprint_src = dict(fields)  # what the terminal sent: no host-filled times
        self._fill_times(fields, now)
        request = parse_request(fields)
        return self._retrying(lambda: self._transact(request, fields, fingerprint_src, now))

    def _retrying(self, fn: Callable[[], T]) -> T:
        # A concurrent twin inserted the same key first, or the database was busy or chose us
        # as a deadlock victim: run again; the retry sees the other's result.
        return run_retrying(fn, _RETRIES)

    def _transact(self, request: Any, fields: dict[str, str], raw: dict[str, str],
                  now: datetime) -> Reply:
        with self._write() as conn:
            merchant, terminal = self._merchant(conn, fields, now)
            business_date = self._business_date(merchant, now)
            ctx = _Ctx(conn, fields, now, to_ms(now), merchant, self._policy(merchant),
                       business_date, request_key(raw, business_date), terminal)
            key = ctx.key
            local = now.astimezone(zone(merchant.timezone))
            if isinstance(request, NetworkRequest):
                return stamped(self._network(ctx, request), local)
            fingerprint = self._fingerprint(raw)
            seen = self.ledger.recall(conn, key)
            if seen is not None:
                return self._replay(ctx, seen, fingerprint)
            reply = stamped(self._dispatch(ctx, request), local)
            if reply.response is None:
                raise _Decline(reply)  # silent issuer: roll back, book nothing, send nothing
            stored = {"fields": reply.response.to_fields(), "log": reply.log}
            self.ledger.remember(conn, key, fingerprint, dumps_sorted(stored),
                                 ctx.now_ms)
            return reply

    def _dispatch(self, ctx: _Ctx, request: Any) -> Reply:
        if isinstance(request, ReversalRequest):
            return self._reversal(ctx, request)
        if isinstance(request, ReconciliationRequest):
            return self._reconcile(ctx, request)
        if isinstance(request, BatchUploadRequest):
            return self._upload(ctx, request)
        assert isinstance(request, FinancialRequest)
        return self._financial(ctx, request)

    # -- request key, fingerprint, replay ------------------------------------------------------

    def _fingerprint(self, fields: Mapping[str, str]) -> str:
        doc = {k: v for k, v in fields.items() if k not in _VOLATILE}
        doc["class"] = fields.get("t", "")[:3]
        pan = pan_of(fields)
        if pan is not None:
            doc["pan"] = self._hash(pan)
        return hashlib.sha256(dumps_sorted(doc).encode()).hexdigest()

    def _replay(self, ctx: _Ctx, seen: tuple[str, str], fingerprint: str) -> Reply:
        stored_fp, result = seen
        if stored_fp != fingerprint:
            return plain_reply(ctx.fields, "94", RuleId.DUPLICATE_DIFFERENT.value, ctx.de15,
                               kind="duplicate")
        stored = json.loads(result)
        logged = dict(stored["log"])
        logged["replayed"] = True
        return Reply(parse_response(stored["fields"]), logged)

    def _fill_times(self, fields: dict[str, str], now: datetime) -> None:
        # Non-strict hosts answer what they can: missing times come from the host's clock.
        if "7" not in fields:
            fields["7"] = now.strftime("%m%d%H%M%S")
        if fields.get("t") in ("0100", "0200", "0220", "0221"):
            if "12" not in fields:
                fields["12"] = now.strftime("%H%M%S")
            if "13" not in fields:
                fields["13"] = now.strftime("%m%d")

    # -- terminals and merchants ----------------------------------------------------------------

    def _merchant(self, conn: Connection, fields: Mapping[str, str],
                  now: datetime) -> tuple[MerchantConfig, Row[Any] | None]:
        """The request's merchant, and for an enrolled terminal its row read locked (the lock
        batch assignment would take later anyway; the row is then not read twice)."""
        tid, mid = fields["41"], fields["42"]
        owner = self.config.merchant_of_terminal(tid)
        if owner is not None:
            if owner.id != mid:
                raise _Decline(plain_reply(fields, "03", RuleId.UNKNOWN_MERCHANT.value))
            return owner, None
        row = self.store.terminal(conn, tid, lock=True)
        if row is not None and row.enrolled:
            if row.merchant_id != mid:
                raise _Decline(plain_reply(fields, "03", RuleId.UNKNOWN_MERCHANT.value))
            return self.merchant_profile(mid), row
        if not self.allow_unknown_terminals:
            raise _Decline(plain_reply(fields, "58", RuleId.UNKNOWN_TERMINAL.value))
        row = self.store.ensure_terminal(conn, tid, mid, to_ms(now), enrolled=True,
                                         locked=row)
        self._unsettled.add(mid)  # settled from the next commit on (_start_settling)
        self.store.add_event(conn, None, to_ms(now), "terminal_enrolled", terminal=tid,
                             merchant=mid)
        return self.merchant_profile(mid), row

    def merchant_profile(self, mid: str) -> MerchantConfig:
        """The merchant's config entry, or for a merchant only development-mode enrolment
        knows, the default merchant's profile under its id."""
        found = self.config.merchant(mid)
        if found is not None:
            return found
        copied = self._unlisted.get(mid)
        if copied is None:  # the config does not change while the host runs
            copied = self.config.default_merchant.model_copy(update={"id": mid,
                                                                     "terminals": ()})
            self._unlisted[mid] = copied
        return copied

    def _policy(self, merchant: MerchantConfig) -> RefundPolicy:
        if self.config.merchant(merchant.id) is not None:
            return self.config.refund_policy(merchant.id)
        return self.config.refund_policy(self.config.default_merchant.id)

    def _business_date(self, merchant: MerchantConfig, now: datetime) -> date:
        cutoff = merchant.cutoff or self.config.settlement.cutoff  # the merchant's own first
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

    def _hash(self, pan: Pan) -> str:
        return cards.card_hash(self._card_key, pan)

    # -- 0800 -------------------------------------------------------------------------------

    def _network(self, ctx: _Ctx, req: NetworkRequest) -> Reply:
        if req.code is not NetworkCode.ECHO:
            self.store.ensure_terminal(ctx.conn, req.terminal_id, req.merchant_id, ctx.now_ms,
                                       enrolled=False)
            self.store.set_signed_on(ctx.conn, req.terminal_id, req.code is NetworkCode.SIGN_ON)
        resp = NetworkResponse(mti_value="0810", stan=req.stan, terminal_id=req.terminal_id,
                               merchant_id=req.merchant_id, transmitted_at=req.transmitted_at,
                               response_code="00", business_date=ctx.de15, code=req.code.value)
        resp = self.security.sign_on(ctx.conn, req, resp)  # working keys in DE62
        return Reply(resp, log_context(ctx.fields, "network", resp.response_code, resp.rule))

    # -- 0100 / 0200 / 0220 ------------------------------------------------------------------------

    def _financial(self, ctx: _Ctx, req: FinancialRequest) -> Reply:
        pan = req.card.account if req.card is not None else None
        if pan is not None and cards.silent_card(self.config, pan):
            return Reply(None, log_context(ctx.fields, _kind(req), "", None, note="no_response"),
                         silent=True)
        pre = self._precheck(ctx, req, pan)
        if isinstance(req, RefundRequest):
            return self._refund(ctx, req, pan, pre)
        if isinstance(req, VoidRequest):
            return self._void(ctx, req, pan, pre)
        if isinstance(req, CompletionAdvice):
            return self._completion(ctx, req, pan, pre)
        assert isinstance(req, SaleRequest | AuthorizationRequest)
        return self._purchase(ctx, req, pan, pre)

    def _precheck(self, ctx: _Ctx, req: FinancialRequest, pan: Pan | None) -> Decision | None:
        """Checks common to every financial request; a decline or None."""
        if pan is not None and not pan.luhn_ok():
            return Decision.decline(RuleId.INVALID_CARD_NUMBER, ("luhn",))
        declined = rules.currency_accepted(ctx.merchant, req.amount.currency)
        if declined is not None:
            return declined
        if self.store.tombstoned(ctx.conn, req.merchant_id, req.terminal_id, req.stan,
                                 ctx.match_dates):
            return Decision.decline(RuleId.REVERSED_BEFORE_ARRIVAL, ("tombstone",))
        return self.security.check_pin(ctx.conn, ctx.fields, pan, ctx.bdate, ctx.now_ms,
                                       self._hash)  # DE52 (host.security)

    def _purchase(self, ctx: _Ctx, req: SaleRequest | AuthorizationRequest, pan: Pan | None,
                  pre: Decision | None) -> Reply:
        assert pan is not None  # parse_request guarantees card data on 0100/0200 purchases
        decision = pre
        if decision is None and req.amount.minor <= 0:
            decision = Decision.decline(RuleId.ZERO_AMOUNT, ("amount_positive",))
        if decision is None:
            issuer = cards.issuer_decision(self.config, pan, req.amount.minor)
            if issuer.approved:
                decision = Decision.approve(("issuer",))
            else:
                assert issuer.rule is not None
                decision = Decision(False, issuer.code, issuer.rule, ("issuer",))
        is_auth = isinstance(req, AuthorizationRequest)
        kind = "auth" if is_auth else "sale"
        row_id, rrn, code = self._insert(ctx, req, kind, decision, pan,
                                         state="authorized" if is_auth else "approved",
                                         batched=not is_auth, store_ids=not decision.approved)
        if decision.approved:
            mid, amount = req.merchant_id, req.amount.minor
            legs = ([(acct.PENDING_HOLDS, "D", amount), (merchant_holds(mid), "C", amount)]
                    if is_auth else
                    [(acct.SCHEME_SETTLEMENT, "D", amount), (merchant_payable(mid), "C", amount)])
            self._post(ctx, row_id, kind, legs, req.amount.currency, rrn=rrn,
                       approval_code=code)
        return financial_reply(ctx.fields, req, kind, decision, rrn, code, pan, ctx.de15)

    def _completion(self, ctx: _Ctx, req: CompletionAdvice, pan: Pan | None,
                    pre: Decision | None) -> Reply:
        hold = self.store.find_hold(ctx.conn, req.terminal_id, req.merchant_id,
                                    req.approval_code, req.original_rrn)
        view = self.store.view(ctx.conn, hold) if hold is not None else None
        decision = pre or rules.evaluate_completion(req.amount.minor, req.amount.currency, view)
        if pan is None and hold is not None:
            pan_masked, pan_hash = hold.pan_masked, hold.pan_hash
        else:
            pan_masked, pan_hash = (pan.masked, self._hash(pan)) if pan else (None, None)
        posts = decision.approved and hold is not None
        row_id, rrn, code = self._insert(ctx, req, "completion", decision, None,
                                         store_ids=not posts,
                                         original_id=hold.id if hold is not None else None,
                                         pan_masked=pan_masked, pan_hash=pan_hash)
        if posts:
            assert hold is not None
            ref = txn_reference(row_id)
            self.ledger.reverse(ctx.conn, int(hold.group_id), at_ms=ctx.now_ms, reference=ref,
                                kind="hold_release")
            amount = req.amount.minor
            self._post(ctx, row_id, "completion",
                       [(acct.SCHEME_SETTLEMENT, "D", amount),
                        (merchant_payable(req.merchant_id), "C", amount)], req.amount.currency,
                       rrn=rrn, approval_code=code)
            self.store.update_txn(ctx.conn, int(hold.id), state="completed")
            self.store.add_event(ctx.conn, int(hold.id), ctx.now_ms, "completed", by=rrn,
                                 amount_minor=amount)
        return financial_reply(ctx.fields, req, "completion", decision, rrn, code, pan, ctx.de15)

    def _refund(self, ctx: _Ctx, req: RefundRequest, pan: Pan | None,
                pre: Decision | None) -> Reply:
        assert pan is not None
        original = (self.store.txn_by_rrn(ctx.conn, req.original_rrn, lock=True)
                    if req.original_rrn else None)
        view = self.store.view(ctx.conn, original) if original is not None else None
        decision = pre
        if decision is None:
            ask = rules.RefundAsk(
                merchant_id=req.merchant_id, currency=req.amount.currency,
                amount_minor=req.amount.minor, pan_hash=self._hash(pan),
                referenced=bool(req.original_rrn), now_ms=ctx.now_ms,
                # Summed only when a daily cap is set: it reads every refund of the day.
                merchant_refunded_today_minor=self.store.merchant_refunded(
                    ctx.conn, req.merchant_id, ctx.bdate)
                if ctx.policy.daily_amount_cap_minor is not None else 0)
            decision = rules.evaluate_refund(ask, view, ctx.policy)
        review = decision.review_level if decision.approved else 0
        row_id, rrn, code = self._insert(
            ctx, req, "refund", decision, pan, store_ids=not decision.approved,
            original_id=original.id if original is not None else None,
            review_state="pending_review" if review else None, reason=req.reason.value,
            evidence=req.evidence, operator=req.operator)
        remaining = None
        if view is not None and view.kind in rules.REFUNDABLE_KINDS and view.merchant_id == \
                req.merchant_id:
            left = view.remaining_minor - (req.amount.minor if decision.approved else 0)
            remaining = Money(max(left, 0), view.currency)
        if decision.approved:
            amount, mid = req.amount.minor, req.merchant_id
            credit = acct.REFUNDS_UNDER_REVIEW if review else acct.SCHEME_SETTLEMENT
            parent = int(original.group_id) if original is not None and \
                original.group_id is not None else None
            self._post(ctx, row_id, "refund", [(merchant_payable(mid), "D", amount),
                                               (credit, "C", amount)],
                       req.amount.currency, parent_id=parent, rrn=rrn, approval_code=code)
            if review:
                review_id = self.store.add_review(ctx.conn, row_id, review, ctx.now_ms)
                self.store.add_event(ctx.conn, row_id, ctx.now_ms, "review_opened",
                                     review_id=review_id, level=review)
            if original is not None:
                self.store.add_event(ctx.conn, int(original.id), ctx.now_ms, "refunded", by=rrn,
                                     amount_minor=amount)
            if not review and self.settlement is not None:
                self.settlement.notify_refund(ctx.conn, "refund_approved", row_id, ctx.now)
        return financial_reply(ctx.fields, req, "refund", decision, rrn, code, pan, ctx.de15,
                               remaining=remaining)

    def _void(self, ctx: _Ctx, req: VoidRequest, pan: Pan | None,
              pre: Decision | None) -> Reply:
        original = self.store.txn_by_rrn(ctx.conn, req.original_rrn, lock=True)
        view = self.store.view(ctx.conn, original) if original is not None else None
        ask = rules.VoidAsk(req.merchant_id, req.terminal_id, req.amount.minor, req.voids_refund)
        decision = pre or rules.evaluate_void(ask, view, self.config.void)
        pan_masked = original.pan_masked if original is not None else None
        pan_hash = original.pan_hash if original is not None else None
        posts = decision.approved and original is not None
        row_id, rrn, code = self._insert(ctx, req, "void", decision, None, store_ids=not posts,
                                         original_id=original.id if original is not None
                                         else None, pan_masked=pan_masked, pan_hash=pan_hash,
                                         operator=req.operator)
        if posts:
            assert original is not None
            groups = self.ledger.reverse_reference(
                ctx.conn, txn_reference(int(original.id)), at_ms=ctx.now_ms,
                new_reference=txn_reference(row_id), kind="void")
            # One UPDATE for the ids (insert_txn left them) and the ledger group.
            self.store.update_txn(ctx.conn, row_id, group_id=groups[0] if groups else None,
                                  rrn=rrn, approval_code=code)
            self.store.update_txn(ctx.conn, int(original.id), state="voided")
            if original.kind == "completion" and original.original_id is not None:
                # The void mirrored the hold's release too: the hold is live again, as after
                # a reversal of the completion (_undo).
                self.store.update_txn(ctx.conn, int(original.original_id), state="authorized")
            self._cancel_review(ctx, int(original.id), "voided")
            self.store.add_event(ctx.conn, int(original.id), ctx.now_ms, "voided", by=rrn)
        return financial_reply(ctx.fields, req, "void", decision, rrn, code, pan, ctx.de15)

    # -- 0400 / 0401 ---------------------------------------------------------------------

    def _reversal(self, ctx: _Ctx, req: ReversalRequest) -> Reply:
        """Match an 0400/0401 to its original and undo it (see :func:`rules.evaluate_reversal`).

        Matching: the newest non-declined transaction with the reversal's (MID, TID, STAN) on
        the current business date, else on the previous one -- a reversal sent just after the
        cut-off still finds the sale made just before it. Two dates are enough because a
        terminal reuses a STAN only after its counter wraps. Nothing found: 00
        REVERSAL_UNKNOWN (or 25) and a **tombstone** on the current date, unless one already
        exists on either date (a repeat). An original arriving later is declined 12
        REVERSED_BEFORE_ARRIVAL when a tombstone sits on its business date or the previous
        one: both dates come from the host's clock at arrival and the original arrives after
        its reversal, so its date is the tombstone's or later, never earlier (an original
        already stored on date D when the reversal comes on D+1 is matched, not tombstoned).
        With DE90 the original is found exactly, at any age: DE90's MTI, STAN and DE7 are the
        request key the original was stored under. Only a reversal without DE90 (or whose DE90
        names nothing stored) relies on the two-date match: two or more business dates after
        its original it finds nothing, answers 00 REVERSAL_UNKNOWN, leaves a tombstone and the
        original stays effective.
        """
        conn = ctx.conn
        target = self._named_original(ctx, req) or self.store.reversal_target(
            conn, req.merchant_id, req.terminal_id, req.stan, ctx.match_dates)
        if target is not None and target.kind == "adjustment":
            # The newest row with this key is the adjustment a late reversal booked: a repeat
            # of that reversal is answered for the transaction it reversed.
            target = self.store.txn_by_id(conn, target.original_id, lock=True)
        rrn = target.rrn if target is not None else None
        adjustment = None
        if target is None:
            if not self.store.tombstoned(conn, req.merchant_id, req.terminal_id, req.stan,
                                         ctx.match_dates):
                self.store.mark_reversal(conn, req.merchant_id, req.terminal_id, req.stan,
                                         ctx.bdate, None, ctx.now_ms)
                self.store.add_event(conn, None, ctx.now_ms, "tombstone", stan=req.stan,
                                     terminal=req.terminal_id)
            if self.config.reversal.unknown_original_reply == "25":
                decision = Decision.decline(RuleId.ORIGINAL_NOT_FOUND, ("reversal_match",))
            else:
                decision = Decision(True, "00", RuleId.REVERSAL_UNKNOWN, ("reversal_match",))
        elif target.state in ("approved", "authorized"):
            decision = rules.evaluate_reversal(self.store.view(conn, target))
            if decision.approved:
                groups = self._undo(ctx, target)
                if "late_adjustment" in decision.fired:
                    adjustment = self._late_adjustment(ctx, target, groups)
        elif target.state == "completed":
            decision = Decision.decline(RuleId.ORIGINAL_NOT_EFFECTIVE, ("reversal_match",))
        else:  # already reversed (a repeat), voided or rejected: nothing left to undo
            decision = Decision.approve(("reversal_match", "already_undone"))
        resp = FinancialResponse(
            mti_value="0410", stan=req.stan, terminal_id=req.terminal_id,
            merchant_id=req.merchant_id, transmitted_at=req.transmitted_at,
            response_code=decision.code, rule=decision.de44, business_date=ctx.de15,
            processing_code=req.processing_code, amount=req.amount, rrn=rrn)
        pan = req.card.account if req.card is not None else None
        more = {"adjustment": adjustment} if adjustment else {}
        return Reply(resp, log_context(ctx.fields, "reversal", decision.code, decision.de44,
                                       rrn=rrn, pan=pan, **more))

    def _named_original(self, ctx: _Ctx, req: ReversalRequest) -> Row[Any] | None:
        """The transaction DE90 names (this terminal's, this merchant's, not declined)."""
        named = req.original
        if named is None:
            return None
        key = request_key_of(named.mti, req.terminal_id, named.stan, named.transmitted_at)
        row = self.store.txn_by_request_key(ctx.conn, key)
        if row is None or row.merchant_id != req.merchant_id or row.state == "declined":
            return None
        return row

    def _late_adjustment(self, ctx: _Ctx, target: Row[Any], groups: list[int]) -> str:
        """Book a reversal that came after the original's batch closed: the closed batch and its
        content hash stay as they are; the terminal's open batch gets an ``adjustment`` row of
        the opposite sign (-amount for a sale, +amount for a refund) that settlement nets in
        the merchant's next funding. Returns the adjustment's RRN."""
        sign = 1 if target.kind == "refund" else -1
        amount = sign * int(target.amount_minor)
        batch_id = self.store.open_batch(ctx.conn, target.terminal_id, target.merchant_id,
                                         ctx.now_ms, ctx.bdate)
        row_id, rrn, _ = self.store.insert_txn(
            ctx.conn, kind="adjustment", mti=ctx.fields.get("t", "0400"),
            processing_code=ctx.fields.get("3", "000000"), request_key=f"{ctx.key}|adjustment",
            merchant_id=target.merchant_id, terminal_id=target.terminal_id, stan=target.stan,
            business_date=ctx.bdate, at_ms=ctx.now_ms, amount_minor=amount,
            currency=target.currency, pan_masked=target.pan_masked, pan_hash=target.pan_hash,
            original_id=int(target.id), state="approved", response_code="00",
            batch_id=batch_id, group_id=groups[0] if groups else None,
            rules_fired=json.dumps(["late_adjustment"]))
        self.store.add_event(ctx.conn, row_id, ctx.now_ms, "adjustment", of=target.rrn,
                             amount_minor=amount, batch=batch_id)
        self.store.add_event(ctx.conn, int(target.id), ctx.now_ms, "late_reversal",
                             adjustment=rrn, batch=batch_id)
        return rrn

    def _undo(self, ctx: _Ctx, target: Row[Any]) -> list[int]:
        """Reverse an effective transaction: mirror its groups and restore what it changed;
        returns the mirror groups."""
        tid = int(target.id)
        groups = self.ledger.reverse_reference(ctx.conn, txn_reference(tid), at_ms=ctx.now_ms,
                                               new_reference=txn_reference(tid), kind="reversal")
        self.store.update_txn(ctx.conn, tid, state="reversed")
        self.store.mark_reversal(ctx.conn, target.merchant_id, target.terminal_id, target.stan,
                                 ctx.bdate, tid, ctx.now_ms)
        self.store.add_event(ctx.conn, tid, ctx.now_ms, "reversed")
        original = self.store.txn_by_id(ctx.conn, target.original_id, lock=True)
        if target.kind == "void" and original is not None:
            self.store.update_txn(ctx.conn, int(original.id), state="approved")
            self.store.add_event(ctx.conn, int(original.id), ctx.now_ms, "void_reversed",
                                 by=target.rrn)
        elif target.kind == "completion" and original is not None:
            self.store.update_txn(ctx.conn, int(original.id), state="authorized")
        elif target.kind == "refund":
            self._cancel_review(ctx, tid, "reversed")
            if original is not None:
                self.store.add_event(ctx.conn, int(original.id), ctx.now_ms, "refund_reversed",
                                     by=target.rrn, amount_minor=int(target.amount_minor))
        return groups

    def _cancel_review(self, ctx: _Ctx, txn_id: int, why: str) -> None:
        rev = self.store.review_of(ctx.conn, txn_id)
        if rev is not None and rev.state == "pending_review":
            self.store.decide_review(ctx.conn, int(rev.id), "cancelled", ctx.now_ms, why)
            self.store.update_txn(ctx.conn, txn_id, review_state="cancelled")

    # -- 0500 / 0320 ---------------------------------------------------------------------

    def _reconcile(self, ctx: _Ctx, req: ReconciliationRequest) -> Reply:
        conn, cur = ctx.conn, req.totals.currency
        open_batch = self.store.current_batch(conn, req.terminal_id)
        theirs = _totals_dict(req.totals)
        if open_batch is None:
            closed = self.store.closed_batch(conn, req.terminal_id, req.batch_number)
            ours = json.loads(closed.totals) if closed is not None and closed.totals else \
                {k: 0 for k in theirs}
            ok = ours == theirs or req.after_upload
        else:
            ours = self.store.batch_totals(conn, int(open_batch.id), cur)
            ok = ours == theirs or req.after_upload
            if ok:
                self.store.close_batch(conn, int(open_batch.id), number=req.batch_number,
                                       at_ms=ctx.now_ms, closed_by="0500", totals=ours)
                self.store.add_event(conn, None, ctx.now_ms, "batch_closed",
                                     batch=int(open_batch.id), terminal=req.terminal_id,
                                     number=req.batch_number, after_upload=req.after_upload)
        rule = None if ok else RuleId.RECONCILE_MISMATCH.value
        resp = ReconciliationResponse(
            mti_value="0510", stan=req.stan, terminal_id=req.terminal_id,
            merchant_id=req.merchant_id, transmitted_at=req.transmitted_at,
            response_code="00" if ok else "95", rule=rule, business_date=ctx.de15,
            batch_number=req.batch_number, processing_code=ctx.fields.get("3"),
            totals=BatchTotals(cur, ours["debits_count"], ours["debits_minor"],
                               ours["credits_count"], ours["credits_minor"]))
        return Reply(resp, log_context(ctx.fields, "reconciliation", resp.response_code, rule))

    def _upload(self, ctx: _Ctx, req: BatchUploadRequest) -> Reply:
        row = self.store.txn_by_rrn(ctx.conn, req.rrn)
        found = row is not None and row.terminal_id == req.terminal_id
        self.store.add_event(ctx.conn, int(row.id) if row is not None and found else None,
                             ctx.now_ms, "uploaded", terminal=req.terminal_id, rrn=req.rrn,
                             batch=req.batch_number, matches=bool(
                                 found and row is not None
                                 and int(row.amount_minor) == req.amount.minor))
        rule = None if found else RuleId.ORIGINAL_NOT_FOUND.value
        resp = BatchUploadResponse(
            mti_value="0330", stan=req.stan, terminal_id=req.terminal_id,
            merchant_id=req.merchant_id, transmitted_at=req.transmitted_at,
            response_code="00" if found else "25", rule=rule, business_date=ctx.de15,
            rrn=req.rrn, batch_number=req.batch_number)
        return Reply(resp, log_context(ctx.fields, "upload", resp.response_code, rule,
                                       rrn=req.rrn))

    # -- writing ----------------------------------------------------------------------------

    def _insert(self, ctx: _Ctx, req: FinancialRequest, kind: str, decision: Decision,
                pan: Pan | None, *, state: str = "approved", batched: bool = True,
                store_ids: bool = True, **extra: Any) -> tuple[int, str, str]:
        """Insert the transaction row; ``store_ids=False`` when the caller writes ``rrn`` and
        ``approval_code`` itself in the UPDATE that records the ledger group (one UPDATE, not
        two; :meth:`Store.insert_txn`)."""
        values: dict[str, Any] = {
            "kind": kind, "mti": req.mti, "processing_code": req.processing_code,
            "request_key": ctx.key,
            "merchant_id": req.merchant_id, "terminal_id": req.terminal_id, "stan": req.stan,
            "business_date": ctx.bdate, "at_ms": ctx.now_ms, "amount_minor": req.amount.minor,
            "currency": req.amount.currency,
            "state": state if decision.approved else "declined",
            "response_code": decision.code, "rule": decision.de44,
            "rules_fired": json.dumps(list(decision.fired)),
        }
        if pan is not None:
            values["pan_masked"], values["pan_hash"] = pan.masked, self._hash(pan)
        values.update(extra)
        if decision.approved and batched:
            locked = ctx.terminal
            if locked is not None and locked.terminal_id != req.terminal_id:
                locked = None
            values["batch_id"] = self.store.open_batch(ctx.conn, req.terminal_id,
                                                       req.merchant_id, ctx.now_ms, ctx.bdate,
                                                       locked=locked)
        row_id, rrn, code = self.store.insert_txn(ctx.conn, store_ids=store_ids, **values)
        self.store.add_event(ctx.conn, row_id, ctx.now_ms, "decided", rc=decision.code,
                             rule=decision.de44, fired=list(decision.fired))
        return row_id, rrn, code

    def _post(self, ctx: _Ctx, txn_id: int, kind: str, legs: list[tuple[str, str, int]],
              currency: str, parent_id: int | None = None, **row: Any) -> int:
        """Post the transaction's ledger group; ``row``: more columns for the same UPDATE."""
        gid = self.ledger.post_group(ctx.conn, legs, currency=currency, at_ms=ctx.now_ms,
                                     reference=txn_reference(txn_id), kind=kind,
                                     parent_id=parent_id)
        self.store.update_txn(ctx.conn, txn_id, group_id=gid, **row)
        return gid

    # -- responses and log lines -------------------------------------------------------------

    # == admin ===================================================================================

    def health(self) -> dict[str, Any]:
        """Liveness plus a few counts."""
        with self._lock, self.engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(txn_table)).scalar_one()
            groups = conn.execute(select(func.count()).select_from(posting_group)).scalar_one()
            conn.rollback()
        return {"status": "ok", "database": self.engine.dialect.name,
                "transactions": int(count), "posting_groups": int(groups),
                "strict": self.strict, "allow_unknown_terminals": self.allow_unknown_terminals}

    def transaction(self, rrn: str) -> dict[str, Any] | None:
        """One transaction with its capture/refund/settlement state, amounts, rules, events."""
        with self._lock, self.engine.connect() as conn:
            row = self.store.txn_by_rrn(conn, rrn)
            out = self.views.detail(conn, row) if row is not None else None
            conn.rollback()
        if out is not None and self.settlement is not None:
            out["refund_settlement"] = self.settlement.refund_state(rrn)  # settled / posted
        return out

    def transactions(self, tid: str | None = None, stan: str | None = None) -> list[dict[str, Any]]:
        """Transactions by terminal and/or STAN, newest first (summaries; the first 500)."""
        return list(self.transactions_page(tid, stan)["transactions"])

    def transactions_page(self, tid: str | None = None, stan: str | None = None,
                          limit: int = 500, cursor: str | None = None) -> dict[str, Any]:
        """One page of :meth:`transactions`: ``{"transactions": [...], "next": cursor}``.

        ``next`` is None on the last page; passing it back as ``cursor`` gives the following
        (older) page. Rows booked meanwhile never shift a page: the cursor is a position.
        """
        before = int(cursor) if cursor is not None else None
        with self._lock, self.engine.connect() as conn:
            rows = self.store.txns(conn, tid, stan, limit + 1, before)
            page = [self.views.summary(conn, r) for r in rows[:limit]]
            conn.rollback()
        more = len(rows) > limit
        return {"transactions": page, "next": str(rows[limit - 1].id) if more else None}

    def balances(self) -> dict[str, dict[str, int]]:
        """Net debit (debits - credits) per account per currency, in minor units."""
        with self._lock, self.engine.connect() as conn:
            out = self.ledger.balances(conn)
            conn.rollback()
        return out

    def verify(self) -> dict[str, Any]:
        """Check the ledger and store invariants; each violation named precisely."""
        with self._lock, self.engine.connect() as conn:
            report = verify_connection(conn, self.chain_key, store_checks(self.chain_key))
            conn.rollback()
        return report

    def reviews(self, state: str | None = None) -> list[dict[str, Any]]:
        """Refund reviews (optionally by state: pending_review, approved, rejected, cancelled)."""
        with self._lock, self.engine.connect() as conn:
            out = [self.views.review(conn, r) for r in self.store.reviews(conn, state)]
            conn.rollback()
        return out

    def approve_review(self, review_id: int, approver: str, note: str = "") -> dict[str, Any]:
        """Add one approval; at the required count the refund is released for settlement.

        Raises :class:`AdminError` 400 (no approver, or one longer than
        ``[text_limits] approver_max``), 404 (unknown review), 409 (already decided, or the
        same approver twice: names are compared after NFKC normalisation and case folding, so
        ``alice`` and ``ALICE`` are one person).
        """
        approver = self._approver(approver)
        with self._lock:
            return self._retrying(lambda: self._approve(review_id, approver, note))

    def _approve(self, review_id: int, approver: str, note: str) -> dict[str, Any]:
        now_ms = to_ms(self.clock.now())
        with self.engine.begin() as conn:
            rev = self._open_review(conn, review_id)
            names = [a.approver for a in self.store.approvals(conn, review_id)]
            if same_person(approver) in {same_person(n) for n in names}:
                raise AdminError(409, f"{approver} already approved review {review_id}; a "
                                      f"second, different approver is needed")
            self.store.add_approval(conn, review_id, approver, note, now_ms)
            txn_id = int(rev.txn_id)
            self.store.add_event(conn, txn_id, now_ms, "review_approval", approver=approver,
                                 note=note)
            if len(names) + 1 >= int(rev.level):
                row = self.store.txn_by_id(conn, txn_id, lock=True)
                assert row is not None
                mid, amount = row.merchant_id, int(row.amount_minor)
                self.ledger.post_group(conn, [(acct.REFUNDS_UNDER_REVIEW, "D", amount),
                                              (acct.SCHEME_SETTLEMENT, "C", amount)],
                                       currency=row.currency, at_ms=now_ms,
                                       reference=txn_reference(txn_id), kind="review_release",
                                       memo=f"approved by {', '.join(names + [approver])}")
                self.store.decide_review(conn, review_id, "approved", now_ms)
                self.store.update_txn(conn, txn_id, review_state="approved")
                if self.settlement is not None:
                    self.settlement.notify_refund(conn, "refund_approved", txn_id,
                                                  self.clock.now(), review=review_id)
                self.store.add_event(conn, txn_id, now_ms, "review_approved", merchant=mid)
            out = self.views.review(conn, self.store.review_row(conn, review_id))
        return out

    def reject_review(self, review_id: int, approver: str, reason: str) -> dict[str, Any]:
        """Reject a held refund: its ledger group is mirrored and the reason recorded.

        Raises :class:`AdminError` 400 (no approver or reason), 404, 409 (already decided).
        """
        approver, reason = self._approver(approver), (reason or "").strip()
        if not reason:
            raise AdminError(400, "a reason is required to reject a refund")
        with self._lock:
            return self._retrying(lambda: self._reject(review_id, approver, reason))

    def _reject(self, review_id: int, approver: str, reason: str) -> dict[str, Any]:
        now_ms = to_ms(self.clock.now())
        with self.engine.begin() as conn:
            rev = self._open_review(conn, review_id)
            txn_id = int(rev.txn_id)
            self.ledger.reverse_reference(conn, txn_reference(txn_id), at_ms=now_ms,
                                          new_reference=txn_reference(txn_id),
                                          kind="review_rejected",
                                          memo=f"rejected by {approver}: {reason}")
            self.store.decide_review(conn, review_id, "rejected", now_ms, reason)
            self.store.update_txn(conn, txn_id, state="rejected", review_state="rejected")
            if self.settlement is not None:
                self.settlement.notify_refund(conn, "refund_rejected", txn_id, self.clock.now(),
                                              review=review_id, reason=reason)
            self.store.add_event(conn, txn_id, now_ms, "review_rejected", approver=approver,
                                 reason=reason)
            out = self.views.review(conn, self.store.review_row(conn, review_id))
        return out

    def _approver(self, name: str) -> str:
        """The approver's name as given, trimmed; 400 when empty or over the limit."""
        name = (name or "").strip()
        if not name:
            raise AdminError(400, "approver is required")
        limit = self.config.text_limits.approver_max
        if len(name) > limit:
            raise AdminError(400, f"approver is {len(name)} characters; at most {limit} "
                                  f"are allowed ([text_limits] approver_max)")
        return name

    def _open_review(self, conn: Connection, review_id: int) -> Row[Any]:
        rev = self.store.review_row(conn, review_id, lock=True)
        if rev is None:
            raise AdminError(404, f"no review {review_id}")
        if rev.state != "pending_review":
            raise AdminError(409, f"review {review_id} is already {rev.state}")
        return rev

    def close(self) -> None:
        """Release the database connections."""
        with self._lock:
            self.engine.dispose()


# -- helpers --------------------------------------------------------------------------------


def same_person(name: str) -> str:
    """An approver's name as compared for the two-approver rule: NFKC-normalised and case
    folded (``ALICE``, ``alice`` and full-width ``ａｌｉｃｅ`` are one person)."""
    return unicodedata.normalize("NFKC", name).casefold()


def _chain_key(db_url: str, configured: str | None) -> ChainKey:
    """The chain key of ``db_url``, generated on first start (its path logged, never the key)."""
    path = key_path(db_url, configured)
    key, created = ensure_key(path)
    if created:
        log.warning("generated the ledger chain key %s (mode 0600): keep it, and back it up "
                    "apart from the database; without it the ledger cannot be verified", path)
    return key



def _kind(req: FinancialRequest) -> str:
    return {"AuthorizationRequest": "auth", "SaleRequest": "sale", "RefundRequest": "refund",
            "VoidRequest": "void", "CompletionAdvice": "completion"}.get(type(req).__name__,
                                                                         "financial")


def _totals_dict(totals: BatchTotals) -> dict[str, int]:
    return {"debits_count": totals.debits_count, "debits_minor": totals.debits_minor,
            "credits_count": totals.credits_count, "credits_minor": totals.credits_minor}
