"""Admin routes for the clock, settlements, notifications and reports (:func:`.api.route`)::

    GET  /clock                        mode, now, pending events, merchants' business dates
    POST /clock/advance                {"seconds"|"minutes"|"hours"|"days": N}
                                       or {"business_days": N, "merchant": "M1"?}
    POST /clock/set                    {"instant": "2026-12-01T09:00:00+08:00"} (forward only)
    GET  /settlements?date=YYYY-MM-DD&merchant=&format=json|csv
    GET  /notifications?event=&rrn=
    GET  /reports/refunds?from=YYYY-MM-DD&to=YYYY-MM-DD&format=json|csv

Moving the clock runs every due event (cut-offs, funding, refund posting) in the service's worker
thread, like ISO traffic, so a cut-off never interleaves with a transaction. A move is at most
``[limits] max_clock_move_days`` long (400 beyond, and for a NaN, infinite or negative amount)
and runs in slices of one simulated day, each its own worker call: ISO requests that arrive
meanwhile are served between slices, and a host that is stopping ends the move at the next
slice (503 with the instant reached). The real clock cannot be moved (409). The settlement
desk comes from ``service.settlement`` (or ``extras["settlement"]``); without one the
settlement routes answer 503.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from twisted.internet.defer import Deferred

from host.admin.api import (
    CSV_TYPE,
    AdminContext,
    AdminRequest,
    AdminResponse,
    HttpError,
    Query,
    route,
)
from host.clock import MAX_MOVE, ClockError, ManualClock, check_move, parse_duration, too_far
from host.reports import SETTLEMENT_COLUMNS, render, render_refunds, settlement_rows
from host.settlement.jobs import SettlementDesk
from protocol.admin_models import (
    AdvanceBody,
    ClockView,
    NotificationList,
    RefundsReport,
    SetClockBody,
    SettlementList,
)

_DATE = {"type": "string", "format": "date"}
_FORMAT = Query("format", "json (default) or csv", {"type": "string", "enum": ["json", "csv"]})
SLICE = timedelta(days=1)
"""The simulated time one worker call of a clock move covers."""


def _desk(ctx: AdminContext) -> SettlementDesk:
    desk = getattr(ctx.service, "settlement", None) or ctx.extras.get("settlement")
    if not isinstance(desk, SettlementDesk):
        raise HttpError(503, "settlement is not available in this host")
    return desk


def _desk_or_none(ctx: AdminContext) -> SettlementDesk | None:
    try:
        return _desk(ctx)
    except HttpError:
        return None


def _manual(ctx: AdminContext) -> ManualClock:
    if not isinstance(ctx.clock, ManualClock):
        raise HttpError(409, "the host runs on the real clock; start it with --clock simulated")
    return ctx.clock


def _clock_view(ctx: AdminContext) -> ClockView:
    view: dict[str, Any] = dict(ctx.clock.describe()) if ctx.clock is not None else {}
    if isinstance(ctx.clock, ManualClock):
        view["speed"] = ctx.clock.speed
    desk = _desk_or_none(ctx)
    if desk is not None:
        view["business_dates"] = desk.merchant_days()
    return ClockView.model_validate(view)


def _date_param(req: AdminRequest, name: str) -> date | None:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise HttpError(400, f"{name} must be a date YYYY-MM-DD, got {raw!r}") from None


def _max_move(ctx: AdminContext) -> timedelta:
    most = ctx.extras.get("max_clock_move")
    return most if isinstance(most, timedelta) else MAX_MOVE


def _move(ctx: AdminContext, clock: ManualClock, target: datetime) -> Deferred[Any]:
    """Move the clock to ``target`` one slice per worker call; the clock view at the end."""

    def step(_: object = None) -> Deferred[Any]:
        if ctx.worker.stopping:
            raise HttpError(503, "the host is stopping; the clock stopped at "
                                 f"{clock.now().isoformat()}")
        d = ctx.call(clock.step_toward, target, SLICE)
        d.addCallback(lambda now: ctx.call(_clock_view, ctx) if now >= target else step())
        return d

    return step()


def _calendar_merchant(ctx: AdminContext, desk: SettlementDesk, given: object) -> str:
    """The merchant whose business calendar counts ``business_days``: the one given, else the
    first this host settles.

    A host sharing its database with others settles only its partition's merchants, and only
    its own clock runs their jobs; counting another host's merchant's business days here would
    move this clock, which runs none of that merchant's jobs. So such a merchant, and a host
    that settles none, get a 400 that says what to do instead."""
    ids = list(desk.terms)
    mine = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "") or "none"
    if not given:
        first = next(iter(desk.terms), None)
        if first is None:
            raise HttpError(400, "this host settles no merchant, so it has no business calendar "
                                 'to count in: advance it by "days" or "hours" instead')
        return first
    if given in desk.terms:
        return str(given)
    config = getattr(ctx.service, "config", None)
    listed = config.merchant(given) if config is not None and isinstance(given, str) else None
    elsewhere = None if config is None or listed is None else config.foreign_partition(listed)
    if elsewhere is not None:
        raise HttpError(400, f"{elsewhere}: its business days run on that host's clock, so "
                             f"advance that host (each host has a clock of its own); this one "
                             f"settles {mine}")
    raise HttpError(400, f"unknown merchant {given!r} (this host settles {mine})")


@route("GET", "/clock", model=ClockView)
def get_clock(ctx: AdminContext, req: AdminRequest) -> Any:
    """The clock's mode and instant, pending events, and each merchant's business date."""
    return ctx.call(_clock_view, ctx)


@route("POST", "/clock/advance", model=ClockView, body=AdvanceBody, errors=(409, 503))
def advance_clock(ctx: AdminContext, req: AdminRequest) -> Any:
    """Move a simulated clock forward, running every due event on the way."""
    clock = _manual(ctx)
    body = req.body
    if not isinstance(body, dict):
        raise HttpError(400, 'the body must be a JSON object such as {"hours": 24}')
    if "business_days" in body:
        n = body["business_days"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise HttpError(400, '"business_days" must be a non-negative integer')
        most = _max_move(ctx)
        if n > most.days:  # n business days are at least n calendar days
            raise HttpError(400, too_far(most))
        if set(body) - {"business_days", "merchant"}:
            raise HttpError(400, 'give "business_days" (and optionally "merchant") only')
        desk = _desk(ctx)
        merchant = _calendar_merchant(ctx, desk, body.get("merchant"))
        terms = desk.terms[merchant]

        def target_day() -> datetime:
            target = clock.business_days_ahead(n, terms.calendar, terms.schedule.tz)
            try:
                check_move(clock.now(), target, most)
            except ClockError as exc:
                raise HttpError(400, str(exc)) from None
            return target

        ctx.log.audit("clock_advance", business_days=n, merchant=merchant)
        return ctx.call(target_day).addCallback(lambda target: _move(ctx, clock, target))
    try:
        delta = parse_duration(body, _max_move(ctx))
    except ClockError as exc:
        raise HttpError(400, str(exc)) from None
    ctx.log.audit("clock_advance", seconds=delta.total_seconds())
    return _move(ctx, clock, clock.now() + delta)


@route("POST", "/clock/set", model=ClockView, body=SetClockBody, errors=(409, 503))
def set_clock(ctx: AdminContext, req: AdminRequest) -> Any:
    """Jump a simulated clock forward to an instant (earlier instants are refused with 400)."""
    clock = _manual(ctx)
    raw = req.require(str, "instant")
    try:
        instant = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise HttpError(400, f"instant {raw!r} is not an ISO 8601 date-time") from None
    if instant.tzinfo is None:
        raise HttpError(400, f"instant {raw!r} needs a UTC offset, e.g. +08:00 or Z")
    try:
        target = instant.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00 is past the last UTC instant
        raise HttpError(400, f"instant {raw!r} is out of range") from None
    current = clock.now()
    if target < current:
        raise HttpError(400, f"the simulated clock only moves forward: {target.isoformat()} "
                             f"is before {current.isoformat()}")
    try:
        check_move(current, target, _max_move(ctx))
    except ClockError as exc:
        raise HttpError(400, str(exc)) from None
    ctx.log.audit("clock_set", instant=instant.isoformat())
    return _move(ctx, clock, target)


def _formatted(rows: list[dict[str, Any]], fmt: str) -> Any:
    if fmt == "csv":
        return AdminResponse(render(rows, "csv", SETTLEMENT_COLUMNS), content_type=CSV_TYPE)
    if fmt != "json":
        raise HttpError(400, f"format must be json or csv, got {fmt!r}")
    return SettlementList.model_validate({"settlements": rows})


@route("GET", "/settlements", model=SettlementList, text_type=CSV_TYPE, errors=(503,), query=(
    Query("date", "only this business date (YYYY-MM-DD)", _DATE),
    Query("merchant", "only this merchant"),
    _FORMAT,
))
def get_settlements(ctx: AdminContext, req: AdminRequest) -> Any:
    """Settlements per merchant per batch, optionally of one business date / merchant."""
    desk = _desk(ctx)
    on = _date_param(req, "date")
    fmt = req.query.get("format", "json")
    merchant = req.query.get("merchant") or None
    d = ctx.call(desk.settlements, on, merchant)
    if fmt == "csv":
        return d.addCallback(lambda rows: _formatted(settlement_rows(rows), fmt))
    return d.addCallback(lambda rows: _formatted(rows, fmt))


@route("GET", "/notifications", model=NotificationList, errors=(503,), query=(
    Query("event", "only this event (refund_approved, settlement_funded ...)"),
    Query("rrn", "only this transaction's notifications"),
))
def get_notifications(ctx: AdminContext, req: AdminRequest) -> Any:
    """The notification outbox, oldest first (PANs masked)."""
    desk = _desk(ctx)
    if desk.outbox is None:
        raise HttpError(503, "notifications are not configured")
    outbox = desk.outbox
    event, rrn = req.query.get("event") or None, req.query.get("rrn") or None

    def read() -> NotificationList:
        desk.committed()  # mirror rows the engine committed since the last job to the file
        return NotificationList.model_validate(
            {"notifications": outbox.entries(event=event, rrn=rrn)})

    return ctx.call(read)


@route("GET", "/reports/refunds", model=RefundsReport, text_type=CSV_TYPE, errors=(503,),
       query=(Query("from", "first business date (YYYY-MM-DD)", _DATE),
              Query("to", "last business date (YYYY-MM-DD)", _DATE),
              _FORMAT))
def get_refunds_report(ctx: AdminContext, req: AdminRequest) -> Any:
    """Refunds by reason, state and age, and the refund rate per merchant."""
    desk = _desk(ctx)
    source = desk.refund_source
    if source is None:
        raise HttpError(503, "the refunds report needs the engine's refund records")
    start, end = _date_param(req, "from"), _date_param(req, "to")
    fmt = req.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise HttpError(400, f"format must be json or csv, got {fmt!r}")

    def build() -> Any:
        report = desk.refunds_report(source, start, end)
        if fmt == "json":
            return RefundsReport.model_validate(report)
        return AdminResponse(render_refunds(report, fmt), content_type=CSV_TYPE)

    return ctx.call(build)
