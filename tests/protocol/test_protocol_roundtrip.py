"""Hypothesis round trips over generated valid messages (issue 2, item 2)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_strategies import DATA_SPECS, REQUESTS, RESPONSES, raw_fields, requests, responses

from protocol import Codec, parse_request, parse_response
from protocol.messages import Message

CODEC = Codec("iso87-ascii")
FAST = settings(max_examples=200, deadline=None)


@FAST
@given(raw_fields())
def test_codec_roundtrip_property(fields: dict[str, str]) -> None:
    """Any valid field dict: encode -> decode gives the same dict, re-encoding the same bytes."""
    wire = CODEC.encode(fields)
    _, decoded = CODEC.decode(wire)
    assert decoded == fields
    assert CODEC.encode(decoded) == wire


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(DATA_SPECS).flatmap(lambda s: raw_fields(specs=(s,), max_fields=1)))
def test_each_field_alone_round_trips(fields: dict[str, str]) -> None:
    """Single fields, so the big LLLVAR and binary ones are each exercised on their own."""
    assert CODEC.decode(CODEC.encode(fields))[1] == fields


def _typed_round_trip(message: Message, parse: object) -> None:
    wire = CODEC.encode(message.to_fields())
    _, fields = CODEC.decode(wire)
    assert parse(fields) == message  # type: ignore[operator]
    assert CODEC.encode(fields) == wire


@FAST
@given(requests)
def test_typed_request_round_trip(message: Message) -> None:
    """Every typed request: to_fields -> encode -> decode -> parse_request gives it back."""
    _typed_round_trip(message, parse_request)


@FAST
@given(responses)
def test_typed_response_round_trip(message: Message) -> None:
    """Every typed response: to_fields -> encode -> decode -> parse_response gives it back."""
    _typed_round_trip(message, parse_response)


def test_strategies_cover_every_message_class() -> None:
    """The generated messages include each typed class (a new class needs a strategy)."""
    from protocol import messages

    typed = {
        cls for cls in vars(messages).values()
        if isinstance(cls, type) and issubclass(cls, Message) and hasattr(cls, "from_fields")
    }  # fmt: skip
    assert typed == set(REQUESTS) | set(RESPONSES)
