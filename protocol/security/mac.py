"""Message authentication codes, and the registry a wire profile picks its scheme from.

Algorithms (``key`` is a :class:`~protocol.security.keys.Key`, ``data`` the bytes to MAC —
for ISO 8583, the message from the MTI up to but excluding the MAC field):

* **ISO 9797-1 algorithm 1** (CBC-MAC): CBC-encrypt the padded data with a zero IV under
  TDES or AES; the last block is the MAC.
* **ISO 9797-1 algorithm 3** (ANSI X9.19 "retail MAC"): single-DES CBC under the left half
  K1 of a double-length key, then the last block is decrypted under K2 and encrypted under
  K1 again.
* **AES-CMAC** (NIST SP 800-38B, RFC 4493).
* **CUP "ECB" POS MAC**: XOR all zero-padded 8-byte blocks into one; write it as 16
  upper-case hex characters; encrypt the first 8 characters under the MAK; XOR the result
  with the last 8 characters; encrypt again; the first 8 hex characters of that block (as
  ASCII) are the MAC. A single-length MAK (CUP sign-on 60.3 ``001``) encrypts as single
  DES, a double-length one as TDES.

Padding for algorithms 1 and 3 is ISO 9797-1 method 1 (zeros up to a block boundary; one
zero block for empty data) or method 2 (0x80, then zeros).

:data:`MAC_SCHEMES` names every combination a profile can choose; :meth:`MacScheme.compute`
gives the 8 bytes of an ISO 8583 MAC field and :meth:`MacScheme.verify` compares in constant
time.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from protocol.security import ciphers
from protocol.security.errors import KeyFormatError
from protocol.security.keys import Key, KeyAlgorithm


class Padding(enum.IntEnum):
    """ISO 9797-1 padding methods."""

    METHOD_1 = 1
    METHOD_2 = 2


def pad(data: bytes, block_size: int, padding: Padding) -> bytes:
    """Pad ``data`` to a whole number of blocks by ISO 9797-1 method 1 or 2."""
    if padding is Padding.METHOD_2:
        data += b"\x80"
    elif not data:
        return bytes(block_size)
    return data + bytes(-len(data) % block_size)


def _require(key: Key, scheme: str, *allowed: KeyAlgorithm) -> None:
    if key.algorithm not in allowed:
        kinds = " or ".join(a.value for a in allowed)
        raise KeyFormatError(f"{scheme} needs a {kinds} key, not {key.algorithm.value}")


def cbc_mac(key: Key, data: bytes, padding: Padding = Padding.METHOD_1) -> bytes:
    """ISO 9797-1 MAC algorithm 1 under a TDES or AES key: the full last CBC block."""
    block = key.algorithm.block_size
    encrypt = ciphers.tdes_encrypt if key.algorithm.is_tdes else ciphers.aes_encrypt
    secret = key.get_secret_value()
    padded = pad(data, block, padding)
    chain = bytes(block)
    for i in range(0, len(padded), block):
        chain = encrypt(secret, ciphers.xor(chain, padded[i : i + block]))
    return chain


def retail_mac(key: Key, data: bytes, padding: Padding = Padding.METHOD_1) -> bytes:
    """ISO 9797-1 MAC algorithm 3 (ANSI X9.19) under a double-length TDES key."""
    _require(key, "ISO 9797-1 algorithm 3", KeyAlgorithm.TDES_2KEY)
    secret = key.get_secret_value()
    k1, k2 = secret[:8], secret[8:]
    padded = pad(data, ciphers.DES_BLOCK, padding)
    chain = bytes(ciphers.DES_BLOCK)
    for i in range(0, len(padded), ciphers.DES_BLOCK):
        chain = ciphers.des_encrypt(k1, ciphers.xor(chain, padded[i : i + ciphers.DES_BLOCK]))
    return ciphers.des_encrypt(k1, ciphers.des_decrypt(k2, chain))


def cmac(key: Key, data: bytes) -> bytes:
    """AES-CMAC under an AES key: the full 16-byte tag."""
    _require(key, "AES-CMAC", KeyAlgorithm.AES_128)
    return ciphers.aes_cmac(key.get_secret_value(), data)


def cup_ecb_mac(key: Key, data: bytes) -> bytes:
    """The China UnionPay "ECB" POS MAC: 8 upper-case hex characters as ASCII bytes."""
    _require(key, "the CUP ECB MAC", KeyAlgorithm.DES, KeyAlgorithm.TDES_2KEY,
             KeyAlgorithm.TDES_3KEY)
    secret = key.get_secret_value()
    padded = pad(data, ciphers.DES_BLOCK, Padding.METHOD_1)
    folded = bytes(ciphers.DES_BLOCK)
    for i in range(0, len(padded), ciphers.DES_BLOCK):
        folded = ciphers.xor(folded, padded[i : i + ciphers.DES_BLOCK])
    expanded = folded.hex().upper().encode("ascii")
    first = ciphers.tdes_encrypt(secret, expanded[:8])
    second = ciphers.tdes_encrypt(secret, ciphers.xor(first, expanded[8:]))
    return second.hex().upper().encode("ascii")[:8]


@dataclass(frozen=True)
class MacScheme:
    """A named MAC algorithm with its padding and the length of the MAC field it fills.

    :ivar name: the registry name a profile setting uses.
    :ivar description: one line for help texts.
    :ivar function: key, data -> the algorithm's full MAC.
    :ivar length: bytes of MAC kept (the leftmost), 8 for an ISO 8583 DE64/DE128.
    """

    name: str
    description: str
    function: Callable[[Key, bytes], bytes] = field(repr=False)
    length: int = 8

    def compute(self, key: Key, data: bytes) -> bytes:
        """The MAC of ``data`` under ``key``, truncated to :attr:`length` bytes."""
        return self.function(key, data)[: self.length]

    def verify(self, key: Key, data: bytes, mac: bytes) -> bool:
        """True when ``mac`` is the MAC of ``data``; the comparison takes constant time."""
        return hmac.compare_digest(self.compute(key, data), mac)


def _with_padding(
    function: Callable[[Key, bytes, Padding], bytes], padding: Padding
) -> Callable[[Key, bytes], bytes]:
    return lambda key, data: function(key, data, padding)


MAC_SCHEMES: dict[str, MacScheme] = {
    scheme.name: scheme
    for scheme in (
        MacScheme(
            "iso9797-1-alg1",
            "ISO 9797-1 algorithm 1 (CBC-MAC, TDES or AES), padding method 1",
            _with_padding(cbc_mac, Padding.METHOD_1),
        ),
        MacScheme(
            "iso9797-1-alg1-pad2",
            "ISO 9797-1 algorithm 1 (CBC-MAC, TDES or AES), padding method 2",
            _with_padding(cbc_mac, Padding.METHOD_2),
        ),
        MacScheme(
            "x9.19",
            "ISO 9797-1 algorithm 3 / ANSI X9.19 retail MAC, padding method 1",
            _with_padding(retail_mac, Padding.METHOD_1),
        ),
        MacScheme(
            "x9.19-pad2",
            "ISO 9797-1 algorithm 3 / ANSI X9.19 retail MAC, padding method 2",
            _with_padding(retail_mac, Padding.METHOD_2),
        ),
        MacScheme("aes-cmac", "AES-CMAC (RFC 4493), leftmost 8 bytes", cmac),
        MacScheme("cup-ecb", "China UnionPay POS 'ECB' MAC (8 hex characters)", cup_ecb_mac),
    )
}


def get_mac_scheme(name: str) -> MacScheme:
    """The scheme registered as ``name``.

    :raises ValueError: unknown name; the message lists the known ones.
    """
    try:
        return MAC_SCHEMES[name]
    except KeyError:
        known = ", ".join(sorted(MAC_SCHEMES))
        raise ValueError(f"unknown MAC scheme {name!r}; known schemes: {known}") from None
