"""MACs at the link's encode boundary: seal each financial request, check each answer.

The link calls :meth:`MacGuard.prepare` with the field dict of a request it is about to encode.
For a financial request (:data:`MAC_MTIS`) with keys to use, it returns the fields with a
placeholder MAC (and, under DUKPT, the KSN in DE62) and a :class:`Sealing`; the link encodes
them, lets :meth:`Sealing.seal` put the real MAC over the bytes from the MTI on, sends, and
checks the answer's bytes as received with :meth:`Sealing.answer_ok` -- never a re-encoding.
The key that sealed a request is the key its answer is checked with, even if a sign-on
rotated the keys in between.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from protocol.codec import Codec
from protocol.security.mac import MacScheme
from protocol.security.wire import MAC_LENGTH, MAC_PLACEHOLDER, mac_matches, mac_scheme_for, seal
from terminal.security.state import SIGN_ON_AGAIN, MacKeys, TerminalSecurity, mac_setting

#: The requests that carry a MAC (with their repeats; their answers carry one too), for a
#: profile that does not list its own (``mac_mtis``).
MAC_MTIS = frozenset({"0100", "0200", "0220", "0221", "0400", "0401", "0420", "0421"})
#: The MAC field of a message with a secondary bitmap.
SECONDARY_MAC_FIELD = "128"
#: The field that carries a DUKPT terminal's KSN in a request.
KSN_FIELD = "62"

Fields = dict[str, str]


class MacFault(enum.Enum):
    """A deliberate MAC fault for the next sealed request (scenario ``mac: bad | missing``)."""

    BAD = "bad"
    MISSING = "missing"


@dataclass(frozen=True)
class Sealing:
    """How one request is sealed and its answer checked.

    :ivar offset: bytes before the MTI in an encoded payload (TPDU, message header).
    """

    scheme: MacScheme
    keys: MacKeys
    mac_field: str
    offset: int
    fault: MacFault | None = None
    unsealed: frozenset[str] = SIGN_ON_AGAIN

    def seal(self, payload: bytes) -> bytes:
        """``payload`` (encoded with the placeholder MAC last) with its real MAC."""
        if self.fault is MacFault.MISSING:
            return payload
        head, message = payload[: self.offset], payload[self.offset :]
        sealed = head + seal(message, self.scheme, self.keys.request)
        if self.fault is MacFault.BAD:
            return sealed[:-1] + bytes([sealed[-1] ^ 0x01])
        return sealed

    def answer_ok(self, payload: bytes, fields: Mapping[str, str]) -> bool:
        """True when the answer's MAC matches the bytes received.

        An answer without a MAC is accepted only when it is one of the refusals in
        :attr:`unsealed` (by default a security reason,
        :data:`~terminal.security.state.SIGN_ON_AGAIN`): a host that could not check the
        request's MAC, or has no keys for this terminal, cannot MAC its answer either.
        """
        if not any(f in fields for f in (self.mac_field, SECONDARY_MAC_FIELD)):
            return fields.get("39") in self.unsealed
        message = payload[self.offset :]
        return len(message) > MAC_LENGTH and mac_matches(message, self.scheme,
                                                         self.keys.response)


class MacGuard:
    """Seals the requests of one terminal with the keys its :class:`TerminalSecurity` holds.

    :ivar fault: applied to the next request that would be sealed, then cleared; None in
        normal use.
    :ivar unsealed: the answers (DE39) accepted without a MAC: those a host sends before or
        instead of checking the request's MAC.
    """

    def __init__(self, security: TerminalSecurity, codec: Codec,
                 unsealed: frozenset[str] = SIGN_ON_AGAIN) -> None:
        self.security = security
        self.unsealed = unsealed
        self.profile = codec.profile
        self.mac_field = str(mac_setting(codec.profile)[0])
        self.mac_mtis: frozenset[str] = getattr(codec.profile, "mac_mtis", None) or MAC_MTIS
        header = codec.profile.message_header
        self.offset = (codec.profile.tpdu.size if codec.profile.tpdu else 0) + (
            header.size if header else 0)
        self.fault: MacFault | None = None

    def prepare(self, fields: Mapping[str, str]) -> tuple[Fields, Sealing | None]:
        """The fields to encode, and the sealing to apply (None: this message has no MAC)."""
        out = dict(fields)
        if out.get("t") not in self.mac_mtis or not self.security.can_mac:
            return out, None
        if self.security.dukpt is not None and KSN_FIELD not in out:
            out[KSN_FIELD] = self.security.next_ksn()
        keys = self.security.mac_keys(out.get(KSN_FIELD))
        if keys is None:
            return out, None
        fault, self.fault = self.fault, None
        if fault is not MacFault.MISSING:
            out[mac_field_for(out, self.mac_field)] = MAC_PLACEHOLDER
        scheme = mac_scheme_for(mac_setting(self.profile)[1], keys.request)
        return out, Sealing(scheme, keys, self.mac_field, self.offset, fault, self.unsealed)


def mac_field_for(fields: Mapping[str, str], primary: str) -> str:
    """The MAC field of ``fields``: the last one, DE128 when a field needs the secondary bitmap.

    ``primary`` is the profile's MAC field (DE64 on the generic profiles).
    """
    secondary = any(k.isdigit() and int(k) > 64 for k in fields)
    return SECONDARY_MAC_FIELD if secondary and primary == "64" else primary
