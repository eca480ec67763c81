"""Hypothesis strategies for valid field dicts and valid typed messages.

Values are generated from the :data:`protocol.specs.ISO87` rows, so a change to the table is a
change to what the tests generate. Binary values are upper-case hex, as the codec decodes them.
"""

from __future__ import annotations

import string

from hypothesis import strategies as st

from protocol import (
    AuthorizationRequest,
    BatchTotals,
    BatchUploadRequest,
    BatchUploadResponse,
    CardData,
    CompletionAdvice,
    EntryMode,
    FinancialResponse,
    Money,
    NetworkCode,
    NetworkRequest,
    NetworkResponse,
    OriginalData,
    Pan,
    ReconciliationRequest,
    ReconciliationResponse,
    RefundReason,
    RefundRequest,
    ReversalRequest,
    SaleRequest,
    Track2,
    VoidRequest,
)
from protocol.messages import Message
from protocol.money import CURRENCIES
from protocol.specs import ISO87, KNOWN_MTIS, FieldSpec

ALPHABETS = {
    "n": string.digits,
    "an": string.ascii_letters + string.digits + " ",
    "ans": "".join(chr(c) for c in range(0x20, 0x7F)),
    "z": string.digits + "=D",
    "xn": string.digits,
    "b": "0123456789ABCDEF",
}

# pyiso8583 computes bitmaps itself: DE1 and DE65 are never data elements we send.
DATA_SPECS: tuple[FieldSpec, ...] = tuple(f for f in ISO87 if f.number not in (1, 65))


def digits(n: int) -> st.SearchStrategy[str]:
    """Exactly ``n`` decimal digits."""
    return st.text(string.digits, min_size=n, max_size=n)


def _two(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(lambda v: f"{v:02d}")


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
mmdd = st.integers(1, 12).flatmap(
    lambda m: st.integers(1, _MONTH_DAYS[m - 1]).map(lambda d: f"{m:02d}{d:02d}")
)
hhmmss = st.tuples(_two(0, 23), _two(0, 59), _two(0, 59)).map("".join)
yymm = st.tuples(_two(0, 99), _two(1, 12)).map("".join)
mmddhhmmss = st.tuples(mmdd, hhmmss).map("".join)
CALENDAR: dict[int, st.SearchStrategy[str]] = {7: mmddhhmmss, 12: hhmmss, 13: mmdd, 14: yymm,
                                              15: mmdd}  # fmt: skip


def field_value(spec: FieldSpec) -> st.SearchStrategy[str]:
    """A valid value for one data element: class, length and calendar all right."""
    if spec.number in CALENDAR:
        return CALENDAR[spec.number]
    size = st.just(spec.max_len) if spec.fixed else st.integers(0, spec.max_len)
    alphabet = ALPHABETS[spec.fmt]

    def of_size(n: int) -> st.SearchStrategy[str]:
        if spec.fmt == "b":
            return st.binary(min_size=n, max_size=n).map(lambda b: b.hex().upper())
        if spec.fmt == "xn":
            return st.tuples(st.sampled_from("CD"), digits(n - 1)).map("".join)
        return st.text(alphabet, min_size=n, max_size=n)

    return size.flatmap(of_size)


@st.composite
def raw_fields(
    draw: st.DrawFn, specs: tuple[FieldSpec, ...] = DATA_SPECS, max_fields: int = 24
) -> dict[str, str]:
    """A valid field dict: a known MTI and a random set of data elements."""
    chosen = draw(st.lists(st.sampled_from(specs), unique=True, max_size=max_fields))
    out = {"t": draw(st.sampled_from(sorted(KNOWN_MTIS)))}
    for spec in sorted(chosen, key=lambda f: f.number):
        out[spec.key] = draw(field_value(spec))
    return out


# --- typed messages -------------------------------------------------------------------------

ans = "".join(chr(c) for c in range(0x20, 0x7F))
stan = digits(6)
pan = st.integers(12, 19).flatmap(digits).map(Pan)
money = st.builds(Money, st.integers(0, 10**12 - 1), st.sampled_from(sorted(CURRENCIES)))
rrn = st.text(ALPHABETS["an"], min_size=12, max_size=12)
approval = st.text(ALPHABETS["an"], min_size=6, max_size=6)
short_text = st.text(ans, min_size=1, max_size=30)
pin_block = st.binary(min_size=8, max_size=8).map(lambda b: b.hex().upper())
track2 = st.tuples(
    st.integers(12, 19).flatmap(digits), st.sampled_from("=D"), yymm, digits(3),
    st.text(string.digits, max_size=10),
).map(lambda t: Track2("".join(t)))  # fmt: skip
card = st.one_of(
    st.builds(CardData, st.sampled_from(EntryMode), pan=pan, expiry=st.none() | yymm,
              pin_block=st.none() | pin_block),
    st.builds(CardData, st.sampled_from(EntryMode), track2=track2,
              pin_block=st.none() | pin_block),
)  # fmt: skip
totals = st.builds(
    BatchTotals, st.sampled_from(sorted(CURRENCIES)), st.integers(0, 10**10 - 1),
    st.integers(0, 10**16 - 1), st.integers(0, 10**10 - 1), st.integers(0, 10**16 - 1),
)  # fmt: skip
original = st.builds(OriginalData, st.sampled_from(["0100", "0200", "0220"]), stan, mmddhhmmss,
                     digits(11), digits(11))  # fmt: skip

_common = {
    "stan": stan,
    "terminal_id": st.text(ans, min_size=8, max_size=8),
    "merchant_id": st.text(ans, min_size=15, max_size=15),
    "transmitted_at": st.none() | mmddhhmmss,
}
_local = {"local_time": st.none() | hhmmss, "local_date": st.none() | mmdd,
          "pos_condition": digits(2)}  # fmt: skip
_response = {
    "response_code": st.text(ALPHABETS["an"], min_size=2, max_size=2),
    "rule": st.none() | st.text(ans, min_size=1, max_size=25),
    "business_date": st.none() | mmdd,
    "host_time": st.none() | hhmmss,
    "host_date": st.none() | mmdd,
}

REQUESTS: dict[type[Message], st.SearchStrategy[Message]] = {
    AuthorizationRequest: st.builds(AuthorizationRequest, card=card, amount=money,
                                    **_common, **_local),
    SaleRequest: st.builds(SaleRequest, card=card, amount=money, **_common, **_local),
    RefundRequest: st.builds(
        RefundRequest, card=card, amount=money, original_rrn=st.none() | rrn,
        reason=st.sampled_from(RefundReason), evidence=st.none() | short_text,
        operator=st.none() | short_text, **_common, **_local,
    ),
    VoidRequest: st.builds(
        VoidRequest, card=st.none() | card, amount=money, original_rrn=rrn,
        voids_refund=st.booleans(), operator=st.none() | short_text, **_common, **_local,
    ),
    CompletionAdvice: st.builds(
        CompletionAdvice, card=st.none() | card, amount=money, approval_code=approval,
        original_rrn=st.none() | rrn, repeat=st.booleans(), **_common, **_local,
    ),
    ReversalRequest: st.builds(
        ReversalRequest, processing_code=digits(6), amount=money, repeat=st.booleans(),
        card=st.none() | card, original=st.none() | original,
        reason_code=st.none() | digits(2), **_common,
    ),
    ReconciliationRequest: st.builds(
        ReconciliationRequest, batch_number=digits(6), totals=totals,
        after_upload=st.booleans(), **_common,
    ),
    BatchUploadRequest: st.builds(
        BatchUploadRequest, batch_number=digits(6), processing_code=digits(6), amount=money,
        rrn=rrn, approval_code=st.none() | approval, local_time=st.none() | hhmmss,
        local_date=st.none() | mmdd, **_common,
    ),
    NetworkRequest: st.builds(NetworkRequest, code=st.sampled_from(NetworkCode), **_common),
}  # fmt: skip

RESPONSES: dict[type[Message], st.SearchStrategy[Message]] = {
    FinancialResponse: st.builds(
        FinancialResponse, mti_value=st.sampled_from(["0110", "0210", "0230", "0410"]),
        processing_code=digits(6), amount=st.none() | money, rrn=st.none() | rrn,
        approval_code=st.none() | approval, remaining=st.none() | money,
        pan=st.none() | pan, **_common, **_response,
    ),
    ReconciliationResponse: st.builds(
        ReconciliationResponse, mti_value=st.just("0510"), batch_number=st.none() | digits(6),
        processing_code=st.none() | st.sampled_from(["920000", "960000"]),
        totals=st.none() | totals, **_common, **_response,
    ),
    BatchUploadResponse: st.builds(
        BatchUploadResponse, mti_value=st.just("0330"), rrn=st.none() | rrn,
        batch_number=st.none() | digits(6), **_common, **_response,
    ),
    NetworkResponse: st.builds(
        NetworkResponse, mti_value=st.just("0810"), code=st.none() | digits(3),
        **_common, **_response,
    ),
}  # fmt: skip

requests = st.one_of(*REQUESTS.values())
responses = st.one_of(*RESPONSES.values())
