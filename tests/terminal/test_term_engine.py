"""Engine tests against the fake host over real loopback TCP."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from term_fakehost import FakeHostState

from protocol.codec import Codec
from protocol.codes import EntryMode, RefundReason
from protocol.money import Money
from terminal.cards import load_deck
from terminal.config import TerminalConfig
from terminal.engine import Engine
from terminal.flow import Draft, Original
from terminal.journal import Journal, TxnKind, TxnStatus
from terminal.link import Link, Traffic

DECK = {c.name: c for c in load_deck()}
VISA = DECK["Visa approve"]
SILENT = DECK["Visa silent issuer"]


def _engine(config: TerminalConfig, seen: list[Traffic] | None = None) -> Engine:
    link = Link(config.host, config.port, Codec(),
                on_traffic=seen.append if seen is not None else None)
    return Engine(config, Journal(config.data_dir), link)


def _sale(minor: int, card: Any = VISA) -> Draft:
    return Draft(TxnKind.SALE, Money(minor, "CNY"), card, EntryMode.CHIP)


def test_sale_refund_and_over_refund(config: TerminalConfig, run: Any) -> None:
    """A sale is approved and journalled; a partial refund passes; an over-refund is declined
    with the host's remaining amount in the explanation."""
    engine = _engine(config)
    run(engine.sign_on())
    sale = run(engine.transact(_sale(10000)))
    assert sale.approved
    txn = engine.journal.get(sale.txn_seq)
    orig = Original(txn.rrn or "", amount_minor=10000, remaining_minor=10000)
    part = run(engine.transact(Draft(TxnKind.REFUND, Money(6000, "CNY"), VISA, EntryMode.CHIP,
                                     orig, RefundReason.RETURN, "SUP")))
    assert part.approved and engine.journal.remaining_minor(txn) == 4000
    over = run(engine.transact(Draft(TxnKind.REFUND, Money(5000, "CNY"), VISA, EntryMode.CHIP,
                                     orig, RefundReason.RETURN, "SUP")))
    assert over.status == "declined"
    assert over.detail == "Refund exceeds the remaining 40.00 of this sale"
    assert (config.data_dir / "receipts").is_dir()


def test_no_answer_is_reversed_and_late_answer_ignored(
        config: TerminalConfig, fake_host: tuple[int, FakeHostState], run: Any) -> None:
    """An unanswered sale is reversed (0400 acknowledged) and shown as no response."""
    seen: list[Traffic] = []
    engine = _engine(config, seen)
    run(engine.sign_on())
    out = run(engine.transact(_sale(2500, SILENT)))
    assert out.status == "no_response"
    txn = engine.journal.get(out.txn_seq)
    assert txn.status is TxnStatus.REVERSED
    assert fake_host[1].received[-2:] == ["0200", "0400"]


def test_unacknowledged_reversal_is_stored_and_forwarded(
        config: TerminalConfig, fake_host: tuple[int, FakeHostState], run: Any) -> None:
    """With the host silent, 0400 then 0401 repeats go out and the reversal stays pending;
    it is forwarded before the next transaction once the host answers again."""
    config = replace(config, timeout_s_response=0.3)  # nothing answers: only waits
    engine = _engine(config)
    run(engine.sign_on())
    fake_host[1].silent = True
    out = run(engine.transact(_sale(700)))
    assert out.status == "no_response"
    assert fake_host[1].received[-4:] == ["0200", "0400", "0401", "0401"]
    assert [t.stan for t in engine.journal.pending_reversals()] == [
        engine.journal.get(out.txn_seq).stan]
    restarted = _engine(config)
    fake_host[1].silent = False
    assert run(restarted.transact(_sale(800))).approved
    assert restarted.journal.pending_reversals() == []
    assert fake_host[1].received[-2:] == ["0401", "0200"]
