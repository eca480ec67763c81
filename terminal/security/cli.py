"""``poslab-terminal keys``: put the terminal's long-lived keys into its data directory.

* ``keys import --tmk HEX --kcv KCV [--algorithm TDES-2]`` stores the terminal master key, after
  checking it against the check value the host printed when it enrolled the terminal;
* ``keys dukpt --initial-key HEX --kcv KCV --ksn KSN`` makes the terminal a TDES DUKPT one;
* ``keys show`` prints what is stored: algorithms, check values and the KSN, never a key.

A key typed wrong is refused with a message that names the check values, not the digits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from protocol.security import TDES_DUKPT, DukptTerminal, Key, Ksn, SecurityError
from terminal.security.keystore import KeyStore, KeyStoreError, parse_algorithm


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="poslab-terminal keys",
                                description="Manage the terminal's keys (test keys only).")
    p.add_argument("--data-dir", default="data/terminal", metavar="DIR",
                   help="the terminal's data directory (default %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)
    # --data-dir may also follow the command; SUPPRESS keeps an absent one from resetting it.
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--data-dir", default=argparse.SUPPRESS, metavar="DIR",
                       help="the terminal's data directory")
    imp = sub.add_parser("import", parents=[where], help="store the terminal master key (TMK)")
    imp.add_argument("--tmk", required=True, metavar="HEX", help="the TMK in hex")
    imp.add_argument("--kcv", required=True, metavar="HEX", help="its check value")
    imp.add_argument("--algorithm", default="TDES-2", metavar="ALG",
                     help="TDES-2 (default), TDES-3 or AES-128")
    duk = sub.add_parser("dukpt", parents=[where],
                         help="store a TDES DUKPT initial key and KSN")
    duk.add_argument("--initial-key", required=True, metavar="HEX",
                     help="the initial key (IPEK) in hex, 32 digits")
    duk.add_argument("--kcv", required=True, metavar="HEX", help="its check value")
    duk.add_argument("--ksn", required=True, metavar="HEX",
                     help="the initial KSN, 20 hex digits (counter 0)")
    sub.add_parser("show", parents=[where],
                   help="print the stored keys' check values (never the keys)")
    return p


def run(argv: list[str]) -> int:
    """Run a ``keys`` command; 0 on success, 2 with one line on stderr when it fails."""
    args = _parser().parse_args(argv)
    store = KeyStore(Path(args.data_dir))
    try:
        if args.command == "import":
            algorithm = parse_algorithm(args.algorithm, "--algorithm")
            tmk = Key.from_hex(args.tmk, algorithm, kcv=args.kcv, what="--tmk")
            store.save_tmk(tmk)
            print(f"TMK stored in {store.tmk_path} ({algorithm.value}, "
                  f"KCV {tmk.kcv().hex().upper()})")
        elif args.command == "dukpt":
            key = Key.from_hex(args.initial_key, TDES_DUKPT.algorithm, kcv=args.kcv,
                               what="--initial-key")
            ksn = Ksn.from_hex(args.ksn)
            store.save_dukpt(DukptTerminal(TDES_DUKPT, key, ksn), key)
            print(f"DUKPT initial key stored in {store.dukpt_path} (KCV "
                  f"{key.kcv().hex().upper()}, KSN {ksn})")
        else:
            _show(store)
    except (SecurityError, KeyStoreError) as exc:
        print(f"poslab-terminal keys: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"poslab-terminal keys: cannot write to {args.data_dir}: {exc.strerror}",
              file=sys.stderr)
        return 2
    return 0


def _show(store: KeyStore) -> None:
    tmk = store.load_tmk()
    dukpt = store.load_dukpt()
    if tmk is None and dukpt is None:
        print(f"no keys in {store.data_dir}: the terminal sends no MAC and takes no PIN")
    if tmk is not None:
        print(f"TMK    {tmk.algorithm.value}  KCV {tmk.kcv().hex().upper()}")
    if dukpt is not None:
        device, key = dukpt
        print(f"DUKPT  initial key KCV {key.kcv().hex().upper()}  last KSN {device.ksn} "
              f"(counter {device.ksn.counter})")
