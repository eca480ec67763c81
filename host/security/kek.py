"""The host key-encryption key: how a generated TMK is stored without ever being in clear.

The KEK is derived from the ledger's chain key file (one secret file to keep and back up, see
docs/tamper-evidence.md) with its own label, so it is a different key from the one that MACs
the ledger. A TMK is sealed with AES-256-GCM under it; the terminal id and the algorithm are
the associated data, so a sealed key copied to another terminal's row, or relabelled, does not
open.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from host.ledger import ChainKey
from protocol.security import Key, KeyAlgorithm, SecurityError

_LABEL = "poslab terminal master key encryption key v1"
_NONCE = 12


class KeyEncryptionKey:
    """Seals and opens terminal master keys; ``repr`` never shows the key."""

    __slots__ = ("_aead",)

    def __init__(self, chain_key: ChainKey) -> None:
        self._aead = AESGCM(bytes.fromhex(chain_key.mac_text(_LABEL)))

    def __repr__(self) -> str:
        return "KeyEncryptionKey()"

    def seal(self, tid: str, key: Key) -> str:
        """``key`` encrypted for ``tid``, as hex text (nonce, ciphertext and tag)."""
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._aead.encrypt(nonce, key.get_secret_value(), _context(tid, key.algorithm))
        return (nonce + sealed).hex()

    def open(self, tid: str, algorithm: KeyAlgorithm, sealed: str) -> Key:
        """The key :meth:`seal` sealed for ``tid``.

        :raises SecurityError: the text was altered, belongs to another terminal or algorithm,
            or was sealed under another chain key file.
        """
        try:
            data = bytes.fromhex(sealed)
            clear = self._aead.decrypt(data[:_NONCE], data[_NONCE:],
                                       _context(tid, algorithm))
        except (ValueError, InvalidTag):
            raise SecurityError(f"the stored TMK of terminal {tid} does not open under this "
                                f"host's key file (altered, or another key file)") from None
        return Key(algorithm, clear)


def _context(tid: str, algorithm: KeyAlgorithm) -> bytes:
    return f"{tid}\x00{algorithm.value}".encode()
