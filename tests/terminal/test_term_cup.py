"""The terminal's China UnionPay mode against a CUP responder written in this test.

The responder (``cup_responder.py``) frames and parses with plain pyiso8583 and a field spec
written out from the public CUP layouts, not with poslab's codec; the terminal talks to it over
real TCP through its own link.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cup_responder import CupResponder, serve

from protocol.codec import Codec
from protocol.codes import EntryMode, RefundReason
from protocol.cup import CUP_PROFILE
from protocol.cup_private import CupTotals, SchemeTotals, SettlementResult, parse_upload
from protocol.money import Money
from terminal.cards import Card, load_deck
from terminal.config import TerminalConfig
from terminal.cup_engine import CupEngine
from terminal.cup_session import CupSession, cup_totals
from terminal.flow import Draft, Original
from terminal.inspector import masked_bytes, safe_hex
from terminal.journal import Journal, TxnKind, TxnStatus
from terminal.link import Link
from terminal.session import TerminalSession

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def _terminal(tmp_path: Path, port: int = 9) -> tuple[CupSession, Link]:
    config = TerminalConfig(port=port, data_dir=tmp_path, timeout_s_response=0.5,
                            reversal_repeats=0)
    session = TerminalSession(config, Journal(tmp_path), clock=lambda: NOW)
    link = Link("127.0.0.1", port, Codec(CUP_PROFILE))
    return CupSession(session, deck=load_deck()), link


def _card(pan: str) -> Card:
    return next(c for c in load_deck() if c.pan.digits == pan)


UNIONPAY, VISA = "6212345678901265", "4111111111111111"


def _sale(amount: int, pan: str = UNIONPAY) -> Draft:
    return Draft(TxnKind.SALE, Money(amount, "CNY"), card=_card(pan), entry_mode=EntryMode.CHIP)


def _of(cup: CupSession, rrn: str) -> Original:
    txn = cup.session.journal.by_rrn(rrn)
    assert txn is not None
    return Original(rrn, txn.kind, txn.amount_minor, None, txn.masked_pan, txn.card_name)


def test_cup_day_sale_void_refund_settlement_and_upload(tmp_path: Path, run: Any) -> None:
    """Sign-on takes the host's batch; sale, void (DE61 batch + trace) and 0220 refund (DE61
    the original's batch, trace and date; DE37 its RRN) carry CUP fields; the 0500 totals
    count voided and refunded sales as debits; flag 2 brings the upload and the closing 207,
    then the batch closes."""
    responder = CupResponder()

    async def day() -> tuple[Any, ...]:
        server = await serve(responder)
        port = server.sockets[0].getsockname()[1]
        cup, link = _terminal(tmp_path, port)
        engine = CupEngine(cup, link)
        try:
            first = await engine.transact(_sale(10000))
            second = await engine.transact(_sale(5000, VISA))
            void = await engine.transact(Draft(TxnKind.VOID, Money(5000, "CNY"),
                                               original=_of(cup, "000000000002")))
            refund = await engine.transact(Draft(
                TxnKind.REFUND, Money(3000, "CNY"), card=_card(UNIONPAY),
                entry_mode=EntryMode.SWIPE, original=_of(cup, "000000000001"),
                reason=RefundReason.RETURN))
            settled = await engine.settle()
            return first, second, void, refund, settled, cup
        finally:
            link.close()
            server.close()

    first, second, void, refund, settled, cup = run(day())
    assert [o.status for o in (first, second, void, refund)] == ["approved"] * 4
    sign_on, sale, visa_sale, void_req, refund_req, settlement, *uploads = responder.seen
    assert sign_on["t"] == "0800" and sign_on["60"] == "00000001004"
    assert sale["t"] == "0200" and sale["3"] == "000000" and sale["25"] == "00"
    assert sale["60"] == "22000042000" and sale["22"] == "052" and sale["49"] == "156"
    assert void_req["t"] == "0200" and void_req["3"] == "200000"
    assert void_req["60"][:8] == "23000042" and void_req["37"] == "000000000002"
    assert void_req["61"] == "000042" + visa_sale["11"] + "0000"
    assert refund_req["t"] == "0220" and refund_req["3"] == "200000"
    assert refund_req["60"][:8] == "25000042" and refund_req["37"] == "000000000001"
    assert refund_req["61"] == "000042" + sale["11"] + "1204" and refund_req["22"] == "022"
    for request in responder.seen:  # each is a complete CUP message of its kind
        assert CUP_PROFILE.identify(request["t"], request.get("3"), request) is not None
        assert CUP_PROFILE.missing_field(request) is None, request["t"]
    totals = CupTotals.parse(settlement["48"])
    assert settlement["t"] == "0500" and settlement["60"] == "00000042201"
    assert totals.domestic == SchemeTotals(10000, 1, 3000, 1)
    assert totals.foreign == SchemeTotals(5000, 1, 5000, 1)
    assert [u["60"][8:] for u in uploads] == ["201", "207"]
    records = parse_upload(uploads[0]["48"])
    assert [(r.trace, r.amount, r.foreign) for r in records] == [
        (sale["11"], 10000, False), (visa_sale["11"], 5000, True),
        (void_req["11"], 5000, True), (refund_req["11"], 3000, False)]
    assert uploads[1]["48"] == "0004"
    assert settled.ok and settled.result is SettlementResult.NOT_BALANCED
    assert settled.uploaded == 4
    assert (settled.closed_batch, settled.new_batch) == ("000042", "000043")
    assert cup.session.journal.batch_number == "000043"


def test_cup_signs_on_again_after_77_and_a0(tmp_path: Path, run: Any) -> None:
    """A 77 or an A0 answer drops the sign-on: the terminal signs on again at once and the
    next sale goes through in the host's batch."""
    responder = CupResponder()

    async def go() -> list[str]:
        server = await serve(responder)
        cup, link = _terminal(tmp_path, server.sockets[0].getsockname()[1])
        engine = CupEngine(cup, link)
        codes = []
        try:
            for refusal in ("77", "A0"):
                responder.refuse_next = refusal
                codes.append((await engine.transact(_sale(100))).response_code or "")
            codes.append((await engine.transact(_sale(100))).response_code or "")
            return codes
        finally:
            link.close()
            server.close()

    codes = run(go())
    assert codes == ["77", "A0", "00"]
    assert [r["t"] for r in responder.seen] == ["0800", "0200", "0800", "0200", "0800", "0200"]
    assert responder.seen[-1]["60"][2:8] == "000042"


def test_cup_reverses_an_unanswered_sale_with_reason_98(tmp_path: Path, run: Any) -> None:
    """A sale the host never answers is reversed with an 0400 carrying its trace, amount,
    DE60 and DE39 98; the journal line ends reversed."""
    responder = CupResponder(silent_pans={UNIONPAY})

    async def go() -> Any:
        server = await serve(responder)
        cup, link = _terminal(tmp_path, server.sockets[0].getsockname()[1])
        try:
            outcome = await CupEngine(cup, link).transact(_sale(700))
            return outcome, cup
        finally:
            link.close()
            server.close()

    outcome, cup = run(go())
    sale, reversal = responder.seen[1], responder.seen[2]
    assert outcome.status == "no_response"
    assert reversal["t"] == "0400" and reversal["39"] == "98"
    assert {k: reversal[k] for k in ("3", "4", "11", "60")} == \
        {k: sale[k] for k in ("3", "4", "11", "60")}
    assert [t.status for t in cup.session.journal] == [TxnStatus.REVERSED]


def test_cup_forwards_a_stored_reversal_before_the_next_sale(tmp_path: Path, run: Any) -> None:
    """A reversal the host did not acknowledge is kept and sent again, rebuilt from the journal
    with the CUP processing code and DE60, before the next sale goes out."""
    responder = CupResponder(silent_pans={UNIONPAY}, silent_reversals=True)

    async def go() -> Any:
        server = await serve(responder)
        cup, link = _terminal(tmp_path, server.sockets[0].getsockname()[1])
        engine = CupEngine(cup, link)
        try:
            first = await engine.transact(_sale(700))
            responder.silent_pans.clear()
            responder.silent_reversals = False
            second = await engine.transact(_sale(800, VISA))
            return first, second, cup
        finally:
            link.close()
            server.close()

    first, second, cup = run(go())
    assert (first.status, second.status) == ("no_response", "approved")
    sale = responder.seen[1]
    stored = responder.seen[3]
    assert [r["t"] for r in responder.seen] == ["0800", "0200", "0400", "0400", "0200"]
    assert stored["39"] == "98" and stored["2"] == UNIONPAY
    assert {k: stored[k] for k in ("3", "4", "11", "60")} == \
        {k: sale[k] for k in ("3", "4", "11", "60")}
    assert [t.status for t in cup.session.journal] == [TxnStatus.REVERSED, TxnStatus.APPROVED]


def test_cup_balanced_settlement_closes_without_upload(tmp_path: Path, run: Any) -> None:
    """An 0510 with result flag 1 closes the batch at once: no 0320 is sent."""
    responder = CupResponder(result=SettlementResult.BALANCED)

    async def go() -> Any:
        server = await serve(responder)
        cup, link = _terminal(tmp_path, server.sockets[0].getsockname()[1])
        engine = CupEngine(cup, link)
        try:
            await engine.transact(_sale(100))
            return await engine.settle()
        finally:
            link.close()
            server.close()

    settled = run(go())
    assert [r["t"] for r in responder.seen] == ["0800", "0200", "0500"]
    assert settled.ok and settled.result is SettlementResult.BALANCED and settled.uploaded == 0
    assert (settled.closed_batch, settled.new_batch) == ("000042", "000043")


def test_upload_splits_into_messages_of_eight_records(tmp_path: Path) -> None:
    """Nine approved sales upload as 8 + 1 records, then the closing 0320 (60.3 207)."""
    cup, _ = _terminal(tmp_path)
    for amount in range(1, 10):
        pending, _fields = cup.begin(_sale(amount))
        pending.txn.status = TxnStatus.APPROVED
        cup.session.journal.update(pending.txn)
    uploads = list(cup.upload_requests())
    assert [len(parse_upload(u["48"])) for u in uploads[:2]] == [8, 1]
    assert [u["60"][8:] for u in uploads] == ["201", "201", "207"]
    assert uploads[2]["48"] == "0009"


@pytest.mark.parametrize(("voided", "refunded"), [(False, False), (True, False), (False, True)])
def test_cup_totals_keep_voided_and_refunded_sales_as_debits(
        tmp_path: Path, voided: bool, refunded: bool) -> None:
    """A sale stays a debit whatever happened to it later; its void or refund is a credit."""
    cup, _ = _terminal(tmp_path)
    sale, _f = cup.begin(_sale(1000))
    sale.txn.status, sale.txn.voided = TxnStatus.APPROVED, voided
    txns = [sale.txn]
    if voided or refunded:
        kind = TxnKind.VOID if voided else TxnKind.REFUND
        original = Original("000000000001", TxnKind.SALE, 1000, None, sale.txn.masked_pan)
        later, _f = cup.begin(Draft(kind, Money(400, "CNY"), card=_card(UNIONPAY),
                                    entry_mode=EntryMode.CHIP, original=original))
        later.txn.status = TxnStatus.APPROVED
        txns.append(later.txn)
    totals = cup_totals(txns)
    credit = (400, 1) if voided or refunded else (0, 0)
    assert totals.domestic == SchemeTotals(1000, 1, *credit)


def test_inspector_hex_dump_masks_packed_bcd_card_data(tmp_path: Path) -> None:
    """On CUP the PAN (DE2), track 2 (DE35) and the 0320 upload records sit in the frame as
    packed BCD: the inspector's dump shows none of those PANs whole, and still shows the BIN."""
    cup, _ = _terminal(tmp_path)
    chip, chip_fields = cup.begin(_sale(100))
    swipe, swipe_fields = cup.begin(Draft(TxnKind.SALE, Money(200, "CNY"), card=_card(VISA),
                                          entry_mode=EntryMode.SWIPE))
    for line in (chip.txn, swipe.txn):
        line.status = TxnStatus.APPROVED
        cup.session.journal.update(line)
    codec = Codec(CUP_PROFILE)
    upload, _closing = cup.upload_requests()
    for fields, pans in ((chip_fields, [UNIONPAY]), (swipe_fields, [VISA]),
                         (upload, [UNIONPAY, VISA])):
        raw = codec.encode(fields)
        shown = masked_bytes(raw, fields).hex().upper()
        dump = "".join("".join(line.split("  ")[1].split()) for line in safe_hex(raw, fields))
        for pan in pans:
            assert pan in raw.hex().upper()  # the frame really carries it packed
            assert pan not in shown and pan not in dump, fields["t"]
            assert pan[:6] in shown, fields["t"]
