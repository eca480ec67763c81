"""Deterministic crash points for crash-safety tests: the host SIGKILLs itself at a named spot.

``POSLAB_CRASHPOINT`` names the spot:

``before_commit``             a request's ledger writes are done, COMMIT not yet issued
``after_commit_before_send``  committed, the response not yet written to the socket
``after_send``                the response written and flushed to the socket

``POSLAB_CRASHPOINT_SKIP=N`` lets the first N passes through that spot go by (so a test can
let earlier requests through first). The variables are read once at import; when unset each
hook costs one comparison. SIGKILL (not an exception, not ``sys.exit``) is the point: nothing
gets to clean up, exactly like ``kill -9`` or the OOM killer.
"""

from __future__ import annotations

import os
import signal
from typing import Any

ENV = "POSLAB_CRASHPOINT"
SKIP_ENV = "POSLAB_CRASHPOINT_SKIP"
POINTS = ("before_commit", "after_commit_before_send", "after_send")


class CrashpointError(ValueError):
    """The environment names an unknown crash point."""


def _read() -> tuple[str | None, int]:
    point = os.environ.get(ENV) or None
    if point is not None and point not in POINTS:
        raise CrashpointError(f"{ENV}={point!r} is not one of: {', '.join(POINTS)}")
    skip = os.environ.get(SKIP_ENV, "0")
    if not skip.isdigit():
        raise CrashpointError(f"{SKIP_ENV}={skip!r} is not a whole number")
    return point, int(skip)


try:
    ACTIVE, _SKIP = _read()
except CrashpointError:  # reported by validate_environment() at start-up, not on import
    ACTIVE, _SKIP = None, 0


_ENGINE_PID: int | None = None


def crash_with_engine(pid: int) -> None:
    """In a front process (:mod:`host.front`): a crash point kills the engine ``pid`` too, so
    that the crash is the whole host's, as in a one-process host."""
    global _ENGINE_PID
    _ENGINE_PID = pid


def validate_environment() -> None:
    """Raise :class:`CrashpointError` for a bad setting (the CLI calls this at start-up)."""
    _read()


def hit(point: str, transport: Any = None) -> None:
    """Die here with SIGKILL when ``point`` is the armed crash point (after the skips).

    ``transport``: push its buffered bytes into the kernel first (Twisted buffers writes until
    the next loop turn), so ``after_send`` really means the answer left the process.
    """
    global _SKIP
    if ACTIVE != point:
        return
    if _SKIP > 0:
        _SKIP -= 1
        return
    flush = getattr(transport, "doWrite", None)
    if flush is not None:
        flush()
    if _ENGINE_PID is not None:
        os.kill(_ENGINE_PID, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def install_before_commit(engine: Any) -> None:
    """Arm ``before_commit`` on a SQLAlchemy engine: die as a transaction that wrote commits.

    Read-only transactions and rolled-back ones do not count. Installs nothing unless
    ``before_commit`` is the armed point. On SQLite and PostgreSQL the write is detected at
    COMMIT time from the connection itself, with no cursor listener: a cursor listener turns
    off the request path's prepared fast path (host/ledger/prepared.py), and the crash must
    hit the statements production runs.
    """
    if ACTIVE != "before_commit" or engine is None:
        return
    from sqlalchemy import event

    name = engine.dialect.name
    if name == "sqlite":
        def _begin(conn: Any) -> None:
            conn.info["poslab_changes"] = conn.connection.dbapi_connection.total_changes

        def _wrote(conn: Any) -> bool:
            # total_changes: rows inserted, updated or deleted on this connection so far.
            base = conn.info.pop("poslab_changes", None)
            return base is not None and conn.connection.dbapi_connection.total_changes > base

        event.listen(engine, "begin", _begin)
    elif name == "postgresql":
        def _wrote(conn: Any) -> bool:
            # PostgreSQL assigns a transaction id at the first write, not before.
            cur = conn.connection.dbapi_connection.cursor()
            try:
                cur.execute("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
                return bool(cur.fetchone()[0])
            finally:
                cur.close()
    else:  # other backends: watch the statements (costs the fast path; poslab uses neither)
        def _mark(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
                conn.info["poslab_wrote"] = True

        def _wrote(conn: Any) -> bool:
            return bool(conn.info.pop("poslab_wrote", False))

        def _rollback(conn: Any) -> None:
            conn.info.pop("poslab_wrote", None)

        event.listen(engine, "before_cursor_execute", _mark)
        event.listen(engine, "rollback", _rollback)

    def _commit(conn: Any) -> None:
        if _wrote(conn):
            hit("before_commit")

    event.listen(engine, "commit", _commit)
