"""Payment-security primitives shared by host and terminal: keys, key wrapping, MACs,
PIN blocks and DUKPT.

Pure: no I/O. Built on ``cryptography`` (TDES from its ``decrepit`` namespace, AES, CMAC,
RFC 3394 key wrap) and ``pydukpt`` for TDES DUKPT; AES DUKPT is written here. Secret values
(:class:`Key`, :class:`PinBlock`) never render their bytes and refuse to be pickled. Test
keys only: there is no HSM here, and no real card data belongs near it.

Modules: :mod:`~protocol.security.keys` (key values, check values, generation),
:mod:`~protocol.security.wrap` (working keys under the TMK), :mod:`~protocol.security.mac`
(ISO 9797-1, X9.19, AES-CMAC, CUP ECB, the scheme registry),
:mod:`~protocol.security.pinblock` (ISO 9564 formats 0 and 4),
:mod:`~protocol.security.dukpt` (ANSI X9.24-1 TDES DUKPT),
:mod:`~protocol.security.aes_dukpt` (ANSI X9.24-3 AES DUKPT),
:mod:`~protocol.security.dukpt_roles` (host and terminal sides of either),
:mod:`~protocol.security.errors`.
"""

from protocol.security.aes_dukpt import AES_DUKPT, AesKsn
from protocol.security.dukpt import TDES_DUKPT, Ksn
from protocol.security.dukpt_roles import DukptHost, DukptKeys, DukptScheme, DukptTerminal
from protocol.security.errors import (
    KeyCheckError,
    KeyFormatError,
    KeyWrapError,
    KsnExhaustedError,
    PinBlockError,
    SecurityError,
)
from protocol.security.keys import MASTER_KEY_ALGORITHMS, Key, KeyAlgorithm
from protocol.security.mac import MAC_SCHEMES, MacScheme, Padding, get_mac_scheme
from protocol.security.pinblock import (
    PinBlock,
    PinBlockFormat,
    decipher_pin,
    encipher_pin,
    verify_pin,
)
from protocol.security.wrap import WorkingKeys, WrappedKey, unwrap_key, wrap_key

__all__ = [
    "AES_DUKPT", "MAC_SCHEMES", "MASTER_KEY_ALGORITHMS", "TDES_DUKPT", "AesKsn", "DukptHost",
    "DukptKeys", "DukptScheme", "DukptTerminal", "Key", "KeyAlgorithm", "KeyCheckError",
    "KeyFormatError", "KeyWrapError", "Ksn", "KsnExhaustedError", "MacScheme", "Padding",
    "PinBlock", "PinBlockError", "PinBlockFormat", "SecurityError", "WorkingKeys", "WrappedKey",
    "decipher_pin", "encipher_pin", "get_mac_scheme", "unwrap_key", "verify_pin", "wrap_key",
]  # fmt: skip
