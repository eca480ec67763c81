"""Sign-on keys, MACs and PINs through real TCP against a ``poslab-host`` subprocess, on SQLite
and PostgreSQL, driven by the independent terminal of :mod:`sec_client`.

Most tests share one host per backend (``shared``): each keeps to terminals and a DUKPT device
of its own, so none sees another's sign-ons, counters or sales. The front-process test and the
PIN-lock test, which moves the host's clock a day on, start hosts of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sec_client import (
    BDK,
    KSN_HEX,
    TMK,
    TMK_HEX,
    SecureTerminal,
    config_text,
    start_host,
)

from protocol.security import TDES_DUKPT, DukptTerminal, Ksn
from scenarios import admin as admin_api
from scenarios.admin import BlockingAdminClient as AdminClient
from scenarios.loadgen.procs import ServerProcess

VISA, MASTERCARD = "4111111111111111", "5555555555554444"
# The shared host's terminals, one test each: TMK and MACs required, no keys, DUKPT with the
# device (KSN without its counter) that test's terminal uses.
KEYED = {"traffic": "TERM0101", "rotate": "TERM0102", "early": "TERM0103", "secrets": "TERM0104"}
PLAIN = "TERM0201"
DUKPT = {"sale": ("TERM0301", KSN_HEX), "replay": ("TERM0302", "FFFF9876543211E00000")}


@dataclass
class Shared:
    """The module's host on one backend and the file it logs messages to."""

    server: ServerProcess
    log: Path


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """One host per backend with the security config of :func:`sec_client.config_text` for
    every terminal above, logging to a file."""
    tmp = tmp_path_factory.mktemp(f"security-{request.param}")
    db = (str(tmp / "poslab.db") if request.param == "sqlite"
          else str(request.getfixturevalue("module_pg_url")))
    config = config_text(keyed=sorted(KEYED.values()), plain=[PLAIN],
                         dukpt=sorted(tid for tid, _ in DUKPT.values()))
    log = tmp / "host.log"
    server = start_host(tmp, db, config, "--log-file", str(log))
    yield Shared(server, log)
    assert server.stop() == 0


@pytest.fixture
def own_host(tmp_path: Path, db_url: str) -> Iterator[ServerProcess]:
    """A host of the test's own with the security config of :func:`sec_client.config_text`."""
    server = start_host(tmp_path, db_url, config_text())
    yield server
    assert server.stop() == 0


def _admin(server: ServerProcess) -> AdminClient:
    return AdminClient(int(server.ready["admin_port"]), str(server.ready["admin_token"]))


def _terminal(server: ServerProcess, tid: str) -> SecureTerminal:
    return SecureTerminal(int(server.ready["iso_port"]), tid)


def test_signed_on_terminal_macs_a_pin_sale_and_a_tampered_byte_books_nothing(
        shared: Shared) -> None:
    """Sign-on keys unwrap under the TMK with good KCVs; a MAC'd PIN sale, a MAC'd partial
    refund and a MAC'd void are approved with response MACs that verify; one tampered byte gets
    63 MAC_FAILED and books nothing."""
    _sign_on_then_maced_traffic(shared.server, KEYED["traffic"])


def test_macs_hold_through_a_front_process(tmp_path: Path, db_url: str) -> None:
    """The same through a front process: the engine checks the request MACs and seals the
    responses (the keys never leave it); the front sends them as sealed."""
    server = start_host(tmp_path, db_url, config_text(), "--front-processes", "1")
    try:
        _sign_on_then_maced_traffic(server, "TERM0001")
    finally:
        assert server.stop() == 0


def _sign_on_then_maced_traffic(host: ServerProcess, tid: str) -> None:
    term = _terminal(host, tid)
    try:
        signed = term.sign_on()
        assert signed["39"] == "00" and term.keys is not None  # unwrap checked every KCV
        keys = term.keys
        sale = term.sale(VISA, 1500, pin="1234", pin_key=keys.pin, mac_key=keys.mac)
        assert sale["39"] == "00", sale
        assert term.response_mac_ok(keys.mac)
        refund = term.sale(VISA, 500, code="200000", rrn=sale["37"], mac_key=keys.mac)
        assert refund["39"] == "00" and term.response_mac_ok(keys.mac)
        other = term.sale(VISA, 800, mac_key=keys.mac)
        void = term.sale(VISA, 800, code="020000", rrn=other["37"], mac_key=keys.mac)
        assert void["39"] == "00" and term.response_mac_ok(keys.mac)
        tampered = term.sale(VISA, 2500, mac_key=keys.mac, tamper=True)
        assert (tampered["39"], tampered["44"]) == ("63", "MAC_FAILED")
        assert "64" not in tampered
    finally:
        term.close()
    api = _admin(host)
    booked = api.get(f"/transactions?tid={tid}")
    rows = booked["transactions"] if isinstance(booked, dict) else booked
    assert sorted(r["amount_minor"] for r in rows) == [500, 800, 800, 1500]
    assert api.get("/ledger/verify")["ok"]


def test_a_mac_under_the_replaced_key_fails_after_the_next_sign_on(shared: Shared) -> None:
    """Keys rotate on every sign-on: the old MAC key gets 63, the new one is approved."""
    term = _terminal(shared.server, KEYED["rotate"])
    try:
        term.sign_on()
        old = term.keys
        assert old is not None
        term.sign_on()
        assert term.keys is not None and term.keys.mac != old.mac
        stale = term.sale(VISA, 700, mac_key=old.mac)
        assert (stale["39"], stale["44"]) == ("63", "MAC_FAILED")
        fresh = term.sale(VISA, 700, mac_key=term.keys.mac)
        assert fresh["39"] == "00" and term.response_mac_ok(term.keys.mac)
    finally:
        term.close()


def test_required_mac_before_any_sign_on_answers_sign_on_first(shared: Shared) -> None:
    """A terminal whose MACs are required and which has no keys yet gets 77; one without any
    security settings is served as before (no MAC, no DE64 in the answer)."""
    keyed, plain = _terminal(shared.server, KEYED["early"]), _terminal(shared.server, PLAIN)
    try:
        early = keyed.sale(VISA, 300, mac_key=TMK)
        assert (early["39"], early["44"]) == ("77", "SIGN_ON_REQUIRED")
        answer = plain.sale(VISA, 300)
        assert answer["39"] == "00" and "64" not in answer
    finally:
        keyed.close()
        plain.close()


def test_wrong_pin_55_third_75_and_a_correct_pin_next_business_day_approves(
        own_host: ServerProcess) -> None:
    """Wrong PIN 55 twice, the third 75; the right PIN the same day stays 75; the next business
    day the right PIN is approved."""
    host = own_host
    term = _terminal(host, "TERM0001")
    try:
        term.sign_on()
        keys = term.keys
        assert keys is not None

        def sale(pin: str) -> str:
            return str(term.sale(MASTERCARD, 900, pin=pin, pin_key=keys.pin,
                                 mac_key=keys.mac)["39"])

        assert [sale("0000"), sale("1111"), sale("2222")] == ["55", "55", "75"]
        assert sale("4321") == "75"
        _admin(host).post("/clock/advance", {"days": 1})
        assert sale("4321") == "00"
        assert sale("0000") == "55"  # the count starts again after the lock is lifted
    finally:
        term.close()


def test_dukpt_terminal_sale_with_pin_and_mac(shared: Shared) -> None:
    """A DUKPT terminal's sale (KSN in DE62, DE53 digit 3 = 1) is approved with its PIN and MAC
    checked under that transaction's keys, and the response MAC'd under the response key; a
    wrong PIN is 55 and a MAC under the previous counter's key is 63."""
    tid, ksn_hex = DUKPT["sale"]
    ksn = Ksn.from_hex(ksn_hex)
    device = DukptTerminal(TDES_DUKPT, TDES_DUKPT.initial_key(BDK, ksn), ksn)
    term = _terminal(shared.server, tid)
    try:
        keys = device.next_transaction()
        sale = term.sale(VISA, 1200, pin="1234", pin_key=keys.pin, mac_key=keys.mac_request,
                         ksn=str(keys.ksn), management="1")
        assert sale["39"] == "00", sale
        assert term.response_mac_ok(keys.mac_response)
        wrong = device.next_transaction()
        assert term.sale(MASTERCARD, 1200, pin="9999", pin_key=wrong.pin,
                         mac_key=wrong.mac_request, ksn=str(wrong.ksn),
                         management="1")["39"] == "55"
        later = device.next_transaction()
        stale = term.sale(VISA, 1200, mac_key=wrong.mac_request, ksn=str(later.ksn))
        assert (stale["39"], stale["44"]) == ("63", "MAC_FAILED")
    finally:
        term.close()


def test_the_tmk_never_appears_in_logs_or_admin_output(shared: Shared) -> None:
    """After sign-on and a sale the message log and GET /security/keys show the TMK's check
    value, never its digits, and no working key either."""
    host, tid = shared.server, KEYED["secrets"]
    term = _terminal(host, tid)
    try:
        term.sign_on()
        assert term.keys is not None
        term.sale(VISA, 400, pin="1234", pin_key=term.keys.pin, mac_key=term.keys.mac)
        keys = term.keys
    finally:
        term.close()
    listing = _admin(host).get("/security/keys")
    entry = next(t for t in listing["terminals"] if t["tid"] == tid)
    assert entry["kcv"] == TMK.kcv().hex().upper() and entry["signed_on"] is True
    assert entry["mac_key_kcv"] == keys.mac.kcv(4).hex().upper()
    secrets = [TMK_HEX] + [k.get_secret_value().hex().upper()
                           for k in (keys.pin, keys.mac, keys.data) if k is not None]
    texts = [str(listing), shared.log.read_text(), host.stderr_tail(100_000)]
    for text in texts:
        for secret in secrets:
            assert secret not in text.upper()


def test_a_dukpt_counter_is_good_for_one_message_only(shared: Shared) -> None:
    """A new message under a KSN counter already used is refused 63 MAC_FAILED:KSN_REUSED and
    books nothing, though its MAC is good; the same bytes resent get the stored answer, and
    the next counter is served."""
    tid, ksn_hex = DUKPT["replay"]
    ksn = Ksn.from_hex(ksn_hex)
    device = DukptTerminal(TDES_DUKPT, TDES_DUKPT.initial_key(BDK, ksn), ksn)
    term = _terminal(shared.server, tid)
    sent: list[bytes] = []
    exchange = term.exchange

    def recording(raw: bytes) -> dict[str, Any]:
        sent.append(raw)
        return exchange(raw)

    term.exchange = recording  # type: ignore[method-assign]
    try:
        keys = device.next_transaction()
        first = term.sale(VISA, 1200, mac_key=keys.mac_request, ksn=str(keys.ksn))
        assert first["39"] == "00", first
        replayed = term.sale(VISA, 99900, mac_key=keys.mac_request, ksn=str(keys.ksn))
        assert (replayed["39"], replayed["44"]) == ("63", "MAC_FAILED:KSN_REUSED")
        resent = term.exchange(sent[0])
        assert (resent["39"], resent["37"]) == ("00", first["37"])
        following = device.next_transaction()
        assert term.sale(VISA, 500, mac_key=following.mac_request,
                         ksn=str(following.ksn))["39"] == "00"
    finally:
        term.close()
    booked = _admin(shared.server).fetch(admin_api.transactions(tid=tid))
    assert sorted(t.amount_minor for t in booked.transactions) == [500, 1200]
