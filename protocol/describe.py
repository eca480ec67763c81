"""Field-by-field explanation of a message, for logs, the message inspector and trainers.

Sensitive fields never show their value: the PAN is masked to first 6 / last 4, track data,
PIN blocks and MACs are replaced by a note of their length. Security fields are explained
without their secrets: DE52 ``[PIN block, 8 bytes]``, DE53 its digits spelled out, DE62 of a
sign-on answer the number of wrapped keys and their check values (never the wrapped bytes), DE62
of a request the DUKPT KSN and its counter, DE64/DE128 the MAC scheme and size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from protocol.codes import EntryMode, NetworkCode, ProcessingCode, RuleId, response_text
from protocol.errors import ProtocolError
from protocol.fields import FieldSpec, FieldTable, Sensitivity, field_table
from protocol.masking import mask_pan
from protocol.messages import Message, OriginalData
from protocol.money import Money, currency
from protocol.private_data import decode_remaining, decode_tlv
from protocol.security.errors import SecurityError
from protocol.security.wire import ControlLayout, KeyManagement, SecurityControl

#: The MAC scheme named when a caller does not say (the generic profiles').
DEFAULT_MAC_SCHEME = "x9.19"
_MAC_FIELDS = ("64", "128")

_MTI_MEANING = {
    "0100": "Authorization request", "0110": "Authorization response",
    "0200": "Financial request", "0210": "Financial response",
    "0220": "Financial advice", "0221": "Financial advice repeat", "0230": "Advice response",
    "0320": "Batch upload", "0330": "Batch upload response",
    "0400": "Reversal request", "0401": "Reversal repeat", "0410": "Reversal response",
    "0500": "Reconciliation request", "0510": "Reconciliation response",
    "0800": "Network management request", "0810": "Network management response",
}  # fmt: skip
_PROCESSING_MEANING = {
    ProcessingCode.PURCHASE.value: "purchase",
    ProcessingCode.REFUND.value: "refund",
    ProcessingCode.VOID_SALE.value: "void of a sale",
    ProcessingCode.VOID_REFUND.value: "void of a refund",
    ProcessingCode.RECONCILE.value: "close batch",
    ProcessingCode.RECONCILE_AFTER_UPLOAD.value: "close batch after upload",
}
_NETWORK_MEANING = {NetworkCode.SIGN_ON.value: "sign-on", NetworkCode.SIGN_OFF.value: "sign-off",
                    NetworkCode.ECHO.value: "echo test"}


@dataclass(frozen=True)
class FieldLine:
    """One rendered field: key, name, safe value and what it means."""

    key: str
    name: str
    value: str
    meaning: str

    def __str__(self) -> str:
        label = "MTI" if self.key == "t" else f"DE{self.key}"
        tail = f"  {self.meaning}" if self.meaning else ""
        return f"{label:<6}{self.name:<40.40} {self.value}{tail}"


def describe_fields(
    fields: Mapping[str, str], table: str | FieldTable = "iso87",
    mac_scheme: str = DEFAULT_MAC_SCHEME,
) -> list[FieldLine]:
    """Explain each field of a field dict, in field order, with card data made safe.

    ``mac_scheme`` names the profile's MAC algorithm in the DE64/DE128 line.
    """
    specs = field_table(table)
    mti = fields.get("t", "")
    lines = [FieldLine("t", "Message type indicator", mti, _MTI_MEANING.get(mti, ""))]
    keys = sorted((k for k in fields if k.isdigit()), key=int)
    for key in keys:
        spec = specs.get(key)
        name = spec.name if spec else "Unknown field"
        raw = fields[key]
        sensitivity = spec.sensitivity if spec else Sensitivity.PLAIN
        size = len(raw) // 2 if spec and spec.hex_text else len(raw)
        if sensitivity is Sensitivity.PAN:
            value = mask_pan(raw)
        elif key == "52":
            value = f"[PIN block, {size} bytes]"
        elif key in _MAC_FIELDS and sensitivity is Sensitivity.SECRET:
            value = f"[MAC, {size} bytes]"
        elif sensitivity is Sensitivity.SECRET:
            value = f"[{size} bytes hidden]"
        elif key == "62" and is_key_block(fields):
            value = f"[wrapped keys, {len(raw) // 2} bytes]"
        else:
            value = raw
        if key in _MAC_FIELDS and sensitivity is Sensitivity.SECRET:
            meaning = f"MAC ({mac_scheme}, {size} bytes)"
        else:
            meaning = _meaning(key, raw, fields) if _numeric_ok(spec, raw) else ""
        lines.append(FieldLine(key, name, value, meaning))
    return lines


def describe(message: Message | Mapping[str, str], table: str | FieldTable = "iso87") -> str:
    """Multi-line explanation of a typed message or a field dict."""
    fields = message.to_fields() if isinstance(message, Message) else message
    return "\n".join(str(line) for line in describe_fields(fields, table))


def _numeric_ok(spec: FieldSpec | None, raw: str) -> bool:
    # A numeric field of the wrong shape (a cut-off DE7, letters in DE4) gets no meaning rather
    # than a misleading one such as "/99 ::".
    if spec is None or spec.fmt != "n":
        return True
    return raw.isdigit() and (not spec.fixed or len(raw) == spec.max_len)


def _meaning(key: str, raw: str, fields: Mapping[str, str]) -> str:
    # describe() renders whatever arrived, malformed DE48 included: a field it cannot read
    # gets no meaning instead of an exception.
    try:
        return _MEANINGS[key](raw, fields) if key in _MEANINGS else ""
    except (ValueError, KeyError, IndexError, ProtocolError):
        return ""


def _amount(raw: str, fields: Mapping[str, str]) -> str:
    cur = currency(fields["49"]).alpha if "49" in fields else "CNY"
    return str(Money(int(raw), cur))


def _entry(raw: str, _: Mapping[str, str]) -> str:
    mode = EntryMode(raw[:2]).label.lower()
    pin = "PIN entered" if raw[2:] == "1" else "no PIN"
    return f"{mode}, {pin}"


def _rc(raw: str, _: Mapping[str, str]) -> str:
    return response_text(raw)


def _rule(raw: str, _: Mapping[str, str]) -> str:
    rule = RuleId.parse(raw)
    return rule.explanation if rule else ""


def _when(raw: str, _: Mapping[str, str]) -> str:
    return f"{raw[2:4]}/{raw[:2]} {raw[4:6]}:{raw[6:8]}:{raw[8:10]}"


def _de90(raw: str, _: Mapping[str, str]) -> str:
    o = OriginalData.from_field(raw)
    return f"original {o.mti} STAN {o.stan} sent {_when(o.transmitted_at, _)}"


def _de48(raw: str, _: Mapping[str, str]) -> str:
    names = {"RS": "reason", "EV": "evidence", "OP": "operator"}
    items = decode_tlv(raw)
    return ", ".join(f"{names.get(k, k)}={v}" for k, v in items.items())


def is_key_block(fields: Mapping[str, str]) -> bool:
    """True when DE62 of ``fields`` carries wrapped working keys (a network management answer)."""
    return fields.get("t", "") in ("0810", "0830") and "62" in fields


#: Bytes of one wrapped key with its 4-byte check value: TDES double length, then TDES triple
#: length or AES-128 (RFC 3394 adds 8 bytes to the 16).
_WRAPPED_SIZES = (20, 28)


def _de62(raw: str, fields: Mapping[str, str]) -> str:
    if is_key_block(fields):
        data = bytes.fromhex(raw)
        for size in _WRAPPED_SIZES:
            count = len(data) // size
            if len(data) % size == 0 and count in (2, 3):
                kcvs = ", ".join(data[i * size + size - 4 : (i + 1) * size].hex().upper()
                                 for i in range(count))
                names = "PIN, MAC" + (", data" if count == 3 else "")
                return f"{count} wrapped keys ({names}), KCVs {kcvs}"
        return "working-key block of an unknown layout"
    if len(raw) == 20 and all(c in "0123456789ABCDEFabcdef" for c in raw):
        counter = int(raw[-6:], 16) & 0x1FFFFF
        return f"DUKPT KSN, transaction counter {counter}"
    return ""


_KEY_KINDS = {"TDES-2": "TDES double length", "TDES-3": "TDES triple length",
              "AES-128": "AES-128"}
_MANAGEMENT = {KeyManagement.MASTER_SESSION: "keys from sign-on",
               KeyManagement.TDES_DUKPT: "TDES DUKPT", KeyManagement.AES_DUKPT: "AES DUKPT"}


def _de53(raw: str, _: Mapping[str, str]) -> str:
    try:
        control = SecurityControl.parse(raw)
    except SecurityError as exc:
        if raw[:1] in ("1", "2"):  # no poslab format digit: the China UnionPay layout
            return _cup_de53(raw)
        return str(exc)
    return (f"PIN block ISO format {control.pin_format.value}, "
            f"{_KEY_KINDS[control.algorithm.value]}, {_MANAGEMENT[control.management]}")


def _cup_de53(raw: str) -> str:
    try:
        control = SecurityControl.parse(raw, ControlLayout.CUP)
    except SecurityError as exc:
        return f"CUP layout: {exc}"
    return (f"CUP layout: PIN block ISO format {control.pin_format.value} (ANSI X9.8 with the "
            f"PAN), {_KEY_KINDS[control.algorithm.value]}, tracks in clear")


def _de54(raw: str, _: Mapping[str, str]) -> str:
    remaining = decode_remaining(raw)
    return f"remaining refundable {remaining}" if remaining else ""


_MEANINGS = {
    "3": lambda raw, f: _PROCESSING_MEANING.get(raw, ""),
    "4": _amount,
    "7": _when,
    "12": lambda raw, f: f"{raw[:2]}:{raw[2:4]}:{raw[4:6]}",
    "13": lambda raw, f: f"{raw[2:]}/{raw[:2]}",
    "14": lambda raw, f: f"expires {raw[2:]}/{raw[:2]}",
    "15": lambda raw, f: f"business date {raw[2:]}/{raw[:2]}",
    "22": _entry,
    "37": lambda raw, f: "host reference" if f.get("t", "")[2] in "13" else "original's RRN",
    "39": _rc,
    "44": _rule,
    "48": _de48,
    "49": lambda raw, f: currency(raw).alpha,
    "53": _de53,
    "54": _de54,
    "60": lambda raw, f: f"batch {raw}",
    "62": _de62,
    "70": lambda raw, f: _NETWORK_MEANING.get(raw, ""),
    "90": _de90,
}
