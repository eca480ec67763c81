"""Card data masking: the only way card data reaches logs, ``repr()``, screens and receipts.

PCI DSS 3.4.1 allows at most the first six and the last four digits of a PAN on display. The
:class:`Pan` type keeps the digits for the code that needs them (matching, Luhn, hashing) but
renders masked everywhere Python renders objects. :func:`scrub` masks any Luhn-valid 13-19 digit
run and any track-2 looking string inside free text, for error messages that quote input.
"""

from __future__ import annotations

import re

_PAN_RUN = re.compile(r"(?<!\d)\d{13,19}(?!\d)")
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
    """Mask track-2 data and Luhn-valid PAN-length digit runs inside ``text``."""
    text = _TRACK2.sub(lambda m: mask_pan(m.group(1)) + "=****", text)
    return _PAN_RUN.sub(lambda m: mask_pan(m.group(0)) if luhn_ok(m.group(0)) else m.group(0), text)


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
