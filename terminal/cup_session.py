"""The terminal's China UnionPay mode, sans-IO: the CUP requests it sends and what it makes of
the answers (see docs/cup-profile.md, "The terminal").

:class:`CupSession` wraps a :class:`~terminal.session.TerminalSession` -- the same journal,
counters, receipts and result screens -- and writes the requests as CUP field dicts instead of
the generic profile's typed messages:

* sale ``0200``/``000000``, void ``0200``/``200000`` with DE61 = original batch + trace and the
  original RRN in DE37, refund ``0220``/``200000`` (an advice) with DE61 = the original's
  batch, trace and date MMDD from the journal (for an RRN keyed in, the date keyed with it)
  and the original RRN in DE37; each with DE22, DE25 ``00`` and DE60 = 60.1 type from the
  profile's route + 60.2 the open batch + 60.3 ``000``;
* sign-on ``0800`` with 60.3 ``004``: the 0810's 60.2 becomes the open batch; a financial
  answer ``77`` (batch or sign-on mismatch) or ``A0`` (MAC) drops the sign-on, so the driver
  signs on again;
* settlement ``0500`` with 60.3 ``201`` and the CUP totals in DE48 (voided and refunded sales
  still count as debits; refunds and voids are credits; UnionPay cards, BIN ``62``, are
  domestic, others foreign); an 0510 with result flag ``2`` asks for the batch upload:
  ``0320`` messages of at most 8 records (60.3 ``201``), then the closing ``0320`` with 60.3
  ``207``;
* reversal ``0400`` of an unanswered 0200: the original's fields with DE39 ``98`` (``A0`` when
  the answer failed its MAC); one the host did not acknowledge is rebuilt from the journal line
  and forwarded before the next request, with the same fields and reason, so a host that took
  the first one knows it again;
* an unanswered ``0220`` is an advice: not reversed but sent again, the same message (a CUP
  terminal has no 0221), until the host answers; the host knows the repeat by its key and
  content and answers it as it answered the first, booking nothing twice.

The journal line keeps the request as sent, less the card's data, PIN and MAC
(:attr:`~terminal.journal.Txn.sent`): a reversal or a repeat is rebuilt from it and the deck
card, also after a restart.

Keys (docs/keys-and-macs.md, "Terminal"), with a TMK in the session's
:class:`~terminal.security.state.TerminalSecurity`: the 0810's DE62 brings the PIN, MAC and
data keys, each checked against its check value; a PIN becomes DE52 (ISO format 0 under the
PIN key), DE53 in the CUP layout (``2600000000000000``), DE26 the longest PIN the terminal takes
and a ``1`` in DE22 position 3. DE64 is sealed at the link (:func:`cup_mac_guard`) with the CUP
ECB MAC of the profile; without working keys no MAC is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime

from protocol.codec import Codec
from protocol.codes import EntryMode
from protocol.cup import CUP_PROFILE
from protocol.cup_private import CupTotals, De60, De61, SchemeTotals, UploadRecord, upload_text
from protocol.messages import FinancialResponse
from protocol.money import Money, currency
from protocol.private_data import decode_remaining
from protocol.specs import WireProfile
from protocol.transactions import TxnType
from terminal.cards import Card
from terminal.flow import Draft, Original, Outcome
from terminal.i18n import _
from terminal.journal import DEBIT_KINDS, Txn, TxnKind, TxnStatus
from terminal.security.guard import MacGuard
from terminal.security.state import SIGN_ON_AGAIN as SECURITY_REFUSALS
from terminal.security.state import SecurityUnavailable, SignOnKeyError, TerminalSecurity
from terminal.session import REVERSAL_ACKNOWLEDGED, Pending, TerminalSession

Fields = dict[str, str]


def is_cup(profile: str) -> bool:
    """True for the China UnionPay profile: the terminal then drives a :class:`CupSession`."""
    return profile == CUP_PROFILE.name


SIGN_ON_AGAIN = ("77", "A0")
"""Financial answers after which the terminal must sign on again (batch or sign-on, MAC)."""
NO_ANSWER_REASON = "98"
"""DE39 of a reversal sent because the request got no answer."""
MAC_FAILED_REASON = "A0"
"""DE39 of a reversal sent because the answer failed its MAC check."""
UNSEALED_REFUSALS = frozenset({"30", "03", "97", "58"}) | SECURITY_REFUSALS
"""Answers a CUP host sends without a MAC: its checks of the fields (30), merchant (03),
terminal (97/58) and sign-on (77) come before the MAC check, and a MAC failure (A0) cannot be
MAC'd. Any other answer to a MAC'd request must carry a MAC that holds."""
PIN_ENTERED = "1"
"""DE22 position 3 when DE52 carries a PIN (``2``: no PIN)."""
MAX_PIN_DIGITS = "12"
"""DE26: the longest PIN the terminal's PIN pad takes."""
UPLOAD_PER_MESSAGE = 8
CARD_DATA = frozenset({"2", "14", "35", "26", "52", "53", "55", "64"})
"""Request fields a journal line never keeps: the card's data, the PIN and the MAC."""
OPERATOR = "01 "
"""DE63 of a sign-on and a settlement: operator number (3 characters)."""

_KIND_ROUTE = {TxnKind.SALE: TxnType.SALE, TxnKind.VOID: TxnType.VOID,
               TxnKind.REFUND: TxnType.REFUND, TxnKind.AUTHORIZE: TxnType.AUTHORIZATION,
               TxnKind.COMPLETION: TxnType.COMPLETION}
# DE22 positions 1-2 in CUP: swiped cards are 02 (the generic profile's 90).
_CUP_ENTRY = {EntryMode.SWIPE: "02", EntryMode.CHIP: "05", EntryMode.CONTACTLESS: "07",
              EntryMode.MANUAL: "01"}


def is_domestic(masked_pan: str | None) -> bool:
    """A UnionPay card (BIN 62) counts as domestic in the CUP totals and upload."""
    return bool(masked_pan and masked_pan.startswith("62"))


def cup_totals(txns: list[Txn]) -> CupTotals:
    """DE48 of the 0500 for ``txns`` (the open batch): approved sales are debits even when
    voided or refunded later; approved refunds and voids are credits."""
    sums = {True: [0, 0, 0, 0], False: [0, 0, 0, 0]}
    for txn in txns:
        if txn.status is not TxnStatus.APPROVED or txn.kind is TxnKind.AUTHORIZE:
            continue
        row = sums[is_domestic(txn.masked_pan)]
        at = 0 if txn.kind in DEBIT_KINDS else 2
        row[at] += txn.amount_minor
        row[at + 1] += 1
    domestic, foreign = (SchemeTotals(*sums[True]), SchemeTotals(*sums[False]))
    return CupTotals(domestic, foreign)


@dataclass
class CupSession:
    """A terminal session speaking the CUP POS profile (see the module docstring).

    :ivar deck: the test cards, to find the PAN of a journal line for the batch upload (the
        journal keeps PANs masked only).
    """

    session: TerminalSession
    deck: list[Card] = field(default_factory=list)
    profile: WireProfile = CUP_PROFILE
    signed_on: bool = False
    #: DE39 of the last 0810 (None before the first sign-on was answered).
    sign_on_code: str | None = None

    def __post_init__(self) -> None:
        # A refund sent just before a crash comes back from the journal to be reversed; on CUP
        # it is an advice, to be repeated.
        journal = self.session.journal
        for txn in journal.pending_reversals():
            if txn.kind is TxnKind.REFUND:
                txn.status = TxnStatus.ADVICE_PENDING
                journal.update(txn)

    @property
    def batch(self) -> str:
        """The open batch (60.2)."""
        return self.session.journal.batch_number

    @property
    def security(self) -> TerminalSecurity | None:
        """The terminal's keys (the wrapped session's), None for a terminal without any."""
        return self.session.security

    def _ids(self, stan: str | None = None) -> Fields:
        config = self.session.config
        return {"11": stan or self.session.next_stan(), "41": config.terminal_id,
                "42": config.merchant_id}

    def _currency(self) -> str:
        return currency(self.session.config.currency).numeric

    # -- sign-on -----------------------------------------------------------------------------

    def sign_on_request(self) -> Fields:
        """The 0800 sign-on for the three working keys (60.3 ``004``)."""
        return {"t": "0800", **self._ids(), "60": De60("00", self.batch, "004").text(),
                "63": OPERATOR}

    def sign_on_answered(self, answer: Fields) -> bool:
        """Take the 0810: on ``00`` the terminal takes the working keys of DE62 and is signed
        on, and its batch is the host's 60.2.

        :raises SignOnKeyError: DE62 does not unwrap under the TMK, or a key fails its check
            value; the terminal is then not signed on and holds no working keys.
        """
        self.sign_on_code = answer.get("39", "")
        self.signed_on = False
        if self.sign_on_code != "00":
            return False
        self._take_keys(answer.get("62"))
        self.signed_on = True
        if "60" in answer:
            self.session.journal.use_batch(De60.parse(answer["60"]).batch)
        return True

    def _take_keys(self, key_block: str | None) -> None:
        """The working keys of an approved 0810 (none without a TMK and without DE62)."""
        if self.security is None:
            if key_block:
                raise SignOnKeyError("the host sent working keys but this terminal has no "
                                     "TMK; import one with poslab-terminal keys import")
            return
        state = self.session.sign_on_state
        state.keys = None
        state.keys = self.security.accept_sign_on(key_block)

    def sign_off_request(self) -> Fields:
        """The 0820 sign-off (60.3 ``002``); after its ``00`` the terminal must sign on."""
        return {"t": "0820", **self._ids(), "60": De60("00", self.batch, "002").text()}

    # -- financial transactions --------------------------------------------------------------

    def request_fields(self, draft: Draft, stan: str, now: datetime,
                       original_line: Txn | None = None, pin: Fields | None = None) -> Fields:
        """The CUP field dict for ``draft`` (pure apart from reading the journal).

        A void or refund names its original from this terminal's journal, found by RRN, or
        from ``original_line`` when another terminal made the original. ``pin``: the PIN
        fields of :meth:`pin_fields`, which also mark DE22 "PIN entered". A completion
        (the request, 60.1 ``20``) names its pre-authorization in DE61 and quotes its approval
        code in DE38; a void of a completion is the completion void (60.1 ``21``)."""
        original = original_line or (
            self.session.journal.by_rrn(draft.original.rrn) if draft.original else None)
        txn_type = _KIND_ROUTE[draft.kind]
        if draft.kind is TxnKind.VOID and original is not None and \
                original.kind is TxnKind.COMPLETION:
            txn_type = TxnType.VOID_COMPLETION
        route = self.profile.route(txn_type)
        type_code = next(m.value for m in route.match if m.key == "60")
        out: Fields = {"t": route.mti, "3": route.processing_code or "000000",
                       "4": f"{draft.amount.minor:012d}", "11": stan,
                       "25": next(m.value for m in route.match if m.key == "25"),
                       "41": self.session.config.terminal_id,
                       "42": self.session.config.merchant_id,
                       "49": currency(draft.amount.currency).numeric,
                       "60": De60(type_code, self.batch).text()}
        presented, mode = draft.card, draft.entry_mode
        if presented is None and draft.original is not None:
            # A void without a card presented: the original's card, keyed in.
            presented, mode = self._deck_card(draft.original.masked_pan), EntryMode.MANUAL
        if presented is not None and mode is not None:
            out.update(card_fields(presented, mode))
            out["22"] = _CUP_ENTRY[mode] + (PIN_ENTERED if pin else "2")  # 2: no PIN entered
        else:
            out["22"] = "012"
        out.update(pin or {})
        if draft.kind is TxnKind.COMPLETION:  # the host finds the hold by DE61 and DE38
            assert original is not None and draft.original is not None
            out["61"] = De61(original.batch, original.stan, _mmdd(original)).text()
            out["38"] = draft.original.approval_code or ""
            return out
        if draft.original is not None:
            out["37"] = draft.original.rrn
        if draft.kind is TxnKind.VOID and original is not None:
            out["61"] = De61(original.batch, original.stan).text()
            if original.approval_code:
                out["38"] = original.approval_code
        elif draft.kind is TxnKind.REFUND and original is not None:
            out["61"] = De61(original.batch, original.stan, _mmdd(original)).text()
        elif draft.kind is TxnKind.REFUND:
            out["61"] = keyed_original(draft.original).text()
        return out

    def begin(self, draft: Draft, stan: str | None = None, original_line: Txn | None = None
              ) -> tuple[Pending, Fields]:
        """Journal ``draft`` ``PENDING`` (under ``stan``, else the next trace number) and
        return its line and its CUP request (see :meth:`request_fields`).

        :raises SecurityUnavailable: the draft has a PIN the terminal cannot encipher (nothing
            is journalled then).
        """
        pin = self.pin_fields(draft)
        # The PIN goes into the CUP request only, never into the journal's generic request.
        pending = self.session.begin(replace(draft, pin=None), stan=stan)
        fields = self.request_fields(draft, pending.txn.stan, pending.at, original_line, pin)
        pending.txn.processing_code = fields["3"]  # the CUP code, for a later reversal
        pending.txn.sent = {k: v for k, v in fields.items() if k not in CARD_DATA}
        self.session.journal.update(pending.txn)
        return pending, fields

    def rebuilt_request(self, txn: Txn) -> Fields | None:
        """The request of ``txn`` as it was sent: the fields its line kept and the card's from
        the deck (a void's card keyed in, as it was sent); None for a line that kept none, or
        whose card is not in the deck."""
        if txn.sent is None:
            return None
        out = dict(txn.sent)
        if txn.masked_pan:  # the line kept everything but the card
            card = self._deck_card(txn.masked_pan)
            if card is None:
                return None
            mode = EntryMode(txn.entry_mode) if txn.entry_mode else EntryMode.MANUAL
            out.update(card_fields(card, mode))
        return out

    def advice_waiting(self, txn: Txn) -> None:
        """An 0220 without a usable answer: the line waits for a repeat to be answered."""
        txn.status = TxnStatus.ADVICE_PENDING
        self.session.journal.update(txn)

    def advice_unanswered(self, txn: Txn, why: str) -> Outcome:
        """The result screen of an 0220 whose repeats got no answer either: the line waits,
        and the terminal sends it again before its next transaction."""
        self.session.finish(txn)
        detail = _("{why} The refund advice is kept and sent again before the next "
                   "transaction; the refund is done when the host answers it.").format(
                       why=self.session.no_answer_lead(why))
        return Outcome("no_response", "NO RESPONSE", detail, None, txn.seq)

    def pending_advices(self) -> list[Txn]:
        """The 0220 refunds the host has not answered yet (repeated before the next request)."""
        return self.session.journal.pending_advices()

    def reversal_waiting(self, txn: Txn, reason: str) -> None:
        """An 0200 without a usable answer: the line waits for its reversal, whose DE39 is
        ``reason`` also when it is sent again after a restart."""
        txn.reversal_reason = None if reason == NO_ANSWER_REASON else reason
        self.session.unanswered(txn)

    def answered(self, txn: Txn, answer: Fields) -> Outcome:
        """Record the host's answer; ``77``/``A0`` also drop the sign-on."""
        code = answer.get("39", "")
        if code in SIGN_ON_AGAIN:
            self.signed_on = False
        response = FinancialResponse(
            mti_value=answer.get("t", ""), response_code=code,
            processing_code=answer.get("3", txn.processing_code), rrn=answer.get("37"),
            approval_code=answer.get("38"), business_date=answer.get("15"),
            host_time=answer.get("12"), host_date=answer.get("13"), rule=answer.get("44"),
            stan=answer.get("11", txn.stan), terminal_id=answer.get("41", ""),
            merchant_id=answer.get("42", ""), remaining=remaining_of(answer))
        return self.session.answered(txn, response)

    def pin_fields(self, draft: Draft) -> Fields:
        """The PIN fields of ``draft`` under this terminal's keys (see :func:`pin_fields`)."""
        return pin_fields(self.security, draft)

    def reversal_fields(self, request: Fields, reason: str = NO_ANSWER_REASON) -> Fields:
        """The 0400 undoing a 0200 without a usable answer: its fields with DE39 ``reason``
        (``98`` no answer, ``A0`` the answer's MAC failed)."""
        keep = ("2", "3", "4", "11", "14", "22", "25", "41", "42", "49", "60", "61")
        out = {"t": "0400", **{k: request[k] for k in keep if k in request}}
        out["39"] = reason
        return out

    def stored_reversal(self, txn: Txn) -> Fields | None:
        """The 0400 for a journal line still waiting for its reversal (store and forward):
        the same 0400 as the first, from the request the line kept and with its reason (a
        line from an older journal: rebuilt from its amount, trace and card, reason kept);
        None for a refund (an 0220 advice is not reversed)."""
        if txn.kind not in (TxnKind.SALE, TxnKind.VOID):
            return None
        reason = txn.reversal_reason or NO_ANSWER_REASON
        request = self.rebuilt_request(txn)
        if request is not None:
            return self.reversal_fields(request, reason)
        card = self._deck_card(txn.masked_pan)
        return self.reversal_of(txn.kind, txn.stan, Money(txn.amount_minor, txn.currency),
                                txn.batch, card.pan.digits if card is not None else None,
                                txn.processing_code, reason)

    def reversal_of(self, kind: TxnKind, stan: str, amount: Money, batch: str,
                    pan: str | None = None, processing_code: str | None = None,
                    reason: str = NO_ANSWER_REASON) -> Fields | None:
        """The 0400 (DE39 ``reason``) undoing the sale or void of ``amount`` with trace
        ``stan`` sent in ``batch``; None for other kinds (an 0220 refund is an advice: it is
        not reversed)."""
        if kind not in (TxnKind.SALE, TxnKind.VOID):
            return None
        route = self.profile.route(_KIND_ROUTE[kind])
        type_code = next(m.value for m in route.match if m.key == "60")
        condition = next(m.value for m in route.match if m.key == "25")
        out: Fields = {"t": "0400", "3": processing_code or route.processing_code or "000000",
                       "4": f"{amount.minor:012d}", "11": stan, "22": "012", "25": condition,
                       "39": reason, "41": self.session.config.terminal_id,
                       "42": self.session.config.merchant_id,
                       "49": currency(amount.currency).numeric,
                       "60": De60(type_code, batch).text()}
        if pan is not None:
            out["2"] = pan
        return out

    def reversal_answered(self, txn: Txn, answer: Fields | None) -> str | None:
        """The acknowledging DE39 when ``answer`` acknowledges the reversal of ``txn`` (00,
        or 25: the host never saw the original); the line is then ``REVERSED``."""
        code = (answer or {}).get("39")
        if code not in REVERSAL_ACKNOWLEDGED:
            return None
        txn.status = TxnStatus.REVERSED
        self.session.journal.update(txn)
        return code

    # -- settlement --------------------------------------------------------------------------

    def totals(self) -> CupTotals:
        """The CUP totals of the open batch."""
        return cup_totals(self.session.journal.open_batch())

    def settlement_request(self) -> Fields:
        """The 0500 (60.3 ``201``) with the CUP totals in DE48."""
        return {"t": "0500", **self._ids(), "48": self.totals().text(), "49": self._currency(),
                "60": De60("00", self.batch, "201").text(), "63": OPERATOR}

    def _deck_card(self, masked_pan: str | None) -> Card | None:
        """The deck card shown as ``masked_pan`` (None when none or several match)."""
        found = [c for c in self.deck if masked_pan and c.masked == masked_pan]
        return found[0] if len(found) == 1 else None

    def upload_records(self) -> list[UploadRecord]:
        """One record per approved sale, refund or void of the open batch whose card is in the
        deck (the journal keeps PANs masked, so other cards cannot be uploaded)."""
        out = []
        for txn in self.session.journal.open_batch():
            card = self._deck_card(txn.masked_pan)
            if txn.status is TxnStatus.APPROVED and card is not None:
                out.append(UploadRecord(not is_domestic(txn.masked_pan), txn.stan,
                                        card.pan.digits, txn.amount_minor))
        return out

    def upload_requests(self) -> Iterator[Fields]:
        """The 0320 messages carrying the upload (60.3 ``201``, at most 8 records each), then
        the closing 0320 (60.3 ``207``) with the number of records sent."""
        records = self.upload_records()
        for start in range(0, len(records), UPLOAD_PER_MESSAGE):
            chunk = records[start:start + UPLOAD_PER_MESSAGE]
            yield {"t": "0320", **self._ids(), "48": upload_text(chunk),
                   "60": De60("00", self.batch, "201").text()}
        yield {"t": "0320", **self._ids(), "48": f"{len(records):04d}",
               "60": De60("00", self.batch, "207").text()}


def card_fields(card: Card, mode: EntryMode) -> Fields:
    """DE2, DE14 and DE35 of ``card`` presented in ``mode`` (what it gives away in it)."""
    read = card.present(mode)
    out: Fields = {}
    if read.pan is not None:
        out["2"] = read.pan.digits
    if read.expiry:
        out["14"] = read.expiry
    if read.track2 is not None:
        out["35"] = read.track2.data.replace("=", "D")  # BCD: D separates
    return out


def pin_fields(security: TerminalSecurity | None, draft: Draft) -> Fields:
    """DE52 (the PIN block under the working PIN key), DE53 (CUP layout) and DE26 for the PIN
    of ``draft``; {} without a PIN.

    :raises SecurityUnavailable: no PIN key (no TMK, or not signed on), or no card.
    """
    if draft.pin is None:
        return {}
    if security is None or draft.card is None:
        raise SecurityUnavailable("this terminal takes no PIN: it has no keys")
    block, control, _ksn = security.pin_data(draft.pin, draft.card.pan.digits)
    return {"26": MAX_PIN_DIGITS, "52": block, "53": control}


def cup_mac_guard(security: TerminalSecurity, codec: Codec) -> MacGuard:
    """The link's MAC guard for a CUP terminal: the CUP ECB MAC in DE64 on the profile's
    MAC'd messages, answers without a MAC accepted only for :data:`UNSEALED_REFUSALS`."""
    return MacGuard(security, codec, unsealed=UNSEALED_REFUSALS)


def keyed_original(original: Original | None) -> De61:
    """DE61 of a refund whose original the journal does not hold (its RRN keyed in): no batch
    or trace, 61.3 the date keyed from the original's slip (``0000`` when none was given, which
    the host answers 25 ``ORIGINAL_NOT_FOUND:DATE`` for an original it finds by the RRN)."""
    date = original.date_mmdd if original is not None and original.date_mmdd else "0000"
    return De61("000000", "000000", date)


def remaining_of(answer: Fields) -> Money | None:
    """The remaining refundable amount of a refund's original, from the answer's DE54 (the
    generic profile's block, amount type ``90``); None when the answer carries none."""
    return decode_remaining(answer["54"]) if "54" in answer else None


def _mmdd(txn: Txn) -> str:
    """The original's date MMDD: the host's date when it gave one, else the local date."""
    if txn.host_date:
        return txn.host_date
    return datetime.fromisoformat(txn.local_time).strftime("%m%d")
