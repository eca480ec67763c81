"""The console's state as plain values, fed by stream events and admin answers; no I/O, no UI.

* :class:`Ladder` -- the message ladder: one :class:`Rung` per ISO message, oldest first;
* :class:`TAccounts` -- ledger accounts as T-accounts: the opening balance from the stream's
  ``hello`` (as of posting group ``ledger_head``, the position in the host's ledger chain), then
  each later ``posting`` event's legs with the running balance after it (group ids compare
  within that one chain, the only one the host streams);
* :func:`refund_board` -- the life cycle of a sale's refund as :class:`Stage` s, from the admin
  API's transaction views and notifications.

Amounts stay in integer minor units here; :func:`money` formats them for the screen only, with
the currency's ISO 4217 letters (the wire's DE49 is numeric). Texts for people are in the
language in use (:mod:`protocol.i18n`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from host.console.words import fee_policy_word, kind_word, review_state
from host.event_stream import txn_type
from host.settlement.calendar import CalendarError, calendar_for
from protocol import describe_fields
from protocol.i18n import CHINESE, N_, _, current
from protocol.money import Money
from protocol.money import currency as find_currency

LADDER_MAX = 1000
"""Rungs the ladder keeps (the oldest go first)."""
LINES_MAX = 8
"""Postings a T-account shows (the latest)."""

#: Accounts in the order the board of T-accounts shows them (others follow by name).
ACCOUNT_ORDER = ("merchant_payable", "scheme_settlement", "refunds_under_review",
                 "acquirer_fee_income")


def money(minor: int | None, code: str | None) -> str:
    """``12.50 USD`` for ``code`` ``USD`` or ``840`` (minor units by the currency's exponent);
    the bare minor units when there is no currency, the code as given when it is unknown."""
    if minor is None:
        return ""
    if not code:
        return str(minor)
    try:
        return str(Money(minor, find_currency(code).alpha))
    except ValueError:
        return f"{minor} {code}"


@dataclass(frozen=True)
class Rung:
    """One message on the ladder (a ``message`` event)."""

    id: int
    at: str
    direction: str
    mti: str
    txn_type: str
    amount: str
    rc: str
    rule: str
    tid: str
    stan: str
    rrn: str
    pan: str
    fields: tuple[tuple[str, str, str, str], ...]
    recorded: bool = False
    """Read back from the host's transaction record, not seen live (see :meth:`from_record`)."""

    @classmethod
    def from_event(cls, event_id: int, data: Mapping[str, Any]) -> Rung:
        """Build from a ``message`` event's data."""
        return cls(
            id=event_id, at=str(data.get("at") or ""), direction=str(data.get("direction")),
            mti=str(data.get("mti") or ""), txn_type=str(data.get("txn_type") or ""),
            amount=money(data.get("amount_minor"), data.get("currency")),
            rc=str(data.get("rc") or ""), rule=str(data.get("rule") or ""),
            tid=str(data.get("tid") or ""), stan=str(data.get("stan") or ""),
            rrn=str(data.get("rrn") or ""), pan=str(data.get("pan") or ""),
            fields=tuple(tuple(str(x) for x in f[:4]) for f in data.get("fields") or ()  # type: ignore[misc]
                         if len(f) >= 4))

    @classmethod
    def from_record(cls, rung_id: int, txn: Mapping[str, Any], direction: str) -> Rung:
        """The request (``in``) or answer (``out``) of a transaction the host recorded before
        the console attached (a ``GET /transactions`` row): the ladder's backfill. The host
        keeps the transaction, not the message, so the field view shows the recorded fields."""
        request = str(txn.get("mti") or "")
        answer = direction == "out"
        mti = _answer_mti(request) if answer else request
        fields = {"t": mti, "3": str(txn.get("processing_code") or ""),
                  "11": str(txn.get("stan") or ""), "41": str(txn.get("terminal_id") or ""),
                  "42": str(txn.get("merchant_id") or "")}
        if txn.get("pan"):
            fields["2"] = str(txn["pan"])  # masked by the host; describe_fields keeps it so
        if txn.get("amount_minor") is not None and txn.get("currency"):
            try:
                fields["49"] = find_currency(str(txn["currency"])).numeric
                fields["4"] = f"{int(txn['amount_minor']):012d}"
            except ValueError:
                pass
        if answer:
            fields.update({k: str(v) for k, v in (("37", txn.get("rrn")),
                                                  ("38", txn.get("approval_code")),
                                                  ("39", txn.get("response_code")),
                                                  ("44", txn.get("rule"))) if v})
        return cls(
            id=rung_id, at=str(txn.get("at") or ""), direction=direction, mti=mti,
            txn_type=txn_type(request, fields["3"]),
            amount=money(txn.get("amount_minor"), txn.get("currency")),
            rc=str(txn.get("response_code") or "") if answer else "",
            rule=str(txn.get("rule") or "") if answer else "",
            tid=fields["41"], stan=fields["11"],
            rrn=str(txn.get("rrn") or "") if answer else "", pan=str(txn.get("pan") or ""),
            fields=tuple((f.key, f.name, f.value, f.meaning)
                         for f in describe_fields({k: v for k, v in fields.items() if v})),
            recorded=True)

    @property
    def arrow(self) -> str:
        """``T ──▶ H`` for a request, ``T ◀── H`` for an answer."""
        return "T ──▶ H" if self.direction == "in" else "T ◀── H"


class Ladder:
    """The message ladder, bounded to :data:`LADDER_MAX` rungs."""

    def __init__(self, most: int = LADDER_MAX) -> None:
        self.rungs: deque[Rung] = deque(maxlen=most)

    def add(self, event_id: int, data: Mapping[str, Any]) -> Rung:
        """Append the rung of a ``message`` event."""
        rung = Rung.from_event(event_id, data)
        self.rungs.append(rung)
        return rung

    def by_id(self, event_id: int) -> Rung | None:
        """The rung of event ``event_id``, if still kept."""
        return next((r for r in self.rungs if r.id == event_id), None)

    def backfill(self, transactions: Iterable[Mapping[str, Any]]) -> list[Rung]:
        """Put the messages of ``transactions`` (``GET /transactions`` rows, newest first)
        before the live ones, oldest first, skipping any the stream already delivered (a
        message sent while the console attached); the rungs added. Their ids are negative,
        so they never meet an event id."""
        seen = {(r.tid, r.stan, r.direction) for r in self.rungs}
        older: list[Rung] = []
        for txn in reversed(list(transactions)):
            for direction in ("in", "out"):
                rung = Rung.from_record(-1 - len(older), txn, direction)
                if (rung.tid, rung.stan, direction) not in seen:
                    older.append(rung)
        most = self.rungs.maxlen
        self.rungs = deque([*older, *self.rungs][-most:] if most else [*older, *self.rungs],
                           maxlen=most)
        return older


def _answer_mti(request: str) -> str:
    """``0200`` -> ``0210``, ``0401`` -> ``0410``: the answer's function digit, origin 0."""
    if len(request) != 4 or not request.isdigit() or request[2] == "9":
        return request
    return f"{request[:2]}{int(request[2]) + 1}0"


@dataclass(frozen=True)
class Line:
    """One leg on a T-account: which side, how much, and the balance after it."""

    group: int
    kind: str
    side: str
    amount_minor: int
    balance_minor: int
    rrn: str | None = None


@dataclass
class TAccount:
    """One account in one currency: opening balance, recent lines, running balance (net
    debit: debits minus credits)."""

    account: str
    currency: str
    opening_minor: int = 0
    balance_minor: int = 0
    lines: deque[Line] = field(default_factory=lambda: deque(maxlen=LINES_MAX))

    @property
    def debits(self) -> list[Line]:
        """The shown debit lines."""
        return [line for line in self.lines if line.side == "D"]

    @property
    def credits(self) -> list[Line]:
        """The shown credit lines."""
        return [line for line in self.lines if line.side == "C"]


class TAccounts:
    """T-accounts built from the stream: ``hello`` balances, then ``posting`` events after
    ``ledger_head`` (postings that arrive before the ``hello`` wait for it)."""

    def __init__(self) -> None:
        self.accounts: dict[tuple[str, str], TAccount] = {}
        self.head: int | None = None
        self._early: list[Mapping[str, Any]] = []

    def hello(self, balances: Mapping[str, Mapping[str, int]], head: int) -> None:
        """Start over from ``balances`` as of posting group ``head``."""
        self.accounts.clear()
        self.head = head
        for account, per in balances.items():
            for currency, minor in per.items():
                self.accounts[(account, currency)] = TAccount(account, currency, int(minor),
                                                              int(minor))
        early, self._early = self._early, []
        for data in early:
            self.post(data)

    def post(self, data: Mapping[str, Any]) -> bool:
        """Apply one ``posting`` event; False when the opening balances already hold it."""
        if self.head is None:
            self._early.append(data)
            return False
        group = int(data["group"])
        if group <= self.head:
            return False
        currency = str(data["currency"])
        for leg in data.get("entries") or ():
            key = (str(leg["account"]), currency)
            acct = self.accounts.get(key) or TAccount(key[0], currency)
            self.accounts[key] = acct
            amount = int(leg["amount_minor"])
            acct.balance_minor += amount if leg["side"] == "D" else -amount
            acct.lines.append(Line(group, str(data.get("kind") or ""), str(leg["side"]), amount,
                                   acct.balance_minor, data.get("rrn")))
        self.head = group
        return True

    def ordered(self) -> list[TAccount]:
        """Accounts in :data:`ACCOUNT_ORDER`, then by name."""
        def rank(acct: TAccount) -> tuple[int, str, str]:
            base = acct.account.split(":", 1)[0]
            order = ACCOUNT_ORDER.index(base) if base in ACCOUNT_ORDER else len(ACCOUNT_ORDER)
            return order, acct.account, acct.currency

        return sorted(self.accounts.values(), key=rank)


@dataclass(frozen=True)
class ChainStatus:
    """The ledger hash chain as last checked: ``state`` (``unchecked``, ``verified``,
    ``broken`` or ``unknown``) and ``text``, what the console shows."""

    state: str
    text: str

    @classmethod
    def unchecked(cls) -> ChainStatus:
        """Before the first check."""
        return cls("unchecked", _("not checked yet"))

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> ChainStatus:
        """From a ``GET /ledger/verify`` answer: verified, or broken with the first violated
        invariant."""
        violations = list(report.get("violations") or [])
        if report.get("ok") and not violations:
            return cls("verified", _("verified"))
        first = (violations[0] or {}).get("invariant", "?") if violations else "?"
        return cls("broken", _("BROKEN: {count} violation(s), first: {invariant}").format(
            count=len(violations), invariant=first))

    @classmethod
    def unknown(cls, why: str) -> ChainStatus:
        """The check could not be made (``why``: the host's message)."""
        return cls("unknown", _("unknown ({why})").format(why=why))


# -- the calendar ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Day:
    """One calendar day of a merchant: business day or not, and the holiday's name."""

    day: date
    business: bool
    holiday: str | None = None

    @property
    def label(self) -> str:
        """``business``, ``weekend``, ``holiday: <name>`` or ``make-up workday``."""
        if self.holiday:
            return _("holiday: {name}").format(name=self.holiday) if not self.business else \
                _("business ({name})").format(name=self.holiday)
        if self.business:
            return _("make-up workday") if self.day.weekday() >= 5 else _("business")
        return _("weekend")

    @property
    def weekday(self) -> str:
        """``Mon`` ... ``Sun`` in the language in use."""
        return _(WEEKDAYS[self.day.weekday()])


WEEKDAYS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))


def calendar_days(merchant: Mapping[str, Any], now_iso: str, count: int = 7) -> list[Day]:
    """``count`` days from the merchant's local date at ``now_iso``, from the same ``holidays``
    tables the host uses (``merchant``: the stream's ``country``, ``subdivision``, ``timezone``);
    empty when the country or the instant is unknown."""
    try:
        calendar = calendar_for(str(merchant.get("country")), merchant.get("subdivision"))
        local = datetime.fromisoformat(now_iso).astimezone(ZoneInfo(str(merchant["timezone"])))
    except (CalendarError, KeyError, ValueError):
        return []
    days = [local.date() + timedelta(days=n) for n in range(count)]
    names = _chinese_holidays(calendar.country, calendar.subdivision) \
        if current() == CHINESE else None
    return [Day(d, calendar.is_business_day(d),
                names.get(d) if names is not None and d in names else calendar.holiday_name(d))
            for d in days]


@lru_cache(maxsize=16)
def _chinese_holidays(country: str, subdivision: str | None) -> holidays.HolidayBase | None:
    """The ``holidays`` package's own Simplified Chinese names for the country's holidays
    (春节 rather than Spring Festival), where it has them; None where it has not."""
    try:
        found = holidays.country_holidays(country, subdiv=subdivision)
        if "zh_CN" not in (found.supported_languages or ()):
            return None
        return holidays.country_holidays(country, subdiv=subdivision, language="zh_CN")
    except NotImplementedError:
        return None


# -- the refund life cycle ----------------------------------------------------------------------

DONE, CURRENT, WAITING, SKIPPED, FAILED = "done", "current", "waiting", "skipped", "failed"


@dataclass(frozen=True)
class Stage:
    """One stage of a refund's life: its title, state, simulated-clock time and a detail."""

    title: str
    state: str
    at: str = ""
    detail: str = ""


STAGE_TITLES = (N_("original verified"), N_("refund requested"), N_("review / approvals"),
                N_("processed"), N_("settled in batch"), N_("posted to the card"),
                N_("cardholder notified"))

_StageRow = tuple[str, str, str]  # (state, at, detail) of one stage, before its title


def refund_board(sale: Mapping[str, Any] | None, refund: Mapping[str, Any] | None,
                 notifications: Iterable[Mapping[str, Any]] = ()) -> list[Stage]:
    """The stages of ``refund`` (a ``GET /transactions/{rrn}`` view) of ``sale``; the first
    stage not reached yet is :data:`CURRENT`."""
    if sale is None:
        return []
    sale_amount = money(sale.get("amount_minor"), sale.get("currency"))
    if refund is None:
        return [Stage(_(STAGE_TITLES[0]), DONE if sale.get("response_code") == "00" else FAILED,
                      str(sale.get("at") or ""),
                      _("{kind} {amount} {state}; no refund yet").format(
                          kind=kind_word(str(sale.get("kind"))), amount=sale_amount,
                          state=sale.get("capture_state")))]
    amount = money(refund.get("amount_minor"), refund.get("currency"))
    approved = refund.get("response_code") == "00"
    stages: list[_StageRow] = []
    refund_at = str(refund.get("at") or "")
    stages.append((DONE if approved else FAILED, refund_at,
                   _("sale {rrn} {amount}, card {card}").format(
                       rrn=sale.get("rrn"), amount=sale_amount, card=sale.get("pan") or "-")
                   if approved else
                   _("declined {code} {rule}").format(code=refund.get("response_code"),
                                                      rule=refund.get("rule") or "").strip()))
    evidence = refund.get("evidence")
    stages.append((DONE, refund_at,
                   _("{amount}, reason {reason}").format(amount=amount,
                                                         reason=refund.get("reason") or "-")
                   + (_(", evidence {evidence}").format(evidence=evidence) if evidence else "")))
    review_stage, released_at, approved = _review_stage(refund.get("review"), approved,
                                                        refund_at)
    stages.append(review_stage)
    processed = approved and refund.get("capture_state") in ("APPROVED", "CAPTURED")
    stages.append((DONE if processed else WAITING, released_at if processed else "",
                   _("{amount} back to {card}").format(
                       amount=amount, card=refund.get("pan") or sale.get("pan")
                       or _("the card")) + _refund_fee(refund)))
    stages.extend(_money_stages(refund, notifications))
    out: list[Stage] = []
    current_set = False
    for title, (state, at, detail) in zip(STAGE_TITLES, stages, strict=True):
        if state == WAITING and not current_set and not any(s.state == FAILED for s in out):
            state, current_set = CURRENT, True
        out.append(Stage(_(title), state, at, detail))
    return out



def _review_stage(review: Mapping[str, Any] | None, approved: bool, refund_at: str
                  ) -> tuple[_StageRow, str, bool]:
    """The review stage, when the money was released, and whether it was (a refund waiting
    for or refused its approvals is not released)."""
    if not approved:
        return (SKIPPED, "", ""), refund_at, False
    if review is None:
        return (SKIPPED, "", _("not needed")), refund_at, True
    names = ", ".join(a.get("approver", "?") for a in review.get("approved_by") or [])
    state = {"approved": DONE, "rejected": FAILED}.get(str(review.get("state")), WAITING)
    row = (state, str(review.get("decided") or review.get("created") or ""),
           _("{state}: {got} of {needed} approvals").format(
               state=review_state(str(review.get("state"))),
               got=len(review.get("approved_by") or []),
               needed=review.get("approvals_needed"))
           + (f" ({names})" if names else "")
           + (f"; {review.get('reason')}" if review.get("reason") else ""))
    return row, str(review.get("decided") or ""), state == DONE


def _money_stages(refund: Mapping[str, Any], notifications: Iterable[Mapping[str, Any]]
                  ) -> list[_StageRow]:
    """Settled in a batch, posted to the card, cardholder notified."""
    settled = refund.get("refund_settlement") or {}
    told = [n for n in notifications if n.get("event") == "refund_posted"]
    return [
        (DONE if settled else WAITING, str(settled.get("settlement_date") or ""),
         _("settlement {id}").format(id=settled.get("settlement_id")) if settled else
         _("batch closed, settling") if refund.get("settlement_state") == "CLOSED_BATCH"
         else _("batch open")),
        (DONE if settled.get("state") == "posted" else WAITING,
         str(settled.get("posted_at") or ""),
         _("business day {date}").format(date=settled.get("posting_date")) if settled else ""),
        (DONE if told else WAITING, str(told[-1].get("at")) if told else "",
         _("refund_posted sent") if told else ""),
    ]


def _refund_fee(refund: Mapping[str, Any]) -> str:
    """``, fee 0.30 USD (per-refund fee)``: the refund's own fee in the settlement, signed as
    the settlement applies it (negative: given back to the merchant); empty when the host
    sent none."""
    if refund.get("fee_minor") is None:
        return ""
    return _(", fee {fee} ({policy})").format(
        fee=money(refund["fee_minor"], refund.get("currency")),
        policy=fee_policy_word(str(refund.get("fee_policy") or "")))
