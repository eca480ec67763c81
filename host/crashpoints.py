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


def validate_environment() -> None:
    """Raise :class:`CrashpointError` for a bad setting (the CLI calls this at start-up)."""
    _read()


def hit(point: str) -> None:
    """Die here with SIGKILL when ``point`` is the armed crash point (after the skips)."""
    global _SKIP
    if ACTIVE != point:
        return
    if _SKIP > 0:
        _SKIP -= 1
        return
    os.kill(os.getpid(), signal.SIGKILL)
