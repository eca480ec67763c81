"""TDES DUKPT (ANSI X9.24-1:2009): a unique key per transaction from one base key.

The host holds a base derivation key (BDK). Each terminal is loaded once with its initial
key (IPEK), derived from the BDK and the terminal's key serial number (KSN) with the
counter cleared. For every transaction the terminal advances the 21-bit counter in the
KSN, derives that counter's transaction key and sends the KSN with the message; the host
derives the same key from BDK + KSN. Keys for a purpose are variants of the transaction key
(PIN, MAC request/response, data request/response).

The derivations are ``pydukpt``'s (MIT, pinned to 0.1.0; checked against the published
X9.24-1 vectors in the tests). :class:`DukptTerminal` derives each transaction key from the
IPEK afresh instead of keeping the standard's 21 future-key registers: the keys are the
same, and a test terminal does not need the speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pydukpt

from protocol.security.errors import KeyFormatError, KsnExhaustedError
from protocol.security.keys import Key, KeyAlgorithm

KSN_LENGTH = 10


@dataclass(frozen=True, repr=False)
class Ksn:
    """A 10-byte key serial number: key set id and device id, then a 21-bit counter.

    Not secret: it travels in clear with every DUKPT message.
    """

    value: bytes

    def __post_init__(self) -> None:
        if len(self.value) != KSN_LENGTH:
            raise KeyFormatError(f"a KSN has {KSN_LENGTH} bytes, not {len(self.value)}")

    @classmethod
    def from_hex(cls, text: str) -> Ksn:
        """Parse 20 hex digits."""
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise KeyFormatError("KSN: not hexadecimal") from None
        return cls(value)

    @property
    def counter(self) -> int:
        """The transaction counter (rightmost 21 bits)."""
        return pydukpt.ksn_counter(self.value)

    def with_counter(self, counter: int) -> Ksn:
        """This KSN with the counter replaced (0 gives the initial KSN)."""
        return Ksn(pydukpt.ksn_with_counter(self.value, counter))

    def next(self) -> Ksn:
        """The KSN of the next transaction: the next counter with at most ten 1 bits.

        :raises KsnExhaustedError: the counter is at its last value (0x1FF800).
        """
        try:
            return Ksn(pydukpt.next_ksn(self.value))
        except pydukpt.KSNExhaustedError:
            raise KsnExhaustedError(
                f"KSN {self.with_counter(0)}: transaction counter exhausted"
            ) from None

    def __str__(self) -> str:
        return self.value.hex().upper()

    def __repr__(self) -> str:
        return f"Ksn({self})"


@dataclass(frozen=True)
class DukptKeys:
    """The keys of one DUKPT transaction (``repr`` shows check values only).

    :ivar ksn: the KSN they belong to.
    :ivar transaction: the current transaction key, from which the others are variants.
    :ivar pin: PIN encryption key (format 0 PIN blocks).
    :ivar mac_request: MAC key for the terminal's request.
    :ivar mac_response: MAC key for the host's response.
    :ivar data_request: data encryption key for the request.
    :ivar data_response: data encryption key for the response.
    """

    ksn: Ksn
    transaction: Key
    pin: Key
    mac_request: Key
    mac_response: Key
    data_request: Key
    data_response: Key


def _require_tdes(key: Key, what: str) -> bytes:
    if key.algorithm is not KeyAlgorithm.TDES_2KEY:
        raise KeyFormatError(f"TDES DUKPT needs a TDES-2 {what}, not {key.algorithm.value}")
    return key.get_secret_value()


def derive_ipek(bdk: Key, ksn: Ksn) -> Key:
    """The initial key of the device ``ksn`` names (its counter is ignored)."""
    ipek = pydukpt.derive_ipek(_require_tdes(bdk, "BDK"), ksn.value)
    return Key(KeyAlgorithm.TDES_2KEY, ipek)


def transaction_keys(ipek: Key, ksn: Ksn) -> DukptKeys:
    """Every key of the transaction ``ksn``, derived from the device's initial key."""
    current = pydukpt.derive_key(_require_tdes(ipek, "IPEK"), ksn.value)

    def tdes(material: bytes) -> Key:
        return Key(KeyAlgorithm.TDES_2KEY, material)

    return DukptKeys(
        ksn=ksn,
        transaction=tdes(current),
        pin=tdes(pydukpt.pin_key(current)),
        mac_request=tdes(pydukpt.mac_request_key(current)),
        mac_response=tdes(pydukpt.mac_response_key(current)),
        data_request=tdes(pydukpt.data_request_key(current)),
        data_response=tdes(pydukpt.data_response_key(current)),
    )


class DukptHost:
    """Host side: derives any transaction's keys from the BDK and the KSN received."""

    def __init__(self, bdk: Key) -> None:
        _require_tdes(bdk, "BDK")
        self._bdk = bdk

    def initial_key(self, ksn: Ksn) -> Key:
        """The IPEK to load into the device ``ksn`` names."""
        return derive_ipek(self._bdk, ksn)

    def keys_for(self, ksn: Ksn) -> DukptKeys:
        """The keys of transaction ``ksn``."""
        return transaction_keys(derive_ipek(self._bdk, ksn), ksn)

    def __repr__(self) -> str:
        return f"DukptHost(bdk={self._bdk!r})"


class DukptTerminal:
    """Terminal side: the initial key and the KSN of the last transaction.

    :ivar ksn: the KSN last used (counter 0 right after loading).
    """

    def __init__(self, ipek: Key, ksn: Ksn) -> None:
        _require_tdes(ipek, "IPEK")
        self._ipek = ipek
        self.ksn = ksn

    def next_transaction(self) -> DukptKeys:
        """Advance the counter and return the new transaction's keys.

        :raises KsnExhaustedError: no counter is left; the device needs a new initial key.
        """
        self.ksn = self.ksn.next()
        return transaction_keys(self._ipek, self.ksn)

    def __repr__(self) -> str:
        return f"DukptTerminal(ipek={self._ipek!r}, ksn={self.ksn})"
