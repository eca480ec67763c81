"""Commit one row per transaction through the ledger's own SQLite engine and print each id only
after its COMMIT returned, with ``synchronous`` chosen per run.

Test tooling for the power-loss test: ``poslab-host`` has no option for ``synchronous=NORMAL``
(only :func:`host.ledger.open_engine` takes it), so NORMAL's loss is measured with this writer.

Run: ``python tests/powerloss/commit_writer.py DB FULL|NORMAL FIRST_ID`` (runs until killed;
give each run its own FIRST_ID range so an id lost in one run is never acknowledged again).
"""

from __future__ import annotations

import sys
from typing import Literal, cast

from sqlalchemy import text

from host.ledger import open_engine


def main(db: str, mode: str, first: int) -> None:
    """Create the table, then commit and acknowledge rows forever."""
    engine = open_engine(db, synchronous=cast(Literal["FULL", "NORMAL"], mode))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS acked (id INTEGER PRIMARY KEY, "
                          "payload TEXT NOT NULL)"))
    print("ready", flush=True)
    for n in range(first, sys.maxsize):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO acked VALUES (:n, :p)"), {"n": n, "p": "x" * 200})
        print(n, flush=True)  # the acknowledgement: only after COMMIT returned


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
