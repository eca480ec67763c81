"""The scenario language's security keys (terminal.tmk/dukpt, sign_on, pin:, mac:, check keys)
against an in-test secure responder (tests/terminal/term_securehost.py), and their errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "terminal"))

from term_securehost import SecureState, dukpt_host, listen_secure  # noqa: E402

import scenarios  # noqa: E402
from scenarios.loader import load_file, load_paths  # noqa: E402
from scenarios.report import render_failure  # noqa: E402
from scenarios.runner import run_all, run_scenario  # noqa: E402
from scenarios.schema import Scenario  # noqa: E402
from scenarios.targets import Target, start_local  # noqa: E402

SECURITY = Path(scenarios.__file__).parent / "security"
LOADED, PROBLEMS = load_paths([SECURITY])
TMK = 'tmk: {key: "0123456789ABCDEFFEDCBA9876543210", kcv: "08D7B4"}'


@pytest.fixture
def secure_factory() -> Iterator[tuple[Callable[..., Any], list[SecureState]]]:
    """A target factory that gives each scenario a fresh secure responder (DUKPT when the
    scenario's terminal uses it); yields it and the responders' states."""
    states: list[SecureState] = []
    listening: list[Any] = []

    async def make(scenario: Scenario, start: datetime) -> Target:
        state = SecureState()
        if scenario.terminal.dukpt is not None:
            state.dukpt = dukpt_host()
        port, port_obj = listen_secure(state)
        states.append(state)
        listening.append(port_obj)
        return Target("127.0.0.1", port, "TERM0001", "MERCHANT0000001", "CNY")

    yield make, states
    for port_obj in listening:
        port_obj.stopListening()


def test_security_scenarios_are_valid_and_described() -> None:
    """The four security scenarios load without problems and each says what it teaches."""
    assert PROBLEMS == [] and len(LOADED) == 4
    assert all(item.scenario.description for item in LOADED)


# Each scenario on the generic default and as ``run --profile cup`` runs it.
CASES = [*(pytest.param(item, id=item.name) for item in LOADED),
         *(pytest.param(replace(item, scenario=item.scenario.on_profile("cup")),
                        id=f"cup-{item.name}") for item in LOADED)]
GENERIC_ONLY = {"dukpt_counter_advance.yaml"}  # CUP terminals take working keys at sign-on


@pytest.mark.parametrize("item", CASES)
def test_security_scenario_passes(item: Any, run: Any) -> None:
    """The scenario passes on a fresh in-process host speaking its terminal's profile; the one
    that has no meaning on cup (DUKPT) is skipped whole there, saying why."""
    outcome = run(run_scenario(item, start_local), timeout=60)
    if item.scenario.terminal.profile == "cup" and item.path.name in GENERIC_ONLY:
        assert outcome.status == "skipped", render_failure(outcome)
        assert outcome.error.startswith("not on the cup profile")
        return
    assert outcome.status == "passed", render_failure(outcome)


def test_dukpt_terminal_on_cup_is_an_error_that_says_why(write: Any, run: Any) -> None:
    """A DUKPT terminal run on cup sends nothing and stops with the reason: CUP terminals get
    their working keys at sign-on, and the CUP layout has no field for a KSN."""
    (item,) = load_file(write("d.yaml", """\
name: dukpt on cup
terminal:
  profile: cup
  dukpt:
    initial_key: "6AC292FAA1315B4D858AB3A3D7D5933A"
    kcv: "AF8C07"
    ksn: "FFFF9876543210E00000"
steps:
  - sale: {card: "4111111111111111", amount: "1.00"}
"""))[0]
    outcome = run(run_scenario(item, start_local), timeout=60)
    assert outcome.status == "error" and outcome.steps == []
    assert "terminal.dukpt" in outcome.error and "no field for a KSN" in outcome.error


def _run_text(run: Any, factory: Any, write: Any, text: str) -> Any:
    loaded, problems = load_file(write("s.yaml", text))
    assert problems == []
    (outcome,) = run(run_all(loaded, factory), timeout=60)
    return outcome


def test_mac_missing_is_refused_and_books_nothing(secure_factory: Any, write: Any,
                                                  run: Any) -> None:
    """``mac: missing`` sends the sale without DE64; the responder refuses it with 63."""
    make, states = secure_factory
    outcome = _run_text(run, make, write, f"""\
name: no MAC
terminal: {{{TMK}}}
steps:
  - sign_on:
  - sale: {{card: "4111111111111111", amount: "1.00", mac: missing}}
    expect: {{response: "63"}}
""")
    assert outcome.status == "passed", render_failure(outcome)
    assert states[0].mac_results == [False] and states[0].bookings == []
    assert "64" not in states[0].seen_fields[-1]


def test_failure_output_hides_pin_block_and_keys(secure_factory: Any, write: Any,
                                                 run: Any) -> None:
    """A failed PIN step's report explains DE52/DE53 and the sign-on's DE62 without the PIN,
    the PIN block or the wrapped keys."""
    make, states = secure_factory
    outcome = _run_text(run, make, write, f"""\
name: wrong PIN expected approved
terminal: {{{TMK}}}
steps:
  - sign_on:
    expect: {{keys: none}}
  - sale: {{card: "5555555555554444", amount: "1.00", pin: "9753"}}
""")
    assert outcome.status == "failed"
    text = render_failure(outcome)
    assert "expected: no working keys" in text and "actual:   working keys received" in text
    ok = _run_text(run, make, write, f"""\
name: wrong PIN expected approved
terminal: {{{TMK}}}
steps:
  - sign_on:
  - sale: {{card: "5555555555554444", amount: "1.00", pin: "9753"}}
""")
    text = render_failure(ok)
    sent = states[-1].seen_fields[-1]
    assert "DECLINED" in text or "55" in text
    assert "[PIN block, 8 bytes]" in text and "PIN block ISO format 0" in text
    assert sent["52"] not in text and "9753" not in text
    working = states[-1].working
    assert working is not None
    assert working.pin.get_secret_value().hex().upper() not in text


@pytest.mark.parametrize(("snippet", "message"), [
    ('steps: [{sale: {card: "4111111111111111", amount: "1.00", pin: "12ab"}}]',
     "a PIN is 4 to 12 digits"),
    ('steps: [{sale: {card: "4111111111111111", amount: "1.00", mac: wrong}}]',
     "'bad' or 'missing'"),
    ('terminal: {tmk: {key: "0123456789ABCDEFFEDCBA9876543210", kcv: "08D7B5"}}\n'
     "steps: [{sign_on: }]", "check value 08D7B4 does not match expected 08D7B5"),
    ('terminal: {dukpt: {initial_key: "6AC292FAA1315B4D858AB3A3D7D5933A", kcv: "AF8C07",'
     ' ksn: "FFFF98"}}\nsteps: [{sign_on: }]', "at least 20 characters"),
    ('steps: [{sign_on: , expect: {keys: maybe}}]', "'received', 'refused' or 'none'"),
    ('steps: [{check: {keys: {tmk_kcv: "xyz"}}}]', "hexadecimal"),
])
def test_bad_security_values_are_clear_errors(write: Any, snippet: str, message: str) -> None:
    """Each bad security value is reported at its file position with what is wrong."""
    _, problems = load_file(write("bad.yaml", f"name: bad\n{snippet}\n"))
    assert problems, snippet
    assert any(message in p.message for p in problems), [str(p) for p in problems]
    assert all(p.line >= 2 for p in problems)


def test_pin_without_keys_breaks_the_step(fake_factory: Any, write: Any, run: Any) -> None:
    """A ``pin:`` on a terminal without keys stops the scenario with advice, not a traceback."""
    outcome = _run_text(run, fake_factory, write, """\
name: pin without keys
steps:
  - sale: {card: "4111111111111111", amount: "1.00", pin: "1234"}
""")
    text = render_failure(outcome)
    assert outcome.status == "error"
    assert "takes no PIN" in text and "terminal.tmk" in text


def test_answer_failing_its_mac_fails_the_step_saying_so(secure_factory: Any, write: Any,
                                                         run: Any) -> None:
    """An answer whose MAC does not verify fails its step with that reason; the run goes on
    to its report instead of stopping on an exception."""
    make, states = secure_factory

    async def bad_macs(scenario: Scenario, start: datetime) -> Target:
        target = await make(scenario, start)
        states[-1].bad_answer_mac = True
        return target

    outcome = _run_text(run, bad_macs, write, f"""\
name: the host's answer fails its MAC
terminal: {{{TMK}}}
steps:
  - sign_on:
  - sale: {{card: "4111111111111111", amount: "1.00"}}
    expect: {{response: "00"}}
""")
    assert outcome.status == "failed", render_failure(outcome)
    assert "failed its MAC check" in outcome.steps[-1].actual
