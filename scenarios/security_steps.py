"""The scenario language's security parts: the terminal's keys, ``sign_on``, ``mac:`` faults,
``pin:`` and ``check: {keys: ...}``.

The scenario's own terminal (``terminal.tmk`` or ``terminal.dukpt``) holds the keys; the
runner's link seals its financial requests with them and checks the host's MACs exactly as
``poslab-terminal`` does (:class:`terminal.security.guard.MacGuard`). Other TIDs a step speaks
as share the connection and so the same keys. Check values are compared, never keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol import Codec
from protocol.codes import NetworkCode
from protocol.messages import NetworkResponse
from protocol.security import TDES_DUKPT, DukptTerminal, Ksn, WorkingKeys
from protocol.specs import get_profile
from scenarios import schema
from scenarios.outcome import StepOutcome
from terminal.cup_session import cup_mac_guard, is_cup
from terminal.security.guard import MacFault, MacGuard
from terminal.security.state import SIGN_ON_TRIES, SignOnKeyError, TerminalSecurity
from terminal.session import TerminalSession

if TYPE_CHECKING:
    from scenarios.runner import Session


def build_security(scenario: schema.Scenario, codec: Codec) -> TerminalSecurity | None:
    """The scenario terminal's keys from ``terminal.tmk`` / ``terminal.dukpt``; None without."""
    spec = scenario.terminal
    if spec.tmk is None and spec.dukpt is None:
        return None
    dukpt = None
    if spec.dukpt is not None:
        initial = spec.dukpt.build()
        dukpt = (DukptTerminal(TDES_DUKPT, initial, Ksn.from_hex(spec.dukpt.ksn)), initial)
    return TerminalSecurity(get_profile(spec.profile), tmk=spec.tmk.build() if spec.tmk else None,
                            dukpt=dukpt)


def guard_for(security: TerminalSecurity | None, codec: Codec) -> MacGuard | None:
    """The MAC guard the runner's link uses, when the terminal has keys (on CUP the CUP
    terminal's, which takes the refusals a CUP host sends before its MAC check unsealed)."""
    if security is None:
        return None
    if is_cup(codec.profile.name):
        return cup_mac_guard(security, codec)
    return MacGuard(security, codec)


def arm_mac_fault(session: Session, fault: str | None) -> None:
    """Make the next sealed request carry a bad MAC, or none (``mac: bad | missing``)."""
    from scenarios.runner import ScenarioBroken

    if fault is None:
        return
    guard = session.client.link.guard
    if guard is None or not guard.security.can_mac:
        raise ScenarioBroken(f"mac: {fault} needs MAC keys: give terminal.tmk and sign on "
                             "first (a sign_on step), or terminal.dukpt")
    guard.fault = MacFault(fault)


async def sign_on(session: Session, step: schema.Step, result: StepOutcome) -> None:
    """``sign_on``: 0800/001, then the keys of the 0810, tried again while they fail."""
    from scenarios.runner import _typed, exchange

    p: schema.SignOnStep = step.params
    terminal = session.terminal(p.terminal, p.merchant)
    expect = step.expect or schema.Expect(response="00")
    wanted = expect.keys
    before = terminal.sign_on_state.keys
    refusal = ""
    for attempt in range(SIGN_ON_TRIES):
        msg = terminal.network_request(NetworkCode.SIGN_ON)
        answer = await exchange(session, result, msg, expect.model_copy(update={"keys": None}),
                                "sign-on" if not attempt else f"sign-on again ({attempt + 1})")
        typed = _typed(answer) if answer is not None else None
        if not isinstance(typed, NetworkResponse):
            return
        try:
            terminal.network_answered(msg, typed)
        except SignOnKeyError as exc:
            refusal = str(exc)
            result.exchanges[-1].note = refusal
            continue
        refusal = ""
        break
    judge_keys(result, wanted, refusal, before, terminal.sign_on_state.keys)


def judge_keys(result: StepOutcome, wanted: str | None, refusal: str,
               before: WorkingKeys | None, held: WorkingKeys | None) -> None:
    """Judge a sign-on's keys against ``expect: {keys: ...}``: ``refusal`` says why the keys
    of the last try were refused (empty when taken), ``before`` and ``held`` are the working
    keys before and after the step."""
    from scenarios.runner import StepFailed

    if wanted == "refused":
        if refusal:
            result.actual = f"keys refused {SIGN_ON_TRIES} times: {refusal}"
            return
        raise StepFailed("working keys refused (check values do not match)",
                         "keys accepted" if held else "no keys sent")
    if refusal:
        raise StepFailed(_keys_text(wanted), f"keys refused {SIGN_ON_TRIES} times: {refusal}")
    if wanted == "received" and (held is None or held == before):
        raise StepFailed("new working keys", "no keys" if held is None else
                         "the same keys as before")
    if wanted == "none" and held is not None:
        raise StepFailed("no working keys", "working keys received")


def _keys_text(wanted: str | None) -> str:
    return {"received": "new working keys", "none": "no working keys"}.get(
        wanted or "", "a sign-on whose keys pass their checks")


def check_keys(terminal: TerminalSession, want: schema.KeyState) -> None:
    """``check: {keys: ...}``: compare the terminal's key state, listing every mismatch."""
    from scenarios.runner import ScenarioBroken, StepFailed

    security = terminal.security
    if security is None:
        raise ScenarioBroken("check keys: the scenario's terminal has no keys "
                             "(give terminal.tmk or terminal.dukpt)")
    kcvs = security.kcvs()
    expected: list[str] = []
    actual: list[str] = []
    if want.working is not None:
        held = "present" if security.working is not None else "absent"
        expected.append(f"working keys {want.working}")
        actual.append(f"working keys {held}")
    for name in ("tmk", "pin", "mac"):
        kcv = getattr(want, f"{name}_kcv")
        if kcv is not None:
            expected.append(f"{name} KCV {kcv}")
            actual.append(f"{name} KCV {kcvs.get(name, 'absent')}")
    if want.ksn_counter is not None:
        counter = security.dukpt.ksn.counter if security.dukpt is not None else None
        expected.append(f"KSN counter {want.ksn_counter}")
        actual.append(f"KSN counter {counter if counter is not None else 'absent (no DUKPT)'}")
    ok = all(_matches(e, a) for e, a in zip(expected, actual, strict=True))
    if not ok:
        raise StepFailed(", ".join(expected), ", ".join(actual))


def _matches(expected: str, actual: str) -> bool:
    # A KCV check may give fewer digits than the terminal computes (3-byte vs 4-byte KCVs).
    if " KCV " in expected:
        return actual.startswith(expected)
    return expected == actual
