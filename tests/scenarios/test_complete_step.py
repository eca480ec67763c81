"""The scenario language's ``complete`` step: parsing, validation, and running it against the
real in-process host on the generic and the CUP profile (the library's completion files run
in test_library.py)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

from scenarios.lesson import LessonPace
from scenarios.loader import load_file
from scenarios.report import render_failure
from scenarios.runner import run_scenario
from scenarios.targets import start_local


def problems_of(path: Path) -> list[str]:
    return [str(p) for p in load_file(path)[1]]


def test_complete_is_accepted_with_its_defaults(write):
    """``complete: {original: a1}`` loads: amount, card and currency default to the hold's."""
    loaded, problems = load_file(write("ok.yaml", """\
name: complete with defaults
steps:
  - authorize: {card: "Visa approve", amount: "100.00"}
    id: a1
  - complete: {original: a1}
    id: c1
    say: capture the hold
  - complete: {original_rrn: "000000000001", approval_code: 123456, amount: "5", card: x}
"""))
    assert problems == []
    step = loaded[0].scenario.steps[1]
    assert (step.verb, step.label, step.say) == ("complete", "complete c1", "capture the hold")
    p = step.params
    assert (p.original, p.amount, p.card, p.currency, p.approval_code, p.mac) == \
        ("a1", None, None, None, None, None)
    assert loaded[0].scenario.steps[2].params.approval_code == "123456"


def test_malformed_complete_steps_get_one_line_messages(write):
    """Each malformed ``complete`` gets one message at its line naming the step and the key."""
    path = write("bad.yaml", """\
name: broken completes
steps:
  - authorize: {card: "Visa approve", amount: "10.00"}
    id: a1
  - complete: {original: a1, amount: 10.5}
  - complete: {original: a1, colour: red}
  - complete: {}
  - complete: {original: a1, original_rrn: "000000000001"}
  - complete: {original_rrn: "000000000001", amount: "1.00"}
  - complete: {original: a1, approval_code: "12"}
  - complete: {original: a1, mac: worse}
""")
    assert problems_of(path) == [
        f'{path}:5:30: step 2.complete.amount: write amounts as quoted decimal strings, '
        'e.g. "100.00"',
        f"{path}:6:30: unknown key 'colour' in step 3.complete",
        f"{path}:7:5: step 4.complete: give exactly one of original (an authorize step id) "
        "or original_rrn",
        f"{path}:8:5: step 5.complete: give exactly one of original (an authorize step id) "
        "or original_rrn",
        f"{path}:9:5: step 6.complete: a completion by original_rrn needs approval_code, "
        "amount and card",
        f'{path}:10:30: step 7.complete.approval_code: an approval code (DE38) is 6 letters '
        'or digits in quotes, e.g. "A1B2C3"',
        f"{path}:11:30: step 8.complete.mac: Input should be 'bad' or 'missing'",
    ]


def test_complete_must_name_an_earlier_authorize_step(write):
    """``original`` naming a sale or no step at all is a file error at that key."""
    path = write("refs.yaml", """\
name: completes of what
steps:
  - sale: {card: "Visa approve", amount: "10.00"}
    id: s1
  - complete: {original: s1}
  - complete: {original: a9}
""")
    assert problems_of(path) == [
        f"{path}:5:16: complete.original: 's1' is a sale step; complete names an authorize "
        "step",
        f"{path}:6:16: 'a9' is not the id of an earlier step",
    ]


# One scenario for what the library's two files do not show: a void and a reversal of a
# completion (the hold is live again each time), a hold the host cannot find, another
# currency, a completion by RRN, and settlement totals that count completions as sales.
LIFE_CYCLE = """\
name: completions voided, reversed, refused and settled
steps:
  - authorize: {card: "Visa approve", amount: "20.00"}
  # a fresh host's first transaction: its RRN and approval code are known in advance
  - complete: {original_rrn: "000000000001", approval_code: "000001", amount: "20.00",
               card: "Visa approve"}
    profiles: [iso87-ascii]
  - authorize: {card: "Visa approve", amount: "100.00"}
    id: a1
  - complete: {original: a1, amount: "40.00"}
    id: c1
  - void: {original: c1}
  - check: {transaction: c1, capture_state: VOIDED}
  - check: {transaction: a1, state: authorized}
  - complete: {original: a1, amount: "60.00"}
    id: c2
  - reverse: {original: c2}
  - check: {transaction: c2, capture_state: REVERSED}
  - complete: {original: a1, approval_code: "ZZZZZZ"}
    expect: {response: "25", rule: ORIGINAL_NOT_FOUND}
  - complete: {original: a1, currency: USD}
    id: usd
    expect: {response: "12", rule: CURRENCY_NOT_ACCEPTED}
  - check: {transaction: usd, rules: [hold_found, hold_open, same_currency]}
  - complete: {original: a1, amount: "70.00"}
    id: c3
  - refund: {original: c3, amount: "70.00", reason: return}
    expect: {response: "00", remaining: "0.00"}
  - settle: {}
  - check: {ledger: verified}
"""


def _load(write, text: str, profile: str | None = None):
    (item,), problems = load_file(write("life.yaml", text))
    assert problems == []
    if profile is not None:
        item = replace(item, scenario=item.scenario.on_profile(profile))
    return item


@pytest.mark.parametrize("profile", [None, "cup"])
def test_completions_void_reverse_refuse_and_settle(run, write, profile):
    """On both profiles a completion's void and reversal free the hold again, a hold the host
    cannot find or another currency is declined with its rule, a completion is refunded by its
    own RRN, and the batch totals count completions as sales (the 0500 balances: 00)."""
    item = _load(write, LIFE_CYCLE, profile)
    outcome = run(run_scenario(item, start_local), timeout=60)
    assert outcome.status == "passed", render_failure(outcome)
    by_rrn = outcome.steps[1]
    assert by_rrn.status == ("skipped" if profile == "cup" else "passed")
    (settle,) = [s for s in outcome.steps if s.label == "settle"]
    assert [e.label for e in settle.exchanges] == ["settlement"]  # balanced: no upload


def test_completion_over_the_hold_fails_with_the_hosts_rule(run, write):
    """A completion over the hold expected approved fails, showing the 0220, the host's 64 and
    its rule COMPLETION_EXCEEDS_AUTH."""
    item = _load(write, """\
name: over the hold
steps:
  - authorize: {card: "Visa approve", amount: "50.00"}
    id: a1
  - complete: {original: a1, amount: "50.01"}
  - check: {transaction: a1, state: completed}
""")
    outcome = run(run_scenario(item, start_local), timeout=60)
    assert outcome.status == "failed"
    assert [s.status for s in outcome.steps] == ["passed", "failed", "not run"]
    text = render_failure(outcome)
    assert "step 2 (complete)" in text and "COMPLETION_EXCEEDS_AUTH" in text
    assert "actual:   response 64" in text and "0220" in text


def test_completion_by_rrn_has_no_cup_meaning(run, write):
    """On CUP a completion by original_rrn stops the scenario with an error naming the step,
    unless the file declares it with profiles:."""
    item = _load(write, """\
name: by rrn on cup
steps:
  - complete: {original_rrn: "000000000001", approval_code: "000001", amount: "1.00",
               card: "Visa approve"}
""", "cup")
    outcome = run(run_scenario(item, start_local), timeout=60)
    assert outcome.status == "error"
    (step,) = outcome.steps
    assert step.label == "complete" and "original_rrn" in step.actual
    assert "has no meaning on the cup profile" in step.actual


def _lesson(run, item) -> str:
    """What lesson mode prints for ``item``, run to the end without waiting; it must pass."""
    out = io.StringIO()
    outcome = run(run_scenario(item, start_local, pace=LessonPace(out, wait=False)),
                  timeout=60)
    assert outcome.status == "passed", render_failure(outcome)
    return out.getvalue()


def test_lesson_mode_says_and_shows_the_completion(run, write):
    """Lesson mode prints a complete step's say: line and its 0220/0230 exchange."""
    text = _lesson(run, _load(write, """\
name: lesson on completion
steps:
  - authorize: {card: "Visa approve", amount: "100.00"}
    id: a1
    say: The hold.
  - complete: {original: a1, amount: "80.00"}
    say: The capture of part of it.
"""))
    assert "The capture of part of it." in text
    assert "→ 0220 completion 80.00 CNY" in text and "← 0230 completion 80.00 CNY 00" in text
    assert "4111111111111111" not in text


def test_lesson_mode_names_cup_completions_by_their_60_1(run, write):
    """On CUP, where a completion and its void are 0200s told apart by DE25 and 60.1, lesson mode
    names them completion and void of completion, not sale and void."""
    text = _lesson(run, _load(write, """\
name: lesson on a cup completion
steps:
  - authorize: {card: "Visa approve", amount: "100.00"}
    id: a1
  - complete: {original: a1, amount: "80.00"}
    id: c1
  - void: {original: c1}
""", "cup"))
    assert "→ 0100 authorization 100.00 CNY" in text
    assert "→ 0200 completion 80.00 CNY" in text and "← 0210 completion 80.00 CNY 00" in text
    assert "→ 0200 void of completion 80.00 CNY" in text
    assert "sale" not in text
