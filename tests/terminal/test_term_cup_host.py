"""The CUP terminal against the real host on the cup profile (in-process, over TCP), one host
for the module with a terminal id per test: a refund of an RRN keyed in, with the original's
date typed on the TUI; an 0220 refund advice without an answer, sent again until the host
answers it and booked once; a stored reversal sent again after a restart with its reason."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mac_relay import flip_first_answer_mac
from term_helpers import PANS, drive, result, screen_text
from textual.pilot import Pilot

from host.clock import ManualClock
from host.runtime import HostRuntime
from protocol.admin_models import TxnDetail
from protocol.codec import Codec
from protocol.codes import EntryMode, RefundReason
from protocol.cup import CUP_PROFILE
from protocol.money import Money
from protocol.security import Key, KeyAlgorithm
from scenarios.admin import AdminClient, transaction
from scenarios.targets import host_config
from terminal.app import PosApp
from terminal.cards import Card, load_deck
from terminal.config import TerminalConfig
from terminal.cup_engine import CupEngine
from terminal.cup_session import CupSession
from terminal.flow import Draft, Original, Outcome, Step
from terminal.journal import Journal, TxnKind, TxnStatus
from terminal.link import Link, Traffic
from terminal.security.state import TerminalSecurity
from terminal.session import TerminalSession

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, the merchant's zone
MID = "MERCHANT0000001"
TUI, SELLER, LOST_ANSWER, LOST_ADVICE, MACS = (f"TERM000{i}" for i in range(1, 6))
TMK = Key.from_hex("0123456789ABCDEFFEDCBA9876543210", KeyAlgorithm.TDES_2KEY)
UNIONPAY = "6212345678901265"


@dataclass(frozen=True)
class CupHost:
    """The module's host: its ISO port and its admin API."""

    port: int
    admin: AdminClient


@pytest.fixture(scope="module")
def cup_host(run: Any) -> Iterator[CupHost]:
    """The host on the cup profile at ``NOW`` (simulated): five terminals of one merchant; the
    first 0220 of LOST_ANSWER is booked but its connection closes unanswered, the first of
    LOST_ADVICE never reaches the host; MACS has a TMK and must MAC its requests."""
    yield from _cup_host(run)


@pytest.fixture
def own_cup_host(run: Any) -> Iterator[CupHost]:
    """A host like :func:`cup_host` for one test, whose clock that test may move."""
    yield from _cup_host(run)


def _cup_host(run: Any) -> Iterator[CupHost]:
    """Start the host the two fixtures above describe; stop it afterwards."""
    config = host_config({
        "merchants": [{"id": MID, "name": "poslab demo store", "currency": "CNY",
                       "timezone": "Asia/Shanghai",
                       "terminals": [TUI, SELLER, LOST_ANSWER, LOST_ADVICE, MACS]}],
        "faults": [
            {"id": "answer-lost", "action": "close", "process": True, "mti": "0220",
             "tid": LOST_ANSWER, "count": 1},
            {"id": "advice-lost", "action": "close", "process": False, "mti": "0220",
             "tid": LOST_ADVICE, "count": 1}],
        "security": {"terminals": [
            {"tid": MACS, "tmk": TMK.get_secret_value().hex().upper(),
             "tmk_kcv": TMK.kcv().hex().upper(), "mac": "required"}]}})
    tmpdir = tempfile.mkdtemp(prefix="poslab-cup-host-")
    runtime = HostRuntime()
    port, admin_port = run(runtime.start(config, str(Path(tmpdir) / "ledger.db"),
                                         ManualClock(NOW), profile="cup"))
    yield CupHost(port, AdminClient(f"http://127.0.0.1:{admin_port}", runtime.admin_token))
    run(runtime.stop())
    shutil.rmtree(tmpdir, ignore_errors=True)


class Terminal:
    """A CUP terminal (session, engine, link) on ``data_dir`` -- a second one on the same
    directory is that terminal after a restart -- and what it put on the wire."""

    def __init__(self, data_dir: Path, tid: str, port: int, repeats: int = 0,
                 tmk: Key | None = None) -> None:
        config = TerminalConfig(port=port, profile="cup", data_dir=data_dir, terminal_id=tid,
                                timeout_s_response=5, reversal_repeats=repeats)
        security = TerminalSecurity(CUP_PROFILE, tmk=tmk) if tmk is not None else None
        session = TerminalSession(config, Journal(data_dir), clock=lambda: NOW,
                                  security=security)
        self.cup = CupSession(session, deck=load_deck())
        self.link = Link("127.0.0.1", port, Codec(CUP_PROFILE))
        self.engine = CupEngine(self.cup, self.link)
        self.traffic: list[Traffic] = []
        self.link.listeners.append(self.traffic.append)

    @property
    def journal(self) -> Journal:
        """The terminal's journal."""
        return self.cup.session.journal

    def sent(self, mti: str) -> list[dict[str, str]]:
        """The fields of each ``mti`` message sent."""
        return [t.fields for t in self.traffic if t.direction == "sent" and t.mti == mti]

    def sale(self, amount: int) -> Draft:
        """A chip sale of ``amount`` fen on the UnionPay card."""
        return Draft(TxnKind.SALE, Money(amount, "CNY"), card=_card(UNIONPAY),
                     entry_mode=EntryMode.CHIP)

    def refund(self, amount: int, rrn: str) -> Draft:
        """A swiped refund of ``amount`` fen of this terminal's sale ``rrn``."""
        line = self.journal.by_rrn(rrn)
        assert line is not None
        return Draft(TxnKind.REFUND, Money(amount, "CNY"), card=_card(UNIONPAY),
                     entry_mode=EntryMode.SWIPE, reason=RefundReason.RETURN,
                     original=Original(rrn, line.kind, line.amount_minor, None,
                                       line.masked_pan, line.card_name))

    async def day(self, *steps: Draft | str) -> list[Outcome]:
        """Transact each draft in turn (``"refund N"``: refund N fen of the last sale); the
        link is closed afterwards."""
        outcomes = []
        try:
            for step in steps:
                if isinstance(step, str):
                    sale = [t for t in self.journal if t.kind is TxnKind.SALE][-1]
                    step = self.refund(int(step.split()[1]), str(sale.rrn))
                outcomes.append(await self.engine.transact(step))
        finally:
            self.link.close()
        return outcomes


def _card(pan: str) -> Card:
    return next(c for c in load_deck() if c.pan.digits == pan)


def _detail(run: Any, host: CupHost, rrn: str | None) -> TxnDetail:
    assert rrn is not None
    return run(host.admin.fetch(transaction(rrn)))  # type: ignore[no-any-return]


def _unsealed(fields: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in fields.items() if k != "64"}


# -- the original's date of a keyed-in RRN, on the TUI ------------------------------------------


async def _keyed_refund(app: PosApp, pilot: Pilot[None], rrn: str, dates: list[str],
                        amount: str, seen: list[str]) -> str:
    """Menu 2, R, the RRN; each of ``dates`` typed and entered (the screen after each kept in
    ``seen``); then the amount, reason Return, the UnionPay card, the password."""
    await pilot.press("2")
    assert app.state.step is Step.ORIGINAL
    await pilot.press("r", *rrn, "enter")
    assert app.state.step is Step.ORIGINAL_DATE
    seen.append(screen_text(pilot))
    for mmdd in dates:
        await pilot.press("delete", *mmdd, "enter")
        seen.append(screen_text(pilot))
    assert app.state.step is Step.AMOUNT
    await pilot.press(*amount, "enter", "4", *["down"] * PANS.index(UNIONPAY), "s")
    assert app.state.step is Step.SUPERVISOR
    await pilot.press(*"0000", "enter")
    text = await result(app, pilot)
    await pilot.press("enter")
    return text


def test_keyed_rrn_refund_asks_for_the_originals_date_and_sends_it_in_61_3(
        cup_host: CupHost, tmp_path: Path, run: Any) -> None:
    """A refund of an RRN this terminal's journal does not hold (another terminal sold it)
    asks for the original's date and refuses a date that is none; the wrong date draws the
    host's 25 on the result screen, the slip's date an approved 0220 whose 61.3 is that
    date."""
    seller = Terminal(tmp_path / "seller", SELLER, cup_host.port)
    run(seller.day(seller.sale(5000)))
    (sold,) = seller.journal
    assert sold.status is TxnStatus.APPROVED and sold.rrn and sold.host_date
    right = sold.host_date
    wrong = "0101" if right != "0101" else "0102"
    config = TerminalConfig(port=cup_host.port, profile="cup", data_dir=tmp_path / "tui",
                            terminal_id=TUI, timeout_s_response=5.0, reversal_repeats=0,
                            echo_interval_s=0)
    screens: list[str] = []
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        texts.append(await _keyed_refund(app, pilot, str(sold.rrn), [wrong], "1000", []))
        texts.append(await _keyed_refund(app, pilot, str(sold.rrn), ["1399", "0230", right],
                                         "1000", screens))

    app = drive(config, run, script, size=(130, 40))
    asked, no_month, no_day, _taken = screens
    assert "Enter the original's date from its slip (MMDD)" in asked
    assert f"Refund of RRN {sold.rrn}" in asked and "MM/DD  __/__" in asked
    assert "No such month: MM is 01 to 12" in no_month and "MM/DD  13/99" in no_month
    assert "No such day in that month" in no_day
    assert "DECLINED 25" in texts[0] and "APPROVED" in texts[1]
    refunds = [t.fields for t in app.traffic if t.direction == "sent" and t.mti == "0220"]
    assert [(r["37"], r["61"]) for r in refunds] == [
        (sold.rrn, "000000000000" + wrong), (sold.rrn, "000000000000" + right)]
    assert [t.status for t in app.journal] == [TxnStatus.DECLINED, TxnStatus.APPROVED]
    assert _detail(run, cup_host, sold.rrn).refunded_minor == 1000


# -- an unanswered 0220 is sent again -----------------------------------------------------------


def test_refund_advice_whose_answer_is_lost_is_sent_again_and_booked_once(
        cup_host: CupHost, tmp_path: Path, run: Any) -> None:
    """The host books an 0220 but the connection closes before its answer: the terminal sends
    the same 0220 again at once (a CUP terminal has no 0221), the host answers it as it
    answered the first, and the journal line ends approved; the sale has one refund."""
    term = Terminal(tmp_path / "term", LOST_ANSWER, cup_host.port, repeats=1)
    sale, refund = run(term.day(term.sale(5000), "refund 2000"))
    assert (sale.status, refund.status) == ("approved", "approved")
    first, again = term.sent("0220")
    assert again == first
    assert [t.status for t in term.journal] == [TxnStatus.APPROVED, TxnStatus.APPROVED]
    detail = _detail(run, cup_host, next(iter(term.journal)).rrn)
    assert (detail.refund_count, detail.refunded_minor) == (1, 2000)


def test_refund_advice_waits_through_a_restart_and_goes_before_the_next_sale(
        cup_host: CupHost, tmp_path: Path, run: Any) -> None:
    """An 0220 that never reached the host, with no repeat left, waits in the journal (not
    "to reverse"); the terminal restarted on the same journal sends it again, rebuilt from the
    line, before its next sale: the host books it then, once, and the line ends approved."""
    before = Terminal(tmp_path / "term", LOST_ADVICE, cup_host.port)
    sale, refund = run(before.day(before.sale(5000), "refund 1500"))
    assert (sale.status, refund.status) == ("approved", "no_response")
    assert "sent again before the next transaction" in refund.detail
    assert [t.status for t in before.journal] == [TxnStatus.APPROVED, TxnStatus.ADVICE_PENDING]
    after = Terminal(tmp_path / "term", LOST_ADVICE, cup_host.port)
    (next_sale,) = run(after.day(after.sale(700)))
    assert next_sale.status == "approved"
    assert [t.mti for t in after.traffic if t.direction == "sent"] == ["0800", "0220", "0200"]
    assert after.sent("0220") == before.sent("0220")
    assert [t.status for t in after.journal] == [TxnStatus.APPROVED] * 3
    detail = _detail(run, cup_host, next(iter(after.journal)).rrn)
    assert (detail.refund_count, detail.refunded_minor) == (1, 1500)


# -- a stored reversal keeps its reason ---------------------------------------------------------


def test_stored_reversal_is_sent_again_after_a_restart_with_its_a0_reason(
        cup_host: CupHost, tmp_path: Path, run: Any) -> None:
    """A sale whose answer fails its MAC is reversed with A0; when that reversal's answer
    fails its MAC too, the reversal waits in the journal, and the terminal restarted on it
    sends the same 0400 again, A0 and all (not 98), before its next sale: the host, which
    took the first, acknowledges it."""
    relay = run(flip_first_answer_mac(cup_host.port, "0210", "0410"))
    try:
        before = Terminal(tmp_path / "term", MACS, relay.sockets[0].getsockname()[1], tmk=TMK)
        (sale,) = run(before.day(before.sale(3000)))
    finally:
        relay.close()
    assert sale.status == "no_response"
    assert [t.status for t in before.journal] == [TxnStatus.REVERSAL_PENDING]
    after = Terminal(tmp_path / "term", MACS, cup_host.port, tmk=TMK)
    (next_sale,) = run(after.day(after.sale(800)))
    (first,), (stored,) = before.sent("0400"), after.sent("0400")
    assert stored["39"] == "A0" and _unsealed(stored) == _unsealed(first)
    assert next_sale.status == "approved"
    assert [t.status for t in after.journal] == [TxnStatus.REVERSED, TxnStatus.APPROVED]


def test_refund_advice_that_waited_through_the_cutoff_is_booked_after_it(
        own_cup_host: CupHost, tmp_path: Path, run: Any) -> None:
    """An 0220 that never reached the host waits in the journal while the host's cut-off
    closes the day; sent again the next day, it still names the terminal's batch, which only
    the terminal's own 0500 numbers, so the host books it once (no 77)."""
    host = own_cup_host
    before = Terminal(tmp_path / "term", LOST_ADVICE, host.port)
    sale, refund = run(before.day(before.sale(5000), "refund 1500"))
    assert (sale.status, refund.status) == ("approved", "no_response")
    clock = run(host.admin.post("/clock/advance", {"days": 1}))
    assert clock["business_dates"][MID] == "2026-03-11"  # the cut-off of the 10th has run
    after = Terminal(tmp_path / "term", LOST_ADVICE, host.port)
    (next_sale,) = run(after.day(after.sale(700)))
    assert next_sale.status == "approved"
    (advice,) = after.sent("0220")
    assert advice == before.sent("0220")[0]
    assert [t.status for t in after.journal] == [TxnStatus.APPROVED] * 3
    detail = _detail(run, host, next(iter(after.journal)).rrn)
    assert (detail.refund_count, detail.refunded_minor) == (1, 1500)
