"""The CUP terminal's keys against the real host on the cup profile (in-process, over TCP):
working keys from the 0810's DE62, the CUP ECB MAC in DE64 on requests and answers, and PINs
in DE52 with the CUP DE22/DE26/DE53. The host demands the MAC (``mac = "required"``) and checks
PIN blocks against its card catalogue."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from mac_relay import flip_first_answer_mac

from host.clock import ManualClock
from host.runtime import HostRuntime
from protocol.codec import Codec
from protocol.codes import EntryMode
from protocol.cup import CUP_PROFILE
from protocol.money import Money
from protocol.security import Key, KeyAlgorithm
from protocol.security.wire import CUP_CONTROL_TEXT
from scenarios.targets import host_config
from terminal.cards import Card, load_deck
from terminal.config import TerminalConfig
from terminal.cup_driver import CupDriver
from terminal.cup_engine import CupEngine
from terminal.cup_session import CupSession
from terminal.flow import Draft, Outcome
from terminal.journal import Journal, TxnKind, TxnStatus
from terminal.link import Link, Traffic
from terminal.security.guard import MacFault
from terminal.security.keystore import KeyStore, KeyStoreError
from terminal.security.state import TerminalSecurity
from terminal.session import TerminalSession

HOST_TMK = Key.from_hex("0123456789ABCDEFFEDCBA9876543210", KeyAlgorithm.TDES_2KEY)
OTHER_TMK = Key.from_hex("FEDCBA98765432100123456789ABCDEF", KeyAlgorithm.TDES_2KEY)
UNIONPAY = "6212345678901265"  # catalogue PIN 123456
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def cup_host(run: Any) -> Iterator[int]:
    """The host on the cup profile with TERM0001's TMK and its MAC required; its ISO port."""
    config = host_config({"security": {"terminals": [
        {"tid": "TERM0001", "tmk": HOST_TMK.get_secret_value().hex().upper(),
         "tmk_kcv": HOST_TMK.kcv().hex().upper(), "mac": "required"}]}})
    tmpdir = tempfile.mkdtemp(prefix="poslab-cup-keys-")
    runtime = HostRuntime()
    iso_port, _admin = run(runtime.start(config, str(Path(tmpdir) / "ledger.db"),
                                         ManualClock(NOW), profile="cup"))
    yield iso_port
    run(runtime.stop())
    shutil.rmtree(tmpdir, ignore_errors=True)


class Terminal:
    """A CUP terminal (session, engine, link) holding ``tmk``, and what it put on the wire."""

    def __init__(self, tmp_path: Path, port: int, tmk: Key) -> None:
        config = TerminalConfig(port=port, data_dir=tmp_path / "term", timeout_s_response=5,
                                reversal_repeats=1)
        self.security = TerminalSecurity(CUP_PROFILE, tmk=tmk)
        session = TerminalSession(config, Journal(config.data_dir), clock=lambda: NOW,
                                  security=self.security)
        self.cup = CupSession(session, deck=load_deck())
        self.link = Link("127.0.0.1", port, Codec(CUP_PROFILE))
        self.engine = CupEngine(self.cup, self.link)
        self.traffic: list[Traffic] = []
        self.link.listeners.append(self.traffic.append)

    def sent(self, mti: str) -> list[dict[str, str]]:
        """The fields of each ``mti`` message sent (DE64 as the placeholder before sealing)."""
        return [t.fields for t in self.traffic if t.direction == "sent" and t.mti == mti]

    def received(self, mti: str) -> list[bytes]:
        """The frames of each ``mti`` answer received, as they came."""
        return [t.raw for t in self.traffic if t.direction == "received" and t.mti == mti]


def _card(pan: str) -> Card:
    return next(c for c in load_deck() if c.pan.digits == pan)


def _sale(amount: int, pin: str | None = None) -> Draft:
    return Draft(TxnKind.SALE, Money(amount, "CNY"), card=_card(UNIONPAY),
                 entry_mode=EntryMode.CHIP, pin=pin)


def _day(run: Any, term: Terminal, *drafts: Draft) -> list[Outcome]:
    async def go() -> list[Outcome]:
        try:
            return [await term.engine.transact(d) for d in drafts]
        finally:
            term.link.close()

    return run(go(), timeout=30)


def test_sign_on_keys_mac_and_pin_against_the_cup_host(cup_host: int, tmp_path: Path,
                                                       run: Any) -> None:
    """The 0810's three working keys are taken; a PIN sale carries DE52, the CUP DE53,
    DE26 12 and DE22 051 under a DE64 the host verifies, and is approved with a MAC'd 0210; a
    wrong PIN is declined 55 (the host checked the block) and the sign-on stands."""
    term = Terminal(tmp_path, cup_host, HOST_TMK)
    good, wrong = _day(run, term, _sale(1000, pin="123456"), _sale(1000, pin="654321"))
    assert (good.status, good.response_code) == ("approved", "00")
    assert (wrong.status, wrong.response_code) == ("declined", "55")
    assert term.security.working is not None and term.security.working.data is not None
    assert term.cup.signed_on and len(term.sent("0800")) == 1
    sale = term.sent("0200")[0]
    assert (sale["22"], sale["26"], sale["53"]) == ("051", "12", CUP_CONTROL_TEXT)
    assert len(sale["52"]) == 16 and "64" in sale
    assert all(len(raw) > 8 for raw in term.received("0210"))
    journal = term.cup.session.journal
    assert all("123456" not in repr(line) for line in journal.open_batch())


def test_tampered_request_mac_is_a0_and_the_terminal_signs_on_again(
        cup_host: int, tmp_path: Path, run: Any) -> None:
    """A sale whose DE64 was changed after sealing is answered A0; the terminal signs on
    again at once for new keys, and the same sale then goes through."""
    term = Terminal(tmp_path, cup_host, HOST_TMK)

    async def go() -> tuple[Outcome, str, str, Outcome]:
        try:
            assert await term.engine.sign_on()
            first_mac_kcv = term.security.kcvs()["mac"]
            assert term.link.guard is not None
            term.link.guard.fault = MacFault.BAD
            refused = await term.engine.transact(_sale(2000))
            after_kcv = term.security.kcvs()["mac"]
            return refused, first_mac_kcv, after_kcv, await term.engine.transact(_sale(2000))
        finally:
            term.link.close()

    refused, before, after, again = run(go(), timeout=30)
    assert (refused.status, refused.response_code) == ("declined", "A0")
    assert "signed on again" in refused.detail
    assert before != after and len(term.sent("0800")) == 2
    assert (again.status, again.response_code) == ("approved", "00")


def test_working_keys_failing_their_check_values_are_a_failed_sign_on(
        cup_host: int, tmp_path: Path, run: Any) -> None:
    """Under another TMK the 0810's keys fail their check values: the terminal signs on three
    times, keeps no keys, sends no sale, and the result says which key failed."""
    term = Terminal(tmp_path, cup_host, OTHER_TMK)
    (outcome,) = _day(run, term, _sale(500))
    assert (outcome.status, outcome.title) == ("failed", "NOT COMPLETED")
    assert "sign-on failed 3 times" in outcome.detail and "check value" in outcome.detail
    assert len(term.sent("0800")) == 3 and term.sent("0200") == []
    assert term.security.working is None and not term.cup.signed_on


def test_answer_failing_its_mac_is_reversed_with_a0(cup_host: int, tmp_path: Path,
                                                    run: Any) -> None:
    """An 0210 whose MAC does not hold is no answer: the sale is reversed with an 0400 whose
    DE39 is A0, the host acknowledges it, and the journal line ends reversed."""
    relay = run(flip_first_answer_mac(cup_host, "0210"))
    try:
        term = Terminal(tmp_path, relay.sockets[0].getsockname()[1], HOST_TMK)
        (outcome,) = _day(run, term, _sale(3000))
    finally:
        relay.close()
    assert outcome.status == "no_response" and "MAC" in outcome.detail
    (reversal,) = term.sent("0400")
    assert reversal["39"] == "A0" and "64" in reversal
    (line,) = term.cup.session.journal.open_batch()
    assert line.status is TxnStatus.REVERSED


def test_driver_refuses_dukpt_keys_on_cup(tmp_path: Path) -> None:
    """A data directory with DUKPT keys cannot start a CUP terminal: the message names the
    file and says a CUP terminal takes its keys at sign-on under a TMK."""
    from protocol.security import TDES_DUKPT, DukptTerminal, Ksn

    initial = Key.from_hex("6AC292FAA1315B4D858AB3A3D7D5933A", KeyAlgorithm.TDES_2KEY)
    store = KeyStore(tmp_path)
    store.save_dukpt(DukptTerminal(TDES_DUKPT, initial, Ksn.from_hex("FFFF9876543210E00000")),
                     initial)
    config = TerminalConfig(profile="cup", data_dir=tmp_path)
    with pytest.raises(KeyStoreError, match="dukpt.json: DUKPT is not used on the cup profile"):
        CupDriver(config, Journal(tmp_path), Link("127.0.0.1", 9, Codec(CUP_PROFILE)),
                  lambda: NOW, load_deck())


def test_cup_tui_asks_for_the_pin_and_hides_it(cup_host: int, tmp_path: Path,
                                               run: Any) -> None:
    """``poslab-terminal --profile cup`` with a TMK in its data directory signs on for keys;
    the UnionPay card then opens the PIN screen, the right PIN is approved and a wrong one shows
    55; the inspector names the CUP DE53 and shows neither the PIN nor the PIN block."""
    from term_helpers import PANS, drive, result
    from textual.pilot import Pilot

    from terminal import inspector
    from terminal.app import PosApp
    from terminal.flow import Step

    config = TerminalConfig(port=cup_host, profile="cup", data_dir=tmp_path / "data",
                            timeout_s_response=5.0, reversal_repeats=0, echo_interval_s=0)
    KeyStore(config.data_dir).save_tmk(HOST_TMK)
    seen: dict[str, str] = {}

    async def pin_sale(app: PosApp, pilot: Pilot[None], pin: str) -> str:
        await pilot.press("1", *"1250", "enter", *["down"] * PANS.index(UNIONPAY), "i")
        assert app.state.step is Step.PIN
        await pilot.press(*pin, "enter")
        text = await result(app, pilot)
        await pilot.press("enter")
        return text

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        seen["right"] = await pin_sale(app, pilot, "123456")
        seen["wrong"] = await pin_sale(app, pilot, "654321")

    app = drive(config, run, script)
    assert "APPROVED" in seen["right"] and "DECLINED 55" in seen["wrong"]
    sales = [t for t in app.traffic if t.direction == "sent" and t.mti == "0200"]
    text = "\n".join(line for item in app.traffic for line in inspector.render(item))
    assert "CUP layout: PIN block ISO format 0" in text and "[PIN block, 8 bytes]" in text
    for item in sales:
        block = item.fields["52"]
        assert block not in text and bytes.fromhex(block) not in inspector.masked_bytes(
            item.raw, item.fields)
    assert "123456" not in text and "654321" not in text
