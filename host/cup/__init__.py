"""The host side of the China UnionPay POS profile (docs/cup-profile.md).

:data:`CUP_FLOW` is how a CUP request goes through the pipeline: the CUP checks in the CUP order
(:mod:`host.cup.checks`) and the CUP handlers (:mod:`host.cup.handlers`); the typed requests
and the CUP answers are read and written by :mod:`protocol.cup_messages`.
"""

from __future__ import annotations

from host.cup.checks import merchant_and_terminal, signed_on_and_mac
from host.cup.handlers import CUP_HANDLERS
from host.pipeline.flow import Flow

CUP_FLOW = Flow(CUP_HANDLERS, authenticate_first=False, before_identify=merchant_and_terminal,
                after_identify=signed_on_and_mac)
"""The CUP profile's way through the pipeline."""

__all__ = ["CUP_FLOW"]
