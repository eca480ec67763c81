"""Pilot tests of the Textual terminal against the in-test fake host over loopback TCP.

These cover what the real host cannot be made to do on demand (hold an answer until the
reversal arrives) and screen details; the main flows run against a real ``poslab-host`` in
``test_term_realhost.py``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from term_fakehost import FakeHostState
from term_helpers import (
    PANS,
    assert_no_full_pan,
    drive,
    refund,
    result,
    sale,
    screen_text,
    until,
)
from textual.pilot import Pilot

from terminal.app import PosApp
from terminal.config import TerminalConfig
from terminal.flow import Step
from terminal.journal import TxnStatus
from terminal.screens import JournalScreen, SettlementScreen


def test_sale_approved_with_receipt(config: TerminalConfig, run: Any) -> None:
    """A keyed sale shows APPROVED and a slip with masked PAN, RRN and auth code, saved as a
    text file."""
    seen: dict[str, str] = {}

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await pilot.press("1", *"1250", "enter")
        await pilot.press("i")
        seen["text"] = await result(app, pilot)

    app = drive(config, run, script)
    text = seen["text"]
    assert "APPROVED" in text and "411111******1111" in text and "12.50" in text
    assert "A1B2C3" in text and "CHIP" in text
    files = list((config.data_dir / "receipts").glob("*.txt"))
    assert len(files) == 1 and "CUSTOMER COPY" in files[0].read_text()
    assert "CARDHOLDER SIGNATURE" in files[0].read_text()
    assert "4111111111111111" not in files[0].read_text()
    assert [t.status for t in app.journal] == [TxnStatus.APPROVED]


def test_refund_amount_defaults_to_remaining(config: TerminalConfig, run: Any) -> None:
    """Accepting the refund amount unchanged refunds exactly what is left of the sale."""

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "3000")
        assert "APPROVED" in await refund(app, pilot, None)

    app = drive(config, run, script)
    assert [t.amount_minor for t in app.journal] == [3000, 3000]


def test_wrong_supervisor_password_blocks(config: TerminalConfig, run: Any) -> None:
    """A wrong supervisor password keeps the refund on the password step; nothing is sent."""

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "100")
        await pilot.press("2", "enter", "enter", "1", "i", *"9999", "enter")
        assert app.state.step is Step.SUPERVISOR
        assert "Wrong supervisor password" in screen_text(pilot)
        await pilot.press("escape")
        assert app.state.step is Step.MENU

    app = drive(config, run, script)
    assert len(app.journal) == 1


def test_inspector_shows_masked_traffic(config: TerminalConfig, run: Any) -> None:
    """The message inspector lists sent and received messages with MTI and breakdown, and
    neither its text nor its hex dump contains a full PAN."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "700", mode="s")
        await sale(app, pilot, "800", mode="t")
        await pilot.press("f2")
        await pilot.pause()
        texts.append(screen_text(pilot))
        assert_no_full_pan(pilot)

    app = drive(config, run, script)
    from terminal.inspector import render

    dump = "\n".join(line for item in app.traffic for line in render(item))
    assert "0200" in dump and "0210" in dump and "411111******1111" in dump
    assert "contactless" in dump and "swipe" in dump and "Track 2 data" in dump
    assert not any(pan in dump.replace(" ", "") for pan in PANS)
    assert "34 31 31 31 31 31 31 31 31 31 31" not in dump  # the PAN's bytes in hex
    # The pane opens on the last sale's request (8.00, contactless), not on the first one.
    assert "SENT 0200" in texts[0] and "8.00 CNY" in texts[0] and "7.00 CNY" not in texts[0]


def test_late_approval_after_reversal_is_never_shown_approved(
        config: TerminalConfig, run: Any, fake_host: tuple[int, FakeHostState]) -> None:
    """A 0210 approval that arrives after the 0400 went out is logged as late, the screen
    says NO RESPONSE, and the journal keeps the transaction reversed (reliability T4)."""
    texts: list[str] = []
    fake_host[1].hold_answers = True

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        texts.append(await sale(app, pilot, "990"))

    app = drive(config, run, script)
    assert "NO RESPONSE" in texts[0] and "APPROVED" not in texts[0]
    txn = app.journal.get(1)
    assert txn.status is TxnStatus.REVERSED and txn.late_responses == 1
    late = [t for t in app.traffic if t.late]
    assert [t.mti for t in late] == ["0210"]


def test_echo_on_timer(config: TerminalConfig, run: Any,
                       fake_host: tuple[int, FakeHostState]) -> None:
    """With a short echo period the terminal sends 0800 echoes after its sign-on and stays
    ONLINE."""
    fast = replace(config, echo_interval_s=0.05)
    app = PosApp(fast)
    received = fake_host[1].received

    async def go() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: received.count("0800") >= 3, what="echoes")
            assert app.link_state == "ONLINE"

    run(go())
    sent = [t.fields.get("70") for t in app.traffic if t.direction == "sent"]
    assert sent[0] == "001" and sent[1:3] == ["301", "301"]


def test_settings_change_supervisor_and_timeout(config: TerminalConfig, run: Any) -> None:
    """On the settings screen S turns the supervisor prompt off and + lengthens the timeout;
    the next refund is sent without a password."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "100")
        await pilot.press("7", "s", "plus")
        texts.append(screen_text(pilot))
        await pilot.press("escape")
        await until(pilot, lambda: len(app.screen_stack) == 1, what="the menu")
        await pilot.pause()
        await pilot.press("2", "enter", "enter", "1", "i")
        texts.append(await result(app, pilot))

    app = drive(config, run, script)
    assert "refund off, void off" in texts[0] and "2 s" in texts[0]
    assert "APPROVED" in texts[1] and app.engine.config.timeout_s_response == 2.0


def test_typed_refund_amount_replaces_the_prefilled_one(config: TerminalConfig,
                                                        run: Any) -> None:
    """On the refund's amount screen (pre-filled 125.00), typing 500 refunds 5.00."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "12500")
        await pilot.press("2", "enter")
        await until(pilot, lambda: app.state.step is Step.AMOUNT, what="the amount")
        await pilot.press(*"500")
        assert app.state.amount.minor == 500
        await pilot.press("enter", "4", "i", *"0000", "enter")
        texts.append(await result(app, pilot))

    app = drive(config, run, script)
    assert "APPROVED" in texts[0] and "CNY -5.00" in texts[0]
    assert app.journal.get(2).amount_minor == 500


def test_void_r_keys_in_an_rrn(config: TerminalConfig, run: Any) -> None:
    """On the Void screen R opens the RRN box; a journal RRN goes to the confirmation with
    the original's amount, an unknown one asks for the amount."""
    seen: list[tuple[Step, int]] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "4200")
        rrn = app.journal.get(1).rrn or ""
        for typed in (rrn, "999999999999"):
            await pilot.press("3", "r", *typed, "enter")
            await pilot.pause()
            seen.append((app.state.step, app.state.amount.minor))
            await pilot.press("escape")

    drive(config, run, script)
    assert seen == [(Step.CONFIRM, 4200), (Step.AMOUNT, 0)]


def test_journal_at_80x24_shows_whole_rrn_and_batch(config: TerminalConfig, run: Any) -> None:
    """At 80x24 the journal shows every RRN in full and the batch, under the status line."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "1250")
        await sale(app, pilot, "300", card_down=3)  # declined 05
        await pilot.press("5")
        await until(pilot, lambda: isinstance(app.screen, JournalScreen), what="the journal")
        await pilot.pause()
        texts.append(screen_text(pilot))

    app = drive(config, run, script)
    text = texts[0]
    for txn in app.journal:
        line = next(row for row in text.splitlines() if txn.rrn and txn.rrn in row)
        assert "000001" in line.split(txn.rrn or "")[1]  # the batch, right of the RRN
    assert "declined 05" in text and "TID TERM0001" in text and "BATCH 000001" in text


def test_inspector_opens_on_the_last_financial_exchange(config: TerminalConfig,
                                                        run: Any) -> None:
    """An echo after a sale: F2 at 80x24 opens on the sale's 0200, not the echo, scrolled
    fully left, and the pane says how to scroll; Esc returns to the flow."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "1250")
        app.echo()
        await until(pilot, lambda: app.traffic[-1].mti == "0810", what="the echo")
        await pilot.press("f2")
        await pilot.pause()
        texts.append(screen_text(pilot))
        await pilot.press("escape")
        await pilot.pause()
        texts.append(screen_text(pilot))

    drive(config, run, script)
    lines = texts[0].splitlines()
    assert "PgUp" in lines[1] and "SENT 0200" in lines[2], texts[0]
    assert "12.50 CNY" in texts[0] and "Main menu" not in texts[0]
    assert "Main menu" in texts[1]


def test_wide_window_shows_inspector_beside_the_flow(config: TerminalConfig,
                                                     run: Any) -> None:
    """At 120x40 the menu and the message inspector show side by side without F2, as do a
    result and its full receipt; with the inspector hidden the quick start reflows wider."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        texts.append(screen_text(pilot))
        await pilot.press("1", *"1250", "enter", "i")
        texts.append(await result(app, pilot))
        await pilot.press("enter", "f2")
        await pilot.pause()
        texts.append(screen_text(pilot))

    drive(config, run, script, size=(120, 40))
    menu, done, alone = texts
    assert "Main menu" in menu and "MESSAGES" in menu and "SENT 0800" in menu
    assert "APPROVED" in done and "SENT 0200" in done and "MERCHANT COPY" in done
    assert "MESSAGES" not in alone
    assert "Sale: 1, type 1250 for 12.50, Enter, then I to insert the highlighted" in alone


def test_wording_status_and_settle_key(config: TerminalConfig, run: Any) -> None:
    """Singular counts, the amount on the card screen, the status line on other screens, hint
    keys named once, and no Settle key once the batch is settled."""
    texts: dict[str, str] = {}

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await pilot.press("1", *"1250", "enter")
        texts["card"] = screen_text(pilot)
        await pilot.press("i")
        await result(app, pilot)
        await pilot.press("enter")
        await pilot.pause()
        texts["menu"] = screen_text(pilot)
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, SettlementScreen), what="settle")
        await pilot.pause()
        texts["before"] = screen_text(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: app.journal.batch_number == "000002", what="settlement")
        await pilot.pause()
        texts["after"] = screen_text(pilot)

    drive(config, run, script)
    assert "CNY 12.50" in texts["card"].splitlines()[1]
    assert "1 journal line " in texts["menu"] and "0 reversals pending" in texts["menu"]
    assert texts["menu"].count("Ctrl+Q") + texts["menu"].count("^q") == 1
    assert "Settle" in texts["before"] and "BATCH 000001" in texts["before"]
    assert "SETTLED" in texts["after"] and "BATCH 000002" in texts["after"]
    footer = texts["after"].splitlines()[-1]
    assert "Settle" not in footer and "Back" in footer


def test_inspector_place_follows_the_window_size(config: TerminalConfig, run: Any) -> None:
    """The inspector goes beside the flow at 120x40, below it at 100x40, and hides at 80x24
    (where F2 shows it in place of the flow), as the window is resized."""
    seen: list[tuple[bool, bool, bool]] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        for size in ((120, 40), (100, 40), (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            text = screen_text(pilot)
            seen.append(("MESSAGES" in text, "Main menu" in text,
                         "0810" in text.split("MESSAGES")[-1]))

    drive(config, run, script)
    assert seen == [(True, True, True), (True, True, True), (False, True, False)]


def test_one_uploaded_transaction_is_singular(config: TerminalConfig, run: Any,
                                              fake_host: tuple[int, FakeHostState]) -> None:
    """When the host's totals differ and one sale is uploaded, the settlement screen says
    "1 transaction uploaded"."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "1250")
        fake_host[1].extra_debits_minor = 100  # the host saw a sale the terminal did not
        await pilot.press("4", "enter")
        await until(pilot, lambda: app.journal.batch_number == "000002", what="settlement")
        await pilot.pause()
        texts.append(" ".join(screen_text(pilot).split()))

    drive(config, run, script)
    assert "1 transaction uploaded" in texts[0] and fake_host[1].uploads
