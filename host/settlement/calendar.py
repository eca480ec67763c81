"""Business days per merchant, from the ``holidays`` package.

A business day is a day the country's calendar calls a working day: not a weekend day and not a
public holiday, except that official weekend make-up working days count as business days (China's
调休: the Sunday 2018-04-08 was a working day after Qingming). ``holidays`` knows those through
``HolidayBase.is_working_day`` / ``weekend_workdays``; its data is per year and grows with new
releases of the package, so dates beyond the package's horizon fall back to plain weekends.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta
from functools import lru_cache

import holidays
from holidays.registry import EntityLoader


class CalendarError(ValueError):
    """An unknown country or subdivision; the message says which."""


class BusinessCalendar:
    """The working days of one country and optional subdivision (``US``/``CA``, ``DE``/``BY``).

    >>> cn = BusinessCalendar("CN")
    >>> cn.add_business_days(date(2018, 4, 4), 1)  # Qingming 4/5-4/7, make-up Sunday 4/8
    datetime.date(2018, 4, 8)
    """

    def __init__(self, country: str, subdivision: str | None = None) -> None:
        self.country = country.upper()
        self.subdivision = subdivision or None
        # ``holidays`` fills years lazily on lookup; one lock keeps that safe across threads.
        self._lock = threading.Lock()
        self._built: holidays.HolidayBase | None = None
        # Building any country's calendar imports every country's module (~0.08 s of CPU,
        # which every host start paid). A country code the registry lists needs nothing more
        # to be valid, so its calendar is built on first use; a subdivision can only be checked
        # against the country's class, so that calendar is built now, and an unknown one fails
        # here.
        if self.subdivision is not None or self.country not in _country_codes():
            self._build()

    def _build(self) -> holidays.HolidayBase:
        if self._built is None:
            try:
                self._built = holidays.country_holidays(self.country, subdiv=self.subdivision)
            except NotImplementedError as exc:
                where = f"{self.country}/{self.subdivision}" if self.subdivision else self.country
                raise CalendarError(f"no holiday calendar for {where}: {exc}") from None
        return self._built

    @property
    def _days(self) -> holidays.HolidayBase:
        """The package's calendar (callers hold ``_lock``)."""
        return self._build()

    def __repr__(self) -> str:
        sub = f", {self.subdivision!r}" if self.subdivision else ""
        return f"BusinessCalendar({self.country!r}{sub})"

    def is_business_day(self, day: date) -> bool:
        """True on working days (weekend make-up workdays included), False on weekends/holidays."""
        with self._lock:
            return bool(self._days.is_working_day(day))

    def holiday_name(self, day: date) -> str | None:
        """The public holiday on ``day``, if any (for reports and the admin API)."""
        with self._lock:
            name = self._days.get(day)
        return str(name) if name is not None else None

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after ``day``."""
        day += timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def add_business_days(self, day: date, n: int) -> date:
        """The ``n``-th business day after ``day``; ``n == 0`` is ``day`` itself if it is a
        business day, else the next one (D0 funding of a weekend batch pays on Monday)."""
        if n < 0:
            raise ValueError("business days can only be added, not subtracted")
        if n == 0:
            return day if self.is_business_day(day) else self.next_business_day(day)
        for _ in range(n):
            day = self.next_business_day(day)
        return day


@lru_cache(maxsize=1)
def _country_codes() -> frozenset[str]:
    """Every country code (and alias) ``holidays`` has a calendar for, from its registry."""
    return frozenset(EntityLoader.get_country_codes(include_aliases=True))


@lru_cache(maxsize=64)
def calendar_for(country: str, subdivision: str | None = None) -> BusinessCalendar:
    """A shared calendar per (country, subdivision); its first date (or, with a subdivision, its
    construction) loads the package's tables."""
    return BusinessCalendar(country, subdivision)
