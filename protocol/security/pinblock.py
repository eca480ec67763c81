"""ISO 9564-1 PIN blocks: format 0 under TDES keys, format 4 under AES keys.

**Format 0** (8 bytes) is the PIN field ``0 L P…P F…F`` (control 0, PIN length L, the
digits, F fill) XOR the PAN field ``0000`` + the 12 rightmost PAN digits excluding the check
digit. It is TDES-ECB encrypted under the PIN key.

**Format 4** (16 bytes, AES only) keeps PIN and PAN in separate 16-byte fields:

* PIN field: ``4 L P…P A…A`` filling 8 bytes, then 8 random bytes;
* PAN field: ``M`` (PAN length − 12, 0 when shorter) then the PAN, left-aligned
  (a PAN under 12 digits is right-aligned in 12 with leading zeros), zero-filled;

and is enciphered as block A = E(K, PIN field), block B = A XOR PAN field, result = E(K, B).
Deciphering runs the same steps backwards: D(K), XOR PAN field, D(K).

Clear PINs live only inside these functions: the host checks a PIN with :func:`verify_pin`,
which answers yes or no. A :class:`PinBlock` never renders its bytes, and a malformed block
raises :class:`~protocol.security.errors.PinBlockError` without quoting it.
"""

from __future__ import annotations

import enum
import hmac
import secrets
from collections.abc import Callable

from protocol.security import ciphers
from protocol.security.errors import PinBlockError
from protocol.security.keys import Key
from protocol.security.sealed import Sealed

PIN_DIGITS_MIN, PIN_DIGITS_MAX = 4, 12
PAN_DIGITS_MIN, PAN_DIGITS_MAX = 8, 19


class PinBlockFormat(enum.Enum):
    """The ISO 9564-1 formats poslab builds and parses."""

    ISO_0 = 0
    ISO_4 = 4

    @property
    def block_size(self) -> int:
        """Bytes in an enciphered block of this format."""
        return 8 if self is PinBlockFormat.ISO_0 else 16

    @classmethod
    def for_key(cls, key: Key) -> PinBlockFormat:
        """Format 0 for TDES PIN keys, format 4 for AES PIN keys."""
        return cls.ISO_0 if key.algorithm.is_tdes else cls.ISO_4


class PinBlock(Sealed):
    """An enciphered PIN block; ``repr`` shows its format only.

    :ivar format: the :class:`PinBlockFormat`.
    """

    __slots__ = ("_data", "_format")

    def __init__(self, data: bytes, block_format: PinBlockFormat) -> None:
        if len(data) != block_format.block_size:
            raise PinBlockError(
                f"an ISO {block_format.value} PIN block has {block_format.block_size} bytes,"
                f" not {len(data)}"
            )
        self._data = bytes(data)
        self._format = block_format

    @property
    def format(self) -> PinBlockFormat:
        """The block's format."""
        return self._format

    def get_secret_value(self) -> bytes:
        """The enciphered bytes, to put on the wire."""
        return self._data

    def __repr__(self) -> str:
        return f"PinBlock(ISO-{self._format.value})"

    __str__ = __repr__


def _check_pin(pin: str) -> None:
    if not (pin.isascii() and pin.isdigit() and PIN_DIGITS_MIN <= len(pin) <= PIN_DIGITS_MAX):
        raise ValueError(f"a PIN has {PIN_DIGITS_MIN} to {PIN_DIGITS_MAX} digits")


def _check_pan(pan: str) -> None:
    if not (pan.isascii() and pan.isdigit() and PAN_DIGITS_MIN <= len(pan) <= PAN_DIGITS_MAX):
        raise ValueError(
            f"a PAN has {PAN_DIGITS_MIN} to {PAN_DIGITS_MAX} digits, got {len(pan)} characters"
        )


def _pin_digits(nibbles: str, control: str, fill: str, fill_end: int) -> str:
    """The PIN in a clear PIN field written as upper-case hex, or PinBlockError."""
    if nibbles[0] != control:
        raise PinBlockError(f"PIN block control nibble is not {control}")
    length = int(nibbles[1], 16)
    if not PIN_DIGITS_MIN <= length <= PIN_DIGITS_MAX:
        raise PinBlockError(f"PIN block gives a PIN length of {length}, outside 4 to 12")
    pin = nibbles[2 : 2 + length]
    if not pin.isdigit():
        raise PinBlockError("PIN block has a non-decimal PIN digit")
    if nibbles[2 + length : fill_end] != fill * (fill_end - 2 - length):
        raise PinBlockError(f"PIN block fill is not all {fill}")
    return pin


def format0_pan_field(pan: str) -> bytes:
    """The 8-byte format 0 PAN field: 0000 + the 12 rightmost digits before the check digit."""
    _check_pan(pan)
    return bytes.fromhex(pan[:-1][-12:].rjust(16, "0"))


def format0_encode(pin: str, pan: str) -> bytes:
    """The clear 8-byte format 0 block for ``pin`` and ``pan``."""
    _check_pin(pin)
    pin_field = bytes.fromhex(f"0{len(pin):X}{pin}".ljust(16, "F"))
    return ciphers.xor(pin_field, format0_pan_field(pan))


def format0_decode(block: bytes, pan: str) -> str:
    """The PIN in a clear format 0 block, or :class:`PinBlockError` if it is malformed."""
    if len(block) != 8:
        raise PinBlockError(f"a clear format 0 block has 8 bytes, not {len(block)}")
    nibbles = ciphers.xor(block, format0_pan_field(pan)).hex().upper()
    return _pin_digits(nibbles, "0", "F", 16)


def format4_pin_field(pin: str, random_fill: bytes) -> bytes:
    """The 16-byte format 4 PIN field: ``4 L`` + digits + ``A`` fill, then 8 random bytes."""
    _check_pin(pin)
    if len(random_fill) != 8:
        raise ValueError("format 4 needs 8 random fill bytes")
    return bytes.fromhex(f"4{len(pin):X}{pin}".ljust(16, "A")) + random_fill


def format4_pan_field(pan: str) -> bytes:
    """The 16-byte format 4 PAN field: length indicator (PAN length − 12) and PAN, 0-filled."""
    _check_pan(pan)
    return bytes.fromhex(f"{max(0, len(pan) - 12)}{pan.rjust(12, '0')}".ljust(32, "0"))


def format4_decode_pin_field(field: bytes) -> str:
    """The PIN in a clear format 4 PIN field, or :class:`PinBlockError` if it is malformed."""
    if len(field) != 16:
        raise PinBlockError(f"a format 4 PIN field has 16 bytes, not {len(field)}")
    return _pin_digits(field.hex().upper(), "4", "A", 16)


def encipher_pin(
    pin_key: Key,
    pin: str,
    pan: str,
    *,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> PinBlock:
    """The PIN block for ``pin`` and ``pan`` under ``pin_key``: format 0 (TDES) or 4 (AES).

    ``random_bytes`` supplies the format 4 random fill (a test may fix it).
    """
    secret = pin_key.get_secret_value()
    if pin_key.algorithm.is_tdes:
        return PinBlock(
            ciphers.tdes_encrypt(secret, format0_encode(pin, pan)), PinBlockFormat.ISO_0
        )
    block_a = ciphers.aes_encrypt(secret, format4_pin_field(pin, random_bytes(8)))
    block_b = ciphers.xor(block_a, format4_pan_field(pan))
    return PinBlock(ciphers.aes_encrypt(secret, block_b), PinBlockFormat.ISO_4)


def decipher_pin(pin_key: Key, block: PinBlock, pan: str) -> str:
    """The clear PIN in ``block``. Prefer :func:`verify_pin`, which never returns it.

    :raises PinBlockError: the block's format does not fit the key, or it deciphers to a
        malformed block (wrong key, wrong PAN, or garbage).
    """
    expected = PinBlockFormat.for_key(pin_key)
    if block.format is not expected:
        raise PinBlockError(
            f"an ISO {block.format.value} PIN block cannot be read with a"
            f" {pin_key.algorithm.value} PIN key"
        )
    secret = pin_key.get_secret_value()
    data = block.get_secret_value()
    if expected is PinBlockFormat.ISO_0:
        return format0_decode(ciphers.tdes_decrypt(secret, data), pan)
    block_a = ciphers.xor(ciphers.aes_decrypt(secret, data), format4_pan_field(pan))
    return format4_decode_pin_field(ciphers.aes_decrypt(secret, block_a))


def verify_pin(pin_key: Key, block: PinBlock, pan: str, expected_pin: str) -> bool:
    """True when ``block`` carries ``expected_pin`` (the catalogue's); constant-time compare.

    :raises PinBlockError: the block is malformed (the host answers a format error, not a
        wrong PIN).
    """
    _check_pin(expected_pin)
    entered = decipher_pin(pin_key, block, pan)
    # Same-length operands, so the comparison time does not depend on the PIN length either.
    return hmac.compare_digest(
        entered.ljust(PIN_DIGITS_MAX).encode(), expected_pin.ljust(PIN_DIGITS_MAX).encode()
    )
