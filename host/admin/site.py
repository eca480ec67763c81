"""The admin API's HTTP side: klein routes every registered route, a gate in front checks the
bearer token, and one function turns errors into answers.

Every request needs ``Authorization: Bearer <token>`` except ``GET /openapi.json`` (the API's
description, which holds no data); a missing or wrong token gets 401 and an ``audit`` log line
(constant-time compare). Errors are JSON ``{"error": "..."}`` with 400 (bad JSON, parameters or
URL encoding), 401, 404 (unknown path or object), 405 (known path, other method, with
``Allow``), 409, 503 or 500. Service calls run in the host's single worker thread, like ISO
traffic.

A twisted.web ``Resource`` (a live event stream, say) is mounted under a path with
:func:`host.admin.api.mount`: klein hands it the rest of the path (``branch=True``), and the
gate authenticates it like every other route.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from pydantic import BaseModel
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from host.admin.api import (
    JSON_TYPE,
    ROUTES,
    AdminContext,
    AdminRequest,
    AdminResponse,
    HttpError,
    Route,
    RouteTable,
)
from protocol.admin_models import ErrorBody

PUBLIC_PATHS = frozenset({"/openapi.json"})
"""Paths answered without a token: the API document only."""
_HIDDEN_METHODS = {"HEAD", "OPTIONS"}  # werkzeug adds HEAD to every GET route


def error_answer(exc: BaseException) -> AdminResponse | None:
    """The answer to an error a handler raised, or None for an unexpected one (a 500).

    This is the one place an error becomes an HTTP status: :class:`HttpError` and any domain
    error that carries an int ``status`` and a ``message`` (the service's ``AdminError``).
    """
    status = getattr(exc, "status", None)
    message = getattr(exc, "message", None)
    if not (isinstance(status, int) and 400 <= status < 600 and isinstance(message, str)):
        return None
    allowed = getattr(exc, "allowed", None)
    return AdminResponse(ErrorBody(error=message, allow=allowed), status=status)


class _NotAllowed(HttpError):
    """405 with the methods the path does accept."""

    def __init__(self, allowed: list[str]) -> None:
        super().__init__(405, f"method not allowed; use {', '.join(allowed)}")
        self.allowed = allowed


def body_bytes(body: object) -> bytes:
    """A JSON body's bytes; a model writes the members it set (see protocol.admin_models)."""
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json", exclude_unset=True, exclude_none=isinstance(
            body, ErrorBody))
    return json.dumps(body, default=str).encode()


def write_answer(request: Any, answer: AdminResponse) -> bytes:
    """Set status and headers of ``request`` for ``answer``; the body's bytes."""
    request.setResponseCode(answer.status)
    request.setHeader("content-type", answer.content_type)
    if answer.status == 401:
        request.setHeader("www-authenticate", 'Bearer realm="poslab-host"')
    if isinstance(answer.body, ErrorBody) and answer.body.allow:
        request.setHeader("allow", ", ".join(answer.body.allow))
    if isinstance(answer.body, bytes | str) and answer.content_type != JSON_TYPE:
        return answer.body.encode() if isinstance(answer.body, str) else answer.body
    return body_bytes(answer.body)


class AdminApp:
    """The klein application of one admin site: each route bound to the context."""

    def __init__(self, ctx: AdminContext, routes: RouteTable = ROUTES) -> None:
        # klein imports the global reactor when imported: importing it with this module would
        # install the default reactor before the CLI installs the asyncio one.
        from klein import Klein

        self.ctx = ctx
        self.klein = Klein()
        # Paths match with or without a trailing slash, and "//" is not folded into "/".
        self.klein.url_map.strict_slashes = False
        self.klein.url_map.merge_slashes = False
        for r in routes.routes:
            self.klein.route(r.klein_path, methods=[r.method],
                             endpoint=f"{r.method} {r.pattern}")(self._endpoint(r))
        for pattern, factory in routes.mounts:
            self.klein.route(pattern, branch=True, endpoint=f"mount {pattern}")(
                lambda request, factory=factory, **_: factory(ctx))
        self.klein.handle_errors(HTTPException)(self._routing_error)

    def _endpoint(self, r: Route) -> Any:
        def endpoint(request: Any, **params: str) -> Deferred[bytes]:
            d = maybeDeferred(self._run, r, request, params)
            d.addCallback(self._success, r, request)
            d.addErrback(self._failure, request)
            return _shielded(d)

        return endpoint

    def _run(self, r: Route, request: Any, params: dict[str, str]) -> Any:
        query = {k.decode("utf-8", "replace"): v[-1].decode("utf-8", "replace")
                 for k, v in (request.args or {}).items() if v}
        if any("\x00" in k + v for k, v in query.items()):
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
        path = request.path.decode("utf-8", "replace")
        return r.handler(self.ctx, AdminRequest(r.method, path, params, query, body))

    def _success(self, result: object, r: Route, request: Any) -> bytes:
        if isinstance(result, AdminResponse):
            answer = result
        elif isinstance(result, BaseModel) or r.model is None:
            answer = AdminResponse(result, status=r.status)
        else:
            answer = AdminResponse(r.model.model_validate(result), status=r.status)
        return write_answer(request, answer)

    def _failure(self, failure: Failure, request: Any) -> bytes:
        exc: Any = failure.value
        answer = error_answer(exc)
        if answer is None:
            method = request.method.decode("ascii", "replace")
            self.ctx.log.event("admin_error", method=method,
                               path=request.path.decode("utf-8", "replace"),
                               error=f"{type(exc).__name__}: {exc}")
            answer = AdminResponse(ErrorBody(error=f"internal error ({type(exc).__name__})"),
                                   status=500)
        return write_answer(request, answer)

    def _routing_error(self, request: Any, failure: Failure) -> bytes:
        exc: Any = failure.value
        path = request.path.decode("utf-8", "replace")
        if isinstance(exc, MethodNotAllowed):
            allowed = sorted(set(exc.valid_methods or ()) - _HIDDEN_METHODS)
            err: HttpError = _NotAllowed(allowed)
        elif isinstance(exc, NotFound):
            err = HttpError(404, f"no such endpoint: {path}")
        else:
            err = HttpError(exc.code or 400, exc.description or exc.name)
        answer = error_answer(err)
        assert answer is not None
        return write_answer(request, answer)


def _shielded(d: Deferred[bytes]) -> Deferred[bytes]:
    """A Deferred fed by ``d`` whose cancellation (the client hung up) leaves ``d`` running:
    a clock move or a review decision finishes even when nobody waits for the answer."""
    outer: Deferred[bytes] = Deferred()
    d.addBoth(lambda result: outer.callback(result) if not outer.called else None)
    return outer


class AuthGate(Resource):
    """Checks the bearer token, then lets klein answer."""

    isLeaf = True

    def __init__(self, app: AdminApp, token: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.app = app
        self.inner = app.klein.resource()
        self._token = token.encode()

    def render(self, request: Any) -> int | bytes:
        """Answer one HTTP request: 401 without the token, else whatever the route says."""
        method = (request.method or b"").decode("ascii", "replace").upper()
        path = (request.path or b"/").decode("utf-8", "replace")
        if path not in PUBLIC_PATHS and not self._authorized(request, method, path):
            answer = AdminResponse(ErrorBody(error="missing or wrong bearer token"), status=401)
            request.write(write_answer(request, answer))
            request.finish()
            return NOT_DONE_YET
        if not _utf8_path(request):
            request.write(write_answer(request, AdminResponse(
                ErrorBody(error="the path is not valid UTF-8 once %-decoded"), status=400)))
            request.finish()
            return NOT_DONE_YET
        result: Any = self.inner.render(request)  # NOT_DONE_YET: klein answers later
        return result  # type: ignore[no-any-return]

    def _authorized(self, request: Any, method: str, path: str) -> bool:
        header = request.getHeader("authorization") or ""
        scheme, _, given = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                self._token)
        if not ok:
            peer = request.getClientAddress()
            self.app.ctx.log.audit("admin_auth_failed", method=method, path=path,
                                   peer=getattr(peer, "host", "?"),
                                   reason="missing token" if not header else "wrong token")
        return ok


def _utf8_path(request: Any) -> bool:
    try:
        b"/".join(request.postpath or []).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def admin_site(ctx: AdminContext, token: str, routes: RouteTable = ROUTES) -> Site:
    """The Twisted web site serving the admin API."""
    site_class: Any = Site  # twisted.web is untyped
    site: Site = site_class(AuthGate(AdminApp(ctx, routes), token))
    site.displayTracebacks = False
    site.noisy = False
    return site
