"""Field validation properties (reliability.md P3; issue 2, item 4).

pyiso8583 checks lengths only; poslab's validator checks every field's character class, exact
fixed length, variable maximum and date/time sanity, and that the MTI is one poslab speaks.
Invalid content must raise :class:`ValidationError` naming the field; valid content must pass.
"""

from __future__ import annotations

import copy
import string

import iso8583
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_strategies import ALPHABETS, CALENDAR, DATA_SPECS, field_value

from protocol import Codec, EncodeError, ValidationError
from protocol.specs import ISO87, KNOWN_MTIS, FieldSpec, Sensitivity, compile_spec

CODEC = Codec("iso87-ascii")
PROPS = settings(max_examples=200, deadline=None)
BASE = {"t": "0200"}
_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
_ACCEPTED = {**ALPHABETS, "b": "0123456789ABCDEFabcdef"}  # lower-case hex is valid input
_OUTSIDE = {
    fmt: "".join(c for c in _PRINTABLE + "\x00\x1f\x7f\xe9" if c not in alphabet)
    for fmt, alphabet in _ACCEPTED.items()
}


def _rejects(fields: dict[str, str], key: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        CODEC.encode(fields)
    assert info.value.field == key, info.value
    assert f"field {key}" in str(info.value)
    return info.value


@PROPS
@given(st.sampled_from(DATA_SPECS).flatmap(lambda s: st.tuples(st.just(s), field_value(s))))
def test_valid_content_is_accepted(case: tuple[FieldSpec, str]) -> None:
    """A value of the right class, length and calendar passes for every data element."""
    spec, value = case
    CODEC.encode({**BASE, spec.key: value})


@st.composite
def _bad_character(draw: st.DrawFn) -> tuple[FieldSpec, str, int]:
    spec = draw(st.sampled_from([s for s in DATA_SPECS if s.number not in CALENDAR]))
    value = draw(field_value(spec).filter(bool))
    i = draw(st.integers(0, len(value) - 1))
    bad = draw(st.sampled_from(_OUTSIDE[spec.fmt]))
    if spec.fmt == "xn" and i == 0 and bad in "CD":  # at position 0 a sign is right
        bad = "X"
    return spec, value[:i] + bad + value[i + 1 :], i


@PROPS
@given(_bad_character())
def test_wrong_character_class_is_rejected(case: tuple[FieldSpec, str, int]) -> None:
    """One character outside n/an/ans/z/xn/b anywhere in a value -> ValidationError for it."""
    spec, value, i = case
    exc = _rejects({**BASE, spec.key: value}, spec.key)
    if spec.sensitivity is Sensitivity.PLAIN:
        assert f"at offset {i}" in exc.reason  # says where, not what the value was
    assert repr(value) not in exc.reason or len(value) == 1  # the value itself is not quoted


@PROPS
@given(
    st.sampled_from([s for s in DATA_SPECS if s.fixed]).flatmap(
        lambda s: st.tuples(st.just(s), field_value(s))
    ),
    st.booleans(),
)
def test_fixed_length_must_be_exact(case: tuple[FieldSpec, str], longer: bool) -> None:
    """A valid fixed field made one character (one byte for b) short or long is rejected."""
    spec, value = case
    unit = "00" if spec.fmt == "b" else "0"
    value = value + unit if longer else value[: -len(unit)]
    _rejects({**BASE, spec.key: value}, spec.key)


@pytest.mark.parametrize("spec", [s for s in DATA_SPECS if not s.fixed], ids=lambda s: s.key)
def test_variable_length_limit(spec: FieldSpec) -> None:
    """LLVAR/LLLVAR: max_len accepted, max_len + 1 rejected, before pyiso8583 sees it."""
    unit = "00" if spec.fmt == "b" else "0"
    CODEC.encode({**BASE, spec.key: unit * spec.max_len})
    _rejects({**BASE, spec.key: unit * (spec.max_len + 1)}, spec.key)


def test_binary_field_needs_whole_bytes() -> None:
    """An odd number of hex digits in a binary field is rejected."""
    _rejects({**BASE, "55": "9F0"}, "55")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("7", "1315103000"), ("7", "0001103000"), ("7", "0230103000"), ("7", "0431103000"),
        ("7", "0315243000"), ("7", "0315106000"), ("7", "0315103060"), ("7", "0000000000"),
        ("12", "240000"), ("12", "126000"), ("12", "125960"),
        ("13", "0000"), ("13", "1301"), ("13", "0132"), ("13", "0230"), ("13", "1131"),
        ("14", "2800"), ("14", "2813"), ("15", "0931"),
    ],
)  # fmt: skip
def test_impossible_dates_and_times_are_rejected(key: str, value: str) -> None:
    """DE7 MMDDhhmmss, DE12 hhmmss, DE13/DE15 MMDD, DE14 YYMM: impossible calendar values fail."""
    _rejects({**BASE, key: value}, key)


@pytest.mark.parametrize(
    ("key", "value"),
    [("7", "0229235959"), ("7", "1231000000"), ("12", "000000"), ("12", "235959"),
     ("13", "0229"), ("13", "0131"), ("13", "1130"), ("14", "2812"), ("15", "0101")],
)  # fmt: skip
def test_calendar_edges_are_accepted(key: str, value: str) -> None:
    """The last valid minute, day and month of each calendar field passes (29 Feb too)."""
    CODEC.encode({**BASE, key: value})


@PROPS
@given(st.text(string.digits + string.ascii_letters, min_size=0, max_size=4))
def test_unknown_mti_is_rejected(mti: str) -> None:
    """Any MTI poslab does not speak is a ValidationError on field t."""
    if mti in KNOWN_MTIS:
        CODEC.encode({"t": mti})
    else:
        _rejects({"t": mti}, "t")


def test_missing_mti_and_unknown_field_are_rejected() -> None:
    """No MTI, or a key outside the table, is rejected with the key named."""
    _rejects({"11": "000001"}, "t")
    _rejects({**BASE, "129": "x"}, "129")


def test_encode_error_is_a_validation_error() -> None:
    """Encoding invalid content raises EncodeError, which is a ValidationError."""
    with pytest.raises(EncodeError):
        CODEC.encode({**BASE, "4": "00000000100A"})


def test_decoded_invalid_content_is_rejected_with_the_fields() -> None:
    """Bytes pyiso8583 happily decodes (letters in DE4) fail validation; the fields travel along
    so a host can still answer with response code 30."""
    fields = {"t": "0200", "3": "000000", "4": "00000000100A", "11": "000042"}
    wire, _ = iso8583.encode(dict(fields), copy.deepcopy(compile_spec("iso87")))
    with pytest.raises(ValidationError) as info:
        CODEC.decode(bytes(wire))
    assert info.value.field == "4"
    assert info.value.fields["11"] == "000042"


def test_table_formats_are_all_covered() -> None:
    """The generators know every format the table uses."""
    assert {s.fmt for s in ISO87} <= set(ALPHABETS)
