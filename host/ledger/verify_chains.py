"""The structural checks of :mod:`host.ledger.verify`, per chain (:mod:`host.ledger.chains`).

``REGISTRY``  the chain registry's MAC holds; every registered chain has its head row (a chain
              deleted whole, head and groups, shows here), in its slot; every head row is
              registered
``HEAD``      per chain: the head row's MAC (which covers the chain's name) holds, and its
              last id, last hash and entry count are those of the chain's stored groups
``CHAIN``     per chain: group ids run ``base + 1``, ``base + 2`` ... without a gap, each
              group's ``prev_hash`` is the hash of the chain's previous group and its ``hash``
              recomputes under the chain key; no group lies outside its chain's id range or on
              a chain that has neither head nor registry entry

Each detail names the chain. A database from before chains (no ``chain`` columns, not yet
opened by a host of this version) is read as the one chain ``main`` without a registry.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, literal, select

from host.ledger.book import Group, group_hash
from host.ledger.chain import ChainKey
from host.ledger.chains import MAIN, Chain, chain_of, head_mac, parse_registry, registry_mac
from host.ledger.schema import (
    GENESIS_HASH,
    held_columns,
    ledger_head,
    ledger_registry,
    posting_group,
)

Violation = dict[str, str]
Entries = Mapping[int, Sequence[tuple[str, str, int, str]]]
Hashes = Mapping[int, tuple[str, str]]


def _v(invariant: str, detail: str) -> Violation:
    return {"invariant": invariant, "detail": detail}


def has_chains(conn: Connection) -> bool:
    """Whether the database has the ``chain`` columns (False: from before chains)."""
    return "chain" in held_columns(conn, ledger_head.name)


def head_rows(conn: Connection, chains: bool) -> list[Any]:
    """Every head row, oldest slot first (``chain`` is ``main`` on a database without)."""
    name = ledger_head.c.chain if chains else literal(MAIN).label("chain")
    columns = [c for c in ledger_head.c if c.name != "chain"]
    return list(conn.execute(select(*columns, name).order_by(ledger_head.c.id)).all())


def group_chains(conn: Connection, chains: bool) -> dict[int, str]:
    """Per group id, the name of the chain it says it is on."""
    if not chains:
        return defaultdict(lambda: MAIN)
    return {int(r.id): str(r.chain) for r in
            conn.execute(select(posting_group.c.id, posting_group.c.chain)).all()}


def check_chains(conn: Connection, key: ChainKey, heads: list[Any], groups: list[Group],
                 on_chain: Mapping[int, str], entries: Entries, hashes: Hashes,
                 chains: bool) -> list[Violation]:
    """REGISTRY, HEAD and CHAIN over every chain (see the module docstring)."""
    out: list[Violation] = []
    by_head = {chain.name: chain for chain in map(Chain.of_head, heads)}
    listed = _registry(conn, key, by_head, out) if chains else {}
    per_chain: dict[str, list[Group]] = defaultdict(list)
    for g in groups:
        per_chain[on_chain[g.id]].append(g)
    counts: dict[int, int] = defaultdict(int)  # entries per slot, by their group id's range
    for gid, legs in entries.items():
        counts[chain_of(gid)] += len(legs)
    for name, mine in per_chain.items():
        chain = by_head.get(name) or listed.get(name)
        if chain is None:
            chain = Chain(name, chain_of(mine[0].id))
            out.append(_v("CHAIN", f"chain {name!r}: {len(mine)} group(s) from id {mine[0].id} "
                                   f"are on a chain with neither head row nor registry entry"))
        out += _links(key, chain, mine, entries, hashes)
    for head in heads:
        chain = by_head[str(head.chain)]
        out += _head(head, key, chain, per_chain.get(chain.name, []), hashes,
                     counts[chain.slot])
    return out


def _registry(conn: Connection, key: ChainKey, by_head: dict[str, Chain],
              out: list[Violation]) -> dict[str, Chain]:
    """The registered chains by name; REGISTRY violations appended to ``out``."""
    row = conn.execute(select(ledger_registry).where(ledger_registry.c.id == 1)).first()
    if row is None:
        out.append(_v("REGISTRY", "the chain registry is missing: it was deleted, and with it "
                                  "any record of which chains the ledger holds"))
        return {}
    if row.mac != registry_mac(key, row.chains):
        out.append(_v("REGISTRY", "the chain registry was altered: its MAC does not match its "
                                  "list of chains"))
    try:
        listed = {c.name: c for c in parse_registry(row.chains)}
    except ValueError as exc:
        out.append(_v("REGISTRY", f"the chain registry cannot be read: {exc}"))
        return {}
    for name, chain in listed.items():
        if name not in by_head:
            out.append(_v("REGISTRY", f"chain {name!r} is registered but has no head row: the "
                                      f"chain was deleted"))
        elif by_head[name] != chain:
            out.append(_v("REGISTRY", f"chain {name!r}: its head row is in slot "
                                      f"{by_head[name].slot}, the registry says {chain.slot}"))
    for name in by_head.keys() - listed.keys():
        out.append(_v("REGISTRY", f"chain {name!r} has a head row but is not registered"))
    return listed


def _head(head: Any, key: ChainKey, chain: Chain, groups: list[Group], hashes: Hashes,
          entry_count: int) -> list[Violation]:
    out = []
    name = f"chain {chain.name!r}:"
    last_id, last_hash, count = int(head.last_id), head.last_hash, int(head.entries)
    if head.mac != head_mac(key, last_id, last_hash, count, chain.name):
        out.append(_v("HEAD", f"{name} the chain head was altered: its MAC does not match its "
                              f"last id, hash, entry count and chain"))
    newest = groups[-1].id if groups else chain.base
    if last_id != newest or last_id != chain.base + len(groups):
        out.append(_v("HEAD", f"{name} the head is at group {last_id} but the chain holds "
                              f"{len(groups)} (newest id {newest}): groups were "
                              f"{'deleted' if last_id > newest else 'added or deleted'}"))
    elif last_hash != (hashes[newest][1] if groups else GENESIS_HASH):
        out.append(_v("HEAD", f"{name} the head's hash is not group {newest}'s hash"))
    if count != entry_count:
        out.append(_v("HEAD", f"{name} the head counts {count} entries but {entry_count} are "
                              f"stored"))
    return out


def _links(key: ChainKey, chain: Chain, groups: list[Group], entries: Entries,
           hashes: Hashes) -> list[Violation]:
    out = []
    name = f"chain {chain.name!r}:"
    prev = GENESIS_HASH
    expected_id = chain.base + 1
    for g in groups:
        stored_prev, stored = hashes[g.id]
        if not chain.holds(g.id):
            out.append(_v("CHAIN", f"{name} group {g.id} lies outside the chain's id range "
                                   f"({chain.base + 1} to {chain.end - 1}): the chain ran past "
                                   f"its end, or the group was moved from another chain"))
        elif g.id != expected_id:
            out.append(_v("CHAIN", f"{name} group ids jump from {expected_id - 1} to {g.id}: "
                                   f"groups are missing"))
        if stored_prev != prev:
            out.append(_v("CHAIN", f"{name} group {g.id} links to {stored_prev[:12]}... but its "
                                   f"predecessor's hash is {prev[:12]}..."))
        recomputed = group_hash(key, stored_prev, g,
                                [(a, s, m) for a, s, m, _ in entries.get(g.id, ())])
        if recomputed != stored:
            out.append(_v("CHAIN", f"{name} group {g.id} ({g.kind} {g.reference}) was altered "
                                   f"or forged: its content no longer matches its keyed hash"))
        prev = stored
        expected_id = g.id + 1
    return out
