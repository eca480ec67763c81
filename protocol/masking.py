"""Card data masking: the only way card data reaches logs, ``repr()``, screens and receipts.

PCI DSS 3.4.1 allows at most the first six and the last four digits of a PAN on display. The
:class:`Pan` type keeps the digits for the code that needs them (matching, Luhn, hashing) but
renders masked everywhere Python renders objects. :func:`scrub` masks card numbers and track-2
looking strings inside free text, for error messages and log lines that quote input.

What :func:`scrub` treats as a card number: 13-19 digits that pass the Luhn check and start
with 1-9 (no issuer identification number starts with 0, so zero-padded amounts such as DE86
``0000000000000000`` are left alone). Such a number is also found at the end of a longer
digit run when a 1-3 digit length or zero padding runs into it (DE48 ``EV016`` followed by the
card number reads as the 19-digit run ``016...``). A card number with more digits glued after
it is not recognised: free text should separate it.
"""

from __future__ import annotations

import re

_DIGIT_RUN = re.compile(r"\d{13,}")
_PAN_MIN, _PAN_MAX = 13, 19
_TRACK2 = re.compile(r"(?<![0-9])(\d{12,19})[=D](\d{4})[0-9A-F=D]*")


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` (all decimal) passes the Luhn check."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def mask_pan(pan: str) -> str:
    """``4111111111111111`` -> ``411111******1111``; short values are starred entirely."""
    if len(pan) < 13:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


def scrub(text: str) -> str:
    """Mask track-2 data and card numbers (see the module docstring) inside ``text``.

    The result has the same length as ``text``: digits are replaced by ``*`` one for one, so a
    tag-length-value layout stays readable after masking.
    """
    text = _TRACK2.sub(lambda m: mask_pan(m.group(1)) + "=****", text)
    return _DIGIT_RUN.sub(lambda m: _mask_run(m.group(0)), text)


def _mask_run(run: str) -> str:
    """``run`` (all digits) with the card number that ends it masked, if there is one.

    Besides the whole run, the candidates are the run without a 1-3 digit length prefix (an
    LLVAR/LLLVAR or DE48 tag-length-value length glued to the number) and without its leading
    zeros (a right-aligned, zero-padded number). Only these few, so that long non-card runs
    (DE90, padded amounts) are not masked by chance.
    """
    n = len(run)
    for start in sorted({0, 1, 2, 3, n - len(run.lstrip("0"))}):
        size = n - start
        if (_PAN_MIN <= size <= _PAN_MAX and run[start] != "0"
                and luhn_ok(run[start:])):
            return run[:start] + mask_pan(run[start:])
    return run


class Pan:
    """A primary account number whose text form is always masked.

    ``str(pan)`` and ``repr(pan)`` show the first 6 and last 4 digits. The full digits are in
    :attr:`digits`, to be used only for matching, hashing and putting on the wire.
    """

    __slots__ = ("_digits",)

    def __init__(self, digits: str) -> None:
        if not digits.isdigit():
            raise ValueError("a PAN is decimal digits only")
        self._digits = digits

    @property
    def digits(self) -> str:
        """The full PAN. Never log or display this."""
        return self._digits

    @property
    def masked(self) -> str:
        """First 6 and last 4 digits with stars between."""
        return mask_pan(self._digits)

    @property
    def last4(self) -> str:
        """The last four digits, as printed on customer receipts."""
        return self._digits[-4:]

    def luhn_ok(self) -> bool:
        """True when the check digit is right."""
        return luhn_ok(self._digits)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"Pan({self.masked!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pan) and other._digits == self._digits

    def __hash__(self) -> int:
        return hash(("Pan", self._digits))


class Track2:
    """Track 2 equivalent data (DE35). Rendered as masked PAN only; never stored by the host."""

    __slots__ = ("_data",)

    def __init__(self, data: str) -> None:
        self._data = data

    @property
    def data(self) -> str:
        """The raw track data, for the wire only."""
        return self._data

    @property
    def pan(self) -> Pan:
        """The PAN part (before the ``=`` or ``D`` separator)."""
        sep = re.split(r"[=D]", self._data, maxsplit=1)
        return Pan(sep[0])

    @property
    def expiry(self) -> str | None:
        """YYMM after the separator, when present."""
        m = re.search(r"[=D](\d{4})", self._data)
        return m.group(1) if m else None

    def __str__(self) -> str:
        # Not through .pan: rendering must not raise on a track with a malformed PAN part.
        return f"{mask_pan(re.split(r'[=D]', self._data, maxsplit=1)[0])}=****"

    def __repr__(self) -> str:
        return f"Track2({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Track2) and other._data == self._data

    def __hash__(self) -> int:
        return hash(("Track2", self._data))
