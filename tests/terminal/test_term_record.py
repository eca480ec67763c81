"""``poslab-terminal --record FILE``: terminal exchanges become a scenario that replays green.

Unit tests feed :class:`scenarios.recorder.Recorder` typed exchanges and compare the scenario
it builds; the end-to-end test records a pilot session against a real host and replays the
file with the scenario runner on a fresh in-process host.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from term_helpers import RealHost, drive, refund, result, sale
from textual.pilot import Pilot

from protocol.codes import EntryMode, NetworkCode, RefundReason
from protocol.messages import (
    BatchTotals,
    FinancialResponse,
    NetworkRequest,
    NetworkResponse,
    ReconciliationRequest,
    ReconciliationResponse,
    RefundRequest,
    SaleRequest,
    VoidRequest,
)
from protocol.money import Money
from scenarios.cli import make_target_factory
from scenarios.loader import load_file, load_text
from scenarios.recorder import Exchanged, Recorder, RecordFile, record_to
from scenarios.runner import run_scenario
from terminal.app import PosApp
from terminal.cards import load_deck
from terminal.cli import main
from terminal.config import TerminalConfig

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=TZ)
VISA, MASTER = load_deck()[0], load_deck()[1]
IDS = {"terminal_id": "TERM0001", "merchant_id": "MERCHANT0000001"}


def cny(minor: int) -> Money:
    """An amount in fen."""
    return Money(minor, "CNY")


def sale_req(stan: str, minor: int, card: Any = VISA) -> SaleRequest:
    """A chip sale as the terminal builds it."""
    return SaleRequest(stan=stan, card=card.present(EntryMode.CHIP), amount=cny(minor), **IDS)


def refund_req(stan: str, minor: int, rrn: str, card: Any = VISA) -> RefundRequest:
    """A chip refund of ``rrn`` for reason return."""
    return RefundRequest(stan=stan, card=card.present(EntryMode.CHIP), amount=cny(minor),
                         original_rrn=rrn, reason=RefundReason.RETURN, operator="SUPERVISOR",
                         **IDS)


def answer(req: Any, code: str = "00", rrn: str | None = None, rule: str | None = None,
           remaining: int | None = None, day: str = "1127") -> FinancialResponse:
    """The host's 0210 to ``req``."""
    return FinancialResponse(mti_value="0210", stan=req.stan, response_code=code, rule=rule,
                             processing_code=req.processing_code, rrn=rrn, business_date=day,
                             remaining=cny(remaining) if remaining is not None else None, **IDS)


def recorder() -> Recorder:
    """A recorder for the default terminal, started at T0."""
    return Recorder("127.0.0.1:8583", T0, "TERM0001", "MERCHANT0000001", "CNY")


def test_sale_refunds_void_become_steps_with_references() -> None:
    """Sale, partial refund, over-refund, a void of another sale: step ids instead of RRNs,
    amounts as decimal strings, the deck name, response/rule/remaining expectations, and the
    file validates as a scenario."""
    rec = recorder()
    s1, s2 = sale_req("000001", 10000), sale_req("000004", 4200, MASTER)
    r1, r2 = refund_req("000002", 6000, "R00000000001"), refund_req("000003", 5000,
                                                                   "R00000000001")
    v1 = VoidRequest(stan="000005", card=None, amount=cny(4200), original_rrn="R00000000004",
                     operator="SUPERVISOR", **IDS)
    for req, resp, name in [
        (s1, answer(s1, rrn="R00000000001"), VISA.name),
        (r1, answer(r1, rrn="R00000000002", remaining=4000), VISA.name),
        (r2, answer(r2, "13", "R00000000003", "REFUND_EXCEEDS_REMAINING: left 40.00", 4000),
         VISA.name),
        (s2, answer(s2, rrn="R00000000004"), MASTER.name),
        (v1, answer(v1, rrn="R00000000005"), MASTER.name),
    ]:
        rec.add(Exchanged(req, resp, T0, name))
    assert rec.steps == [
        {"sale": {"card": "Visa approve", "amount": "100.00", "entry": "chip"}, "id": "s1",
         "expect": {"response": "00"}},
        {"refund": {"original": "s1", "amount": "60.00", "reason": "return",
                    "operator": "SUPERVISOR", "entry": "chip"}, "id": "r1",
         "expect": {"response": "00", "remaining": "40.00"}},
        {"refund": {"original": "s1", "amount": "50.00", "reason": "return",
                    "operator": "SUPERVISOR", "entry": "chip"}, "id": "r2",
         "expect": {"response": "13", "rule": "REFUND_EXCEEDS_REMAINING",
                    "remaining": "40.00"}},
        {"sale": {"card": "Mastercard approve", "amount": "42.00", "entry": "chip"},
         "id": "s2", "expect": {"response": "00"}},
        {"void": {"original": "s2"}, "id": "v1", "expect": {"response": "00"}},
    ]
    text = rec.to_yaml()
    assert "R0000000000" not in text  # no host-assigned RRN is replayed
    loaded, problems = load_text(text, "recorded.yaml")
    assert problems == [] and loaded[0].scenario.steps[4].verb == "void"


def test_header_key_order_and_clock_when_the_host_agrees() -> None:
    """A comment header, then name, description, tags, clock (the first request's time, as
    the host's business date matches the terminal's), terminal, steps."""
    rec = recorder()
    s1 = sale_req("000001", 500)
    rec.add(Exchanged(s1, answer(s1, rrn="R1"), T0 + timedelta(minutes=3), VISA.name))
    text = rec.to_yaml()
    assert text.startswith("# Recorded by poslab-terminal --record on 2026-11-27T09:00:00+08:00")
    assert "127.0.0.1:8583" in text.splitlines()[1]
    doc = yaml.safe_load(text)
    assert list(doc) == ["name", "description", "tags", "clock", "terminal", "steps"]
    assert doc["clock"] == {"start": "2026-11-27T09:03:00+08:00"}
    assert doc["terminal"] == {"tid": "TERM0001", "mid": "MERCHANT0000001", "currency": "CNY"}
    assert "127.0.0.1:8583" in doc["description"] and doc["tags"] == ["recorded"]
    assert 'amount: "5.00"' in text and 'response: "00"' in text


def test_business_date_change_becomes_an_advance() -> None:
    """With the host on the terminal's clock, a business-date change between two requests
    is ``advance: {to: <the later request's time>}``."""
    rec = recorder()
    s1, r1 = sale_req("000001", 500), refund_req("000002", 100, "R1")
    later = T0 + timedelta(days=31)
    rec.add(Exchanged(s1, answer(s1, rrn="R1"), T0, VISA.name))
    rec.add(Exchanged(r1, answer(r1, "12", rule="REFUND_WINDOW_EXPIRED", day="1228"), later,
                      VISA.name))
    assert rec.steps[1]["advance"] == {"to": "2026-12-28T09:00:00+08:00"}
    assert rec.steps[2]["expect"] == {"response": "12", "rule": "REFUND_WINDOW_EXPIRED"}


def test_simulated_host_clock_omits_clock_and_advances_by_days() -> None:
    """A host whose business date is far from the terminal's clock (simulated): no ``clock``,
    and its day moving by 31 becomes ``advance: {days: 31}``."""
    rec = recorder()
    s1, r1 = sale_req("000001", 500), refund_req("000002", 100, "R1")
    rec.add(Exchanged(s1, answer(s1, rrn="R1", day="0302"), T0, VISA.name))
    rec.add(Exchanged(r1, answer(r1, day="0402"), T0 + timedelta(minutes=1), VISA.name))
    assert "clock" not in rec.document()
    assert rec.steps[1]["advance"] == {"days": 31}


def test_unanswered_request_expects_a_timeout_and_its_reversal() -> None:
    """No answer: ``expect: {timeout: true}``; a reversal answered 25 is kept, 00 is the
    default; neither is referable later."""
    rec = recorder()
    s1, s2 = sale_req("000001", 500), sale_req("000002", 700)
    rec.add(Exchanged(s1, None, T0, "Visa silent issuer", reversal="00"))
    rec.add(Exchanged(s2, None, T0, "Visa silent issuer", reversal="25"))
    assert rec.steps[0]["expect"] == {"timeout": True}
    assert rec.steps[1]["expect"] == {"timeout": True, "reversal": "25"}
    assert "reversal was answered 25" in rec.steps[1]["note"]


def test_unrecorded_original_falls_back_to_original_rrn() -> None:
    """A refund of a sale made before the recording: ``original_rrn`` with the card, and a
    note saying a fresh host will not know it."""
    rec = recorder()
    r1 = refund_req("000001", 800, "OLD000000001")
    rec.add(Exchanged(r1, answer(r1, remaining=8000), T0, VISA.name))
    params = rec.steps[0]["refund"]
    assert params["original_rrn"] == "OLD000000001" and params["card"] == "Visa approve"
    assert "original" not in params and "before the recording" in rec.steps[0]["note"]


def test_refund_to_another_card_names_it() -> None:
    """A refund presenting a different card than its sale's names that card (same-card
    rule); the sale's own card is left to the default."""
    rec = recorder()
    s1, r1 = sale_req("000001", 500), refund_req("000002", 100, "R1", MASTER)
    rec.add(Exchanged(s1, answer(s1, rrn="R1"), T0, VISA.name))
    rec.add(Exchanged(r1, answer(r1, "14", rule="REFUND_CARD_MISMATCH"), T0, MASTER.name))
    assert rec.steps[1]["refund"]["card"] == "Mastercard approve"


def settle_event(totals: BatchTotals, code: str, settled: bool, uploaded: int = 0
                 ) -> Exchanged:
    """A settlement whose first 0510 answered ``code``."""
    req = ReconciliationRequest(stan="000009", batch_number="000001", totals=totals, **IDS)
    resp = ReconciliationResponse(mti_value="0510", stan="000009", response_code=code, **IDS)
    return Exchanged(req, resp, T0, settled=settled, uploaded=uploaded)


def test_settlement_with_the_recorded_totals_is_settle_journal() -> None:
    """Totals equal to the recorded batch: ``settle: {}`` expecting 00, even where the host
    answered 95 for transactions outside the recording; a closed batch starts afresh."""
    rec = recorder()
    s1 = sale_req("000001", 500)
    rec.add(Exchanged(s1, answer(s1, rrn="R1"), T0, VISA.name))
    rec.add(settle_event(BatchTotals("CNY", 1, 500), "95", True, uploaded=2))
    assert rec.steps[1]["settle"] == {} and rec.steps[1]["expect"] == {"response": "00"}
    assert "uploaded 2" in rec.steps[1]["note"]
    rec.add(settle_event(BatchTotals("CNY"), "00", True))
    assert rec.steps[2] == {"settle": {}, "expect": {"response": "00"}}


def test_settlement_with_unrecorded_transactions_writes_totals() -> None:
    """Totals the recording cannot explain (a batch begun before it): the terminal's totals
    and the 95 a fresh host will answer."""
    rec = recorder()
    rec.add(settle_event(BatchTotals("CNY", 2, 3000, 1, 100), "00", True))
    assert rec.steps[0]["settle"] == {"totals": {"sales_count": 2, "sales": "30.00",
                                                 "refunds_count": 1, "refunds": "1.00"}}
    assert rec.steps[0]["expect"] == {"response": "95", "rule": "RECONCILE_MISMATCH"}


def test_network_management_and_idle_echoes() -> None:
    """Sign-on is ``echo: {code: sign_on}``; a run of identical echo tests is one step; an
    unanswered echo is link trouble and not recorded."""
    rec = recorder()

    def net(code: NetworkCode, answered: bool = True) -> Exchanged:
        req = NetworkRequest(stan="000001", code=code, **IDS)
        resp = NetworkResponse(mti_value="0810", stan="000001", response_code="00",
                               business_date="1127", **IDS)
        return Exchanged(req, resp if answered else None, T0)

    for event in [net(NetworkCode.SIGN_ON), net(NetworkCode.ECHO), net(NetworkCode.ECHO),
                  net(NetworkCode.ECHO, answered=False), net(NetworkCode.ECHO)]:
        rec.add(event)
    assert rec.steps == [{"echo": {"code": "sign_on"}, "expect": {"response": "00"}},
                         {"echo": {}, "expect": {"response": "00"}}]


def test_record_file_is_rewritten_atomically(tmp_path: Path) -> None:
    """The file appears with the first step and is a complete scenario after every
    exchange; no temporary file is left behind."""
    path = tmp_path / "session.yaml"
    sink = RecordFile(path, recorder())
    s1, s2 = sale_req("000001", 500), sale_req("000002", 600)
    sink(Exchanged(s1, answer(s1, rrn="R1"), T0, VISA.name))
    assert load_file(path)[1] == [] and len(load_file(path)[0][0].scenario.steps) == 1
    sink(Exchanged(s2, answer(s2, rrn="R2"), T0, VISA.name))
    assert len(load_file(path)[0][0].scenario.steps) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.yaml"]
    assert sink.error is None


@pytest.mark.parametrize(("where", "message"), [
    ("missing/dir/session.yaml", "does not exist"),
    (".", "is a directory"),
    ("locked/session.yaml", "cannot write there"),
    ("/sys/session.yaml", "cannot write there"),  # sysfs refuses new files, even to root
    ("data.txt/session.yaml", "is not a directory"),
])
def test_bad_record_path_is_a_usage_error(tmp_path: Path, where: str, message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """--record into a missing directory, onto a directory, under a file or into an unwritable
    directory: exit 2 with one line naming --record, before anything starts."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    (tmp_path / "data.txt").write_text("", encoding="utf-8")
    if where.startswith("locked") and os.access(locked, os.W_OK):
        pytest.skip("running as a user that may write anywhere (root)")
    try:
        assert main(["--data-dir", str(tmp_path / "data"), "--record",
                     str(tmp_path / where)]) == 2
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err
    assert err.startswith("poslab-terminal: --record ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "data").exists()


def test_recorded_session_replays_green(real_config: TerminalConfig, real_host: RealHost,
                                        tmp_path: Path, run: Any) -> None:
    """A pilot session against a real host -- sale, partial refund from the journal,
    over-refund declined, void of another sale -- recorded with --record's wiring, loads as
    a scenario and passes on a fresh in-process host."""
    path = tmp_path / "session.yaml"
    texts: list[str] = []

    def prepare(app: PosApp) -> None:
        app.engine.observers.append(record_to(path, real_config, datetime.now().astimezone()))

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        texts.append(await sale(app, pilot, "10000"))
        texts.append(await refund(app, pilot, "6000"))
        texts.append(await refund(app, pilot, "5000"))
        texts.append(await sale(app, pilot, "4200", card_down=1))
        await pilot.press("3", "enter", "enter", *"0000", "enter")
        texts.append(await result(app, pilot))

    app = drive(real_config, run, script, prepare)
    assert ["APPROVED" in t for t in texts] == [True, True, False, True, True]
    assert "DECLINED 13" in texts[2]
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert [next(iter(step)) for step in doc["steps"]] == [
        "echo", "sale", "refund", "refund", "sale", "void"]
    assert doc["steps"][3]["expect"]["rule"] == "REFUND_EXCEEDS_REMAINING"
    assert doc["steps"][5]["void"] == {"original": "s2"}
    text = path.read_text(encoding="utf-8")
    assert all(t.rrn and t.rrn not in text for t in app.journal)

    loaded, problems = load_file(path)
    assert problems == []
    outcome = run(run_scenario(loaded[0], make_target_factory(None)), timeout=60)
    failed = outcome.failed_step
    assert outcome.status == "passed", (outcome.error, failed and (failed.label,
                                                                   failed.expected,
                                                                   failed.actual))
    assert len(outcome.steps) == 6
