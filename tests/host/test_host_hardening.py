"""Host hardening, checked from outside on both databases: the duplicate key without DE7, card
numbers in DE48 free text, DE48 errors and limits, the two-approver rule, and admin inputs
that must never answer 500.

Every test runs the real ``poslab-host`` process on SQLite and on PostgreSQL, talks ISO 8583
through the independent pyiso8583 client and the admin API over HTTP.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from test_host_independent_client import MID, TID, IsoClient, financial

from host.ledger import open_engine
from host.store import txn
from scenarios.admin import (
    AdminCallError,
    approve_review,
    reviews,
    transaction,
    transactions,
    verify,
)
from scenarios.admin import BlockingAdminClient as AdminClient
from scenarios.loadgen.procs import ServerProcess, python_module

README = Path(__file__).resolve().parents[2] / "README.md"
EVIDENCE_PAN, OPERATOR_PAN = "5555555555554444", "6212345678901265"


class Host:
    """A running host process with its two clients and its message log."""

    def __init__(self, server: ServerProcess, log: Path, db: str) -> None:
        self.server = server
        self.log = log
        self.db = db
        self.iso = IsoClient(int(server.ready["iso_port"]))
        self.api = AdminClient(int(server.ready["admin_port"]), str(server.ready["admin_token"]))

    def stored(self, rrn: str) -> tuple[str, str]:
        """The evidence and operator columns of the transaction row, read from the database."""
        engine = open_engine(self.db)
        try:
            with engine.connect() as conn:
                row = conn.execute(select(txn.c.evidence, txn.c.operator)
                                   .where(txn.c.rrn == rrn)).one()
        finally:
            engine.dispose()
        return str(row.evidence), str(row.operator)

    def raw(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        """One admin call with a raw body; the status and the parsed JSON answer."""
        req = urllib.request.Request(self.api.base + path, data=body, method=method)
        req.add_header("Authorization", f"Bearer {self.api.token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@contextmanager
def running_host(tmp: Path, db: str) -> Iterator[Host]:
    """A host process on ``db`` with a message log (``--log-fields``) in ``tmp``."""
    log = tmp / "host.jsonl"
    server = ServerProcess([*python_module("host"), "--listen", "127.0.0.1:0", "--admin",
                            "127.0.0.1:0", "--db", db, "--log-file", str(log), "--log-fields"],
                           name="poslab-host")
    running = Host(server, log, db)
    yield running
    running.iso.close()
    assert server.stop() == 0


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Host]:
    """A host on SQLite or on PostgreSQL, one per module and backend: the tests that take it
    use STANs, sales and reviews of their own, so none needs an empty ledger (a start costs
    more than most of these tests)."""
    tmp = tmp_path_factory.mktemp(f"hardening-{request.param}")
    db = str(tmp / "poslab.db") if request.param == "sqlite" else \
        request.getfixturevalue("module_pg_url")
    with running_host(tmp, db) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    """A host of its own on an empty ledger, for a test whose batch must hold nothing."""
    db = str(tmp_path / "poslab.db") if request.param == "sqlite" else \
        request.getfixturevalue("pg_url")
    with running_host(tmp_path, db) as running:
        yield running


def refund(rrn: str, amount_minor: int, de48: str) -> dict[str, str]:
    """A refund of ``amount_minor`` against ``rrn`` carrying ``de48``."""
    fields = financial("200000", amount_minor, rrn=rrn)
    fields["48"] = de48
    return fields


def without_times(fields: dict[str, str]) -> dict[str, str]:
    """``fields`` as a terminal that sends no DE7, DE12 or DE13 builds them."""
    return {k: v for k, v in fields.items() if k not in ("7", "12", "13")}


def test_retransmission_without_de7_is_answered_from_the_first(host: Host) -> None:
    """A sale repeated without DE7/DE12/DE13 gets the first answer back and books once; the
    same STAN with another amount is 94."""
    sale = without_times(financial("000000", 1234))
    first, again = host.iso.send(sale), host.iso.send(sale)
    assert first["39"] == "00"
    assert (again["39"], again["37"], again["38"]) == ("00", first["37"], first["38"])
    booked = host.api.fetch(transactions(tid=TID, stan=sale["11"])).transactions
    assert [t.rrn for t in booked] == [first["37"]]
    changed = host.iso.send({**sale, "4": "000000009999"})
    assert (changed["39"], changed["44"]) == ("94", "DUPLICATE_DIFFERENT")
    assert host.api.fetch(verify()).ok


def test_settlement_without_de7_is_keyed_on_its_batch_and_zero_totals_stay_readable(
        fresh_host: Host) -> None:
    """An 0500 without DE7 is keyed on its batch: the same STAN and batch with other totals is
    94; its all-zero DE86/DE88 are logged as sent, not masked as if they were card numbers."""
    zero = {"t": "0500", "3": "920000", "11": "000777", "41": TID, "42": MID, "49": "156",
            "60": "000001", "74": "0000000000", "76": "0000000000",
            "86": "0000000000000000", "88": "0000000000000000"}
    first, again = fresh_host.iso.send(zero), fresh_host.iso.send(zero)
    assert (first["39"], again["39"]) == ("00", "00")
    other = fresh_host.iso.send({**zero, "76": "0000000001", "88": "0000000000000100"})
    assert (other["39"], other["44"]) == ("94", "DUPLICATE_DIFFERENT")
    log = fresh_host.log.read_text()
    assert re.search(r"DE86 +Credits, amount +0000000000000000", log)
    assert re.search(r"DE88 +Debits, amount +0000000000000000", log)


def test_over_long_batch_number_is_30_on_both_databases(host: Host) -> None:
    """An 0500 whose DE60 batch number is longer than the 16 characters kept is refused with 30
    naming DE60 on SQLite and PostgreSQL alike (PostgreSQL used to answer 96, SQLite 00)."""
    close = {"t": "0500", "3": "920000", "11": "000778", "41": TID, "42": MID, "49": "156",
             "60": "1" * 17, "74": "0000000000", "76": "0000000000",
             "86": "0000000000000000", "88": "0000000000000000"}
    answer = host.iso.send(close)
    assert (answer["39"], answer["44"]) == ("30", "FORMAT_ERROR:60")
    assert host.api.fetch(verify()).ok


def test_card_numbers_in_de48_are_masked_in_rows_api_and_log(host: Host) -> None:
    """Card numbers in a refund's DE48 evidence and operator (their TLV lengths glued to them)
    are masked in the stored row, in GET /transactions and in the --log-fields log."""
    sale = host.iso.send(financial("000000", 5000))
    de48 = f"RS006returnEV016{EVIDENCE_PAN}OP016{OPERATOR_PAN}"
    answer = host.iso.send(refund(sale["37"], 1000, de48))
    assert answer["39"] == "00"
    assert host.stored(answer["37"]) == ("555555******4444", "621234******1265")
    shown = host.api.fetch(transaction(answer["37"]))
    assert (shown.evidence, shown.operator) == ("555555******4444", "621234******1265")
    listed = json.dumps(host.api.get(f"/transactions?tid={TID}"))
    log = host.log.read_text()
    for text in (listed, log):
        assert EVIDENCE_PAN not in text and OPERATOR_PAN not in text
    assert "EV016555555******4444" in log  # masked in place: the layout stays readable


def test_malformed_de48_says_which_item_and_why(host: Host) -> None:
    """A DE48 item longer than what follows, or without a 3-digit length, is 30 with DE44
    naming the tag, its offset and the problem; the README's example is accepted."""
    sale = host.iso.send(financial("000000", 5000))
    past_end = host.iso.send(refund(sale["37"], 100, "RS006returnOP0211"))
    assert (past_end["39"], past_end["44"]) == ("30", "48:OP@11 LEN 021>1 LEFT")
    no_length = host.iso.send(refund(sale["37"], 100, "RS006returnEVx2abc"))
    assert (no_length["39"], no_length["44"]) == ("30", "48:EV@11 LEN NOT 3 DIGITS")
    reason = host.iso.send(refund(sale["37"], 100, "RS004gift"))
    assert (reason["39"], reason["44"]) == ("30", "48:RS@0 UNKNOWN REASON")
    example = re.search(r"DE48 example: `([^`]+)`", README.read_text()).group(1)  # type: ignore[union-attr]
    documented = host.iso.send(refund(sale["37"], 100, example))
    assert documented["39"] == "00"
    shown = host.api.fetch(transaction(documented["37"]))
    assert (shown.reason, shown.evidence, shown.operator) == ("return", "RMA-1234", "ANNA")


def test_de48_limits_answer_30_naming_the_limit(host: Host) -> None:
    """Evidence over 200 or an operator over 40 characters is 30 with the limit in DE44, on
    both databases; exactly at the limit is approved."""
    sale = host.iso.send(financial("000000", 5000))
    evidence = host.iso.send(refund(sale["37"], 100, "RS006returnEV201" + "e" * 201))
    assert (evidence["39"], evidence["44"]) == ("30", "48:EV@11 LEN 201>MAX 200")
    operator = host.iso.send(refund(sale["37"], 100, "OP041" + "o" * 41))
    assert (operator["39"], operator["44"]) == ("30", "48:OP@0 LEN 41>MAX 40")
    at_limit = host.iso.send(refund(sale["37"], 100,
                                    "EV200" + "e" * 200 + "OP040" + "o" * 40))
    assert at_limit["39"] == "00"
    assert host.api.fetch(verify()).ok


def held_refund(host: Host) -> int:
    """Sell 60000.00 and refund it whole: a refund that needs two approvers. Its review id."""
    sale = host.iso.send(financial("000000", 6_000_000))
    held = host.iso.send(refund(sale["37"], 6_000_000, "RS006return"))
    assert (held["39"], held["44"]) == ("00", "REFUND_PENDING_REVIEW")
    (review,) = [r for r in host.api.fetch(reviews("pending_review")).reviews
                 if r.rrn == held["37"]]
    assert review.approvals_needed == 2
    return review.id


def test_two_approvers_must_differ_beyond_case_and_width(host: Host) -> None:
    """After "alice", "ALICE" and full-width "ａｌｉｃｅ" are refused 409; "bob" releases the
    refund."""
    review = held_refund(host)
    host.api.fetch(approve_review(review, "alice"))
    for same in ("ALICE", " Alice ", "ａｌｉｃｅ"):
        with pytest.raises(AdminCallError) as refused:
            host.api.fetch(approve_review(review, same))
        assert refused.value.status == 409
    assert host.api.fetch(approve_review(review, "bob")).state == "approved"


def test_over_long_approver_is_400_on_both_databases(host: Host) -> None:
    """An approver name over 64 characters is 400 naming the limit (it was 500 on PostgreSQL
    and accepted on SQLite), so is a note holding NUL or a lone surrogate; 64 characters are
    accepted."""
    review = held_refund(host)
    for action in ("approve", "reject"):
        with pytest.raises(AdminCallError) as refused:
            host.api.post(f"/reviews/{review}/{action}", {"approver": "a" * 65, "reason": "r"})
        assert refused.value.status == 400 and "at most 64" in str(refused.value)
    with pytest.raises(AdminCallError) as refused:
        host.api.fetch(approve_review(review, "a", "x\x00y"))
    assert refused.value.status == 400 and "NUL" in str(refused.value)
    lone = json.dumps({"approver": "b", "note": "\ud800"}).encode()  # escaped: valid JSON
    assert host.raw("POST", f"/reviews/{review}/approve", lone)[0] == 400
    approved = host.api.fetch(approve_review(review, "a" * 64))
    assert [a.approver for a in approved.approved_by] == ["a" * 64]


HOSTILE = [
    ("GET", f"/transactions?cursor={2**64}", None, 400, "cursor must be"),
    ("GET", "/transactions?cursor=%C2%B2", None, 400, "cursor must be"),
    ("GET", f"/transactions?tid={TID}%00", None, 400, "NUL"),
    ("GET", "/transactions/%00", None, 404, "no transaction"),
    ("GET", "/reviews?state=%00", None, 400, "NUL"),
    ("GET", f"/settlements?merchant={MID}%00", None, 400, "NUL"),
    ("GET", "/notifications?rrn=1%00", None, 400, "NUL"),
    ("POST", f"/reviews/{2**64}/approve", b'{"approver": "a"}', 404, "no such id"),
    ("POST", f"/reviews/{2**64}/reject", b'{"approver": "a", "reason": "r"}', 404,
     "no such id"),
    ("POST", "/reviews/1/approve", b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
    ("POST", "/faults", b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
    ("POST", "/faults", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, 400, "nested too deeply"),
]


def test_hostile_admin_input_gets_a_json_4xx(host: Host) -> None:
    """Ids beyond 64 bits or in non-ASCII digits, NUL characters and JSON nested 100,000 deep
    answer 400/404 with a JSON error on both databases, never 500."""
    host.iso.send(financial("000000", 100))  # something to page through
    answers = {(method, path[:60]): host.raw(method, path, body)
               for method, path, body, _, _ in HOSTILE}
    expected = {(method, path[:60]): status for method, path, _, status, _ in HOSTILE}
    assert {k: v[0] for k, v in answers.items()} == expected
    for method, path, _, _, error in HOSTILE:
        assert error in answers[(method, path[:60])][1]["error"]
