"""Block-cipher operations on raw bytes: the only place that builds ``cryptography`` ciphers.

(RFC 3394 key wrap, in :mod:`~protocol.security.wrap`, is ``cryptography``'s ``keywrap``.)

TDES comes from ``cryptography.hazmat.decrepit`` (its home since cryptography 43; the old
``primitives`` name warns). cryptography also deprecates 8- and 16-byte TDES keys (it wants
all three parts spelt out), so :func:`_three_part` expands them first: a double-length key
K1|K2 becomes K1|K2|K1 and single DES (the inner steps of X9.19 and the CUP MAC) becomes
K|K|K. The results are the same; only the warning goes.

Everything here is ECB over whole blocks; callers chain blocks themselves (CBC-MAC, X9.19,
format 4 PIN blocks), so every mode in this package is visible in the module that uses it.
"""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

DES_BLOCK = 8
AES_BLOCK = 16


def xor(a: bytes, b: bytes) -> bytes:
    """Byte-wise XOR of two equal-length strings."""
    if len(a) != len(b):
        raise ValueError(f"xor of {len(a)} and {len(b)} bytes")
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _three_part(key: bytes) -> TripleDES:
    if len(key) == 8:
        return TripleDES(key * 3)
    if len(key) == 16:
        return TripleDES(key + key[:8])
    return TripleDES(key)


def tdes_encrypt(key: bytes, data: bytes) -> bytes:
    """TDES-ECB encrypt ``data`` (a multiple of 8 bytes) under an 8-, 16- or 24-byte key."""
    encryptor = Cipher(_three_part(key), modes.ECB()).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def tdes_decrypt(key: bytes, data: bytes) -> bytes:
    """TDES-ECB decrypt ``data`` (a multiple of 8 bytes) under an 8-, 16- or 24-byte key."""
    decryptor = Cipher(_three_part(key), modes.ECB()).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def des_encrypt(key8: bytes, data: bytes) -> bytes:
    """Single-DES-ECB encrypt under an 8-byte key ."""
    return tdes_encrypt(key8, data)


def des_decrypt(key8: bytes, data: bytes) -> bytes:
    """Single-DES-ECB decrypt under an 8-byte key ."""
    return tdes_decrypt(key8, data)


def aes_encrypt(key: bytes, data: bytes) -> bytes:
    """AES-ECB encrypt ``data`` (a multiple of 16 bytes)."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def aes_decrypt(key: bytes, data: bytes) -> bytes:
    """AES-ECB decrypt ``data`` (a multiple of 16 bytes)."""
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """The full 16-byte AES-CMAC (NIST SP 800-38B, RFC 4493) of ``data``."""
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()
