"""The fingerprint's JSON: the fast encoder writes exactly what json.dumps(sort_keys=True) does."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from host.canonical_json import dumps_sorted_strings

_TRICKY = [":", ",", '":"', '","', 'x":', 'x",', '", "', "a\\b", 'say "hi"', "tab\there",
           "\x7f", "\x00\x1f", "é", "€", "\U0001f600", "", " ", "{}", "[1, 2]", "MERCHANT123456 "]


@given(st.dictionaries(st.text(max_size=8) | st.sampled_from(_TRICKY),
                       st.text(max_size=20) | st.sampled_from(_TRICKY), max_size=12))
def test_fingerprint_text_is_json_dumps_sorted(doc: dict[str, str]) -> None:
    """Any flat text document encodes to the very bytes json.dumps(sort_keys=True) gives."""
    assert dumps_sorted_strings(doc) == json.dumps(doc, sort_keys=True).encode()


def test_fingerprint_text_of_a_request_document() -> None:
    """A typical request document (ASCII, no escapes) takes the same bytes as json's."""
    doc = {"t": "0200", "3": "000000", "4": "000000001000", "41": "TERM0001",
           "42": "MERCHANT123456 ", "class": "020", "pan": "ab" * 32}
    assert dumps_sorted_strings(doc) == json.dumps(doc, sort_keys=True).encode()


def test_fingerprint_text_when_a_value_ends_in_a_quote_and_separator() -> None:
    """Escaped quotes next to ':' or ',' inside a value are left alone, as json leaves them."""
    doc = {"a": 'x":', "b": 'y",', "c": '":"'}
    assert dumps_sorted_strings(doc) == json.dumps(doc, sort_keys=True).encode()


def test_fingerprint_text_when_a_key_or_value_is_a_separator() -> None:
    """A key or value that is just ':' or ',' keeps json's bytes (no space put inside it)."""
    for doc in ({":": "x"}, {"a": ":"}, {",": ","}, {"a": ",", "b": "c"}):
        assert dumps_sorted_strings(doc) == json.dumps(doc, sort_keys=True).encode()


def test_fingerprint_text_with_characters_json_escapes() -> None:
    """DEL, control characters, quotes, backslashes and non-ASCII text are escaped as json does."""
    for doc in ({"a": "\x7f"}, {"a": "\n"}, {"a": 'q"'}, {"a": "b\\"}, {"é": "€"}):
        assert dumps_sorted_strings(doc) == json.dumps(doc, sort_keys=True).encode()
