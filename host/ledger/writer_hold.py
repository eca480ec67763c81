"""One writing host per ledger chain: the hold a serving host keeps on its chain for its life.

A host's event stream (:mod:`host.event_tail`) reads its chain's rows in id order, and its
settlement jobs (cut-offs, funding, notifications) run for its partition's merchants: both are
right only while **one host writes each chain**, committing the chain's groups in id order
from its one worker. Two hosts on one chain would each see the other's rows, could skip some
for good, and would settle the same merchants twice. So a serving host takes an exclusive
hold on its chain before it answers anything, and a second host for the same chain is refused
(:class:`ChainBusy`: one line naming the chain and, where known, the holder).

- **PostgreSQL**: a session-level advisory lock keyed on :func:`lock_key` (the schema the
  ledger lives in and the chain's name), on a connection of its own that the host keeps open
  and idle for its whole life (outside the engine's pool, so the pool keeps its size). The lock
  goes with the connection: when a host is killed, the server ends its session as soon as it
  sees the socket closed (at once on loopback), and the session's keepalives are shortened so
  that a host whose machine vanished lets go within about half a minute. The lock can also be
  lost while the host lives (a server restart ends the session): :meth:`SessionHold.check`
  looks at the session and takes the lock again on a new one (:mod:`host.hold_watch` calls it).
- **SQLite**: ``flock`` on ``<database>.host-<chain>.lock`` beside the database file, which
  the kernel releases when the process ends however it ends. The file is left in place (a new
  host locks the same file; removing it could let two hosts lock two different files); it
  holds the holder's pid and machine name, for the refusal.

A holder that is going away (killed, its session not yet ended) is waited for, up to
``wait_s``; a holder that is a live process on this machine is given only ``grace_s`` (it may
be dying this instant) before the refusal. Read-only commands (``ledger verify``, ``ledger
anchor``, ``report``) take no hold and run beside a host.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from host.ledger.db import normalise_url

KEY_PREFIX = "poslab ledger chain writer"
"""What every chain's advisory lock key is derived from, before the schema and chain names
(so no key is the schema-creation lock's, :data:`host.ledger.db.SCHEMA_LOCK_ID`, but by a
2**-64 chance)."""
WAIT_S = 10.0
"""Longest wait for a holder that is going away (a killed host's session not yet ended)."""
GRACE_S = 0.5
"""Longest wait for a holder that is a live process on this machine (it may be exiting)."""
POLL_S = 0.05
"""Time between two tries while waiting."""

_APP_NAME = re.compile(r"^poslab-host (\d+)@(.+)$")
_PG_NAME_BYTES = 63  # PostgreSQL keeps that much of application_name
_KEEPALIVES = ("SET tcp_keepalives_idle = 10", "SET tcp_keepalives_interval = 5",
               "SET tcp_keepalives_count = 3")
# The client side of the same: a server that cannot be reached fails the take, or a look at the
# hold (host.hold_watch), within seconds instead of the system's minutes (libpq's names).
_CLIENT_TIMEOUTS = {"connect_timeout": 10, "keepalives_idle": 10, "keepalives_interval": 5,
                    "keepalives_count": 3, "tcp_user_timeout": 30_000}


class ChainBusy(Exception):
    """The chain cannot be held: another host writes it (or, on SQLite, its lock file cannot be
    opened); ``str()`` is the one-line refusal."""


@dataclass(frozen=True)
class Holder:
    """What is known of the host holding a chain (each part None when unknown).

    :ivar pid: its process id; ``box`` the machine it runs on (its host name).
    :ivar backend: PostgreSQL only: the holder's server process id and client address.
    """

    pid: int | None = None
    box: str | None = None
    backend: str | None = None

    def alive_here(self) -> bool:
        """Whether the holder is a live process (not a zombie) on this machine."""
        if self.pid is None or self.box != socket.gethostname():
            return False
        return _alive(self.pid)

    def describe(self) -> str:
        """``pid 1234 on box``, with the PostgreSQL session when known."""
        parts = []
        if self.pid is not None:
            parts.append(f"pid {self.pid}" + (f" on {self.box}" if self.box else ""))
        if self.backend is not None:
            parts.append(self.backend)
        return "; ".join(parts) or "holder unknown"


def refusal(chain: str, holder: Holder) -> ChainBusy:
    """The refusal of a second writer of ``chain``."""
    return ChainBusy(f"ledger chain {chain!r} of this database is already being written by "
                     f"another host ({holder.describe()}); give each host its own "
                     f"[server] partition")


class ChainHold:
    """The hold on one chain, kept until :meth:`release` (or the process's end)."""

    def __init__(self, chain: str, release: Callable[[], None]) -> None:
        self.chain = chain
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        """Let go of the chain (once; later calls do nothing)."""
        release, self._release = self._release, None
        if release is not None:
            release()


def hold_chain(db: str, chain: str, *, wait_s: float = WAIT_S, grace_s: float = GRACE_S,
               sleep: Callable[[float], None] = time.sleep) -> ChainHold:
    """Take the hold on ``chain`` of the database ``db`` (path or URL), waiting for a holder
    that is going away; raise :class:`ChainBusy` when another host keeps it.

    An SQLite database in memory cannot be shared: its hold holds nothing. ``sleep`` is the
    pause between two tries (real time: a host's clock may be simulated)."""
    url = normalise_url(db)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if not database or database == ":memory:" or database.startswith("file:"):
            return ChainHold(chain, lambda: None)
        real = Path(database).resolve()  # one lock file for every path to the database
        return _hold_file(real.with_name(f"{real.name}.host-{chain}.lock"), chain, wait_s,
                          grace_s, sleep)
    return _hold_session(url, chain, wait_s, grace_s, sleep)


def lock_key(schema: str, chain: str) -> int:
    """The advisory lock key of ``chain`` in the ledger of ``schema``: a signed 64-bit integer
    (PostgreSQL's ``bigint``), the same in every process and release. Advisory locks are per
    database; the schema keeps apart the ledgers of two schemas of one database."""
    digest = hashlib.blake2b(f"{KEY_PREFIX}|{schema}|{chain}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _wait(take: Callable[[], bool], holder: Callable[[], Holder], chain: str, wait_s: float,
          grace_s: float, sleep: Callable[[float], None]) -> None:
    """Try ``take`` until it succeeds; raise the refusal once the holder has been waited for
    as long as it deserves (``grace_s`` for a live process here, else ``wait_s``)."""
    started = time.monotonic()
    while not take():
        who = holder()
        if time.monotonic() - started >= (grace_s if who.alive_here() else wait_s):
            raise refusal(chain, who)
        sleep(POLL_S)


def _hold_file(path: Path, chain: str, wait_s: float, grace_s: float,
               sleep: Callable[[float], None]) -> ChainHold:
    """The SQLite hold: ``flock`` on ``path`` (per open file, so two holds in one process
    exclude each other too, which POSIX record locks would not)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ChainBusy(f"cannot open the lock file {path} of ledger chain {chain!r}: "
                        f"{exc.strerror or exc}") from None

    def take() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        _wait(take, lambda: _file_holder(fd), chain, wait_s, grace_s, sleep)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return ChainHold(chain, lambda: os.close(fd))  # closing the file releases its flock


def _file_holder(fd: int) -> Holder:
    """The holder a lock file names (its first line: pid and machine)."""
    pid, _, box = os.pread(fd, 512, 0).decode(errors="replace").strip().partition(" ")
    return Holder(int(pid), box or None) if pid.isdigit() else Holder()


def _hold_session(url: str, chain: str, wait_s: float, grace_s: float,
                  sleep: Callable[[float], None]) -> ChainHold:
    """The PostgreSQL hold: an advisory lock on a connection of its own (:func:`_open_session`)."""
    engine, conn = _open_session(url)
    try:
        key = lock_key(str(conn.execute(text("SELECT current_schema()")).scalar() or ""), chain)
        _wait(lambda: _try_lock(conn, key), lambda: _session_holder(conn, key), chain, wait_s,
              grace_s, sleep)
    except BaseException:
        _close_session(engine, conn)
        raise
    return SessionHold(chain, url, key, engine, conn)


def _open_session(url: str) -> tuple[Engine, Connection]:
    """A connection of its own for the hold, in autocommit (an idle session, never one idle in
    a transaction), named ``poslab-host <pid>@<machine>`` for a refused host's message, with
    short keepalives and never ended for idling."""
    name = f"poslab-host {os.getpid()}@{socket.gethostname()}"
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                           connect_args={"application_name": name[:_PG_NAME_BYTES],
                                         **_CLIENT_TIMEOUTS})
    try:
        conn = engine.connect()
    except BaseException:
        engine.dispose()
        raise
    try:
        for statement in _KEEPALIVES:
            conn.execute(text(statement))
        if (conn.dialect.server_version_info or (0,)) >= (14,):
            conn.execute(text("SET idle_session_timeout = 0"))  # never ended for idling
    except BaseException:
        _close_session(engine, conn)
        raise
    return engine, conn


def _try_lock(conn: Connection, key: int) -> bool:
    """One try at advisory lock ``key`` on ``conn``'s session."""
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())


def _close_session(engine: Engine, conn: Connection) -> None:
    """Close the hold's connection (a session already ended raises nothing) and its engine."""
    try:
        conn.close()
    except SQLAlchemyError:
        pass  # closing a broken connection: nothing is left to close
    finally:
        engine.dispose()


@dataclass(frozen=True)
class HoldCheck:
    """What a look at a :class:`SessionHold` found.

    :ivar state: ``held`` (the session is alive, its lock with it); ``retaken`` (the session
        had gone, the lock is held again on a new one); ``taken`` (the session had gone and
        another session holds the lock now: another host may be writing the chain);
        ``unreachable`` (the session has gone and no new one could be opened).
    :ivar reason: why the session was lost (the database's error, one line); empty when held.
    :ivar holder: with ``taken``, the session that holds the lock now.
    """

    state: str
    reason: str = ""
    holder: Holder | None = None


class SessionHold(ChainHold):
    """The PostgreSQL hold: lost with its session (a server restart, an administrator's
    ``pg_terminate_backend``) while the host lives, so :meth:`check` looks at it and takes it
    again when it has gone. :meth:`check` runs in a thread of its own, :meth:`release` in the
    worker: a lock keeps them off the connection at the same time, and a release during a
    check (the host stopping) leaves the close to the check, so it never waits for it."""

    def __init__(self, chain: str, url: str, key: int, engine: Engine, conn: Connection) -> None:
        super().__init__(chain, self._let_go)
        self._url = url
        self._key = key
        self._session: tuple[Engine, Connection] | None = (engine, conn)
        self._busy = threading.Lock()
        self._released = False
        self._lost = ""  # why the session went (its error's first line), once it has

    def check(self) -> HoldCheck:
        """Look at the hold's session (``SELECT 1``); when it has gone, try once to take the
        lock again on a new session. Blocking I/O: never on the reactor thread."""
        with self._busy:
            found = self._look()
        if self._released:  # released while this check ran: close what it left
            self._close_if_idle()
        return found

    def _look(self) -> HoldCheck:
        """The check itself (the caller holds ``_busy``)."""
        if self._released:
            return HoldCheck("held")
        if self._session is not None:
            engine, conn = self._session
            try:
                conn.execute(text("SELECT 1"))
                return HoldCheck("held")
            except SQLAlchemyError as exc:
                self._lost = _why(exc)
            _close_session(engine, conn)
            self._session = None
        return self._take_again(self._lost)  # lost now, or at a check that could not retake

    def _take_again(self, reason: str) -> HoldCheck:
        """One try at the lock on a new session (the caller holds ``_busy``)."""
        try:
            engine, conn = _open_session(self._url)
        except SQLAlchemyError:
            return HoldCheck("unreachable", reason)
        try:
            if _try_lock(conn, self._key):
                self._session = (engine, conn)
                return HoldCheck("retaken", reason)
            holder = _session_holder(conn, self._key)
        except SQLAlchemyError:
            _close_session(engine, conn)
            return HoldCheck("unreachable", reason)
        _close_session(engine, conn)
        return HoldCheck("taken", reason, holder)

    def _let_go(self) -> None:
        self._released = True
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        """Unlock and close the session unless a check is using it (that check closes it)."""
        if not self._busy.acquire(blocking=False):
            return
        try:
            session, self._session = self._session, None
            if session is None:
                return
            engine, conn = session
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            except SQLAlchemyError:
                pass  # the session is gone (a server restart, say), and its lock with it
            _close_session(engine, conn)
        finally:
            self._busy.release()


def _why(exc: SQLAlchemyError) -> str:
    """The first line of the driver's message (SQLAlchemy's own adds notes and a link)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _session_holder(conn: Connection, key: int) -> Holder:
    """The session holding advisory lock ``key`` in this database: its server pid, client
    address and (when it is a poslab host) host pid and machine."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    row: Any = conn.execute(text(
        "SELECT l.pid, a.application_name, host(a.client_addr) AS addr"
        " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.classid::bigint = :hi AND l.objid::bigint = :lo"),
        {"hi": unsigned >> 32, "lo": unsigned & 0xFFFF_FFFF}).first()
    if row is None:  # let go between the try and this look
        return Holder()
    backend = f"PostgreSQL backend {row.pid}" + (f" from {row.addr}" if row.addr else "")
    named = _APP_NAME.match(row.application_name or "")
    if named is None:
        return Holder(backend=backend)
    return Holder(int(named.group(1)), named.group(2), backend)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has let go of its locks and
    its sockets)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # it has just gone; or there is no /proc: trust the signal check
        return not Path("/proc").is_dir()
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
