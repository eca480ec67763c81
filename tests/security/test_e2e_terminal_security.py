"""The terminal's security against the real host's (host.security): the scenarios of
scenarios/security on a fresh in-process host each, over real TCP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import scenarios
from scenarios.loader import load_paths
from scenarios.report import render_failure
from scenarios.runner import run_scenario
from scenarios.targets import start_local

LOADED, PROBLEMS = load_paths([Path(scenarios.__file__).parent / "security"])


def test_security_scenarios_load() -> None:
    """The security scenarios (and their host: overrides) are valid."""
    assert PROBLEMS == [] and LOADED


@pytest.mark.parametrize("item", LOADED, ids=[item.name for item in LOADED])
def test_security_scenario_on_real_host(item: Any, run: Any) -> None:
    """The terminal side (runner + terminal session + MAC guard) and the host side agree:
    keys, MACs both ways, PIN blocks and DUKPT."""
    outcome = run(run_scenario(item, start_local), timeout=60)
    assert outcome.status == "passed", render_failure(outcome)


def test_terminal_with_only_its_tmk_against_the_real_host(tmp_path: Path, run: Any) -> None:
    """The TUI's engine with nothing but its TMK: signs on and gets keys, makes a MAC'd sale
    with a PIN, a MAC'd partial refund and a void, all approved; a request with a bad MAC is
    refused with 63."""
    from datetime import datetime, timedelta, timezone

    from protocol.codec import Codec
    from protocol.codes import EntryMode, RefundReason
    from protocol.money import Money
    from protocol.security import Key, KeyAlgorithm
    from scenarios.schema import Scenario
    from terminal.cards import load_deck
    from terminal.config import TerminalConfig
    from terminal.engine import Engine
    from terminal.flow import Draft, Original
    from terminal.journal import Journal, TxnKind
    from terminal.link import Link
    from terminal.security.guard import MacFault
    from terminal.security.keystore import KeyStore

    tmk_hex, kcv = "0123456789ABCDEFFEDCBA9876543210", "08D7B4"
    scenario = Scenario.model_validate({
        "name": "e2e", "steps": [{"echo": {}}],
        "host": {"security": {"terminals": [{"tid": "TERM0001", "tmk": tmk_hex,
                                             "tmk_kcv": kcv, "mac": "required"}]}}})
    start = datetime(2026, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=8)))
    mastercard = {c.name: c for c in load_deck()}["Mastercard approve"]

    async def go() -> None:
        target = await start_local(scenario, start)
        try:
            config = TerminalConfig(port=target.iso_port, terminal_id=target.tid,
                                    merchant_id=target.mid, data_dir=tmp_path / "t",
                                    timeout_s_response=5.0, echo_interval_s=0)
            KeyStore(config.data_dir).save_tmk(
                Key.from_hex(tmk_hex, KeyAlgorithm.TDES_2KEY, kcv=kcv))
            link = Link(config.host, config.port, Codec())
            engine = Engine(config, Journal(config.data_dir), link)
            assert (await engine.sign_on()).approved
            assert engine.session.sign_on_state.keys is not None
            sale = await engine.transact(Draft(TxnKind.SALE, Money(10000, "CNY"), mastercard,
                                               EntryMode.CHIP, pin="1234"))
            assert sale.approved, sale
            txn = engine.journal.get(sale.txn_seq)
            original = Original(txn.rrn or "", amount_minor=10000, remaining_minor=10000)
            part = await engine.transact(Draft(TxnKind.REFUND, Money(3000, "CNY"), mastercard,
                                               EntryMode.CHIP, original, RefundReason.RETURN,
                                               "SUP"))
            assert part.approved, part
            second = await engine.transact(Draft(TxnKind.SALE, Money(500, "CNY"), mastercard,
                                                 EntryMode.CHIP))
            assert second.approved, second
            rrn = engine.journal.get(second.txn_seq).rrn or ""
            void = await engine.transact(Draft(TxnKind.VOID, Money(500, "CNY"), None, None,
                                               Original(rrn, amount_minor=500), None, "SUP"))
            assert void.approved, void
            assert link.guard is not None
            link.guard.fault = MacFault.BAD
            tampered = await engine.transact(Draft(TxnKind.SALE, Money(700, "CNY"), mastercard,
                                                   EntryMode.CHIP))
            assert tampered.response_code == "63", tampered
            link.close()
        finally:
            await target.close()

    run(go(), timeout=60)
