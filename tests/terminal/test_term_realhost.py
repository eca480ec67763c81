"""Pilot tests of the terminal against a real ``poslab-host`` subprocess on free ports.

Each test starts its own host (fresh SQLite database) through the terminal's ``--with-host``
machinery (the ``real_host``/``real_config`` fixtures of conftest.py) and checks the host's
side through its admin API.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from term_helpers import SILENT_CARD, RealHost, drive, refund, result, sale, screen_text, until
from textual.pilot import Pilot

from protocol.codec import Codec
from protocol.codes import EntryMode
from protocol.money import Money
from scenarios.admin import balances, transaction, transactions
from terminal.app import PosApp
from terminal.cards import load_deck
from terminal.config import TerminalConfig
from terminal.flow import Draft, Step
from terminal.hostproc import HostProcess
from terminal.journal import TxnKind, TxnStatus
from terminal.link import Link
from terminal.screens import SettlementScreen
from terminal.session import build_request


def test_real_sale_refund_over_refund(real_config: TerminalConfig, real_host: RealHost,
                                      run: Any) -> None:
    """Sale approved with a receipt; a partial refund from the journal is approved and
    recorded at the host with its reason; an over-refund is declined with the explanation."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        texts.append(await sale(app, pilot, "10000"))
        texts.append(await refund(app, pilot, "6000"))
        texts.append(await refund(app, pilot, "5000"))

    app = drive(real_config, run, script)
    assert "APPROVED" in texts[0] and "411111******1111" in texts[0]
    assert "APPROVED" in texts[1] and "Remaining refundable: 40.00" in texts[1]
    assert "DECLINED 13" in texts[2]
    assert "Refund exceeds the remaining 40.00 of this sale" in texts[2]
    sale_rrn = app.journal.get(1).rrn
    detail = real_host.api.fetch(transaction(sale_rrn))
    assert detail.remaining_minor == 4000 and detail.refund_state == "PARTIAL"
    assert [(r.reason, r.response_code) for r in detail.refunds or []] == [
        ("return", "00"), ("return", "13")]
    assert (config_receipts := list((real_config.data_dir / "receipts").glob("*.txt")))
    assert len(config_receipts) == 3


def test_real_void(real_config: TerminalConfig, real_host: RealHost, run: Any) -> None:
    """A sale voided from the open batch is approved and the host marks it voided."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "4200")
        await pilot.press("3", "enter", "enter", *"0000", "enter")
        texts.append(await result(app, pilot))

    app = drive(real_config, run, script)
    assert "APPROVED" in texts[0] and "VOID" in texts[0], texts[0]
    assert app.journal.get(1).voided
    detail = real_host.api.fetch(transaction(app.journal.get(1).rrn))
    assert detail.capture_state == "VOIDED"


def test_real_no_response_is_reversed_and_nets_to_zero(
        real_config: TerminalConfig, real_host: RealHost, run: Any) -> None:
    """The silent-issuer card: the terminal times out, sends a reversal the host
    acknowledges, shows NO RESPONSE, and the host's ledger for that STAN nets to zero."""
    texts: list[str] = []
    real_config = replace(real_config, timeout_s_response=1.5)  # the 0200 is never answered

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        texts.append(await sale(app, pilot, "2500", card_down=SILENT_CARD))

    app = drive(real_config, run, script)
    txn = app.journal.get(1)
    assert "NO RESPONSE" in texts[0] and "APPROVED" not in texts[0]
    assert txn.status is TxnStatus.REVERSED
    assert [t.mti for t in app.traffic if t.direction == "sent"][-2:] == ["0200", "0400"]
    page = real_host.api.fetch(transactions(tid=real_config.terminal_id, stan=txn.stan))
    net = 0
    for row in page.transactions:
        if row.rrn:
            for group in real_host.api.fetch(transaction(row.rrn)).ledger:
                net += group.amount_minor if group.effective else 0
    assert net == 0
    totals = real_host.api.fetch(balances()).root
    assert all(v == 0 for account in totals.values() for v in account.values())


def test_real_settlement_balanced_then_unbalanced(real_config: TerminalConfig,
                                                  real_host: RealHost, run: Any) -> None:
    """A balanced batch closes at once; after a sale the terminal never saw, the host answers
    95, the terminal uploads its transactions and closes with 960000."""
    texts: list[str] = []

    async def settle(app: PosApp, pilot: Pilot[None]) -> None:
        await pilot.press("4", "enter")
        await until(pilot, lambda: "SETTLED" in screen_text(pilot), what="settlement")
        texts.append(screen_text(pilot))
        await pilot.press("escape")

    async def script_with_outside(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "1000")
        await settle(app, pilot)
        await sale(app, pilot, "2000")
        await sale(app, pilot, "3000")
        # A sale on the same terminal id from another device, which the terminal never sees.
        link = Link(real_config.host, real_config.port, Codec())
        draft = Draft(TxnKind.SALE, Money(777, "CNY"), load_deck()[1], EntryMode.CHIP)
        await link.connect()
        resp = await link.send(build_request(draft, "500001", real_config, datetime.now()), 5)
        assert resp.response_code == "00"
        link.close()
        await settle(app, pilot)

    app = drive(real_config, run, script_with_outside)
    assert "NOT SETTLED" not in texts[0] and "Batch balanced" in texts[0], texts[0]
    assert "NOT SETTLED" not in texts[1], texts[1]
    assert "2 transactions uploaded" in texts[1] and "open batch now 000003" in texts[1]
    sent = [t.mti for t in app.traffic if t.direction == "sent"]
    assert sent[-4:] == ["0500", "0320", "0320", "0500"]


def test_real_restart_keeps_journal(real_config: TerminalConfig, run: Any) -> None:
    """After a restart the old sale is still in the journal and can be refunded at the host."""

    async def first(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "5000")

    before = drive(real_config, run, first)
    texts: list[str] = []

    async def second(app: PosApp, pilot: Pilot[None]) -> None:
        texts.append(await refund(app, pilot, None))

    after = drive(replace(real_config), run, second)
    assert after.journal.get(1).rrn == before.journal.get(1).rrn
    assert "APPROVED" in texts[0] and after.journal.remaining_minor(after.journal.get(1)) == 0
    assert after.state.step is Step.MENU


def test_real_refund_of_a_keyed_rrn(real_config: TerminalConfig, real_host: RealHost,
                                    run: Any) -> None:
    """A refund for a sale made on another device: the operator keys in its RRN and an
    amount; the host approves it against that sale."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        link = Link(real_config.host, real_config.port, Codec())
        draft = Draft(TxnKind.SALE, Money(8800, "CNY"), load_deck()[0], EntryMode.CHIP)
        await link.connect()
        resp = await link.send(build_request(draft, "600001", real_config, datetime.now()), 5)
        link.close()
        assert resp.response_code == "00" and resp.rrn
        await pilot.press("2", "r", *resp.rrn, "enter")
        await until(pilot, lambda: app.state.step is Step.AMOUNT, what="amount after the RRN")
        await pilot.press(*"800", "enter", "1", "i", *"0000", "enter")
        texts.append(await result(app, pilot))
        texts.append(resp.rrn)

    drive(real_config, run, script)
    assert "APPROVED" in texts[0] and "Remaining refundable: 80.00" in texts[0]
    assert real_host.api.fetch(transaction(texts[1])).remaining_minor == 8000


def test_real_void_after_settlement_is_refused(real_config: TerminalConfig, run: Any) -> None:
    """After settlement the Void list still shows the sale, marked settled, and voiding it
    gets the host's 12 VOID_AFTER_SETTLEMENT on screen."""
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "4200")
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, SettlementScreen), what="settle")
        await pilot.press("enter")
        await until(pilot, lambda: app.journal.batch_number == "000002", what="settlement")
        await pilot.press("escape", "3")
        await pilot.pause()
        texts.append(screen_text(pilot))
        await pilot.press("enter", "enter", *"0000", "enter")
        texts.append(await result(app, pilot))

    app = drive(real_config, run, script)
    rrn = app.journal.get(1).rrn or ""
    listed = next(line for line in texts[0].splitlines() if rrn in line)
    assert "000001 settled" in listed and "(none in the journal" not in texts[0]
    assert "DECLINED 12" in texts[1] and "VOID_AFTER_SETTLEMENT" in texts[1]


def test_real_times_follow_the_simulated_host_clock(tmp_path: Path, run: Any) -> None:
    """With the host on a simulated clock, the status line, the receipt and the journal show
    the host's date and time in the merchant's zone (Asia/Shanghai), not the machine's."""
    host = HostProcess(tmp_path / "host", ["--clock", "simulated",
                                           "--start", "2025-03-14T10:00:00+00:00"])
    port = host.start()
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        texts.append(await sale(app, pilot, "1250"))

    try:
        config = TerminalConfig(port=port, data_dir=tmp_path / "terminal",
                                timeout_s_response=5.0, echo_interval_s=0)
        app = drive(config, run, script)
    finally:
        host.stop()
    txn = app.journal.get(1)
    assert (txn.host_date, txn.host_time[:2]) == ("0314", "18")  # 10:00 UTC = 18:00 Shanghai
    assert "BUS.DATE 14 Mar" in texts[0] and "DATE             14 Mar 18:0" in texts[0]
    receipt_file = config.data_dir / "receipts" / (txn.receipt or "")
    assert "14 Mar 18:0" in receipt_file.read_text()
