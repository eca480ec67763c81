"""Interop with pyiso8583's own ``iso8583.specs.default`` spec, both ways (issue 2, item 6).

``default`` is an independent table of the same common layout (binary bitmap, ASCII fields and
length prefixes, binary DE52/DE64/DE128, binary DE55 with an ASCII LLL prefix). It allows 240
characters in DE54 where ISO 8583:1987 (and poslab) allow 120, so the generated messages stay
within both tables.
"""

from __future__ import annotations

import copy

import iso8583
from hypothesis import given, settings
from iso8583.specs import default
from protocol_samples import samples
from protocol_strategies import raw_fields, requests, responses

from protocol import Codec
from protocol.messages import Message

CODEC = Codec("iso87-ascii")
INTEROP = settings(max_examples=200, deadline=None)


def _theirs_decode(wire: bytes) -> dict[str, str]:
    decoded, _ = iso8583.decode(wire, copy.deepcopy(default))
    return {k: v for k, v in decoded.items() if k not in ("p", "1", "h")}


def _theirs_encode(fields: dict[str, str]) -> bytes:
    wire, _ = iso8583.encode(dict(fields), copy.deepcopy(default))
    return bytes(wire)


@INTEROP
@given(raw_fields())
def test_ours_to_pyiso8583_default(fields: dict[str, str]) -> None:
    """A message poslab encodes decodes with pyiso8583's default spec to equal fields."""
    assert _theirs_decode(CODEC.encode(fields)) == fields


@INTEROP
@given(raw_fields())
def test_pyiso8583_default_to_ours(fields: dict[str, str]) -> None:
    """A message pyiso8583's default spec encodes decodes with poslab to equal fields."""
    wire = _theirs_encode(fields)
    assert CODEC.decode(wire)[1] == fields
    assert CODEC.encode(fields) == wire


@INTEROP
@given(requests | responses)
def test_typed_messages_interoperate(message: Message) -> None:
    """Typed messages are byte-identical under both encoders."""
    fields = message.to_fields()
    assert _theirs_encode(fields) == CODEC.encode(fields)
    assert _theirs_decode(CODEC.encode(fields)) == fields


def test_golden_samples_interoperate() -> None:
    """Every golden sample (secondary bitmap, DE52, DE90 included) decodes the same both ways."""
    for name, message in samples().items():
        fields = message.to_fields()
        assert _theirs_decode(CODEC.encode(fields)) == fields, name
        assert CODEC.decode(_theirs_encode(fields))[1] == fields, name
