"""DUKPT replay guard: a KSN counter is used for one message only.

A DUKPT terminal advances its transaction counter for every message, so the host can refuse a
message whose counter it has already accepted for another message: an attacker who captured a
MAC'd request cannot change its content, but without this check could resend it as a new
transaction with a fresh STAN. A retransmission of the same bytes (the terminal resending after a
timeout) is not a replay and passes; the de-duplication stage then answers it with the stored
response.

Per device (the KSN without its counter) the guard keeps in memory the highest counter accepted
and the digests of the last :data:`WINDOW` accepted messages; the decision is taken there,
before the request touches the database. The highest counter and the digest of its message are
also kept in the ``ksn_counter`` table (:mod:`host.security.tables`), one row per device:

* :meth:`KsnGuard.save` writes them in the request's own write transaction (or its savepoint
  in a group commit), so the counter is durable by the time the answer leaves, as the
  transaction's other effects are; a request that is rolled back takes its row with it, and
  its retransmission still passes on the digest kept in memory. The write only ever raises a
  device's counter, so it is idempotent and a retried transaction writes it again harmlessly.
* :meth:`KsnGuard.load` reads the table when the host starts: after a restart a higher counter
  passes, the last message resent under its counter passes (and gets its stored answer), and
  any other message under that counter or a lower one is refused. Older retransmissions are
  recognised only within one run (their digests are not stored).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from host.ledger.prepared import Prepared
from host.security.tables import ksn_counter
from protocol.security import Ksn

WINDOW = 256
"""Accepted messages remembered per device for retransmission checks."""


class KsnGuard:
    """Thread-safe record of the counters each DUKPT device has used."""

    def __init__(self, window: int = WINDOW) -> None:
        self._lock = threading.Lock()
        self._window = window
        self._last: dict[str, int] = {}
        self._seen: dict[str, OrderedDict[int, bytes]] = {}

    def load(self, conn: Connection) -> None:
        """Take each device's last counter and message digest from the table (at start)."""
        rows = conn.execute(select(ksn_counter.c.device, ksn_counter.c.counter,
                                   ksn_counter.c.digest)).all()
        with self._lock:
            for device, counter, digest in rows:
                if counter > self._last.get(device, -1):
                    self._last[device] = counter
                    self._seen.setdefault(device, OrderedDict())[counter] = \
                        bytes.fromhex(digest)

    def admit(self, ksn: Ksn, message: bytes) -> bool:
        """True for a counter above every counter the device has used, or for the very message
        accepted under this counter before (a retransmission); False for a replayed counter."""
        device, counter = _device(ksn), ksn.counter
        digest = hashlib.sha256(message).digest()
        with self._lock:
            seen = self._seen.setdefault(device, OrderedDict())
            if counter in seen:
                return seen[counter] == digest
            if counter <= self._last.get(device, -1):
                return False
            self._last[device] = counter
            seen[counter] = digest
            while len(seen) > self._window:
                seen.popitem(last=False)
            return True

    @staticmethod
    def save(conn: Connection, ksn: Ksn, message: bytes, now_ms: int) -> None:
        """Store ``message``'s counter as its device's last, in the caller's transaction,
        unless the device's stored counter is already as high."""
        upsert = _RAISE_ONLY["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
        upsert.run(conn, {"device": _device(ksn), "counter": ksn.counter,
                          "digest": hashlib.sha256(message).hexdigest(), "updated_ms": now_ms})


def _device(ksn: Ksn) -> str:
    """A device's key: its KSN with the transaction counter zeroed."""
    return str(ksn.with_counter(0))


def _raise_only(insert: Callable[[Table], Any]) -> Prepared:
    """An upsert that replaces a device's row only with a higher counter: one statement, so
    two hosts on one PostgreSQL database cannot lower a device's counter either."""
    stmt = insert(ksn_counter)
    new = stmt.excluded
    return Prepared(stmt.on_conflict_do_update(
        index_elements=[ksn_counter.c.device],
        set_={"counter": new.counter, "digest": new.digest, "updated_ms": new.updated_ms},
        where=ksn_counter.c.counter < new.counter))


# Built once: SQLAlchemy builds and executes a statement for ~170 µs, a prepared one far less.
_RAISE_ONLY = {"postgresql": _raise_only(postgresql.insert), "sqlite": _raise_only(sqlite.insert)}
