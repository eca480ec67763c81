"""The exception tree of the security primitives.

::

    SecurityError              anything wrong with a key, a MAC input or a PIN block
    ├── KeyFormatError         key text or bytes of the wrong length, kind or alphabet
    ├── KeyCheckError          a key's check value differs from the one it came with
    ├── KeyWrapError           a wrapped key cannot be unwrapped (corrupt or wrong KEK)
    ├── PinBlockError          a PIN block is malformed (the host answers "PIN format error")
    └── KsnExhaustedError      a DUKPT device has used its last transaction counter

Messages never contain key bytes, a clear PIN or a PIN block: they name the thing that
was wrong (a length, a nibble position, the key kind, a check value, which is public).
"""

from __future__ import annotations


class SecurityError(Exception):
    """Base of every failure raised by :mod:`protocol.security`."""


class KeyFormatError(SecurityError, ValueError):
    """A key given as hex or bytes has the wrong length or is not hexadecimal."""


class KeyCheckError(SecurityError):
    """The key check value computed from a key differs from the expected one.

    :ivar expected: the check value that came with the key, upper-case hex.
    :ivar computed: the check value of the key actually received, upper-case hex.
    """

    def __init__(self, what: str, expected: str, computed: str) -> None:
        self.expected = expected
        self.computed = computed
        super().__init__(f"{what}: check value {computed} does not match expected {expected}")


class KeyWrapError(SecurityError):
    """A wrapped key is corrupt, has the wrong length, or was wrapped under another KEK."""


class PinBlockError(SecurityError, ValueError):
    """A PIN block is not a well-formed block of the expected format for this PAN."""


class KsnExhaustedError(SecurityError):
    """The DUKPT transaction counter has no next value: the device must be re-keyed."""
