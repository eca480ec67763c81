"""The security checks in-process, through :class:`host.service.HostService` with messages
encoded by poslab's codec and the raw bytes handed over as the server does: enforcement modes,
what a restart keeps (PIN locks, DUKPT counters) and forgets (working keys), malformed PIN
data."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sec_client import BDK, KSN_HEX, MID, TMK, config_text

from host.clock import ManualClock
from host.config import HostConfig, parse_config
from host.pipeline.request import IsoRequest
from host.security.sealing import encode_response
from host.service import HostService
from protocol import Codec
from protocol.security import (
    TDES_DUKPT,
    DukptKeys,
    DukptTerminal,
    Key,
    KeyAlgorithm,
    Ksn,
    WorkingKeys,
    encipher_pin,
    get_mac_scheme,
    wire,
)

VISA, MASTERCARD, PIN_CARD = "4111111111111111", "5555555555554444", "4000000000000127"
CODEC = Codec("iso87-ascii")
X919 = get_mac_scheme("x9.19")


def _config(mac: str = "required") -> HostConfig:
    data = tomllib.loads(config_text())
    data["security"]["terminals"][0]["mac"] = mac
    data["cards"].append({"pan": PIN_CARD, "pin": "1234", "pin_required": True})
    return parse_config(data, "<test>")


@pytest.fixture
def clock() -> ManualClock:
    """A simulated clock at 10:00 Shanghai time."""
    return ManualClock(datetime(2026, 3, 10, 2, 0, tzinfo=UTC))


@pytest.fixture
def services(tmp_path: Path, clock: ManualClock) -> Iterator[list[HostService]]:
    """Every service a test builds on its database, closed at the end."""
    made: list[HostService] = []
    yield made
    for svc in made:
        svc.close()


def _service(services: list[HostService], tmp_path: Path, clock: ManualClock,
             mac: str = "required") -> HostService:
    svc = HostService(_config(mac), str(tmp_path / "host.db"), clock)
    services.append(svc)
    return svc


class Terminal:
    """TERM0001 talking to a service the way the server hands requests over."""

    def __init__(self, svc: HostService) -> None:
        self.svc = svc
        self.keys: WorkingKeys | None = None
        self.stan = 0

    def send(self, fields: dict[str, str]) -> dict[str, str]:
        """Encode (sealing when DE64 is present), hand over with the bytes as sent, answer."""
        payload = CODEC.encode(fields)
        if "64" in fields:
            assert self.keys is not None
            payload = wire.seal(payload, X919, self.keys.mac)
        _, decoded = CODEC.decode(payload)
        reply = self.svc.handle(IsoRequest(decoded, payload, CODEC.profile))
        assert reply.response is not None
        return reply.response.to_fields()

    def _next(self) -> str:
        self.stan += 1
        return f"{self.stan:06d}"

    def sign_on(self) -> dict[str, str]:
        """0800 sign-on; unwrap the keys of the answer."""
        out = self.send({"t": "0800", "7": "0310100000", "11": self._next(), "41": "TERM0001",
                         "42": MID, "70": "001"})
        self.keys = WorkingKeys.unwrap(TMK, bytes.fromhex(out["62"]), KeyAlgorithm.TDES_2KEY)
        return out

    def sale(self, pan: str, *, pin: str | None = None, mac: bool = True,
             de53: str = "0200000000000000") -> dict[str, str]:
        """A 0200 sale of 10.00, with a PIN block and a MAC as asked."""
        fields: dict[str, Any] = {
            "t": "0200", "2": pan, "3": "000000", "4": "000000001000", "7": "0310100000",
            "11": self._next(), "12": "100000", "13": "0310", "14": "3012", "22": "051",
            "25": "00", "41": "TERM0001", "42": MID, "49": "156"}
        if pin is not None:
            assert self.keys is not None
            fields["52"] = encipher_pin(self.keys.pin, pin, pan).get_secret_value().hex()
            fields["53"] = de53
        if mac:
            fields["64"] = wire.MAC_PLACEHOLDER
        return self.send(fields)


def test_after_sign_on_mode_lets_unmacd_requests_through_until_the_first_sign_on(
        services: list[HostService], tmp_path: Path, clock: ManualClock) -> None:
    """``mac = "after-sign-on"``: a sale without a MAC is served before any sign-on, and gets
    63 MAC_FAILED:MISSING once the terminal has keys."""
    term = Terminal(_service(services, tmp_path, clock, mac="after-sign-on"))
    assert term.sale(VISA, mac=False)["39"] == "00"
    term.sign_on()
    refused = term.sale(VISA, mac=False)
    assert (refused["39"], refused["44"]) == ("63", "MAC_FAILED:MISSING")
    assert term.sale(VISA)["39"] == "00"


def test_a_restart_forgets_working_keys_but_keeps_a_pin_lock(
        services: list[HostService], tmp_path: Path, clock: ManualClock) -> None:
    """Working keys live in memory: after a restart the terminal must sign on again (77); the
    wrong-PIN count lives in the database: the card locked before the restart stays locked."""
    term = Terminal(_service(services, tmp_path, clock))
    term.sign_on()
    assert [term.sale(MASTERCARD, pin="0000")["39"] for _ in range(3)] == ["55", "55", "75"]
    services.pop().close()
    term.svc = _service(services, tmp_path, clock)
    early = term.sale(MASTERCARD)
    assert (early["39"], early["44"]) == ("77", "SIGN_ON_REQUIRED")
    term.sign_on()
    assert term.sale(MASTERCARD, pin="4321")["39"] == "75"


def test_malformed_pin_data_and_a_missing_required_pin(
        services: list[HostService], tmp_path: Path, clock: ManualClock) -> None:
    """An unknown DE53 PIN format digit, a DUKPT digit from a master-session terminal or an
    AES digit for a TDES PIN key gets the PIN-format code 99 (not 55, and no try is counted);
    a PIN-required card without a PIN block is declined 55; with its PIN it is approved."""
    term = Terminal(_service(services, tmp_path, clock))
    term.sign_on()
    for de53 in ("7200000000000000", "0210000000000000", "0800000000000000"):
        bad = term.sale(VISA, pin="1234", de53=de53)
        assert (bad["39"], bad["44"]) == ("99", "PIN_FORMAT_ERROR"), de53
    assert term.sale(VISA, pin="1234")["39"] == "00"
    missing = term.sale(PIN_CARD)
    assert (missing["39"], missing["44"]) == ("55", "INCORRECT_PIN:REQUIRED")
    assert term.sale(PIN_CARD, pin="1234")["39"] == "00"


def test_a_terminal_without_keys_is_served_as_before(
        services: list[HostService], tmp_path: Path, clock: ManualClock) -> None:
    """TERM0002 has no security settings and no TMK: a MAC field and a PIN block are not
    checked (today's behaviour), and its sign-on answer carries no keys."""
    svc = _service(services, tmp_path, clock)
    fields = {"t": "0200", "2": VISA, "3": "000000", "4": "000000001000", "7": "0310100000",
              "11": "000001", "12": "100000", "13": "0310", "14": "3012", "22": "051",
              "25": "00", "41": "TERM0002", "42": MID, "49": "156", "52": "00" * 8,
              "53": "0200000000000000", "64": "11" * 8}
    payload = CODEC.encode(fields)
    _, decoded = CODEC.decode(payload)
    reply = svc.handle(IsoRequest(decoded, payload, CODEC.profile))
    assert reply.response is not None and reply.response.response_code == "00"
    sign_on = svc.handle({"t": "0800", "7": "0310100000", "11": "000002", "41": "TERM0002",
                          "42": MID, "70": "001"})
    assert sign_on.response is not None and "62" not in sign_on.response.to_fields()


def test_an_aes_tmk_gets_aes_working_keys_and_aes_cmac_macs(
        services: list[HostService], tmp_path: Path, clock: ManualClock) -> None:
    """A terminal with an AES-128 TMK receives AES-128 working keys (RFC 3394 wrapped, KCVs
    checked on unwrap); its AES-CMAC'd sale is approved and the answer carries an AES-CMAC."""
    aes_tmk = Key.generate(KeyAlgorithm.AES_128)
    data = tomllib.loads(config_text())
    data["security"]["terminals"][0].update(
        tmk=aes_tmk.get_secret_value().hex(), tmk_kcv=aes_tmk.kcv().hex(), algorithm="aes-128")
    svc = HostService(parse_config(data, "<test>"), str(tmp_path / "host.db"), clock)
    services.append(svc)
    signed = svc.handle({"t": "0800", "7": "0310100000", "11": "000001", "41": "TERM0001",
                         "42": MID, "70": "001"})
    assert signed.response is not None
    keys = WorkingKeys.unwrap(aes_tmk, bytes.fromhex(signed.response.to_fields()["62"]),
                              KeyAlgorithm.AES_128)
    cmac = get_mac_scheme("aes-cmac")
    fields = {"t": "0200", "2": VISA, "3": "000000", "4": "000000001000", "7": "0310100000",
              "11": "000002", "12": "100000", "13": "0310", "14": "3012", "22": "051",
              "25": "00", "41": "TERM0001", "42": MID, "49": "156", "64": wire.MAC_PLACEHOLDER}
    payload = wire.seal(CODEC.encode(fields), cmac, keys.mac)
    _, decoded = CODEC.decode(payload)
    reply = svc.handle(IsoRequest(decoded, payload, CODEC.profile))
    assert reply.response is not None and reply.response.response_code == "00"
    answer = encode_response(svc, CODEC, reply.response.to_fields(), None)
    assert wire.mac_matches(answer, cmac, keys.mac)


def _dukpt_sale(keys: DukptKeys[Ksn], stan: str, amount_minor: int, mid: str = MID) -> bytes:
    """TERM0003's DUKPT sale under ``keys``' KSN, MAC'd as the terminal sends it."""
    fields = {"t": "0200", "2": VISA, "3": "000000", "4": f"{amount_minor:012d}",
              "7": "0310100000", "11": stan, "12": "100000", "13": "0310", "14": "3012",
              "22": "051", "25": "00", "41": "TERM0003", "42": mid, "49": "156",
              "62": str(keys.ksn), "64": wire.MAC_PLACEHOLDER}
    return wire.seal(CODEC.encode(fields), X919, keys.mac_request)


def _hand_over(svc: HostService, payload: bytes) -> dict[str, str]:
    """The service's answer to ``payload``, handed over as the server does."""
    _, decoded = CODEC.decode(payload)
    reply = svc.handle(IsoRequest(decoded, payload, CODEC.profile))
    assert reply.response is not None
    return reply.response.to_fields()


def test_a_dukpt_counter_used_before_a_restart_stays_used(
        services: list[HostService], db_url: str, clock: ManualClock) -> None:
    """After a restart on the same database, other bytes under the last counter used or an
    earlier one are refused 63 KSN_REUSED, the last message resent gets its stored answer;
    a request declined and rolled back (03) is answered alike when resent, and the next
    counter is served."""
    ksn = Ksn.from_hex(KSN_HEX)
    device = DukptTerminal(TDES_DUKPT, TDES_DUKPT.initial_key(BDK, ksn), ksn)
    services.append(HostService(_config(), db_url, clock))
    earlier = _dukpt_sale(device.next_transaction(), "000001", 700)
    assert _hand_over(services[-1], earlier)["39"] == "00"
    last_keys = device.next_transaction()
    last = _dukpt_sale(last_keys, "000002", 1200)
    answered = _hand_over(services[-1], last)
    assert answered["39"] == "00"
    services.pop().close()
    svc = HostService(_config(), db_url, clock)
    services.append(svc)
    for replay in (_dukpt_sale(last_keys, "000003", 99900), earlier):
        refused = _hand_over(svc, replay)
        assert (refused["39"], refused["44"]) == ("63", "MAC_FAILED:KSN_REUSED")
    resent = _hand_over(svc, last)
    assert (resent["39"], resent["37"]) == ("00", answered["37"])
    declined = _dukpt_sale(device.next_transaction(), "000004", 300, mid="MERCHANT0000999")
    assert [_hand_over(svc, declined)["39"] for _ in range(2)] == ["03", "03"]
    assert _hand_over(svc, _dukpt_sale(device.next_transaction(), "000005", 500))["39"] == "00"
    amounts = sorted(t["amount_minor"] for t in svc.transactions(tid="TERM0003"))
    assert amounts == [500, 700, 1200]
