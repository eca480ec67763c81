"""Merchant fees, exact to the minor unit: MDR on sales and the refund fee policy.

**Rounding.** Percentages are applied in :class:`~decimal.Decimal` and rounded once, half-up, to
the minor unit (``2.5`` -> ``3``, ``2.4999`` -> ``2``); amounts are never floats.

**MDR on a sale** = ``round_half_up(amount * mdr_percent / 100) + fixed_fee_minor``.

**Refund fee policies** (acquirers differ, so it is configurable):

* ``keep_mdr`` (default) -- the acquirer keeps the sale's MDR; a refund costs the merchant nothing
  more and returns nothing.
* ``refund_mdr_prorata`` -- the percentage part of the sale's MDR is returned pro rata to the
  refunded amount. It is computed cumulatively (returned so far = ``round_half_up(sale_percent_fee *
  refunded_total / sale_amount)``) so that partial refunds never return more than the sale paid,
  and a full refund returns exactly the percentage fee. The fixed per-transaction fee is never
  returned.
* ``per_refund_fee`` -- a fixed ``per_refund_fee_minor`` is charged for each refund, explicitly,
  and the MDR is kept.

A fee is a signed integer: positive is charged to the merchant, negative is returned to it.
The merchant's net for a batch is ``sales - refunds + adjustments - fees``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum


class FeeConfigError(ValueError):
    """A bad fee setting; the message names it."""


class RefundFeePolicy(StrEnum):
    """What happens to fees when a sale is refunded (see module docstring)."""

    KEEP_MDR = "keep_mdr"
    REFUND_MDR = "refund_mdr_prorata"
    PER_REFUND_FEE = "per_refund_fee"


_POLICY_ALIASES = {"refund_mdr": "refund_mdr_prorata"}
"""Other spellings accepted (the short name older settlement code used for the pro-rata policy)."""


def round_half_up(value: Decimal) -> int:
    """Round to an integer number of minor units, halves away from zero."""
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class FeeSchedule:
    """One merchant's pricing: MDR percent, fixed fee per sale, and the refund fee policy."""

    mdr_percent: Decimal = Decimal(0)
    fixed_fee_minor: int = 0
    refund_policy: RefundFeePolicy = RefundFeePolicy.KEEP_MDR
    per_refund_fee_minor: int = 0

    @classmethod
    def from_config(
        cls,
        mdr_percent: Decimal | str | int,
        fixed_fee_minor: int = 0,
        fee_policy: str = "keep_mdr",
        per_refund_fee_minor: int = 0,
    ) -> FeeSchedule:
        """Validate config values (floats are refused: ``"0.6"``, not ``0.6``)."""
        if isinstance(mdr_percent, float):
            raise FeeConfigError(f"mdr_percent {mdr_percent!r} must be a string or Decimal")
        try:
            percent = Decimal(mdr_percent)
        except InvalidOperation:
            raise FeeConfigError(f"mdr_percent {mdr_percent!r} is not a number") from None
        if not percent.is_finite() or not Decimal(0) <= percent <= Decimal(100):
            raise FeeConfigError(f"mdr_percent {mdr_percent!r} must be between 0 and 100")
        try:
            policy = RefundFeePolicy(_POLICY_ALIASES.get(fee_policy, fee_policy))
        except ValueError:
            choices = ", ".join(p.value for p in RefundFeePolicy)
            raise FeeConfigError(f"fee_policy {fee_policy!r} is not one of {choices}") from None
        for name, value in (("fixed_fee_minor", fixed_fee_minor),
                            ("per_refund_fee_minor", per_refund_fee_minor)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise FeeConfigError(f"{name} {value!r} must be a non-negative integer")
        return cls(percent, fixed_fee_minor, policy, per_refund_fee_minor)

    def percent_fee(self, amount_minor: int) -> int:
        """The percentage part of the MDR on ``amount_minor``."""
        return round_half_up(Decimal(amount_minor) * self.mdr_percent / 100)

    def sale_fee(self, amount_minor: int) -> int:
        """The MDR charged on a sale: percentage part plus the fixed fee."""
        return self.percent_fee(amount_minor) + self.fixed_fee_minor

    def refund_fee(self, refund_minor: int, *, sale_minor: int, refunded_before_minor: int) -> int:
        """The signed fee for one refund of a sale that had ``refunded_before_minor`` refunded.

        Positive: charged to the merchant; negative: MDR returned to the merchant.
        """
        if refund_minor <= 0 or sale_minor <= 0:
            raise ValueError("refund and sale amounts must be positive")
        if refunded_before_minor + refund_minor > sale_minor:
            raise ValueError("refunds exceed the sale")
        if self.refund_policy is RefundFeePolicy.PER_REFUND_FEE:
            return self.per_refund_fee_minor
        if self.refund_policy is RefundFeePolicy.REFUND_MDR:
            paid = Decimal(self.percent_fee(sale_minor))

            def returned(total: int) -> int:
                return round_half_up(paid * total / sale_minor)

            before = returned(refunded_before_minor)
            return before - returned(refunded_before_minor + refund_minor)
        return 0


@dataclass(frozen=True)
class Line:
    """One settled item: ``kind`` is ``sale``, ``refund`` or ``adjustment``.

    ``amount_minor`` is positive for sales and refunds; an adjustment carries its sign (a late
    reversal of a settled sale is ``-amount``). ``fee_minor`` is the signed fee of the item.
    """

    kind: str
    amount_minor: int
    fee_minor: int = 0


@dataclass(frozen=True)
class Figures:
    """A settlement's totals: counts and amounts by type, fees and the merchant's net."""

    sales_count: int = 0
    sales_minor: int = 0
    refunds_count: int = 0
    refunds_minor: int = 0
    adjustments_count: int = 0
    adjustments_minor: int = 0
    fees_minor: int = 0

    @property
    def net_minor(self) -> int:
        """What the merchant is paid: sales - refunds + adjustments - fees (may be negative)."""
        return self.sales_minor - self.refunds_minor + self.adjustments_minor - self.fees_minor

    def as_dict(self) -> dict[str, int]:
        """JSON-able, with ``net_minor`` included."""
        return {
            "sales_count": self.sales_count, "sales_minor": self.sales_minor,
            "refunds_count": self.refunds_count, "refunds_minor": self.refunds_minor,
            "adjustments_count": self.adjustments_count,
            "adjustments_minor": self.adjustments_minor,
            "fees_minor": self.fees_minor, "net_minor": self.net_minor,
        }  # fmt: skip


def figures(lines: Iterable[Line]) -> Figures:
    """Sum settled lines into :class:`Figures`; an unknown kind is a ValueError."""
    counts = {"sale": 0, "refund": 0, "adjustment": 0}
    amounts = dict.fromkeys(counts, 0)
    fees = 0
    for line in lines:
        if line.kind not in counts:
            raise ValueError(f"unknown settlement line kind {line.kind!r}")
        counts[line.kind] += 1
        amounts[line.kind] += line.amount_minor
        fees += line.fee_minor
    return Figures(
        counts["sale"], amounts["sale"], counts["refund"], amounts["refund"],
        counts["adjustment"], amounts["adjustment"], fees,
    )  # fmt: skip
