"""Independent implementations the security tests compare against.

``psec`` 1.3.0 (MIT) is the main oracle. It still builds TripleDES from cryptography's old
namespace, so each call warns; :func:`psec_call` silences that one warning for the call only,
while the security tests turn every other warning into an error.

:func:`reference_cmac` is AES-CMAC written out from NIST SP 800-38B over psec's AES-ECB, so
AES check values are checked by code that shares nothing with the module under test.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

from cryptography.utils import CryptographyDeprecationWarning
from psec import aes as psec_aes

T = TypeVar("T")


def psec_call(function: Callable[..., T], *args: object) -> T:
    """Call a psec function with its TripleDES deprecation warning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return function(*args)


def _double(block: bytes) -> bytes:
    value = int.from_bytes(block, "big") << 1
    if value >> 128:
        value = (value & ((1 << 128) - 1)) ^ 0x87
    return value.to_bytes(16, "big")


def reference_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC per NIST SP 800-38B, built on psec's AES-ECB."""
    k1 = _double(psec_aes.encrypt_aes_ecb(key, bytes(16)))
    k2 = _double(k1)
    if data and len(data) % 16 == 0:
        last = bytes(a ^ b for a, b in zip(data[-16:], k1, strict=True))
        head = data[:-16]
    else:
        cut = len(data) - len(data) % 16
        padded = data[cut:] + b"\x80" + bytes(15 - len(data) % 16)
        last = bytes(a ^ b for a, b in zip(padded, k2, strict=True))
        head = data[:cut]
    chain = bytes(16)
    for i in range(0, len(head), 16):
        block = bytes(a ^ b for a, b in zip(chain, head[i : i + 16], strict=True))
        chain = psec_aes.encrypt_aes_ecb(key, block)
    return psec_aes.encrypt_aes_ecb(key, bytes(a ^ b for a, b in zip(chain, last, strict=True)))


def reference_cup_mac(key: bytes, data: bytes) -> bytes:
    """The CUP ECB MAC written out step by step on psec's TDES-ECB."""
    from psec import des as psec_des

    padded = data + bytes(-len(data) % 8) if data else bytes(8)
    folded = 0
    for i in range(0, len(padded), 8):
        folded ^= int.from_bytes(padded[i : i + 8], "big")
    text = f"{folded:016X}".encode()
    first = psec_call(psec_des.encrypt_tdes_ecb, key, text[:8])
    mixed = bytes(a ^ b for a, b in zip(first, text[8:], strict=True))
    second = psec_call(psec_des.encrypt_tdes_ecb, key, mixed)
    return second.hex().upper()[:8].encode()
