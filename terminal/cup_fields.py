"""The CUP private fields subfield by subfield, for the message inspector: 60.1 transaction
type, 60.2 batch, 60.3 network management code, 61.1-61.3 the original, the DE48 settlement
totals and the upload's record count.

Upload records carry PANs: only their number and trace numbers are shown, never a card number.
A field that does not read as its layout says gets no breakdown (the inspector still shows
the field itself).
"""

from __future__ import annotations

from protocol.cup_private import CupTotals, De60, De61, SchemeTotals, parse_upload
from protocol.errors import ValidationError

TYPE_CODES = {"00": "management", "10": "pre-authorization", "11": "pre-authorization cancel",
              "20": "completion", "21": "completion void", "22": "sale", "23": "void",
              "24": "completion advice", "25": "refund"}
"""60.1 values and what they name."""
NETWORK_CODES = {"000": "", "001": "sign-on, single-length keys", "002": "sign-off",
                 "003": "sign-on, PIN and MAC key", "004": "sign-on, PIN, MAC and data key",
                 "201": "settlement / batch upload", "207": "end of batch upload"}
"""60.3 values and what they name."""
RESULT_FLAGS = {"0": "as sent by the terminal", "1": "balanced", "2": "not balanced: upload"}

SubField = tuple[str, str, str]
"""(label such as ``60.1``, name, value with its meaning)."""


def subfields(key: str, fields: dict[str, str]) -> list[SubField]:
    """The subfields of DE60, DE61 or DE48 of ``fields``; [] for any other field."""
    raw = fields.get(key, "")
    try:
        if key == "60":
            return _de60(De60.parse(raw))
        if key == "61":
            return _de61(De61.parse(raw))
        if key == "48":
            return _de48(fields.get("t", ""), raw)
    except (ValidationError, ValueError):
        return []
    return []


def _named(value: str, names: dict[str, str]) -> str:
    meaning = names.get(value, "")
    return f"{value}  {meaning}" if meaning else value


def _de60(de60: De60) -> list[SubField]:
    out = [("60.1", "Transaction type", _named(de60.type_code, TYPE_CODES)),
           ("60.2", "Batch number", de60.batch),
           ("60.3", "Network management code", _named(de60.network_code, NETWORK_CODES))]
    if de60.read_capability:
        out.append(("60.4", "Terminal read capability", de60.read_capability))
    if de60.ic_condition:
        out.append(("60.5", "IC card condition", de60.ic_condition))
    return out


def _de61(de61: De61) -> list[SubField]:
    return [("61.1", "Original batch number", de61.batch),
            ("61.2", "Original trace (STAN)", de61.trace),
            ("61.3", "Original date MMDD", de61.date_mmdd)]


def _de48(mti: str, raw: str) -> list[SubField]:
    if mti in ("0500", "0510"):
        totals = CupTotals.parse(raw)
        return [*_group("domestic", totals.domestic), *_group("foreign", totals.foreign),
                ("48", "Result flag", _named(totals.result.value, RESULT_FLAGS))]
    if mti in ("0320", "0330") and len(raw) == 4:
        return [("48", "Records uploaded (end of upload)", str(int(raw)))]
    if mti in ("0320", "0330"):
        records = parse_upload(raw)
        traces = " ".join(r.trace for r in records)
        return [("48", "Upload records", f"{len(records)}  traces {traces}")]
    return []


def _group(name: str, totals: SchemeTotals) -> list[SubField]:
    return [("48", f"{name.capitalize()} debits", f"{totals.debit_count} for "
             f"{totals.debit_amount} (minor units)"),
            ("48", f"{name.capitalize()} credits", f"{totals.credit_count} for "
             f"{totals.credit_amount} (minor units)")]
