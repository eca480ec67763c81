"""The wire profiles the terminal and the scenario runner can speak, by name.

The generic profiles come from :data:`protocol.specs.PROFILES`. The China UnionPay profile
(``cup``, :data:`protocol.cup.CUP_PROFILE`) is added here as long as that registry does not list
it yet; once it does, the union below is simply the registry and this module only answers
:func:`is_cup`.
"""

from __future__ import annotations

from protocol.cup import CUP_PROFILE
from protocol.specs import PROFILES, WireProfile

CUP = CUP_PROFILE.name
"""The China UnionPay profile's name, ``cup``."""

TERMINAL_PROFILES: dict[str, WireProfile] = {CUP: CUP_PROFILE, **PROFILES}
"""Every profile a terminal can be started on (``--profile``)."""


def terminal_profile(name: str) -> WireProfile:
    """The profile called ``name``; :class:`ValueError` lists the valid names."""
    try:
        return TERMINAL_PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown wire profile {name!r}; choose one of: "
                         f"{', '.join(sorted(TERMINAL_PROFILES))}") from None


def is_cup(name: str) -> bool:
    """True for the China UnionPay profile: the terminal then drives the CUP session."""
    return name == CUP
