"""Card data never leaves the protocol layer readable (issue 2, item 8).

PAN: first 6 and last 4 digits at most. Track 2 and PIN blocks: never rendered at all.
"""

from __future__ import annotations

import pytest
from protocol_samples import PAN, PAN2, PIN_BLOCK, TRACK2, samples

from protocol import (
    CardData,
    Codec,
    DecodeError,
    EncodeError,
    EntryMode,
    FramingError,
    Pan,
    ProtocolError,
    Track2,
    ValidationError,
    describe,
    mask_pan,
    parse_request,
    scrub,
)

TRACK_TAIL = TRACK2.split("=", 1)[1]  # expiry, service code and discretionary data


def _safe(text: str) -> bool:
    return PAN not in text and PAN2 not in text and TRACK_TAIL not in text and PIN_BLOCK not in text


def test_pan_str_and_repr_show_first6_last4() -> None:
    """str and repr of a Pan show 6 + 4 digits; the digits stay available for the wire."""
    pan = Pan(PAN)
    assert str(pan) == "476173******0119"
    assert repr(pan) == "Pan('476173******0119')"
    assert f"{pan} {pan!r} {[pan]}".count("476173******0119") == 3
    assert pan.digits == PAN and pan.last4 == "0119" and pan.luhn_ok()


@pytest.mark.parametrize(
    ("digits", "masked"),
    [("4111111111111", "411111***1111"), ("6226090000000000048", "622609*********0048"),
     ("123456789012", "************")],
)  # fmt: skip
def test_mask_pan_lengths(digits: str, masked: str) -> None:
    """13 to 19 digits keep 6 + 4; anything shorter is starred entirely."""
    assert mask_pan(digits) == masked
    assert str(Pan(digits)) == masked


def test_track2_str_and_repr_hide_everything_but_the_masked_pan() -> None:
    """Track 2 renders as masked PAN only: no expiry, service code or discretionary data."""
    track = Track2(TRACK2)
    for text in (str(track), repr(track), f"{[track]}"):
        assert "476173******0119=****" in text and _safe(text)
    assert track.pan == Pan(PAN) and track.expiry == "2812"


def test_track2_with_a_malformed_pan_part_still_renders() -> None:
    """A decoded track whose PAN part is empty renders without raising."""
    assert str(Track2("=2812101")) == "=****"


def test_card_data_repr_has_no_full_pan_track_or_pin_block() -> None:
    """CardData's repr (what a log line or a traceback shows) is safe for every entry mode."""
    cards = [
        CardData(EntryMode.CHIP, pan=Pan(PAN), expiry="2812", pin_block=PIN_BLOCK),
        CardData(EntryMode.SWIPE, track2=Track2(TRACK2), pin_block=PIN_BLOCK),
    ]
    for card in cards:
        assert _safe(repr(card)) and _safe(str(card)), repr(card)


@pytest.mark.parametrize("name", sorted(samples()))
def test_message_repr_is_safe(name: str) -> None:
    """repr of every typed sample message carries no full PAN, track data or PIN block."""
    assert _safe(repr(samples()[name]))


@pytest.mark.parametrize("error", [ProtocolError, FramingError, DecodeError, ValidationError])
def test_error_text_is_scrubbed(error: type[ProtocolError]) -> None:
    """Error text built from a message that embeds a PAN or a track never shows them in full."""
    fields = samples()["sale_0200"].to_fields() | {"2": PAN2}
    exc = error(f"cannot handle {fields} for {PAN} / {TRACK2}", field="2")
    for text in (str(exc), exc.reason, repr(exc), str(exc.args)):
        assert PAN not in text and PAN2 not in text and TRACK_TAIL not in text, text
    assert "476173******0119" in str(exc)


def test_codec_errors_on_card_fields_do_not_quote_them() -> None:
    """Bad DE2/DE35 content is reported by field, without the value."""
    base = samples()["auth_0100"].to_fields()
    for key, value in (("2", PAN[:-1] + "X"), ("35", TRACK2 + "?"), ("2", PAN + "0" * 4)):
        with pytest.raises(EncodeError) as info:
            Codec().encode(base | {key: value})
        assert PAN[:-1] not in str(info.value) and info.value.field == key


def test_plain_field_error_does_not_quote_a_glued_pan() -> None:
    """A PAN glued to other digits in a plain field (scrub cannot see it) is not quoted."""
    glued = PAN + "1 \x7f" + "x" * 21  # 40 characters, one not printable
    with pytest.raises(EncodeError) as info:
        Codec().encode(samples()["auth_0100"].to_fields() | {"43": glued})
    assert PAN not in str(info.value) and "offset 18" in str(info.value)


def test_validation_error_keeps_fields_but_does_not_render_them() -> None:
    """ValidationError.fields holds the decoded dict for the host; str() never includes it."""
    fields = samples()["refund_0200"].to_fields() | {"48": "RS9"}
    with pytest.raises(ValidationError) as info:
        parse_request(fields)
    assert info.value.fields["2"] == PAN2
    assert PAN2 not in str(info.value) and PAN2 not in repr(info.value)


def test_scrub_leaves_non_card_digit_runs() -> None:
    """Only Luhn-valid 13-19 digit runs are masked: amounts, RRNs and DE90 stay readable."""
    text = "amount 000000012550 rrn 000000000123 de90 020000010203151029590000001234500000067890"
    assert scrub(text) == text


def test_scrub_leaves_zero_padded_amounts() -> None:
    """All-zero and zero-padded amounts (DE86 ``0000000000000000``) pass Luhn but are no card
    numbers: no issuer number starts with 0, so they stay readable."""
    text = "086 Credits, amount: 0000000000000000 088 Debits, amount: 0000000000012550"
    assert scrub(text) == text


@pytest.mark.parametrize(("glued", "masked"), [
    ("EV0165555555555554444", "EV016555555******4444"),   # DE48 length digits run into it
    ("OP0166212345678901265", "OP016621234******1265"),
    ("165555555555554444", "16555555******4444"),           # an LLVAR length in a raw dump
    ("000005555555555554444", "00000555555******4444"),     # right-aligned, zero-padded
])
def test_scrub_finds_a_card_number_its_length_digits_run_into(glued: str, masked: str) -> None:
    """A card number at the end of a longer digit run (1-3 length digits or zero padding in
    front) is masked to its first 6 and last 4 digits, the digits in front kept."""
    assert scrub(f"fields: {glued} end") == f"fields: {masked} end"


@pytest.mark.parametrize("name", ["sale_0200", "auth_0100", "refund_0200", "auth_resp_0110"])
def test_describe_shows_no_card_secrets(name: str) -> None:
    """describe() masks the PAN and hides track 2 and the PIN block behind a length note."""
    text = describe(samples()[name])
    assert _safe(text), text
    if name == "sale_0200":
        assert "DE35" in text and "[34 bytes hidden]" in text
        assert "DE52" in text and "[PIN block, 8 bytes]" in text
    else:
        assert "DE2 " in text and mask_pan(samples()[name].to_fields()["2"]) in text
