"""Scenarios on the China UnionPay profile, against the CUP responder of
``tests/cup_responder.py`` (plain pyiso8583 and the public CUP layouts, not poslab's codec):
the runner's terminal speaks CUP, ``--profile`` wins over the file, steps and scenarios
declared for other profiles are skipped with the reason, and a bad profile name is a file
error with its line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cup_responder import CupResponder, serve

from protocol.cup_private import CupTotals, SchemeTotals
from scenarios import cli
from scenarios.loader import load_file
from scenarios.runner import run_all
from scenarios.schema import Scenario
from scenarios.targets import Target, deck_from_config

UNIONPAY, VISA, SILENT = "6212345678901265", "4111111111111111", "4000000000000119"
CUP_DAY = f"""\
name: a CUP day
terminal: {{profile: cup}}
steps:
  - sale: {{card: "{UNIONPAY}", amount: "100.00", entry: chip}}
    id: s1
  - sale: {{card: "{VISA}", amount: "50.00"}}
    id: s2
  - void: {{original: s2}}
  - refund: {{original: s1, amount: "30.00", reason: return}}
  - echo:
    profiles: [iso87-ascii, iso87-ascii-tpdu]
  - sale: {{card: "{SILENT}", amount: "10.00"}}
    expect: {{timeout: true}}
  - settle:
"""


@pytest.fixture
def responder(run: Any) -> Iterator[tuple[CupResponder, int]]:
    """A CUP responder on a free loopback port (silent to one card): (it, its port)."""
    host = CupResponder(silent_pans={SILENT})
    server = run(serve(host))
    yield host, server.sockets[0].getsockname()[1]
    server.close()


def _run(run: Any, path: Path, port: int) -> Any:
    """Run the one scenario of ``path`` against the responder; its outcome."""
    loaded, problems = load_file(path)
    assert problems == []
    (outcome,) = run(run_all(loaded, _factory(port)), timeout=60)
    return outcome


def _factory(port: int) -> Callable[[Scenario, datetime], Any]:
    async def target(scenario: Scenario, start: datetime) -> Target:
        return Target("127.0.0.1", port, "TERM0001", "MERCHANT0000001", "CNY",
                      no_admin_reason="the CUP responder has no admin API",
                      cards=deck_from_config(None))

    return target


def test_cup_scenario_speaks_cup_through_the_terminals_cup_session(
        responder: tuple[CupResponder, int], write: Callable[[str, str], Path],
        run: Any) -> None:
    """With terminal.profile cup the runner signs on first, sends the sale, void and 0220
    refund the CUP session builds (DE61 naming the originals), reverses the unanswered sale
    with 0400/98, settles with CUP totals and uploads on result flag 2; the echo step, declared
    for the generic profiles only, is skipped with that reason."""
    host, port = responder
    outcome = _run(run, write("day.yaml", CUP_DAY), port)
    assert outcome.status == "passed", (outcome.error, [(s.status, s.actual)
                                                        for s in outcome.steps])
    echo = outcome.steps[4]
    assert echo.status == "skipped"
    assert echo.actual == ("not on the cup profile: the file declares this step for "
                           "iso87-ascii, iso87-ascii-tpdu only")
    seen = [(r["t"], r.get("3", ""), r.get("60", "")[:2]) for r in host.seen]
    assert seen == [("0800", "", "00"), ("0200", "000000", "22"), ("0200", "000000", "22"),
                    ("0200", "200000", "23"), ("0220", "200000", "25"),
                    ("0200", "000000", "22"), ("0400", "000000", "22"), ("0500", "", "00"),
                    ("0320", "", "00"), ("0320", "", "00")]
    _, sale1, sale2, void, refund, silent, reversal, settlement, *_ = host.seen
    assert void["61"] == "000042" + sale2["11"] + "0000" and void["37"] == "000000000002"
    assert refund["61"] == "000042" + sale1["11"] + "1204" and refund["37"] == "000000000001"
    assert reversal["39"] == "98" and reversal["11"] == silent["11"]
    totals = CupTotals.parse(settlement["48"])
    assert totals.domestic == SchemeTotals(10000, 1, 3000, 1)
    assert totals.foreign == SchemeTotals(5000, 1, 5000, 1)
    assert "result flag 2" in outcome.steps[-1].actual


def test_command_line_profile_wins_over_the_file(
        responder: tuple[CupResponder, int], write: Callable[[str, str], Path],
        tmp_path: Path) -> None:
    """``run --profile cup`` makes a file written for iso87-ascii speak CUP (0800 sign-on,
    then a CUP 0200) against a running host."""
    host, port = responder
    path = write("generic.yaml", f"""\
name: a sale
terminal: {{profile: iso87-ascii}}
steps:
  - sale: {{card: "{UNIONPAY}", amount: "1.00"}}
""")
    report = tmp_path / "r.json"
    code = cli.main(["run", str(path), "--profile", "cup", "--host", f"127.0.0.1:{port}",
                     "--json", str(report)])
    assert code == 0, report.read_text()
    assert [(r["t"], r.get("60", "")[:2]) for r in host.seen] == [("0800", "00"),
                                                                 ("0200", "22")]


def test_scenario_declared_for_other_profiles_is_skipped_with_the_reason(
        responder: tuple[CupResponder, int], write: Callable[[str, str], Path],
        run: Any) -> None:
    """A scenario whose ``profiles:`` leaves out cup sends nothing and is reported skipped,
    every step with the reason."""
    host, port = responder
    path = write("generic_only.yaml", f"""\
name: generic only
profiles: [iso87-ascii]
terminal: {{profile: cup}}
steps:
  - sale: {{card: "{VISA}", amount: "1.00"}}
  - echo:
""")
    outcome = _run(run, path, port)
    assert outcome.status == "skipped" and host.seen == []
    reason = "not on the cup profile: the file declares this scenario for iso87-ascii only"
    assert outcome.error == reason
    assert [(s.status, s.actual) for s in outcome.steps] == [("skipped", reason)] * 2


def test_undeclared_step_without_cup_meaning_is_an_error_not_a_pass(
        responder: tuple[CupResponder, int], write: Callable[[str, str], Path],
        run: Any) -> None:
    """An echo test (no CUP meaning) that the file did not declare stops the scenario with an
    error that says how to declare it; it never passes silently."""
    _host, port = responder
    path = write("echo.yaml", "name: echo on cup\nterminal: {profile: cup}\nsteps:\n  - echo:\n")
    outcome = _run(run, path, port)
    step = outcome.steps[0]
    assert outcome.status == "error" and step.status == "error"
    assert "echo" in step.actual and "no meaning on the cup profile" in step.actual
    assert "profiles:" in step.actual


def test_broken_profile_value_names_the_file_and_line(
        write: Callable[[str, str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    """``profile: cpu`` (or a bad name in ``profiles:``) is a file error at its line with the
    valid names, and nothing runs; ``--profile cpu`` is a usage error."""
    path = write("typo.yaml", "name: typo\nterminal:\n  profile: cpu\nsteps:\n"
                              "  - sale: {card: \"4111111111111111\", amount: \"1.00\"}\n"
                              "    profiles: [iso87-asci]\n")
    assert cli.main(["validate", str(path)]) == 2
    out = capsys.readouterr().out
    assert f"{path}:3:" in out and "unknown wire profile 'cpu'" in out and "cup" in out
    assert f"{path}:6:" in out and "'iso87-asci'" in out
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", str(path), "--profile", "cpu"])
    assert exited.value.code == 2


def test_json_report_of_a_cup_run_masks_pans(
        responder: tuple[CupResponder, int], write: Callable[[str, str], Path],
        tmp_path: Path) -> None:
    """The JSON report of a CUP run, upload records included, carries no full PAN."""
    _host, port = responder
    path = write("day.yaml", CUP_DAY)
    report = tmp_path / "r.json"
    assert cli.main(["run", str(path), "--host", f"127.0.0.1:{port}", "--json",
                     str(report)]) == 0
    text = report.read_text()
    assert json.loads(text)["scenarios"][0]["status"] == "passed"
    assert UNIONPAY not in text and VISA not in text and "621234" in text
