"""The service's answers: a :class:`Reply` is a typed response (or nothing) plus its log context.

Building a reply needs no database and no service state, so it lives here: the financial reply
of a decision, the plain decline that books nothing (58, 03, 30, 94, 96), the format-error
answer, and the log context every message line of the server carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from host.rules import Decision
from protocol.errors import ValidationError
from protocol.masking import Pan
from protocol.messages import (
    AnyResponse,
    BatchUploadResponse,
    FinancialRequest,
    FinancialResponse,
    NetworkResponse,
    ReconciliationResponse,
    response_mti,
)
from protocol.money import Money
from protocol.money import currency as currency_by_code
from protocol.specs import KNOWN_MTIS
from protocol.validate import validate_fields

#: Fields a declined or unreadable request's answer echoes, when they are valid.
_ECHO = ("3", "4", "7", "11", "41", "42", "49")


@dataclass(frozen=True)
class Reply:
    """What the server sends (``response``; None = send nothing) and logs (``log``).

    ``log`` keys: kind, mti, stan, tid, mid, rc, rule, rrn, pan (masked), amount_minor,
    currency (absent when unknown). ``silent`` marks a deliberate non-answer (a ``no_response``
    test card, whose terminal is meant to time out); any other reply without a response means
    nothing can be addressed, and the server closes the connection instead.
    """

    response: AnyResponse | None
    log: dict[str, object]
    silent: bool = False


def stamped(reply: Reply, local: datetime) -> Reply:
    """``reply`` carrying the host's own date and time (DE13/DE12) in the merchant's zone,
    so terminals show the host's time (simulated or real), never their machine's."""
    response = reply.response
    if response is None:
        return reply
    # f-strings: strftime costs a few microseconds per answer on the hot path. The copy is the
    # response's own attributes with the two fields set: the messages are plain frozen
    # dataclasses (no __post_init__, no slots), and dataclasses.replace, which runs __init__
    # again, cost 5 µs per answer against under 2 µs for this.
    stamped_response = object.__new__(type(response))
    attributes = stamped_response.__dict__
    attributes.update(response.__dict__)
    attributes["host_date"] = f"{local.month:02d}{local.day:02d}"
    attributes["host_time"] = f"{local.hour:02d}{local.minute:02d}{local.second:02d}"
    return Reply(stamped_response, reply.log)


def log_context(fields: Mapping[str, str], kind: str, rc: str, rule: str | None, *,
                rrn: str | None = None, pan: Pan | None = None,
                **more: object) -> dict[str, object]:
    """The facts of one answered request for the message log (the PAN masked)."""
    out: dict[str, object] = {"kind": kind, "mti": fields.get("t"), "stan": fields.get("11"),
                              "tid": fields.get("41"), "mid": fields.get("42"), "rc": rc,
                              "rule": rule, "rrn": rrn}
    if pan is not None:
        out["pan"] = pan.masked
    if "4" in fields and fields["4"].isdigit():
        out["amount_minor"] = int(fields["4"])
    if "49" in fields:
        out["currency"] = fields["49"]
    out.update(more)
    return out


def financial_reply(fields: Mapping[str, str], req: FinancialRequest, kind: str,
                    decision: Decision, rrn: str, code: str, pan: Pan | None,
                    business_date: str, remaining: Money | None = None) -> Reply:
    """The 0110/0210/0230 answer to a decided financial request (``business_date``: DE15)."""
    resp = FinancialResponse(
        mti_value=response_mti(req.mti), stan=req.stan, terminal_id=req.terminal_id,
        merchant_id=req.merchant_id, transmitted_at=req.transmitted_at,
        response_code=decision.code, rule=decision.de44, business_date=business_date,
        processing_code=req.processing_code, amount=req.amount, rrn=rrn,
        approval_code=code if decision.approved else None, remaining=remaining)
    return Reply(resp, log_context(fields, kind, decision.code, decision.de44, rrn=rrn,
                                   pan=pan))


def answer_mti(mti: str) -> str:
    """The MTI of the answer to ``mti``: its response (0200 -> 0210, 0120 -> 0130, 0421 ->
    0430), or, for a response sent to the host by mistake, that response class itself (0210 ->
    0210), so that even a message the host never expects can be answered with 30."""
    return mti[:2] + str(int(mti[2]) | 1) + "0"


def plain_reply(fields: Mapping[str, str], rc: str, rule: str | None,
                business_date: str | None = None, kind: str = "decline") -> Reply:
    """A decline that echoes what is readable and books nothing (58, 03, 30, 94, 96)."""
    mti = fields.get("t", "0200")
    message_class = mti[1]
    base: dict[str, Any] = {
        "mti_value": answer_mti(mti), "stan": fields.get("11", "000000"),
        "terminal_id": fields.get("41", " " * 8),
        "merchant_id": fields.get("42", " " * 15), "transmitted_at": fields.get("7"),
        "response_code": rc, "rule": rule, "business_date": business_date,
    }
    resp: AnyResponse
    if message_class == "8":
        resp = NetworkResponse(code=fields.get("70"), **base)
    elif message_class == "5":
        resp = ReconciliationResponse(processing_code=fields.get("3"),
                                      batch_number=fields.get("60"), **base)
    elif message_class == "3":
        resp = BatchUploadResponse(rrn=fields.get("37"), batch_number=fields.get("60"), **base)
    else:
        amount = None
        try:
            if "4" in fields and "49" in fields:
                amount = Money(int(fields["4"]), currency_by_code(fields["49"]).alpha)
        except ValueError:
            amount = None
        resp = FinancialResponse(processing_code=fields.get("3", "000000"), amount=amount,
                                 **base)
    return Reply(resp, log_context(fields, kind, rc, rule, pan=pan_of(fields)))


def format_error_reply(error: ValidationError) -> Reply:
    """The answer class of the MTI (:func:`answer_mti`) with RC 30 and the reason in DE44 when
    MTI, STAN and TID are readable; otherwise no response, which the server turns into a close
    (a response nobody can match would be worse than none)."""
    fields = error.fields
    if error.field == "t":
        reason = "UNSUPPORTED_MTI"
    else:
        reason = "MISSING_FIELD" if "missing" in error.reason else "FORMAT_ERROR"
    rule = f"{reason}:{error.field}" if error.field and error.field != "t" else reason
    # A DE48 error says which item is wrong and how (``48:EV@11 LEN 250>MAX 200``).
    rule = getattr(error, "response_text", None) or rule
    usable = {k: v for k, v in fields.items() if k in _ECHO and _valid(k, v, fields)}
    if error.field in usable:
        usable.pop(error.field)
    mti = fields.get("t")
    if mti in KNOWN_MTIS:  # a known MTI is answerable even when it is not one poslab handles
        usable["t"] = mti
    if not {"t", "11", "41"} <= set(usable):
        return Reply(None, {"kind": "format_error", "rc": "30", "rule": rule,
                            "mti": mti, "reason": error.reason})
    return plain_reply(usable, "30", rule[:25])


def pan_of(fields: Mapping[str, str]) -> Pan | None:
    """The request's card number (DE2, else the PAN part of DE35), or None."""
    digits = fields.get("2")
    if digits is None and "35" in fields:
        digits = fields["35"].replace("D", "=").split("=", 1)[0]
    if not digits or not digits.isdigit():
        return None
    return Pan(digits)


def _valid(key: str, value: str, fields: Mapping[str, str]) -> bool:
    if key == "t":
        return True
    try:
        validate_fields({"t": fields.get("t", "0200"), key: value})
    except ValidationError:
        return False
    return True
