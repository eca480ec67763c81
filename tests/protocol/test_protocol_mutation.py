"""Decoder robustness over mutated frames (issue 2, item 3).

Plain seeded ``random`` instead of hypothesis: 20 000+ cases must run in a few seconds, and a
failure names the seed, the frame and the mutation so it can be replayed.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from protocol_samples import TEST_PANS, samples

from protocol import (
    Codec,
    DecodeError,
    ProtocolError,
    ValidationError,
    describe,
    parse_request,
    parse_response,
)

SEED = 20240315
MUTATIONS = 24_000
CODEC = Codec("iso87-ascii")
TPDU_CODEC = Codec("iso87-ascii-tpdu")

Mutator = Callable[[random.Random, bytes], bytes]


def _flip_bits(rng: random.Random, b: bytes) -> bytes:
    out = bytearray(b)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _set_byte(rng: random.Random, b: bytes) -> bytes:
    out = bytearray(b)
    out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def _truncate(rng: random.Random, b: bytes) -> bytes:
    return b[: rng.randrange(len(b))]


def _bitmap_garbage(rng: random.Random, b: bytes) -> bytes:
    # Bytes 4..12 are the primary bitmap, 12..20 the secondary one when bit 1 is set.
    end = rng.choice((12, 20))
    return b[:4] + rng.randbytes(end - 4) + b[end:]


def _append_junk(rng: random.Random, b: bytes) -> bytes:
    return b + rng.randbytes(rng.randint(1, 40))


def _random_bytes(rng: random.Random, b: bytes) -> bytes:
    return rng.randbytes(rng.randint(0, 2 * len(b)))


def _insert_bytes(rng: random.Random, b: bytes) -> bytes:
    i = rng.randrange(len(b) + 1)
    return b[:i] + rng.randbytes(rng.randint(1, 8)) + b[i:]


def _delete_bytes(rng: random.Random, b: bytes) -> bytes:
    i = rng.randrange(len(b))
    return b[:i] + b[i + rng.randint(1, 8) :]


def _digit_swap(rng: random.Random, b: bytes) -> bytes:
    # Keeps the bytes ASCII digits, so length prefixes and numeric fields stay plausible and
    # the decoder gets further than with random bytes.
    out = bytearray(b)
    digits = [i for i, c in enumerate(out) if 0x30 <= c <= 0x39]
    for i in rng.sample(digits, k=min(len(digits), rng.randint(1, 3))):
        out[i] = rng.randrange(0x30, 0x3A)
    return bytes(out)


def _splice(rng: random.Random, b: bytes) -> bytes:
    # The start of one frame glued to the tail of another: valid pieces in wrong places.
    other = rng.choice(FRAMES)
    return b[: rng.randrange(len(b))] + other[rng.randrange(len(other)) :]


MUTATORS: tuple[Mutator, ...] = (
    _flip_bits, _set_byte, _truncate, _bitmap_garbage, _append_junk, _random_bytes,
    _insert_bytes, _delete_bytes, _digit_swap, _splice,
)  # fmt: skip
FRAMES: list[bytes] = [CODEC.encode(m.to_fields()) for m in samples().values()]


def _pan_free(text: str) -> bool:
    return not any(pan in text for pan in TEST_PANS)


def _decode_one(codec: Codec, payload: bytes) -> tuple[str, dict[str, str] | None]:
    """Decode and parse like a host would; return the outcome kind and fields."""
    try:
        _, fields = codec.decode(payload)
    except ProtocolError as exc:
        assert _pan_free(str(exc)) and _pan_free(exc.reason), f"PAN in error: {exc.reason}"
        if isinstance(exc, ValidationError):  # decoded: the host can still answer with RC 30
            assert "t" in exc.fields, exc
        return type(exc).__name__, None
    assert isinstance(fields, dict) and all(isinstance(v, str) for v in fields.values())
    parse = parse_response if fields["t"][2] in "13" else parse_request
    try:
        parse(fields)
    except ValidationError as exc:
        assert _pan_free(str(exc)), f"PAN in error: {exc.reason}"
        assert exc.fields == fields, f"{exc} lost the fields a host needs to answer"
        return "parse:" + type(exc).__name__, fields
    describe(fields)  # must not raise on anything the decoder accepted
    return "decoded", fields


def test_decoder_mutation_property() -> None:
    """24 000 mutated frames (seeded): decode returns fields or raises ProtocolError only."""
    rng = random.Random(SEED)
    outcomes: dict[str, int] = {}
    for n in range(MUTATIONS):
        original = FRAMES[n % len(FRAMES)]
        mutate = MUTATORS[n % len(MUTATORS)]
        payload = mutate(rng, original)
        try:
            kind, _ = _decode_one(CODEC, payload)
        except AssertionError:
            raise
        except Exception as exc:
            raise AssertionError(
                f"mutation {n} ({mutate.__name__}, seed {SEED}) of {original.hex()} -> "
                f"{payload.hex()} raised {type(exc).__name__}: {exc}"
            ) from exc
        outcomes[kind] = outcomes.get(kind, 0) + 1
    assert sum(outcomes.values()) == MUTATIONS, f"{MUTATIONS} inputs: {outcomes}"
    # The mix proves the mutations reach every layer: bytes, fields and typed parsing.
    assert outcomes.get("DecodeError", 0) > 1000, outcomes
    assert outcomes.get("ValidationError", 0) > 100, outcomes
    assert outcomes.get("decoded", 0) > 100, outcomes


def test_tpdu_decoder_mutation_property() -> None:
    """2 000 mutated TPDU frames, including ones shorter than the TPDU: only ProtocolError."""
    rng = random.Random(SEED + 1)
    tpdu_frames = [TPDU_CODEC.encode(m.to_fields()) for m in samples().values()]
    for n in range(2_000):
        original = tpdu_frames[n % len(tpdu_frames)]
        payload = MUTATORS[n % len(MUTATORS)](rng, original)
        try:
            _decode_one(TPDU_CODEC, payload)
        except AssertionError:
            raise
        except Exception as exc:
            raise AssertionError(f"mutation {n}: {payload.hex()} raised {exc!r}") from exc


def test_decode_error_names_field_and_byte_position() -> None:
    """A frame cut inside DE35 is a DecodeError saying which field and which byte, no data."""
    sale = CODEC.encode(samples()["sale_0200"].to_fields())
    cut = sale.index(b"=2812") + 1  # inside the track
    with pytest.raises(DecodeError) as info:
        CODEC.decode(sale[:cut])
    exc = info.value
    assert exc.field == "35" and isinstance(exc.pos, int)
    assert f"field 35, byte {exc.pos}" in str(exc) and _pan_free(str(exc))
