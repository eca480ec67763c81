"""Merchant fees: MDR rounding, refund fee policies and net, to the exact minor unit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from host.settlement.fees import FeeConfigError, FeeSchedule, Line, RefundFeePolicy, figures


def test_mdr_rounds_half_up_plus_fixed_fee() -> None:
    """0.6% of 12.50 is 7.5 fen -> 8, plus the fixed fee; 0.6% of 12.49 is 7.494 -> 7."""
    fees = FeeSchedule.from_config("0.6", fixed_fee_minor=10)
    assert fees.sale_fee(1250) == 18
    assert fees.sale_fee(1249) == 17
    assert FeeSchedule.from_config("2.5").sale_fee(100) == 3  # 2.5 -> 3
    assert FeeSchedule.from_config("0").sale_fee(99999) == 0


def test_keep_mdr_returns_nothing() -> None:
    """keep_mdr (the default): a refund has fee 0, so the merchant keeps paying the sale's MDR."""
    fees = FeeSchedule.from_config("1.5", fixed_fee_minor=20)
    assert fees.refund_policy is RefundFeePolicy.KEEP_MDR
    assert fees.refund_fee(5000, sale_minor=10000, refunded_before_minor=0) == 0
    lines = [Line("sale", 10000, fees.sale_fee(10000)), Line("refund", 5000, 0)]
    assert figures(lines).as_dict() == {
        "sales_count": 1, "sales_minor": 10000, "refunds_count": 1, "refunds_minor": 5000,
        "adjustments_count": 0, "adjustments_minor": 0, "fees_minor": 170, "net_minor": 4830,
    }  # fmt: skip


def test_refund_mdr_returns_percentage_pro_rata_never_more_than_paid() -> None:
    """refund_mdr: 3 x 1/3 partial refunds of a 3000 sale at 5% return 50+50+50 = the 150 paid;
    the fixed fee stays; uneven rounding still sums to exactly the percentage fee."""
    fees = FeeSchedule.from_config("5", fixed_fee_minor=7, fee_policy="refund_mdr")
    assert fees.sale_fee(3000) == 157
    returned = [fees.refund_fee(1000, sale_minor=3000, refunded_before_minor=k * 1000)
                for k in range(3)]
    assert returned == [-50, -50, -50]
    odd = FeeSchedule.from_config("5", fee_policy="refund_mdr")  # sale 30 -> fee 1.5 -> 2
    parts = [odd.refund_fee(10, sale_minor=30, refunded_before_minor=k * 10) for k in range(3)]
    assert parts == [-1, 0, -1] and -sum(parts) == odd.sale_fee(30)


def test_per_refund_fee_is_explicit() -> None:
    """per_refund_fee: each refund costs the configured fixed amount; net reflects it."""
    fees = FeeSchedule.from_config("1", fee_policy="per_refund_fee", per_refund_fee_minor=150)
    assert fees.refund_fee(200, sale_minor=10000, refunded_before_minor=0) == 150
    lines = [Line("sale", 10000, 100), Line("refund", 200, 150), Line("refund", 300, 150),
             Line("adjustment", -10000, -100)]
    got = figures(lines)
    assert (got.fees_minor, got.net_minor) == (300, 10000 - 500 - 10000 - 300)


@given(
    sale=st.integers(1, 10**9),
    percent=st.decimals("0", "10", places=3),
    cuts=st.lists(st.integers(1, 10**9), max_size=6),
)
def test_refund_mdr_cumulative_return_equals_pro_rata(
    sale: int, percent: Decimal, cuts: list[int]
) -> None:
    """For any split of partial refunds, the returned MDR sums to the pro-rata total, <= paid."""
    fees = FeeSchedule(percent, 0, RefundFeePolicy.REFUND_MDR)
    total, returned = 0, 0
    for cut in cuts:
        amount = min(cut, sale - total)
        if amount <= 0:
            break
        returned -= fees.refund_fee(amount, sale_minor=sale, refunded_before_minor=total)
        total += amount
    assert 0 <= returned <= fees.percent_fee(sale)
    if total == sale:
        assert returned == fees.percent_fee(sale)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mdr_percent": 0.6}, "string or Decimal"),
        ({"mdr_percent": "abc"}, "not a number"),
        ({"mdr_percent": "101"}, "between 0 and 100"),
        ({"mdr_percent": "1", "fee_policy": "free"}, "keep_mdr"),
        ({"mdr_percent": "1", "fixed_fee_minor": -1}, "fixed_fee_minor"),
    ],
)
def test_bad_fee_config_names_the_setting(kwargs: dict[str, object], match: str) -> None:
    """Floats, junk, out-of-range percents, unknown policies and negative fees are refused."""
    with pytest.raises(FeeConfigError, match=match):
        FeeSchedule.from_config(**kwargs)  # type: ignore[arg-type]


def test_refund_beyond_sale_is_refused() -> None:
    """A refund that would exceed the sale is a programming error, not a silent fee."""
    with pytest.raises(ValueError):
        FeeSchedule().refund_fee(11, sale_minor=10, refunded_before_minor=0)
    with pytest.raises(ValueError):
        figures([Line("chargeback", 1)])
