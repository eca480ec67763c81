"""The pipeline's stages, in order: validate -> authenticate -> identify -> de-duplicate ->
decide and book (the handler of the request's transaction, :mod:`host.pipeline.handlers`) ->
remember the answer.

Each stage is a function over the request's :class:`~host.pipeline.context.Context`. A stage
that can end the request early returns the :class:`~host.pipeline.replies.Reply` to send (or raises
:class:`~host.pipeline.context.Decline` inside the write transaction); ``None`` means carry on.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from host import wire
from host.canonical_json import dumps_sorted_strings, stored_text
from host.ledger import to_ms
from host.pipeline.context import Context, Decline, Services, day_texts
from host.pipeline.ports import Tx
from host.pipeline.replies import Reply, plain_reply
from host.pipeline.request import IsoRequest, txn_type
from host.request_key import request_key
from protocol.codes import RuleId
from protocol.errors import ValidationError
from protocol.messages import WireResponse, parse_request, parse_response
from protocol.private_data import check_lengths, mask_card_numbers
from protocol.transactions import TxnType

#: The transactions that insert a transaction row (their id may be reserved on arrival).
BOOKING = frozenset({TxnType.SALE, TxnType.AUTHORIZATION, TxnType.REFUND, TxnType.VOID,
                     TxnType.VOID_REFUND, TxnType.COMPLETION, TxnType.VOID_COMPLETION,
                     TxnType.AUTH_CANCEL})


def validate(host: Services, request: IsoRequest, now: datetime, *, strict: bool,
             text_limits: dict[str, int]) -> Context:
    """Check and type the request; raises :class:`ValidationError` (answered 30).

    A strict host requires the mandatory fields of the request's own wire profile; a lenient
    one fills missing transmission times from ``now``. A refund's or void's free text is
    checked against ``text_limits`` and its card numbers masked before anything is stored.
    """
    fields = dict(request.fields)
    # The connection's profile says what is mandatory, not the default profile.
    missing = request.profile.missing_field(fields) if strict else None
    if missing is not None:
        raise ValidationError(f"mandatory field {missing} is missing", field=missing,
                              fields=fields)
    text = wire.free_text(fields)
    if text is not None:
        check_lengths(text, text_limits)
        wire.with_free_text(fields, mask_card_numbers(text))
    sent = dict(fields)  # what the terminal sent: no host-filled times
    wire.fill_times(fields, now)
    reader = request.profile.reader
    if reader is not None:  # a profile with private fields of its own (CUP)
        txn, message = reader(fields, request.profile)
    else:
        message = parse_request(fields)
        txn = txn_type(message)
    return Context(host, request, sent, fields, message, txn, now, to_ms(now))


def authenticate(ctx: Context) -> Reply | None:
    """Check the request's message authentication: a reply to refuse it, or None.

    Message security (:class:`host.security.gate.HostSecurity`) checks the MAC over the bytes
    as received (``ctx.request.message``) before anything is read from or written to the
    database: a MAC that does not hold, or a terminal that must sign on first, books nothing.
    The PIN is checked later, by the financial handlers, where the card is known.
    """
    security = ctx.host.security
    if security is None:
        return None
    return security.authenticate(ctx.request.message, ctx.fields)


def admitted(ctx: Context) -> None:
    """Inside the write transaction, once the request is authenticated: message security
    stores what it keeps of it (a DUKPT counter), durable before the answer leaves and undone
    with a request that rolls back."""
    security = ctx.host.security
    if security is not None:
        security.admitted(ctx.conn, ctx.request.message, ctx.fields, ctx.now_ms)


#: DE44 of a request for a merchant another host serves: 03, as for a merchant this host does
#: not know, with a detail saying it is known elsewhere (DE44 holds at most 25 characters).
OTHER_PARTITION = f"{RuleId.UNKNOWN_MERCHANT.value}:NOT_HERE"


def served(ctx: Context) -> None:
    """Raise :class:`Decline` (03, :data:`OTHER_PARTITION`) when the request's merchant is
    listed in another host's partition; the message log's ``reason`` names both partitions.
    A merchant the config does not list is left to the terminal checks (development mode
    serves it on any host)."""
    why = ctx.host.foreign(ctx.message.merchant_id)
    if why is not None:
        refused = plain_reply(ctx.fields, "03", OTHER_PARTITION)
        raise Decline(Reply(refused.response, {**refused.log, "reason": why}))


def identify(ctx: Context, conn: Tx) -> None:
    """Inside the write transaction: the terminal's merchant, its business date and the
    request key. Raises :class:`Decline`: 58 for an unknown terminal (unless development mode
    enrols it with the default merchant profile), 03 for a mismatched or unknown merchant or
    one another host serves (:func:`served`).

    The request's first reads happen here, in one go (:meth:`TxnStore.arrival`): the
    terminal's row, the answer stored under the request key (:func:`deduplicate`) and the
    tombstone a reversal may have left (:func:`host.pipeline.handlers.precheck`)."""
    host, message = ctx.host, ctx.message
    ctx.conn = conn
    tid, mid = message.terminal_id, message.merchant_id
    owner = host.terminal_owner(tid)
    if owner is not None and owner.id != mid:
        raise Decline(plain_reply(ctx.fields, "03", RuleId.UNKNOWN_MERCHANT.value))
    served(ctx)
    # The merchant is the message's: a configured terminal's owner, else the merchant the
    # terminal row must name (checked below), so the request key is known before any read.
    merchant = owner if owner is not None else host.merchant_profile(mid)
    ctx.merchant = merchant
    ctx.policy = host.refund_policy(merchant)
    ctx.business_date = host.business_date(merchant, ctx.now)
    ctx.bdate = day_texts(ctx.business_date)[0]
    facts = message.cup
    ctx.key = request_key(ctx.sent, ctx.business_date,
                          facts.batch if facts is not None else None)
    row, ctx.answered, ctx.tombstoned = host.store.arrival(
        conn, tid, mid, message.stan, ctx.match_dates, ctx.key, books=ctx.txn in BOOKING)
    if owner is None:
        if row is None or not row.enrolled:
            if not host.allow_unknown_terminals:
                raise Decline(plain_reply(ctx.fields, "58", RuleId.UNKNOWN_TERMINAL.value))
            row = host.store.ensure_terminal(conn, tid, mid, ctx.now_ms, enrolled=True,
                                             locked=row)
            host.enrolled(mid)
            host.store.add_event(conn, None, ctx.now_ms, "terminal_enrolled", terminal=tid,
                                 merchant=mid)
        elif row.merchant_id != mid:
            raise Decline(plain_reply(ctx.fields, "03", RuleId.UNKNOWN_MERCHANT.value))
    ctx.terminal = row  # read locked: batch assignment uses it instead of reading again


def fingerprint(ctx: Context) -> str:
    """The request's content fingerprint: what the terminal sent, minus volatile fields, with
    the card number as its keyed hash."""
    doc = wire.fingerprint_doc(ctx.sent)
    pan = wire.pan_of(ctx.sent)
    if pan is not None:
        doc["pan"] = ctx.card_hash(pan)
    return hashlib.sha256(dumps_sorted_strings(doc)).hexdigest()


def deduplicate(ctx: Context, digest: str) -> Reply | None:
    """A request key seen before: the stored answer again when the content is the same,
    94 DUPLICATE_DIFFERENT when it is not; None for a new request."""
    seen = ctx.answered  # read by identify
    if seen is None:
        return None
    stored_fp, result = seen
    if stored_fp != digest:
        return plain_reply(ctx.fields, "94", RuleId.DUPLICATE_DIFFERENT.value, ctx.de15,
                           kind="duplicate")
    stored = json.loads(result)
    logged = dict(stored["log"])
    logged["replayed"] = True
    if ctx.request.profile.writer is not None:  # stored as the profile wrote it
        return Reply(WireResponse(stored["fields"]), logged)
    return Reply(parse_response(stored["fields"]), logged)


def remember(ctx: Context, digest: str, reply: Reply) -> None:
    """Store the answer under the request key, in the same transaction as its effects; a
    reply without a response is a silent issuer's: nothing booked, nothing sent."""
    if reply.response is None:
        raise Decline(reply)  # roll back, book nothing, send nothing
    stored = {"fields": reply.response.to_fields(), "log": reply.log}
    ctx.host.ledger.remember(ctx.conn, ctx.key, digest, stored_text(stored), ctx.now_ms)
