"""A CUP terminal for the host's CUP tests, in-process: requests written as CUP field dicts,
encoded with the CUP codec, MAC'd with the working keys of its last sign-on, and handed to a
:class:`host.service.HostService` with the bytes as sent, as the server does."""

from __future__ import annotations

from itertools import count
from typing import Any

from host.pipeline.request import IsoRequest
from protocol import Codec
from protocol.cup import CUP_PROFILE
from protocol.security import Key, KeyAlgorithm, WorkingKeys, get_mac_scheme, wire

CODEC = Codec(CUP_PROFILE)
CUP_MAC = get_mac_scheme("cup-ecb")
TMK_HEX = "C1D0F8FB4958670DBA40AB1F3752EF0D"
TMK = Key.from_hex(TMK_HEX, KeyAlgorithm.TDES_2KEY)
TID, MID = "TERM0001", "MERCHANT0000001"
UNIONPAY, VISA = "6212345678901232", "4111111111111111"


def config_text(mac: str = "required") -> str:
    """A host config: one merchant with two terminals; TERM0001 has a TMK and ``mac``."""
    return f"""
[[merchants]]
id = "{MID}"
terminals = ["TERM0001", "TERM0002"]

[[security.terminals]]
tid = "TERM0001"
tmk = "{TMK_HEX}"
tmk_kcv = "{TMK.kcv().hex().upper()}"
mac = "{mac}"
"""


class CupTerminal:
    """One terminal's CUP requests against a service (see the module docstring)."""

    def __init__(self, svc: Any, tid: str = TID, mid: str = MID) -> None:
        self.svc = svc
        self.tid, self.mid = tid, mid
        self.keys: WorkingKeys | None = None
        self.batch = "000001"
        self._stans = count(1)

    def stan(self) -> str:
        """The next trace number."""
        return f"{next(self._stans):06d}"

    def send(self, fields: dict[str, str], *, mac: bool = True) -> dict[str, str]:
        """Encode, MAC when signed on (and ``mac``), hand over with the bytes; the answer."""
        out = {"41": self.tid, "42": self.mid, **fields}
        if "11" not in out:
            out["11"] = self.stan()
        sealed = mac and self.keys is not None and out["t"] in CUP_PROFILE.mac_mtis
        if sealed:
            out["64"] = wire.MAC_PLACEHOLDER
        payload = CODEC.encode(out)
        if sealed:
            assert self.keys is not None
            head = CUP_PROFILE.tpdu.size + CUP_PROFILE.message_header.size  # type: ignore[union-attr]
            payload = payload[:head] + wire.seal(payload[head:], CUP_MAC, self.keys.mac)
        tpdu, decoded = CODEC.decode(payload)
        reply = self.svc.handle(IsoRequest(decoded, payload, CUP_PROFILE, tpdu))
        assert reply.response is not None
        answer: dict[str, str] = reply.response.to_fields()
        return answer

    def sign_on(self, code: str = "004") -> dict[str, str]:
        """0800 with 60.3 ``code``; takes the keys of DE62 and the batch of 60.2."""
        answer = self.send({"t": "0800", "60": f"00{self.batch}{code}", "63": "01 "})
        if answer["39"] == "00":
            if "62" in answer:
                algorithm = KeyAlgorithm.DES if code == "001" else KeyAlgorithm.TDES_2KEY
                self.keys = WorkingKeys.unwrap(TMK, bytes.fromhex(answer["62"]), algorithm)
            self.batch = answer["60"][2:8]
        return answer

    def sale(self, amount: int, pan: str = UNIONPAY, stan: str | None = None) -> dict[str, str]:
        """0200 / 000000 / 22."""
        return self.send({"t": "0200", "2": pan, "3": "000000", "4": f"{amount:012d}",
                          "11": stan or self.stan(), "22": "022", "25": "00", "49": "156",
                          "60": f"22{self.batch}000"})

    def preauth(self, amount: int, pan: str = UNIONPAY) -> dict[str, str]:
        """0100 / 030000 / 06 / 10."""
        return self.send({"t": "0100", "2": pan, "3": "030000", "4": f"{amount:012d}",
                          "22": "022", "25": "06", "49": "156", "60": f"10{self.batch}000"})

    def completion(self, preauth: dict[str, str], amount: int, pan: str = UNIONPAY, *,
                   code: str | None = None, trace: str | None = None,
                   batch: str | None = None, mmdd: str | None = None, advice: bool = False,
                   stan: str | None = None) -> dict[str, str]:
        """0200 / 000000 / 06 / 20 (``advice``: the offline completion 0220 / 000000 / 06 / 24)
        with DE38 the pre-authorization's code and DE61 its batch, trace and date (each
        replaceable, to name another)."""
        named = f"{batch or preauth['60'][2:8]}{trace or preauth['11']}{mmdd or preauth['13']}"
        mti, type_code = ("0220", "24") if advice else ("0200", "20")
        return self.send({"t": mti, "2": pan, "3": "000000", "4": f"{amount:012d}",
                          "11": stan or self.stan(), "22": "022", "25": "06",
                          "38": code or preauth["38"], "49": "156",
                          "60": f"{type_code}{self.batch}000", "61": named})

    def cancel(self, preauth: dict[str, str], amount: int | None = None, pan: str = UNIONPAY,
               *, code: str | None = None, trace: str | None = None,
               mmdd: str | None = None) -> dict[str, str]:
        """0100 / 200000 / 06 / 11 (pre-authorization cancel) of ``preauth``'s whole amount,
        with DE38 its code and DE61 its batch, trace and date (each replaceable)."""
        named = f"{preauth['60'][2:8]}{trace or preauth['11']}{mmdd or preauth['13']}"
        whole = int(preauth["4"]) if amount is None else amount
        return self.send({"t": "0100", "2": pan, "3": "200000", "4": f"{whole:012d}",
                          "22": "022", "25": "06", "38": code or preauth["38"], "49": "156",
                          "60": f"11{self.batch}000", "61": named})

    def void_completion(self, done: dict[str, str], amount: int, pan: str = UNIONPAY,
                        trace: str | None = None) -> dict[str, str]:
        """0200 / 200000 / 06 / 21 with DE37 the completion's RRN and DE61 its batch and
        trace."""
        return self.send({"t": "0200", "2": pan, "3": "200000", "4": f"{amount:012d}",
                          "22": "022", "25": "06", "37": done["37"], "49": "156",
                          "60": f"21{self.batch}000",
                          "61": f"{done['60'][2:8]}{trace or done['11']}"})

    def refund(self, sale: dict[str, str], amount: int, pan: str = UNIONPAY,
               mmdd: str | None = None) -> dict[str, str]:
        """0220 / 200000 / 25 with DE37 the sale's RRN and 61.3 its date."""
        return self.send({"t": "0220", "2": pan, "3": "200000", "4": f"{amount:012d}",
                          "22": "012", "25": "00", "37": sale["37"], "49": "156",
                          "60": f"25{self.batch}000",
                          "61": "000000000000" + (mmdd or sale["13"])})

    def void(self, sale: dict[str, str], amount: int, pan: str = UNIONPAY,
             trace: str | None = None) -> dict[str, str]:
        """0200 / 200000 / 23 with DE37 and DE61 (the sale's batch and trace)."""
        return self.send({"t": "0200", "2": pan, "3": "200000", "4": f"{amount:012d}",
                          "22": "012", "25": "00", "37": sale["37"], "49": "156",
                          "60": f"23{self.batch}000",
                          "61": f"{self.batch}{trace or sale['11']}"})


def reversal_of(term: CupTerminal, answer: dict[str, str], pan: str = UNIONPAY
                ) -> dict[str, str]:
    """The 0400 (reason 98) of the request ``answer`` answered: its DE3, DE4, trace, DE25 and
    DE60, as a terminal that never saw the answer sends it."""
    return term.send({"t": "0400", "2": pan, "3": answer["3"], "4": answer["4"],
                      "11": answer["11"], "22": "022", "25": answer["25"], "39": "98",
                      "49": "156", "60": answer["60"]})


def totals_text(debit: tuple[int, int], credit: tuple[int, int],
                foreign_debit: tuple[int, int] = (0, 0),
                foreign_credit: tuple[int, int] = (0, 0), flag: str = "0") -> str:
    """DE48 of an 0500/0510: (amount, count) of domestic then foreign debits and credits."""
    def half(d: tuple[int, int], c: tuple[int, int]) -> str:
        return f"{d[0]:012d}{d[1]:03d}{c[0]:012d}{c[1]:03d}{flag}"

    return half(debit, credit) + half(foreign_debit, foreign_credit)
