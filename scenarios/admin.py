"""The one client of the host's admin API: JSON over HTTP with a Bearer token.

Only the scenario layer (the runner, the bench, the crash and fault tools, and tests) calls
the admin API -- the terminal never does -- so the client lives here and terminal and host
stay independent of it. It has two transports over one definition of a call (headers, body,
how an answer and an error are read):

* :class:`AdminClient` is asynchronous, through ``twisted.web.client.Agent``: an in-process
  host serves the same loop, and a blocking call there would deadlock;
* :class:`BlockingAdminClient` uses ``urllib`` for tools that drive a host subprocess from
  plain synchronous code.

Both raise :class:`AdminCallError` (with the HTTP status) for an error answer and
:class:`AdminUnreachable` when no answer came. The reactor is imported lazily: importing it
first would install the wrong one.

Typed calls: each admin operation is an :class:`AdminCall` built by a function below
(:func:`transaction`, :func:`reviews`, :func:`advance_clock` ...) that knows its method, path,
body and the answer's model from :mod:`protocol.admin_models` (the models the host builds its
answers from); ``client.fetch(call)`` sends it and returns the model::

    detail = await client.fetch(transaction(rrn))       # a TxnDetail
    detail.remaining_minor

``call``/``get``/``post`` stay for text answers (CSV, metrics) and for scenario checks, which
read any host's JSON leniently.
"""

from __future__ import annotations

import asyncio
import io
import json
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from twisted.internet.defer import Deferred
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from protocol.admin_models import (
    Balances,
    ClockView,
    Deleted,
    FaultList,
    Health,
    NotificationList,
    RefundsReport,
    Review,
    ReviewList,
    SettlementList,
    TxnDetail,
    TxnPage,
    VerifyReport,
)
from terminal.tls import ClientTls

M = TypeVar("M", bound=BaseModel)


class AdminError(Exception):
    """The admin API could not be used; the text says which call and why."""


class AdminUnreachable(AdminError):
    """No answer: the host is not listening there, or the connection failed."""


class AdminCallError(AdminError):
    """The admin API answered with an HTTP error status.

    :ivar status: the HTTP status.
    :ivar message: the host's ``error`` text (or the body).
    """

    def __init__(self, status: int, message: str, method: str = "", path: str = "") -> None:
        where = f"admin API {method} {path}: " if method else ""
        super().__init__(f"{where}HTTP {status} {message}")
        self.status = status
        self.message = message


def _headers(token: str | None, has_body: bool) -> dict[str, str]:
    out = {"Authorization": f"Bearer {token}"} if token else {}
    if has_body:
        out["Content-Type"] = "application/json"
    return out


def _body(body: object) -> bytes | None:
    return None if body is None else json.dumps(body).encode()


def read_answer(method: str, path: str, status: int, raw: bytes, content_type: str) -> Any:
    """A JSON answer decoded (text answers as str, an empty one as None); an error status
    raises :class:`AdminCallError` with the host's ``error`` text."""
    text = raw.decode("utf-8", "replace")
    data: Any = text
    if "json" in content_type and text.strip():
        try:
            data = json.loads(text)
        except ValueError:
            data = text
    elif not text.strip():
        data = None
    if not 200 <= status < 300:
        detail = data.get("error", data) if isinstance(data, dict) else data
        raise AdminCallError(status, str(detail), method, path)
    return data


@dataclass(frozen=True)
class AdminCall(Generic[M]):
    """One admin operation: method, path (with its query), JSON body and the answer's model."""

    method: str
    path: str
    model: type[M]
    body: object = None

    def read(self, data: Any) -> M:
        """The decoded JSON answer as the model (a wrong shape raises pydantic's error)."""
        return self.model.model_validate(data)


def _path(path: str, **query: object) -> str:
    """``path`` with the query members that are not None, URL-encoded."""
    given = {k: str(v) for k, v in query.items() if v is not None}
    return f"{path}?{urllib.parse.urlencode(given)}" if given else path


def _segment(value: object) -> str:
    return urllib.parse.quote(str(value), safe="")


def health() -> AdminCall[Health]:
    """``GET /health``."""
    return AdminCall("GET", "/health", Health)


def transaction(rrn: str) -> AdminCall[TxnDetail]:
    """``GET /transactions/{rrn}`` (404 raises :class:`AdminCallError`)."""
    return AdminCall("GET", f"/transactions/{_segment(rrn)}", TxnDetail)


def transactions(tid: str | None = None, stan: str | None = None, limit: int | None = None,
                 cursor: str | None = None) -> AdminCall[TxnPage]:
    """``GET /transactions``: one page, newest first."""
    return AdminCall("GET", _path("/transactions", tid=tid, stan=stan, limit=limit,
                                  cursor=cursor), TxnPage)


def balances() -> AdminCall[Balances]:
    """``GET /ledger/balances``."""
    return AdminCall("GET", "/ledger/balances", Balances)


def verify() -> AdminCall[VerifyReport]:
    """``GET /ledger/verify``."""
    return AdminCall("GET", "/ledger/verify", VerifyReport)


def reviews(state: str | None = None) -> AdminCall[ReviewList]:
    """``GET /reviews``, optionally of one state."""
    return AdminCall("GET", _path("/reviews", state=state), ReviewList)


def approve_review(review_id: int | str, approver: str, note: str | None = None
                   ) -> AdminCall[Review]:
    """``POST /reviews/{id}/approve``."""
    body = {"approver": approver, **({"note": note} if note is not None else {})}
    return AdminCall("POST", f"/reviews/{_segment(review_id)}/approve", Review, body)


def reject_review(review_id: int | str, approver: str, reason: str | None) -> AdminCall[Review]:
    """``POST /reviews/{id}/reject``."""
    return AdminCall("POST", f"/reviews/{_segment(review_id)}/reject", Review,
                     {"approver": approver, "reason": reason})


def clock() -> AdminCall[ClockView]:
    """``GET /clock``."""
    return AdminCall("GET", "/clock", ClockView)


def advance_clock(**amount: object) -> AdminCall[ClockView]:
    """``POST /clock/advance`` with ``seconds=``, ``hours=`` ... or ``business_days=`` (and
    ``merchant=``)."""
    return AdminCall("POST", "/clock/advance", ClockView, amount)


def set_clock(instant: str) -> AdminCall[ClockView]:
    """``POST /clock/set`` to an ISO 8601 instant with a UTC offset."""
    return AdminCall("POST", "/clock/set", ClockView, {"instant": instant})


def settlements(on: str | None = None, merchant: str | None = None
                ) -> AdminCall[SettlementList]:
    """``GET /settlements`` (JSON), optionally of one business date and merchant."""
    return AdminCall("GET", _path("/settlements", date=on, merchant=merchant), SettlementList)


def notifications(event: str | None = None, rrn: str | None = None
                  ) -> AdminCall[NotificationList]:
    """``GET /notifications``."""
    return AdminCall("GET", _path("/notifications", event=event, rrn=rrn), NotificationList)


def refunds_report(start: str | None = None, end: str | None = None
                   ) -> AdminCall[RefundsReport]:
    """``GET /reports/refunds`` (JSON)."""
    return AdminCall("GET", _path("/reports/refunds", **{"from": start, "to": end}),
                     RefundsReport)


def faults() -> AdminCall[FaultList]:
    """``GET /faults``."""
    return AdminCall("GET", "/faults", FaultList)


def add_faults(rules: dict[str, Any] | list[dict[str, Any]]) -> AdminCall[FaultList]:
    """``POST /faults`` with one rule or a list of them."""
    return AdminCall("POST", "/faults", FaultList, rules)


def clear_faults() -> AdminCall[Deleted]:
    """``DELETE /faults``."""
    return AdminCall("DELETE", "/faults", Deleted)


def delete_fault(fault_id: str) -> AdminCall[Deleted]:
    """``DELETE /faults/{id}``."""
    return AdminCall("DELETE", f"/faults/{_segment(fault_id)}", Deleted)


class BlockingAdminClient:
    """Bearer-token JSON calls to ``http://host:port``, blocking the caller."""

    def __init__(self, port: int, token: str, host: str = "127.0.0.1",
                 timeout: float = 10.0, tls: ClientTls | None = None) -> None:
        self.base = f"{'https' if tls else 'http'}://{host}:{port}"
        self.token = token
        self.timeout = timeout
        self._context = tls.ssl_context() if tls else None

    def call(self, method: str, path: str, body: object = None) -> Any:
        """One call; JSON answers are parsed, text answers returned as str."""
        data = _body(body)
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=_headers(self.token, data is not None))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout,  # noqa: S310
                                        context=self._context) as resp:
                return read_answer(method, path, resp.status, resp.read(),
                                   resp.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as exc:
            return read_answer(method, path, exc.code, exc.read(),
                               exc.headers.get("Content-Type", ""))
        except OSError as exc:
            raise AdminUnreachable(f"admin API {method} {path}: {exc}") from None

    def fetch(self, call: AdminCall[M]) -> M:
        """Send a typed call; its answer as the call's model."""
        return call.read(self.call(call.method, call.path, call.body))

    def get(self, path: str) -> Any:
        """GET ``path``."""
        return self.call("GET", path)

    def post(self, path: str, body: object = None) -> Any:
        """POST ``body`` as JSON."""
        return self.call("POST", path, body)

    def delete(self, path: str) -> Any:
        """DELETE ``path``."""
        return self.call("DELETE", path)


class AdminClient:
    """Bearer-token JSON calls to ``base_url``, awaited on the shared loop."""

    def __init__(self, base_url: str, token: str | None, tls: ClientTls | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.tls = tls
        """TLS options for an ``https://`` base URL (None: the system's CAs)."""

    async def call(self, method: str, path: str, body: object = None) -> Any:
        """One call; JSON answers are parsed, text answers returned as str."""
        from twisted.web.client import Agent, FileBodyProducer, readBody
        from twisted.web.http_headers import Headers

        data = _body(body)
        headers = Headers({k.encode(): [v.encode()]
                           for k, v in _headers(self.token, data is not None).items()})
        producer: Any = None
        if data is not None:
            producer = FileBodyProducer(io.BytesIO(data))  # type: ignore[no-untyped-call]
        agent = Agent.usingEndpointFactory(_reactor(), _DirectEndpoints(self.tls))  # type: ignore[no-untyped-call]
        url = (self.base_url + path).encode()
        try:
            response = await _future(agent.request(method.encode(), url, headers, producer))
            with warnings.catch_warnings():
                # Twisted warns about its own transport type here; nothing to act on.
                warnings.simplefilter("ignore", DeprecationWarning)
                body_d = readBody(response)
            raw = await _future(body_d)
        except Exception as exc:  # twisted raises many connection error types
            raise AdminUnreachable(f"admin API {method} {path}: {exc}") from None
        kind = response.headers.getRawHeaders(b"content-type") or [b""]
        return read_answer(method, path, response.code, raw, kind[0].decode("latin-1"))

    async def fetch(self, call: AdminCall[M]) -> M:
        """Send a typed call; its answer as the call's model."""
        return call.read(await self.call(call.method, call.path, call.body))

    async def get(self, path: str) -> Any:
        """GET ``path``."""
        return await self.call("GET", path)

    async def post(self, path: str, body: object = None) -> Any:
        """POST ``body`` as JSON."""
        return await self.call("POST", path, body)

    async def delete(self, path: str) -> Any:
        """DELETE ``path``."""
        return await self.call("DELETE", path)


@implementer(IAgentEndpointFactory)
class _DirectEndpoints:
    """TCP endpoints (TLS ones for ``https``): an IP address needs no resolver thread (the
    default Agent's getaddrinfo runs in the reactor's thread pool, which then keeps the process
    alive)."""

    def __init__(self, tls: ClientTls | None = None) -> None:
        self.tls = tls

    def endpointForURI(self, uri: Any) -> Any:  # noqa: N802 - Twisted naming
        from twisted.internet.endpoints import TCP4ClientEndpoint

        if uri.scheme == b"https":
            return (self.tls or ClientTls()).endpoint(_reactor(), uri.host.decode(), uri.port,
                                                      timeout=10)
        return TCP4ClientEndpoint(_reactor(), uri.host.decode(), uri.port, timeout=10)


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _future(d: Deferred[Any]) -> asyncio.Future[Any]:
    return d.asFuture(asyncio.get_running_loop())
