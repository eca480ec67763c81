"""What an admin route module works with: the context, the parsed request, the route table.

A route module registers handlers with :func:`route`; :mod:`host.admin.site` serves every
registered route through klein, and :mod:`host.admin.openapi` describes them. Adding a route::

    # host/admin/clock.py
    from host.admin.api import AdminContext, AdminRequest, route
    from protocol.admin_models import ClockView

    @route("POST", "/clock/advance", model=ClockView, body=AdvanceBody, errors=(400, 409))
    def advance(ctx: AdminContext, req: AdminRequest) -> object:
        seconds = req.require(int, "seconds")            # 400 when missing or not an int
        return ctx.call(ctx.extras["clock"].advance_s, seconds)   # Deferred -> ClockView

then import the module in ``host/admin/__init__.py`` (next to the others). A handler gets the
:class:`AdminContext` (service, worker, metrics, log, clock and an ``extras`` dict the runtime
fills) and the :class:`AdminRequest` (path params from ``{name}`` segments, query, parsed JSON
body). It returns the route's ``model`` (or a dict the model reads), an :class:`AdminResponse`
for another status or a text body, or a Deferred of either; it raises :class:`HttpError` (or a
domain error, see :func:`host.admin.site.error_answer`) for a clean error status. Blocking work
goes through ``ctx.call`` so it runs in the worker thread, never on the loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from twisted.internet.defer import Deferred

from host.logs import MessageLog
from host.metrics import Metrics
from host.worker import ServiceWorker

T = TypeVar("T")
DB_INT_MAX = 2**63 - 1
"""The largest id or cursor either database can compare (a signed 64-bit BIGINT)."""
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")
_PATH_PARAM = re.compile(r"\{(\w+)\}")
JSON_TYPE = "application/json"
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CSV_TYPE = "text/csv; charset=utf-8"


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
            storable(value, f"body member {name!r}")
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
class Query:
    """One query parameter a route reads, for the OpenAPI document."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Route:
    """One method + path pattern (``/reviews/{id}/approve``), its handler and its contract.

    :ivar model: the JSON body of a success, or None for a text body (``text_type``).
    :ivar status: the success status (201 for a creation).
    :ivar body: the request body's type (a model, or a union such as ``Rule | list[Rule]``),
        None for no body.
    :ivar errors: the error statuses the route itself may answer, besides 401 (every route)
        and 400 (a malformed path, query or body).
    :ivar text_type: the content type of a text answer (CSV, Prometheus text) instead of or,
        with ``model`` and a ``format`` query, as well as JSON.
    """

    method: str
    pattern: str
    handler: Handler
    model: type[BaseModel] | None = None
    status: int = 200
    body: Any = None
    query: tuple[Query, ...] = ()
    errors: tuple[int, ...] = ()
    text_type: str | None = None

    @property
    def params(self) -> list[str]:
        """The names of the ``{name}`` path segments, in order."""
        return _PATH_PARAM.findall(self.pattern)

    @property
    def klein_path(self) -> str:
        """The pattern in werkzeug's spelling (``/reviews/<id>/approve``)."""
        return _PATH_PARAM.sub(r"<\1>", self.pattern)


ResourceFactory = Callable[[AdminContext], Any]
"""Builds the twisted.web ``Resource`` mounted under a path (see :meth:`RouteTable.mount`)."""


class RouteTable:
    """Routes in registration order (each method + pattern at most once), and mounts."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.mounts: list[tuple[str, ResourceFactory]] = []

    def mount(self, pattern: str, factory: ResourceFactory) -> None:
        """Serve the Resource ``factory(ctx)`` builds at ``pattern`` and every path below it
        (it sees the rest of the path as ``request.postpath``), behind the same token."""
        self.mounts.append((pattern, factory))

    def add(self, method: str, pattern: str, handler: Handler, **contract: Any) -> Route:
        """Register ``handler`` for ``method`` on ``pattern`` (``{name}`` = one path segment);
        ``contract`` fills the other :class:`Route` members."""
        method = method.upper()
        if any(r.method == method and r.pattern == pattern for r in self.routes):
            raise ValueError(f"admin route {method} {pattern} is already registered")
        added = Route(method, pattern, handler, **contract)
        self.routes.append(added)
        return added

    def route(self, method: str, pattern: str, **contract: Any) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`."""

        def deco(handler: Handler) -> Handler:
            self.add(method, pattern, handler, **contract)
            return handler

        return deco


ROUTES = RouteTable()
route = ROUTES.route
register = ROUTES.add
mount = ROUTES.mount


def storable(text: str, what: str) -> None:
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
