"""Start and stop a whole host in-process, on the reactor that is already installed.

Used by ``poslab-host`` (:mod:`host.cli`), the scenario runner and the tests::

    runtime = HostRuntime()
    iso_port, admin_port = await runtime.start(config, "ledger.db", ManualClock(start))
    ...                                  # terminals connect to iso_port, admin calls admin_port
    await runtime.stop()

``start`` builds the service in the worker thread (opening the database is blocking), then
listens for ISO 8583 and for the admin API; it returns once both sockets listen. ``stop``
stops listening, lets every accepted request be answered (the service commits or rolls back
each one before it returns), closes the connections and then the service.

Customer notifications (``[notifications]`` in the config) are wired here: a
:class:`~host.settlement.notifications.Notifier` on the settlement desk's outbox appends each
committed notification to the JSON-lines file and POSTs it to the webhook with retries.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, FirstError
from twisted.internet.error import CannotListenError

from host import crashpoints
from host.admin import AdminContext, admin_site
from host.clock import MAX_MOVE
from host.event_stream import EventBus
from host.faults.actions import FaultHook
from host.faults.rules import FaultRegistry
from host.front.engine import FrontPool, bind_listener
from host.front.process import FrontSettings, FrontTls
from host.group_commit import GroupCommitter, committer_for
from host.hold_watch import HoldWatch, in_daemon_thread
from host.logs import MessageLog
from host.metrics import Metrics
from host.oneline import first_line, safe_url
from host.server import IsoServerFactory, ServerLimits
from host.timers import MonotonicTimer, Timer
from host.tls import TidBinding, TlsServerFactory, TlsSetupError, server_options
from host.worker import ServiceWorker
from protocol import Codec

if TYPE_CHECKING:
    from host.settlement.notifications import Notifier

ServiceFactory = Callable[..., Any]
"""``(config, db_url, clock, *, strict, allow_unknown_terminals) -> service``."""

TOKEN_ENV = "POSLAB_ADMIN_TOKEN"


class StartError(Exception):
    """The host could not start; ``str()`` is one line saying what and where."""


def resolve_admin_token(explicit: str | None, config: object) -> str:
    """The admin token: explicit, else ``$POSLAB_ADMIN_TOKEN``, else ``host.admin_token`` from
    the config, else a fresh random one.

    A generated token is hex (192 bits): URL-safe base64 begins with ``-`` about one time in
    64, and a command line such as ``--token $TOKEN`` then reads it as an option.
    """
    configured = getattr(getattr(config, "host", None), "admin_token", None)
    for candidate in (explicit, os.environ.get(TOKEN_ENV), configured):
        if candidate:
            return str(candidate)
    return secrets.token_hex(24)


def _default_service_factory() -> ServiceFactory:
    from host.service import HostService  # imported late: its database stack is heavy
    from host.sql_storage import SqlStorage

    def open_service(config: Any, db_url: str, clock: Any, **options: Any) -> HostService:
        # The composition root: the database is opened here, as the one writer of the host's
        # ledger chain, and handed to the service.
        storage = SqlStorage.open(db_url, config, serving=True)
        try:
            return HostService(config, storage, clock, **options)
        except BaseException:
            storage.close()  # lets go of the chain too
            raise

    return open_service


EXIT_WAL_FAILED = 74
"""Exit status after a failed WAL sync (sysexits' EX_IOERR)."""


class HostRuntime:
    """One running host: service, worker thread, ISO listener and admin listener.

    :ivar iso_port: the bound ISO 8583 port (after :meth:`start`).
    :ivar admin_port: the bound admin API port.
    :ivar admin_token: the bearer token the admin API accepts.
    :ivar extras: objects handed to admin route modules (``AdminContext.extras``); the
        runtime puts the fault hook under ``"faults"``.
    :ivar faults: the :class:`~host.faults.actions.FaultHook` the server consults per request
        (with front processes, the engine: host.front.engine).
    :ivar on_fatal: called with :data:`EXIT_WAL_FAILED` (or the hold watch's
        :data:`~host.hold_watch.EXIT_HOLD_LOST`) when the host must stop (``poslab-host`` stops
        its reactor and exits with it).
    """

    def __init__(self, *, log: MessageLog | None = None,
                 service_factory: ServiceFactory | None = None,
                 clock_poll_s: float = 1.0,
                 on_fatal: Callable[[int], None] | None = None,
                 hold_timer: Timer | None = None) -> None:
        self.log = log or MessageLog()
        self.on_fatal = on_fatal
        self.hold_timer = hold_timer
        """What schedules the looks at the chain hold (default: the loop's monotonic clock)."""
        self.hold_watch: HoldWatch | None = None  # PostgreSQL only, while serving
        self.clock_poll_s = clock_poll_s
        """Longest wait between two looks at a moving clock's due events (real or speed)."""
        self.notifier: Notifier | None = None
        self.metrics = Metrics()
        self.service_factory = service_factory
        self.service: Any = None
        self.factory: IsoServerFactory | None = None
        self.fronts: FrontPool | None = None  # with [server] front_processes > 0
        self.committer: GroupCommitter | None = None
        self.iso_port = 0
        self.admin_port = 0
        self.admin_token = ""
        self.extras: dict[str, Any] = {}
        self._worker: ServiceWorker | None = None
        self._listeners: list[Any] = []
        self._stopping: asyncio.Future[None] | None = None
        self._clock_poll: Any = None
        self.faults: FaultHook | None = None

    async def start(self, config: Any, db_url: str, clock: Any,
                    listen: tuple[str, int] = ("127.0.0.1", 0),
                    admin: tuple[str, int] = ("127.0.0.1", 0),
                    profile: str = "iso87-ascii", strict: bool = False,
                    allow_unknown_terminals: bool = False,
                    admin_token: str | None = None) -> tuple[int, int]:
        """Build the service, listen on both sockets, return ``(iso_port, admin_port)``.

        Raises :class:`StartError` (unknown profile, database that cannot be opened, ledger
        chain held by another host, port in use) after undoing what was started.
        """
        from twisted.internet import reactor as _reactor

        reactor: Any = _reactor  # the installed reactor's interfaces are not typed usefully
        loop = asyncio.get_running_loop()
        try:
            codec = Codec(profile)
            crashpoints.validate_environment()  # a mistyped POSLAB_CRASHPOINT is a start error
        except ValueError as exc:
            raise StartError(str(exc)) from None
        factory_fn = self.service_factory or _default_service_factory()
        self._worker = worker = ServiceWorker(reactor)
        worker.start()
        try:
            try:
                self.service = await worker.call(
                    factory_fn, config, db_url, clock, strict=strict,
                    allow_unknown_terminals=allow_unknown_terminals).asFuture(loop)
            except Exception as exc:
                raise StartError(_open_failure(db_url, exc)) from exc
            crashpoints.install_before_commit(getattr(self.service, "engine", None))
            if getattr(self.service, "security", None) is not None:
                self.service.security.use_profile(codec.profile)  # MAC'd MTIs and scheme
            self.notifier = self._notifications(config, clock, reactor)
            timer = MonotonicTimer(loop)
            self.extras.setdefault("max_clock_move", max_clock_move(config))
            self.committer = committer = committer_for(
                worker, self.service, overlap=wal_overlap(config))
            committer.on_failed = self._wal_failed
            events = self.extras.setdefault("events", EventBus(clock=clock))
            iso_tls, admin_tls = _tls_options(config)
            rules = getattr(config, "faults", ())  # [[faults]] in the config file
            self.faults = FaultHook(FaultRegistry(rules), self.metrics, self.log, timer)
            self.extras.setdefault("faults", self.faults)
            fronts = front_processes(config)
            if fronts:
                self.fronts = self._start_fronts(reactor, fronts, config, listen, codec,
                                                 committer, events, iso_tls)
                self.iso_port = int(self.fronts.listener.getsockname()[1])
                try:
                    await self.fronts.start().asFuture(loop)
                except FirstError as exc:
                    raise StartError(exc.subFailure.getErrorMessage()) from None
            else:
                self.factory = IsoServerFactory(self.service, worker, codec,
                                                ServerLimits.from_config(config), self.log,
                                                self.metrics, timer, self.faults)
                self.factory.committer = committer
                self.factory.events = events
                if iso_tls is not None and config.tls.iso.tid_in_certificate:
                    self.factory.admission = TidBinding(self.log).refusal
                self.iso_port = self._listen(reactor, "ISO 8583", listen, self.factory, iso_tls)
            self.admin_token = resolve_admin_token(admin_token, config)
            ctx = AdminContext(self.service, worker, self.metrics, self.log, clock, self.extras)
            self.admin_port = self._listen(reactor, "the admin API", admin,
                                           admin_site(ctx, self.admin_token), admin_tls)
        except BaseException:
            await self.stop()
            raise
        self._poll_clock(clock, MonotonicTimer(loop), self.clock_poll_s)
        self._watch_hold(reactor, self.hold_timer or MonotonicTimer(loop))
        self.log.event("listening", iso_port=self.iso_port, admin_port=self.admin_port,
                       profile=codec.profile.name,
                       iso_tls=_tls_mode(getattr(config, "tls", None), "iso"),
                       admin_tls=_tls_mode(getattr(config, "tls", None), "admin"))
        return self.iso_port, self.admin_port

    def _start_fronts(self, reactor: Any, count: int, config: Any, listen: tuple[str, int],
                      codec: Codec, committer: GroupCommitter, events: EventBus,
                      iso_tls: Any) -> FrontPool:
        """Bind the ISO socket here and hand it to ``count`` front processes (host.front).

        With ``[tls.iso]`` each front terminates TLS itself: it is given the section's file
        names and modes (``iso_tls``, read here, has already checked the files)."""
        try:
            listener = bind_listener(*listen)
        except OSError as exc:
            raise StartError(f"cannot listen for ISO 8583 on {listen[0]}:{listen[1]}: "
                             f"{exc.strerror or exc}") from None
        limits = ServerLimits.from_config(config)
        settings = FrontSettings(
            index=0, profile=codec.profile.name, family=int(listener.family),
            limits={name: float(getattr(limits, name)) for name in limits.__dataclass_fields__},
            log_file=self.log.path, log_fields=self.log.with_fields,
            tls=_front_tls(config.tls.iso) if iso_tls is not None else None)
        return FrontPool(reactor, count, listener, settings, committer, self.service, codec,
                         self.log, self.metrics, events,
                         faults=self.faults,  # matched in the engine, delivered by the fronts
                         limits=limits)  # the connection caps: kept here, for every front

    def _listen(self, reactor: Any, what: str, where: tuple[str, int], factory: Any,
                tls: Any = None) -> int:
        """Listen for ``factory`` on ``where``, through TLS when ``tls`` (Twisted options)."""
        if tls is not None:
            factory = TlsServerFactory(tls, factory, self.log, what.removeprefix("the "))
        try:
            port = reactor.listenTCP(where[1], factory, interface=where[0])
        except CannotListenError as exc:
            reason = getattr(exc.socketError, "strerror", None) or str(exc.socketError)
            raise StartError(f"cannot listen for {what} on {where[0]}:{where[1]}: "
                             f"{reason}") from None
        self._listeners.append(port)
        return int(port.getHost().port)

    async def _stop_fronts(self, fronts: FrontPool) -> None:
        """Stop the fronts (each answers what it accepted, then closes); kill any still
        running after the longest time a connection's close may take."""
        stopped = fronts.stop()
        timer = MonotonicTimer(asyncio.get_running_loop())
        pending = timer.callLater(2 * fronts.settings.limits["frame_deadline_s"] + 5, fronts.kill)
        await stopped.asFuture(asyncio.get_running_loop())
        if pending.active():
            pending.cancel()

    def _poll_clock(self, clock: Any, timer: MonotonicTimer, every_s: float = 1.0) -> None:
        """Run the clock's due events (cut-offs, funding...) when time moves by itself.

        A frozen simulated clock only moves by command, and the command runs its events, so
        only a real or speed-factor clock is polled. The events touch the database, so they
        run in the service worker like everything else. The next look is when the earliest
        pending event falls due (in real seconds, so a speed-factor clock is looked at often
        enough to run each event close to its simulated instant), at most ``every_s`` away.
        """
        run_due = getattr(clock, "run_due", None)
        speed = float(getattr(clock, "speed", 0) or 0)
        if run_due is None or (getattr(clock, "mode", "") == "simulated" and not speed):
            return
        speed = speed or 1.0  # the real clock

        def tick() -> None:
            if self._stopping is not None or self._worker is None:
                return
            d = self._worker.call(run_due)
            d.addErrback(lambda f: self.log.event("clock_event_error",
                                                  error=f.getErrorMessage()))
            d.addBoth(lambda _: reschedule())

        def reschedule() -> None:
            if self._stopping is None:
                self._clock_poll = timer.callLater(_next_look(clock, speed, every_s), tick)

        reschedule()

    def _watch_hold(self, reactor: Any, timer: Timer) -> None:
        """Look at the ledger chain's hold every few seconds (host.hold_watch): PostgreSQL's
        can be lost with its session while the host serves."""
        from host.ledger.writer_hold import SessionHold  # late: loaded with the service already

        hold = getattr(getattr(self.service, "storage", None), "hold", None)
        if isinstance(hold, SessionHold):
            self.hold_watch = HoldWatch(hold, timer, in_daemon_thread(reactor), self.log,
                                        self._fatal)
            self.hold_watch.start()

    def _fatal(self, code: int) -> None:
        """Stop the host with exit status ``code`` (through :attr:`on_fatal`, when given)."""
        if self.on_fatal is not None:
            self.on_fatal(code)

    def _notifications(self, config: Any, clock: Any, reactor: Any) -> Notifier | None:
        """Wire the settlement desk's outbox to the file copy and the webhook, if any."""
        from host.settlement.notifications import (  # late: SQLAlchemy is heavy
            Notifier,
            WebhookSender,
        )

        outbox = getattr(getattr(self.service, "settlement", None), "outbox", None)
        cfg = getattr(config, "notifications", None)
        if outbox is None or self._worker is None or cfg is None or not (cfg.file or
                                                                          cfg.webhook_url):
            return None  # the outbox table alone needs nothing after the commit
        sender = None
        if cfg is not None and cfg.webhook_url:
            sender = WebhookSender(cfg.webhook_url, outbox, self._worker.call, clock.now,
                                   delays_s=cfg.retry_delays(), timeout_s=cfg.timeout_s,
                                   reactor=reactor)
        notifier = Notifier(outbox, self._worker.call, reactor, sender)
        notifier.attach()
        self.extras.setdefault("notifier", notifier)
        return notifier

    def _wal_failed(self, error: Exception) -> None:
        """The WAL sync failed: what the engine commits from now on could not be acknowledged,
        so the host stops rather than stay up answering nothing (a supervisor restarts it, and
        SQLite's recovery decides what of the unanswered batches survived)."""
        self.log.event("fatal", reason=str(error), exit_code=EXIT_WAL_FAILED)
        self._fatal(EXIT_WAL_FAILED)

    async def stop(self) -> None:
        """Stop listening, answer in-flight requests, close connections and the service.

        Safe to call twice and after a failed :meth:`start`.
        """
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._worker is not None:
            self._worker.stopping = True  # a long clock move stops at its next slice
        if self._clock_poll is not None and self._clock_poll.active():
            self._clock_poll.cancel()
        if self.hold_watch is not None:
            self.hold_watch.stop()

        async def wait(d: Deferred[Any] | None) -> None:
            if d is not None:
                await d.asFuture(loop)

        if "event_stream" in self.extras:  # open event streams would outlive the host
            self.extras["event_stream"].close_all()
        for port in self._listeners:
            await wait(port.stopListening())
        self._listeners.clear()
        if self.factory is not None:
            self.factory.stop_reading()
            await wait(self.factory.drained())
            await wait(self.factory.close_all_or_abort())
        if self.fronts is not None:
            await self._stop_fronts(self.fronts)
        if self.committer is not None and self.committer.batches:
            self.log.event("group_commit", batches=self.committer.batches,
                           requests=self.committer.requests, largest=self.committer.largest,
                           wal_syncs=self.committer.syncs)
        worker = self._worker
        if self.notifier is not None:
            await wait(self.notifier.stop())
            if worker is not None:  # the file copy of whatever the last requests committed
                try:
                    await wait(worker.call(self.notifier.outbox.flush_file))
                except Exception as exc:  # a full disk must not hide the stop
                    self.log.event("notifications_error", error=first_line(exc))
        if worker is not None:
            if self.service is not None:
                try:
                    await wait(worker.call(self.service.close))
                except Exception as exc:  # closing must not hide the stop
                    self.log.event("service_close_error", error=f"{type(exc).__name__}: {exc}")
            worker.stop()
        if self.committer is not None:
            self.committer.close()
        self.log.event("stopped")


def _open_failure(db_url: str, exc: Exception) -> str:
    """The start error of a service that could not be opened: another host's hold on the
    ledger chain is its own sentence, anything else names the database."""
    from host.ledger.writer_hold import ChainBusy  # late: loaded with the service already

    if isinstance(exc, ChainBusy):
        return str(exc)
    return f"cannot open the database {safe_url(db_url)}: {first_line(exc)}"


def _tls_options(config: Any) -> tuple[Any, Any]:
    """Twisted TLS options of the ISO and admin ports (None: plain TCP); :class:`StartError`
    naming the file when one cannot be used."""
    tls = getattr(config, "tls", None)
    if tls is None:
        return None, None
    try:
        return server_options(tls.iso, "[tls.iso]"), server_options(tls.admin, "[tls.admin]")
    except TlsSetupError as exc:
        raise StartError(str(exc)) from None


def _front_tls(section: Any) -> FrontTls:
    """``[tls.iso]`` as the fronts are given it: file names and modes, no key material."""
    return FrontTls(cert_file=section.cert_file, key_file=section.key_file,
                    client_ca_file=section.client_ca_file,
                    require_client_cert=section.require_client_cert,
                    tid_in_certificate=section.tid_in_certificate)


def _tls_mode(tls: Any, port: str) -> str:
    """``off``, ``tls`` or ``mtls`` for the log line that says the host listens."""
    section = getattr(tls, port, None)
    if section is None or not section.enabled:
        return "off"
    return "mtls" if section.require_client_cert else "tls"


def front_processes(config: object) -> int:
    """``[server] front_processes`` (0 when the config has no such section)."""
    return int(getattr(getattr(config, "server", None), "front_processes", 0) or 0)


def wal_overlap(config: object) -> bool:
    """``[host] sqlite_wal_overlap`` (off when the config has no such key)."""
    return bool(getattr(getattr(config, "host", None), "sqlite_wal_overlap", False))


def max_clock_move(config: object) -> timedelta:
    """``[limits] max_clock_move_days`` as a timedelta (the default when not configured)."""
    days = getattr(getattr(config, "limits", None), "max_clock_move_days", None)
    return timedelta(days=days) if isinstance(days, int) else MAX_MOVE


def _next_look(clock: Any, speed: float, every_s: float) -> float:
    """Real seconds until the clock's earliest pending event is due, within [1 ms, every_s]."""
    scheduler = getattr(clock, "scheduler", None)
    pending = scheduler.pending() if scheduler is not None else []
    if not pending:
        return every_s
    ahead = float((pending[0].at - clock.now()).total_seconds()) / speed
    return min(max(ahead, 0.001), every_s)
