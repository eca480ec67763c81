"""Scenario files: validation errors carry file:line:column, expansion of vars/cases/repeat."""

from __future__ import annotations

from pathlib import Path

from scenarios.loader import load_file, load_paths

GOOD = """\
name: partial refunds
tags: [refund]
vars: {card: "4111111111111111"}
cases:
  - {id: small, amt: "1.00"}
  - {id: big, amt: "60.00"}
steps:
  - sale: {card: "${card}", amount: "100.00"}
    id: s1
  - refund: {original: s1, amount: "${amt}", reason: return}
    id: "r${i}"
    repeat: 2
"""


def problems_of(path: Path) -> list[str]:
    return [str(p) for p in load_file(path)[1]]


def test_cases_and_repeat_expand(write):
    """cases gives one scenario per case; repeat unrolls a step with ${i}; vars substitute."""
    loaded, problems = load_file(write("good.yaml", GOOD))
    assert problems == []
    assert [item.name for item in loaded] == ["partial refunds [small]", "partial refunds [big]"]
    steps = loaded[1].scenario.steps
    assert [s.id for s in steps] == ["s1", "r1", "r2"]
    assert steps[1].refund is not None and steps[1].refund.amount == "60.00"
    assert steps[0].sale is not None and steps[0].sale.card == "4111111111111111"
    assert loaded[0].step_lines == (8, 10, 10)


def test_schema_errors_point_at_their_lines(write):
    """Every schema problem of a file is reported at once, each at its own line and column."""
    path = write("bad.yaml", """\
name: broken
steps:
  - sale: {card: "4111111111111111", amount: 100.5}
    expect: {response: "0000", rule: REFUND_EXCEEDS_REMAINIG}
  - sael: {card: x}
  - advance: {hours: 1, days: 2}
""")
    problems = problems_of(path)
    assert problems == [
        f'{path}:3:38: step 1.sale.amount: write amounts as quoted decimal strings, e.g. "100.00"',
        f'{path}:4:14: step 1.expect.response: a response code is two characters, '
        'e.g. "00" or "13"',
        f"{path}:4:32: step 1.expect.rule: unknown rule id 'REFUND_EXCEEDS_REMAINIG'; "
        "did you mean REFUND_EXCEEDS_REMAINING?",
        f"{path}:5:5: unknown key 'sael' in step 2 (did you mean 'sale'?)",
        f"{path}:6:5: step 3.advance: give exactly one of seconds, minutes, hours, days, "
        "business_days, to",
    ]


def test_rule_suggestions_are_only_close_matches(write):
    """An unknown rule id that merely shares a prefix with real ones gets no guess, only
    where the rule ids are listed; a near-miss typo still gets its rule."""
    path = write("rules.yaml", """\
name: rules
steps:
  - sale: {card: "4111111111111111", amount: "1.00"}
    expect: {rule: REFUND_TOO_BIG}
  - sale: {card: "4111111111111111", amount: "1.00"}
    expect: {rule: refund_count_limt}
""")
    assert problems_of(path) == [
        f"{path}:4:14: step 1.expect.rule: unknown rule id 'REFUND_TOO_BIG' "
        "(see docs/scenarios.md)",
        f"{path}:6:14: step 2.expect.rule: unknown rule id 'refund_count_limt'; "
        "did you mean REFUND_COUNT_LIMIT?",
    ]


def test_yaml_syntax_error_has_position(write):
    """A YAML syntax error names the line where the parser gave up."""
    path = write("syntax.yaml", 'name: x\nsteps:\n  - sale: {card: 1, amount: "1"\n')
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:4:1: YAML syntax:")


def test_references_duplicates_and_variables(write):
    """Dangling step references, duplicate keys and unknown variables are located."""
    path = write("refs.yaml", """\
name: refs
name: again
steps:
  - sale: {card: "4111111111111111", amount: "1.00"}
    id: s1
  - refund: {original: s2, amount: "1.00"}
  - sale: {card: "4111111111111111", amount: "1.00"}
    id: s1
""")
    assert problems_of(path) == [
        f"{path}:2:1: duplicate key 'name'",
        f"{path}:6:14: 's2' is not the id of an earlier step",
        f"{path}:8:5: step id 's1' is used twice",
    ]
    path = write("vars.yaml", 'name: v\nsteps:\n  - echo: {terminal: "${tid}"}\n')
    assert problems_of(path) == [f"{path}:3:12: unknown variable ${{tid}} (vars: none defined)"]


def test_discovery_skips_unrelated_yaml(write, tmp_path):
    """A directory yields scenario files only; a CI workflow beside them is not loaded."""
    write("ci.yaml", "name: CI\non: push\njobs:\n  test:\n    steps:\n      - run: make\n")
    write("one.yaml", 'name: one\nsteps:\n  - echo:\n')
    loaded, problems = load_paths([tmp_path])
    assert problems == [] and [item.name for item in loaded] == ["one"]


def test_empty_and_non_mapping_files(write):
    """Empty files and top-level lists are rejected with a position, not a traceback."""
    assert problems_of(write("empty.yaml", "")) == [
        f"{write('empty.yaml', '')}:1:1: the file is empty: a scenario needs name and steps"]
    path = write("list.yaml", "- a\n- b\n")
    assert problems_of(path) == [f"{path}:1:1: a scenario file is a mapping with name and steps"]
