"""The host's JSON log lines: their schema, and the card-data scrub every line goes through."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from hypothesis import example, given
from hypothesis import strategies as st

from host.logs import MessageLog, encode_line, maybe_card, safe_line

PAN = "4761739001010119"
PIN_BLOCK = "0412AC89ABCDEF67"
TRACK2 = f"{PAN}=25122010000012300000"


def _lines(log: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.getvalue().splitlines()]


def test_message_line_keeps_its_schema() -> None:
    """An ISO message line has time, event, conn, direction, ids, amount and the masked PAN."""
    out = io.StringIO()
    MessageLog(out).message("out", 3, {"t": "0210", "2": PAN, "4": "000000001000", "11": "000042",
                                      "41": "TERM0001", "42": "M1", "39": "00", "49": "156"},
                            {"kind": "sale", "rule": None}, latency_ms=1.5)
    (line,) = _lines(out)
    assert list(line)[:2] == ["time", "event"]
    assert datetime.fromisoformat(str(line["time"])).utcoffset() is not None
    assert {k: line[k] for k in ("event", "conn", "direction", "mti", "stan", "tid", "mid", "rc",
                                 "amount_minor", "currency", "pan", "kind", "latency_ms")} == {
        "event": "message", "conn": 3, "direction": "out", "mti": "0210", "stan": "000042",
        "tid": "TERM0001", "mid": "M1", "rc": "00", "amount_minor": 1000, "currency": "156",
        "pan": "476173******0119", "kind": "sale", "latency_ms": 1.5}


def test_a_line_is_stamped_with_now_in_utc_to_the_millisecond() -> None:
    """``time`` is UTC now as isoformat(timespec="milliseconds") writes it, between the
    moments before and after the line was logged (milliseconds truncated, as isoformat)."""
    out = io.StringIO()
    log = MessageLog(out)
    before = datetime.now(UTC)
    for _ in range(3):
        log.event("tick")
    after = datetime.now(UTC)
    for line in _lines(out):
        stamp = str(line["time"])
        at = datetime.fromisoformat(stamp)
        assert stamp == at.isoformat(timespec="milliseconds")
        assert at.tzinfo is not None and at.utcoffset() == timedelta(0)
        assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= at <= after


def test_secrets_are_redacted_by_name_in_every_line() -> None:
    """A PIN block, track, CVV or key logged as a member is written as [redacted]."""
    out = io.StringIO()
    log = MessageLog(out)
    log.event("sign_on", pin_block=PIN_BLOCK, track2=TRACK2, cvv="123", session_key="00FF" * 8,
              tmk="11" * 16, kcv="ABC123")
    log.audit("key_loaded", key="22" * 16)
    sign_on, audit = _lines(out)
    assert {k: sign_on[k] for k in ("pin_block", "track2", "cvv", "session_key", "tmk")} == {
        k: "[redacted]" for k in ("pin_block", "track2", "cvv", "session_key", "tmk")}
    assert sign_on["kcv"] == "ABC123"  # a check value is not a secret
    assert audit["key"] == "[redacted]"
    for secret in (PIN_BLOCK, "00FF00FF", "1111111111", "2222222222", "=2512"):
        assert secret not in out.getvalue()


def test_card_numbers_in_free_text_are_masked_first6_last4() -> None:
    """A PAN or track 2 inside any text value is masked to its first 6 and last 4 digits."""
    out = io.StringIO()
    MessageLog(out).event("admin_error", error=f"bad card {PAN} / {TRACK2}")
    (line,) = _lines(out)
    assert PAN not in out.getvalue()
    assert line["error"] == "bad card 476173******0119 / 476173******0119=****"


# Pieces that make runs of eleven to fourteen digits and more, next to = D and others.
_CARDISH = st.lists(st.sampled_from(["123456789012", "98765432101", "7", "42", "=", "D", "d",
                                     '"', ":", " ", "x"]), max_size=8).map("".join)


@given(st.text(st.characters(max_codepoint=127), max_size=40) | _CARDISH)
@example("x123456789012=1")
@example("x123456789012D1")
@example("123456789012d")
@example("12345678901=")
def test_card_precheck_agrees_with_its_pattern(line: str) -> None:
    """The scrub's pre-check says yes exactly when twelve digits and a digit, = or D appear."""
    assert maybe_card(line) == bool(re.search(r"[0-9]{12}[0-9=D]", line))


def test_card_number_and_track_in_free_text_are_masked() -> None:
    """A card number or track 2 anywhere in a line's members is written masked."""
    line = safe_line({"note": f"pan {PAN} track {TRACK2} rrn 123456789012"})
    assert PAN not in line and "476173******0119" in line
    assert "123456789012" in line  # twelve digits alone are no card number


class _Kind(StrEnum):
    SALE = "sale"


# What log members hold, and the values where msgspec and json write different text: text
# to escape (quotes, control characters, DEL, non-ASCII), floats written with an exponent,
# NaN, integers past 64 bits, str subclasses, dates, nested members, non-str keys.
_VALUE = st.one_of(
    st.text(max_size=12), st.text(st.characters(max_codepoint=127), max_size=12),
    st.integers(), st.integers(min_value=-(2**70), max_value=2**70), st.booleans(), st.none(),
    st.floats(), st.floats(min_value=1e-6, max_value=1e-3), st.floats(min_value=1e15),
    st.sampled_from([_Kind.SALE, datetime(2026, 12, 4, 15, 0), b"\x01", 0.0, -0.0, 1.234]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                         max_size=2))
_KEY = st.text(max_size=8) | st.sampled_from(["event", "time", "pan", 'q"', "\u00e9"])


@given(st.dictionaries(_KEY, _VALUE, max_size=8)
       | st.dictionaries(st.integers() | st.floats(allow_nan=False), st.integers(), max_size=2))
@example({"conn": 3, "direction": "out", "kind": "sale", "rule": None, "latency_ms": 1.5})
@example({"latency_ms": 1e16})
@example({"latency_ms": 0.0001})
@example({"latency_ms": 0.00009999})
@example({"note": "x\x7fy"})
@example({1e16: 1})
def test_lines_are_the_bytes_json_writes(record: dict[object, object]) -> None:
    """A line's JSON is exactly what json.dumps(ensure_ascii, default=str, compact) writes,
    whichever encoder writes it."""
    assert encode_line(record) == json.dumps(record, default=str, separators=(",", ":"))
