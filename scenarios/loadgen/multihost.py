"""``poslab-bench --with-host --hosts N``: several hosts on one PostgreSQL database, each serving
a partition of the merchants, driven at the same time.

Host ``k`` (1-based) serves partition ``pk``: its config is ``--config`` (or the shipped
default) with ``[server] partition = "pk"`` and every bench merchant listed with its partition,
so each host declines the others' merchants as it would in production. The terminals are split
between the hosts; host ``k``'s have their own merchant id (``--mid`` with its last character
replaced by ``k``) and TIDs (``Bk000001``...), so no two hosts share a merchant or a terminal.
The figures are reported per host and in total.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from host.config import default_config_text
from scenarios.loadgen.workload import UsageError

MAX_HOSTS = 9
"""One digit of the merchant id and of the TID prefix names the host."""


@dataclass(frozen=True)
class Share:
    """What host ``index`` (1-based) of a several-host run serves and is driven with."""

    index: int
    terminals: int
    mid: str

    @property
    def partition(self) -> str:
        """The host's ``[server] partition`` and its merchant's."""
        return f"p{self.index}"

    @property
    def tid_prefix(self) -> str:
        """The first characters of this host's terminal ids."""
        return f"B{self.index}"


def shares(hosts: int, terminals: int, mid: str) -> list[Share]:
    """``terminals`` split as evenly as can be between ``hosts`` hosts, each with its own
    merchant id; a UsageError when a host would get no terminal."""
    if not 1 <= hosts <= MAX_HOSTS:
        raise UsageError(f"--hosts: must be 1 to {MAX_HOSTS}, got {hosts}")
    if terminals < hosts:
        raise UsageError(f"--terminals: {terminals} cannot be split between {hosts} hosts "
                         "(at least one each)")
    base, extra = divmod(terminals, hosts)
    return [Share(k, base + (1 if k <= extra else 0), f"{mid[:-1]}{k}")
            for k in range(1, hosts + 1)]


def check_database(db: str | None) -> None:
    """Several hosts need a PostgreSQL database: SQLite has a single writer."""
    if db is None or not db.startswith(("postgresql:", "postgresql+", "postgres:")):
        raise UsageError("--hosts above 1 needs --db with a PostgreSQL URL: the hosts share "
                         "one database, and SQLite has a single writer")


def host_config(base: dict[str, Any], share: Share, every: Sequence[Share]) -> dict[str, Any]:
    """``base`` (a parsed host config) for host ``share``: its partition, and every bench
    merchant listed with its own partition (replacing entries of the same ids)."""
    data = dict(base)
    data["server"] = {**data.get("server", {}), "partition": share.partition}
    ours = {s.mid for s in every}
    merchants = [m for m in data.get("merchants", []) if m.get("id") not in ours]
    merchants += [{"id": s.mid, "name": f"bench merchant of partition {s.partition}",
                   "partition": s.partition} for s in every]
    data["merchants"] = merchants
    return data


def write_configs(config: str | None, every: Sequence[Share], directory: Path) -> list[Path]:
    """One config file per host in ``directory``, based on ``config`` (None: the shipped
    default); a UsageError when ``config`` cannot be read as TOML."""
    try:
        text = default_config_text() if config is None else Path(config).read_text("utf-8")
        base = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"--config: cannot read {config}: {exc}") from None
    paths = []
    for share in every:
        path = directory / f"host-{share.partition}.toml"
        path.write_bytes(tomli_w.dumps(host_config(base, share, every)).encode())
        paths.append(path)
    return paths
