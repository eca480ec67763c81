"""Snapshots of each console panel at 80x24 and of the wide layout (pytest-textual-snapshot),
fed by a canned admin API so every screen is deterministic. Refresh the baselines with
``pytest tests/host/console --snapshot-update`` after a deliberate change, and look at them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from host.cli import build_parser
from host.console.app import ConsoleApp
from host.console.cli import run_console

sys.path.insert(0, str(Path(__file__).parent))

from console_fakes import FakeApi  # noqa: E402

SIZE = (80, 24)
WIDE = (200, 50)


def _app(theme: str = "default") -> ConsoleApp:
    return ConsoleApp(FakeApi(), theme_name=theme)  # type: ignore[arg-type]


async def _ready(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, ConsoleApp)
    await app.wait_until(lambda: len(app.ladder.rungs) == 4 and app.chain.state == "verified"
                         and bool(app.reviews) and app.clock_view is not None, 5)
    await pilot.press("1", "up")  # the sale's refund: the board loads it
    await app.wait_until(lambda: len(app.board) == 7, 5)
    await pilot.pause()


def _panel(key: str) -> Any:
    async def before(pilot: Pilot[Any]) -> None:
        await _ready(pilot)
        await pilot.press(key)
        await pilot.pause()

    return before


@pytest.mark.parametrize("key", ["1", "2", "3", "4", "5"],
                         ids=["ladder", "refund_board", "ledger", "clock", "reviews"])
def test_snapshot_each_panel_at_80x24(key: str, snap_compare: Any) -> None:
    """Each panel as its own tab at 80x24 (ladder, board, T-accounts, clock, reviews)."""
    assert snap_compare(_app(), terminal_size=SIZE, run_before=_panel(key))


def test_snapshot_wide_screen_side_by_side(snap_compare: Any) -> None:
    """At 200x50 the five panels sit side by side and the tab bar is gone."""
    assert snap_compare(_app(), terminal_size=WIDE, run_before=_ready)


def test_snapshot_field_view(snap_compare: Any) -> None:
    """Enter on a rung: the message field by field with the PAN masked."""

    async def before(pilot: Pilot[Any]) -> None:
        await _ready(pilot)
        await pilot.press("up", "up", "enter")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=SIZE, run_before=before)


def test_snapshot_projector_theme(snap_compare: Any) -> None:
    """--theme projector: heavy borders, bold text, white and yellow on black."""
    assert snap_compare(_app("projector"), terminal_size=SIZE, run_before=_panel("2"))


def test_narrow_is_tabs_and_wide_is_side_by_side(run: Any) -> None:
    """Under 150 columns one panel shows at a time; from 150 all five and no tab bar."""

    async def script(size: tuple[int, int]) -> tuple[bool, list[bool]]:
        app = _app()
        async with app.run_test(size=size) as pilot:
            await _ready(pilot)
            shown = [app.query_one(f"#{n}").display
                     for n in ("ladder", "board", "ledger", "clock", "reviews")]
            return app.query_one("#tabs").display, shown

    assert run(script(SIZE)) == (True, [True, False, False, False, False])
    assert run(script(WIDE)) == (False, [True] * 5)


@pytest.mark.parametrize("argv, message", [
    (["console"], "give --admin URL"),
    (["console", "--admin", "127.0.0.1:8584", "--token", "t"], "expected a URL"),
    (["console", "--ready-file", "/nonexistent/ready.json"], "no such file"),
])
def test_console_without_a_host_location_exits_2(argv: list[str], message: str,
                                                 capsys: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Options that do not locate a host: one line on stderr saying what, exit 2."""
    monkeypatch.delenv("POSLAB_ADMIN_TOKEN", raising=False)
    assert run_console(build_parser().parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_ready_file_gives_the_admin_url_and_token(tmp_path: Path) -> None:
    """--ready-file: the admin port and token come from the host's ready file."""
    from host.console.client import connection

    ready = tmp_path / "host.json"
    ready.write_text('{"iso_port": 1, "admin_port": 8584, "pid": 2, "admin_token": "tk"}')
    assert connection(None, None, str(ready)) == ("http://127.0.0.1:8584", "tk")


def test_an_unreachable_host_is_a_notification_not_a_traceback(run: Any) -> None:
    """A console pointed at a closed port says it cannot reach the host and keeps retrying."""
    import socket

    from host.console.client import AdminApi

    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def script() -> tuple[str, list[str]]:
        app = ConsoleApp(AdminApi(f"http://127.0.0.1:{port}", "t"))
        async with app.run_test(size=SIZE):
            await app.wait_until(lambda: app.stream_state == "reconnecting"
                                 and any("cannot reach" in str(n.message)
                                         for n in app._notifications), 5)
            return app.stream_state, [str(n.message) for n in app._notifications]

    state, notes = run(script())
    assert state == "reconnecting" and not any("Traceback" in n for n in notes)


def _sent_after(run: Any, *groups: tuple[str, ...]) -> list[tuple[str, str, Any]]:
    """The commands a console sends its canned host after each group of keys (a pause
    between groups), once it has sent one."""

    async def script() -> list[tuple[str, str, Any]]:
        api = FakeApi()
        app = ConsoleApp(api)  # type: ignore[arg-type]
        async with app.run_test(size=SIZE) as pilot:
            await _ready(pilot)
            for keys in groups:
                await pilot.press(*keys)
                await pilot.pause()
            await app.wait_until(lambda: bool(api.sent), 5)
            return api.sent

    return run(script())


def test_typing_a_name_in_the_prompt_does_not_fire_the_clock_keys(run: Any) -> None:
    """Letters typed as an approver's name go to the prompt: 'c', 'd', 'h' move no clock."""
    assert _sent_after(run, ("5", "a"), (*"chad", "enter")) == [
        ("POST", "/reviews/1/approve", {"approver": "chad"})]


def test_r_rejects_the_highlighted_review_with_a_name_and_a_reason(run: Any) -> None:
    """r asks who rejects and why, then posts both; Esc at the reason sends nothing."""
    assert _sent_after(run, ("5", "r", *"carol", "enter", "escape"),  # changed her mind
                       ("r", *"carol", "enter", *"no receipt", "enter")) == [
        ("POST", "/reviews/1/reject", {"approver": "carol", "reason": "no receipt"})]
