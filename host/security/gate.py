"""The host's security checks: MAC on requests and responses, sign-on keys, PIN blocks.

:class:`HostSecurity` is what the service and the server call:

* :meth:`HostSecurity.authenticate` -- the pipeline's authenticate stage, before anything is
  booked: a MAC'd message from a terminal whose MAC enforcement is on must carry a MAC that
  verifies over the bytes as received (:attr:`host.pipeline.request.IsoRequest.message`);
  otherwise the answer is the MAC-failure code with ``MAC_FAILED`` in DE44, or "sign on
  first" when the terminal has no keys yet. Nothing is booked for either.
  A DUKPT request also has its KSN counter checked against the counters its device used
  (:mod:`host.security.ksn_guard`); :meth:`HostSecurity.admitted` stores the counter in the
  request's write transaction and :meth:`HostSecurity.load` reads the stored ones at start.
* :meth:`HostSecurity.sign_on` -- an approved sign-on (0800, DE70 001) of a terminal with a TMK
  gets fresh working keys, wrapped under the TMK in DE62; the old keys stop working.
* :meth:`HostSecurity.check_pin` -- a financial request with DE52 gets its PIN block checked
  against the card catalogue: wrong 55, too many wrong in a row 75, malformed block or DE53
  the PIN-format code. The clear PIN never leaves :func:`protocol.security.verify_pin`.
* :func:`encode_response` (:mod:`host.security.sealing`) -- the one place responses are encoded:
  a response to a request whose MAC verified is MAC'd under the matching key.

Which working keys a TMK gets and which MAC scheme a key takes are the wire contract's
(:func:`~protocol.security.wire.working_key_algorithm`,
:func:`~protocol.security.wire.mac_scheme_for`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection

from host.cards import find_card
from host.config import HostConfig
from host.ledger import ChainKey
from host.pipeline.replies import Reply, plain_reply
from host.rules import Decision
from host.security import pin_tries
from host.security.kek import KeyEncryptionKey
from host.security.ksn_guard import KsnGuard
from host.security.sessions import Sessions
from host.security.tmk_store import TmkStore
from host.security_config import TerminalSecurity
from protocol.codes import NetworkCode, RuleId
from protocol.masking import Pan
from protocol.messages import NetworkRequest, NetworkResponse
from protocol.security import (
    TDES_DUKPT,
    DukptHost,
    DukptKeys,
    Key,
    Ksn,
    MacScheme,
    PinBlock,
    SecurityError,
    WorkingKeys,
    verify_pin,
    wire,
)
from protocol.specs import DEFAULT_PROFILE, WireProfile, get_profile

log = logging.getLogger(__name__)

@dataclass(frozen=True, kw_only=True)
class SignOnResponse(NetworkResponse):
    """An 0810 to a sign-on that carries the new working keys, wrapped, in DE62."""

    key_block: str = field(repr=False)

    def to_fields(self) -> dict[str, str]:
        """The field dict for the codec."""
        out = super().to_fields()
        out["62"] = self.key_block
        return out


@dataclass(frozen=True)
class _MacKeys:
    request: Key
    response: Key


class HostSecurity:
    """Keys, MACs and PINs for one host (see the module docstring)."""

    def __init__(self, config: HostConfig, chain_key: ChainKey,
                 profile: WireProfile | None = None) -> None:
        self.config = config
        self.settings = config.security
        self.profile = profile or get_profile(DEFAULT_PROFILE)
        self.tmks = TmkStore(self.settings, KeyEncryptionKey(chain_key))
        self.sessions = Sessions()
        self.ksn_guard = KsnGuard()  # DUKPT: one message per counter
        self._terminals = {t.tid: t for t in self.settings.terminals}
        bdk = self.settings.base_derivation_key()
        self._dukpt = DukptHost(TDES_DUKPT, bdk) if bdk is not None else None

    def __repr__(self) -> str:
        return f"HostSecurity(terminals={len(self.settings.terminals)})"

    def use_profile(self, profile: WireProfile) -> None:
        """Take the MAC'd messages and the MAC scheme from the wire profile the host speaks."""
        self.profile = profile

    @property
    def mac_field(self) -> str:
        """The field-dict key of the profile's MAC field (DE64 on the generic profiles)."""
        return str(self.profile.mac_field or 64)

    def scheme(self, key: Key) -> MacScheme:
        """The MAC scheme for ``key``: the profile's for TDES keys, AES-CMAC for AES keys."""
        return wire.mac_scheme_for(self.profile.mac_scheme, key)

    def describe(self, conn: Connection) -> list[dict[str, Any]]:
        """What the admin API shows per terminal: settings and check values, never a key."""
        entries = {e.tid: e for e in self.tmks.entries(conn)}
        tids = sorted(set(entries) | {t.tid for t in self.settings.terminals})
        out = []
        for tid in tids:
            entry, terminal, session = (entries.get(tid), self._terminals.get(tid),
                                        self.sessions.keys(tid))
            out.append({
                "tid": tid,
                "algorithm": entry.algorithm if entry else None,
                "kcv": entry.kcv if entry else None,
                "source": entry.source if entry else None,
                "mac": terminal.mac if terminal else "off",
                "key_management": terminal.key_management if terminal else "master-session",
                "signed_on": session is not None,
                "pin_key_kcv": session.pin.kcv(4).hex().upper() if session else None,
                "mac_key_kcv": session.mac.kcv(4).hex().upper() if session else None,
            })
        return out

    # -- MAC on requests --------------------------------------------------------------------

    def authenticate(self, message: bytes, fields: Mapping[str, str]) -> Reply | None:
        """A refusal for a request whose MAC does not hold, or None to go on (see module).

        ``message`` is the request as received from the MTI on (empty when it did not come off
        the wire, which counts as no MAC)."""
        terminal = self._mac_checked(fields)
        if terminal is None:
            return None
        mti, tid = fields.get("t", ""), fields.get("41", "")
        keys = self._mac_keys(terminal, fields)
        if keys is None:
            if terminal.mac == "after-sign-on" and terminal.key_management != "dukpt":
                return None
            return self._refuse(fields, self.settings.sign_on_first_code,
                                RuleId.SIGN_ON_REQUIRED)
        if not message or self.mac_field not in fields:
            return self._refuse(fields, self.settings.mac_failure_code, RuleId.MAC_FAILED,
                                "MISSING")
        if not wire.mac_matches(message, self.scheme(keys.request), keys.request):
            return self._refuse(fields, self.settings.mac_failure_code, RuleId.MAC_FAILED)
        if terminal.key_management == "dukpt" and \
                not self.ksn_guard.admit(Ksn.from_hex(fields["62"]), message):
            # A counter already used for another message: a replay, even with a good MAC.
            return self._refuse(fields, self.settings.mac_failure_code, RuleId.MAC_FAILED,
                                "KSN_REUSED")
        self.sessions.expect_response(tid, fields.get("11", ""), mti, keys.response)
        return None

    def load(self, conn: Connection) -> None:
        """At start: what is kept in the database across restarts (the DUKPT counters)."""
        self.ksn_guard.load(conn)

    def admitted(self, conn: Connection, message: bytes, fields: Mapping[str, str],
                 now_ms: int) -> None:
        """In the write transaction of a request :meth:`authenticate` let through: store the
        DUKPT counter it used, so it is durable when the answer leaves and is undone with the
        request if that rolls back (:mod:`host.security.ksn_guard`)."""
        terminal = self._mac_checked(fields)
        if terminal is None or terminal.key_management != "dukpt":
            return  # not a message the guard admitted
        self.ksn_guard.save(conn, Ksn.from_hex(fields["62"]), message, now_ms)

    def _mac_checked(self, fields: Mapping[str, str]) -> TerminalSecurity | None:
        """The request's terminal when its MACs are checked on this message type, else None."""
        terminal = self._terminals.get(fields.get("41", ""))
        if terminal is None or terminal.mac == "off" or \
                fields.get("t", "") not in self.profile.mac_mtis:
            return None
        return terminal

    def _mac_keys(self, terminal: TerminalSecurity, fields: Mapping[str, str]
                  ) -> _MacKeys | None:
        if terminal.key_management == "dukpt":
            derived = self._dukpt_keys(fields)
            if derived is None:
                return None
            return _MacKeys(derived.mac_request, derived.mac_response)
        session = self.sessions.keys(terminal.tid)
        return _MacKeys(session.mac, session.mac) if session is not None else None

    def _dukpt_keys(self, fields: Mapping[str, str]) -> DukptKeys[Ksn] | None:
        text = fields.get("62", "")
        if self._dukpt is None or len(text) != 20:
            return None
        try:
            return self._dukpt.keys_for(Ksn.from_hex(text))
        except SecurityError:
            return None

    @staticmethod
    def _refuse(fields: Mapping[str, str], code: str, rule: RuleId, detail: str = "") -> Reply:
        text = f"{rule.value}:{detail}" if detail else rule.value
        return plain_reply(fields, code, text, kind="security")

    # -- responses --------------------------------------------------------------------------

    def seal(self, fields: Mapping[str, str], encode: Callable[[Mapping[str, str]], bytes],
             body_offset: int) -> bytes:
        """``encode(fields)``, MAC'd when the request it answers had a good MAC."""
        key = self.sessions.response_key(fields.get("41", ""), fields.get("11", ""),
                                         fields.get("t", ""))
        if key is None:
            return encode(fields)
        payload = encode({**fields, self.mac_field: wire.MAC_PLACEHOLDER})
        return payload[:body_offset] + wire.seal(payload[body_offset:], self.scheme(key), key)

    # -- sign-on ----------------------------------------------------------------------------

    def sign_on(self, conn: Connection, request: NetworkRequest,
                response: NetworkResponse, *, data_key: bool = True,
                single_length: bool = False) -> NetworkResponse:
        """The 0810 for ``request``: with fresh working keys when it is an approved sign-on of
        a terminal with a TMK (which then replace the old keys); a sign-off drops the keys.
        ``data_key``: send a track-data key after the PIN and MAC keys (CUP 60.3 ``004``);
        ``single_length``: single-length DES keys (CUP 60.3 ``001``), which an AES TMK
        cannot carry (96)."""
        tid = request.terminal_id
        if request.code is NetworkCode.SIGN_OFF:
            self.sessions.drop(tid)
        if request.code is not NetworkCode.SIGN_ON or response.response_code != "00":
            return response
        try:
            tmk = self.tmks.master_key(conn, tid)
            if tmk is None:
                return response
            algorithm = wire.working_key_algorithm(tmk.algorithm, single_length=single_length)
        except SecurityError as exc:
            log.error("sign-on of %s refused: %s", tid, exc)
            return replace(response, response_code="96", rule=RuleId.SYSTEM_ERROR.value)
        keys = WorkingKeys.generate(algorithm, with_data=data_key)
        block = wire.key_block_text(keys.wrap(tmk))
        self.sessions.install(tid, keys)
        log.info("terminal %s signed on: PIN key %s, MAC key %s", tid,
                 keys.pin.kcv(4).hex().upper(), keys.mac.kcv(4).hex().upper())
        return SignOnResponse(**response.__dict__, key_block=block)

    # -- PIN --------------------------------------------------------------------------------

    def check_pin(self, conn: Connection, fields: Mapping[str, str], pan: Pan | None,
                  business_date: str, now_ms: int, card_hash: Callable[[Pan], str]
                  ) -> Decision | None:
        """A decline for a wrong, locked or malformed PIN, or None to go on.

        Requests without DE52 pass unless the card is one that requires a PIN."""
        card = find_card(self.config, pan) if pan is not None else None
        if "52" not in fields or pan is None:
            if card is not None and card.pin_required and pan is not None:
                return Decision(False, RuleId.INCORRECT_PIN.code, RuleId.INCORRECT_PIN,
                                ("pin",), detail="REQUIRED")
            return None
        tid = fields.get("41", "")
        terminal = self._terminals.get(tid)
        dukpt = terminal is not None and terminal.key_management == "dukpt"
        if not dukpt and self.sessions.keys(tid) is None:
            if terminal is None and self.tmks.master_key(conn, tid) is None:
                return None  # a terminal without keys: its PIN blocks are not checked
            return Decision(False, self.settings.sign_on_first_code, RuleId.SIGN_ON_REQUIRED,
                            ("pin",))
        try:
            control = wire.SecurityControl.parse(
                fields.get("53", ""), wire.ControlLayout(self.profile.security_control))
            key = self._pin_key(dukpt, fields, control)
            if control.algorithm is not key.algorithm:
                raise SecurityError(f"DE53 digit 2 says {control.algorithm.value}")
            block = PinBlock(bytes.fromhex(fields["52"]), control.pin_format)
            expected = card.pin if card is not None else None
            if expected is None:
                # No catalogue PIN to compare with: the block must still be well formed.
                verify_pin(key, block, pan.digits, "0000")
                return None
            correct = verify_pin(key, block, pan.digits, expected)
        except (SecurityError, ValueError) as exc:
            log.info("PIN block refused: %s", type(exc).__name__)
            return Decision(False, self.settings.pin_format_error_code, RuleId.PIN_FORMAT_ERROR,
                            ("pin",))
        outcome = pin_tries.record_attempt(conn, card_hash(pan), business_date, correct,
                                           self.settings.pin_tries, now_ms)
        if outcome is pin_tries.PinOutcome.ACCEPTED:
            return None
        rule = (RuleId.INCORRECT_PIN if outcome is pin_tries.PinOutcome.WRONG
                else RuleId.PIN_TRIES_EXCEEDED)
        return Decision(False, rule.code, rule, ("pin",))

    def _pin_key(self, dukpt: bool, fields: Mapping[str, str],
                 control: wire.SecurityControl) -> Key:
        expected = (wire.KeyManagement.TDES_DUKPT if dukpt
                    else wire.KeyManagement.MASTER_SESSION)
        if control.management is not expected:
            raise SecurityError(f"DE53 digit 3 says {control.management.name}")
        if dukpt:
            derived = self._dukpt_keys(fields)
            if derived is None:
                raise SecurityError("no usable KSN in DE62")
            return derived.pin
        session = self.sessions.keys(fields.get("41", ""))
        if session is None:
            raise SecurityError("the terminal signed off")
        return session.pin

