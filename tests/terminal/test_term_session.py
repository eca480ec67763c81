"""The headless terminal session: journal-first requests, reversal decisions, settlement,
sign-on; and the journal's stores (an existing format-1 data directory still loads)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from protocol.codes import EntryMode, NetworkCode
from protocol.masking import Pan
from protocol.messages import (
    FinancialResponse,
    NetworkResponse,
    ReconciliationRequest,
    ReversalRequest,
)
from protocol.money import Money
from terminal.cards import Card
from terminal.config import TerminalConfig
from terminal.flow import Draft, Original
from terminal.journal import Journal, TxnKind, TxnStatus
from terminal.session import TerminalSession

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
CARD = Card("Visa approve", Pan("4111111111111111"), "3012", "approve")
FORMAT_1 = Path(__file__).parent / "data" / "journal_format1.json"


def session(journal: Journal | None = None) -> TerminalSession:
    """A session on an in-memory journal whose first STAN is 000101, at a fixed time."""
    return TerminalSession(TerminalConfig(reversal_repeats=2), journal or Journal.in_memory(101),
                           clock=lambda: NOW)


def sale(minor: int = 1000) -> Draft:
    """A keyed-in sale of ``minor`` CNY cents."""
    return Draft(TxnKind.SALE, Money(minor, "CNY"), CARD, EntryMode.MANUAL)


def answer(request_stan: str, code: str, mti: str = "0210", rrn: str | None = "000000000009"
           ) -> FinancialResponse:
    """A financial answer for ``request_stan`` with DE39 ``code``."""
    return FinancialResponse(mti_value=mti, response_code=code, stan=request_stan,
                             terminal_id="TERM0001", merchant_id="MERCHANT0000001",
                             processing_code="000000", rrn=rrn)


def test_begin_journals_the_request_pending_before_it_is_sent() -> None:
    """begin() builds the 0200 from the draft and leaves a PENDING line with its STAN."""
    s = session()
    pending = s.begin(sale())
    assert pending.request.stan == "000101" and pending.request.mti == "0200"
    assert pending.request.transmitted_at == "0302020000"
    assert s.journal.get(1).status is TxnStatus.PENDING
    assert s.journal.get(1).stan == "000101"


def test_reversal_is_0400_then_0401_until_acknowledged() -> None:
    """An unanswered sale: 0400 first, 0401 after; 12 does not acknowledge, 25 does."""
    s = session()
    txn = s.begin(sale()).txn
    s.unanswered(txn)
    first, second = s.reversal_for(txn), s.reversal_for(txn)
    assert (first.mti, second.mti) == ("0400", "0401")
    assert isinstance(first, ReversalRequest) and first.original is not None
    assert (first.original.mti, first.original.stan) == ("0200", txn.stan)
    assert s.reversal_answered(txn, answer(txn.stan, "12", "0410")) is None
    assert s.pending_reversals() == [txn] and s.reversal_tries == 3
    assert s.reversal_answered(txn, answer(txn.stan, "25", "0410")) == "25"
    assert txn.status is TxnStatus.REVERSED and s.pending_reversals() == []


def test_reversal_of_an_authorization_names_the_0100() -> None:
    """DE90 of a reversed hold carries MTI 0100, the message it undoes."""
    s = session()
    txn = s.begin(Draft(TxnKind.AUTHORIZE, Money(500, "CNY"), CARD, EntryMode.MANUAL)).txn
    reversal = s.reversal_request(txn, repeat=False)
    assert reversal.original is not None and reversal.original.mti == "0100"


def test_approved_void_marks_its_original_and_totals_follow() -> None:
    """A void approved by the host takes its sale out of the batch totals and the uploads."""
    s = session()
    first = s.begin(sale(1000))
    s.answered(first.txn, answer(first.request.stan, "00", rrn="000000000001"))
    second = s.begin(sale(700))
    s.answered(second.txn, answer(second.request.stan, "00", rrn="000000000002"))
    void = s.begin(Draft(TxnKind.VOID, Money(1000, "CNY"), CARD, EntryMode.MANUAL,
                         Original("000000000001")))
    assert void.request.processing_code == "020000"
    s.answered(void.txn, answer(void.request.stan, "00", rrn=None))
    totals = s.totals()
    assert (totals.debits_count, totals.debits_minor) == (1, 700)
    assert [u.rrn for u in s.uploads()] == ["000000000002"]
    close = s.reconciliation(after_upload=True)
    assert isinstance(close, ReconciliationRequest) and close.batch_number == "000001"
    assert s.close_batch() == "000002" and s.totals().debits_count == 0


def test_sign_on_is_remembered_until_the_link_drops() -> None:
    """An approved sign-on sets the session's standing and business date; a drop clears it."""
    s = session()
    request = s.network_request(NetworkCode.SIGN_ON)
    s.network_answered(request, NetworkResponse(
        mti_value="0810", response_code="00", stan=request.stan, terminal_id="TERM0001",
        merchant_id="MERCHANT0000001", business_date="0302", code="001"))
    assert s.sign_on_state.signed_on and s.sign_on_state.keys is None
    assert s.journal.business_date == "0302"
    s.link_lost()
    assert not s.sign_on_state.signed_on


def test_late_0210_is_counted_never_approved() -> None:
    """An 0210 for a line already reversed is counted on it; the line stays reversed."""
    s = session()
    txn = s.begin(sale()).txn
    s.unanswered(txn)
    s.reversal_answered(txn, answer(txn.stan, "00", "0410"))
    s.late_answer(answer(txn.stan, "00"))
    assert txn.late_responses == 1 and txn.status is TxnStatus.REVERSED


def test_memory_journal_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    """A session on an in-memory journal leaves no file anywhere, even in the working dir."""
    monkeypatch.chdir(tmp_path)
    s = session()
    s.begin(sale())
    assert list(tmp_path.iterdir()) == []


def test_existing_format_1_data_dir_still_loads(tmp_path: Path) -> None:
    """A journal.json written before the session existed loads: counters, lines, and its
    unanswered refund comes back as a reversal to forward; a save keeps format 1."""
    shutil.copy(FORMAT_1, tmp_path / "journal.json")
    journal = Journal(tmp_path)
    assert (journal.business_date, journal.batch_number, len(journal)) == ("0302", "000001", 2)
    assert journal.get(1).status is TxnStatus.APPROVED and journal.get(1).rrn == "000000000001"
    assert [t.stan for t in journal.pending_reversals()] == ["000002"]
    s = session(journal)
    assert s.next_stan() == "000003"
    saved = json.loads((tmp_path / "journal.json").read_text(encoding="utf-8"))
    assert saved["format"] == 1 and saved["stan"] == 3 and len(saved["txns"]) == 2
