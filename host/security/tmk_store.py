"""Terminal master keys: from the config, or generated on enrolment and stored sealed.

A TMK in ``[[security.terminals]]`` wins over a generated one. A generated TMK is written to
the ``terminal_key`` table sealed under the host key-encryption key (:mod:`host.security.kek`)
and is shown exactly once, by the command that generated it; afterwards only its check value
is ever shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from host.security.kek import KeyEncryptionKey
from host.security.settings import ALGORITHMS, SecuritySection
from host.security.tables import terminal_key
from protocol.security import Key, KeyAlgorithm

_NAMES = {algorithm: name for name, algorithm in ALGORITHMS.items()}


class KeyExistsError(Exception):
    """The terminal already has a generated TMK and replacing it was not asked for."""


@dataclass(frozen=True)
class TmkEntry:
    """What may be shown about a terminal's TMK: never the key.

    :ivar tid: the terminal.
    :ivar algorithm: ``tdes-2``, ``tdes-3`` or ``aes-128``.
    :ivar kcv: the check value, upper-case hex.
    :ivar source: ``config`` or ``generated``.
    """

    tid: str
    algorithm: str
    kcv: str
    source: str


class TmkStore:
    """Finds each terminal's TMK and generates new ones; without a key-encryption key it can
    only list check values."""

    def __init__(self, settings: SecuritySection, kek: KeyEncryptionKey | None) -> None:
        self._settings = settings
        self._kek = kek
        self._configured = {t.tid: key for t in settings.terminals
                            if (key := t.master_key()) is not None}

    def master_key(self, conn: Connection, tid: str) -> Key | None:
        """The TMK of ``tid`` (the config's, else the generated one), or None."""
        configured = self._configured.get(tid)
        if configured is not None:
            return configured
        row = conn.execute(select(terminal_key).where(terminal_key.c.terminal_id == tid)).first()
        if row is None:
            return None
        return self._need_kek().open(tid, ALGORITHMS[row.algorithm], row.sealed)

    def generate(self, conn: Connection, tid: str, algorithm: KeyAlgorithm, now_ms: int,
                 *, replace: bool = False) -> Key:
        """A fresh TMK for ``tid``, stored sealed; the caller shows it once.

        :raises KeyExistsError: ``tid`` has a generated TMK and ``replace`` is false, or its
            TMK comes from the config (which a generated key would never override).
        """
        if tid in self._configured:
            raise KeyExistsError(f"terminal {tid} has its TMK in the config file; remove it "
                                 f"there before generating one")
        found = conn.execute(select(terminal_key.c.kcv)
                             .where(terminal_key.c.terminal_id == tid)).first()
        if found is not None and not replace:
            raise KeyExistsError(f"terminal {tid} already has a TMK (KCV {found.kcv}); "
                                 f"add --replace to generate a new one")
        key = Key.generate(algorithm)
        conn.execute(delete(terminal_key).where(terminal_key.c.terminal_id == tid))
        conn.execute(insert(terminal_key).values(
            terminal_id=tid, algorithm=_NAMES[algorithm], sealed=self._need_kek().seal(tid, key),
            kcv=key.kcv().hex().upper(), created_ms=now_ms))
        return key

    def _need_kek(self) -> KeyEncryptionKey:
        if self._kek is None:
            raise RuntimeError("this TMK store lists check values only")
        return self._kek

    def entries(self, conn: Connection) -> list[TmkEntry]:
        """Every terminal with a TMK, by TID: check values only."""
        out = {t.tid: TmkEntry(t.tid, t.algorithm, key.kcv().hex().upper(), "config")
               for t in self._settings.terminals
               if (key := self._configured.get(t.tid)) is not None}
        for row in conn.execute(select(terminal_key)):
            out.setdefault(row.terminal_id,
                           TmkEntry(row.terminal_id, row.algorithm, row.kcv, "generated"))
        return [out[tid] for tid in sorted(out)]
