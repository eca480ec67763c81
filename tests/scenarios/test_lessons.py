"""Lesson mode (run --lesson) plays the library's lessons step by step against a running host."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import scenarios
from scenarios import cli

LIBRARY = Path(scenarios.__file__).parent / "library"
LESSONS = sorted(LIBRARY.glob("lesson_*.yaml"))
TOKEN = "lesson-token"
# A Friday evening: the lessons' business days cross a weekend on this host.
FRIDAY = datetime(2026, 3, 6, 18, 0, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture
def host(run: Any, tmp_path: Path) -> Any:
    """A running poslab host (simulated clock at FRIDAY) and its --host/--admin arguments."""
    from host.clock import ManualClock
    from host.config import load_config
    from host.runtime import HostRuntime
    from scenarios.targets import _quiet_log

    runtime = HostRuntime(log=_quiet_log())
    iso, admin = run(runtime.start(load_config(None), str(tmp_path / "host.db"),
                                   ManualClock(FRIDAY), admin_token=TOKEN))
    yield ["--host", f"127.0.0.1:{iso}", "--admin", f"http://127.0.0.1:{admin}",
           "--token", TOKEN]
    run(runtime.stop())


@pytest.fixture(autouse=True)
def _keep_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI runs on the test loop: it must not stop the reactor's thread pool."""
    monkeypatch.setattr("scenarios.loop.release_threads", lambda: None)


def test_the_library_ships_three_lessons() -> None:
    """Three lesson files, each with a say: line on every step."""
    import yaml

    assert len(LESSONS) == 3
    for path in LESSONS:
        steps = yaml.safe_load(path.read_text(encoding="utf-8"))["steps"]
        assert all(step.get("say") for step in steps), path.name


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_each_lesson_plays_green_against_a_running_host_twice(
        lesson: Path, host: list[str], tmp_path: Path, capsys: Any) -> None:
    """--lesson --no-wait passes every step, shows each say: line and effect, and passes
    again on the same host (new STANs, not retransmissions)."""
    stans: list[set[str]] = []
    for attempt in (1, 2):
        report = tmp_path / f"r{attempt}.json"
        status = cli.main(["run", str(lesson), "--lesson", "--no-wait", *host,
                           "--json", str(report)])
        out = capsys.readouterr().out
        assert status == 0, out
        (outcome,) = json.loads(report.read_text())["scenarios"]
        assert {s["status"] for s in outcome["steps"]} == {"passed"}
        assert "press Enter" not in out
        assert f"[{len(outcome['steps'])}/{len(outcome['steps'])}]" in out
        assert "→ 0200 sale" in out and ("← 0210 sale" in out or "← no answer" in out)
        assert "4111111111111111" not in out and "5555555555554444" not in out
        stans.append(set(re.findall(r"STAN (\d{6})", out)))
    assert stans[0] and not stans[0] & stans[1]


def test_a_lesson_waits_for_enter_before_each_step(host: list[str], capsys: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --no-wait each step waits for a line of input; at end of input it plays on."""
    monkeypatch.setattr("sys.stdin", io.StringIO("\n\n"))
    lesson = LIBRARY / "lesson_terminal_never_got_an_answer.yaml"
    assert cli.main(["run", str(lesson), "--lesson", *host]) == 0
    out = capsys.readouterr().out
    assert out.count("press Enter to send") == 3  # two lines read, then end of input
    assert out.index("[1/4]") < out.index("press Enter") < out.index("[2/4]")


@pytest.mark.parametrize("argv, message", [
    (["--lesson"], "give --host HOST:PORT and --admin URL"),
    (["--no-wait"], "--no-wait belongs to --lesson"),
])
def test_lesson_options_misused_exit_2(argv: list[str], message: str, capsys: Any) -> None:
    """--lesson without a running host, or --no-wait alone: exit 2 saying what is missing."""
    lesson = LIBRARY / "lesson_terminal_never_got_an_answer.yaml"
    assert cli.main(["run", str(lesson), *argv]) == 2
    assert message in capsys.readouterr().out
