"""Ledger chains: several writers on one database, each appending to a hash chain of its own.

A host writes only to its chain, named by ``[server] partition`` (``main`` without one). Two
hosts on one PostgreSQL database then lock different head rows and never wait for each other.

**Ids.** Each chain owns a range of group ids: chain slot ``s`` holds ids ``s * SPAN + 1`` up to
``(s + 1) * SPAN - 1``, and its head starts at ``s * SPAN``. A group's id is its predecessor's
plus one, taken under the chain's own head lock, so ids are unique across chains and increase in
commit order within a chain, with no lock two chains share. ``main`` has slot 0: its ids are
1, 2, 3 ... as on a database from before chains, and an SQLite host (one writer) is unchanged.
A chain whose range is used up refuses the next posting (:meth:`Chain.next_id`) rather than
take the next chain's first id.
A sequence would have needed a round trip for the id before the group's hash (which covers
the id) could be made, and would have left gaps that verify could no longer tell from deleted
groups; within a range a gap still means a missing group.

**Registry.** One row lists every chain with its slot, under a MAC made with the chain key, so
a chain deleted whole (groups and head row) still shows: verify finds a listed chain without a
head. A host registers its chain at start, under the registry row's lock.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from host.ledger.chain import ChainKey

log = logging.getLogger(__name__)

SPAN = 1 << 40
"""Group ids per chain (a thousand postings a second for 34 years)."""
MAX_SLOT = 4095
"""The last slot: ids stay below 2**52, exact in a JavaScript number."""
MAIN = "main"
"""The chain of a host without a partition, and of a database from before chains."""
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,15}$")
"""What a chain name may be (``[server] partition``)."""


class ChainFull(SQLAlchemyError):
    """A chain's next group id would leave its range. A database error like the others for
    its caller (a request is answered 96, nothing of it booked); never retried."""


@dataclass(frozen=True)
class Chain:
    """One chain: its name and slot, which gives its id range."""

    name: str
    slot: int

    @property
    def base(self) -> int:
        """The id of the chain's genesis (no group has it); its first group is ``base + 1``."""
        return self.slot * SPAN

    @property
    def end(self) -> int:
        """The first id past the chain's range."""
        return self.base + SPAN

    def holds(self, group_id: int) -> bool:
        """Whether ``group_id`` lies in this chain's range."""
        return self.base < group_id < self.end

    def next_id(self, last_id: int) -> int:
        """The id of the group after ``last_id``; raises (and logs) :class:`ChainFull` when it
        would lie past the chain's range, in the next chain's."""
        if last_id + 1 < self.end:
            return last_id + 1
        error = ChainFull(f"ledger chain {self.name!r} is full: its last id {self.end - 1} is "
                          f"taken, so no more postings can be booked on it; serve these "
                          f"merchants under a new [server] partition (a chain of its own)")
        log.error("%s", error)
        raise error

    @property
    def head_id(self) -> int:
        """The id of the chain's ``ledger_head`` row: its slot + 1."""
        return self.slot + 1

    @classmethod
    def of_head(cls, head: Any) -> Chain:
        """The chain a ``ledger_head`` row stands for (name and slot)."""
        return cls(str(head.chain), int(head.id) - 1)


MAIN_CHAIN = Chain(MAIN, 0)


def chain_of(group_id: int) -> int:
    """The slot whose range holds ``group_id``."""
    return (group_id - 1) // SPAN if group_id > 0 else 0


def head_mac(key: ChainKey, last_id: int, last_hash: str, entries: int, chain: str = MAIN
             ) -> str:
    """The MAC of a chain head (its last id, last hash and entry count) and of its name.

    ``main``'s text has kept the form it had before chains (its head is not re-MAC'd on
    upgrade); another chain's starts with ``chain-head|`` and its name, so no head can pass
    for another chain's, nor for ``main``'s."""
    if chain == MAIN:
        return key.mac_text(f"head|{last_id}|{last_hash}|{entries}")
    return key.mac_text(f"chain-head|{chain}|{last_id}|{last_hash}|{entries}")


def registry_text(chains: list[Chain]) -> str:
    """The registry's stored list: ``slot:name`` by slot, comma-separated."""
    return ",".join(f"{c.slot}:{c.name}" for c in sorted(chains, key=lambda c: c.slot))


def registry_mac(key: ChainKey, listed: str) -> str:
    """The MAC of the registry's list (:func:`registry_text`)."""
    return key.mac_text(f"chains|{listed}")


def parse_registry(listed: str) -> list[Chain]:
    """The chains of a stored list; raises :class:`ValueError` on one that is not well formed."""
    out = []
    for item in filter(None, listed.split(",")):
        slot, _, name = item.partition(":")
        if not slot.isdigit() or not NAME.match(name):
            raise ValueError(f"malformed chain registry entry {item!r}")
        out.append(Chain(name, int(slot)))
    return out


def next_slot(chains: list[Chain], name: str) -> int:
    """The slot a new chain ``name`` takes: 0 for ``main``, else the first above every other.

    Raises :class:`ValueError` once every slot is taken."""
    if name == MAIN:
        return 0
    slot = max((c.slot for c in chains), default=0) + 1
    if slot > MAX_SLOT:
        raise ValueError(f"no ledger chain slot left for {name!r} ({MAX_SLOT} chains)")
    return slot
