"""Unit tests of the pure fault-rule layer: validation, matching, counting, PAN secrecy."""

from __future__ import annotations

import json

import pytest

from host.faults.delivery import garble
from host.faults.rules import FaultError, FaultRegistry, forced_response, parse_rule
from protocol import Codec, DecodeError

PAN = "4761739001010119"
SALE = {"t": "0200", "3": "000000", "4": "000000012550", "11": "000102", "41": "TERM0001",
        "42": "MERCHANT0000001", "49": "156", "2": PAN, "7": "0315103000"}


def registry(*rules: dict[str, object]) -> FaultRegistry:
    reg = FaultRegistry()
    for rule in rules:
        reg.add(parse_rule(rule))
    return reg


def test_rule_without_process_is_rejected_with_the_key_named() -> None:
    """`process` is mandatory: the error names the rule and the missing key."""
    with pytest.raises(FaultError, match=r"faults\[0\]\.process: Field required"):
        parse_rule({"action": "drop"}, "faults[0]")


@pytest.mark.parametrize("rule, text", [
    ({"action": "delay", "process": True}, "needs delay_ms"),
    ({"action": "respond", "process": False}, "needs response_code"),
    ({"action": "drop", "process": True, "delay_ms": 5}, "only applies to action 'delay'"),
    ({"action": "duplicate", "process": False}, "needs process = true"),
    ({"action": "explode", "process": True}, "fault.action"),
    ({"action": "drop", "process": True, "colour": "red"}, "fault.colour: Extra inputs"),
    ({"action": "drop", "process": True, "amount_min_minor": 5, "amount_max_minor": 1},
     "greater than"),
    ({"action": "drop", "process": True, "mti": "200"}, "fault.mti"),
])
def test_invalid_rules_give_clear_errors(rule: dict[str, object], text: str) -> None:
    """Each inconsistent rule is refused with a message saying what is wrong."""
    with pytest.raises(FaultError, match=text):
        parse_rule(rule)


@pytest.mark.parametrize("rule, key", [
    ({"action": "drop", "process": True, "amount_max_minor": False}, "amount_max_minor"),
    ({"action": "drop", "process": True, "count": True}, "count"),
    ({"action": "delay", "process": True, "delay_ms": True}, "delay_ms"),
    ({"action": "drop", "process": 1}, "process"),
])
def test_booleans_and_numbers_are_not_interchangeable(rule: dict[str, object], key: str) -> None:
    """JSON true/false is refused where a number belongs, and 0/1 where a boolean does."""
    with pytest.raises(FaultError, match=rf"fault\.{key}: "):
        parse_rule(rule)


def test_bad_pan_is_refused_without_echoing_it() -> None:
    """A malformed PAN condition is refused and the error never quotes the value."""
    bad = PAN + "X"
    with pytest.raises(FaultError) as info:
        parse_rule({"action": "drop", "process": True, "pan": bad})
    assert PAN not in str(info.value)


def test_match_on_every_condition() -> None:
    """MTI, processing code, TID and amount range must all hold for a rule to fire."""
    reg = registry({"action": "drop", "process": True, "mti": "0200", "processing_code": "000000",
                    "tid": "TERM0001", "amount_min_minor": 100, "amount_max_minor": 12550})
    assert reg.match({**SALE, "t": "0100"}) is None
    assert reg.match({**SALE, "3": "200000"}) is None
    assert reg.match({**SALE, "41": "TERM0002"}) is None
    assert reg.match({**SALE, "4": "000000012551"}) is None
    assert reg.match({**SALE, "4": "000000000099"}) is None
    decision = reg.match(SALE)
    assert decision is not None and decision.action == "drop" and decision.process


def test_count_limits_the_next_n_requests() -> None:
    """A rule with count 2 fires on exactly two matching requests, then stays listed as spent."""
    reg = registry({"action": "respond", "process": False, "response_code": "91", "count": 2})
    fired = [reg.match(SALE) for _ in range(4)]
    assert [d is not None for d in fired] == [True, True, False, False]
    assert reg.list()[0]["remaining"] == 0 and reg.list()[0]["applied"] == 2


def test_first_matching_rule_wins_and_later_rules_still_apply() -> None:
    """Rules are tried in order; once the first is spent the next one matches."""
    reg = registry({"id": "a", "action": "drop", "process": True, "count": 1},
                   {"id": "b", "action": "delay", "process": False, "delay_ms": 30})
    first, second = reg.match(SALE), reg.match(SALE)
    assert first is not None and first.fault_id == "a"
    assert second is not None and (second.fault_id, second.delay_ms) == ("b", 30)


def test_pan_matches_by_keyed_hash_and_lists_masked() -> None:
    """A PAN rule matches that card (DE2 or track 2) only, and no view shows the full PAN."""
    reg = registry({"action": "garble", "process": True, "pan": PAN})
    assert reg.match({**SALE, "2": "5413330089010608"}) is None
    swipe = {k: v for k, v in SALE.items() if k != "2"} | {"35": PAN + "=28121010000000000"}
    assert reg.match(swipe) is not None
    assert reg.match(SALE) is not None
    shown = json.dumps(reg.list())
    assert PAN not in shown and "476173******0119" in shown
    assert PAN not in repr(parse_rule({"action": "drop", "process": True, "pan": PAN}))


def test_add_json_is_all_or_nothing_and_delete() -> None:
    """A list with one bad rule adds nothing; ids are unique; delete removes by id."""
    reg = FaultRegistry()
    with pytest.raises(FaultError, match=r"fault\[1\]\.action"):
        reg.add_json([{"action": "drop", "process": True}, {"action": "?", "process": True}])
    assert reg.list() == []
    [added] = reg.add_json({"id": "x1", "action": "close", "process": False})
    assert added["id"] == "x1"
    with pytest.raises(FaultError, match="already exists"):
        reg.add_json({"id": "x1", "action": "drop", "process": True})
    assert reg.delete("x1") and not reg.delete("x1") and len(reg) == 0


def test_applied_count_per_rule() -> None:
    """Each rule counts its applications (the host's /metrics counts them by action too)."""
    reg = registry({"id": "d", "action": "duplicate", "process": True},
                   {"id": "e", "action": "drop", "process": True, "mti": "0400"})
    reg.match(SALE)
    reg.match(SALE)
    assert [(r["id"], r["applied"]) for r in reg.list()] == [("d", 2), ("e", 0)]


def test_forced_response_without_and_with_processing() -> None:
    """A forced answer echoes the ids, carries DE44 FORCED, and drops DE38 on a decline."""
    plain = forced_response(SALE, "91")
    assert (plain["t"], plain["39"], plain["44"], plain["11"]) == ("0210", "91", "FORCED", "000102")
    assert "2" not in plain
    real = {"t": "0210", "39": "00", "38": "123456", "37": "000000000001", "11": "000102"}
    forced = forced_response(SALE, "05", real)
    assert forced["37"] == "000000000001" and "38" not in forced and forced["39"] == "05"


def test_garbled_payload_does_not_decode() -> None:
    """The garbled frame payload is a clear decode error for any codec."""
    codec = Codec()
    body = codec.encode({"t": "0810", "11": "000001", "41": "TERM0001", "42": "MERCHANT0000001",
                         "39": "00", "70": "301"})
    with pytest.raises(DecodeError):
        codec.decode(garble(body))
