"""The scenario steps on the China UnionPay profile (``terminal.profile: cup`` or
``poslab-scenarios run --profile cup``).

The runner's terminal then drives the terminal's own sans-IO :class:`~terminal.cup_session.
CupSession` (what ``poslab-terminal --profile cup`` drives), one per terminal the scenario
speaks as, and sends its CUP field dicts through the runner's exchange and judge:

* before its first financial step, and again after a ``77`` or ``A0`` answer, the terminal
  signs on (0800, 60.3 ``004``); the 0810's 60.2 becomes its batch;
* ``sale``, ``authorize``, ``complete`` (0200 60.1 ``20`` with DE61 and DE38 naming the
  pre-authorization), ``refund`` (0220 with DE61) and ``void`` (of a sale, or the completion
  void of a completion) go out as the CUP session builds them; an unanswered 0200 is
  reversed with 0400 / DE39 ``98``, and ``reverse: {repeat: true}`` sends that 0400 again
  (a CUP terminal has no 0401);
* a refused sign-on (an unknown terminal's ``97``) is the answer the step is judged by;
* ``expect`` keeps the generic spelling: a rule's generic code is read as its CUP code, and
  ``remaining`` is judged on the answer's DE54 as on the generic profile;
* ``settle`` sends the CUP totals of the journal (0500, 60.3 ``201``); result flag ``2`` brings
  the 0320 upload and its closing 207;
* ``echo: {code: sign_on | sign_off}`` are the 0800 / 0820 of the profile;
* with ``terminal.tmk`` the sign-on takes the working keys of the 0810's DE62 (tried again
  while they fail their check values, as the terminal does; ``expect: {keys: ...}`` judges
  them), the link seals the MAC'd messages with the CUP ECB MAC and checks the answers', and
  ``pin:`` puts the PIN block in DE52 with the CUP DE22/DE26/DE53; ``mac: bad | missing``
  spoils the next sealed request.

What has no CUP meaning -- an echo test, a void of a refund, given totals, refund evidence,
the reversal of a refund advice, a DUKPT terminal -- stops the scenario with an error that
names the step: a file declares such steps with ``profiles:``, so they are reported as
skipped, never silently passed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protocol.cup_messages import cup_code
from protocol.cup_private import CupTotals, SettlementResult, parse_upload
from protocol.errors import ValidationError
from protocol.masking import mask_pan
from protocol.money import Money
from scenarios import schema, security_steps
from scenarios.outcome import Exchange, StepOutcome
from terminal.cup_session import CupSession, Fields
from terminal.flow import Draft
from terminal.journal import Txn as Line
from terminal.journal import TxnKind
from terminal.security.state import SIGN_ON_TRIES, SecurityUnavailable, SignOnKeyError
from terminal.session import TerminalSession

if TYPE_CHECKING:
    from scenarios.runner import Session, Txn

_KINDS = {"sale": TxnKind.SALE, "void": TxnKind.VOID, "refund": TxnKind.REFUND,
          "authorize": TxnKind.AUTHORIZE}
NO_DUKPT = ("terminal.dukpt (a CUP terminal gets its working keys at sign-on under its TMK, "
            "and the CUP layout has no field for a KSN)")
"""Why a DUKPT terminal does not run on the CUP profile."""


def not_on_cup(what: str) -> Exception:
    """The error for a step that has no meaning on the CUP profile."""
    from scenarios.runner import ScenarioBroken

    return ScenarioBroken(f"{what} has no meaning on the cup profile; give the step "
                          "profiles: [...] without cup, so it is skipped there")


def spelled_on_cup(expect: schema.Expect) -> schema.Expect:
    """``expect`` as the CUP profile spells the same decision: a rule's generic response code
    becomes its CUP code (``13`` with REFUND_EXCEEDS_REMAINING is ``61``), as the host's
    :func:`protocol.cup_messages.cup_code` writes it; the rule id stays in DE44."""
    if expect.response is None or expect.rule is None:
        return expect
    return expect.model_copy(update={"response": cup_code(expect.response, expect.rule)})


def cup_for(session: Session, terminal: TerminalSession) -> CupSession:
    """The CUP session wrapping ``terminal`` (made on first use)."""
    found = session.cup_sessions.get(id(terminal))
    if found is None:
        found = CupSession(terminal)
        session.cup_sessions[id(terminal)] = found
    return found


async def sign_on(session: Session, result: StepOutcome, cup: CupSession,
                  expect: schema.Expect | None = None) -> Fields | None:
    """0800 sign-on (60.3 ``004``) judged against ``expect`` (default ``00``); the working
    keys of its DE62 are taken, and a sign-on whose keys fail their check values is sent
    again, :data:`SIGN_ON_TRIES` in all, each refusal noted on its exchange.

    :raises SignOnKeyError: the keys failed at every try.
    """
    from scenarios.runner import exchange

    answer = None
    for attempt in range(SIGN_ON_TRIES):
        label = "sign-on" if not attempt else f"sign-on again ({attempt + 1})"
        answer = await exchange(session, result, cup.sign_on_request(),
                                expect or schema.Expect(response="00"), label)
        if answer is None:
            return None
        try:
            cup.sign_on_answered(answer)
            return answer
        except SignOnKeyError as exc:
            result.exchanges[-1].note = str(exc)
            if attempt == SIGN_ON_TRIES - 1:
                raise
    return answer


async def sign_on_or_fail(session: Session, result: StepOutcome, cup: CupSession,
                          expect: schema.Expect | None = None) -> Fields | None:
    """:func:`sign_on`, with working keys that fail every try a failed step."""
    from scenarios.runner import StepFailed

    try:
        return await sign_on(session, result, cup, expect)
    except SignOnKeyError as exc:
        raise StepFailed("working keys that pass their checks",
                         f"keys refused {SIGN_ON_TRIES} times: {exc}") from None


async def sign_on_step(session: Session, step: schema.Step, result: StepOutcome) -> None:
    """The ``sign_on`` step on CUP: the 0800, and ``expect: {keys: ...}`` judged as on the
    generic profiles (:func:`scenarios.security_steps.judge_keys`)."""
    p: schema.SignOnStep = step.params
    expect = step.expect or schema.Expect(response="00")
    cup = cup_for(session, session.terminal(p.terminal, p.merchant))
    state = cup.session.sign_on_state
    before, refusal = state.keys, ""
    try:
        await sign_on(session, result, cup, expect.model_copy(update={"keys": None}))
    except SignOnKeyError as exc:
        refusal = str(exc)
    security_steps.judge_keys(result, expect.keys, refusal, before, state.keys)


async def signed_on(session: Session, result: StepOutcome, cup: CupSession,
                    expect: schema.Expect) -> bool:
    """Sign on when needed. False when the host refused: a CUP terminal then sends nothing
    more, and the refusal is what the step's ``expect`` is judged against (an unknown
    terminal's 97 comes here)."""
    from scenarios.runner import _expected_text, check_answer

    if cup.signed_on:
        return True
    answer = await sign_on_or_fail(session, result, cup, schema.Expect())
    if cup.signed_on or answer is None:
        return cup.signed_on
    expect = spelled_on_cup(expect)
    result.expected = _expected_text(expect)
    check_answer(expect, answer)
    result.actual = f"the sign-on was refused: {result.actual}"
    return False


async def begin(session: Session, result: StepOutcome, terminal: TerminalSession,
                draft: Draft, p: Any, expect: schema.Expect, original: Line | None = None
                ) -> tuple[CupSession, Line, Fields] | None:
    """Sign on when needed, journal ``draft`` (the step's parameters ``p``; ``original``: the
    journal line it refers to) and return its CUP session, line and request; None when the
    sign-on was refused (and judged against ``expect``)."""
    cup = cup_for(session, terminal)
    if draft.kind is TxnKind.VOID and draft.original is not None \
            and draft.original.kind is TxnKind.REFUND:
        raise not_on_cup("a void of a refund")
    if draft.card is not None and all(c.pan.digits != draft.card.pan.digits for c in cup.deck):
        cup.deck.append(draft.card)  # the upload finds full PANs here
    if not await signed_on(session, result, cup, expect):
        return None
    try:
        pending, fields = cup.begin(draft, stan=p.stan, original_line=original)
    except SecurityUnavailable as exc:
        from scenarios.runner import ScenarioBroken

        raise ScenarioBroken(f"pin: {exc} (give terminal.tmk; the terminal signs on before "
                             "its first transaction)") from None
    security_steps.arm_mac_fault(session, getattr(p, "mac", None))
    return cup, pending.txn, fields


def refund_checks(p: schema.Refund) -> None:
    """Refund parameters the CUP 0220 cannot carry."""
    if p.evidence is not None or p.operator is not None:
        raise not_on_cup("refund evidence or operator (the generic DE48)")


async def after_answer(session: Session, result: StepOutcome, txn: Txn) -> None:
    """A 77 or A0 dropped the sign-on: a CUP terminal signs on again at once."""
    cup = txn.cup
    if cup is not None and not cup.signed_on and txn.response is not None:
        judged = result.expected, result.actual  # the step is judged by its own answer
        await sign_on_or_fail(session, result, cup)
        result.expected, result.actual = judged[0], f"{judged[1]}; signed on again"


def reversal(txn: Txn) -> Fields:
    """The 0400 for a CUP request that got no answer; an 0220 advice is not reversed."""
    if txn.request.get("t") != "0200" or txn.cup is None:
        raise not_on_cup(f"reversing a {txn.request.get('t')} (a refund is an advice)")
    return txn.cup.reversal_fields(txn.request)


def reversal_by_hand(session: Session, terminal: TerminalSession, p: schema.Reverse,
                     pan: str, amount: Money) -> Fields:
    """The 0400 of a ``reverse`` step that names no original step (stan, card, amount); a
    ``repeat`` is the same 0400 again (a CUP terminal has no 0401)."""
    cup = cup_for(session, terminal)
    assert p.stan is not None
    fields = cup.reversal_of(_KINDS[p.kind], p.stan, amount, cup.batch, pan)
    if fields is None:
        raise not_on_cup(f"reversing a {p.kind}")
    return fields


async def reverse(session: Session, step: schema.Step, result: StepOutcome) -> None:
    """``reverse``: the 0400 of the original step, or of one described by stan, card and
    amount (signed on first); ``repeat`` sends the same 0400 again, as a CUP terminal repeats
    a reversal. The CUP session marks the original reversed on 00 or 25."""
    from scenarios.runner import _expect, exchange

    p: schema.Reverse = step.params
    orig = session.original(p.original) if p.original else None
    terminal = orig.terminal if orig is not None else session.terminal(p.terminal, p.merchant)
    cup = cup_for(session, terminal)
    if not await signed_on(session, result, cup, _expect(step)):
        return
    if orig is not None:
        fields = reversal(orig)
    else:
        assert p.stan and p.amount and p.card
        fields = reversal_by_hand(session, terminal, p, session.card(p.card)[0],
                                  session.money(p.amount, p.currency))
    label = "reversal again (the same 0400)" if p.repeat else "reversal"
    security_steps.arm_mac_fault(session, p.mac)
    answer = await exchange(session, result, fields, _expect(step), label)
    if orig is not None and orig.cup is not None:
        orig.cup.reversal_answered(orig.line, answer)


async def settle(session: Session, step: schema.Step, result: StepOutcome,
                 terminal: TerminalSession, expect: schema.Expect) -> None:
    """0500 with the journal's CUP totals; on result flag 2 the upload and its 207."""
    from scenarios.runner import exchange

    p: schema.Settle = step.params
    if p.totals != "journal":
        raise not_on_cup("settle with given totals (the generic debits and credits)")
    cup = cup_for(session, terminal)
    if not await signed_on(session, result, cup, expect):
        return
    answer = await exchange(session, result, cup.settlement_request(), expect, "settlement")
    if answer is None or answer.get("39") != "00":
        return
    try:
        flag = CupTotals.parse(answer.get("48", "")).result
    except ValidationError as exc:
        from scenarios.runner import StepFailed

        raise StepFailed("CUP totals with a result flag in DE48", str(exc)) from None
    said = (result.expected, f"{result.actual}, result flag {flag.value} "
            f"({'balanced' if flag is SettlementResult.BALANCED else 'not balanced'})")
    if flag is SettlementResult.NOT_BALANCED:
        if not p.upload:
            result.expected, result.actual = said
            return
        records = 0
        for upload in cup.upload_requests():
            closing = upload["60"][8:] == "207"
            await exchange(session, result, upload, schema.Expect(response="00"),
                           "end of upload" if closing else "batch upload")
            _mask_records(result.exchanges[-1])
            records += 0 if closing else int(upload["48"][:2])
        said = (said[0], f"{said[1]}; {records} records uploaded")
    result.expected, result.actual = said
    terminal.close_batch()


async def network(session: Session, step: schema.Step, result: StepOutcome,
                  terminal: TerminalSession, expect: schema.Expect) -> None:
    """``echo`` with ``code: sign_on`` (0800) or ``sign_off`` (0820, 60.3 ``002``)."""
    from scenarios.runner import exchange

    code = step.params.code
    cup = cup_for(session, terminal)
    if code == "sign_on":
        await sign_on_or_fail(session, result, cup, expect)
        return
    if code != "sign_off":
        raise not_on_cup("echo (a CUP terminal has no 0800 echo test)")
    answer = await exchange(session, result, cup.sign_off_request(), expect, "sign-off")
    if answer is not None and answer.get("39") == "00":
        cup.signed_on = False



def _mask_records(record: Exchange) -> None:
    """Upload records carry whole PANs inside one long run of digits, which the reports'
    PAN scrubbing cannot see: keep them in the step's record with each PAN masked."""
    for fields in (record.request, record.response):
        if fields and fields.get("t") in ("0320", "0330") and len(fields.get("48", "")) > 4:
            try:
                records = parse_upload(fields["48"])
            except ValidationError:
                fields["48"] = "*" * len(fields["48"])
                continue
            fields["48"] = fields["48"][:2] + "".join(
                f"{'01' if r.foreign else '00'}{r.trace}{mask_pan(r.pan):0>20}{r.amount:012d}"
                for r in records)
