"""The console's state as plain values, fed by stream events and admin answers; no I/O, no UI.

* :class:`Ladder` -- the message ladder: one :class:`Rung` per ISO message, oldest first;
* :class:`TAccounts` -- ledger accounts as T-accounts: the opening balance from the stream's
  ``hello`` (as of posting group ``ledger_head``), then each later ``posting`` event's legs with
  the running balance after it;
* :func:`refund_board` -- the life cycle of a sale's refund as :class:`Stage` s, from the admin
  API's transaction views and notifications.

Amounts stay in integer minor units here; :func:`money` formats them for the screen only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from host.calendar import CalendarError, calendar_for
from protocol.money import Money

LADDER_MAX = 1000
"""Rungs the ladder keeps (the oldest go first)."""
LINES_MAX = 8
"""Postings a T-account shows (the latest)."""

#: Accounts in the order the board of T-accounts shows them (others follow by name).
ACCOUNT_ORDER = ("merchant_payable", "scheme_settlement", "refunds_under_review", "fee_income")


def money(minor: int | None, currency: str | None) -> str:
    """``12.50 CNY`` (or the bare minor units when the currency is unknown)."""
    if minor is None:
        return ""
    if not currency:
        return str(minor)
    try:
        return str(Money(minor, currency))
    except ValueError:
        return f"{minor} {currency}"


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
            return f"holiday: {self.holiday}" if not self.business else \
                f"business ({self.holiday})"
        if self.business:
            return "make-up workday" if self.day.weekday() >= 5 else "business"
        return "weekend"


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
    return [Day(d, calendar.is_business_day(d), calendar.holiday_name(d)) for d in days]


# -- the refund life cycle ----------------------------------------------------------------------

DONE, CURRENT, WAITING, SKIPPED, FAILED = "done", "current", "waiting", "skipped", "failed"


@dataclass(frozen=True)
class Stage:
    """One stage of a refund's life: its title, state, simulated-clock time and a detail."""

    title: str
    state: str
    at: str = ""
    detail: str = ""


STAGE_TITLES = ("original verified", "refund requested", "review / approvals", "processed",
                "settled in batch", "posted to the card", "cardholder notified")


def refund_board(sale: Mapping[str, Any] | None, refund: Mapping[str, Any] | None,
                 notifications: Iterable[Mapping[str, Any]] = ()) -> list[Stage]:
    """The stages of ``refund`` (a ``GET /transactions/{rrn}`` view) of ``sale``; the first
    stage not reached yet is :data:`CURRENT`."""
    if sale is None:
        return []
    if refund is None:
        return [Stage(STAGE_TITLES[0], DONE if sale.get("response_code") == "00" else FAILED,
                      str(sale.get("at") or ""),
                      f"{sale.get('kind')} {money(sale.get('amount_minor'), sale.get('currency'))}"
                      f" {sale.get('capture_state')}; no refund yet")]
    amount = money(refund.get("amount_minor"), refund.get("currency"))
    approved = refund.get("response_code") == "00"
    stages: list[tuple[str, str, str]] = []  # (state, at, detail) per title
    refund_at = str(refund.get("at") or "")
    stages.append((DONE if approved else FAILED, refund_at,
                   f"sale {sale.get('rrn')} {money(sale.get('amount_minor'), sale.get('currency'))}"
                   f", card {sale.get('pan') or '-'}" if approved else
                   f"declined {refund.get('response_code')} {refund.get('rule') or ''}"))
    evidence = refund.get("evidence")
    stages.append((DONE, refund_at, f"{amount}, reason {refund.get('reason') or '-'}"
                   + (f", evidence {evidence}" if evidence else "")))
    review = refund.get("review")
    released_at = refund_at
    if not approved:
        stages.append((SKIPPED, "", ""))
    elif review is None:
        stages.append((SKIPPED, "", "not needed"))
    else:
        names = ", ".join(a.get("approver", "?") for a in review.get("approved_by") or [])
        count = f"{len(review.get('approved_by') or [])} of {review.get('approvals_needed')}"
        state = {"approved": DONE, "rejected": FAILED}.get(str(review.get("state")), WAITING)
        stages.append((state, str(review.get("decided") or review.get("created") or ""),
                       f"{review.get('state')}: {count} approvals" + (f" ({names})" if names
                                                                     else "")
                       + (f"; {review.get('reason')}" if review.get("reason") else "")))
        released_at = str(review.get("decided") or "")
        if state != DONE:
            approved = False
    processed = approved and refund.get("capture_state") in ("APPROVED", "CAPTURED")
    stages.append((DONE if processed else WAITING, released_at if processed else "",
                   f"{amount} back to {refund.get('pan') or sale.get('pan') or 'the card'}"))
    settled = refund.get("refund_settlement") or {}
    stages.append((DONE if settled else WAITING, str(settled.get("settlement_date") or ""),
                   f"settlement {settled.get('settlement_id')}" if settled else
                   f"batch {str(refund.get('settlement_state') or '').lower() or 'open'}"))
    posted = settled.get("state") == "posted"
    stages.append((DONE if posted else WAITING, str(settled.get("posted_at") or ""),
                   f"business day {settled.get('posting_date')}" if settled else ""))
    told = [n for n in notifications if n.get("event") == "refund_posted"]
    stages.append((DONE if told else WAITING, str(told[-1].get("at")) if told else "",
                   "refund_posted sent" if told else ""))
    out: list[Stage] = []
    current_set = False
    for title, (state, at, detail) in zip(STAGE_TITLES, stages, strict=True):
        if state == WAITING and not current_set and not any(s.state == FAILED for s in out):
            state, current_set = CURRENT, True
        out.append(Stage(title, state, at, detail))
    return out
