"""Money: integer minor units in one ISO 4217 currency.

The currency table is written out here because no maintained package ships ISO 4217 numeric
codes together with minor-unit exponents in a form this project needs; it lists the currencies
poslab's test merchants use and can grow by a line each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation


@dataclass(frozen=True)
class Currency:
    """An ISO 4217 currency: alphabetic code, numeric code (DE49) and minor-unit exponent."""

    alpha: str
    numeric: str
    exponent: int


CURRENCIES: dict[str, Currency] = {
    c.alpha: c
    for c in (
        Currency("CNY", "156", 2), Currency("USD", "840", 2), Currency("EUR", "978", 2),
        Currency("GBP", "826", 2), Currency("HKD", "344", 2), Currency("SGD", "702", 2),
        Currency("AUD", "036", 2), Currency("CAD", "124", 2), Currency("CHF", "756", 2),
        Currency("INR", "356", 2), Currency("JPY", "392", 0), Currency("KRW", "410", 0),
        Currency("BHD", "048", 3), Currency("KWD", "414", 3), Currency("MOP", "446", 2),
        Currency("TWD", "901", 2), Currency("SEK", "752", 2), Currency("NOK", "578", 2),
    )
}  # fmt: skip
_BY_NUMERIC = {c.numeric: c for c in CURRENCIES.values()}
_AMOUNT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def currency(code: str) -> Currency:
    """Find a currency by alphabetic (``CNY``) or numeric (``156``) code."""
    found = CURRENCIES.get(code.upper()) or _BY_NUMERIC.get(code)
    if found is None:
        raise ValueError(f"unknown currency {code!r}")
    return found


@dataclass(frozen=True, order=True)
class Money:
    """An amount in integer minor units of one currency (alphabetic code)."""

    minor: int
    currency: str

    @classmethod
    def parse(cls, text: str, currency_code: str) -> Money:
        """``Money.parse("12.50", "CNY")`` -> 1250 fen; too many decimals is an error."""
        cur = currency(currency_code)
        # Plain ASCII decimal notation only: Decimal() alone also takes "Infinity", "sNaN",
        # "1e3", "1_000" and non-ASCII digits, and raises non-ValueErrors for some of them.
        if not _AMOUNT.fullmatch(text.strip()):
            raise ValueError(f"{text!r} is not an amount")
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            raise ValueError(f"{text!r} is not an amount") from None
        minor = value.scaleb(cur.exponent)
        if minor != minor.to_integral_value() or value.is_signed() and value != 0:
            raise ValueError(f"{text!r} is not a valid {cur.alpha} amount")
        return cls(int(minor), cur.alpha)

    @property
    def major(self) -> Decimal:
        """The amount in major units (yuan, dollars), for display only."""
        return Decimal(self.minor).scaleb(-currency(self.currency).exponent)

    def format(self) -> str:
        """``"12.50"`` -- the amount as a terminal shows it, without the currency."""
        exp = currency(self.currency).exponent
        return f"{self.major:.{exp}f}"

    def __str__(self) -> str:
        return f"{self.format()} {self.currency}"
