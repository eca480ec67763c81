"""A China UnionPay host written for the terminal's tests: it frames and parses with plain
pyiso8583 and a field spec written out below from the public CUP layouts (BCD numerics and MTI,
BCD lengths counted in digits, ASCII text), not with poslab's codec, and talks to the terminal
over real TCP."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from typing import Any

import iso8583

from protocol.cup_private import CupTotals, SettlementResult


def _n(digits: int, **kw: Any) -> dict[str, Any]:
    """A BCD numeric field: fixed (left zero pad) or with a BCD length in digits (F pad)."""
    if kw.get("len_type"):
        return {"data_enc": "b", "len_enc": "bcd", "len_type": kw["len_type"],
                "max_len": digits, "len_count": "nibbles", "right_pad": "F", "desc": ""}
    return {"data_enc": "b", "len_enc": "bcd", "len_type": 0, "max_len": digits,
            "len_count": "nibbles", "left_pad": "0", "desc": ""}


def _a(length: int, len_type: int = 0) -> dict[str, Any]:
    return {"data_enc": "ascii", "len_enc": "bcd", "len_type": len_type, "max_len": length,
            "desc": ""}


SPEC: dict[str, dict[str, Any]] = {
    "h": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 6, "desc": ""},
    "t": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 2, "desc": ""},
    "p": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8, "desc": ""},
    "2": _n(19, len_type=1), "3": _n(6), "4": _n(12), "11": _n(6), "12": _n(6), "13": _n(4),
    "14": _n(4), "15": _n(4), "22": _n(3), "25": _n(2), "35": _n(37, len_type=1),
    "37": _a(12), "38": _a(6), "39": _a(2), "41": _a(8), "42": _a(15), "44": _a(25, 1),
    "48": _n(322, len_type=2), "49": _a(3), "60": _n(17, len_type=2),
    "61": _n(29, len_type=2), "63": _a(163, 2),
}
ECHOED = ("2", "3", "4", "11", "25", "41", "42", "49", "60")


@dataclass
class CupResponder:
    """A small CUP host: assigns batch 000042 at sign-on, answers 77 to a request outside the
    signed-on batch (or once on demand), keeps what it approved, takes settlement and upload."""

    batch: str = "000042"
    result: SettlementResult = SettlementResult.NOT_BALANCED
    refuse_next: str | None = None
    silent_pans: set[str] = field(default_factory=set)
    silent_reversals: bool = False
    seen: list[dict[str, str]] = field(default_factory=list)
    approved: dict[str, dict[str, str]] = field(default_factory=dict)
    signed_on: bool = False

    def answer(self, req: dict[str, str]) -> dict[str, str] | None:
        self.seen.append(req)
        mti = req["t"]
        out = {"t": mti[:2] + str(int(mti[2]) + 1) + mti[3], "h": req["h"],
               **{k: req[k] for k in ECHOED if k in req}}
        if mti == "0800":
            self.signed_on = True
            out["60"] = "00" + self.batch + "004"
            return {**out, "39": "00"}
        if mti in ("0200", "0220"):
            if req.get("2") in self.silent_pans:
                return None
            if self.refuse_next or not self.signed_on or req["60"][2:8] != self.batch:
                code, self.refuse_next = self.refuse_next or "77", None
                self.signed_on = False
                return {**out, "39": code}
            rrn = f"{len(self.approved) + 1:012d}"
            self.approved[rrn] = req
            return {**out, "39": "00", "37": rrn, "38": "AUTH01", "13": "1204", "12": "101500"}
        if mti == "0400":
            return None if self.silent_reversals else {**out, "39": "00"}
        if mti == "0500":
            totals = CupTotals.parse(req["48"])
            return {**out, "39": "00", "48": CupTotals(totals.domestic, totals.foreign,
                                                       self.result).text(), "63": req["63"]}
        return {**out, "39": "00", "48": req["48"]}  # 0320 -> 0330


async def serve(responder: CupResponder) -> asyncio.Server:
    """The responder on a free loopback port: 2-byte length, TPDU, then the message."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack(">H", await reader.readexactly(2))
                payload = await reader.readexactly(size)
                tpdu, body = payload[:5], payload[5:]
                req, _ = iso8583.decode(body, SPEC)
                req = {k: v for k, v in req.items() if k not in ("p", "bm")}
                reply = responder.answer(req)
                if reply is None:
                    continue
                raw, _ = iso8583.encode(reply, SPEC)
                swapped = tpdu[:1] + tpdu[3:5] + tpdu[1:3]
                data = swapped + bytes(raw)
                writer.write(struct.pack(">H", len(data)) + data)
        except asyncio.IncompleteReadError:
            writer.close()

    return await asyncio.start_server(client, "127.0.0.1", 0)
