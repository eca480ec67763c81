"""When a transaction happened, as the terminal shows it: the host's time, merchant's zone.

The host stamps each answer with its own date and time in the merchant's time zone (DE13 and
DE12), so a host on a simulated clock prints simulated dates on every slip. An answer without
them falls back to the transmission time (DE7, UTC, echoed by the host) converted to the
merchant's zone from the terminal's configuration; the machine's own zone is never used.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from terminal.i18n import N_, _
from terminal.journal import Txn


def zone(name: str) -> ZoneInfo:
    """The merchant's time zone; UTC when the name is unknown (say so in settings)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


_MONTHS = (N_("Jan"), N_("Feb"), N_("Mar"), N_("Apr"), N_("May"), N_("Jun"), N_("Jul"),
           N_("Aug"), N_("Sep"), N_("Oct"), N_("Nov"), N_("Dec"))


def day_month(mmdd: str | None) -> str:
    """``04 Dec`` for the ISO 8583 ``MMDD`` 1204: a month name leaves no doubt which number
    is the day (the wire says MMDD, the inspector's breakdown day first). In Chinese
    ``12月04日``: the same six cells, so columns cut at a fixed width still line up."""
    if not mmdd or len(mmdd) != 4 or not mmdd.isdigit() or not 1 <= int(mmdd[:2]) <= 12:
        return "-- ---"
    return _("{day} {month}").format(day=mmdd[2:], month=_(_MONTHS[int(mmdd[:2]) - 1]))


def when(txn: Txn, tz: ZoneInfo) -> str:
    """``04 Dec 07:38:12``: the host's DE13/DE12, else DE7 or the send time in ``tz``."""
    if txn.host_date and txn.host_time:
        t = txn.host_time
        return f"{day_month(txn.host_date)} {t[:2]}:{t[2:4]}:{t[4:6]}"
    sent = datetime.fromisoformat(txn.local_time)
    de7 = txn.transmitted_at
    if len(de7) == 10 and de7.isdigit():
        try:
            sent = datetime.strptime(f"{sent.astimezone(UTC).year}{de7}", "%Y%m%d%H%M%S"
                                     ).replace(tzinfo=UTC)
        except ValueError:
            pass  # an unreadable DE7: the terminal's own record of the send time will do
    local = sent.astimezone(tz)
    return f"{day_month(local.strftime('%m%d'))} {local:%H:%M:%S}"


def clock_text(moment: datetime, tz: ZoneInfo) -> str:
    """``hh:mm:ss`` of ``moment`` in ``tz`` (a naive moment is taken as machine local)."""
    return moment.astimezone(tz).strftime("%H:%M:%S")
