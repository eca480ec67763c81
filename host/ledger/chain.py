"""The chain key: a host secret kept outside the database, and the MACs made with it.

Every posting group's ``hash``, the chain head, and the MAC column of each history row
(transactions, stored replies, audit events, settlements, refund postings) is a keyed MAC under
this key. Someone who can write to the database but cannot read the key file cannot produce a
value that verifies, so they cannot re-hash the chain after editing it or append a group of
their own.

Two MAC schemes, one per ledger, told apart by the key check stored in the chain head:

``blake2b`` (scheme 2, every ledger created from now on)
    keyed BLAKE2b with a 32-byte digest (:func:`hashlib.blake2b`, the key as its ``key``):
    a MAC by design, about half the CPU of HMAC-SHA256 for the host's short documents.
``hmac-sha256`` (scheme 1)
    HMAC-SHA256, the ledgers written before scheme 2; they are extended and verified with it,
    never rewritten (re-MACing history would make the old part only as good as the moment of
    conversion).

The key lives in a file of 64 hex characters (32 random bytes), never in the database and never
in a log or report. Where it is found (first match wins):

1. ``$POSLAB_CHAIN_KEY_FILE``;
2. ``[host] chain_key_file`` in the config (relative to the working directory);
3. beside an SQLite database: ``<database file>.chain-key``; for PostgreSQL:
   ``poslab-chain.key`` in the working directory.

The host generates the file (mode 0600) on first start when it is missing and logs its path;
``poslab-host ledger verify`` only reads it. :attr:`ChainKey.check` -- a MAC over a fixed text,
stored in the chain head -- tells apart "written with another key" from "every row altered",
and which scheme the ledger uses (:meth:`ChainKey.adopt`).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

import msgspec

from host.ledger.keyed import keyed_mac

KEY_FILE_ENV = "POSLAB_CHAIN_KEY_FILE"
# Built once: json.dumps with non-default separators builds a new encoder on every call.
_JSON = json.JSONEncoder(separators=(",", ":")).encode
_FAST = msgspec.json.encode
_DEL = b"\x7f"  # json escapes DEL (as \\u007f), msgspec writes it as it is


def _encode(doc: Any) -> bytes:
    """``doc`` as the compact JSON the MACs have always covered (json, ASCII-only).

    msgspec gives the same bytes ten times faster for ASCII text, which is what the MAC'd
    documents hold; for anything else (non-ASCII text, DEL) json's own output is used."""
    data = _FAST(doc)
    if data.isascii() and _DEL not in data:
        return data
    return _JSON(doc).encode()

PG_KEY_FILE = "poslab-chain.key"
_KEY_BYTES = 32


class ChainKeyError(Exception):
    """The chain key file is missing, unreadable or malformed; ``str()`` names the file."""


SCHEMES = ("blake2b", "hmac-sha256")
"""The MAC schemes, newest (the one a new ledger gets) first."""
_CHECK_TEXT = {"hmac-sha256": "poslab chain key check v1", "blake2b": "poslab chain key check v2"}


class ChainKey:
    """A chain key and the MAC scheme of the ledger it writes; ``repr``/``str`` never show
    the key."""

    __slots__ = ("_key", "path", "check", "scheme", "_mac")

    def __init__(self, key: bytes, path: Path | None = None, scheme: str = SCHEMES[0]) -> None:
        if len(key) < 16:
            raise ChainKeyError("a chain key needs at least 16 bytes")
        self._key = key
        self.path = path
        self.scheme = scheme
        """The MAC scheme in use (see the module docstring)."""
        self._mac = keyed_mac(key, scheme)
        self.check = self.mac_text(_CHECK_TEXT[scheme])
        """MAC over a fixed text: identifies the key and the scheme without revealing it."""

    def __repr__(self) -> str:
        return f"ChainKey(path={str(self.path)!r}, scheme={self.scheme!r})"

    __str__ = __repr__

    def adopt(self, check: str) -> bool:
        """Switch to the scheme whose key check is ``check`` (the ledger's, from its head);
        False, unchanged, when no scheme of this key gives it (another key wrote the ledger)."""
        for scheme in SCHEMES:
            mac = keyed_mac(self._key, scheme)
            if hmac.compare_digest(mac(_CHECK_TEXT[scheme].encode()), check):
                self.scheme, self._mac, self.check = scheme, mac, check
                return True
        return False

    def mac_text(self, text: str) -> str:
        """Hex MAC of ``text``."""
        return self._mac(text.encode())

    def mac(self, doc: Any) -> str:
        """Hex MAC of ``doc`` as compact JSON (lists, strings, ints, None)."""
        return self._mac(_encode(doc))


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
