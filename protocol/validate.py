"""Content validation that pyiso8583 does not do.

pyiso8583 checks lengths against the spec but accepts letters in numeric fields and any hex in
binary ones (docs/design-notes.md, "Decoding is not validation"). :func:`validate_fields`
checks every present field against its :class:`~protocol.specs.FieldSpec` row: the character
class of its format, the exact length of fixed fields, the maximum of variable ones, calendar
sanity of the date/time fields, and that the MTI is one poslab speaks. Errors name the field
and never quote the value of a sensitive field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache

from protocol.errors import ValidationError
from protocol.specs import KNOWN_MTIS, FieldSpec, Sensitivity, field_table

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


def validate_fields(fields: Mapping[str, str], table: str = "iso87") -> None:
    """Raise :class:`ValidationError` for the first field that breaks the table.

    ``fields`` is a field dict as the codec produces it: ``"t"`` for the MTI, ``"2"`` ... for
    data elements; binary fields as hex text.
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
        spec, binary, fixed, max_len, match, calendar = check
        size = len(value)
        if binary:
            size = -1 if size % 2 else size // 2
        # Every rule of _check_one in one expression; only a failure pays for finding out
        # which rule broke and saying so (_check_one raises with the message).
        if (size != max_len if fixed else not 0 <= size <= max_len) or match(value) is None \
                or (calendar is not None and not calendar(value)):
            _check_one(spec, value, fields)


_Check = tuple[FieldSpec, bool, bool, int, Callable[[str], object], Callable[[str], bool] | None]


@cache
def _fast_checks(table: str) -> dict[str, _Check]:
    """Per field key of ``table``: the spec and what :func:`_check_one` checks, looked up once."""
    return {key: (spec, spec.fmt == "b", spec.fixed, spec.max_len,
                  _CLASSES[spec.fmt].fullmatch, _CALENDAR.get(key))
            for key, spec in field_table(table).items()}


def _check_one(spec: FieldSpec, value: str, fields: Mapping[str, str]) -> None:
    size = len(value) // 2 if spec.fmt == "b" else len(value)
    if spec.fmt == "b" and len(value) % 2:
        raise ValidationError("binary field has an odd number of hex digits", field=spec.key,
                              fields=fields)
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
    checker = _CALENDAR.get(spec.key)
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


_CALENDAR = {
    "7": lambda v: _mmdd(v[:4]) and _hhmmss(v[4:]),
    "12": _hhmmss,
    "13": _mmdd,
    "14": _yymm,
    "15": _mmdd,
}
