"""The host side of the China UnionPay POS profile (docs/cup-profile.md).

:func:`cup_flow` is how a CUP request goes through the pipeline: the CUP checks in the CUP
order (:mod:`host.cup.checks`) and the CUP handlers (:mod:`host.cup.handlers`); the typed
requests and the CUP answers are read and written by :mod:`protocol.cup_messages`, the answers
with the host's acquirer id in DE32.
"""

from __future__ import annotations

from functools import partial

from host.cup.checks import merchant_and_terminal, signed_on_and_mac
from host.cup.handlers import CUP_HANDLERS
from host.pipeline.flow import Flow
from protocol.cup_messages import cup_response_fields


def cup_flow(acquirer_id: str) -> Flow:
    """The CUP profile's way through the pipeline, its answers carrying ``acquirer_id`` in
    DE32 (``[host] acquirer_id``) where the terminal sent none."""
    return Flow(CUP_HANDLERS, authenticate_first=False, before_identify=merchant_and_terminal,
                after_identify=signed_on_and_mac,
                writer=partial(cup_response_fields, acquirer_id=acquirer_id))


__all__ = ["cup_flow"]
