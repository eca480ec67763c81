"""Symmetric keys as values that never show their bytes, and their check values.

A :class:`Key` renders as ``Key(TDES-2, kcv=08D7B4)``: the algorithm and the key check
value (KCV), which operators compare by eye and which reveal nothing usable about the key.
The bytes come out only through :meth:`Key.get_secret_value`.

Key check values:

* DES and TDES: the leftmost bytes of DES/TDES-ECB(key, eight zero bytes); 3 bytes by
  default, some schemes (CUP sign-on) send 4.
* AES: the leftmost bytes of AES-CMAC(key, sixteen zero bytes); 5 bytes by default, as
  X9.24-1 recommends for AES keys.
"""

from __future__ import annotations

import binascii
import enum
import hmac
import secrets

from protocol.security import ciphers
from protocol.security.errors import KeyCheckError, KeyFormatError
from protocol.security.sealed import Sealed


class KeyAlgorithm(enum.Enum):
    """The key kinds poslab handles: single-length DES, double- and triple-length TDES, and
    AES-128.

    Single-length DES is a working-key kind only (the CUP sign-on with 60.3 ``001`` sends
    its PIN and MAC keys so): it is wrapped under a TDES master key, never used as one
    (:data:`MASTER_KEY_ALGORITHMS`).
    """

    DES = "DES"
    TDES_2KEY = "TDES-2"
    TDES_3KEY = "TDES-3"
    AES_128 = "AES-128"

    @property
    def length(self) -> int:
        """Key length in bytes."""
        return _LENGTHS[self]

    @property
    def is_tdes(self) -> bool:
        """True for the DES family (single DES and the two TDES kinds): 8-byte blocks, DES
        parity, ECB wrapping, ISO format 0 PIN blocks."""
        return self is not KeyAlgorithm.AES_128

    @property
    def block_size(self) -> int:
        """Cipher block size in bytes: 8 for TDES, 16 for AES."""
        return ciphers.DES_BLOCK if self.is_tdes else ciphers.AES_BLOCK

    @property
    def default_kcv_length(self) -> int:
        """Bytes of check value shown by default: 3 for TDES, 5 for AES."""
        return 3 if self.is_tdes else 5


_LENGTHS = {KeyAlgorithm.DES: 8, KeyAlgorithm.TDES_2KEY: 16, KeyAlgorithm.TDES_3KEY: 24,
            KeyAlgorithm.AES_128: 16}

MASTER_KEY_ALGORITHMS = (KeyAlgorithm.TDES_2KEY, KeyAlgorithm.TDES_3KEY, KeyAlgorithm.AES_128)
"""The kinds a terminal master key may be: single DES is too weak to protect other keys."""


def adjust_odd_parity(material: bytes) -> bytes:
    """Set the low bit of every byte so each byte has an odd number of 1 bits (DES parity)."""
    return bytes(b ^ (bin(b).count("1") + 1) % 2 for b in material)


def has_odd_parity(material: bytes) -> bool:
    """True when every byte has an odd number of 1 bits."""
    return all(bin(b).count("1") % 2 for b in material)


def key_check_value(algorithm: KeyAlgorithm, material: bytes, length: int | None = None) -> bytes:
    """The first ``length`` bytes of the algorithm's check value of ``material``."""
    n = algorithm.default_kcv_length if length is None else length
    if algorithm.is_tdes:
        full = ciphers.tdes_encrypt(material, bytes(ciphers.DES_BLOCK))
    else:
        full = ciphers.aes_cmac(material, bytes(ciphers.AES_BLOCK))
    if not 1 <= n <= len(full):
        raise ValueError(f"a {algorithm.value} check value has 1 to {len(full)} bytes, not {n}")
    return full[:n]


def _parse_hex(text: str, what: str, expected_digits: int | None = None) -> bytes:
    digits = "".join(text.split())
    if expected_digits is not None and len(digits) != expected_digits:
        raise KeyFormatError(f"{what}: needs {expected_digits} hex digits, got {len(digits)}")
    if len(digits) % 2:
        raise KeyFormatError(f"{what}: needs an even number of hex digits, got {len(digits)}")
    try:
        return binascii.unhexlify(digits)
    except (binascii.Error, ValueError):
        # The text is not echoed: a typo in a key is still most of the key.
        raise KeyFormatError(f"{what}: not hexadecimal") from None


class Key(Sealed):
    """A symmetric key whose bytes never appear in ``repr``, ``str``, logs or pickles.

    Keys compare equal in constant time when algorithm and bytes match; the hash uses only
    the public check value.

    :ivar algorithm: the :class:`KeyAlgorithm`.
    """

    __slots__ = ("_algorithm", "_material")

    def __init__(self, algorithm: KeyAlgorithm, material: bytes) -> None:
        if len(material) != algorithm.length:
            raise KeyFormatError(
                f"a {algorithm.value} key has {algorithm.length} bytes, not {len(material)}"
            )
        self._algorithm = algorithm
        self._material = bytes(material)

    @classmethod
    def from_hex(
        cls, text: str, algorithm: KeyAlgorithm, *, kcv: str | None = None, what: str = "key"
    ) -> Key:
        """Parse a key from hex, checking it against ``kcv`` (hex, any length) when given.

        ``what`` names the key in error messages (``"TMK for terminal T0000001"``).

        :raises KeyFormatError: wrong number of digits, or not hexadecimal.
        :raises KeyCheckError: the key's check value differs from ``kcv``.
        """
        label = f"{what} ({algorithm.value})"
        key = cls(algorithm, _parse_hex(text, label, algorithm.length * 2))
        if kcv is not None:
            key.check(_parse_hex(kcv, f"{label} check value"), what=label)
        return key

    @classmethod
    def generate(cls, algorithm: KeyAlgorithm) -> Key:
        """A fresh random key from the OS CSPRNG; DES and TDES keys get odd parity, TDES keys
        distinct parts."""
        while True:
            material = secrets.token_bytes(algorithm.length)
            if not algorithm.is_tdes:
                return cls(algorithm, material)
            material = adjust_odd_parity(material)
            parts = [material[i : i + 8] for i in range(0, len(material), 8)]
            # K1 = K2 (or K2 = K3) would silently degrade TDES to single DES.
            if all(a != b for a, b in zip(parts, parts[1:], strict=False)):
                return cls(algorithm, material)

    @property
    def algorithm(self) -> KeyAlgorithm:
        """The key's algorithm."""
        return self._algorithm

    def get_secret_value(self) -> bytes:
        """The key bytes. Call only to hand them to a cipher; never log or store them."""
        return self._material

    def kcv(self, length: int | None = None) -> bytes:
        """The key check value, ``length`` bytes (default: 3 for TDES, 5 for AES)."""
        return key_check_value(self._algorithm, self._material, length)

    def check(self, expected: bytes, *, what: str = "key") -> None:
        """Raise :class:`KeyCheckError` unless the key's check value starts with ``expected``."""
        if not expected:
            raise KeyFormatError(f"{what}: empty check value")
        computed = self.kcv(len(expected))
        if not hmac.compare_digest(computed, expected):
            raise KeyCheckError(what, expected.hex().upper(), computed.hex().upper())

    def __repr__(self) -> str:
        return f"Key({self._algorithm.value}, kcv={self.kcv().hex().upper()})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Key):
            return NotImplemented
        return self._algorithm is other._algorithm and hmac.compare_digest(
            self._material, other._material
        )

    def __hash__(self) -> int:
        return hash((self._algorithm, self.kcv()))
