"""poslab's CUP terminal (:mod:`terminal.cup_engine`) against the real host on ``--profile
cup`` over TCP: the host answers everything the terminal sends, and both count the batch the
same way, so the settlement balances and both move to the next batch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from protocol.codec import Codec
from protocol.codes import EntryMode, RefundReason
from protocol.cup import CUP_PROFILE
from protocol.cup_private import SettlementResult
from protocol.money import Money
from scenarios.loadgen.procs import ServerProcess, python_module
from terminal.cards import Card, load_deck
from terminal.config import TerminalConfig
from terminal.cup_engine import CupEngine
from terminal.cup_session import CupSession
from terminal.flow import Draft, Original
from terminal.journal import Journal, TxnKind
from terminal.link import Link
from terminal.session import TerminalSession

UNIONPAY, VISA = "6212345678901265", "4111111111111111"
START = "2026-03-10T02:00:00+00:00"
CONFIG = """
[host]
profile = "cup"

[[merchants]]
id = "MERCHANT0000001"
terminals = ["TERM0001"]
"""


@pytest.fixture
def host(tmp_path: Path) -> Iterator[ServerProcess]:
    """``poslab-host`` with ``[host] profile = "cup"`` on SQLite, simulated clock at ``START``."""
    config = tmp_path / "host.toml"
    config.write_text(CONFIG, encoding="utf-8")
    server = ServerProcess(
        [*python_module("host"), "--listen", "127.0.0.1:0", "--admin",
         "127.0.0.1:0", "--db", str(tmp_path / "host.db"), "--config", str(config),
         "--clock", "simulated", "--start", START], name="poslab-host")
    yield server
    assert server.stop() == 0


def _card(pan: str) -> Card:
    return next(c for c in load_deck() if c.pan.digits == pan)


def _original(cup: CupSession, rrn: str) -> Original:
    txn = cup.session.journal.by_rrn(rrn)
    assert txn is not None
    return Original(rrn, txn.kind, txn.amount_minor, None, txn.masked_pan, txn.card_name)


def test_cup_terminal_day_against_the_host(host: ServerProcess, tmp_path: Path,
                                           run: Any) -> None:
    """Sign-on, sale, foreign sale voided, partial 0220 refund: all 00 from the host, the
    refund's result naming what remains of the sale (the 0230's DE54); the settlement balances
    (flag 1, no upload) and the next sale goes into batch 000002."""
    now = datetime(2026, 3, 10, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    config = TerminalConfig(port=int(host.ready["iso_port"]), data_dir=tmp_path / "term",
                            timeout_s_response=5)
    session = TerminalSession(config, Journal(tmp_path / "term"), clock=lambda: now)
    cup = CupSession(session, deck=load_deck())
    link = Link("127.0.0.1", config.port, Codec(CUP_PROFILE))
    engine = CupEngine(cup, link)

    async def day() -> tuple[list[str], Any, str, str]:
        try:
            sale = await engine.transact(Draft(TxnKind.SALE, Money(10000, "CNY"),
                                               card=_card(UNIONPAY),
                                               entry_mode=EntryMode.CHIP))
            foreign = await engine.transact(Draft(TxnKind.SALE, Money(5000, "CNY"),
                                                  card=_card(VISA), entry_mode=EntryMode.SWIPE))
            sale_rrn, foreign_rrn = (t.rrn for t in cup.session.journal.open_batch())
            void = await engine.transact(Draft(TxnKind.VOID, Money(5000, "CNY"),
                                               original=_original(cup, str(foreign_rrn))))
            refund = await engine.transact(Draft(
                TxnKind.REFUND, Money(3000, "CNY"), card=_card(UNIONPAY),
                entry_mode=EntryMode.SWIPE, original=_original(cup, str(sale_rrn)),
                reason=RefundReason.RETURN))
            settled = await engine.settle()
            after = await engine.transact(Draft(TxnKind.SALE, Money(100, "CNY"),
                                                card=_card(UNIONPAY),
                                                entry_mode=EntryMode.CHIP))
            return [o.status for o in (sale, foreign, void, refund, after)], settled, \
                cup.batch, refund.detail
        finally:
            link.close()

    statuses, settled, batch, refund_detail = run(day())
    assert statuses == ["approved"] * 5
    assert refund_detail == f"Remaining refundable: {Money(7000, 'CNY').format()}"
    assert settled.ok and settled.result is SettlementResult.BALANCED and settled.uploaded == 0
    assert (settled.closed_batch, settled.new_batch, batch) == ("000001", "000002", "000002")
