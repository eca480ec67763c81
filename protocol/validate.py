"""Content validation that pyiso8583 does not do.

pyiso8583 checks lengths against the spec but accepts letters in numeric fields and any hex in
binary or BCD ones. :func:`validate_fields` checks every present field against its
:class:`~protocol.fields.FieldSpec` row: the character class of its format, that a BCD or binary
field holds what its encoding can carry, the exact length of fixed fields and the maximum of
variable ones (counted as the row counts them: characters, bytes or BCD digits), the row's
content rule (calendar sanity of dates and times), and that the MTI is one poslab speaks. Errors
name the field and never quote the value of a sensitive field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache

from protocol.errors import ValidationError
from protocol.fields import (
    FieldSpec,
    FieldTable,
    LengthCount,
    Sensitivity,
    field_table,
    resolve_table,
)
from protocol.headers import Encoding
from protocol.transactions import KNOWN_MTIS

_CLASSES: dict[str, re.Pattern[str]] = {
    "n": re.compile(r"[0-9]*"),
    "an": re.compile(r"[A-Za-z0-9 ]*"),
    "ans": re.compile(r"[\x20-\x7e]*"),
    "z": re.compile(r"[0-9=D]*"),
    "xn": re.compile(r"[CD][0-9]*"),
    "b": re.compile(r"[0-9A-Fa-f]*"),
}
_DESCRIBE = {
    "n": "digits only",
    "an": "letters, digits and spaces only",
    "ans": "printable ASCII only",
    "z": "track-2 characters only",
    "xn": "C or D followed by digits",
    "b": "hex digits only",
}


_HEX = re.compile(r"[0-9A-Fa-f]*")


def validate_fields(fields: Mapping[str, str], table: str | FieldTable = "iso87") -> None:
    """Raise :class:`ValidationError` for the first field that breaks the table.

    ``fields`` is a field dict as the codec produces it: ``"t"`` for the MTI, ``"2"`` ... for
    data elements; binary fields as hex text, BCD fields as digits.
    """
    mti = fields.get("t")
    if mti is None:
        raise ValidationError("message type is missing", field="t", fields=fields)
    if mti not in KNOWN_MTIS:
        raise ValidationError(f"unknown message type {mti!r}", field="t", fields=fields)
    checks = _fast_checks(table)
    for key, value in fields.items():
        check = checks.get(key)
        if check is None:
            if key in ("t", "p", "h"):
                continue
            raise ValidationError("field is not in the spec", field=key, fields=fields)
        spec, plain, fixed, max_len, match, content = check
        size = len(value) if plain else spec.size(value)
        # Every rule of _check_one in one expression; only a failure pays for finding out
        # which rule broke and saying so (_check_one raises with the message).
        if size is None or (size != max_len if fixed else not 0 <= size <= max_len) \
                or match(value) is None or (content is not None and not content(value)):
            _check_one(spec, value, fields)


_Check = tuple[FieldSpec, bool, bool, int, Callable[[str], object], Callable[[str], bool] | None]


@cache
def _fast_checks(table: str | FieldTable) -> dict[str, _Check]:
    """Per field key of ``table``: the spec and what :func:`_check_one` checks, looked up once.

    ``plain`` marks the common case (length in characters) that needs no call to count.
    """
    return {key: (spec, not spec.hex_text and spec.len_count is LengthCount.BYTES, spec.fixed,
                  spec.max_len, _matcher(spec), _CONTENT[spec.content] if spec.content else None)
            for key, spec in field_table(resolve_table(table)).items()}


def _matcher(spec: FieldSpec) -> Callable[[str], object]:
    """The format's character class, and for BCD/binary fields also what the encoding holds."""
    allowed = _CLASSES[spec.fmt].fullmatch
    if not spec.hex_text or spec.fmt == "b":
        return allowed
    return lambda value: allowed(value) and _HEX.fullmatch(value)


def _check_one(spec: FieldSpec, value: str, fields: Mapping[str, str]) -> None:
    size = spec.size(value)
    if size is None:
        reason = ("binary field has an odd number of hex digits"
                  if spec.data_enc is Encoding.BINARY
                  else f"{spec.name} has an odd number of digits and no pad")
        raise ValidationError(reason, field=spec.key, fields=fields)
    if spec.fixed and size != spec.max_len:
        raise ValidationError(
            f"{spec.name} must be exactly {spec.max_len} long, got {size}",
            field=spec.key, fields=fields,
        )
    if not spec.fixed and size > spec.max_len:
        raise ValidationError(
            f"{spec.name} may be at most {spec.max_len} long, got {size}",
            field=spec.key, fields=fields,
        )
    if not _CLASSES[spec.fmt].fullmatch(value):
        # Name the first offending character, never the value: a plain field can hold card
        # digits glued to other digits, which scrub() cannot recognise as a PAN.
        bad = _first_bad(spec.fmt, value)
        shown = (
            f" (bad character {value[bad]!r} at offset {bad})"
            if spec.sensitivity is Sensitivity.PLAIN
            else ""
        )
        raise ValidationError(
            f"{spec.name} must be {_DESCRIBE[spec.fmt]}{shown}", field=spec.key, fields=fields
        )
    if spec.hex_text and not _HEX.fullmatch(value):
        assert spec.data_enc is not None
        raise ValidationError(f"{spec.name} must be hex digits ({spec.data_enc.value} encoding)",
                              field=spec.key, fields=fields)
    checker = _CONTENT[spec.content] if spec.content else None
    if checker is not None and not checker(value):
        raise ValidationError(f"{spec.name} is not a valid date/time ({value!r})",
                              field=spec.key, fields=fields)


def _first_bad(fmt: str, value: str) -> int:
    """Offset of the first character that breaks ``fmt`` (the sign for ``xn``)."""
    if fmt == "xn" and not value.startswith(("C", "D")):
        return 0
    start = 1 if fmt == "xn" else 0
    allowed = _CLASSES["n" if fmt == "xn" else fmt]
    return next(
        (i for i in range(start, len(value)) if not allowed.fullmatch(value[i])), start
    )


# Days per month with no year known: 29 February is accepted (it may be a leap year).
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _mmdd(v: str) -> bool:
    month, day = int(v[:2]), int(v[2:4])
    return 1 <= month <= 12 and 1 <= day <= _MONTH_DAYS[month - 1]


def _hhmmss(v: str) -> bool:
    return int(v[:2]) <= 23 and int(v[2:4]) <= 59 and int(v[4:6]) <= 59


def _yymm(v: str) -> bool:
    return 1 <= int(v[2:4]) <= 12


_CONTENT: dict[str, Callable[[str], bool]] = {
    "MMDDhhmmss": lambda v: _mmdd(v[:4]) and _hhmmss(v[4:]),
    "hhmmss": _hhmmss,
    "MMDD": _mmdd,
    "YYMM": _yymm,
}
"""Content rules a :class:`~protocol.fields.FieldSpec` row can name."""
