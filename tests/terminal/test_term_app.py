"""Pilot tests of the Textual terminal against the fake host over loopback TCP."""

from __future__ import annotations

from typing import Any

from term_fakehost import FakeHostState
from term_helpers import (
    PANS,
    SILENT_CARD,
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
from terminal.journal import TxnKind, TxnStatus


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


def test_partial_refund_then_over_refund(config: TerminalConfig, run: Any) -> None:
    """A partial refund picked from the journal is approved; a second one above what is left
    is declined with the host's explanation in plain words."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        texts.append(await sale(app, pilot, "10000"))
        texts.append(await refund(app, pilot, "6000"))
        texts.append(await refund(app, pilot, "5000"))

    app = drive(config, run, script)
    assert "APPROVED" in texts[1] and "REFUND" in texts[1] and "Return" in texts[1]
    assert "DECLINED 13" in texts[2]
    assert "Refund exceeds the remaining 40.00 of this sale" in texts[2]
    kinds = [(t.kind, t.status) for t in app.journal]
    assert kinds == [(TxnKind.SALE, TxnStatus.APPROVED), (TxnKind.REFUND, TxnStatus.APPROVED),
                     (TxnKind.REFUND, TxnStatus.DECLINED)]


def test_refund_amount_defaults_to_remaining(config: TerminalConfig, run: Any) -> None:
    """Accepting the refund amount unchanged refunds exactly what is left of the sale."""

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "3000")
        assert "APPROVED" in await refund(app, pilot, None)

    app = drive(config, run, script)
    assert [t.amount_minor for t in app.journal] == [3000, 3000]


def test_void_from_open_batch(config: TerminalConfig, run: Any,
                              fake_host: tuple[int, FakeHostState]) -> None:
    """A sale voided from the open batch is marked voided and leaves the batch totals."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "4200")
        await pilot.press("3")
        assert app.state.step is Step.ORIGINAL
        await pilot.press("enter")
        assert app.state.step is Step.CONFIRM and "42.00" in screen_text(pilot)
        await pilot.press("enter", *"0000", "enter")
        texts.append(await result(app, pilot))

    app = drive(config, run, script)
    assert "APPROVED" in texts[0] and "VOID" in texts[0]
    sale_txn = app.journal.get(1)
    assert sale_txn.voided and app.journal.totals("CNY").debits_count == 0
    assert fake_host[1].bookings[0].voided


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


def test_no_answer_reverses_and_late_answer_is_not_approval(
        config: TerminalConfig, run: Any, fake_host: tuple[int, FakeHostState]) -> None:
    """The no-response card times out, a reversal is sent and acknowledged, the screen says
    NO RESPONSE, and the host's booking for it nets to zero."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        texts.append(await sale(app, pilot, "2500", card_down=SILENT_CARD))

    app = drive(config, run, script)
    assert "NO RESPONSE" in texts[0] and "reversed" in texts[0]
    assert "APPROVED" not in texts[0]
    assert [t.status for t in app.journal] == [TxnStatus.REVERSED]
    assert "0400" in fake_host[1].received
    assert all(b.net_minor == 0 for b in fake_host[1].bookings)
    assert [t.mti for t in app.traffic if t.direction == "sent"][-2:] == ["0200", "0400"]


def test_settlement_balanced_and_unbalanced_with_upload(
        config: TerminalConfig, run: Any, fake_host: tuple[int, FakeHostState]) -> None:
    """A balanced batch closes with one 0500; a batch the host disagrees with (95) is
    uploaded (0320 per transaction) and closed with 0500/960000; the batch number advances."""
    texts: list[str] = []
    host = fake_host[1]

    async def settle(app: PosApp, pilot: Pilot[None]) -> None:
        await pilot.press("4")
        assert "SETTLEMENT" in screen_text(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: "SETTLED" in screen_text(pilot), what="settlement")
        texts.append(screen_text(pilot))
        await pilot.press("escape")

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "1000")
        await settle(app, pilot)
        await sale(app, pilot, "2000")
        await sale(app, pilot, "3000")
        host.extra_debits_minor = 999
        await settle(app, pilot)

    app = drive(config, run, script)
    assert "Batch balanced" in texts[0] and "open batch now 000002" in texts[0]
    assert "2 transactions uploaded" in texts[1] and "open batch now 000003" in texts[1]
    assert host.received.count("0320") == 2 and host.received[-1] == "0500"
    assert app.journal.batch_number == "000003"


def test_restart_keeps_journal(config: TerminalConfig, run: Any) -> None:
    """After a restart the journal, trace counter and receipts are still there and the old
    sale can be refunded and reprinted."""

    async def first(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "5000")

    before = drive(config, run, first)
    stan = before.journal.get(1).stan
    texts: list[str] = []

    async def second(app: PosApp, pilot: Pilot[None]) -> None:
        await pilot.press("5")
        assert "50.00" in screen_text(pilot)
        await pilot.press("enter")
        texts.append(screen_text(pilot))
        assert_no_full_pan(pilot)
        await pilot.press("escape", "escape")
        await until(pilot, lambda: len(app.screen_stack) == 1, what="the menu")
        await pilot.pause()
        texts.append(await refund(app, pilot, "1000"))

    after = drive(config, run, second)
    assert after.journal.get(1).stan == stan
    assert int(after.journal.get(2).stan) > int(stan)
    assert "RECEIPT  SALE" in texts[0] and "411111******1111" in texts[0]
    assert "APPROVED" in texts[1]


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
    assert "0000  30 32 31 30" in texts[0]  # the last 0210's hex dump is on screen


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
