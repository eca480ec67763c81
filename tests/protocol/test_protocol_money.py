"""Money: integer minor units, parsed and formatted per ISO 4217 exponent (item 10)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import Money, currency
from protocol.money import CURRENCIES


@pytest.mark.parametrize(
    ("text", "code", "minor"),
    [("12.50", "CNY", 1250), ("12.5", "CNY", 1250), ("12", "CNY", 1200), (" 0.01 ", "USD", 1),
     ("0", "CNY", 0), ("1500", "JPY", 1500), ("1500.", "JPY", 1500), ("1.234", "BHD", 1234),
     ("0.001", "KWD", 1), ("12", "156", 1200), (".5", "EUR", 50), ("-0", "CNY", 0)],
)  # fmt: skip
def test_parse(text: str, code: str, minor: int) -> None:
    """Plain decimal text becomes minor units by the currency's exponent (JPY 0, BHD 3)."""
    assert Money.parse(text, code) == Money(minor, currency(code).alpha)


@pytest.mark.parametrize(
    ("text", "code"),
    [("12.345", "CNY"), ("15.5", "JPY"), ("1.2345", "BHD"), ("0.001", "USD"),
     ("-1.00", "CNY"), ("-0.01", "CNY"), ("", "CNY"), ("abc", "CNY"), ("1.2.3", "CNY"),
     ("1e3", "CNY"), ("1_000", "CNY"), ("Infinity", "CNY"), ("NaN", "CNY"), ("sNaN", "CNY"),
     ("\uff11\uff12", "CNY"), ("12,50", "CNY")],
)  # fmt: skip
def test_parse_rejects(text: str, code: str) -> None:
    """Too many decimals, negatives and anything but plain ASCII decimals are a ValueError."""
    with pytest.raises(ValueError, match="amount"):
        Money.parse(text, code)


def test_unknown_currency_is_rejected() -> None:
    """An unknown alphabetic or numeric currency code is a ValueError naming it."""
    with pytest.raises(ValueError, match="XYZ"):
        Money.parse("1", "XYZ")
    with pytest.raises(ValueError, match="999"):
        currency("999")


@pytest.mark.parametrize(
    ("money", "shown"),
    [(Money(1250, "CNY"), "12.50"), (Money(5, "CNY"), "0.05"), (Money(1500, "JPY"), "1500"),
     (Money(0, "JPY"), "0"), (Money(1234, "BHD"), "1.234"), (Money(1, "KWD"), "0.001")],
)  # fmt: skip
def test_format(money: Money, shown: str) -> None:
    """format() shows exactly the currency's number of decimals; str() adds the code."""
    assert money.format() == shown
    assert str(money) == f"{shown} {money.currency}"


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**14), st.sampled_from(sorted(CURRENCIES)))
def test_format_parse_round_trip(minor: int, code: str) -> None:
    """parse(format(m)) == m for every amount and currency."""
    money = Money(minor, code)
    assert Money.parse(money.format(), code) == money


def test_currency_lookup_by_alpha_and_numeric() -> None:
    """CNY is 156 with 2 decimals, JPY 392 with 0, BHD 048 with 3."""
    assert currency("cny") == currency("156") and currency("156").exponent == 2
    assert currency("JPY").numeric == "392" and currency("JPY").exponent == 0
    assert currency("048").alpha == "BHD" and currency("BHD").exponent == 3
