"""The chain key: a host secret kept outside the database, and the MACs made with it.

Every posting group's ``hash``, the chain head, and the MAC column of each history row
(transactions, stored replies, audit events) is an HMAC-SHA256 under this key. Someone who can
write to the database but cannot read the key file cannot produce a value that verifies, so
they cannot re-hash the chain after editing it or append a group of their own.

The key lives in a file of 64 hex characters (32 random bytes), never in the database and never
in a log or report. Where it is found (first match wins):

1. ``$POSLAB_CHAIN_KEY_FILE``;
2. ``[host] chain_key_file`` in the config (relative to the working directory);
3. beside an SQLite database: ``<database file>.chain-key``; for PostgreSQL:
   ``poslab-chain.key`` in the working directory.

The host generates the file (mode 0600) on first start when it is missing and logs its path;
``poslab-host ledger verify`` only reads it. :attr:`ChainKey.check` -- a MAC over a fixed text,
stored in the chain head -- tells apart "written with another key" from "every row altered".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

KEY_FILE_ENV = "POSLAB_CHAIN_KEY_FILE"
# Built once: json.dumps with non-default separators builds a new encoder on every call.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
PG_KEY_FILE = "poslab-chain.key"
_KEY_BYTES = 32


class ChainKeyError(Exception):
    """The chain key file is missing, unreadable or malformed; ``str()`` names the file."""


class ChainKey:
    """An HMAC-SHA256 key; ``repr``/``str`` never show it."""

    __slots__ = ("_key", "path", "check")

    def __init__(self, key: bytes, path: Path | None = None) -> None:
        if len(key) < 16:
            raise ChainKeyError("a chain key needs at least 16 bytes")
        self._key = key
        self.path = path
        self.check = self.mac_text("poslab chain key check v1")
        """MAC over a fixed text: identifies the key without revealing it."""

    def __repr__(self) -> str:
        return f"ChainKey(path={str(self.path)!r})"

    __str__ = __repr__

    def mac_text(self, text: str) -> str:
        """Hex HMAC-SHA256 of ``text``."""
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def mac(self, doc: Any) -> str:
        """Hex HMAC-SHA256 of ``doc`` as compact JSON (lists, strings, ints, None)."""
        return hmac.new(self._key, _ENCODE(doc).encode(), hashlib.sha256).hexdigest()


def key_path(db_url: str, configured: str | None = None) -> Path:
    """Where the chain key of the database ``db_url`` is kept (see the module docstring)."""
    from_env = os.environ.get(KEY_FILE_ENV)
    if from_env:
        return Path(from_env).expanduser()
    if configured:
        return Path(configured).expanduser()
    from host.ledger.db import normalise_url

    url = normalise_url(db_url)
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite:///") + ".chain-key")
    return Path(PG_KEY_FILE)


def read_key(path: Path) -> ChainKey:
    """Read the key file; raises :class:`ChainKeyError` naming the file and the problem."""
    try:
        text = path.read_text("ascii").strip()
    except FileNotFoundError:
        raise ChainKeyError(f"{path}: no chain key file (the host creates it on first start; "
                            f"set {KEY_FILE_ENV} or [host] chain_key_file to point at it)"
                            ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ChainKeyError(f"{path}: cannot read the chain key file "
                            f"({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ChainKeyError(f"{path}: the chain key file must hold hex digits only") from None
    if len(key) < 16:
        raise ChainKeyError(f"{path}: the chain key must be at least 32 hex digits")
    return ChainKey(key, path)


def ensure_key(path: Path) -> tuple[ChainKey, bool]:
    """The key in ``path``, generating it (mode 0600) when the file does not exist.

    Returns ``(key, created)``. Creation is exclusive, so two hosts starting at once on the
    same database end up with the same key."""
    if path.exists():
        return read_key(path), False
    # Written to a private temporary file, then linked into place: the link fails if another
    # process got there first, and nobody ever reads a half-written key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(_KEY_BYTES) + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
            created = True
        except FileExistsError:
            created = False
        finally:
            tmp.unlink()
    except OSError as exc:
        raise ChainKeyError(f"{path}: cannot create the chain key file ({exc.strerror})"
                            ) from None
    return read_key(path), created
