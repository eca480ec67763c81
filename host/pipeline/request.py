"""The typed request at the edge of the host's core: :class:`IsoRequest`.

The server shell decodes a frame with its connection's wire profile and hands the core one
:class:`IsoRequest`: the decoded fields, the frame's bytes as received (a MAC check needs them)
and the profile that decoded them (a strict host checks that profile's mandatory fields, not
the default's). It reads as a ``Mapping[str, str]`` of the fields, so code that only needs the
fields (the fault rules, the message log, test doubles) takes it as it is. :func:`txn_type`
names the logical transaction of a typed message, which picks its handler.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from protocol.codec import Tpdu
from protocol.codes import NetworkCode
from protocol.messages import (
    AuthorizationRequest,
    BatchUploadRequest,
    CompletionAdvice,
    CupUploadRequest,
    NetworkRequest,
    ReconciliationRequest,
    RefundRequest,
    Request,
    ReversalRequest,
    SaleRequest,
    VoidRequest,
)
from protocol.specs import DEFAULT_PROFILE, WireProfile, get_profile
from protocol.transactions import TxnType

_DEFAULT = get_profile(DEFAULT_PROFILE)


class IsoRequest(Mapping[str, str]):
    """One request as the server shell received it.

    :ivar fields: the decoded fields (``"t"`` the MTI, ``"h"`` a message header).
    :ivar raw: the frame's payload as received (TPDU, header and body), for checks over the
        bytes themselves (a MAC); empty when the request did not come off the wire.
    :ivar profile: the wire profile that decoded it.
    :ivar tpdu: the TPDU it came with, when the profile has one.
    """

    # A plain slotted class, not a frozen dataclass: one is built per request, and a frozen
    # dataclass's __init__ costs about three times as much.
    __slots__ = ("fields", "raw", "profile", "tpdu")

    def __init__(self, fields: Mapping[str, str], raw: bytes = b"",
                 profile: WireProfile = _DEFAULT, tpdu: Tpdu | None = None) -> None:
        self.fields = fields
        self.raw = raw
        self.profile = profile
        self.tpdu = tpdu

    @classmethod
    def of(cls, request: Mapping[str, str]) -> IsoRequest:
        """``request`` itself, or a plain field mapping wrapped under the default profile."""
        if isinstance(request, dict):  # checked first: a plain dict is the common case
            return cls(request)
        if isinstance(request, IsoRequest):
            return request
        return cls(request)

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    @property
    def message(self) -> bytes:
        """The message as received from the MTI on, without TPDU or message header: the bytes
        a MAC covers (empty when the request did not come off the wire)."""
        profile = self.profile
        skip = (profile.tpdu.size if profile.tpdu else 0) + (
            profile.message_header.size if profile.message_header else 0)
        return self.raw[skip:]

    def missing_field(self) -> str | None:
        """The first field this request's profile requires of it that it lacks."""
        return self.profile.missing_field(self.fields)


def txn_type(message: Request) -> TxnType:
    """The logical transaction of a typed request."""
    if isinstance(message, VoidRequest):
        return TxnType.VOID_REFUND if message.voids_refund else TxnType.VOID
    if isinstance(message, ReconciliationRequest):
        return TxnType.SETTLEMENT_AFTER_UPLOAD if message.after_upload else TxnType.SETTLEMENT
    if isinstance(message, NetworkRequest):
        return _NETWORK[message.code]
    return _BY_CLASS[type(message)]


_BY_CLASS: dict[type, TxnType] = {
    SaleRequest: TxnType.SALE, AuthorizationRequest: TxnType.AUTHORIZATION,
    RefundRequest: TxnType.REFUND, CompletionAdvice: TxnType.COMPLETION,
    ReversalRequest: TxnType.REVERSAL, BatchUploadRequest: TxnType.BATCH_UPLOAD,
    CupUploadRequest: TxnType.BATCH_UPLOAD,
}
_NETWORK = {NetworkCode.SIGN_ON: TxnType.SIGN_ON, NetworkCode.SIGN_OFF: TxnType.SIGN_OFF,
            NetworkCode.ECHO: TxnType.ECHO}
