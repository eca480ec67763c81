"""Customer notifications: a transactional outbox, a JSON-lines file and a webhook with retries.

The origin document's last step is telling the customer that the money arrived. The host emits
four events:

=====================  =====================================================================
``refund_approved``    a refund was approved (online, or by a reviewer)
``refund_rejected``    a refund held for review was rejected
``refund_posted``      a settled refund reached the cardholder's card (its posting date)
``merchant_funded``    a merchant settlement was paid out (its funding date)
=====================  =====================================================================

Each carries the simulated time, the masked PAN (never the full one: :func:`mask_pan` is applied
on the way in), the amount in minor units, the currency, the RRN, a reference (review id,
settlement id) and the merchant id.

:meth:`Outbox.add` inserts into the ``notification`` table *inside the caller's transaction*, so
a notification exists exactly when the state change that caused it was committed. After the
commit, :meth:`Outbox.flush_file` appends the new rows to the JSON-lines file (once each), and
:class:`WebhookSender` POSTs undelivered rows to the configured URL with exponential back-off,
marking each delivered or recording the last error.

In a running host, :class:`Notifier` ties these together without ever touching the request's
transaction: :attr:`Outbox.on_add` tells it (from the worker thread, inside the transaction)
that a row was added; it then queues ``flush_file`` behind that transaction in the same single
worker thread, so the file is appended right after the commit (and finds nothing if the
transaction rolled back), and starts the webhook for the new rows. Group commit is never held up
by the file or the network.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    select,
    update,
)
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.python.failure import Failure

from host.ledger.chains import MAIN
from host.ledger.db import schema_transaction
from host.ledger.prepared import Prepared
from host.ledger.schema import (
    UpdateRule,
    add_chain_column,
    chain_column,
    create_history_triggers,
)
from protocol.masking import mask_pan

EVENTS = ("refund_approved", "refund_rejected", "refund_posted", "merchant_funded")

metadata = MetaData()

notification = Table(
    "notification",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("event", String(32), nullable=False),
    Column("merchant_id", String(32)),
    Column("rrn", String(12)),
    Column("reference", String(64)),
    Column("pan_masked", String(19)),
    Column("amount_minor", Integer),
    Column("currency", String(3)),
    Column("detail", JSON, nullable=False, default=dict),
    Column("file_written", Boolean, nullable=False, default=False),
    Column("delivered_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(200)),
    # The ledger chain of the host that wrote it: what its event stream publishes.
    chain_column(),
)

#: The columns of a notification fixed when it is recorded (what the customer is told).
NOTICE_FIXED = ("id", "at", "event", "merchant_id", "rrn", "reference", "pan_masked",
                "amount_minor", "currency", "detail", "chain")

NOTIFICATION_RULES = (
    UpdateRule("notification_fixed", "notification",
               "only the delivery columns (file_written, delivered_at, attempts, last_error) "
               "change", NOTICE_FIXED),
    UpdateRule("notification_written_once", "notification", "file_written moves false -> true",
               ("file_written",), "NOT OLD.file_written AND NEW.file_written"),
    UpdateRule("notification_delivered_once", "notification",
               "delivered_at is set once and kept", ("delivered_at",),
               "OLD.delivered_at IS NULL"),
    UpdateRule("notification_attempts_count_up", "notification",
               "attempts go up by one per webhook attempt", ("attempts",),
               "NEW.attempts = OLD.attempts + 1"),
)
"""The named UPDATE rules of the outbox (:func:`host.ledger.schema.create_history_triggers`);
its rows are never deleted."""

# Built once: :meth:`Outbox.add` runs on the request path (every approved refund).
_INSERT = Prepared(notification.insert())


def _row_dict(row: Any) -> dict[str, Any]:
    m = row._mapping
    at = m["at"]
    if isinstance(at, datetime) and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # SQLite keeps no offset; every instant stored is UTC
    return {
        "id": m["id"], "at": at.isoformat() if isinstance(at, datetime) else at,
        "event": m["event"], "merchant_id": m["merchant_id"], "rrn": m["rrn"],
        "reference": m["reference"], "pan": m["pan_masked"], "amount_minor": m["amount_minor"],
        "currency": m["currency"], **(m["detail"] or {}),
    }  # fmt: skip


class Outbox:
    """The notification outbox on the host's database, plus its JSON-lines mirror."""

    def __init__(self, engine: Engine, jsonl_path: str | Path | None = None) -> None:
        self.engine = engine
        self.jsonl_path = Path(jsonl_path) if jsonl_path else None
        self._file_lock = threading.Lock()
        self.on_add: Callable[[], None] | None = None
        """Called by :meth:`add` after each insert, still inside the caller's transaction:
        it must only schedule work for after the commit (the runtime's :class:`Notifier`)."""
        self.owns: Callable[[str | None], bool] | None = None
        """Whether this host delivers a merchant's notifications (file and webhook) when
        several hosts share the database; None: every row's."""
        self.chain = MAIN
        """The host's ledger chain, which each row carries (its event stream's)."""
        with schema_transaction(engine) as conn:
            metadata.create_all(conn)
            add_chain_column(conn, notification.name)
            create_history_triggers(conn, ("notification",), NOTIFICATION_RULES)

    def add(
        self,
        conn: Connection,
        event: str,
        at: datetime,
        *,
        merchant_id: str | None = None,
        rrn: str | None = None,
        reference: str | None = None,
        pan: str | None = None,
        amount_minor: int | None = None,
        currency: str | None = None,
        **detail: Any,
    ) -> int:
        """Record one event in the caller's transaction ``conn``; returns its id."""
        key = _INSERT.run(conn, self._row(event, at, merchant_id, rrn, reference, pan,
                                          amount_minor, currency, detail, self.chain)
                          ).inserted_primary_key
        if self.on_add is not None:
            self.on_add()
        return int(key[0]) if key else 0

    def add_later(self, conn: Connection, event: str, at: datetime, *,
                  merchant_id: str | None = None, rrn: str | None = None,
                  reference: str | None = None, pan: str | None = None,
                  amount_minor: int | None = None, currency: str | None = None,
                  **detail: Any) -> None:
        """:meth:`add` for a caller that needs no id: on PostgreSQL the row goes to the server
        with the request's other writes (host.ledger.pending), in the same transaction."""
        _INSERT.later(conn, self._row(event, at, merchant_id, rrn, reference, pan,
                                      amount_minor, currency, detail, self.chain))
        if self.on_add is not None:
            self.on_add()

    @staticmethod
    def _row(event: str, at: datetime, merchant_id: str | None, rrn: str | None,
             reference: str | None, pan: str | None, amount_minor: int | None,
             currency: str | None, detail: dict[str, Any], chain: str) -> dict[str, Any]:
        if event not in EVENTS:
            raise ValueError(f"unknown notification event {event!r}")
        return {
            "at": at, "event": event, "merchant_id": merchant_id, "rrn": rrn,
            "reference": reference, "pan_masked": mask_pan(pan) if pan else None,
            "amount_minor": amount_minor, "currency": currency, "detail": detail,
            "file_written": False, "attempts": 0, "chain": chain,
        }  # fmt: skip

    def entries(
        self, *, event: str | None = None, rrn: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Notifications, oldest first, optionally by event or RRN."""
        query = select(notification).order_by(notification.c.id).limit(limit)
        if event:
            query = query.where(notification.c.event == event)
        if rrn:
            query = query.where(notification.c.rrn == rrn)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = []
        for row in rows:
            item = _row_dict(row)
            item["delivered"] = row._mapping["delivered_at"] is not None
            item["attempts"] = row._mapping["attempts"]
            out.append(item)
        return out

    def flush_file(self) -> int:
        """Append rows not yet written to the JSON-lines file; returns how many."""
        if self.jsonl_path is None:
            return 0
        with self._file_lock, self.engine.begin() as conn:
            rows = conn.execute(
                select(notification).where(notification.c.file_written.is_(False))
                .order_by(notification.c.id)
            ).all()
            rows = self._owned(rows)
            if not rows:
                return 0
            self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
            with self.jsonl_path.open("a", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(_row_dict(row), sort_keys=True) + "\n")
            ids = [row._mapping["id"] for row in rows]
            conn.execute(
                update(notification).where(notification.c.id.in_(ids)).values(file_written=True)
            )
        return len(rows)

    def undelivered(self, max_attempts: int) -> list[dict[str, Any]]:
        """Rows the webhook has not delivered yet and may still try."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(notification)
                .where(notification.c.delivered_at.is_(None),
                       notification.c.attempts < max_attempts)
                .order_by(notification.c.id)
            ).all()
        return [_row_dict(row) for row in self._owned(rows)]

    def _owned(self, rows: Sequence[Any]) -> Sequence[Any]:
        """The rows of merchants this host delivers for (all without :attr:`owns`)."""
        owns = self.owns
        if owns is None:
            return rows
        return [row for row in rows if owns(row._mapping["merchant_id"])]

    def record_attempt(self, row_id: int, delivered_at: datetime | None, error: str | None) -> None:
        """Count one webhook attempt: delivered (at ``delivered_at``) or failed with ``error``."""
        with self.engine.begin() as conn:
            conn.execute(
                update(notification).where(notification.c.id == row_id).values(
                    attempts=notification.c.attempts + 1, delivered_at=delivered_at,
                    last_error=(error or "")[:200] or None,
                )
            )  # fmt: skip


BlockingCall = Callable[..., Any]
"""Runs a blocking function off the loop and returns a Deferred (``ServiceWorker.call``)."""


class WebhookSender:
    """POSTs notifications as JSON to ``url`` with exponential back-off.

    Runs on the reactor (``treq`` over Twisted's ``Agent``); database work goes through ``blocking``
    (the service worker). ``delays_s`` are the waits between attempts of one row, so the number
    of attempts is ``len(delays_s) + 1``. An attempt with no answer within ``timeout_s``
    (connecting included) is cancelled and counts as failed. Back-off uses the reactor's
    monotonic timers, never the (possibly simulated) business clock.
    """

    def __init__(
        self,
        url: str,
        outbox: Outbox,
        blocking: BlockingCall,
        now: Callable[[], datetime],
        *,
        delays_s: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0),
        timeout_s: float = 10.0,
        reactor: Any = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url {url!r} must start with http:// or https://")
        self.url = url
        self.outbox = outbox
        self.blocking = blocking
        self.now = now
        self.delays_s = delays_s
        self.timeout_s = timeout_s
        self._reactor = reactor
        self._busy: set[int] = set()
        self._stopped = False
        self._active: set[Any] = set()  # delivery Deferreds in progress
        self._waits: dict[Any, Any] = {}  # back-off Deferred -> its DelayedCall
        self._requests: set[Any] = set()  # POSTs in flight

    @property
    def max_attempts(self) -> int:
        """Attempts per notification before it is left undelivered (visible in the API)."""
        return len(self.delays_s) + 1

    def _the_reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor  # lazily: tests install the asyncio reactor

            self._reactor = reactor
        return self._reactor

    def pump(self) -> Any:
        """Start delivering every undelivered row; the Deferred fires when all have settled."""

        if self._stopped:
            return succeed([])

        def start(rows: list[dict[str, Any]]) -> Any:
            todo = [row for row in rows if row["id"] not in self._busy and not self._stopped]
            return gatherResults([self._deliver(row) for row in todo])

        return self.blocking(self.outbox.undelivered, self.max_attempts).addCallback(start)

    def stop(self) -> Any:
        """Stop delivering: cut back-off waits short, cancel POSTs in flight, record nothing
        more. The Deferred fires once every delivery has ended (before the worker stops);
        rows not delivered keep their attempts and are retried after a restart."""

        self._stopped = True
        for wait, call in list(self._waits.items()):
            if call.active():
                call.cancel()
            if not wait.called:
                wait.callback(None)
        for request in list(self._requests):
            request.cancel()
        return gatherResults(list(self._active), consumeErrors=True)

    async def _deliver_async(self, row: dict[str, Any]) -> bool:

        reactor = self._the_reactor()
        self._busy.add(row["id"])
        try:
            for attempt in range(self.max_attempts):
                if self._stopped:  # stop() may come while an attempt is being recorded
                    return False
                if attempt:
                    wait: Deferred[None] = Deferred()
                    self._waits[wait] = reactor.callLater(self.delays_s[attempt - 1],
                                                          wait.callback, None)
                    try:
                        await wait
                    finally:
                        self._waits.pop(wait, None)
                if self._stopped:
                    return False
                error = await self._post_once(row)
                if self._stopped:
                    return False  # the worker may be gone: leave the row for the next run
                await self.blocking(
                    self.outbox.record_attempt, row["id"], None if error else self.now(), error
                )
                if error is None:
                    return True
            return False
        finally:
            self._busy.discard(row["id"])

    def _deliver(self, row: dict[str, Any]) -> Any:

        d = Deferred.fromCoroutine(self._deliver_async(row))
        if not d.called:
            self._active.add(d)

            def ended(result: object) -> object:
                self._active.discard(d)
                return result

            d.addBoth(ended)
        return d

    async def _post_once(self, row: dict[str, Any]) -> str | None:
        """One POST (``treq``, cut off after ``timeout_s``); None on a 2xx answer, else a short
        error text."""
        import treq
        from treq.client import HTTPClient
        from twisted.web.client import Agent, HTTPConnectionPool

        reactor = self._the_reactor()
        untyped: Any = (Agent, HTTPConnectionPool)  # twisted.web.client is untyped
        # No keep-alive: a connection left open would outlive stop() and the receiver's port.
        pool = untyped[1](reactor, persistent=False)
        literal = _ip_literal_endpoints(reactor, self.url)
        agent = (untyped[0].usingEndpointFactory(reactor, literal, pool=pool)
                 if literal is not None else untyped[0](reactor, pool=pool))
        client = HTTPClient(agent)
        try:
            # Redirects are not followed: a 3xx is a failed attempt, like any non-2xx answer.
            request = client.post(self.url, json=row, allow_redirects=False,
                                  timeout=self.timeout_s, reactor=reactor)
            request.addCallback(lambda response: treq.content(response).addCallback(
                lambda _body: response))  # read to the end so the connection closes
            self._requests.add(request)
            try:
                response = await request
            finally:
                self._requests.discard(request)
        except Exception as exc:  # network failures and time-outs are retried, not raised
            if _cancelled(exc):  # stop() records nothing, so this was the time-out
                return f"no answer within {self.timeout_s:g} s"
            return f"{type(exc).__name__}: {exc}"[:200]
        if 200 <= response.code < 300:
            return None
        return f"HTTP {response.code}"


class Notifier:
    """Loop side of the outbox in a running host (see the module docstring).

    ``blocking`` runs a function in the service's worker thread and returns a Deferred
    (``ServiceWorker.call``); ``reactor`` is the running reactor; ``sender`` the webhook, or
    None when no URL is configured. :meth:`attach` hooks it to the outbox.
    """

    def __init__(self, outbox: Outbox, blocking: BlockingCall, reactor: Any,
                 sender: WebhookSender | None = None) -> None:
        self.outbox = outbox
        self.blocking = blocking
        self.sender = sender
        self._reactor = reactor
        self._flushing = False
        self._again = False
        self._stopped = False
        self._idle_waiters: list[Any] = []
        self.flushes = 0
        """How many times the file copy was brought up to date (for tests and metrics)."""

    def attach(self) -> None:
        """Be told of every notification the outbox records, and catch up on earlier ones."""
        self.outbox.on_add = self.added
        self.poke()

    def added(self) -> None:
        """Any thread: a notification was added to a transaction that has not committed yet."""
        self._reactor.callFromThread(self.poke)

    def poke(self) -> None:
        """Loop: append committed rows to the file, then hand undelivered ones to the webhook.

        At most one flush is queued at a time; pokes during it run one more flush after it, so
        a burst of notifications costs one or two flushes, not one each."""
        if self._stopped:
            return
        if self._flushing:
            self._again = True
            return
        self._flushing = True
        self.blocking(self.outbox.flush_file).addBoth(self._flushed)

    def _flushed(self, result: object) -> None:

        self._flushing = False
        if isinstance(result, Failure):  # a full disk must not stop the host or the webhook
            import logging

            logging.getLogger(__name__).error("notifications file: %s",
                                              result.getErrorMessage())
        else:
            self.flushes += 1
        if self.sender is not None and not self._stopped:
            self.sender.pump().addErrback(lambda f: None)  # failures are recorded per row
        if self._again:
            self._again = False
            self.poke()
            return
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def when_idle(self) -> Any:
        """A Deferred that fires once no file flush is running or queued (at once when idle):
        every notification committed before the call is then in the file."""

        if not self._flushing:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    def stop(self) -> Any:
        """Stop reacting to new rows and end webhook deliveries; the Deferred fires when done.
        The caller flushes the file once more (in the worker) before closing the service."""

        self._stopped = True
        self.outbox.on_add = None
        return self.sender.stop() if self.sender is not None else succeed(None)


def _cancelled(exc: Exception) -> bool:
    """Whether a request failed because it was cancelled (before or after connecting)."""
    from twisted.internet.defer import CancelledError
    from twisted.internet.error import ConnectingCancelledError
    from twisted.web.client import ResponseNeverReceived

    if isinstance(exc, ResponseNeverReceived):
        return any(reason.check(CancelledError) for reason in exc.reasons)
    return isinstance(exc, CancelledError | ConnectingCancelledError)


def _ip_literal_endpoints(reactor: Any, url: str) -> Any:
    """For ``http://<IP address>...`` an endpoint factory that connects without a name lookup
    (Twisted resolves host names in the reactor's thread pool, which a plain IP never needs);
    None otherwise, so host names and https use the Agent's own endpoints."""
    import ipaddress

    from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
    from twisted.web.iweb import IAgentEndpointFactory
    from zope.interface import implementer

    parts = urlsplit(url)
    try:
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return None
    if parts.scheme != "http":
        return None
    kind = TCP6ClientEndpoint if address.version == 6 else TCP4ClientEndpoint

    @implementer(IAgentEndpointFactory)
    class _Literal:
        def endpointForURI(self, uri: Any) -> Any:
            return kind(reactor, str(address), uri.port)

    return _Literal()
