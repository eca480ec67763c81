"""The keys one terminal session holds, and what it builds from them.

A terminal uses one of two key schemes:

* **master/session**: a TMK from the key store; each approved sign-on (0810) carries fresh
  working keys wrapped under it (:func:`protocol.security.wire.key_block_text` in DE62), which
  :meth:`TerminalSecurity.accept_sign_on` unwraps, checking every check value;
* **TDES DUKPT**: an initial key and KSN from the key store; every MAC'd message uses the keys
  of the next KSN, which travels in DE62 (20 hex digits) and is saved before it is used.

:class:`TerminalSecurity` answers the questions the rest of the terminal asks: which keys seal a
request and check its answer (:meth:`mac_keys`), and the DE52/DE53 of a PIN
(:meth:`pin_data`). It never logs, prints or stores a working key, a PIN or a PIN block.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.fields import field_table
from protocol.security import (
    TDES_DUKPT,
    DukptKeys,
    DukptTerminal,
    Key,
    KeyCheckError,
    KeyFormatError,
    KeyWrapError,
    Ksn,
    PinBlockFormat,
    SecurityError,
    WorkingKeys,
    encipher_pin,
)
from protocol.security.wire import (
    ControlLayout,
    KeyManagement,
    SecurityControl,
    key_block_bytes,
    working_key_algorithm,
)
from protocol.specs import WireProfile
from terminal.security.keystore import KeyStore

#: DE39 values after which the terminal signs on again for fresh keys: 63 (security violation,
#: the generic MAC failure), A0 (China UnionPay MAC failure), 77 (sign on first).
SIGN_ON_AGAIN = frozenset({"63", "A0", "77"})
#: How many sign-ons in a row the terminal tries when the working keys fail their check values.
SIGN_ON_TRIES = 3
#: What the generic profiles use until a profile names its MAC field and scheme.
DEFAULT_MAC_FIELD, DEFAULT_MAC_SCHEME = 64, "x9.19"


class SecurityUnavailable(Exception):
    """The terminal cannot do what a transaction needs (no PIN key, no room for the block)."""


class SignOnKeyError(Exception):
    """The working keys of a sign-on could not be used; ``str()`` says which and why."""


@dataclass(frozen=True)
class MacKeys:
    """The keys of one MAC'd exchange: the request's and the one its answer is checked with."""

    request: Key
    response: Key


def mac_setting(profile: WireProfile) -> tuple[int, str]:
    """(MAC field number, MAC scheme name for TDES keys) of ``profile``, with the generic
    default."""
    return (getattr(profile, "mac_field", None) or DEFAULT_MAC_FIELD,
            getattr(profile, "mac_scheme", None) or DEFAULT_MAC_SCHEME)


class TerminalSecurity:
    """The key state of one terminal (see the module docstring).

    :ivar tmk: the terminal master key, or None.
    :ivar working: the working keys of the last sign-on, or None.
    """

    def __init__(self, profile: WireProfile, store: KeyStore | None = None,
                 tmk: Key | None = None,
                 dukpt: tuple[DukptTerminal[Ksn], Key] | None = None) -> None:
        """Keys from ``store`` (the data directory), or given (a scenario's, kept in memory)."""
        self.profile = profile
        self.store = store
        self.tmk = tmk if tmk is not None else (store.load_tmk() if store else None)
        loaded = dukpt if dukpt is not None else (store.load_dukpt() if store else None)
        self.dukpt: DukptTerminal[Ksn] | None = loaded[0] if loaded else None
        self._initial: Key | None = loaded[1] if loaded else None
        self.working: WorkingKeys | None = None

    # -- sign-on -----------------------------------------------------------------------------

    def accept_sign_on(self, key_block: str | None) -> WorkingKeys | None:
        """Unwrap the working keys an approved 0810 carried; None when it carried none.

        :raises SignOnKeyError: the block is malformed, does not fit the TMK, or a key fails its
            check value (the message names the key and both check values). The keys held so
            far are dropped: a terminal must not go on with keys it cannot trust.
        """
        if not key_block:
            return self.working
        if self.tmk is None:
            raise SignOnKeyError("the host sent working keys but this terminal has no TMK; "
                                 "import one with poslab-terminal keys import")
        try:
            self.working = WorkingKeys.unwrap(self.tmk, key_block_bytes(key_block),
                                              working_key_algorithm(self.tmk.algorithm))
        except (KeyCheckError, KeyWrapError, SecurityError) as exc:
            self.working = None
            raise SignOnKeyError(f"working keys refused: {exc}") from None
        return self.working

    def forget_keys(self) -> None:
        """Drop the working keys (sign-off, or keys that failed)."""
        self.working = None

    def kcvs(self) -> dict[str, str]:
        """Check values of the keys held, by name (public: what key-state checks compare)."""
        out: dict[str, str] = {}
        if self.tmk is not None:
            out["tmk"] = self.tmk.kcv().hex().upper()
        if self.working is not None:
            out["pin"] = self.working.pin.kcv().hex().upper()
            out["mac"] = self.working.mac.kcv().hex().upper()
            if self.working.data is not None:
                out["data"] = self.working.data.kcv().hex().upper()
        if self.dukpt is not None:
            out["ksn"] = str(self.dukpt.ksn)
        return out

    # -- per message -------------------------------------------------------------------------

    @property
    def can_mac(self) -> bool:
        """True when financial messages are MAC'd: working keys from a sign-on, or DUKPT."""
        return self.dukpt is not None or self.working is not None

    @property
    def can_encipher_pin(self) -> bool:
        """True when a PIN can be sent: a PIN key from a sign-on, or DUKPT."""
        return self.can_mac

    def next_ksn(self) -> str:
        """Advance the DUKPT counter, save it, and return the new KSN (20 hex digits)."""
        assert self.dukpt is not None and self._initial is not None
        self.dukpt.ksn = self.dukpt.ksn.next()
        if self.store is not None:
            self.store.save_dukpt(self.dukpt, self._initial)
        return str(self.dukpt.ksn)

    def mac_keys(self, ksn: str | None) -> MacKeys | None:
        """The keys that seal a request (with DUKPT: of ``ksn``) and check its answer."""
        if self.dukpt is not None and self._initial is not None and ksn:
            keys = self.dukpt_keys(ksn)
            return MacKeys(keys.mac_request, keys.mac_response)
        if self.working is not None:
            return MacKeys(self.working.mac, self.working.mac)
        return None

    def dukpt_keys(self, ksn: str) -> DukptKeys[Ksn]:
        """Every key of the DUKPT transaction ``ksn`` (derived from the initial key)."""
        assert self._initial is not None
        return TDES_DUKPT.transaction_keys(self._initial, Ksn.from_hex(ksn))

    def pin_data(self, pin: str, pan: str) -> tuple[str, str, str | None]:
        """(DE52 hex, DE53 digits, KSN or None) for ``pin`` entered with the card ``pan``.

        With DUKPT the PIN uses the next KSN, which the request must then carry in DE62.

        :raises SecurityUnavailable: no PIN key, or the profile's DE52 is too small for the
            block the key calls for.
        """
        ksn: str | None = None
        if self.dukpt is not None:
            ksn = self.next_ksn()
            key = self.dukpt_keys(ksn).pin
            management = KeyManagement.TDES_DUKPT
        elif self.working is not None:
            key, management = self.working.pin, KeyManagement.MASTER_SESSION
        else:
            raise SecurityUnavailable("no PIN key yet: the terminal must sign on and receive "
                                      "working keys before it can take a PIN")
        block_format = PinBlockFormat.for_key(key)
        room = field_table(self.profile.table).get("52")
        if room is not None and room.max_len < block_format.block_size:
            raise SecurityUnavailable(
                f"the {key.algorithm.value} PIN key needs an ISO {block_format.value} PIN block "
                f"of {block_format.block_size} bytes, but DE52 of profile {self.profile.name} "
                f"carries {room.max_len}")
        block = encipher_pin(key, pin, pan)
        try:
            control = SecurityControl(block_format, key.algorithm, management).text(
                ControlLayout(self.profile.security_control))
        except KeyFormatError as exc:
            raise SecurityUnavailable(f"profile {self.profile.name}: {exc}") from None
        return block.get_secret_value().hex().upper(), control, ksn
