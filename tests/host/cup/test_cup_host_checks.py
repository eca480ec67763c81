"""The host's CUP checks in the CUP order, through :class:`host.service.HostService` with CUP
frames encoded by poslab's codec and handed over with their bytes, as the server does:
mandatory fields 30, merchant 03, terminal 97/58, signed on and on the sign-on's batch 77, MAC
A0, duplicate key (DE42, DE41, DE11, 60.2) 94; then the CUP original checks of voids, refunds
and reversals, and the sign-on's key block."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cup_terminal import MID, UNIONPAY, CupTerminal, config_text

from host.clock import ManualClock
from host.config import ConfigError, parse_config
from host.service import HostService
from protocol.cup import CUP_PROFILE
from protocol.money import Money
from protocol.private_data import decode_remaining
from protocol.security import Key, KeyAlgorithm

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[HostService]:
    """A CUP host on SQLite: TERM0001 with a TMK and MACs required, TERM0002 without keys."""
    service = HostService(parse_config(tomllib.loads(config_text()), "<test>"),
                          str(tmp_path / "host.db"), ManualClock(NOW))
    assert service.security is not None
    service.security.use_profile(CUP_PROFILE)  # as the runtime does for --profile cup
    yield service
    service.close()


@pytest.fixture
def term(svc: HostService) -> CupTerminal:
    """TERM0001, signed on (working keys from DE62, batch from 60.2)."""
    terminal = CupTerminal(svc)
    assert terminal.sign_on()["39"] == "00"
    return terminal


def _code(answer: dict[str, str]) -> tuple[str, str | None]:
    return answer["39"], answer.get("44")


def test_missing_mandatory_field_is_30_before_anything_else(svc: HostService) -> None:
    """A sale without DE25 from an unknown merchant's terminal is 30 (mandatory first)."""
    stranger = CupTerminal(svc, tid="TERM9999", mid="NOSUCHMERCHANT1")
    answer = stranger.send({"t": "0200", "2": UNIONPAY, "3": "000000", "4": "1" * 12,
                            "22": "022", "49": "156", "60": "22000001000"})
    assert _code(answer) == ("30", "MISSING_FIELD:25")


def test_unknown_merchant_is_03_before_the_terminal_check(svc: HostService) -> None:
    """An unknown MID with an unknown TID is 03: the merchant is checked first."""
    stranger = CupTerminal(svc, tid="TERM9999", mid="NOSUCHMERCHANT1")
    assert _code(stranger.sale(100)) == ("03", "UNKNOWN_MERCHANT")


def test_another_partitions_merchant_is_03_before_the_terminal_check(tmp_path: Path) -> None:
    """On a host of partition p1, a merchant listed in partition p2 is 03 NOT_HERE, even from
    a terminal the host never registered (not 97)."""
    text = config_text() + '[server]\npartition = "p1"\n'
    text = text.replace(f'id = "{MID}"', f'id = "{MID}"\npartition = "p1"', 1)
    text += '[[merchants]]\nid = "OTHERPARTITION1"\npartition = "p2"\n'
    service = HostService(parse_config(tomllib.loads(text), "<test>"),
                          str(tmp_path / "host.db"), ManualClock(NOW))
    try:
        other = CupTerminal(service, tid="TERM9999", mid="OTHERPARTITION1")
        assert _code(other.sale(100)) == ("03", "UNKNOWN_MERCHANT:NOT_HERE")
    finally:
        service.close()


def test_unregistered_terminal_of_a_known_merchant_is_97(svc: HostService) -> None:
    """A TID the host never registered is 97 (终端未登记), not the generic 58."""
    assert _code(CupTerminal(svc, tid="TERM9999").sale(100)) == ("97", "UNKNOWN_TERMINAL")


def test_registered_but_not_enrolled_terminal_is_58(svc: HostService) -> None:
    """A terminal the host knows but has not enrolled is 58 (not permitted to the terminal)."""
    storage = svc.pipeline.storage
    with storage.begin() as conn:
        storage.store.ensure_terminal(conn, "TERM0009", MID, 0, enrolled=False)
    answer = CupTerminal(svc, tid="TERM0009").sale(100)
    assert _code(answer) == ("58", "UNKNOWN_TERMINAL:NOT_ENROLLED")


def test_terminal_that_never_signed_on_is_77(svc: HostService) -> None:
    """TERM0002 (no keys, no MAC) gets 77 for a sale before its first sign-on, 00 after."""
    plain = CupTerminal(svc, tid="TERM0002")
    assert _code(plain.sale(100)) == ("77", "SIGN_ON_REQUIRED")
    assert plain.sign_on()["39"] == "00"
    assert _code(plain.sale(100)) == ("00", None)


def test_batch_other_than_the_sign_ons_is_77(svc: HostService) -> None:
    """A signed-on terminal sending another batch in 60.2 than the sign-on gave is 77."""
    plain = CupTerminal(svc, tid="TERM0002")
    plain.sign_on()
    assert plain.batch == "000001"
    plain.batch = "000002"
    assert _code(plain.sale(100)) == ("77", "SIGN_ON_REQUIRED:BATCH")


def test_sign_off_makes_the_terminal_sign_on_again(svc: HostService) -> None:
    """After an 0820 sign-off (answered 0830) a sale is 77 again."""
    plain = CupTerminal(svc, tid="TERM0002")
    plain.sign_on()
    off = plain.send({"t": "0820", "60": f"00{plain.batch}002"})
    assert (off["t"], off["39"]) == ("0830", "00")
    assert _code(plain.sale(100))[0] == "77"


def test_bad_mac_is_a0_and_books_nothing(svc: HostService, term: CupTerminal) -> None:
    """A sale whose DE64 was MAC'd under another key is A0 MAC_FAILED; nothing is booked."""
    good_keys = term.keys
    other = CupTerminal(svc)
    other.sign_on()  # new keys at the host: the first terminal's are stale now
    term.keys = good_keys
    assert _code(term.sale(100)) == ("A0", "MAC_FAILED")
    assert svc.transactions(tid="TERM0001") == []


def test_batch_is_checked_before_the_mac(term: CupTerminal) -> None:
    """A wrong batch and no MAC at all: 77 (batch), not A0 (MAC): the CUP order."""
    term.batch = "000009"
    answer = term.send(
        {"t": "0200", "2": UNIONPAY, "3": "000000", "4": "000000000100", "22": "022",
         "25": "00", "49": "156", "60": "22000009000"}, mac=False)
    assert _code(answer) == ("77", "SIGN_ON_REQUIRED:BATCH")


def test_exact_repeat_gets_the_stored_answer_and_changed_content_94(
        svc: HostService, term: CupTerminal) -> None:
    """Same (MID, TID, trace, batch) and content: the first answer again, booked once; same
    key with another amount: 94."""
    first = term.sale(500, stan="000100")
    again = term.sale(500, stan="000100")
    assert first["39"] == "00" and again == first
    assert len(svc.transactions(tid="TERM0001")) == 1
    assert _code(term.sale(600, stan="000100")) == ("94", "DUPLICATE_DIFFERENT")


def test_refund_with_the_wrong_original_date_is_25(term: CupTerminal) -> None:
    """A refund whose 61.3 is not the sale's date is 25 (original not found by date)."""
    sale = term.sale(1000)
    assert _code(term.refund(sale, 100, mmdd="0101")) == ("25", "ORIGINAL_NOT_FOUND:DATE")
    assert _code(term.refund(sale, 100))[0] == "00"


def test_void_whose_de61_names_another_trace_is_25(term: CupTerminal) -> None:
    """A void whose DE61 trace is not the DE37 sale's is 25; with the right trace, 00."""
    sale = term.sale(1000)
    assert _code(term.void(sale, 1000, trace="999999")) == ("25", "ORIGINAL_NOT_FOUND:DE61")
    assert _code(term.void(sale, 1000))[0] == "00"


def test_over_refund_is_61_with_the_generic_rule_in_de44(term: CupTerminal) -> None:
    """Refunds beyond what remains of the sale are 61 on CUP; DE44 keeps the rule id."""
    sale = term.sale(1000)
    assert term.refund(sale, 600)["39"] == "00"
    assert _code(term.refund(sale, 600)) == ("61", "REFUND_EXCEEDS_REMAINING")


def test_refund_answers_carry_what_remains_of_the_sale_in_de54(term: CupTerminal) -> None:
    """An approved 0230 and an over-refund decline carry the sale's remaining refundable
    amount in DE54 (one block: account 00, amount type 90, 156, C, amount); a sale's 0210
    carries none."""
    sale = term.sale(10000)
    assert "54" not in sale
    assert term.refund(sale, 6000)["54"] == "0090156C000000004000"
    over = term.refund(sale, 5000)
    assert (over["39"], over["54"]) == ("61", "0090156C000000004000")
    assert decode_remaining(over["54"]) == Money(4000, "CNY")


def test_reversal_undoes_a_sale_but_not_a_refund(svc: HostService, term: CupTerminal) -> None:
    """An 0400 (reason 98) reverses a sale; an 0400 naming a refund's trace is 25: a refund is
    an advice (0220), not reversed, and stays effective."""
    sale = term.sale(1000)
    refund = term.refund(term.sale(2000), 500)
    base = {"t": "0400", "2": UNIONPAY, "22": "022", "25": "00", "39": "98", "49": "156"}
    undone = term.send({**base, "3": "000000", "4": "000000001000", "11": sale["11"],
                        "60": f"22{term.batch}000"})
    kept = term.send({**base, "3": "200000", "4": "000000000500", "11": refund["11"],
                      "60": f"25{term.batch}000"})
    assert (undone["t"], undone["39"]) == ("0410", "00")
    assert _code(kept) == ("25", "ORIGINAL_NOT_A_SALE:0220")
    assert svc.transaction(sale["37"])["state"] == "reversed"  # type: ignore[index]
    assert svc.transaction(refund["37"])["state"] == "approved"  # type: ignore[index]


@pytest.mark.parametrize(("code", "size", "key_length"),
                         [("001", 24, 8), ("003", 40, 16), ("004", 60, 16)])
def test_sign_on_sends_two_or_three_keys_and_the_batch(svc: HostService, code: str,
                                                       size: int, key_length: int) -> None:
    """60.3 001 gets single-length PIN and MAC keys (24 bytes), 003 double-length ones (40),
    004 the data key too (60); each unwraps with its check value, 60.2 is the host's batch,
    60.3 echoes the request's, and a sale MAC'd under the new MAC key is approved."""
    term = CupTerminal(svc)
    answer = term.sign_on(code)
    assert (answer["t"], answer["39"]) == ("0810", "00")
    assert len(bytes.fromhex(answer["62"])) == size
    assert answer["60"] == f"00000001{code}"
    assert term.keys is not None and len(term.keys.mac.get_secret_value()) == key_length
    assert _code(term.sale(100))[0] == "00"


def test_single_length_sign_on_under_an_aes_tmk_is_96(tmp_path: Path) -> None:
    """Single DES keys are carried under a TDES TMK only: a 60.3 001 sign-on of a terminal
    with an AES TMK is 96 without keys, while its 003 sign-on gets AES keys."""
    aes_hex = "00112233445566778899AABBCCDDEEFF"
    kcv = Key.from_hex(aes_hex, KeyAlgorithm.AES_128).kcv().hex().upper()
    text = config_text() + f"""
[[security.terminals]]
tid = "TERM0002"
tmk = "{aes_hex}"
tmk_kcv = "{kcv}"
algorithm = "aes-128"
"""
    service = HostService(parse_config(tomllib.loads(text), "<test>"),
                          str(tmp_path / "host.db"), ManualClock(NOW))
    try:
        assert service.security is not None
        service.security.use_profile(CUP_PROFILE)
        term = CupTerminal(service, tid="TERM0002")
        refused = term.send({"t": "0800", "60": "00000001001", "63": "01 "})
        assert (refused["39"], refused.get("62")) == ("96", None)
        assert term.send({"t": "0800", "60": "00000001003", "63": "01 "})["39"] == "00"
    finally:
        service.close()


def test_unknown_sign_on_kind_is_a_format_error(svc: HostService) -> None:
    """60.3 005 is no sign-on poslab carries: 30 naming DE60."""
    answer = CupTerminal(svc).send({"t": "0800", "60": "00000001005", "63": "01 "})
    assert _code(answer) == ("30", "FORMAT_ERROR:60")


def test_config_names_an_unknown_profile() -> None:
    """``[host] profile`` must name a wire profile: the error names the key and the choices."""
    with pytest.raises(ConfigError, match=r"host\.profile: unknown wire profile 'cups'; "
                                          r"choose one of: cup, "):
        parse_config({"host": {"profile": "cups"}}, "<test>")
    assert parse_config({"host": {"profile": "cup"}}, "<test>").host.profile == "cup"

