"""CUP field dicts <-> poslab's typed messages, and the CUP response codes.

A CUP request is identified by MTI + DE3 + DE25 + DE60.1 (financial) or MTI + DE60.3
(management) through the profile's routes (:data:`protocol.cup.CUP_ROUTES`), then read into the
same typed messages the generic profile uses (:mod:`protocol.messages`), with what only CUP
carries as typed :class:`~protocol.cup_private.CupFacts`: the batch of 60.2, the original's
batch, trace and date of DE61, the operator of DE63, the totals or records of DE48. A host's
rules and ledger therefore see one kind of sale, completion, refund or void whatever the
profile.

An answer goes the other way: :func:`cup_response_fields` writes the typed answer as a CUP
field dict -- the fields a CUP terminal expects echoed (a completion's DE38, the
pre-authorization's code, among them), DE32 the acquiring institution (the request's when it
sent one, else the host's ``[host] acquirer_id``), DE60 and DE48 from the answer's CUP facts,
DE54 the remaining refundable amount (as the generic profile sends it: one 20-character block,
amount type ``90``), DE62 the working keys, and DE39 the CUP code for the rule that decided
(:data:`CUP_CODES`; DE44 keeps poslab's rule id).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from protocol.codes import NetworkCode, RuleId
from protocol.cup_private import CupFacts, CupTotals, De60, De61, parse_upload
from protocol.errors import ValidationError
from protocol.messages import (
    AnyResponse,
    AuthorizationRequest,
    BatchTotals,
    CompletionAdvice,
    CupUploadRequest,
    FinancialRequest,
    NetworkRequest,
    ReconciliationRequest,
    RefundRequest,
    Request,
    ReversalRequest,
    SaleRequest,
    VoidRequest,
    WireResponse,
    response_mti,
)
from protocol.money import currency
from protocol.transactions import TxnType

if TYPE_CHECKING:
    from protocol.specs import WireProfile

#: 60.3 of an upload message that carries records, and of the one that closes the upload.
UPLOAD_RECORDS, UPLOAD_END = "201", "207"

#: DE39 on the CUP profile for a rule whose generic code differs (the rule id stays in DE44);
#: a whole DE44 text (rule and detail) is looked up before its rule id.
CUP_CODES: Mapping[str, str] = {
    RuleId.UNKNOWN_TERMINAL: "97",  # 终端未登记
    f"{RuleId.UNKNOWN_TERMINAL.value}:NOT_ENROLLED": "58",  # registered, not permitted
    RuleId.ORIGINAL_NOT_EFFECTIVE: "25",
    RuleId.ORIGINAL_NOT_A_SALE: "25",
    RuleId.ORIGINAL_OTHER_MERCHANT: "25",
    RuleId.VOID_AFTER_SETTLEMENT: "25",  # 不支持隔日撤销: refund it instead
    RuleId.VOID_AFTER_REFUND: "25",
    RuleId.REVERSAL_AFTER_SETTLEMENT: "25",
    RuleId.REVERSAL_AFTER_REFUND: "25",
    RuleId.REFUND_EXCEEDS_REMAINING: "61",  # 超出金额限制
    RuleId.REFUND_WINDOW_EXPIRED: "22",  # 超过交易允许时间
    RuleId.UNREFERENCED_REFUND: "25",
    RuleId.MAC_FAILED: "A0",  # MAC校验错，请重新签到
    RuleId.SIGN_ON_REQUIRED: "77",
}

# What a CUP answer echoes of its request, by response MTI (domain layouts; DE64 is sealed
# by the security layer).
_FINANCIAL_ECHO = ("3", "4", "11", "25", "41", "42", "49", "60", "61")
_ECHO: Mapping[str, tuple[str, ...]] = {
    "0110": _FINANCIAL_ECHO, "0210": _FINANCIAL_ECHO, "0230": _FINANCIAL_ECHO,
    "0410": _FINANCIAL_ECHO,
    "0810": ("11", "41", "42", "60"), "0830": ("11", "41", "42", "60"),
    "0510": ("11", "41", "42", "49", "60", "63"), "0330": ("11", "41", "42", "48", "60"),
}
#: DE32 (acquiring institution, n..11) of a host that configures none: a placeholder, not any
#: real institution's code.
DEFAULT_ACQUIRER_ID = "00000000"
# The answers whose layout carries DE32 (the refund advice's 0230 does not).
_WITH_ACQUIRER = frozenset({"0110", "0210", "0410", "0510", "0330", "0810", "0830"})
# What a CUP answer takes of the typed answer (host times, ids, code, rule, the remaining
# refundable amount of a refund's original in DE54, keys).
_FROM_ANSWER = ("12", "13", "15", "37", "38", "39", "44", "54", "62")


def _text(fields: Mapping[str, str], key: str, what: str) -> str:
    try:
        return fields[key]
    except KeyError:
        raise ValidationError(f"mandatory field {key} ({what}) is missing", field=key,
                              fields=fields) from None


def _money_currency(fields: Mapping[str, str]) -> str:
    try:
        return currency(_text(fields, "49", "currency")).alpha
    except ValueError:
        raise ValidationError("unknown currency code", field="49", fields=fields) from None


def _facts(fields: Mapping[str, str], **more: object) -> CupFacts:
    try:
        de60 = De60.parse(_text(fields, "60", "60.1 type + 60.2 batch"))
        original = De61.parse(fields["61"]) if "61" in fields else None
    except ValidationError as exc:
        exc.fields = dict(fields)
        raise
    return CupFacts(fields["t"], de60, original, fields.get("63"),
                    approval_code=fields.get("38"), **more)  # type: ignore[arg-type]


def _ids(fields: Mapping[str, str]) -> dict[str, Any]:
    return {"stan": _text(fields, "11", "trace"), "terminal_id": _text(fields, "41", "terminal"),
            "merchant_id": _text(fields, "42", "merchant")}


def identify(fields: Mapping[str, str], profile: WireProfile) -> TxnType:
    """The logical transaction of a CUP request; ValidationError (30) when the profile's
    mandatory fields are missing or the MTI + DE3 + DE25 + DE60 carry no transaction."""
    mti = fields.get("t", "")
    txn = profile.identify(mti, fields.get("3"), fields)
    if txn is None:
        # A field that tells this MTI's transactions apart is missing: say which.
        telling = {m.key for r in profile.routes if mti in r.mtis for m in r.match} | {
            "3" for r in profile.routes if mti in r.mtis and r.keyed}
        for key in sorted(telling - fields.keys(), key=int):
            raise ValidationError(f"mandatory field {key} is missing", field=key,
                                  fields=fields)
        key = f"{mti}/{fields.get('3', '-')}/{fields.get('25', '-')}/{fields.get('60', '-')}"
        raise ValidationError(f"no CUP transaction is MTI/DE3/DE25/DE60 {key}",
                              field="60" if "60" in fields else "3", fields=fields)
    missing = profile.missing_field(fields)
    if missing is not None:
        raise ValidationError(f"mandatory field {missing} is missing", field=missing,
                              fields=fields)
    return txn


_FINANCIAL: Mapping[TxnType, type[FinancialRequest]] = {
    TxnType.SALE: SaleRequest, TxnType.AUTHORIZATION: AuthorizationRequest,
    TxnType.REFUND: RefundRequest, TxnType.VOID: VoidRequest,
    TxnType.VOID_COMPLETION: VoidRequest, TxnType.AUTH_CANCEL: VoidRequest,
    TxnType.COMPLETION: CompletionAdvice}
#: The voids: card data optional in the typed message (the route still asks for it).
_VOIDS = frozenset({TxnType.VOID, TxnType.VOID_COMPLETION, TxnType.AUTH_CANCEL})


def parse_cup_request(fields: Mapping[str, str], profile: WireProfile) -> tuple[TxnType, Request]:
    """The logical transaction and typed request of a decoded CUP request.

    Raises :class:`ValidationError` (answered 30) naming the field: a missing mandatory field,
    a transaction the profile does not carry, a malformed DE60/DE61/DE48.
    """
    txn = identify(fields, profile)
    if txn in _FINANCIAL:
        cls = _FINANCIAL[txn]
        kw = cls._financial_kwargs(fields, card_required=txn not in _VOIDS)
        kw.update(local_time=None, local_date=None)  # CUP requests carry no local times
        if txn in (TxnType.REFUND, TxnType.VOID, TxnType.VOID_COMPLETION):  # DE37: the
            kw.update(original_rrn=fields["37"], operator=fields.get("63"))  # original's RRN
        elif txn is TxnType.AUTH_CANCEL:  # no DE37: the host finds the pre-authorization by
            # DE61 and DE38 (host.cup.handlers.cancel) and fills its RRN in
            kw.update(original_rrn="", operator=fields.get("63"))
        elif txn is TxnType.COMPLETION:  # DE38: the pre-authorization's approval code; the
            # host finds the pre-authorization by DE61 (host.cup.handlers.completion)
            kw.update(approval_code=fields["38"])
        return txn, cls(cup_data=_facts(fields), **kw)  # type: ignore[arg-type,return-value]
    if txn is TxnType.REVERSAL:
        return txn, dataclasses.replace(ReversalRequest.from_fields(fields),
                                        cup_data=_facts(fields))
    if txn in (TxnType.SIGN_ON, TxnType.SIGN_OFF):
        code = NetworkCode.SIGN_ON if txn is TxnType.SIGN_ON else NetworkCode.SIGN_OFF
        return txn, NetworkRequest(code=code, cup_data=_facts(fields), **_ids(fields))
    if txn is TxnType.SETTLEMENT:
        try:
            totals = CupTotals.parse(fields["48"])
        except ValidationError as exc:
            exc.fields = dict(fields)
            raise
        facts = _facts(fields, totals=totals)
        # The generic totals stay zero: the CUP totals ride in the facts.
        return txn, ReconciliationRequest(batch_number=facts.batch,
                                          totals=BatchTotals(_money_currency(fields)),
                                          cup_data=facts, **_ids(fields))
    if txn is TxnType.BATCH_UPLOAD:
        return txn, _upload(fields)
    raise ValidationError(f"{txn.value} is not handled on the CUP profile", field="60",
                          fields=fields)


def _upload(fields: Mapping[str, str]) -> Request:
    """An 0320: records (60.3 201) or the end of the upload (207, DE48 the record count)."""
    code = De60.parse(fields["60"]).network_code
    text = fields["48"]
    try:
        if code == UPLOAD_RECORDS:
            facts = _facts(fields, records=tuple(parse_upload(text)))
        elif code == UPLOAD_END:
            if not text.isdigit():
                raise ValidationError("DE48 of the closing upload must be the record count",
                                      field="48")
            facts = _facts(fields, record_count=int(text))
        else:
            raise ValidationError(f"60.3 {code}: only magnetic-stripe uploads (201) and the "
                                  f"closing 207 are handled", field="60")
    except ValidationError as exc:
        exc.fields = dict(fields)
        raise
    return CupUploadRequest(batch_number=facts.batch, cup_data=facts, **_ids(fields))


def cup_code(code: str, rule: str | None) -> str:
    """DE39 on the CUP profile: the CUP code of the deciding rule when the answer carries
    that rule's generic code; a code the CUP checks chose themselves stays."""
    found = RuleId.parse(rule) if rule else None
    if rule is None or found is None or code != found.code:
        return code
    return CUP_CODES.get(rule) or CUP_CODES.get(found, code)


def cup_response_fields(request: Mapping[str, str], response: AnyResponse, *,
                        acquirer_id: str = DEFAULT_ACQUIRER_ID) -> WireResponse:
    """The CUP field dict of ``response`` to ``request`` (see the module docstring);
    ``acquirer_id``: DE32 of the answers that carry it, unless the request sent its own."""
    typed = response.to_fields()
    mti = response_mti(request.get("t", "0200"))
    out = {"t": mti}
    for key in _ECHO.get(mti, _FINANCIAL_ECHO):
        if key in request:
            out[key] = request[key]
    for key in _FROM_ANSWER:
        if key in typed:
            out[key] = typed[key]
    if "38" in request:  # a completion quotes its pre-authorization's code: echoed
        out["38"] = request["38"]
    if mti in _WITH_ACQUIRER:
        out["32"] = request.get("32") or acquirer_id
    out["39"] = cup_code(typed.get("39", "96"), typed.get("44"))
    if out["39"] != "00":
        out.pop("38", None)
    facts = getattr(response, "cup", None)
    if isinstance(facts, CupFacts):
        out["60"] = facts.de60.text()
        if facts.totals is not None:
            out["48"] = facts.totals.text()
    return WireResponse(out)

