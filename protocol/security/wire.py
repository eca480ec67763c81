"""Where security data sits in a message, and which bytes a MAC covers.

Host and terminal must agree byte for byte, so the layout lives here, once:

* **MAC span.** A MAC covers the message as sent, from the MTI up to (excluding) the MAC
  field, with the MAC field's bitmap bit already set: the length header, the TPDU and the
  fixed message header are not covered. The MAC field is the last field of the message
  (DE64 without a secondary bitmap, DE128 with one), so the span is the message minus its last
  :data:`MAC_LENGTH` bytes. A sender encodes the message with a placeholder MAC
  (:data:`MAC_PLACEHOLDER`) and then :func:`seal` puts the real one in; a receiver checks the
  bytes it received with :func:`mac_matches` and never re-encodes them.
* **Working keys at sign-on.** The 0810 carries the wrapped working keys — PIN key, MAC key,
  optionally data key, each ciphertext followed by its check value (the layout of
  :meth:`protocol.security.WorkingKeys.wrap`). A binary field carries the bytes; a text field
  (the generic profiles' DE62) carries them as upper-case hex (:func:`key_block_text`).
  Working keys are double-length TDES under a TDES TMK of either length (ISO 9797-1
  algorithm 3 takes a double-length key) and AES-128 under an AES TMK
  (:func:`working_key_algorithm`); a CUP sign-on with 60.3 ``001`` asks for single-length
  DES keys instead, each one 8-byte ECB block under the TDES TMK.
* **MAC scheme.** The profile names the scheme for TDES keys; AES keys use AES-CMAC
  (:func:`mac_scheme_for`).
* **Security control (DE53, n16).** Digit 1: the ISO 9564 PIN block format (``0`` or ``4``);
  digit 2: the key algorithm (``2`` TDES double length, ``3`` TDES triple length, ``8``
  AES-128); digit 3: key management (``0`` master/session keys from sign-on, ``1`` TDES DUKPT,
  ``2`` AES DUKPT); digits 4-16 zero. :class:`SecurityControl` reads and writes it.
  The China UnionPay layout (:attr:`ControlLayout.CUP`) spells the same facts its own way:
  53.1 PIN block format (``2``: ANSI X9.8 with the PAN, which is ISO 9564 format 0; ``1``
  without the PAN), 53.2 algorithm (``6``: double-length TDES; ``0`` single DES), 53.3 track
  data encryption (``0`` none), 13 zeros -- ``2600000000000000``, or ``2000000000000000``
  under the single-length keys of a 60.3 ``001`` sign-on. CUP keys always come from the
  sign-on, so it has no key-management digit.
"""

from __future__ import annotations

import binascii
import enum
from dataclasses import dataclass

from protocol.security.errors import KeyFormatError
from protocol.security.keys import Key, KeyAlgorithm
from protocol.security.mac import MacScheme, get_mac_scheme
from protocol.security.pinblock import PinBlockFormat

MAC_LENGTH = 8
"""Bytes of a MAC field (DE64 or DE128, ``b 8``)."""

MAC_PLACEHOLDER = "00" * MAC_LENGTH
"""The MAC field value (hex text, as a field dict holds binary fields) to encode before sealing."""


def mac_span(message: bytes) -> bytes:
    """The bytes a MAC covers: ``message`` (MTI to the end) without its trailing MAC field."""
    if len(message) <= MAC_LENGTH:
        raise ValueError("message too short to carry a MAC field")
    return message[:-MAC_LENGTH]


def seal(message: bytes, scheme: MacScheme, key: Key) -> bytes:
    """``message`` (encoded with :data:`MAC_PLACEHOLDER` as its last field) with its real MAC."""
    span = mac_span(message)
    return span + scheme.compute(key, span)


def mac_matches(message: bytes, scheme: MacScheme, key: Key) -> bool:
    """True when the last :data:`MAC_LENGTH` bytes of ``message`` are the MAC of the rest."""
    return scheme.verify(key, mac_span(message), message[-MAC_LENGTH:])


def working_key_algorithm(tmk: KeyAlgorithm, *, single_length: bool = False) -> KeyAlgorithm:
    """The algorithm of the working keys a sign-on sends under a TMK of ``tmk``;
    ``single_length``: the terminal asked for single-length DES keys (CUP 60.3 ``001``).

    :raises KeyFormatError: single-length keys asked for under an AES TMK.
    """
    if single_length:
        if not tmk.is_tdes:
            raise KeyFormatError(
                f"single-length DES working keys cannot be sent under a {tmk.value} TMK")
        return KeyAlgorithm.DES
    return KeyAlgorithm.TDES_2KEY if tmk.is_tdes else KeyAlgorithm.AES_128


def mac_scheme_for(profile_scheme: str | None, key: Key) -> MacScheme:
    """The MAC scheme for ``key``: the profile's (X9.19 when it names none) for TDES keys,
    AES-CMAC for AES keys."""
    if not key.algorithm.is_tdes:
        return get_mac_scheme("aes-cmac")
    return get_mac_scheme(profile_scheme or "x9.19")


def key_block_text(block: bytes) -> str:
    """Wrapped working keys as the upper-case hex a text field carries."""
    return block.hex().upper()


def key_block_bytes(text: str) -> bytes:
    """The wrapped working keys from their hex text.

    :raises KeyFormatError: the text is not even-length hex.
    """
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raise KeyFormatError("working-key block is not hex text") from None


class KeyManagement(enum.Enum):
    """How the terminal's PIN and MAC keys are established (DE53 digit 3)."""

    MASTER_SESSION = "0"
    TDES_DUKPT = "1"
    AES_DUKPT = "2"


_ALGORITHM_DIGITS = {
    KeyAlgorithm.TDES_2KEY: "2",
    KeyAlgorithm.TDES_3KEY: "3",
    KeyAlgorithm.AES_128: "8",
}
_FORMAT_DIGITS = {PinBlockFormat.ISO_0: "0", PinBlockFormat.ISO_4: "4"}


class ControlLayout(enum.Enum):
    """How a wire profile spells DE53 (a profile names its layout in ``security_control``)."""

    POSLAB = "poslab"
    """Digit 1 PIN block format, digit 2 key algorithm, digit 3 key management."""
    CUP = "cup"
    """53.1 PIN block format, 53.2 algorithm, 53.3 track encryption (China UnionPay)."""


#: The DE53 the CUP layout carries for what poslab sends: ISO 9564 format 0 (ANSI X9.8
#: with the PAN) under a double-length TDES PIN key from the sign-on, tracks in clear.
CUP_CONTROL_TEXT = "2600000000000000"
#: The same under a single-length DES PIN key (sign-on 60.3 ``001``): 53.2 is ``0``.
CUP_SINGLE_DES_CONTROL_TEXT = "2000000000000000"


@dataclass(frozen=True)
class SecurityControl:
    """DE53 security-related control information: PIN block format, key algorithm, key scheme."""

    pin_format: PinBlockFormat
    algorithm: KeyAlgorithm
    management: KeyManagement = KeyManagement.MASTER_SESSION

    def text(self, layout: ControlLayout = ControlLayout.POSLAB) -> str:
        """The 16 digits of DE53 in ``layout``.

        :raises KeyFormatError: the layout has no spelling for these keys (CUP: only format 0
            under single- or double-length keys from the sign-on; poslab: no single DES).
        """
        if layout is ControlLayout.CUP:
            text = _CUP_TEXTS.get(self)
            if text is None:
                raise KeyFormatError(
                    f"the CUP DE53 cannot announce ISO format {self.pin_format.value} under "
                    f"{self.algorithm.value} keys ({self.management.name}): only format 0 "
                    "under single- or double-length keys from the sign-on")
            return text
        if self.algorithm not in _ALGORITHM_DIGITS:
            raise KeyFormatError(f"DE53 has no digit for {self.algorithm.value} keys")
        head = (_FORMAT_DIGITS[self.pin_format] + _ALGORITHM_DIGITS[self.algorithm]
                + self.management.value)
        return head.ljust(16, "0")

    @classmethod
    def parse(cls, text: str, layout: ControlLayout = ControlLayout.POSLAB) -> SecurityControl:
        """Read DE53 written in ``layout``.

        :raises KeyFormatError: not 16 digits, or a digit poslab does not know (named).
        """
        if len(text) != 16 or not text.isdigit():
            raise KeyFormatError("DE53 must be 16 digits")
        if layout is ControlLayout.CUP:
            return _parse_cup(text)
        formats = {v: k for k, v in _FORMAT_DIGITS.items()}
        algorithms = {v: k for k, v in _ALGORITHM_DIGITS.items()}
        if text[0] not in formats:
            raise KeyFormatError(f"DE53 digit 1: unknown PIN block format {text[0]!r}")
        if text[1] not in algorithms:
            raise KeyFormatError(f"DE53 digit 2: unknown key algorithm {text[1]!r}")
        try:
            management = KeyManagement(text[2])
        except ValueError:
            raise KeyFormatError(f"DE53 digit 3: unknown key management {text[2]!r}") from None
        return cls(formats[text[0]], algorithms[text[1]], management)


_CUP_TEXTS = {
    SecurityControl(PinBlockFormat.ISO_0, KeyAlgorithm.TDES_2KEY): CUP_CONTROL_TEXT,
    SecurityControl(PinBlockFormat.ISO_0, KeyAlgorithm.DES): CUP_SINGLE_DES_CONTROL_TEXT,
}
_CUP_ALGORITHMS = {"6": KeyAlgorithm.TDES_2KEY, "0": KeyAlgorithm.DES}
# What the CUP digits poslab cannot honour mean, for the error message.
_CUP_UNSUPPORTED = {
    0: {"1": "PIN block without the PAN (ANSI X9.8 format 1)"},
    2: {"1": "encrypted track data"},
}


def _parse_cup(text: str) -> SecurityControl:
    """The CUP DE53 (see the module docstring); other digits are named in the error."""
    for at in (0, 2):
        digit = text[at]
        if digit != CUP_CONTROL_TEXT[at]:
            what = _CUP_UNSUPPORTED[at].get(digit, f"unknown value {digit!r}")
            raise KeyFormatError(f"DE53 53.{at + 1}: {what} is not supported")
    algorithm = _CUP_ALGORITHMS.get(text[1])
    if algorithm is None:
        raise KeyFormatError(f"DE53 53.2: unknown value {text[1]!r} is not supported")
    return SecurityControl(PinBlockFormat.ISO_0, algorithm)
