"""``check`` steps: compare the host's state, read through its admin API, with the scenario.

Amounts in a check are major-unit decimal strings; the admin API reports integer minor units
(``refunded_minor``) or decimal strings, and both compare. A key is looked up in the JSON
object itself and then one level down (``{"refund": {"state": ...}}``), so small changes in
how the host nests its answer do not break every scenario.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from protocol.codes import RuleId
from protocol.money import Money, currency

if TYPE_CHECKING:
    from scenarios.outcome import StepOutcome
    from scenarios.runner import Session
    from scenarios.schema import Check

AdminCall = Callable[..., Awaitable[Any]]
_AMOUNTS = ("refunded", "remaining", "amount")
_STATES = ("capture_state", "refund_state", "settlement_state", "reason")
_NOT_FOUND = object()


def find(data: Any, key: str) -> Any:
    """``data[key]`` or ``data[key + "_minor"]``, at the top or one level down."""
    if not isinstance(data, dict):
        return _NOT_FOUND
    for name in (key, f"{key}_minor"):
        if name in data:
            return data[name] if name == key else ("minor", data[name])
    for value in data.values():
        if isinstance(value, dict):
            found = find(value, key)
            if found is not _NOT_FOUND:
                return found
    return _NOT_FOUND


def amount_equal(found: Any, want: str, code: str) -> tuple[bool, str]:
    """Compare a found amount (minor int, ("minor", n), or decimal text) with ``want``."""
    exp = currency(code).exponent
    if isinstance(found, tuple):
        found = found[1]
        got = Decimal(int(found)).scaleb(-exp)
    elif isinstance(found, int) and not isinstance(found, bool):
        got = Decimal(found).scaleb(-exp)
    else:
        try:
            got = Decimal(str(found))
        except ArithmeticError:
            return False, str(found)
    return got == Decimal(want), Money(int(got.scaleb(exp)), currency(code).alpha).format()


@dataclass
class _Verdict:
    """What one check step expected and found, clause by clause, and whether all held."""

    ok: bool = True
    expected: list[str] = field(default_factory=list)
    actual: list[str] = field(default_factory=list)

    def add(self, good: bool, expected: str, actual: str) -> None:
        """Record one clause of the check."""
        self.ok &= good
        self.expected.append(expected)
        self.actual.append(actual)


async def run_check(session: Session, p: Check, result: StepOutcome, call: AdminCall) -> None:
    """Run one check step; raise StepFailed listing every mismatch."""
    from scenarios.runner import StepFailed

    verdict = _Verdict()
    if p.transaction:
        await _check_transaction(session, p, call, verdict)
    if p.ledger:
        await _check_ledger(session, call, verdict)
    if p.reviews is not None:
        await _check_reviews(session, p.reviews, call, verdict)
    if p.settlement:
        want_s = dict(p.settlement)
        date = want_s.pop("date", None)
        path = f"/settlements?date={date}" if date else "/settlements"
        verdict.add(*await _rows_check(session, call, path, "settlements", want_s,
                                       "settlement", p.settlement))
    if p.notification:
        want_n = dict(p.notification)
        if "kind" in want_n:  # the host calls it "event"; both spellings are accepted
            want_n["event"] = want_n.pop("kind")
        tx = want_n.pop("transaction", None)
        if tx is not None:
            want_n["rrn"] = session.journal[tx].rrn if tx in session.journal else tx
        verdict.add(*await _rows_check(session, call, "/notifications", "notifications",
                                       want_n, "notification", p.notification))
    result.expected, result.actual = "; ".join(verdict.expected), "; ".join(verdict.actual)
    if not verdict.ok:
        raise StepFailed(result.expected, result.actual)


async def _check_transaction(session: Session, p: Check, call: AdminCall,
                             verdict: _Verdict) -> None:
    """The ``transaction:`` clauses: amounts, states, rules, read from ``GET /transactions``."""
    assert p.transaction is not None
    ref = p.transaction
    rrn = session.journal[ref].rrn if ref in session.journal else ref
    data = await call(session, "GET", f"/transactions/{rrn}")
    code = _currency_of(data, session.target.currency)
    for key in _AMOUNTS:
        want = getattr(p, key)
        if want is not None:
            found = find(data, key)
            good, shown = amount_equal(found, want, code) if found is not _NOT_FOUND \
                else (False, "absent")
            verdict.add(good, f"{key} {want}", f"{key} {shown}")
    for key in _STATES:
        want = getattr(p, key)
        if want is not None:
            found = find(data, key)
            good = found is not _NOT_FOUND and str(found).lower() == want.lower()
            verdict.add(good, f"{key} {want}",
                        f"{key} {found if found is not _NOT_FOUND else 'absent'}")
    if p.state is not None:
        states = {str(v).lower() for k, v in _flat(data) if k == "state"
                  or k.endswith("_state")}
        verdict.add(p.state.lower() in states, f"state {p.state}",
                    f"states {', '.join(sorted(states)) or 'absent'}")
    if p.rule is not None:
        found = find(data, "rule")
        got = RuleId.parse(str(found)) if found not in (_NOT_FOUND, None) else None
        verdict.add(got is not None and got == RuleId.parse(p.rule), f"rule {p.rule}",
                    f"rule {got or 'none'}")
    if p.rules is not None:
        listed = find(data, "rules")
        if listed is _NOT_FOUND:
            listed = find(data, "rules_fired")
        fired = {str(r.get("rule") if isinstance(r, dict) else r).split(":")[0]
                 for r in (listed if isinstance(listed, list) else [])}
        verdict.add(set(p.rules) <= fired, f"checks run {', '.join(p.rules)}",
                    f"checks run {', '.join(sorted(fired)) or 'none'}")


def _currency_of(data: Any, default: str) -> str:
    """The transaction's currency letters, from its numeric or alpha code; else ``default``."""
    code = str(data.get("currency") or default) if isinstance(data, dict) else default
    try:
        return currency(code).alpha
    except ValueError:
        return default


async def _check_ledger(session: Session, call: AdminCall, verdict: _Verdict) -> None:
    """``ledger: true``: the host's own verification of its hash chain and balances."""
    data = await call(session, "GET", "/ledger/verify")
    good = isinstance(data, dict) and data.get("ok") is True
    if good:
        verdict.add(True, "ledger verified", "ledger verified")
        return
    violations = data.get("violations", []) if isinstance(data, dict) else data
    verdict.add(False, "ledger verified", f"ledger violations: {violations}")


async def _check_reviews(session: Session, want: dict[str, int], call: AdminCall,
                         verdict: _Verdict) -> None:
    """``reviews:``: how many reviews the host holds in each state."""
    data = await call(session, "GET", "/reviews")
    reviews = data.get("reviews", []) if isinstance(data, dict) else data or []
    counts: dict[str, int] = {}
    for review in reviews:
        state = str(review.get("state", "?"))
        counts[state] = counts.get(state, 0) + 1
    good = all(counts.get(state, 0) == n for state, n in want.items())
    verdict.add(good, f"reviews {dict(sorted(want.items()))}",
                f"reviews {dict(sorted(counts.items()))}")


async def _rows_check(session: Session, call: AdminCall, path: str, key: str,
                      want: dict[str, Any], noun: str, written: dict[str, Any]
                      ) -> tuple[bool, str, str]:
    """(ok, expected, actual) for "some row of ``GET path`` matches ``want``".

    ``absent: true`` in ``want`` turns it round: no row may match (e.g. "not posted yet").
    """
    absent = bool(want.pop("absent", False))
    shown_want = _show({k: v for k, v in written.items() if k != "absent"})
    data = await call(session, "GET", path)
    rows = data.get(key, data) if isinstance(data, dict) else data
    found, shown = _match_any(rows or [], want, session.target.currency)
    if absent:
        return not found, f"no {noun} with {shown_want}", "one found" if found else "none found"
    return found, f"a {noun} with {shown_want}", shown


def _flat(data: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append((str(k), v))
            if isinstance(v, dict):
                out.extend(_flat(v))
    return out


def _show(want: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in want.items())


def _match_any(rows: list[Any], want: dict[str, Any], code: str) -> tuple[bool, str]:
    """True when some row has every wanted key; else a summary of the rows."""
    for row in rows:
        if all(_value_matches(row, k, v, code) for k, v in want.items()):
            return True, "found"
    summary = [{k: row.get(k, row.get(f"{k}_minor")) for k in want} for row in rows[:5]
               if isinstance(row, dict)]
    return False, f"{len(rows)} rows, none matching; first: {summary}"


def _value_matches(row: Any, key: str, want: Any, code: str) -> bool:
    found = find(row, key)
    if found is _NOT_FOUND:
        return False
    if isinstance(found, tuple) or (isinstance(want, str) and _is_decimal(want)
                                    and not isinstance(found, str)):
        row_code = row.get("currency", code) if isinstance(row, dict) else code
        try:
            return amount_equal(found, str(want), str(row_code))[0]
        except ValueError:
            return False
    return str(found).lower() == str(want).lower()


def _is_decimal(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True
