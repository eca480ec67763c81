"""Keyed MACs for the ledger chain and card hashes: pure hashing, no database.

Kept apart from :mod:`host.ledger.chain` so the host's pure modules (card hashing in
:mod:`host.cards`) can use it without reaching the ledger's database code.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any


class UnknownSchemeError(ValueError):
    """A MAC scheme this module does not know."""


def keyed_mac(key: bytes, scheme: str) -> Callable[[bytes], str]:
    """``data -> hex MAC`` under ``key``. The keyed state is built once and copied per MAC:
    HMAC's two key blocks (or BLAKE2b's key block) are then hashed once, not per call."""
    if scheme == "blake2b":
        base: Any = hashlib.blake2b(key=key, digest_size=32)
    elif scheme == "hmac-sha256":
        base = hmac.new(key, digestmod=hashlib.sha256)
        # The C object under Python's HMAC wrapper, when OpenSSL provides it: copying it is
        # a third of the wrapper's cost and gives the same digest.
        base = getattr(base, "_hmac", None) or base
    else:
        raise UnknownSchemeError(f"unknown chain MAC scheme {scheme!r}")
    copy = base.copy

    def mac(data: bytes) -> str:
        h = copy()
        h.update(data)
        return str(h.hexdigest())

    return mac


