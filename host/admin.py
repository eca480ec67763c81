"""The admin API: HTTP/JSON on a loopback port, Twisted web on the host's reactor.

Every request needs ``Authorization: Bearer <token>``; a missing or wrong token gets 401 and
an ``audit`` log line (constant-time compare). Errors are JSON ``{"error": "..."}`` with 400
(bad JSON or parameters), 401, 404 (unknown path or object), 405 (known path, other method,
with ``Allow``) or 500. Service calls run in the host's single worker thread, like ISO traffic.

Core routes::

    GET  /health                       service health plus open connections
    GET  /transactions/{rrn}           one transaction with its events, or 404
    GET  /transactions?tid=&stan=&limit=&cursor=
                                       {"transactions": [...], "next": cursor or null}
    GET  /ledger/balances              per account per currency
    GET  /ledger/verify                {"ok": bool, "violations": [...], "checked": {...}}
    GET  /reviews?state=               {"reviews": [...]}
    POST /reviews/{id}/approve         body {"approver": str, "note": str?}
    POST /reviews/{id}/reject          body {"approver": str, "reason": str}
    GET  /metrics                      Prometheus text

Adding routes from another module (clock, settlements, notifications, faults)::

    # host/settlement_admin.py
    from host.admin import AdminContext, AdminRequest, HttpError, route

    @route("POST", "/clock/advance")
    def advance(ctx: AdminContext, req: AdminRequest) -> object:
        seconds = req.require(int, "seconds")            # 400 when missing or not an int
        return ctx.call(ctx.extras["clock"].advance_s, seconds)   # Deferred -> JSON

then add ``"host.settlement_admin"`` to :data:`ROUTE_MODULES` below (imported when the site is
built). A handler gets the :class:`AdminContext` (service, worker, metrics, log, clock and an
``extras`` dict the runtime fills) and the :class:`AdminRequest` (path params from ``{name}``
segments, query, parsed JSON body). It returns a JSON-able value, an :class:`AdminResponse`,
or a Deferred of either; it raises :class:`HttpError` (or the service's ``AdminError``, any
exception with an int ``status`` and a ``message``) for a clean error status. Blocking work
goes through ``ctx.call`` so it runs in the worker thread, never on the loop.
"""

from __future__ import annotations

import hmac
import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from host.errors import Conflict, DomainError, NotFound
from host.logs import MessageLog
from host.metrics import Metrics
from host.worker import ServiceWorker

ROUTE_MODULES: tuple[str, ...] = ("host.admin_faults", "host.admin_settlement")
"""Modules that register admin routes with :func:`route` at import time."""

T = TypeVar("T")
DB_INT_MAX = 2**63 - 1
"""The largest id or cursor either database can compare (a signed 64-bit BIGINT)."""
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")
JSON_TYPE = "application/json"
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PAGE_DEFAULT = 500
"""Transactions per page of ``GET /transactions`` unless ``limit`` says otherwise."""
PAGE_MAX = 1000
"""The largest ``limit`` ``GET /transactions`` accepts."""


class HttpError(Exception):
    """Raise from a handler to answer ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class AdminResponse:
    """A non-default answer: another status, or a body that is not JSON."""

    body: object
    status: int = 200
    content_type: str = JSON_TYPE


@dataclass(frozen=True)
class AdminRequest:
    """One parsed admin call."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any

    def require(self, kind: type[T], name: str) -> T:
        """A mandatory JSON body member of type ``kind`` (400 otherwise)."""
        value = self.optional(kind, name)
        if value is None:
            raise HttpError(400, f"body member {name!r} is required")
        return value

    def optional(self, kind: type[T], name: str, default: T | None = None) -> T | None:
        """An optional JSON body member of type ``kind`` (400 when of another type)."""
        if self.body is None:
            return default
        if not isinstance(self.body, dict):
            raise HttpError(400, "the request body must be a JSON object")
        value = self.body.get(name, default)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise HttpError(400, f"body member {name!r} must be a {kind.__name__}")
        if isinstance(value, str):
            _storable(value, f"body member {name!r}")
        return value

    def int_param(self, name: str) -> int:
        """A path parameter that must be a database id: 0-9 digits up to 2**63 - 1 (404
        otherwise: no row can have any other id)."""
        raw = self.params[name]
        value = db_int(raw)
        if value is None:
            raise HttpError(404, f"no such {name}: {raw[:40]!r}")
        return value


@dataclass
class AdminContext:
    """What handlers may use. ``extras`` carries objects other helpers plug in."""

    service: Any
    worker: ServiceWorker
    metrics: Metrics
    log: MessageLog
    clock: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Deferred[T]:
        """Run blocking ``fn`` in the service worker thread."""
        return self.worker.call(fn, *args, **kwargs)


Handler = Callable[[AdminContext, AdminRequest], Any]


@dataclass(frozen=True)
class Route:
    """One method + path pattern (``/reviews/{id}/approve``) and its handler."""

    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler


class RouteTable:
    """Routes in registration order; the first pattern that matches the path wins."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` on ``pattern`` (``{name}`` = one path segment)."""
        method = method.upper()
        if any(r.method == method and r.pattern == pattern for r in self.routes):
            raise ValueError(f"admin route {method} {pattern} is already registered")
        regex = re.compile(
            "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "/?$"
        )
        self.routes.append(Route(method, pattern, regex, handler))

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`."""

        def deco(handler: Handler) -> Handler:
            self.add(method, pattern, handler)
            return handler

        return deco

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and path params, or :class:`HttpError` 404 / 405."""
        allowed: list[str] = []
        for r in self.routes:
            m = r.regex.match(path)
            if m is None:
                continue
            if r.method == method:
                return r.handler, m.groupdict()
            allowed.append(r.method)
        if allowed:
            raise MethodNotAllowed(sorted(set(allowed)))
        raise HttpError(404, f"no such endpoint: {path}")


def http_error(exc: BaseException | None) -> BaseException | None:
    """The one place a domain error of the core (:mod:`host.errors`) becomes an HTTP status:
    Invalid 400, NotFound 404, Conflict 409. Anything else is returned as it is."""
    if not isinstance(exc, DomainError):
        return exc
    status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400
    return HttpError(status, exc.message)


class MethodNotAllowed(HttpError):
    """405 with the methods the path does accept."""

    def __init__(self, allowed: list[str]) -> None:
        super().__init__(405, f"method not allowed; use {', '.join(allowed)}")
        self.allowed = allowed


ROUTES = RouteTable()
route = ROUTES.route
register = ROUTES.add


def load_route_modules() -> None:
    """Import :data:`ROUTE_MODULES` so their routes register (idempotent)."""
    for name in ROUTE_MODULES:
        importlib.import_module(name)


def _storable(text: str, what: str) -> None:
    """400 unless ``text`` can be stored as text by both databases: no NUL (PostgreSQL refuses
    it) and no lone surrogate (JSON ``"\\ud800"``, which is not UTF-8)."""
    if "\x00" in text:
        raise HttpError(400, f"{what} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise HttpError(400, f"{what} is not valid Unicode (a lone surrogate)") from None


def db_int(raw: str) -> int | None:
    """``raw`` as a non-negative 64-bit integer, or None when it is anything else (a sign,
    non-ASCII digits such as ``²``, or a value beyond BIGINT that the database would refuse)."""
    if _ASCII_DIGITS.fullmatch(raw) is None:
        return None
    value = int(raw)
    return value if value <= DB_INT_MAX else None


# -- core routes ------------------------------------------------------------------------------


@route("GET", "/health")
def _health(ctx: AdminContext, req: AdminRequest) -> Deferred[dict[str, Any]]:
    def add_server(health: dict[str, Any]) -> dict[str, Any]:
        return {**health, "open_connections": int(ctx.metrics.open_connections.get())}

    return ctx.call(ctx.service.health).addCallback(add_server)


@route("GET", "/transactions/{rrn}")
def _transaction(ctx: AdminContext, req: AdminRequest) -> Deferred[Any]:
    rrn = req.params["rrn"]

    def found(txn: dict[str, Any] | None) -> dict[str, Any]:
        if txn is None:
            raise HttpError(404, f"no transaction with RRN {rrn}")
        return txn

    return ctx.call(ctx.service.transaction, rrn).addCallback(found)


@route("GET", "/transactions")
def _transactions(ctx: AdminContext, req: AdminRequest) -> Deferred[Any]:
    tid, stan = req.query.get("tid"), req.query.get("stan")
    limit, cursor = req.query.get("limit", str(PAGE_DEFAULT)), req.query.get("cursor")
    if stan is not None and re.fullmatch(r"[0-9]{1,6}", stan) is None:
        raise HttpError(400, "stan must be digits, at most 6")
    if re.fullmatch(r"[0-9]{1,4}", limit) is None or not 1 <= int(limit) <= PAGE_MAX:
        raise HttpError(400, f"limit must be a whole number from 1 to {PAGE_MAX}")
    if cursor is not None and db_int(cursor) is None:
        raise HttpError(400, "cursor must be the 'next' value of an earlier page")
    return ctx.call(ctx.service.transactions_page, tid=tid, stan=stan, limit=int(limit),
                    cursor=cursor)


@route("GET", "/ledger/balances")
def _balances(ctx: AdminContext, req: AdminRequest) -> Deferred[Any]:
    return ctx.call(ctx.service.balances)


@route("GET", "/ledger/verify")
def _verify(ctx: AdminContext, req: AdminRequest) -> Deferred[Any]:
    return ctx.call(ctx.service.verify)


@route("GET", "/reviews")
def _reviews(ctx: AdminContext, req: AdminRequest) -> Deferred[Any]:
    return ctx.call(ctx.service.reviews, req.query.get("state")).addCallback(
        lambda rows: {"reviews": rows})


@route("POST", "/reviews/{id}/approve")
def _approve(ctx: AdminContext, req: AdminRequest) -> Deferred[Any]:
    review_id = req.int_param("id")
    approver = req.require(str, "approver")
    note = req.optional(str, "note", "") or ""
    ctx.log.audit("review_approve", review=review_id, approver=approver)
    return ctx.call(ctx.service.approve_review, review_id, approver, note)


@route("POST", "/reviews/{id}/reject")
def _reject(ctx: AdminContext, req: AdminRequest) -> Deferred[Any]:
    review_id = req.int_param("id")
    approver = req.require(str, "approver")
    reason = req.require(str, "reason")
    ctx.log.audit("review_reject", review=review_id, approver=approver)
    return ctx.call(ctx.service.reject_review, review_id, approver, reason)


@route("GET", "/metrics")
def _metrics(ctx: AdminContext, req: AdminRequest) -> AdminResponse:
    return AdminResponse(ctx.metrics.render(), content_type=PROMETHEUS_TYPE)


# -- HTTP plumbing ----------------------------------------------------------------------------


class AdminResource(Resource):
    """The one resource: authenticates, routes, runs the handler, writes JSON."""

    isLeaf = True

    def __init__(self, ctx: AdminContext, token: str, routes: RouteTable = ROUTES) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ctx = ctx
        self._token = token.encode()
        self.routes = routes

    def render(self, request: Any) -> int | bytes:
        """Answer one HTTP request (asynchronously when the handler returns a Deferred)."""
        method = (request.method or b"").decode("ascii", "replace").upper()
        path = (request.path or b"/").decode("utf-8", "replace")
        if not self._authorized(request, method, path):
            self._finish(request, AdminResponse({"error": "missing or wrong bearer token"},
                                                status=401))
            return NOT_DONE_YET
        d = maybeDeferred(self._dispatch, request, method, path)
        gone = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def write(result: object) -> None:
            if not gone:
                self._finish(request, result)

        d.addErrback(self._error, method, path).addCallback(write)
        return NOT_DONE_YET

    def _authorized(self, request: Any, method: str, path: str) -> bool:
        header = request.getHeader("authorization") or ""
        scheme, _, given = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                self._token)
        if not ok:
            peer = request.getClientAddress()
            self.ctx.log.audit("admin_auth_failed", method=method, path=path,
                               peer=getattr(peer, "host", "?"),
                               reason="missing token" if not header else "wrong token")
        return ok

    def _dispatch(self, request: Any, method: str, path: str) -> Any:
        handler, params = self.routes.match(method, path)
        query = {k.decode("utf-8", "replace"): v[-1].decode("utf-8", "replace")
                 for k, v in (request.args or {}).items() if v}
        if "\x00" in path or any("\x00" in k + v for k, v in query.items()):
            # PostgreSQL cannot compare text holding NUL: refuse it here for every route.
            raise HttpError(400, "the path or query contains a NUL character")
        raw = request.content.read() if request.content is not None else b""
        body: Any = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise HttpError(400, "the request body is not valid JSON") from None
            except RecursionError:  # nesting deeper than the parser can follow
                raise HttpError(400, "the request body is nested too deeply") from None
        return handler(self.ctx, AdminRequest(method, path, params, query, body))

    def _error(self, failure: Failure, method: str, path: str) -> AdminResponse:
        exc = http_error(failure.value)
        status = getattr(exc, "status", None)
        message = getattr(exc, "message", None)
        if isinstance(status, int) and 400 <= status < 600 and isinstance(message, str):
            allowed = getattr(exc, "allowed", None)
            return AdminResponse({"error": message, **({"allow": allowed} if allowed else {})},
                                 status=status)
        self.ctx.log.event("admin_error", method=method, path=path,
                           error=f"{type(exc).__name__}: {exc}")
        return AdminResponse({"error": f"internal error ({type(exc).__name__})"}, status=500)

    def _finish(self, request: Any, result: object) -> None:
        answer = result if isinstance(result, AdminResponse) else AdminResponse(result)
        request.setResponseCode(answer.status)
        request.setHeader("content-type", answer.content_type)
        if answer.status == 401:
            request.setHeader("www-authenticate", 'Bearer realm="poslab-host"')
        if isinstance(answer.body, dict) and "allow" in answer.body:
            request.setHeader("allow", ", ".join(answer.body["allow"]))
        if isinstance(answer.body, bytes | str) and answer.content_type != JSON_TYPE:
            data = answer.body.encode() if isinstance(answer.body, str) else answer.body
        else:
            data = json.dumps(answer.body, default=str, indent=None).encode()
        if not request.finished:
            request.write(data)
            request.finish()


def admin_site(ctx: AdminContext, token: str) -> Site:
    """The Twisted web site serving the admin API."""
    load_route_modules()
    site_class: Any = Site  # twisted.web is untyped
    site: Site = site_class(AdminResource(ctx, token))
    site.displayTracebacks = False
    site.noisy = False
    return site
