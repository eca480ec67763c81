"""Working keys under the terminal master key: generate, wrap for sign-on, unwrap and check.

On sign-on the host sends fresh working keys — PIN key (PIK), MAC key (MAK) and optionally
a data key (TDK) — each encrypted under the terminal's master key (TMK) and followed by its
check value. The terminal unwraps each key and refuses it unless the check value matches.

Wrapping by family:

* TDES keys under a TDES TMK: TDES-ECB of the key bytes (the classic terminal scheme).
* AES keys under an AES TMK: AES key wrap, RFC 3394 (``cryptography``'s ``keywrap``), which
  also detects a wrong TMK or a corrupted key by its integrity check.

A key is never wrapped under a key of another family, nor a triple-length TDES key under a
double-length one: a key may only be protected by a key at least as strong.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import keywrap

from protocol.security import ciphers
from protocol.security.errors import KeyWrapError
from protocol.security.keys import Key, KeyAlgorithm


@dataclass(frozen=True, repr=False)
class WrappedKey:
    """A key encrypted under a key-encryption key, with the check value of the clear key.

    :ivar algorithm: the algorithm of the wrapped (inner) key.
    :ivar ciphertext: the encrypted key bytes (16 or 24 for TDES, 24 for AES-128).
    :ivar kcv: the check value of the clear key.
    """

    algorithm: KeyAlgorithm
    ciphertext: bytes
    kcv: bytes

    def to_bytes(self) -> bytes:
        """Ciphertext followed by the check value, as sign-on responses carry it."""
        return self.ciphertext + self.kcv

    def __repr__(self) -> str:
        return f"WrappedKey({self.algorithm.value}, kcv={self.kcv.hex().upper()})"


def wrapped_length(algorithm: KeyAlgorithm) -> int:
    """Bytes of ciphertext a wrapped key of ``algorithm`` takes (RFC 3394 adds 8)."""
    return algorithm.length if algorithm.is_tdes else algorithm.length + 8


def _check_strength(kek: Key, algorithm: KeyAlgorithm) -> None:
    if kek.algorithm.is_tdes != algorithm.is_tdes:
        raise KeyWrapError(
            f"a {algorithm.value} key cannot be wrapped under a {kek.algorithm.value} key"
        )
    if algorithm.length > kek.algorithm.length:
        raise KeyWrapError(
            f"a {algorithm.value} key cannot be wrapped under a weaker {kek.algorithm.value} key"
        )


def wrap_key(kek: Key, key: Key, *, kcv_length: int | None = None) -> WrappedKey:
    """Encrypt ``key`` under ``kek`` and attach its check value (``kcv_length`` bytes)."""
    _check_strength(kek, key.algorithm)
    clear = key.get_secret_value()
    if key.algorithm.is_tdes:
        ciphertext = ciphers.tdes_encrypt(kek.get_secret_value(), clear)
    else:
        ciphertext = keywrap.aes_key_wrap(kek.get_secret_value(), clear)
    return WrappedKey(key.algorithm, ciphertext, key.kcv(kcv_length))


def unwrap_key(kek: Key, wrapped: WrappedKey, *, what: str = "working key") -> Key:
    """Decrypt ``wrapped`` under ``kek`` and verify its check value.

    :raises KeyWrapError: wrong ciphertext length, or the AES integrity check failed.
    :raises KeyCheckError: the unwrapped key does not match the check value sent with it.
    """
    algorithm = wrapped.algorithm
    _check_strength(kek, algorithm)
    if len(wrapped.ciphertext) != wrapped_length(algorithm):
        raise KeyWrapError(
            f"{what}: a wrapped {algorithm.value} key has {wrapped_length(algorithm)} bytes,"
            f" not {len(wrapped.ciphertext)}"
        )
    if algorithm.is_tdes:
        clear = ciphers.tdes_decrypt(kek.get_secret_value(), wrapped.ciphertext)
    else:
        try:
            clear = keywrap.aes_key_unwrap(kek.get_secret_value(), wrapped.ciphertext)
        except keywrap.InvalidUnwrap:
            raise KeyWrapError(
                f"{what}: AES key unwrap failed (wrong TMK or corrupted key)"
            ) from None
    key = Key(algorithm, clear)
    key.check(wrapped.kcv, what=what)
    return key


@dataclass(frozen=True)
class WorkingKeys:
    """The keys a terminal uses between two sign-ons.

    :ivar pin: the PIN encryption key (PIK / TPK).
    :ivar mac: the MAC key (MAK / TAK).
    :ivar data: the track-data key (TDK), or ``None`` when the profile sends none.
    """

    pin: Key
    mac: Key
    data: Key | None = None

    @classmethod
    def generate(cls, algorithm: KeyAlgorithm, *, with_data: bool = True) -> WorkingKeys:
        """Fresh random working keys of one algorithm."""
        return cls(
            pin=Key.generate(algorithm),
            mac=Key.generate(algorithm),
            data=Key.generate(algorithm) if with_data else None,
        )

    def wrap(self, tmk: Key, *, kcv_length: int = 4) -> bytes:
        """Every key wrapped under ``tmk`` with its check value, PIN, MAC, data key in order."""
        keys = [self.pin, self.mac] + ([self.data] if self.data is not None else [])
        return b"".join(wrap_key(tmk, key, kcv_length=kcv_length).to_bytes() for key in keys)

    @classmethod
    def unwrap(
        cls,
        tmk: Key,
        payload: bytes,
        algorithm: KeyAlgorithm,
        *,
        kcv_length: int = 4,
    ) -> WorkingKeys:
        """Split ``payload`` (as :meth:`wrap` builds it) into two or three keys and check each.

        :raises KeyWrapError: the payload length fits neither two nor three keys.
        :raises KeyCheckError: a key does not match its check value (message names which).
        """
        size = wrapped_length(algorithm) + kcv_length
        if len(payload) not in (2 * size, 3 * size):
            raise KeyWrapError(
                f"working keys: {len(payload)} bytes fit neither two nor three wrapped"
                f" {algorithm.value} keys of {size} bytes"
            )
        cut = wrapped_length(algorithm)
        names = ("PIN key", "MAC key", "data key")[: len(payload) // size]
        keys = []
        for i, name in enumerate(names):
            chunk = payload[i * size : (i + 1) * size]
            wrapped = WrappedKey(algorithm, chunk[:cut], chunk[cut:])
            keys.append(unwrap_key(tmk, wrapped, what=name))
        return cls(keys[0], keys[1], keys[2] if len(keys) == 3 else None)
