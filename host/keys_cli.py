"""``poslab-host keys``: enrol a terminal with a generated master key, or list the keys.

::

    poslab-host keys generate --tid T [--algorithm tdes-2|tdes-3|aes-128] [--replace]
                              [--db URL] [--config FILE] [--key-file PATH]
    poslab-host keys list [--db URL] [--config FILE]

``generate`` stores the new TMK sealed under the host key-encryption key (derived from the
chain key file, created when missing, as the host does on first start) and prints the key and
its check value once: load them into the terminal. ``list`` prints each terminal's algorithm,
check value and where its key comes from, never a key. Problems print one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from host.security_config import ALGORITHMS

PROG = "poslab-host"


def add_keys_parser(sub: Any) -> None:
    """Add ``keys generate|list`` to the ``poslab-host`` subcommands."""
    keys = sub.add_parser("keys", help="terminal master keys: generate, list")
    actions = keys.add_subparsers(dest="keys_command", metavar="{generate,list}",
                                  required=True)
    generate = actions.add_parser("generate", help="a new TMK for a terminal, shown once")
    generate.add_argument("--tid", required=True, help="the terminal id (DE41)")
    generate.add_argument("--algorithm", choices=sorted(ALGORITHMS), default="tdes-2",
                          help="key algorithm (default tdes-2)")
    generate.add_argument("--replace", action="store_true",
                          help="replace the terminal's generated TMK")
    generate.add_argument("--key-file", metavar="PATH",
                          help="the chain key file (default: as the host finds it)")
    listing = actions.add_parser("list", help="terminals with a TMK: algorithm and KCV only")
    for p in (generate, listing):
        p.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                       help="SQLite file path or database URL (default: ./poslab.db)")
        p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                       help="TOML config (its [[security.terminals]] keys are listed too)")


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def run_keys(args: argparse.Namespace, out: Any = None) -> int:
    """Run ``keys generate`` or ``keys list``; 0 on success, 2 on a problem."""
    # Imported here: poslab-host builds this command's parser on every start, the host's too.
    from sqlalchemy.exc import SQLAlchemyError

    from host.config import ConfigError, load_config
    from host.ledger import ChainKeyError, ensure_key, key_path, open_engine
    from host.oneline import first_line, safe_url
    from host.security.kek import KeyEncryptionKey
    from host.security.tables import create_security_schema
    from host.security.tmk_store import KeyExistsError, TmkStore

    out = out or sys.stdout
    try:
        config = load_config(getattr(args, "config", None))
        path = (args.key_file if getattr(args, "key_file", None)
                else key_path(args.db, config.host.chain_key_file))
        chain_key, _ = ensure_key(path) if args.keys_command == "generate" else (None, False)
    except ConfigError as exc:
        return _fail(f"bad config: {exc}")
    except ChainKeyError as exc:
        return _fail(str(exc))
    try:
        engine = open_engine(args.db)
        with engine.begin() as conn:
            create_security_schema(conn)
            if args.keys_command == "list":
                store = TmkStore(config.security, None)  # check values only
                entries = store.entries(conn)
            else:
                from datetime import UTC, datetime

                assert chain_key is not None
                store = TmkStore(config.security, KeyEncryptionKey(chain_key))
                now_ms = int(datetime.now(UTC).timestamp() * 1000)
                key = store.generate(conn, args.tid, ALGORITHMS[args.algorithm], now_ms,
                                     replace=args.replace)
        engine.dispose()
    except KeyExistsError as exc:
        return _fail(str(exc))
    except SQLAlchemyError as exc:
        return _fail(f"cannot use the database {safe_url(args.db)}: {first_line(exc)}")
    if args.keys_command == "list":
        print("tid       algorithm  kcv         source", file=out)
        for entry in entries:
            print(f"{entry.tid:<9} {entry.algorithm:<10} {entry.kcv:<11} {entry.source}",
                  file=out)
        return 0
    print(f"TMK for terminal {args.tid} ({args.algorithm}), shown this once; load it into the "
          f"terminal, then keep no copy:", file=out)
    print(f"tmk = {key.get_secret_value().hex().upper()}", file=out)
    print(f"kcv = {key.kcv().hex().upper()}", file=out)
    return 0

