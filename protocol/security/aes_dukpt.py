"""AES DUKPT (ANSI X9.24-3-2017) for AES-128 keys, written on ``cryptography``'s AES.

No maintained Python package implements it, so this is by hand, following the standard's
derivation scheme and tested against its published sample vectors (Annex B.1: AES-128 BDK
``FEDCBA9876543210F1F1F1F1F1F1F1F1``).

Compared with TDES DUKPT:

* the KSN is 12 bytes: an 8-byte initial key ID (BDK ID + derivation ID) and a 32-bit
  transaction counter, of which at most 16 bits may be 1;
* every key is derived with one AES-ECB encryption of a 16-byte *derivation data* block:
  version 01, block counter 01, key usage (2 bytes), algorithm (2), key length in bits (2),
  then the initial key ID (for the initial key) or the derivation ID and a counter;
* the transaction key walks the counter's 1 bits from the top, each step deriving from the
  previous key with usage "key derivation";
* working keys (PIN, MAC generate/verify, data encrypt/decrypt) are derived from the
  transaction key with their own usage, instead of XOR variants.

Only AES-128 base, transaction and working keys are supported (the published vectors).
Host and terminal are :class:`~protocol.security.dukpt_roles.DukptHost` and
``DukptTerminal`` with :data:`AES_DUKPT`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.security import ciphers
from protocol.security.dukpt_roles import DukptKeys, DukptScheme
from protocol.security.errors import KeyFormatError, KsnExhaustedError
from protocol.security.keys import Key, KeyAlgorithm

AES_KSN_LENGTH = 12
MAX_COUNTER_ONE_BITS = 16
_COUNTER_LIMIT = 1 << 32
_AES128_ALGORITHM = 0x0002
_AES128_BITS = 0x0080


class KeyUsage(enum.IntEnum):
    """Key usage indicators of the X9.24-3 derivation data."""

    PIN_ENCRYPTION = 0x1000
    MAC_GENERATION = 0x2000
    MAC_VERIFICATION = 0x2001
    DATA_ENCRYPT = 0x3000
    DATA_DECRYPT = 0x3001
    KEY_DERIVATION = 0x8000
    KEY_DERIVATION_INITIAL_KEY = 0x8001


@dataclass(frozen=True, repr=False)
class AesKsn:
    """A 12-byte AES DUKPT key serial number: initial key ID (8 bytes) and counter (4)."""

    value: bytes

    def __post_init__(self) -> None:
        if len(self.value) != AES_KSN_LENGTH:
            raise KeyFormatError(f"an AES KSN has {AES_KSN_LENGTH} bytes, not {len(self.value)}")

    @classmethod
    def from_hex(cls, text: str) -> AesKsn:
        """Parse 24 hex digits."""
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise KeyFormatError("AES KSN: not hexadecimal") from None
        return cls(value)

    @property
    def initial_key_id(self) -> bytes:
        """The 8-byte initial key ID (BDK ID and derivation ID)."""
        return self.value[:8]

    @property
    def counter(self) -> int:
        """The 32-bit transaction counter."""
        return int.from_bytes(self.value[8:], "big")

    def with_counter(self, counter: int) -> AesKsn:
        """This KSN with the counter replaced."""
        return AesKsn(self.initial_key_id + counter.to_bytes(4, "big"))

    def next(self) -> AesKsn:
        """The KSN of the next transaction: the next counter with at most 16 one bits.

        :raises KsnExhaustedError: no such 32-bit counter is left.
        """
        candidate = self.counter + 1
        while bin(candidate).count("1") > MAX_COUNTER_ONE_BITS:
            # Any value below candidate + its lowest set bit keeps all of its 1 bits.
            candidate += candidate & -candidate
        if candidate >= _COUNTER_LIMIT:
            raise KsnExhaustedError(
                f"AES KSN {self.initial_key_id.hex().upper()}: counter exhausted"
            )
        return self.with_counter(candidate)

    def __str__(self) -> str:
        return self.value.hex().upper()

    def __repr__(self) -> str:
        return f"AesKsn({self})"


def _derivation_data(usage: KeyUsage, data: bytes) -> bytes:
    header = bytes([0x01, 0x01]) + usage.to_bytes(2, "big")
    return header + _AES128_ALGORITHM.to_bytes(2, "big") + _AES128_BITS.to_bytes(2, "big") + data


def _derive(key: bytes, usage: KeyUsage, data: bytes) -> bytes:
    return ciphers.aes_encrypt(key, _derivation_data(usage, data))


def derive_initial_key(bdk: Key, ksn: AesKsn) -> Key:
    """The initial key of the device whose initial key ID ``ksn`` carries."""
    material = _derive(
        AES_DUKPT.require(bdk, "BDK"), KeyUsage.KEY_DERIVATION_INITIAL_KEY, ksn.initial_key_id
    )
    return Key(KeyAlgorithm.AES_128, material)


def derive_transaction_key(initial_key: Key, ksn: AesKsn) -> Key:
    """The transaction (derivation) key for ``ksn``'s counter."""
    key = AES_DUKPT.require(initial_key, "initial key")
    derivation_id = ksn.initial_key_id[4:]
    working_counter = 0
    bit = 1 << 31
    while bit:
        if ksn.counter & bit:
            working_counter |= bit
            data = derivation_id + working_counter.to_bytes(4, "big")
            key = _derive(key, KeyUsage.KEY_DERIVATION, data)
        bit >>= 1
    return Key(KeyAlgorithm.AES_128, key)


def derive_working_key(transaction_key: Key, ksn: AesKsn, usage: KeyUsage) -> Key:
    """The AES-128 working key of ``usage`` for transaction ``ksn``."""
    data = ksn.initial_key_id[4:] + ksn.counter.to_bytes(4, "big")
    material = _derive(AES_DUKPT.require(transaction_key, "transaction key"), usage, data)
    return Key(KeyAlgorithm.AES_128, material)


def aes_transaction_keys(initial_key: Key, ksn: AesKsn) -> DukptKeys[AesKsn]:
    """Every key of the transaction ``ksn``, derived from the device's initial key."""
    transaction = derive_transaction_key(initial_key, ksn)

    def working(usage: KeyUsage) -> Key:
        return derive_working_key(transaction, ksn, usage)

    return DukptKeys(
        ksn=ksn,
        transaction=transaction,
        pin=working(KeyUsage.PIN_ENCRYPTION),
        mac_request=working(KeyUsage.MAC_GENERATION),
        mac_response=working(KeyUsage.MAC_VERIFICATION),
        data_request=working(KeyUsage.DATA_ENCRYPT),
        data_response=working(KeyUsage.DATA_DECRYPT),
    )


AES_DUKPT: DukptScheme[AesKsn] = DukptScheme(
    "AES DUKPT", KeyAlgorithm.AES_128, derive_initial_key, aes_transaction_keys
)
