"""The bundled library (scenarios/library) passes against the real host, one test per scenario
and wire profile: the generic default and China UnionPay (``--profile cup``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import scenarios
from scenarios.loader import load_paths
from scenarios.report import render_failure
from scenarios.runner import run_scenario
from scenarios.targets import start_local

LIBRARY = Path(scenarios.__file__).parent / "library"
LOADED, PROBLEMS = load_paths([LIBRARY])


def test_library_is_valid_and_described():
    """Every library file loads without problems and says in one line what it teaches."""
    assert PROBLEMS == []
    assert len({item.path for item in LOADED}) >= 40
    assert all(item.scenario.description and "\n" not in item.scenario.description.strip()
               for item in LOADED)


def _on_cup(item):
    """``item`` as ``run --profile cup`` runs it."""
    return pytest.param(replace(item, scenario=item.scenario.on_profile("cup")),
                        id=f"cup-{item.name}")


# A file whose terminal speaks cup already runs once, as its cup case.
CASES = [*(pytest.param(item, id=item.name) for item in LOADED
           if item.scenario.terminal.profile != "cup"), *map(_on_cup, LOADED)]


@pytest.mark.parametrize("item", CASES)
def test_library_scenario(item, run):
    """The scenario passes on a fresh in-process host (one declared for other profiles is
    skipped whole, with the reason)."""
    outcome = run(run_scenario(item, start_local), timeout=60)
    profiles = item.scenario.profiles
    if profiles is not None and item.scenario.terminal.profile not in profiles:
        assert outcome.status == "skipped" and outcome.error, render_failure(outcome)
        return
    assert outcome.status == "passed", render_failure(outcome)


def test_docs_list_every_library_file():
    """docs/scenarios.md lists each library file with the description the file gives."""
    docs = (LIBRARY.parent.parent / "docs" / "scenarios.md").read_text(encoding="utf-8")
    for item in LOADED:
        assert f"| `{item.path.name}` | {item.scenario.description} |" in docs, item.path.name


CUP_REMAINING = """\
name: remaining judged on cup
terminal: {profile: cup}
steps:
  - sale: {card: "Visa approve", amount: "100.00"}
    id: s1
  - refund: {original: s1, amount: "60.00", reason: return}
    expect: {response: "00", remaining: "40.00"}
  - refund: {original: s1, amount: "50.00", reason: return}
    expect: {response: "13", rule: REFUND_EXCEEDS_REMAINING, remaining: "39.00"}
"""


def test_cup_run_judges_remaining_on_the_answers_de54(run, tmp_path):
    """On cup the 0230's DE54 is judged as on the generic profile: the right remaining passes,
    a wrong one fails the step and the report gives the host's amount."""
    path = tmp_path / "remaining.yaml"
    path.write_text(CUP_REMAINING, encoding="utf-8")
    (item,), problems = load_paths([path])
    assert problems == []
    outcome = run(run_scenario(item, start_local), timeout=60)
    assert [s.status for s in outcome.steps] == ["passed", "passed", "failed"]
    assert "remaining 40.00" in outcome.steps[2].actual


CUP_KEYED_RRN = """\
name: refund of a keyed RRN on cup
terminal: {profile: cup}
clock: {start: "2026-03-02T10:00:00+08:00"}
host:
  merchants:
    - {id: "MERCHANT0000001", name: "two tills", currencies: ["*"], currency: CNY,
       timezone: Asia/Shanghai, country: CN, mdr_percent: 0.6, fixed_fee_minor: 0,
       terminals: ["TERM0001", "TERM0002"]}
steps:
  - sale: {card: "UnionPay approve", amount: "80.00"}
  - advance: {to: "2026-03-04T10:00:00+08:00"}
  - refund: {original_rrn: "000000000001", card: "UnionPay approve", amount: "20.00",
             terminal: TERM0002}
    expect: {response: "25", rule: ORIGINAL_NOT_FOUND}
  - refund: {original_rrn: "000000000001", original_date: "0302", card: "UnionPay approve",
             amount: "20.00", terminal: TERM0002}
    expect: {response: "00", remaining: "60.00"}
"""


def test_cup_refund_of_a_keyed_rrn_sends_the_keyed_date_in_61_3(run, tmp_path):
    """A refund keyed on another till by RRN alone (no journal line) carries the date keyed
    from the slip in 61.3 and is approved; without the date the host answers 25 (DATE)."""
    path = tmp_path / "keyed.yaml"
    path.write_text(CUP_KEYED_RRN, encoding="utf-8")
    (item,), problems = load_paths([path])
    assert problems == []
    outcome = run(run_scenario(item, start_local), timeout=60)
    assert outcome.status == "passed", render_failure(outcome)
    dated = [e.request for e in outcome.steps[3].exchanges if e.request.get("t") == "0220"]
    undated = [e.request for e in outcome.steps[2].exchanges if e.request.get("t") == "0220"]
    assert [r["61"] for r in undated + dated] == ["0000000000000000", "0000000000000302"]
    assert outcome.steps[2].rule == "ORIGINAL_NOT_FOUND:DATE"
