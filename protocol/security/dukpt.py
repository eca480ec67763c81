"""TDES DUKPT (ANSI X9.24-1:2009): a unique key per transaction from one base key.

The host holds a base derivation key (BDK). Each terminal is loaded once with its initial
key (IPEK), derived from the BDK and the terminal's key serial number (KSN) with the
counter cleared. For every transaction the terminal advances the 21-bit counter in the
KSN, derives that counter's transaction key and sends the KSN with the message; the host
derives the same key from BDK + KSN. Keys for a purpose are variants of the transaction key
(PIN, MAC request/response, data request/response).

The derivations are ``pydukpt``'s (MIT, pinned to 0.1.0; checked against the published
X9.24-1 vectors in the tests). Host and terminal are
:class:`~protocol.security.dukpt_roles.DukptHost` and ``DukptTerminal`` with
:data:`TDES_DUKPT`.

``pydukpt`` is imported by the functions that use it, when first called: it loads
pycryptodome, whose start-up compiles C declarations (~0.04 s of CPU), and every program that
imports :mod:`protocol` (the host, its fronts, the terminal, the CLIs) would pay that at start
whether or not a device uses DUKPT.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.security.dukpt_roles import DukptKeys, DukptScheme
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
        import pydukpt

        return pydukpt.ksn_counter(self.value)

    def with_counter(self, counter: int) -> Ksn:
        """This KSN with the counter replaced (0 gives the initial KSN)."""
        import pydukpt

        return Ksn(pydukpt.ksn_with_counter(self.value, counter))

    def next(self) -> Ksn:
        """The KSN of the next transaction: the next counter with at most ten 1 bits.

        :raises KsnExhaustedError: the counter is at its last value (0x1FF800).
        """
        import pydukpt

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


def derive_ipek(bdk: Key, ksn: Ksn) -> Key:
    """The initial key of the device ``ksn`` names (its counter is ignored)."""
    import pydukpt

    ipek = pydukpt.derive_ipek(TDES_DUKPT.require(bdk, "BDK"), ksn.value)
    return Key(KeyAlgorithm.TDES_2KEY, ipek)


def transaction_keys(ipek: Key, ksn: Ksn) -> DukptKeys[Ksn]:
    """Every key of the transaction ``ksn``, derived from the device's initial key."""
    import pydukpt

    current = pydukpt.derive_key(TDES_DUKPT.require(ipek, "IPEK"), ksn.value)

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


TDES_DUKPT: DukptScheme[Ksn] = DukptScheme(
    "TDES DUKPT", KeyAlgorithm.TDES_2KEY, derive_ipek, transaction_keys
)
