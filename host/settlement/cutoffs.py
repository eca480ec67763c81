"""Settlement timing, pure: cut-off instants, business dates, funding and refund posting dates.

**Business date rule.** Each merchant has a daily cut-off time in its own time zone. A business
date ``D`` covers the half-open interval ``[cutoff(D - 1), cutoff(D))``: the cut-off is
*exclusive*, so a transaction stamped exactly at the cut-off instant belongs to the **next**
business date. For a cut-off at or after noon (``23:00``) ``cutoff(D)`` is on calendar day ``D``;
for an early-morning cut-off (``02:00``, the Mastercard style) it is on day ``D + 1``, so the
small hours still count for the day before. Every calendar day has a cut-off (cards are accepted
at weekends too); business *days* only matter for funding and posting.

**Daylight saving.** The cut-off is a local wall-clock time. When that time does not exist (the
spring-forward gap, e.g. 02:30 in New York on 2026-03-08) the cut-off happens at the transition
instant, the moment the wall clock jumps past it. When it occurs twice (fall-back, e.g. 01:30 in
New York on 2026-11-01) the cut-off happens at its first occurrence. Either way there is exactly
one cut-off per business date, cut-offs strictly increase, and so the business date of a stream of
instants never decreases.

**Funding.** A closed batch of business date ``D`` funds the merchant on
``add_business_days(D, funding_days)`` (``funding_days = 1`` is T+1; ``0`` pays the same day, or
the next business day when ``D`` is not one).

**Refund posting.** A settled refund reaches the cardholder ``N`` business days after its
settlement (business) date, ``N`` drawn from ``refund.posting_days = [lo, hi]`` by a hash of the
configured seed and the refund's RRN, so the same refund always gets the same date.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from host.settlement.calendar import BusinessCalendar


class SettlementConfigError(ValueError):
    """A bad time zone, cut-off time or day range; the message names it."""


def parse_cutoff(text: str) -> time:
    """``"23:00"`` -> ``time(23, 0)``; ``HH:MM`` or ``HH:MM:SS`` only."""
    try:
        parsed = time.fromisoformat(text)
    except ValueError:
        raise SettlementConfigError(f"cut-off {text!r} is not a HH:MM time") from None
    if parsed.tzinfo is not None:
        raise SettlementConfigError(f"cut-off {text!r} must be a local time without offset")
    return parsed


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or a SettlementConfigError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettlementConfigError(f"unknown time zone {name!r}") from None


def resolve_local(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The UTC instant at which ``tz``'s wall clock first reads ``day wall``.

    In a DST gap that is the transition instant; in a fall-back overlap, the first occurrence.
    """
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first  # exists (fold=0 is the earlier of two occurrences)
    # Non-existent: fold=0 maps it with the pre-gap offset, landing after the transition, fold=1
    # with the post-gap offset, landing before it. Bisect to the first instant past the gap.
    low = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = first
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(tz).replace(tzinfo=None) >= naive:
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0)


@dataclass(frozen=True)
class CutoffSchedule:
    """A merchant's daily cut-off: local ``cutoff`` time in zone ``tz`` (see module docstring)."""

    tz: ZoneInfo
    cutoff: time

    @classmethod
    def parse(cls, timezone: str, cutoff: str) -> CutoffSchedule:
        """Build from config strings (``"Asia/Shanghai"``, ``"23:00"``)."""
        return cls(zone(timezone), parse_cutoff(cutoff))

    @property
    def _day_offset(self) -> int:
        return 0 if self.cutoff >= time(12, 0) else 1

    def cutoff_instant(self, business_date: date) -> datetime:
        """The UTC instant that ends ``business_date`` (the first instant of the next one)."""
        return resolve_local(business_date + timedelta(days=self._day_offset), self.cutoff, self.tz)

    def business_date(self, instant: datetime) -> date:
        """The business date ``instant`` belongs to: the first ``D`` with instant < cutoff(D)."""
        if instant.tzinfo is None:
            raise ValueError("business_date needs a timezone-aware instant")
        # Start two days early so a DST-shifted cut-off can never put the start past ``instant``.
        day = instant.astimezone(self.tz).date() - timedelta(days=self._day_offset + 2)
        while instant >= self.cutoff_instant(day):
            day += timedelta(days=1)
        return day

    def window(self, instant: datetime) -> tuple[date, datetime, datetime]:
        """``instant``'s business date with the instants that start it (inclusive) and end it
        (exclusive): every instant in between has the same business date."""
        day = self.business_date(instant)
        return day, self.cutoff_instant(day - timedelta(days=1)), self.cutoff_instant(day)

    def next_cutoff(self, instant: datetime) -> datetime:
        """The first cut-off strictly after ``instant`` (that ends instant's business date)."""
        return self.cutoff_instant(self.business_date(instant))


def funding_date(business_date: date, calendar: BusinessCalendar, funding_days: int = 1) -> date:
    """When a batch of ``business_date`` is paid to the merchant (T + ``funding_days``)."""
    if funding_days < 0:
        raise SettlementConfigError("settlement.funding_days cannot be negative")
    return calendar.add_business_days(business_date, funding_days)


def posting_days(seed: str, rrn: str, days_range: tuple[int, int] | list[int]) -> int:
    """Business days between a refund's settlement and its posting to the card, in range.

    Deterministic: SHA-256 of ``seed`` and ``rrn`` picks a value in ``[lo, hi]`` inclusive.
    """
    lo, hi = days_range
    if lo < 0 or hi < lo:
        raise SettlementConfigError(f"refund.posting_days {[lo, hi]} must be 0 <= lo <= hi")
    digest = hashlib.sha256(f"{seed}\x00{rrn}".encode()).digest()
    return lo + int.from_bytes(digest[:8], "big") % (hi - lo + 1)


def refund_posting_date(
    settlement_date: date,
    calendar: BusinessCalendar,
    seed: str,
    rrn: str,
    days_range: tuple[int, int] | list[int] = (3, 7),
) -> date:
    """The day a settled refund (by RRN) is posted to the cardholder's card."""
    return calendar.add_business_days(settlement_date, posting_days(seed, rrn, days_range))
