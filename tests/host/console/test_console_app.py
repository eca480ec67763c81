"""The host console (Textual pilot) attached to a live host: ladder (and its backfill),
T-accounts, field view, refund board, hash-chain status, clock keys and two-approver reviews,
driven by a terminal over real TCP."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text
from textual.widgets import Input

from host.console.app import ConsoleApp
from host.console.client import AdminApi
from host.console.model import CURRENT, DONE
from host.console.panels import FieldsScreen, LadderPanel
from host.ledger import drop_append_only_triggers
from tests.host.console.conftest import PAN, TOKEN, LiveHost

PAYABLE = "merchant_payable:MERCHANT0000001"
WAIT_S = 15.0
"""A deadline for state that has no latency promise (a loaded CI machine is slow)."""


def _console(host: LiveHost) -> ConsoleApp:
    return ConsoleApp(AdminApi(host.admin_url, TOKEN))


async def _live(app: ConsoleApp) -> None:
    await app.wait_until(lambda: app.taccounts.head is not None, WAIT_S)


def _balance(app: ConsoleApp, account: str) -> int | None:
    acct = app.taccounts.accounts.get((account, "CNY"))
    return acct.balance_minor if acct is not None else None


def test_a_terminal_sale_shows_on_the_ladder_and_t_accounts_within_a_second(
        live_host: LiveHost, run: Any) -> None:
    """A sale answered over TCP is on the ladder and in the T-accounts under 1 s later."""

    async def script() -> float:
        app = _console(live_host)
        async with app.run_test(size=(80, 24)):
            await _live(app)
            answer = await live_host.sale("000401", 12_500)
            answered = time.monotonic()
            rrn = answer["37"]
            await app.wait_until(lambda: any(r.rrn == rrn and r.direction == "out"
                                             for r in app.ladder.rungs)
                                 and _balance(app, PAYABLE) == -12_500
                                 and _balance(app, "scheme_settlement") == 12_500, 1.0)
            return time.monotonic() - answered

    assert run(script()) < 1.0


def test_a_console_attached_after_a_sale_shows_it_on_its_ladder(live_host: LiveHost,
                                                                 run: Any) -> None:
    """A sale answered before the console attaches is on its ladder (request and answer, its
    fields from the host's record, PAN masked) and in its T-accounts; messages after the attach
    follow it; every amount carries the currency's letters, never DE49's digits."""

    async def script() -> tuple[str, list[Any], int | None]:
        earlier = await live_host.sale("000801", 12_500)
        app = _console(live_host)
        async with app.run_test(size=(80, 24)):
            await _live(app)
            await app.wait_until(lambda: app.backfilled, WAIT_S)
            await live_host.sale("000802", 3_000)
            await app.wait_until(lambda: len(app.ladder.rungs) == 4
                                 and _balance(app, PAYABLE) == -15_500, WAIT_S)
            rows = [app.query_one(LadderPanel).get_row_at(n) for n in range(4)]
            assert [str(row[4]) for row in rows] == ["125.00 CNY", "125.00 CNY", "30.00 CNY",
                                                     "30.00 CNY"]
            return earlier["37"], list(app.ladder.rungs), _balance(app, PAYABLE)

    rrn, rungs, payable = run(script())
    request, answer, *live = rungs
    assert [r.stan for r in rungs] == ["000801", "000801", "000802", "000802"]
    assert (request.direction, request.mti, request.txn_type) == ("in", "0200", "sale")
    assert (answer.direction, answer.mti, answer.rc, answer.rrn) == ("out", "0210", "00", rrn)
    assert request.recorded and answer.recorded and not live[0].recorded
    assert ("2", "Primary account number", "411111******1111", "") in answer.fields
    assert ("4", "Amount, transaction", "000000012500", "125.00 CNY") in answer.fields
    assert not any(PAN in cell for r in rungs for row in r.fields for cell in row)
    assert payable == -12_500 - 3_000


def test_enter_opens_the_field_view_with_the_pan_masked(live_host: LiveHost, run: Any) -> None:
    """Enter on a ladder rung shows its fields one by one; the PAN only masked."""

    async def script() -> list[tuple[str, ...]]:
        app = _console(live_host)
        async with app.run_test(size=(80, 24)) as pilot:
            await _live(app)
            await live_host.sale("000501", 3_000)
            await app.wait_until(lambda: len(app.ladder.rungs) == 2, WAIT_S)
            await pilot.press("1", "up", "enter")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, FieldsScreen)
            return [tuple(row) for row in screen.rung.fields]

    rows = run(script())
    assert ("2", "Primary account number", "411111******1111", "") in rows
    assert not any(PAN in cell for row in rows for cell in row)


def test_the_board_follows_a_partial_refund_to_the_card(live_host: LiveHost,
                                                        run: Any) -> None:
    """Sale, partial refund, cut-off and business days: every stage done, each with a time."""

    async def script() -> list[Any]:
        app = _console(live_host)
        async with app.run_test(size=(80, 24)) as pilot:
            await _live(app)
            sale = await live_host.sale("000601", 20_000)
            await live_host.refund("000602", sale["37"], 5_000)
            await app.wait_until(lambda: len(app.ladder.rungs) == 4, WAIT_S)
            await pilot.press("1", "up", "up", "up")
            await app.wait_until(lambda: app.selected == sale["37"] and len(app.board) == 7,
                                 WAIT_S)
            assert [s.state for s in app.board][3:5] == [DONE, CURRENT]
            await pilot.press("c")  # to the cut-off: the refund settles in a batch
            await app.wait_until(lambda: app.board[4].state == DONE, WAIT_S)
            posting_day = app.board[5].detail.removeprefix("business day ")
            while str((app.clock_view or {}).get("now", ""))[:10] < posting_day:
                before = (app.clock_view or {}).get("now")
                await pilot.press("d")  # a business day nearer the card
                await app.wait_until(
                    lambda before=before: (app.clock_view or {}).get("now") != before, WAIT_S)
            await app.wait_until(lambda: app.board[6].state == DONE, WAIT_S)
            return app.board

    board = run(script(), 90)  # a dozen business days of jobs on a loaded machine
    assert [s.state for s in board] == [DONE, DONE, "skipped", DONE, DONE, DONE, DONE]
    assert all(s.at for s in board if s.state == DONE)
    assert "50.00 CNY" in board[3].detail and "411111******1111" in board[3].detail


def test_two_approvers_release_a_large_refund_from_the_console(live_host: LiveHost,
                                                               run: Any) -> None:
    """a + name approves; the same name again is refused; a second name releases it."""

    async def approve(pilot: Any, name: str) -> None:
        await pilot.press("5", "a")
        await pilot.pause()
        pilot.app.screen.query_one(Input).value = name
        await pilot.press("enter")

    async def script() -> tuple[list[str], int | None]:
        app = _console(live_host)
        async with app.run_test(size=(80, 24)) as pilot:
            await _live(app)
            sale = await live_host.sale("000701", 6_000_000)
            refund = await live_host.refund("000702", sale["37"], 5_500_000)
            assert refund["39"] == "00"
            await app.wait_until(lambda: bool(app.reviews), WAIT_S)
            await approve(pilot, "alice")
            await app.wait_until(lambda: len(app.reviews[0]["approved_by"]) == 1, WAIT_S)
            await approve(pilot, "ALICE")
            await approve(pilot, "bob")
            await app.wait_until(lambda: app.reviews[0]["state"] == "approved", WAIT_S)
            await app.wait_until(lambda: _balance(app, "refunds_under_review") == 0, WAIT_S)
            notes = [str(n.message) for n in app._notifications]
            return notes, _balance(app, "refunds_under_review")

    notes, held = run(script())
    assert any("already approved" in n for n in notes)
    assert held == 0


def test_a_ledger_altered_behind_the_hosts_back_shows_a_broken_chain(live_host: LiveHost,
                                                                    run: Any) -> None:
    """One ledger amount changed in the database: v re-verifies, the status line and the ledger
    panel say BROKEN with the violated invariant."""

    async def script() -> tuple[str, str]:
        app = _console(live_host)
        async with app.run_test(size=(80, 24)) as pilot:
            await _live(app)
            await live_host.sale("000901", 4_000)
            await app.wait_until(lambda: _balance(app, PAYABLE) == -4_000
                                 and app.chain.state == "verified", WAIT_S)
            with live_host.runtime.service.engine.begin() as conn:
                drop_append_only_triggers(conn)
                conn.execute(text("UPDATE ledger_entry SET amount_minor = amount_minor + 1 "
                                  "WHERE id = (SELECT MIN(id) FROM ledger_entry)"))
            await pilot.press("3", "v")
            await app.wait_until(lambda: app.chain.state == "broken", WAIT_S)
            await pilot.pause()
            strips = app.screen._compositor.render_strips()  # noqa: SLF001
            return app.chain.text, "\n".join(strip.text for strip in strips)

    chain, screen = run(script())
    assert chain.startswith("BROKEN: ") and "first: " in chain
    assert f"hash chain: {chain[:30]}" in screen and f"chain: {chain[:20]}" in screen


def test_clock_keys_move_the_simulated_clock(live_host: LiveHost, run: Any) -> None:
    """h adds an hour; c moves to the next cut-off; the clock panel follows."""

    async def script() -> tuple[str, str, str]:
        app = _console(live_host)
        async with app.run_test(size=(80, 24)) as pilot:
            await _live(app)
            await app.wait_until(lambda: app.clock_view is not None, WAIT_S)
            before = str(app.clock_view and app.clock_view["now"])
            await pilot.press("h")
            await app.wait_until(lambda: app.clock_view is not None
                                 and app.clock_view["now"] != before, WAIT_S)
            hour = str(app.clock_view and app.clock_view["now"])
            await pilot.press("c")
            await app.wait_until(lambda: app.clock_view is not None
                                 and app.clock_view["now"] != hour, WAIT_S)
            return before, hour, str(app.clock_view and app.clock_view["now"])

    before, hour, cutoff = run(script())
    assert before.startswith("2026-03-02T02:00") and hour.startswith("2026-03-02T03:00")
    assert cutoff > hour


def test_a_wrong_token_is_said_plainly(live_host: LiveHost, run: Any) -> None:
    """The host refuses the stream: the console says why (the host's message), no traceback."""

    async def script() -> tuple[str, list[str]]:
        app = ConsoleApp(AdminApi(live_host.admin_url, "not-the-token"))
        async with app.run_test(size=(80, 24)):
            await app.wait_until(lambda: app.stream_state.startswith("refused"), WAIT_S)
            return app.stream_state, [str(n.message) for n in app._notifications]

    state, notes = run(script())
    assert state == "refused (401)"
    assert "GET /events: missing or wrong bearer token" in notes
