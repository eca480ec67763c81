"""Run scenarios: build each step's message, send it like a terminal, compare, record.

One :class:`Session` per scenario drives the terminal's own sans-IO
:class:`~terminal.session.TerminalSession` -- one per terminal the scenario speaks as -- so a
scenario builds requests, journals them, reverses them and totals its batch exactly as
``poslab-terminal`` does. The runner adds what a terminal does not have: the simulated time
(the scenario's clock start, moved by ``advance``), step ids for ``original:`` references and
a judge for every answer. A step that fails stops its scenario; the rest is reported as not
run.

Determinism: the seed (``--seed``, else the scenario's ``seed:``, else a hash of its name)
fixes the STANs; the clock start fixes every timestamp; a fresh host per scenario fixes the
rest. The same seed replays the same bytes.

Profiles: the scenario's terminal speaks ``terminal.profile`` (``run --profile`` wins); on the
China UnionPay profile the steps go through :mod:`scenarios.cup_steps`. A scenario or step whose
``profiles:`` leaves out the profile in use is reported as skipped with the reason.

Timeouts: a step expecting an answer waits up to :data:`ANSWER_WAIT_S`; a step with ``expect:
{timeout: true}`` waits the scenario's ``timeout_s`` and then the terminal session reverses it
(0400, then up to :data:`REVERSAL_REPEATS` 0401 repeats while unacknowledged).
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from protocol import Codec, ProtocolError, RuleId, response_text
from protocol.codes import EntryMode, NetworkCode, RefundReason
from protocol.masking import Pan, Track2
from protocol.messages import (
    BatchTotals,
    CardData,
    FinancialResponse,
    Message,
    NetworkResponse,
    ReversalRequest,
    parse_response,
)
from protocol.money import Money
from protocol.money import currency as find_currency
from protocol.private_data import decode_remaining
from scenarios import admin as admin_api
from scenarios import cup_steps, schema, security_steps
from scenarios.admin import AdminCallError, AdminError
from scenarios.loader import Loaded
from scenarios.outcome import Exchange, ScenarioOutcome, StepOutcome
from scenarios.targets import Target, TargetError
from scenarios.wire import AnswerMacFailed, IsoClient, WireError
from terminal.cards import Card
from terminal.config import TerminalConfig
from terminal.cup_session import CupSession, is_cup
from terminal.flow import Draft, Original
from terminal.journal import Journal, TxnKind
from terminal.journal import Txn as Line
from terminal.security.state import SecurityUnavailable, SignOnKeyError, TerminalSecurity
from terminal.session import TerminalSession

Fields = dict[str, str]
DEFAULT_START = datetime(2026, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=8)))  # a Monday
ANSWER_WAIT_S = 10.0
REVERSAL_REPEATS = 3
M = TypeVar("M", bound=BaseModel)
_ENTRY = {"manual": EntryMode.MANUAL, "swipe": EntryMode.SWIPE, "chip": EntryMode.CHIP,
          "contactless": EntryMode.CONTACTLESS}
_NET = {"echo": NetworkCode.ECHO, "sign_on": NetworkCode.SIGN_ON, "sign_off": NetworkCode.SIGN_OFF}
_KIND_CODE = {"sale": "000000", "authorize": "000000", "refund": "200000", "void": "020000"}


class StepFailed(Exception):
    """The step's expectation did not hold (``expected`` vs ``actual``)."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"expected {expected}; got {actual}")
        self.expected = expected
        self.actual = actual


class StepSkipped(Exception):
    """The step cannot run against this host (no admin API, endpoint missing)."""


class ScenarioBroken(Exception):
    """The scenario refers to something that does not exist (unknown card name, ...)."""


@dataclass
class Txn:
    """A transaction a scenario step sent: the terminal's journal line plus what the runner
    needs to refer to it again (the full card for a refund, the request and answer fields).

    :ivar terminal: the session that sent it (its journal holds :attr:`line`).
    :ivar cup: on the CUP profile, the CUP session wrapping :attr:`terminal`.
    """

    kind: str
    request: Fields
    response: Fields | None
    amount: Money
    pan: str
    expiry: str
    terminal: TerminalSession
    line: Line
    cup: CupSession | None = None

    @property
    def rrn(self) -> str | None:
        """The host's reference (DE37 of the answer)."""
        return self.response.get("37") if self.response else None

    @property
    def stan(self) -> str:
        """The request's trace number."""
        return self.request["11"]

    @property
    def effective(self) -> bool:
        """Approved and neither voided nor reversed, as the terminal's journal says."""
        return self.line.effective


def seed_for(loaded: Loaded, override: int | None) -> int:
    """The seed a scenario runs with: --seed, else its ``seed:``, else a hash of its name."""
    if override is not None:
        return override
    if loaded.scenario.seed is not None:
        return loaded.scenario.seed
    return zlib.crc32(loaded.name.encode()) % 1_000_000


@dataclass
class Session:
    """One scenario's run against one target."""

    loaded: Loaded
    target: Target
    seed: int
    codec: Codec
    now: datetime
    client: IsoClient
    journal: dict[str, Txn] = field(default_factory=dict)
    terminals: dict[tuple[str, str], TerminalSession] = field(default_factory=dict)
    #: the scenario terminal's keys (``terminal.tmk`` / ``terminal.dukpt``), None without
    security: TerminalSecurity | None = None
    pace: Pace | None = None
    #: the CUP sessions wrapping :attr:`terminals`, by the id of the terminal session
    cup_sessions: dict[int, CupSession] = field(default_factory=dict)

    @property
    def scenario(self) -> schema.Scenario:
        """The scenario being run."""
        return self.loaded.scenario

    @property
    def profile(self) -> str:
        """The wire profile the scenario's terminal speaks."""
        return self.scenario.terminal.profile

    @property
    def cup(self) -> bool:
        """True on the China UnionPay profile (:mod:`scenarios.cup_steps`)."""
        return is_cup(self.profile)

    def terminal(self, tid: str | None = None, mid: str | None = None) -> TerminalSession:
        """The terminal session that speaks as ``tid``/``mid`` (default: the scenario's).

        Each starts its STANs at a point fixed by the seed (the scenario's own terminal at
        the same point as ever) and stamps messages with the scenario's simulated time.
        """
        key = (tid or self.target.tid, mid or self.target.mid)
        found = self.terminals.get(key)
        if found is None:
            first = key == (self.target.tid, self.target.mid)
            rng = random.Random(self.seed if first else f"{self.seed}/{key[0]}/{key[1]}")
            config = TerminalConfig(
                profile=self.scenario.terminal.profile, terminal_id=key[0],
                merchant_id=key[1], currency=self.target.currency,
                timeout_s_response=self.scenario.timeout_s, reversal_repeats=REVERSAL_REPEATS)
            found = TerminalSession(config, Journal.in_memory(rng.randrange(1, 900_000) + 1),
                                    clock=lambda: self.now,
                                    security=self.security if first else None)
            self.terminals[key] = found
        return found

    def transmitted_at(self) -> str:
        """DE7 (UTC) from the session's clock."""
        return self.now.astimezone(UTC).strftime("%m%d%H%M%S")

    def card(self, ref: str) -> tuple[str, str]:
        """(PAN, expiry) for a PAN or a deck card name."""
        if ref.isdigit() and 12 <= len(ref) <= 19:
            found = next((c for c in self.target.cards.values() if c.pan == ref), None)
            return ref, found.expiry if found else "3012"
        card = self.target.cards.get(ref.lower())
        if card is None:
            names = ", ".join(sorted(c.name for c in self.target.cards.values())) or "none"
            raise ScenarioBroken(f"unknown card {ref!r}: give a PAN or a deck name ({names})")
        return card.pan, card.expiry

    def money(self, amount: str, code: str | None) -> Money:
        """Parse a major-unit amount in ``code`` (default: the terminal's currency)."""
        cur = code or self.target.currency
        try:
            return Money.parse(amount, find_currency(cur).alpha)
        except ValueError as exc:
            raise ScenarioBroken(str(exc)) from None

    def original(self, ref: str | None) -> Txn:
        """The journal entry of the step ``ref``."""
        if ref is None or ref not in self.journal:
            raise ScenarioBroken(f"step {ref!r} sent no transaction to refer to")
        return self.journal[ref]


def card_data(pan: str, expiry: str, entry: str) -> CardData:
    """What a reader produces for the card in the given entry mode."""
    mode = _ENTRY[entry]
    if mode is EntryMode.SWIPE:
        return CardData(entry_mode=mode, track2=Track2(f"{pan}={expiry}1010000000000"))
    return CardData(entry_mode=mode, pan=Pan(pan), expiry=expiry)


# -- running ------------------------------------------------------------------------------
TargetFactory = Callable[[schema.Scenario, datetime], Any]  # async -> Target


class Pace(Protocol):
    """Lesson mode's hold on the run (:mod:`scenarios.lesson`): called around each step."""

    async def start(self, session: Session) -> None:
        """Before the first step (the session's target is up)."""

    async def before(self, session: Session, index: int, step: schema.Step) -> None:
        """Before step ``index`` (0-based) is sent."""

    def after(self, step: schema.Step, result: StepOutcome) -> None:
        """Once the step ran."""


async def run_scenario(loaded: Loaded, make_target: TargetFactory,
                       seed: int | None = None, pace: Pace | None = None) -> ScenarioOutcome:
    """Run one scenario on a target made for it; never raises for scenario problems."""
    scenario = loaded.scenario
    used_seed = seed_for(loaded, seed)
    outcome = ScenarioOutcome(scenario.name, loaded.where, used_seed, list(scenario.tags))
    started = time.monotonic()
    start = scenario.clock.start if scenario.clock else DEFAULT_START
    target: Target | None = None
    if scenario.profiles is not None and scenario.terminal.profile not in scenario.profiles:
        outcome.status = "skipped"
        outcome.error = _not_for(scenario.terminal.profile, scenario.profiles, "scenario")
        lines = loaded.step_lines or tuple(0 for _ in scenario.steps)
        outcome.steps = [StepOutcome(n + 1, step.label, lines[n], status="skipped",
                                     actual=outcome.error)
                         for n, step in enumerate(scenario.steps)]
        return outcome
    if is_cup(scenario.terminal.profile) and scenario.terminal.dukpt:
        outcome.status = "error"
        outcome.error = str(cup_steps.not_on_cup(cup_steps.NO_DUKPT))
        return outcome
    try:
        target = await make_target(scenario, start)
        codec = Codec(scenario.terminal.profile)
        session = Session(loaded, target, used_seed, codec, start,
                          IsoClient(target.iso_host, target.iso_port, codec, tls=target.tls),
                          security=security_steps.build_security(scenario, codec), pace=pace)
        session.client.link.guard = security_steps.guard_for(session.security, codec)
        if pace is not None:
            await pace.start(session)
        await _run_steps(session, outcome)
    except TargetError as exc:
        outcome.status, outcome.error = "error", f"cannot set up the host: {exc}"
    except (WireError, OSError) as exc:
        outcome.status, outcome.error = "error", f"cannot reach the host: {exc}"
    finally:
        if target is not None:
            try:
                await target.close()
            except Exception as exc:  # report, do not mask the scenario's own outcome
                outcome.error = outcome.error or f"stopping the host failed: {exc}"
    outcome.duration_s = time.monotonic() - started
    return outcome


def _not_for(profile: str, profiles: list[str], what: str) -> str:
    """Why a scenario or step declared for other profiles does not run on ``profile``."""
    return (f"not on the {profile} profile: the file declares this {what} for "
            f"{', '.join(profiles)} only")


async def _run_steps(session: Session, outcome: ScenarioOutcome) -> None:
    steps = session.scenario.steps
    lines = session.loaded.step_lines or tuple(0 for _ in steps)
    try:
        for index, step in enumerate(steps):
            result = StepOutcome(index + 1, step.label, lines[index])
            outcome.steps.append(result)
            if step.profiles is not None and session.profile not in step.profiles:
                # not played in a lesson either: nothing is said or sent
                result.status = "skipped"
                result.actual = _not_for(session.profile, step.profiles, "step")
                continue
            if session.pace is not None:
                await session.pace.before(session, index, step)
            try:
                await _STEPS[step.verb](session, step, result)
            except StepFailed as exc:
                result.status, result.expected, result.actual = "failed", exc.expected, exc.actual
            except StepSkipped as exc:
                result.status, result.actual = "skipped", str(exc)
            except ScenarioBroken as exc:
                result.status, result.actual = "error", str(exc)
            except (WireError, AdminError) as exc:
                result.status, result.actual = "failed", str(exc)
                result.expected = result.expected or "an answer"
            if session.pace is not None:
                session.pace.after(step, result)
            if result.status in ("failed", "error"):
                outcome.status = result.status
                for later in range(index + 1, len(steps)):
                    outcome.steps.append(StepOutcome(later + 1, steps[later].label, lines[later],
                                                     status="not run"))
                return
    finally:
        session.client.close()


def _expect(step: schema.Step) -> schema.Expect:
    return step.expect or schema.Expect(response="00")


def _describe_answer(fields: Fields) -> str:
    rc = fields.get("39", "??")
    text = f"response {rc} ({response_text(rc)})"
    if "44" in fields:
        text += f", rule {fields['44']}"
    return text


def _expected_text(expect: schema.Expect) -> str:
    if expect.timeout:
        return "no answer (timeout), then the reversal answered " + expect.reversal
    if expect.closed:
        return "the host closes the connection"
    parts = []
    if expect.response:
        parts.append(f"response {expect.response} ({response_text(expect.response)})")
    if expect.rule:
        parts.append(f"rule {expect.rule}")
    if expect.remaining:
        parts.append(f"remaining {expect.remaining}")
    if expect.approval_code is not None:
        parts.append("an approval code" if expect.approval_code else "no approval code")
    for key, value in (expect.fields or {}).items():
        parts.append(f"DE{key}={value}")
    return ", ".join(parts) or "any answer"


def check_answer(expect: schema.Expect, fields: Fields) -> None:
    """Raise :class:`StepFailed` unless ``fields`` (a response) meets ``expect``."""
    wrong = []
    if expect.response and fields.get("39") != expect.response:
        wrong.append("response")
    if expect.rule:
        got = RuleId.parse(fields.get("44", ""))
        if got is None or got.value != RuleId.parse(expect.rule):
            wrong.append("rule")
    if expect.remaining:
        remaining = decode_remaining(fields.get("54", ""))
        if remaining is None or remaining.major != Decimal(expect.remaining):
            wrong.append("remaining")
    if expect.approval_code is not None and ("38" in fields) != expect.approval_code:
        wrong.append("approval code")
    for key, value in (expect.fields or {}).items():
        if fields.get(key) != value:
            wrong.append(f"DE{key}")
    if wrong:
        actual = _describe_answer(fields)
        if "remaining" in wrong:
            remaining = decode_remaining(fields.get("54", ""))
            actual += f", remaining {remaining.format() if remaining else 'absent'}"
        for key in (expect.fields or {}):
            actual += f", DE{key}={fields.get(key, 'absent')}"
        raise StepFailed(_expected_text(expect), actual)


async def exchange(session: Session, result: StepOutcome, message: Message | Fields,
                   expect: schema.Expect, label: str, txn: Txn | None = None) -> Fields | None:
    """Send one request and judge the answer (or its absence) against ``expect``.

    With ``txn`` (a financial request its terminal journalled) the answer, or its absence
    and the reversal that follows, is recorded in the terminal's journal.
    """
    fields = message.to_fields() if isinstance(message, Message) else message
    if session.cup:
        expect = cup_steps.spelled_on_cup(expect)
    record = Exchange(label, request=fields)
    result.exchanges.append(record)
    result.expected = _expected_text(expect)
    try:
        payload = session.codec.encode(fields)
    except ProtocolError as exc:
        raise ScenarioBroken(f"cannot encode the {label}: {exc}") from None
    wait = session.scenario.timeout_s if expect.timeout else ANSWER_WAIT_S
    try:
        answer = await session.client.send_and_wait(payload, fields, wait)
    except AnswerMacFailed as exc:
        raise StepFailed(_expected_text(expect), str(exc)) from None
    except WireError:
        if expect.closed:
            record.note = "connection closed by the host"
            return None
        raise StepFailed(_expected_text(expect), "the host closed the connection") from None
    record.response = answer
    if answer is not None:
        result.rule = answer.get("44")
        result.actual = _describe_answer(answer)
        if txn is not None:
            _answered(txn, answer)
    if expect.timeout:
        if answer is not None:
            raise StepFailed(_expected_text(expect), _describe_answer(answer))
        await reverse_after_timeout(session, result, txn, expect.reversal)
        return None
    if expect.closed:
        closed = answer is None and await session.client.wait_closed(ANSWER_WAIT_S)
        if not closed:
            got = _describe_answer(answer) if answer else "no answer, connection still open"
            raise StepFailed(_expected_text(expect), got)
        return None
    if answer is None:
        await reverse_after_timeout(session, result, txn, None)
        raise StepFailed(_expected_text(expect), f"no answer within {wait:g} s (reversed)")
    check_answer(expect, answer)
    return answer


def _typed(answer: Fields) -> Any:
    """The typed answer, or None when it does not parse (a judge still sees the fields)."""
    try:
        return parse_response(answer)
    except ProtocolError:
        return None


def _answered(txn: Txn, answer: Fields) -> None:
    """Hand an answer to the terminal that journalled ``txn``."""
    txn.response = answer
    if txn.cup is not None:
        txn.cup.answered(txn.line, answer)
        return
    typed = _typed(answer)
    if isinstance(typed, FinancialResponse):
        txn.terminal.answered(txn.line, typed)


async def reverse_after_timeout(session: Session, result: StepOutcome, txn: Txn | None,
                                want: str | None) -> Fields | None:
    """The terminal session reverses an unanswered request: 0400, then 0401 repeats until
    acknowledged. ``want``: the DE39 the scenario expects the reversal to get."""
    if txn is None:
        return None
    terminal = txn.terminal
    terminal.unanswered(txn.line)
    for attempt in range(terminal.reversal_tries):
        reversal = cup_steps.reversal(txn) if txn.cup is not None \
            else terminal.reversal_for(txn.line).to_fields()
        record = Exchange("reversal" if not attempt else f"reversal repeat {attempt}",
                          request=reversal)
        result.exchanges.append(record)
        try:
            answer = await session.client.request(reversal, session.scenario.timeout_s)
        except WireError:
            answer = None
        record.response = answer
        if answer is None:
            continue
        if want is not None and answer.get("39") != want:
            raise StepFailed(f"the reversal answered {want}",
                             "reversal got " + _describe_answer(answer))
        acknowledged = txn.cup.reversal_answered(txn.line, answer) if txn.cup is not None \
            else terminal.reversal_answered(txn.line, _typed(answer))
        if acknowledged or want is not None:
            return answer
    if want is not None:
        raise StepFailed(f"the reversal answered {want}",
                         f"no answer to the reversal after {REVERSAL_REPEATS} repeats")
    return None


# -- steps ----------------------------------------------------------------------------------
def _card(pan: str, expiry: str) -> Card:
    return Card("", Pan(pan), expiry, "")


async def _financial(session: Session, step: schema.Step, result: StepOutcome, p: Any,
                     draft: Draft, pan: str, expiry: str, evidence: str | None = None,
                     original: Txn | None = None) -> Txn | None:
    """Journal ``draft`` in the step's terminal, send it, judge and record the answer
    (``original``: the step it refers to, perhaps sent by another terminal); None when
    nothing was sent (a CUP terminal whose sign-on was refused)."""
    terminal = session.terminal(p.terminal, p.merchant)
    if session.cup:
        begun = await cup_steps.begin(session, result, terminal, draft, p, _expect(step),
                                      original.line if original else None)
        if begun is None:  # the sign-on was refused: nothing more goes out
            return None
        cup, line, fields = begun
        txn = Txn(step.verb, fields, None, draft.amount, pan, expiry, terminal, line, cup)
        if step.id:
            session.journal[step.id] = txn
        await exchange(session, result, fields, _expect(step), step.verb, txn)
        await cup_steps.after_answer(session, result, txn)
        return txn
    try:
        pending = terminal.begin(draft, stan=p.stan, evidence=evidence)
    except SecurityUnavailable as exc:
        raise ScenarioBroken(f"pin: {exc} (give terminal.tmk and sign on first, or "
                             "terminal.dukpt)") from None
    security_steps.arm_mac_fault(session, getattr(p, "mac", None))
    txn = Txn(step.verb, pending.request.to_fields(), None, draft.amount, pan, expiry,
              terminal, pending.txn)
    if step.id:
        session.journal[step.id] = txn
    await exchange(session, result, pending.request, _expect(step), step.verb, txn)
    return txn


async def _payment(session: Session, step: schema.Step, result: StepOutcome) -> None:
    p: schema.CardPayment = step.params
    pan, expiry = session.card(p.card)
    kind = TxnKind.AUTHORIZE if step.verb == "authorize" else TxnKind.SALE
    draft = Draft(kind, session.money(p.amount, p.currency), _card(pan, expiry), _ENTRY[p.entry],
                  pin=p.pin)
    await _financial(session, step, result, p, draft, pan, expiry)


async def _complete(session: Session, step: schema.Step, result: StepOutcome) -> None:
    p: schema.Complete = step.params
    if p.original_rrn and session.cup:
        raise cup_steps.not_on_cup("a completion by original_rrn (a CUP completion names its "
                                   "pre-authorization by batch and trace in DE61)")
    orig = session.original(p.original) if p.original else None
    if orig is not None:
        rrn, code = orig.rrn, p.approval_code or orig.line.approval_code
        if rrn is None or code is None:
            raise ScenarioBroken(f"step {p.original!r} got no hold from the host to complete "
                                 "(give approval_code to quote one anyway)")
        pan, expiry = session.card(p.card) if p.card else (orig.pan, orig.expiry)
        cur = p.currency or orig.amount.currency
        amount = session.money(p.amount, cur) if p.amount else \
            Money(orig.amount.minor, find_currency(cur).alpha)
    else:
        assert p.original_rrn and p.approval_code and p.amount and p.card
        rrn, code, (pan, expiry) = p.original_rrn, p.approval_code, session.card(p.card)
        amount = session.money(p.amount, p.currency)
    original = Original(rrn, TxnKind.AUTHORIZE, approval_code=code)
    draft = Draft(TxnKind.COMPLETION, amount, _card(pan, expiry), EntryMode.MANUAL, original)
    await _financial(session, step, result, p, draft, pan, expiry, original=orig)


async def _refund(session: Session, step: schema.Step, result: StepOutcome) -> None:
    p: schema.Refund = step.params
    if session.cup:
        cup_steps.refund_checks(p)
    orig = session.original(p.original) if p.original else None
    if p.card:
        pan, expiry = session.card(p.card)
    else:
        assert orig is not None
        pan, expiry = orig.pan, orig.expiry
    rrn = p.original_rrn or (orig.rrn if orig else None)
    if orig is not None and rrn is None:
        raise ScenarioBroken(f"step {p.original!r} got no RRN from the host to refer to")
    amount = session.money(p.amount, p.currency or (orig.amount.currency if orig else None))
    draft = Draft(TxnKind.REFUND, amount, _card(pan, expiry), _ENTRY[p.entry],
                  Original(rrn, date_mmdd=p.original_date) if rrn else None,
                  RefundReason(p.reason), p.operator)
    await _financial(session, step, result, p, draft, pan, expiry, p.evidence, orig)


async def _void(session: Session, step: schema.Step, result: StepOutcome) -> None:
    p: schema.Void = step.params
    orig = session.original(p.original) if p.original else None
    if orig is not None:
        rrn = orig.rrn
        if rrn is None:
            raise ScenarioBroken(f"step {p.original!r} got no RRN from the host to void")
        pan, expiry = session.card(p.card) if p.card else (orig.pan, orig.expiry)
        amount = session.money(p.amount, p.currency) if p.amount else orig.amount
        of_refund = orig.kind == "refund" if p.of_refund is None else p.of_refund
    else:
        assert p.original_rrn and p.amount and p.card
        rrn, (pan, expiry) = p.original_rrn, session.card(p.card)
        amount, of_refund = session.money(p.amount, p.currency), bool(p.of_refund)
    original = Original(rrn, TxnKind.REFUND if of_refund else TxnKind.SALE)
    draft = Draft(TxnKind.VOID, amount, _card(pan, expiry), EntryMode.MANUAL, original)
    txn = await _financial(session, step, result, p, draft, pan, expiry, original=orig)
    if orig is not None and txn is not None and txn.response and \
            txn.response.get("39") == "00":
        orig.line.voided = True  # the terminal marks the original it finds by RRN; this one
        # may have been made by another terminal of the scenario


async def _reverse(session: Session, step: schema.Step, result: StepOutcome) -> None:
    p: schema.Reverse = step.params
    if session.cup:
        await cup_steps.reverse(session, step, result)
        return
    if p.original:
        orig = session.original(p.original)
        message: Message = orig.terminal.reversal_request(orig.line, repeat=p.repeat)
    else:
        assert p.stan and p.amount and p.card
        tid, mid = p.terminal or session.target.tid, p.merchant or session.target.mid
        pan, expiry = session.card(p.card)
        amount = session.money(p.amount, p.currency)
        message = ReversalRequest(stan=p.stan, terminal_id=tid, merchant_id=mid,
                                  processing_code=_KIND_CODE[p.kind], amount=amount,
                                  card=card_data(pan, expiry, "manual"), repeat=p.repeat,
                                  transmitted_at=session.transmitted_at())
        orig = None
    security_steps.arm_mac_fault(session, p.mac)
    answer = await exchange(session, result, message, _expect(step), "reversal")
    if orig is not None and answer is not None and answer.get("39") == "00":
        orig.terminal.reversal_answered(orig.line, _typed(answer))


async def _settle(session: Session, step: schema.Step, result: StepOutcome) -> None:
    p: schema.Settle = step.params
    terminal = session.terminal(p.terminal, p.merchant)
    if session.cup:
        await cup_steps.settle(session, step, result, terminal, _expect(step))
        return
    cur = find_currency(p.currency or session.target.currency).alpha
    if p.totals == "journal":
        totals = terminal.journal.totals(cur)
    else:
        t = p.totals
        totals = BatchTotals(cur, t.sales_count, session.money(t.sales, cur).minor,
                             t.refunds_count, session.money(t.refunds, cur).minor)
    msg = terminal.reconciliation(totals)
    answer = await exchange(session, result, msg, _expect(step), "settlement")
    if answer is None:
        return
    if answer.get("39") == "95" and p.upload:
        for up in terminal.uploads(cur):
            await exchange(session, result, up, schema.Expect(response="00"), "batch upload")
        close = terminal.reconciliation(totals, after_upload=True)
        answer = await exchange(session, result, close, schema.Expect(response="00"),
                                "settlement after upload")
    if answer is not None and answer.get("39") == "00":
        terminal.close_batch()


async def _echo(session: Session, step: schema.Step, result: StepOutcome) -> None:
    p: schema.Echo = step.params
    terminal = session.terminal(p.terminal, p.merchant)
    if session.cup:
        await cup_steps.network(session, step, result, terminal, _expect(step))
        return
    msg = terminal.network_request(_NET[p.code])
    answer = await exchange(session, result, msg, _expect(step), p.code.replace("_", "-"))
    typed = _typed(answer) if answer is not None else None
    if isinstance(typed, NetworkResponse):
        try:
            terminal.network_answered(msg, typed)
        except SignOnKeyError as exc:
            raise StepFailed("working keys that pass their checks", str(exc)) from None


async def _send_raw(session: Session, step: schema.Step, result: StepOutcome) -> None:
    p: schema.SendRaw = step.params
    expect = step.expect or schema.Expect(closed=True)
    record = Exchange("raw bytes", raw_hex=p.hex.upper())
    result.exchanges.append(record)
    result.expected = _expected_text(expect)
    payload = bytes.fromhex(p.hex)
    try:
        answer = await session.client.send_and_wait(payload, None, ANSWER_WAIT_S,
                                                     framed=p.frame)
    except WireError:
        answer = None
        if not expect.closed:
            raise StepFailed(_expected_text(expect), "the host closed the connection") from None
        record.note = "connection closed by the host"
        return
    record.response = answer
    if answer is not None:
        result.actual = _describe_answer(answer)
    if expect.closed:
        got = _describe_answer(answer) if answer else "no answer, connection still open"
        if answer is not None or not await session.client.wait_closed(ANSWER_WAIT_S):
            raise StepFailed(_expected_text(expect), got)
        return
    if answer is None:
        raise StepFailed(_expected_text(expect), f"no answer within {ANSWER_WAIT_S:g} s")
    result.rule = answer.get("44")
    check_answer(expect, answer)


def _admin(session: Session) -> Any:
    if session.target.admin is None:
        raise StepSkipped(session.target.no_admin_reason or "no admin API")
    return session.target.admin


async def _admin_call(session: Session, method: str, path: str, body: Any = None) -> Any:
    """An untyped admin call (scenario checks read any host's JSON leniently)."""
    try:
        return await _admin(session).call(method, path, body)
    except AdminCallError as exc:
        raise _admin_failure(exc, method, path) from None


async def _admin_fetch(session: Session, call: admin_api.AdminCall[M]) -> M:
    """A typed admin call: the answer as its model."""
    client: admin_api.AdminClient = _admin(session)
    try:
        return await client.fetch(call)
    except AdminCallError as exc:
        raise _admin_failure(exc, call.method, call.path) from None
    except ValidationError as exc:
        raise StepFailed(f"{call.method} {call.path} to answer a {call.model.__name__}",
                         f"{exc.error_count()} members of another shape") from None


def _admin_failure(exc: AdminCallError, method: str, path: str) -> Exception:
    """A missing admin route skips the step (the host cannot do it); any other error fails it."""
    if exc.status in (404, 405) and not path.startswith(("/transactions/", "/reviews/")):
        return StepSkipped(f"the host has no {method} {path.split('?')[0]} "
                           f"(HTTP {exc.status})")
    return StepFailed(f"{method} {path} to succeed", str(exc))


async def _advance(session: Session, step: schema.Step, result: StepOutcome) -> None:
    p: schema.Advance = step.params
    if p.to is not None:
        call = admin_api.set_clock(p.to.isoformat())
    elif p.business_days is not None:
        call = admin_api.advance_clock(business_days=p.business_days)
    elif p.hours is not None:
        call = admin_api.advance_clock(hours=p.hours)
    else:
        seconds = (p.seconds or 0) + 60 * (p.minutes or 0) + 86400 * (p.days or 0)
        call = admin_api.advance_clock(seconds=seconds)
    view = await _admin_fetch(session, call)
    result.actual = f"clock now {view.now}"
    follow_host_clock(session, view.now)


def follow_host_clock(session: Session, now: str) -> None:
    """Take the host's instant (a ``/clock`` answer's ``now``) as the session's time."""
    try:
        session.now = datetime.fromisoformat(now).astimezone(session.now.tzinfo)
    except ValueError:
        pass


async def _check(session: Session, step: schema.Step, result: StepOutcome) -> None:
    from scenarios.checks import run_check

    p: schema.Check = step.params
    if p.keys is not None:
        security_steps.check_keys(session.terminal(), p.keys)
    if p.transaction or p.ledger or p.settlement or p.notification or p.reviews is not None:
        await run_check(session, p, result, _admin_call)


async def _review(session: Session, step: schema.Step, result: StepOutcome) -> None:
    p: schema.Review = step.params
    review_id = p.review_id
    if review_id is None:
        rrn = session.original(p.refund).rrn
        listed = await _admin_fetch(session, admin_api.reviews())
        found = [r for r in listed.reviews if r.rrn == rrn]
        if not found:
            raise StepFailed(f"a review for the refund {rrn}", "no such review at the host")
        review_id = found[0].id
    action = "approve" if step.verb == "approve_review" else "reject"
    call = admin_api.approve_review(review_id, p.approver, p.note) if action == "approve" \
        else admin_api.reject_review(review_id, p.approver, p.reason or p.note)
    result.expected = f"review {review_id} {action}d"
    review = await _admin_fetch(session, call)
    result.actual = f"review {review_id}: {review.state}"


async def _fault(session: Session, step: schema.Step, result: StepOutcome) -> None:
    p: schema.Fault = step.params
    rule: dict[str, Any] = {"action": p.action, "process": p.process}
    if p.mti:
        rule["mti"] = p.mti
    if p.processing_code:
        rule["processing_code"] = p.processing_code
    if p.card:
        rule["pan"] = session.card(p.card)[0]
    if p.terminal:
        rule["tid"] = p.terminal
    if p.amount:
        minor = session.money(p.amount, None).minor
        rule["amount_min_minor"] = rule["amount_max_minor"] = minor
    if p.count:
        rule["count"] = p.count
    if p.ms is not None:
        rule["delay_ms"] = p.ms
    if p.code:
        rule["response_code"] = p.code
    await _admin_fetch(session, admin_api.add_faults(rule))
    result.actual = f"fault installed: {p.action}"


async def _clear_faults(session: Session, step: schema.Step, result: StepOutcome) -> None:
    await _admin_fetch(session, admin_api.clear_faults())


async def _sign_on(session: Session, step: schema.Step, result: StepOutcome) -> None:
    if session.cup:
        await cup_steps.sign_on_step(session, step, result)
    else:
        await security_steps.sign_on(session, step, result)


_STEPS: dict[str, Callable[[Session, schema.Step, StepOutcome], Any]] = {
    "sale": _payment, "authorize": _payment, "complete": _complete, "refund": _refund,
    "void": _void, "reverse": _reverse, "settle": _settle, "echo": _echo, "advance": _advance,
    "check": _check, "approve_review": _review, "reject_review": _review,
    "send_raw": _send_raw, "fault": _fault, "clear_faults": _clear_faults,
    "sign_on": _sign_on,
}
assert set(_STEPS) == set(schema.VERBS)


async def run_all(items: Iterable[Loaded], make_target: TargetFactory, seed: int | None = None,
                  on_done: Callable[[ScenarioOutcome], None] | None = None
                  ) -> list[ScenarioOutcome]:
    """Run scenarios one after another on the current loop."""
    outcomes = []
    for loaded in items:
        outcome = await run_scenario(loaded, make_target, seed)
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)
        await asyncio.sleep(0)
    return outcomes
