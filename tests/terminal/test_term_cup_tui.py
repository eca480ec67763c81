"""``poslab-terminal --profile cup``: the Textual terminal driven by its pilot against the CUP
responder of ``cup_responder.py`` (plain pyiso8583 and the public CUP layouts) over loopback
TCP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cup_responder import CupResponder, serve
from term_helpers import PANS, drive, refund, result, sale, screen_text, until
from textual.pilot import Pilot

from protocol.cup_private import SettlementResult
from scenarios.loader import load_file
from scenarios.recorder import record_to
from scenarios.report import render_failure
from scenarios.runner import run_scenario
from scenarios.targets import start_local
from terminal import i18n
from terminal.app import PosApp
from terminal.config import TerminalConfig
from terminal.hostproc import HostProcess
from terminal.journal import TxnKind, TxnStatus

pytestmark = pytest.mark.long  # each drives the TUI through a CUP day for several seconds

UNIONPAY = PANS.index("6212345678901265")
Script = Callable[[PosApp, Pilot[None]], Awaitable[None]]


@pytest.fixture(autouse=True)
def _english_after() -> Iterator[None]:
    """The language is chosen per process: put English back for the next test."""
    yield
    i18n.use(i18n.ENGLISH)


def drive_cup(tmp_path: Path, run: Any, responder: CupResponder, script: Script,
              lang: str = "en", size: tuple[int, int] = (130, 40)) -> PosApp:
    """Start the responder and a CUP terminal on it, wait for the sign-on, run ``script``.

    The responder answers at once; the 5 s answer timeout only leaves a loaded machine room
    (at 1 s a refund was reversed while the event loop shared two busy cores)."""
    apps: list[PosApp] = []

    async def go() -> None:
        server = await serve(responder)
        config = TerminalConfig(port=server.sockets[0].getsockname()[1], profile="cup",
                                data_dir=tmp_path / "data", timeout_s_response=5.0,
                                reversal_repeats=0, echo_interval_s=0, lang=lang)
        app = PosApp(config)
        apps.append(app)
        try:
            async with app.run_test(size=size) as pilot:
                await until(pilot, lambda: app.link_state == "ONLINE", what="sign-on")
                await script(app, pilot)
        finally:
            app.link.close()
            server.close()

    run(go(), timeout=90)
    return apps[0]


def test_cup_terminal_signs_on_and_sells_in_the_hosts_batch(tmp_path: Path, run: Any) -> None:
    """At start the terminal signs on (0800, 60.3 004), says so and shows the host's batch on
    the status line; the sale goes out as a CUP 0200 in that batch, its slip prints the batch,
    and the inspector names the CUP subfields 60.1-60.3."""
    responder = CupResponder(batch="000042")
    seen: dict[str, str] = {}

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await until(pilot, lambda: "Signed on" in screen_text(pilot), what="the notice")
        seen["start"] = screen_text(pilot)
        seen["sale"] = await sale(app, pilot, "1250", card_down=UNIONPAY)
        seen["inspector"] = screen_text(pilot)

    app = drive_cup(tmp_path, run, responder, script, size=(170, 60))
    assert [r["t"] for r in responder.seen] == ["0800", "0200"]
    assert responder.seen[0]["60"] == "00000001004"
    assert responder.seen[1]["60"] == "22000042000" and responder.seen[1]["4"] == "000000001250"
    assert "Signed on: the host opened batch 000042" in seen["start"]
    assert "000042" in seen["start"].splitlines()[0]
    assert "APPROVED" in seen["sale"] and "BATCH 000042" in seen["sale"]
    assert "60.1" in seen["inspector"] and "22  sale" in seen["inspector"]
    assert "60.2" in seen["inspector"] and "Batch number" in seen["inspector"]
    assert "batch 22000042000" not in seen["inspector"]  # not the generic reading of DE60
    assert [t.batch for t in app.journal] == ["000042"]


def test_cup_refund_is_a_0220_naming_the_original_in_de61(tmp_path: Path, run: Any) -> None:
    """A refund picked from the journal goes out as 0220/200000 with DE37 the sale's RRN and
    DE61 the sale's batch, trace and date (the host's DE13); a void as 0200/200000 with DE61
    the original's batch and trace."""
    responder = CupResponder(batch="000042")

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "5000", card_down=UNIONPAY)
        assert "APPROVED" in await refund(app, pilot, "2000")
        await pilot.press("3")
        await until(pilot, lambda: app.state.step.value == "original", what="void list")
        await pilot.press("enter", "enter")  # the newest line: the refund
        await until(pilot, lambda: app.state.step.value == "supervisor", what="supervisor")
        await pilot.press(*"0000", "enter")
        assert "APPROVED" in await result(app, pilot)

    app = drive_cup(tmp_path, run, responder, script)
    sale_req, refund_req, void_req = responder.seen[1:4]
    assert (refund_req["t"], refund_req["3"], refund_req["60"][:2]) == ("0220", "200000", "25")
    assert refund_req["37"] == "000000000001"
    assert refund_req["61"] == "000042" + sale_req["11"] + "1204"
    assert (void_req["t"], void_req["3"], void_req["60"][:2]) == ("0200", "200000", "23")
    assert void_req["61"] == "000042" + refund_req["11"] + "0000"
    kinds = [(t.kind, t.status) for t in app.journal]
    assert kinds == [(TxnKind.SALE, TxnStatus.APPROVED), (TxnKind.REFUND, TxnStatus.APPROVED),
                     (TxnKind.VOID, TxnStatus.APPROVED)]


def test_cup_terminal_signs_on_again_after_77_and_says_so(tmp_path: Path, run: Any) -> None:
    """A 77 answer (not the signed-on batch) makes the terminal sign on again at once; the
    result screen says so and names the batch, and the next sale is approved."""
    responder = CupResponder(batch="000042")
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        responder.refuse_next = "77"
        texts.append(await sale(app, pilot, "100", card_down=UNIONPAY))
        texts.append(await sale(app, pilot, "100", card_down=UNIONPAY))

    drive_cup(tmp_path, run, responder, script)
    assert [r["t"] for r in responder.seen] == ["0800", "0200", "0800", "0200"]
    refused = " ".join(texts[0].split())
    assert "DECLINED 77" in refused and "signed on again (batch 000042)" in refused
    assert "APPROVED" in texts[1]


def test_cup_settlement_screen_shows_cup_totals_and_the_upload(tmp_path: Path,
                                                                run: Any) -> None:
    """The settlement screen shows the CUP totals (domestic and foreign debits and credits);
    result flag 2 brings the 0320 upload and its closing 207, then the batch closes (flag 1
    against the real host is below)."""
    responder = CupResponder(batch="000042", result=SettlementResult.NOT_BALANCED)
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await sale(app, pilot, "1250", card_down=UNIONPAY)
        await sale(app, pilot, "700")  # a Visa card: foreign
        await pilot.press("4")
        await pilot.pause()
        texts.append(screen_text(pilot))
        await pilot.press("enter")
        await until(pilot, lambda: app.journal.batch_number == "000043", what="settlement")
        await pilot.pause()
        texts.append(" ".join(screen_text(pilot).split()))

    drive_cup(tmp_path, run, responder, script)
    totals, done = texts
    assert "China UnionPay totals" in totals
    domestic = next(line for line in totals.splitlines() if "Domestic" in line)
    foreign = next(line for line in totals.splitlines() if "Foreign" in line)
    assert "1" in domestic and "12.50" in domestic and "7.00" in foreign
    sent = [(r["t"], r.get("60", "")[8:]) for r in responder.seen[3:]]
    assert sent == [("0500", "201"), ("0320", "201"), ("0320", "207")]
    assert "(result 2); 2 transactions uploaded" in done and "open batch now 000043" in done


def test_cup_slip_in_chinese_is_a_sales_slip_with_the_hosts_batch(tmp_path: Path,
                                                                  run: Any) -> None:
    """Under --lang zh-CN the CUP sale's slip takes the 签购单 layout with the host's batch
    (批次号), the trace as voucher number (凭证号) and the type 消费."""
    responder = CupResponder(batch="000042")
    texts: list[str] = []

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        texts.append(await sale(app, pilot, "1250", card_down=UNIONPAY))

    app = drive_cup(tmp_path, run, responder, script, lang="zh-CN")
    slip = (tmp_path / "data" / "receipts").glob("*.txt")
    text = next(slip).read_text(encoding="utf-8")
    stan = next(iter(app.journal)).stan
    assert "签购单" in text and "消费" in text
    assert any("批次号" in line and "000042" in line for line in text.splitlines())
    assert any("凭证号" in line and stan in line for line in text.splitlines())
    assert "6212345678901265" not in text


def test_cup_terminal_against_the_real_host_records_a_cup_scenario(tmp_path: Path,
                                                                    run: Any) -> None:
    """On a real ``poslab-host --profile cup``: the terminal signs on into the host's batch,
    sells, refunds part of the sale with an 0220 and settles with CUP totals; the host agrees
    (result 1) and the next batch opens. ``--record``'s wiring writes it as a ``profile: cup``
    scenario (sign-on, sale, refund naming the sale, settle) that passes on a fresh host."""
    host = HostProcess(tmp_path / "host", profile="cup")
    port = host.start()
    texts: list[str] = []
    path = tmp_path / "day.yaml"
    try:
        config = TerminalConfig(port=port, profile="cup", data_dir=tmp_path / "data",
                                timeout_s_response=5.0, reversal_repeats=0, echo_interval_s=0)

        def prepare(app: PosApp) -> None:
            app.engine.observers.append(record_to(path, config, datetime.now().astimezone()))

        async def script(app: PosApp, pilot: Pilot[None]) -> None:
            batch = app.journal.batch_number
            texts.append(await sale(app, pilot, "5000", card_down=UNIONPAY))
            texts.append(await refund(app, pilot, "2000"))
            await pilot.press("4", "enter")
            await until(pilot, lambda: app.journal.batch_number != batch, what="settlement")
            await pilot.pause()
            texts.append(" ".join(screen_text(pilot).split()))

        app = drive(config, run, script, prepare, size=(130, 40))
    finally:
        host.stop()
    assert "APPROVED" in texts[0] and "APPROVED" in texts[1]
    assert "agree (result 1)" in texts[2]
    assert [(t.kind, t.status) for t in app.journal] == [
        (TxnKind.SALE, TxnStatus.APPROVED), (TxnKind.REFUND, TxnStatus.APPROVED)]
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert doc["terminal"]["profile"] == "cup"
    assert [next(iter(step)) for step in doc["steps"]] == ["echo", "sale", "refund", "settle"]
    assert doc["steps"][0]["echo"] == {"code": "sign_on"}
    assert doc["steps"][2]["refund"]["original"] == "s1"
    assert doc["steps"][3] == {"settle": {}, "expect": {"response": "00"}}
    (loaded,), problems = load_file(path)
    assert problems == []
    outcome = run(run_scenario(loaded, start_local), timeout=60)
    assert outcome.status == "passed", render_failure(outcome)
