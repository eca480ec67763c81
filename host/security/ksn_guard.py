"""DUKPT replay guard: a KSN counter is used for one message only.

A DUKPT terminal advances its transaction counter for every message, so the host can refuse a
message whose counter it has already accepted for another message: an attacker who captured a
MAC'd request cannot change its content, but without this check could resend it as a new
transaction with a fresh STAN. A retransmission of the same bytes (the terminal resending after a
timeout) is not a replay and passes; the de-duplication stage then answers it with the stored
response.

Per device (the KSN without its counter) the guard keeps the highest counter accepted and the
digests of the last :data:`WINDOW` accepted messages. It lives in memory: a restarted host
accepts the first counter it sees again (documented in docs/keys-and-macs.md).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

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

    def admit(self, ksn: Ksn, message: bytes) -> bool:
        """True for a counter above every counter the device has used, or for the very message
        accepted under this counter before (a retransmission); False for a replayed counter."""
        device, counter = str(ksn.with_counter(0)), ksn.counter
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
