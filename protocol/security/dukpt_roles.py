"""The two sides of DUKPT, shared by the TDES and AES variants.

A :class:`DukptScheme` bundles a variant's two derivations (initial key from BDK + KSN, and
every key of one transaction from the initial key + KSN). :class:`DukptHost` holds the BDK
and derives any transaction's keys from the KSN it receives; :class:`DukptTerminal` holds an
initial key and the last KSN, and advances the counter for each transaction.

The terminal derives each transaction's keys from its initial key afresh instead of keeping
the standards' future-key (TDES) or intermediate-key (AES) registers: the keys are the same,
and a test terminal does not need the speed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar

from protocol.security.errors import KeyFormatError
from protocol.security.keys import Key, KeyAlgorithm


class CountedKsn(Protocol):
    """What the roles need of a key serial number."""

    @property
    def counter(self) -> int:
        """The transaction counter."""
        ...

    def next(self) -> Self:
        """The KSN of the next transaction (raises KsnExhaustedError at the end)."""
        ...


K = TypeVar("K", bound=CountedKsn)


@dataclass(frozen=True)
class DukptKeys(Generic[K]):
    """The keys of one DUKPT transaction (``repr`` shows check values only).

    :ivar ksn: the KSN they belong to.
    :ivar transaction: the current transaction key the others come from.
    :ivar pin: PIN encryption key.
    :ivar mac_request: MAC key for the terminal's request.
    :ivar mac_response: MAC key for the host's response.
    :ivar data_request: data encryption key, request direction.
    :ivar data_response: data encryption key, response direction.
    """

    ksn: K
    transaction: Key
    pin: Key
    mac_request: Key
    mac_response: Key
    data_request: Key
    data_response: Key


@dataclass(frozen=True)
class DukptScheme(Generic[K]):
    """One DUKPT variant: its key kind and its two derivations.

    :ivar name: ``"TDES DUKPT"`` or ``"AES DUKPT"``, for messages.
    :ivar algorithm: the kind of BDK and initial key it takes.
    :ivar initial_key: BDK, KSN -> the device's initial key.
    :ivar transaction_keys: initial key, KSN -> that transaction's keys.
    """

    name: str
    algorithm: KeyAlgorithm
    initial_key: Callable[[Key, K], Key]
    transaction_keys: Callable[[Key, K], DukptKeys[K]]

    def require(self, key: Key, what: str) -> bytes:
        """``key``'s bytes, or KeyFormatError if it is not of this scheme's kind."""
        if key.algorithm is not self.algorithm:
            raise KeyFormatError(
                f"{self.name} needs a {self.algorithm.value} {what}, not {key.algorithm.value}"
            )
        return key.get_secret_value()


class DukptHost(Generic[K]):
    """Host side: derives any transaction's keys from the BDK and the KSN received."""

    def __init__(self, scheme: DukptScheme[K], bdk: Key) -> None:
        scheme.require(bdk, "BDK")
        self._scheme = scheme
        self._bdk = bdk

    def initial_key(self, ksn: K) -> Key:
        """The initial key to load into the device ``ksn`` names."""
        return self._scheme.initial_key(self._bdk, ksn)

    def keys_for(self, ksn: K) -> DukptKeys[K]:
        """The keys of transaction ``ksn``."""
        return self._scheme.transaction_keys(self.initial_key(ksn), ksn)

    def __repr__(self) -> str:
        return f"DukptHost({self._scheme.name}, bdk={self._bdk!r})"


class DukptTerminal(Generic[K]):
    """Terminal side: the initial key and the KSN of the last transaction.

    :ivar ksn: the KSN last used (counter 0 right after loading).
    """

    def __init__(self, scheme: DukptScheme[K], initial_key: Key, ksn: K) -> None:
        scheme.require(initial_key, "initial key")
        self._scheme = scheme
        self._initial_key = initial_key
        self.ksn = ksn

    def next_transaction(self) -> DukptKeys[K]:
        """Advance the counter and return the new transaction's keys.

        :raises KsnExhaustedError: no counter is left; the device needs a new initial key.
        """
        self.ksn = self.ksn.next()
        return self._scheme.transaction_keys(self._initial_key, self.ksn)

    def __repr__(self) -> str:
        return (
            f"DukptTerminal({self._scheme.name}, initial_key={self._initial_key!r}, ksn={self.ksn})"
        )
