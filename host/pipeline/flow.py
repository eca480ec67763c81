"""How a wire profile's requests go through the pipeline: :class:`Flow`.

The generic profiles check the MAC before the database is touched, then identify the terminal,
de-duplicate and run the handler of :data:`host.pipeline.handlers.HANDLERS`. A profile with
its own order of checks and its own answers (CUP, :mod:`host.cup`) gives a flow of its own:
checks inside the request's write transaction before and after identify, its own handlers for
what it does differently, and a writer that turns the typed answer into its field dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from host.pipeline.context import Context
from host.pipeline.handlers import HANDLERS, Handler
from host.pipeline.replies import Reply
from protocol.messages import AnyResponse, WireResponse
from protocol.specs import WireProfile
from protocol.transactions import TxnType


@dataclass(frozen=True)
class Flow:
    """A profile's way through the pipeline.

    :ivar handlers: the handler of each logical transaction.
    :ivar authenticate_first: check the MAC before the write transaction (generic); False when
        :attr:`after_identify` checks it in the profile's own order.
    :ivar before_identify: / :ivar after_identify: checks inside the write transaction around
        the identify stage; they raise :class:`~host.pipeline.context.Decline` to refuse.
    :ivar writer: writes the typed answers (the profile's writer with the host's settings,
        such as the CUP acquirer id); None: the profile's own writer.
    """

    handlers: Mapping[TxnType, Handler]
    authenticate_first: bool = True
    before_identify: Callable[[Context], None] | None = None
    after_identify: Callable[[Context], None] | None = None
    writer: Callable[[Mapping[str, str], AnyResponse], WireResponse] | None = None


GENERIC_FLOW = Flow(HANDLERS)


def written(profile: WireProfile, request: Mapping[str, str], reply: Reply,
            flow: Flow | None = None) -> Reply:
    """``reply`` as ``profile`` writes its answers (a CUP field dict), once, with ``flow``'s
    writer when it has one; unchanged on the generic profiles, whose typed answers are their
    field dicts."""
    response = reply.response
    writer = flow.writer if flow is not None and flow.writer is not None else profile.writer
    if writer is None or response is None or isinstance(response, WireResponse):
        return reply
    out = writer(request, response)
    return Reply(out, {**reply.log, "rc": out.response_code}, reply.silent)
