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
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from host.admin import AdminContext, admin_site
from host.logs import MessageLog
from host.metrics import Metrics
from host.server import IsoServerFactory, ServerLimits
from host.timers import MonotonicTimer
from host.worker import ServiceWorker
from protocol import Codec

ServiceFactory = Callable[..., Any]
"""``(config, db_url, clock, *, strict, allow_unknown_terminals) -> service``."""

TOKEN_ENV = "POSLAB_ADMIN_TOKEN"


def resolve_admin_token(explicit: str | None, config: object) -> str:
    """The admin token: explicit, else ``$POSLAB_ADMIN_TOKEN``, else ``host.admin_token`` from
    the config, else a fresh random one."""
    configured = getattr(getattr(config, "host", None), "admin_token", None)
    for candidate in (explicit, os.environ.get(TOKEN_ENV), configured):
        if candidate:
            return str(candidate)
    return secrets.token_urlsafe(24)


def _default_service_factory() -> ServiceFactory:
    from host.service import HostService  # imported late: its database stack is heavy

    factory: ServiceFactory = HostService
    return factory


class HostRuntime:
    """One running host: service, worker thread, ISO listener and admin listener.

    :ivar iso_port: the bound ISO 8583 port (after :meth:`start`).
    :ivar admin_port: the bound admin API port.
    :ivar admin_token: the bearer token the admin API accepts.
    :ivar extras: objects handed to admin route modules (``AdminContext.extras``).
    """

    def __init__(self, *, log: MessageLog | None = None,
                 service_factory: ServiceFactory | None = None) -> None:
        self.log = log or MessageLog()
        self.metrics = Metrics()
        self.service_factory = service_factory
        self.service: Any = None
        self.factory: IsoServerFactory | None = None
        self.iso_port = 0
        self.admin_port = 0
        self.admin_token = ""
        self.extras: dict[str, Any] = {}
        self._worker: ServiceWorker | None = None
        self._listeners: list[Any] = []
        self._stopping: asyncio.Future[None] | None = None

    async def start(self, config: Any, db_url: str, clock: Any,
                    listen: tuple[str, int] = ("127.0.0.1", 0),
                    admin: tuple[str, int] = ("127.0.0.1", 0),
                    profile: str = "iso87-ascii", strict: bool = False,
                    allow_unknown_terminals: bool = False,
                    admin_token: str | None = None) -> tuple[int, int]:
        """Build the service, listen on both sockets, return ``(iso_port, admin_port)``.

        Raises what went wrong (unknown profile ``ValueError``, the service's database error,
        ``twisted.internet.error.CannotListenError``) after undoing what was started.
        """
        from twisted.internet import reactor as _reactor

        reactor: Any = _reactor  # the installed reactor's interfaces are not typed usefully
        loop = asyncio.get_running_loop()
        codec = Codec(profile)
        factory_fn = self.service_factory or _default_service_factory()
        self._worker = worker = ServiceWorker(reactor)
        worker.start()
        try:
            self.service = await worker.call(
                factory_fn, config, db_url, clock, strict=strict,
                allow_unknown_terminals=allow_unknown_terminals).asFuture(loop)
            self.factory = IsoServerFactory(self.service, worker, codec,
                                            ServerLimits.from_config(config), self.log,
                                            self.metrics, MonotonicTimer(loop))
            iso = reactor.listenTCP(listen[1], self.factory, interface=listen[0])
            self._listeners.append(iso)
            self.iso_port = iso.getHost().port
            self.admin_token = resolve_admin_token(admin_token, config)
            ctx = AdminContext(self.service, worker, self.metrics, self.log, clock, self.extras)
            web = reactor.listenTCP(admin[1], admin_site(ctx, self.admin_token),
                                    interface=admin[0])
            self._listeners.append(web)
            self.admin_port = web.getHost().port
        except BaseException:
            await self.stop()
            raise
        self.log.event("listening", iso_port=self.iso_port, admin_port=self.admin_port,
                       profile=codec.profile.name)
        return self.iso_port, self.admin_port

    async def stop(self) -> None:
        """Stop listening, answer in-flight requests, close connections and the service.

        Safe to call twice and after a failed :meth:`start`.
        """
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        loop = asyncio.get_running_loop()

        async def wait(d: Deferred[Any] | None) -> None:
            if d is not None:
                await d.asFuture(loop)

        for port in self._listeners:
            await wait(port.stopListening())
        self._listeners.clear()
        if self.factory is not None:
            await wait(self.factory.drained())
            await wait(self.factory.close_all())
        worker = self._worker
        if worker is not None:
            if self.service is not None:
                try:
                    await wait(worker.call(self.service.close))
                except Exception as exc:  # closing must not hide the stop
                    self.log.event("service_close_error", error=f"{type(exc).__name__}: {exc}")
            worker.stop()
        self.log.event("stopped")
