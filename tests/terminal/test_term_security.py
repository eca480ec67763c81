"""The terminal's security against an in-test secure host over loopback TCP: key files, sign-on
key exchange with KCV checks, MACs both ways, PIN blocks, DUKPT."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from term_securehost import (
    KSN0,
    TMK_HEX,
    TMK_KCV,
    SecureState,
    bdk,
    dukpt_host,
    listen_secure,
    tmk,
)

from protocol.codec import Codec
from protocol.codes import EntryMode
from protocol.money import Money
from protocol.security import TDES_DUKPT, DukptTerminal, Ksn
from protocol.security.dukpt import derive_ipek
from terminal.cards import load_deck
from terminal.cli import main
from terminal.config import TerminalConfig
from terminal.engine import Engine, SignOnRefused
from terminal.flow import Draft
from terminal.journal import Journal, TxnKind, TxnStatus
from terminal.link import Link, Traffic
from terminal.security.keystore import KeyStore, KeyStoreError

DECK = {c.name: c for c in load_deck()}
VISA, MASTERCARD = DECK["Visa approve"], DECK["Mastercard approve"]


@pytest.fixture
def secure() -> Iterator[tuple[int, SecureState]]:
    """A secure fake host on port 0: (port, its state)."""
    state = SecureState()
    port, listening = listen_secure(state)
    yield port, state
    listening.stopListening()  # type: ignore[attr-defined]


@pytest.fixture
def sconfig(tmp_path: Path, secure: tuple[int, SecureState]) -> TerminalConfig:
    """A terminal config for the secure host, with the test TMK in its data directory."""
    config = TerminalConfig(port=secure[0], data_dir=tmp_path / "data", timeout_s_response=1.0,
                            reversal_repeats=1, echo_interval_s=0)
    KeyStore(config.data_dir).save_tmk(tmk())
    return config


def _engine(config: TerminalConfig, seen: list[Traffic] | None = None) -> Engine:
    link = Link(config.host, config.port, Codec(),
                on_traffic=seen.append if seen is not None else None)
    return Engine(config, Journal(config.data_dir), link)


def _sale(minor: int, card: Any = VISA, pin: str | None = None) -> Draft:
    return Draft(TxnKind.SALE, Money(minor, "CNY"), card, EntryMode.CHIP, pin=pin)


# -- key files -------------------------------------------------------------------------------


def test_keys_import_checks_kcv_and_stores_0600(tmp_path: Path, capsys: Any) -> None:
    """`keys import` stores the TMK readable by the owner only and prints its KCV, never the
    key; a wrong KCV is refused with both check values and nothing is stored."""
    data = tmp_path / "d"
    bad = main(["keys", "--data-dir", str(data), "import", "--tmk", TMK_HEX, "--kcv", "08D7B5"])
    err = capsys.readouterr().err
    assert bad == 2 and "08D7B4" in err and "08D7B5" in err and TMK_HEX not in err
    assert not (data / "tmk.json").exists()
    assert main(["keys", "--data-dir", str(data), "import", "--tmk", TMK_HEX,
                 "--kcv", TMK_KCV]) == 0
    out = capsys.readouterr().out
    assert "KCV 08D7B4" in out and TMK_HEX not in out
    assert stat.S_IMODE((data / "tmk.json").stat().st_mode) == 0o600
    assert KeyStore(data).load_tmk() == tmk()
    assert main(["keys", "show", "--data-dir", str(data)]) == 0
    shown = capsys.readouterr().out
    assert "08D7B4" in shown and TMK_HEX not in shown


def test_keys_import_refuses_a_single_des_tmk(tmp_path: Path, capsys: Any) -> None:
    """Single DES is a working-key kind only: `keys import --algorithm DES` is refused with the
    master-key kinds listed, and nothing is stored."""
    data = tmp_path / "d"
    code = main(["keys", "--data-dir", str(data), "import", "--tmk", "0123456789ABCDEF",
                 "--kcv", "D5D44F", "--algorithm", "DES"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown key algorithm 'DES'; one of TDES-2, TDES-3, AES-128" in err
    assert not (data / "tmk.json").exists()


def test_keys_dukpt_stores_initial_key_and_ksn(tmp_path: Path, capsys: Any) -> None:
    """`keys dukpt` checks the initial key's KCV, stores it with the KSN (0600) and `keys
    show` prints the KCV and KSN only; a short KSN is refused with a message."""
    data = str(tmp_path / "d")
    ipek = "6AC292FAA1315B4D858AB3A3D7D5933A"
    assert main(["keys", "--data-dir", data, "dukpt", "--initial-key", ipek, "--kcv", "AF8C07",
                 "--ksn", KSN0]) == 0
    assert main(["keys", "--data-dir", data, "show"]) == 0
    out = capsys.readouterr().out
    assert "AF8C07" in out and KSN0 in out and "counter 0" in out and ipek not in out
    assert stat.S_IMODE(KeyStore(Path(data)).dukpt_path.stat().st_mode) == 0o600
    assert main(["keys", "--data-dir", data, "dukpt", "--initial-key", ipek, "--kcv", "AF8C07",
                 "--ksn", "FFFF98"]) == 2
    assert "KSN" in capsys.readouterr().err


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A TMK file with group or world bits is refused with the chmod to run."""
    store = KeyStore(tmp_path)
    store.save_tmk(tmk())
    os.chmod(store.tmk_path, 0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        store.load_tmk()


def test_damaged_key_file_is_refused(tmp_path: Path) -> None:
    """A TMK file whose key no longer matches its KCV is refused, naming the file."""
    store = KeyStore(tmp_path)
    store.save_tmk(tmk())
    text = store.tmk_path.read_text().replace("0123", "0124")
    store.tmk_path.write_text(text)
    with pytest.raises(KeyStoreError, match="tmk.json.*check value"):
        store.load_tmk()


# -- sign-on ---------------------------------------------------------------------------------


def test_sign_on_unwraps_working_keys(sconfig: TerminalConfig, secure: Any, run: Any) -> None:
    """An 0810's DE62 is unwrapped under the TMK into the session's keys (the host's keys)."""
    engine = _engine(sconfig)
    assert run(engine.sign_on()).approved
    keys = engine.session.sign_on_state.keys
    assert keys is not None and keys.mac == secure[1].working.mac
    assert keys.pin == secure[1].working.pin
    assert engine.session.sign_on_state.signed_on


def test_kcv_mismatch_signs_on_again(sconfig: TerminalConfig, secure: Any, run: Any) -> None:
    """A working key that fails its KCV is refused and the terminal signs on again."""
    secure[1].bad_kcv_sign_ons = 1
    engine = _engine(sconfig)
    assert run(engine.sign_on()).approved
    assert secure[1].received == ["0800", "0800"]
    keys = engine.session.sign_on_state.keys
    assert keys is not None and keys.mac == secure[1].working.mac


def test_kcv_mismatch_every_time_is_reported(sconfig: TerminalConfig, secure: Any,
                                             run: Any) -> None:
    """Bounded: after three refused key sets the sign-on fails, saying which key and why,
    and the terminal holds no keys and sends no MAC."""
    secure[1].bad_kcv_sign_ons = 5
    engine = _engine(sconfig)
    with pytest.raises(SignOnRefused, match=r"3 times.*MAC key: check value"):
        run(engine.sign_on())
    assert secure[1].received == ["0800"] * 3
    assert engine.session.sign_on_state.keys is None
    assert not engine.session.sign_on_state.signed_on


# -- MAC -------------------------------------------------------------------------------------


def test_sale_is_macd_both_ways(sconfig: TerminalConfig, secure: Any, run: Any) -> None:
    """After sign-on a sale carries a MAC the host verifies over the bytes it received, and
    the terminal accepts the host's MAC'd answer."""
    engine = _engine(sconfig)
    run(engine.sign_on())
    out = run(engine.transact(_sale(1000)))
    assert out.approved
    assert secure[1].mac_results == [True]


def test_answer_with_bad_mac_is_reversed(sconfig: TerminalConfig, secure: Any,
                                         run: Any) -> None:
    """An approval whose MAC fails is not trusted: the terminal reverses the sale and the
    screen says the MAC failed."""
    engine = _engine(sconfig)
    run(engine.sign_on())
    secure[1].bad_answer_mac = True
    out = run(engine.transact(_sale(1000)))
    assert out.status == "no_response"
    assert "failed its MAC check" in out.detail
    assert "0400" in secure[1].received
    assert engine.journal.get(out.txn_seq).status is not TxnStatus.APPROVED


def test_mac_failure_code_signs_on_again(sconfig: TerminalConfig, secure: Any,
                                         run: Any) -> None:
    """When the host answers 63 the terminal signs on again for fresh keys, and the next sale,
    sealed with the new MAC key, is approved."""
    engine = _engine(sconfig)
    run(engine.sign_on())
    secure[1].force_code = "63"
    out = run(engine.transact(_sale(1000)))
    assert out.status == "declined" and "signed on again" in out.detail
    assert secure[1].received[-1] == "0800"
    secure[1].force_code = None
    assert run(engine.transact(_sale(1000))).approved


def test_no_keys_no_mac(config: TerminalConfig, fake_host: Any, run: Any) -> None:
    """A terminal whose host sends no working keys sends no MAC field (today's hosts)."""
    seen: list[Traffic] = []
    engine = _engine(config, seen)
    run(engine.sign_on())
    assert run(engine.transact(_sale(1000))).approved
    assert all("64" not in t.fields for t in seen)


# -- PIN -------------------------------------------------------------------------------------


def test_pin_block_right_wrong_and_tries_exceeded(sconfig: TerminalConfig, secure: Any,
                                                  run: Any) -> None:
    """A PIN goes as a format 0 block under the PIN key with DE53; the right PIN is approved,
    wrong PINs get the host's 55 and, the third time, 75."""
    engine = _engine(sconfig)
    run(engine.sign_on())
    assert run(engine.transact(_sale(1000, MASTERCARD, "1234"))).approved
    sent = secure[1].seen_fields[-1]
    assert len(sent["52"]) == 16 and sent["53"] == "0200000000000000" and sent["22"][2] == "1"
    codes = [run(engine.transact(_sale(1000, MASTERCARD, "9999"))).response_code
             for _ in range(3)]
    assert codes == ["55", "55", "75"]
    assert secure[1].pin_results == ["ok", "wrong", "wrong", "wrong"]


def test_pin_without_key_is_not_sent(config: TerminalConfig, fake_host: Any, run: Any) -> None:
    """Without a PIN key the terminal refuses to send a PIN transaction and journals nothing."""
    engine = _engine(config)
    run(engine.sign_on())
    out = run(engine.transact(_sale(1000, MASTERCARD, "1234")))
    assert out.status == "failed" and "no PIN key" in out.detail
    assert fake_host[1].received == ["0800"] and engine.journal.open_batch() == []


# -- DUKPT -----------------------------------------------------------------------------------


def test_dukpt_counter_advances_and_keys_match(tmp_path: Path, secure: Any, run: Any) -> None:
    """A DUKPT terminal sends the next KSN in DE62 with each MAC'd message; the host derives
    the same MAC and PIN keys from its BDK; the KSN is saved in the data directory."""
    state: SecureState = secure[1]
    state.dukpt = dukpt_host()
    config = TerminalConfig(port=secure[0], data_dir=tmp_path / "d", timeout_s_response=1.0,
                            reversal_repeats=1, echo_interval_s=0)
    ksn = Ksn.from_hex(KSN0)
    ipek = derive_ipek(bdk(), ksn)
    KeyStore(config.data_dir).save_dukpt(DukptTerminal(TDES_DUKPT, ipek, ksn), ipek)
    engine = _engine(config)
    run(engine.sign_on())
    assert run(engine.transact(_sale(1000))).approved
    assert run(engine.transact(_sale(1000, MASTERCARD, "1234"))).approved
    assert state.mac_results == [True, True]
    assert [Ksn.from_hex(k).counter for k in state.ksns] == [1, 2]
    stored = KeyStore(config.data_dir).load_dukpt()
    assert stored is not None and stored[0].ksn.counter == 2
    assert stat.S_IMODE(KeyStore(config.data_dir).dukpt_path.stat().st_mode) == 0o600


# -- the PIN entry screen ---------------------------------------------------------------------


def test_pin_screen_masked_entry_backspace_escape_enter(sconfig: TerminalConfig, secure: Any,
                                                        run: Any) -> None:
    """A card that wants a PIN opens the PIN screen: digits show as stars, Backspace removes
    one, Esc cancels with nothing sent; the right PIN is approved, a wrong one shows 55."""
    from term_helpers import drive, result, screen_text
    from textual.pilot import Pilot

    from terminal.app import PosApp
    from terminal.flow import Step

    seen: dict[str, str] = {}

    async def to_pin(pilot: Pilot[None]) -> None:
        await pilot.press("1", *"1250", "enter", "down", "i")

    async def script(app: PosApp, pilot: Pilot[None]) -> None:
        await to_pin(pilot)
        assert app.state.step is Step.PIN
        await pilot.press(*"9876")
        seen["typed"] = str(app.query_one("#pin-display").render())
        seen["screen"] = screen_text(pilot)
        await pilot.press("backspace")
        seen["back"] = str(app.query_one("#pin-display").render())
        await pilot.press("enter")
        seen["short"] = app.state.message
        await pilot.press("escape")
        assert app.state.step is Step.MENU
        await to_pin(pilot)
        await pilot.press(*"1234", "enter")
        seen["right"] = await result(app, pilot)
        await pilot.press("enter")
        await to_pin(pilot)
        await pilot.press(*"4321", "enter")
        seen["wrong"] = await result(app, pilot)

    drive(sconfig, run, script)
    assert seen["typed"] == "****" and "9876" not in seen["screen"]
    assert seen["back"] == "***" and "4 to 12 digits" in seen["short"]
    assert "APPROVED" in seen["right"] and "DECLINED 55" in seen["wrong"]
    assert secure[1].pin_results == ["ok", "wrong"]
    assert secure[1].received.count("0200") == 2


# -- nothing secret on screen or disk ----------------------------------------------------------


def test_no_pin_block_or_key_in_inspector_or_journal(sconfig: TerminalConfig, secure: Any,
                                                     run: Any) -> None:
    """The inspector explains DE52/53/62/64 without their secrets, and neither it nor the
    journal holds a PIN block, a wrapped or clear key, or the clear PIN."""
    from terminal import inspector

    seen: list[Traffic] = []
    engine = _engine(sconfig, seen)
    run(engine.sign_on())
    run(engine.transact(_sale(1000, MASTERCARD, "9753")))
    text = "\n".join(line for item in seen for line in inspector.render(item))
    state: SecureState = secure[1]
    block = state.seen_fields[-1]["52"]
    wrapped = next(f["62"] for f in (t.fields for t in seen) if f.get("t") == "0810")
    working = state.working
    assert working is not None
    secrets = [block, " ".join(block[i:i + 2] for i in range(0, 16, 2)), wrapped, wrapped[:16],
               working.pin.get_secret_value().hex().upper(),
               working.mac.get_secret_value().hex().upper(), TMK_HEX, "9753"]
    journal = (sconfig.data_dir / "journal.json").read_text()
    dumped = b"".join(inspector.masked_bytes(item.raw, item.fields) for item in seen)
    assert bytes.fromhex(block) not in dumped and wrapped.encode() not in dumped
    for secret in secrets:
        assert secret not in text and secret not in journal
    assert "[PIN block, 8 bytes]" in text
    assert "PIN block ISO format 0, TDES double length, keys from sign-on" in text
    kcvs = f"{working.pin.kcv(4).hex().upper()}, {working.mac.kcv(4).hex().upper()}"
    assert f"2 wrapped keys (PIN, MAC), KCVs {kcvs}" in text
    assert "MAC (x9.19, 8 bytes)" in text


# -- AES keys --------------------------------------------------------------------------------


def test_aes_keys_mac_with_cmac_and_refuse_a_pin_the_profile_cannot_carry(tmp_path: Path
                                                                          ) -> None:
    """Under an AES TMK the working keys are AES-128: requests are sealed with AES-CMAC, and a
    PIN is refused because format 4 needs 16 bytes and the generic DE52 carries 8."""
    from protocol.security import Key, KeyAlgorithm, WorkingKeys, get_mac_scheme
    from protocol.security.wire import key_block_text, mac_matches
    from protocol.specs import get_profile
    from terminal.security.guard import MacGuard
    from terminal.security.state import SecurityUnavailable, TerminalSecurity

    aes_tmk = Key.generate(KeyAlgorithm.AES_128)
    keys = WorkingKeys.generate(KeyAlgorithm.AES_128, with_data=False)
    security = TerminalSecurity(get_profile("iso87-ascii"), tmk=aes_tmk)
    security.accept_sign_on(key_block_text(keys.wrap(aes_tmk)))
    assert security.working == keys
    codec = Codec()
    fields, sealing = MacGuard(security, codec).prepare(
        {"t": "0200", "3": "000000", "4": "000000000100", "11": "000001", "41": "TERM0001",
         "42": "MERCHANT0000001", "49": "156"})
    assert sealing is not None
    sealed = sealing.seal(codec.encode(fields))
    assert mac_matches(sealed, get_mac_scheme("aes-cmac"), keys.mac)
    with pytest.raises(SecurityUnavailable, match="ISO 4 PIN block of 16 bytes.*carries 8"):
        security.pin_data("1234", "5555555555554444")


def test_app_shows_why_the_sign_on_keys_were_refused(sconfig: TerminalConfig, secure: Any,
                                                     run: Any) -> None:
    """When every sign-on's keys fail their KCVs the status says SIGN-ON REFUSED, the reason
    names the key and its check values, and the PIN step stays off."""
    from term_helpers import until

    from terminal.app import PosApp

    secure[1].bad_kcv_sign_ons = 5
    app = PosApp(sconfig)
    seen: dict[str, Any] = {}

    async def go() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.link_state == "SIGN-ON REFUSED", what="refusal")
            seen["reason"] = app.offline_reason
            seen["pin_entry"] = app.state.policy.pin_entry

    run(go(), timeout=60)
    assert "MAC key: check value" in seen["reason"] and "3 times" in seen["reason"]
    assert seen["pin_entry"] is False


def test_aes_pin_key_builds_format_4_where_de52_has_16_bytes() -> None:
    """On a profile whose DE52 carries 16 bytes an AES PIN key gives an ISO format 4 block
    (DE53 4-8-0) that the PIN key verifies for the right PIN only."""
    from dataclasses import replace as change

    from protocol.fields import FieldTable
    from protocol.security import (
        Key,
        KeyAlgorithm,
        PinBlock,
        PinBlockFormat,
        WorkingKeys,
        verify_pin,
    )
    from protocol.security.wire import key_block_text
    from protocol.specs import ISO87_ASCII, WireProfile, length_header
    from terminal.security.state import TerminalSecurity

    wide = FieldTable("wide-de52", tuple(change(f, max_len=16) if f.number == 52 else f
                                         for f in ISO87_ASCII.fields),
                      ISO87_ASCII.mti_enc, ISO87_ASCII.bitmap_enc)
    profile = WireProfile("wide-de52", wide, length_header("2b"), "DE52 of 16 bytes")
    tmk_aes = Key.generate(KeyAlgorithm.AES_128)
    keys = WorkingKeys.generate(KeyAlgorithm.AES_128, with_data=False)
    security = TerminalSecurity(profile, tmk=tmk_aes)
    security.accept_sign_on(key_block_text(keys.wrap(tmk_aes)))
    block, control, ksn = security.pin_data("1234", "5555555555554444")
    assert len(block) == 32 and control == "4800000000000000" and ksn is None
    sent = PinBlock(bytes.fromhex(block), PinBlockFormat.ISO_4)
    assert verify_pin(keys.pin, sent, "5555555555554444", "1234")
    assert not verify_pin(keys.pin, sent, "5555555555554444", "4321")
