"""The terminal ids a served classroom hands out, one to each browser tab.

A pool is written ``TERM0001-TERM0008`` (a range: same prefix, numbered suffix of the same
width), ``LAB00001,LAB00007`` (a list), or both mixed (``TERM0001-TERM0004,SPARE001``).

Each browser tab runs its own terminal process; that process claims the first free id by
taking an exclusive ``flock`` on ``LOCK_DIR/<TID>.lock``. The kernel drops the lock when the
process ends, however it ends (closed tab, crash, ``kill -9``), so an id is never left taken
by a terminal that is gone and no server-side bookkeeping can drift from the processes.
"""

from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass
from pathlib import Path

TID_LENGTH = 8
DEFAULT_POOL = "TERM0001-TERM0008"
_RANGE = re.compile(r"^([A-Za-z]*)(\d+)-([A-Za-z]*)(\d+)$")


class PoolError(ValueError):
    """A pool spec is malformed; the text says which part and why."""


def parse_pool(spec: str) -> tuple[str, ...]:
    """The ids of ``spec`` in order, or :class:`PoolError`."""
    tids: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            raise PoolError(f"empty entry in TID pool {spec!r}")
        tids.extend(_expand(part))
    for tid in tids:
        if len(tid) != TID_LENGTH or not tid.isascii() or not tid.isalnum():
            raise PoolError(f"{tid!r} is not a terminal id: ids are {TID_LENGTH} letters or "
                            "digits (they name the terminal's data folder)")
    seen: set[str] = set()
    for tid in tids:
        if tid in seen:
            raise PoolError(f"{tid} appears twice in TID pool {spec!r}")
        seen.add(tid)
    return tuple(tids)


def _expand(part: str) -> list[str]:
    if "-" not in part:
        return [part]
    match = _RANGE.match(part)
    if match is None:
        raise PoolError(f"{part!r}: a range is FIRST-LAST with numbered ids, "
                        "such as TERM0001-TERM0008")
    prefix, first, last_prefix, last = match.groups()
    if last_prefix != prefix or len(first) != len(last):
        raise PoolError(f"{part!r}: both ends of a range need the same prefix and digit count")
    if int(last) < int(first):
        raise PoolError(f"{part!r}: the range ends before it starts")
    return [f"{prefix}{n:0{len(first)}d}" for n in range(int(first), int(last) + 1)]


def describe(tids: tuple[str, ...]) -> str:
    """A short name for the pool in messages: ``TERM0001..TERM0008 (8 ids)``."""
    if len(tids) == 1:
        return tids[0]
    return f"{tids[0]}..{tids[-1]} ({len(tids)} ids)"


@dataclass
class Claim:
    """One id held by this process until :meth:`release` or the process ends."""

    tid: str
    _fd: int

    def release(self) -> None:
        """Give the id back (closing the file drops the lock)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def claim(tids: tuple[str, ...], lock_dir: Path) -> Claim | None:
    """The first id of ``tids`` no other live process holds, or ``None`` when all are taken."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    for tid in tids:
        fd = os.open(lock_dir / f"{tid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return Claim(tid, fd)
    return None
