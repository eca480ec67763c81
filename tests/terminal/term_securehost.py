"""A secure variant of the fake host, written with pyiso8583 (through the codec) and the
``protocol.security`` primitives only: it issues working keys at sign-on, checks request MACs
over the bytes as received, checks PIN blocks against the catalogue PINs, derives DUKPT keys
from DE62, and MACs its answers. Knobs let a test break each step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from term_fakehost import FakeHostProtocol, FakeHostState

from protocol.messages import FinancialResponse, NetworkResponse
from protocol.security import (
    TDES_DUKPT,
    DukptHost,
    Key,
    KeyAlgorithm,
    Ksn,
    PinBlock,
    PinBlockFormat,
    WorkingKeys,
    get_mac_scheme,
    verify_pin,
)
from protocol.security.wire import MAC_PLACEHOLDER, key_block_text, mac_matches, seal

TMK_HEX = "0123456789ABCDEFFEDCBA9876543210"
TMK_KCV = "08D7B4"
BDK_HEX = "0123456789ABCDEFFEDCBA9876543210"
KSN0 = "FFFF9876543210E00000"
PINS = {"5555555555554444": "1234", "6212345678901265": "123456"}
MAC_MTIS = {"0100", "0200", "0220", "0221", "0400", "0401"}
X919 = get_mac_scheme("x9.19")


def tmk() -> Key:
    """The TMK the tests enrol."""
    return Key.from_hex(TMK_HEX, KeyAlgorithm.TDES_2KEY, kcv=TMK_KCV)


@dataclass
class SecureState(FakeHostState):
    """The fake host's state plus its keys and what it saw.

    :ivar bad_kcv_sign_ons: how many of the next sign-ons send a wrong MAC-key check value.
    :ivar bad_answer_mac: MAC answers with a flipped bit.
    :ivar force_code: answer every financial request with this DE39 (after the MAC check).
    """

    working: WorkingKeys | None = None
    dukpt: DukptHost[Ksn] | None = None
    bad_kcv_sign_ons: int = 0
    bad_answer_mac: bool = False
    force_code: str | None = None
    mac_results: list[bool] = field(default_factory=list)
    pin_results: list[str] = field(default_factory=list)
    ksns: list[str] = field(default_factory=list)
    wrong_pins: dict[str, int] = field(default_factory=dict)
    seen_fields: list[dict[str, str]] = field(default_factory=list)


class SecureHostProtocol(FakeHostProtocol):
    """One connection: the fake host's business rules behind a security layer."""

    state: SecureState

    def frameReceived(self, payload: bytes) -> None:  # noqa: N802
        """Check what security the request carries, then answer (MAC'd)."""
        st = self.state
        _, fields = self.codec.decode(payload)
        st.received.append(fields["t"])
        st.seen_fields.append(fields)
        ids = dict(stan=fields["11"], terminal_id=fields["41"], merchant_id=fields["42"],
                   transmitted_at=fields.get("7"), business_date="0115")
        if fields["t"] == "0800":
            self._sign_on(fields, ids)
            return
        mac_key, answer_key = self._mac_keys(fields)
        if fields["t"] in MAC_MTIS:
            ok = mac_key is not None and "64" in fields and mac_matches(payload, X919, mac_key)
            st.mac_results.append(ok)
            if not ok:
                self._send(FinancialResponse(mti_value=fields["t"][:2] + "10",
                                             response_code="63", processing_code=fields["3"],
                                             **ids).to_fields(), None)
                return
        code = self._pin_code(fields)
        if code is None:
            code = st.force_code
        if code is not None:
            answer = FinancialResponse(mti_value=fields["t"][:2] + "10", response_code=code,
                                       processing_code=fields["3"], **ids)
        else:
            answer = self.answer(self._parse(fields), fields)  # type: ignore[assignment]
        if answer is not None:
            self._send(answer.to_fields(), answer_key)

    def _parse(self, fields: dict[str, str]) -> object:
        from protocol.messages import parse_request

        return parse_request(fields)

    def _sign_on(self, fields: dict[str, str], ids: dict[str, object]) -> None:
        st = self.state
        block = None
        if fields.get("70") == "001" and st.dukpt is None:
            st.working = WorkingKeys.generate(KeyAlgorithm.TDES_2KEY, with_data=False)
            wrapped = bytearray(st.working.wrap(tmk()))
            if st.bad_kcv_sign_ons > 0:
                st.bad_kcv_sign_ons -= 1
                wrapped[-1] ^= 0xFF  # the MAC key's check value
            block = key_block_text(bytes(wrapped))
        self._send(NetworkResponse(mti_value="0810", response_code="00", code=fields["70"],
                                   wrapped_keys=block, **ids).to_fields(), None)  # type: ignore[arg-type]

    def _mac_keys(self, fields: dict[str, str]) -> tuple[Key | None, Key | None]:
        st = self.state
        if st.dukpt is not None and "62" in fields:
            st.ksns.append(fields["62"])
            keys = st.dukpt.keys_for(Ksn.from_hex(fields["62"]))
            return keys.mac_request, keys.mac_response
        if st.working is not None:
            return st.working.mac, st.working.mac
        return None, None

    def _pin_code(self, fields: dict[str, str]) -> str | None:
        st = self.state
        if "52" not in fields:
            return None
        pan = fields.get("2", "")
        if st.dukpt is not None:
            pin_key = st.dukpt.keys_for(Ksn.from_hex(fields["62"])).pin
        else:
            assert st.working is not None
            pin_key = st.working.pin
        block = PinBlock(bytes.fromhex(fields["52"]), PinBlockFormat.ISO_0)
        if verify_pin(pin_key, block, pan, PINS[pan]):
            st.wrong_pins[pan] = 0
            st.pin_results.append("ok")
            return None
        st.wrong_pins[pan] = st.wrong_pins.get(pan, 0) + 1
        st.pin_results.append("wrong")
        return "75" if st.wrong_pins[pan] >= 3 else "55"

    def _send(self, out: dict[str, str], key: Key | None) -> None:
        if key is None:
            self.sendFrame(self.codec.encode(out))  # type: ignore[attr-defined]
            return
        out["64"] = MAC_PLACEHOLDER
        body = seal(self.codec.encode(out), X919, key)
        if self.state.bad_answer_mac:
            body = body[:-1] + bytes([body[-1] ^ 0x01])
        self.sendFrame(body)  # type: ignore[attr-defined]


def listen_secure(state: SecureState) -> tuple[int, object]:
    """Listen on 127.0.0.1 port 0; return (port, listening port)."""
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory

    factory = Factory()
    factory.buildProtocol = lambda addr: SecureHostProtocol(state)  # type: ignore[method-assign]
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    return port.getHost().port, port


def bdk() -> Key:
    """The test BDK (ANSI X9.24-1's)."""
    return Key.from_hex(BDK_HEX, KeyAlgorithm.TDES_2KEY)


def dukpt_host() -> DukptHost[Ksn]:
    """The host side of the test DUKPT key set."""
    return DukptHost(TDES_DUKPT, bdk())
