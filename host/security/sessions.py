"""Working keys in host memory, per terminal, and the key each pending response is MAC'd with.

Working keys are deliberately not persisted: they are session keys, a terminal gets new ones
on every sign-on, and a restarted host that has forgotten them answers "sign on first" until
the terminal signs on again, as a real host that lost its session state would. Nothing
secret is then ever written to disk but the sealed TMKs.

A request whose MAC verified leaves the key its response is to be MAC'd with (the session's
MAC key, or the DUKPT response MAC key of that KSN) under (TID, STAN, response MTI); the
response's encoder takes it. Requests that are never answered (a silent card, a dropped
connection) would leave keys behind, so at most :data:`MAX_PENDING` are kept, oldest dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from protocol.messages import response_mti
from protocol.security import Key, WorkingKeys

MAX_PENDING = 10_000


class Sessions:
    """Thread-safe: the worker thread installs and reads keys, the event loop seals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, WorkingKeys] = {}
        self._pending: OrderedDict[tuple[str, str, str], Key] = OrderedDict()

    def install(self, tid: str, keys: WorkingKeys) -> None:
        """``keys`` replace whatever ``tid`` had: messages under the old ones fail from now."""
        with self._lock:
            self._keys[tid] = keys

    def drop(self, tid: str) -> None:
        """Forget ``tid``'s keys (sign-off)."""
        with self._lock:
            self._keys.pop(tid, None)

    def keys(self, tid: str) -> WorkingKeys | None:
        """``tid``'s current working keys, or None when it has not signed on."""
        with self._lock:
            return self._keys.get(tid)

    def expect_response(self, tid: str, stan: str, request_mti: str, key: Key) -> None:
        """The response to this request is to be MAC'd under ``key``."""
        with self._lock:
            entry = (tid, stan, response_mti(request_mti))
            self._pending[entry] = key
            self._pending.move_to_end(entry)
            while len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)

    def owes_mac(self, tid: str, stan: str, mti: str) -> bool:
        """True when this response is to be MAC'd (:meth:`response_key` would give a key)."""
        with self._lock:
            return (tid, stan, mti) in self._pending

    def response_key(self, tid: str, stan: str, mti: str) -> Key | None:
        """The key to MAC this response with (once), or None when it gets no MAC."""
        with self._lock:
            return self._pending.pop((tid, stan, mti), None)
