"""The runner against a fake host: failure rendering, reports, determinism, timeouts, CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from scenarios import cli
from scenarios.loader import load_file
from scenarios.report import render_failure, write_json, write_junit
from scenarios.runner import run_all

PAN = "4111111111111111"
FAILING = f"""\
name: over-refund expected approved
tags: [refund]
steps:
  - sale: {{card: "{PAN}", amount: "100.00"}}
    id: s1
  - refund: {{original: s1, amount: "60.00", reason: return}}
  - refund: {{original: s1, amount: "50.00"}}
    expect: {{response: "00"}}
  - echo:
"""
PASSING = f"""\
name: everything the fake host does
steps:
  - sale: {{card: "{PAN}", amount: "100.00"}}
    id: s1
  - refund: {{original: s1, amount: "60.00", reason: return}}
    expect: {{response: "00", remaining: "40.00"}}
  - refund: {{original: s1, amount: "50.00"}}
    expect: {{response: "13", rule: REFUND_EXCEEDS_REMAINING, remaining: "40.00"}}
  - sale: {{card: "4000000000000119", amount: "10.00"}}
    expect: {{timeout: true}}
  - check: {{transaction: s1, refunded: "60.00", remaining: "40.00"}}
  - check: {{ledger: verified}}
  - send_raw: "00000102"
    expect: {{closed: true}}
  - echo: {{code: sign_on}}
timeout_s: 0.3
"""


def run_file(run, factory, path: Path, seed: int | None = None):
    loaded, problems = load_file(path)
    assert problems == []
    return run(run_all(loaded, factory, seed), timeout=60)


def test_passing_scenario_covers_timeout_raw_and_checks(run, fake_factory, write):
    """Answers, a timeout with its reversal, a closed connection and admin checks all pass."""
    (outcome,) = run_file(run, fake_factory, write("ok.yaml", PASSING))
    assert outcome.status == "passed", render_failure(outcome)
    timeout_step = outcome.steps[3]
    assert [e.label for e in timeout_step.exchanges] == ["sale", "reversal"]
    assert timeout_step.exchanges[1].request["t"] == "0400"
    assert timeout_step.exchanges[1].response["39"] == "00"


def test_failure_rendering_shows_expected_actual_rule_and_masked_fields(run, fake_factory, write):
    """A failed step is rendered with file:line, expected vs actual, rule and masked fields."""
    path = write("bad.yaml", FAILING)
    (outcome,) = run_file(run, fake_factory, path, seed=42)
    assert outcome.status == "failed"
    assert [s.status for s in outcome.steps] == ["passed", "passed", "failed", "not run"]
    text = render_failure(outcome)
    assert f"step 3 (refund) at {path}:7" in text
    assert "expected: response 00 (Approved)" in text
    assert "actual:   response 13 (Invalid amount), rule REFUND_EXCEEDS_REMAINING" in text
    assert "host rule: REFUND_EXCEEDS_REMAINING -- Refund exceeds the remaining" in text
    assert "DE2   Primary account number                   411111******1111" in text
    assert "remaining refundable 40.00 CNY" in text
    assert "--seed 42" in text
    assert PAN not in text


def test_same_seed_same_output(run, fake_factory, write):
    """Two runs with one seed render identically; another seed changes the STANs."""
    path = write("bad.yaml", FAILING)
    first = render_failure(run_file(run, fake_factory, path, seed=7)[0])
    second = render_failure(run_file(run, fake_factory, path, seed=7)[0])
    other = render_failure(run_file(run, fake_factory, path, seed=8)[0])
    assert first == second
    assert first != other


def test_junit_and_json_reports(run, fake_factory, write, tmp_path):
    """JUnit XML parses with one failure; JSON parses and never holds the full PAN."""
    outcomes = run_file(run, fake_factory, write("bad.yaml", FAILING))
    outcomes += run_file(run, fake_factory, write("ok.yaml", PASSING))
    write_junit(outcomes, tmp_path / "j.xml")
    write_json(outcomes, tmp_path / "r.json")
    suite = ET.parse(tmp_path / "j.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failure = suite.find("testcase/failure")
    assert failure is not None and "REFUND_EXCEEDS_REMAINING" in (failure.text or "")
    text = (tmp_path / "r.json").read_text()
    doc = json.loads(text)
    assert [s["status"] for s in doc["scenarios"]] == ["failed", "passed"]
    assert PAN not in text and PAN not in (tmp_path / "j.xml").read_text()


def test_remote_without_admin_skips_checks(run, fake_factory, write):
    """Against a host without admin API, check steps are skipped with the reason."""
    from scenarios.targets import remote

    async def via_remote(scenario, start):
        local = await fake_factory(scenario, start)
        target = remote(f"127.0.0.1:{local.iso_port}", None, None, scenario, None, None, None)
        target._runtime, target._tmpdir = local._runtime, local._tmpdir
        return target

    path = write("c.yaml", f'name: c\nsteps:\n  - sale: {{card: "{PAN}", amount: "1.00"}}\n'
                           "    id: s1\n  - check: {transaction: s1, refunded: \"0\"}\n")
    (outcome,) = run_file(run, via_remote, path)
    assert outcome.status == "passed"
    assert outcome.steps[1].status == "skipped"
    assert "no admin API" in outcome.steps[1].actual


@pytest.fixture
def cli_on_fake(monkeypatch, fake_factory):
    """The CLI with its in-process hosts replaced by the fake host."""
    monkeypatch.setattr(cli, "make_target_factory", lambda remote: fake_factory)
    monkeypatch.setattr("scenarios.loop.release_threads", lambda: None)


def test_cli_exit_codes(cli_on_fake, write, tmp_path, capsys):
    """run exits 0 when all pass, 1 when one fails, 2 on an invalid file (nothing run)."""
    ok = write("ok.yaml", PASSING)
    bad = write("bad.yaml", FAILING)
    broken = write("broken.yaml", "name: x\nsteps:\n  - sael: {}\n")
    assert cli.main(["run", str(ok)]) == 0
    assert cli.main(["run", str(ok), str(bad), "--junit", str(tmp_path / "j.xml")]) == 1
    out = capsys.readouterr().out
    assert "FAILED over-refund expected approved" in out and "2 scenarios:" in out
    assert cli.main(["run", str(ok), str(broken)]) == 2
    out = capsys.readouterr().out
    assert f"{broken}:3:5: unknown key 'sael'" in out and "nothing was run" in out
    assert cli.main(["run", str(ok), str(bad), "-k", "not over"]) == 0
    assert cli.main(["run", str(ok), str(bad), "--tags", "refund"]) == 1


def test_cli_validate_and_new(write, tmp_path, capsys):
    """new writes a template that validate accepts; validate exits 2 on a broken file."""
    assert cli.main(["new", "My first scenario", "--dir", str(tmp_path)]) == 0
    template = tmp_path / "my_first_scenario.yaml"
    assert 'name: "My first scenario"' in template.read_text()
    assert cli.main(["validate", str(template)]) == 0
    assert cli.main(["new", "My first scenario", "--dir", str(tmp_path)]) == 1
    broken = write("broken.yaml", 'name: x\nsteps:\n  - sale: {card: "1", amount: 1.5}\n')
    assert cli.main(["validate", str(broken)]) == 2
    assert "write amounts as quoted decimal strings" in capsys.readouterr().out
