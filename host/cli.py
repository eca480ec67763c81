"""``poslab-host``: run the acquirer host emulator, or check a ledger.

::

    poslab-host [--config FILE] [--db URL] [--listen HOST:PORT] [--admin HOST:PORT]
                [--profile NAME] [--ready-file PATH] [--allow-unknown-terminals] [--strict]
                [--log-file PATH] [--log-fields] [--clock real|simulated] [--start ISO8601]
                [--speed FACTOR] [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]
                [--tls-require-client-cert] [--tls-tid-in-cert]] [--admin-tls-cert FILE
                --admin-tls-key FILE [--admin-tls-client-ca FILE]
                [--admin-tls-require-client-cert]]
    poslab-host ledger verify [--db URL] [--key-file PATH] [--anchor FILE|VALUE]
    poslab-host ledger anchor [--db URL] [--key-file PATH] [--chain NAME]
    poslab-host report settlement|refunds [--db URL] ...   (see host/cli_report.py)
    poslab-host keys generate|list [--db URL] ...          (see host/keys_cli.py)
    poslab-host console [--admin URL --token T | --ready-file F] [--theme projector] [--serve ...]

Port 0 picks a free port; ``--ready-file`` is written (atomically, mode 0600, JSON with
``iso_port``, ``admin_port``, ``pid``, ``admin_token``) only once both sockets listen. SIGTERM
or SIGINT stops accepting, answers in-flight requests and exits 0. Bad arguments, a bad config,
a port in use, an unreachable database or a ledger chain another host is writing
(host/ledger/writer_hold.py) print one line on stderr and exit 2.
A serving host stops with 69 when another host took its ledger chain while it served
(host/hold_watch.py), and with 74 when the WAL's fsync failed under ``sqlite_wal_overlap``.
``ledger verify`` prints each invariant violation and exits 1 when there is any; with
``--anchor`` it also proves the chain still holds that anchored head. ``ledger anchor`` prints
the current chain head as one anchor line (after checking the head against the chain key);
``--chain`` names a partitioned host's chain (default ``main``).
Both find the chain key as the host does (``--key-file``, ``$POSLAB_CHAIN_KEY_FILE``, ``[host]
chain_key_file`` of ``--config``, beside the SQLite file); a missing key is an error (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn

from host.cli_report import add_report_parser
from host.console.cli import add_console_parser
from host.keys_cli import add_keys_parser
from host.oneline import first_line, safe_url
from host.startup_gc import started
from protocol import DEFAULT_PROFILE, PROFILES

PROG = "poslab-host"
DEFAULT_DB = "poslab.db"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see {PROG} --help)\n")


def _endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port 0-65535, got {text!r}")
    return host.strip("[]"), int(port)


def _instant(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 instant: {text!r}") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no timezone; write e.g. 2025-03-14T10:00:00+00:00 or ...Z")
    return when


MAX_SPEED = 1e7
"""Largest --speed factor (about four simulated months per real second)."""


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= MAX_SPEED:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"must be above 0 and at most {MAX_SPEED:g}, got {text!r} "
            f"(3600 = one simulated hour per real second)")
    return value


MAX_FRONTS = 16
"""Largest --front-processes (as ``[server] front_processes``)."""


def _fronts(text: str) -> int:
    if not text.isdigit() or int(text) > MAX_FRONTS:
        raise argparse.ArgumentTypeError(f"expected a whole number 0-{MAX_FRONTS}, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the README's option table)."""
    p = _Parser(prog=PROG, description="ISO 8583 acquirer host emulator for refund testing.")
    p.add_argument("--version", action="version", version=f"%(prog)s {version('poslab')}")
    p.add_argument("--config", metavar="FILE", help="TOML config (default: the shipped demo)")
    p.add_argument("--db", metavar="URL", default=DEFAULT_DB,
                   help="SQLite file path or database URL (default: ./poslab.db)")
    p.add_argument("--listen", metavar="HOST:PORT", type=_endpoint,
                   default=("127.0.0.1", 8583), help="ISO 8583 socket (default 127.0.0.1:8583)")
    p.add_argument("--admin", metavar="HOST:PORT", type=_endpoint, default=("127.0.0.1", 8584),
                   help="admin API socket (default 127.0.0.1:8584)")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help=f"wire profile: {', '.join(sorted(PROFILES))} (default: [host] "
                        f"profile in the config, else {DEFAULT_PROFILE})")
    p.add_argument("--ready-file", metavar="PATH",
                   help="write ports, pid and admin token here once listening")
    p.add_argument("--allow-unknown-terminals", action="store_true",
                   help="enrol any TID/MID with the default merchant profile")
    p.add_argument("--strict", action="store_true",
                   help="require every mandatory field (RC 30 naming the missing one)")
    p.add_argument("--log-file", metavar="PATH", help="JSON-lines message log (default stderr)")
    p.add_argument("--log-fields", action="store_true",
                   help="add the field-by-field rendering of each message to the log")
    p.add_argument("--clock", choices=("real", "simulated"), default="real",
                   help="business clock: real time, or simulated (moved via the admin API)")
    p.add_argument("--start", metavar="ISO8601", type=_instant,
                   help="start instant of the simulated clock (default: now)")
    p.add_argument("--speed", metavar="FACTOR", type=_speed,
                   help="let the simulated clock run by itself, FACTOR simulated seconds per "
                        "real second (3600: an hour a second); it still moves by command too")
    p.add_argument("--front-processes", metavar="N", type=_fronts, default=None,
                   help="run the ISO 8583 sockets and codec in N processes of their own, the "
                        "ledger in this one (overrides [server] front_processes; 0: one "
                        "process)")
    _add_tls_options(p)
    sub = p.add_subparsers(dest="command", metavar="{ledger,report,keys,openapi,console}")
    ledger = sub.add_parser("ledger", help="ledger tools")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", metavar="{verify,anchor}",
                                       required=True)
    verify = ledger_sub.add_parser("verify", help="check the ledger invariants")
    anchor = ledger_sub.add_parser("anchor", help="print the chain head as an anchor line")
    anchor.add_argument("--chain", metavar="NAME", default="main",
                        help="the ledger chain to anchor: a host's [server] partition "
                             "(default: main, the chain of a host without one)")
    verify.add_argument("--anchor", metavar="FILE|VALUE",
                        help="an anchor line (or a file holding one, e.g. a settlement report) "
                             "the chain must still contain")
    for cmd in (verify, anchor):
        cmd.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                         help="SQLite file path or database URL (default: ./poslab.db)")
        cmd.add_argument("--key-file", metavar="PATH",
                         help="the chain key file (default: as the host finds it)")
    add_report_parser(sub)
    add_keys_parser(sub)
    sub.add_parser("openapi", help="print the admin API's OpenAPI document (JSON)")
    add_console_parser(sub)
    return p


_TLS_PORTS = (  # option prefix, [tls.<section>], the port and its clients in help texts
    ("tls", "iso", "the ISO port", "terminal"),
    ("admin-tls", "admin", "the admin API", "admin client"),
)
_TLS_KEYS = {"cert": "cert_file", "key": "key_file", "client_ca": "client_ca_file",
             "require_client_cert": "require_client_cert"}
TLS_FLAGS = {  # argparse dest -> ([tls.<section>], key)
    **{f"{prefix.replace('-', '_')}_{option}": (section, key)
       for prefix, section, _, _ in _TLS_PORTS for option, key in _TLS_KEYS.items()},
    "tls_tid_in_cert": ("iso", "tid_in_certificate"),
}


def _add_tls_options(p: argparse.ArgumentParser) -> None:
    """``--tls-*`` and ``--admin-tls-*``: each overrides its ``[tls.iso]`` / ``[tls.admin]``
    key of the config (docs/keys-and-macs.md, "TLS")."""
    g = p.add_argument_group("TLS (each overrides its key in [tls.iso] / [tls.admin])")
    for prefix, section, port, clients in _TLS_PORTS:
        g.add_argument(f"--{prefix}-cert", metavar="FILE",
                       help=f"PEM server certificate (chain) of {port}: listen on TLS")
        g.add_argument(f"--{prefix}-key", metavar="FILE", help=f"PEM private key of "
                                                               f"--{prefix}-cert")
        g.add_argument(f"--{prefix}-client-ca", metavar="FILE",
                       help=f"PEM CA certificate(s) that sign {clients} certificates")
        g.add_argument(f"--{prefix}-require-client-cert", action="store_true", default=None,
                       help=f"mutual TLS on {port}: refuse clients without a certificate "
                            "of that CA")
        if section == "iso":
            g.add_argument("--tls-tid-in-cert", action="store_true", default=None,
                           help="DE41 must be the terminal certificate's CN or a DNS SAN "
                                "(else 58)")


def apply_tls_flags(config: Any, args: argparse.Namespace) -> Any:
    """``config`` with the ``--tls-*`` flags given on the command line in its ``[tls]``;
    raises :class:`host.config.ConfigError` when the result is inconsistent."""
    from host.config import parse_config

    changes: dict[str, dict[str, object]] = {}
    for option, (port, key) in TLS_FLAGS.items():
        value = getattr(args, option, None)
        if value is not None:
            changes.setdefault(port, {})[key] = value
    if not changes:
        return config
    data = config.model_dump(mode="python", exclude_none=True)
    for port, keys in changes.items():
        data.setdefault("tls", {}).setdefault(port, {}).update(keys)
    return parse_config(data, "--tls-* options with the config")


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def missing_driver(db: str) -> str | None:
    """Why ``db`` cannot be opened for want of a driver, or None.

    SQLite comes with Python; PostgreSQL needs psycopg, which ``pip install poslab`` leaves
    out (it is the ``postgresql`` extra).
    """
    scheme = db.split("://", 1)[0].split("+", 1)[0] if "://" in db else "sqlite"
    if scheme not in ("postgresql", "postgres"):
        return None
    try:
        import psycopg  # noqa: F401 - only whether it imports
    except ImportError:
        return ("--db: PostgreSQL needs the psycopg driver, which is not installed; "
                "install it with: pip install 'poslab[postgresql]'")
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``poslab-host``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command is not None:  # the collector stays off only for a host's start-up
        started()
    problem = missing_driver(args.db)
    if problem is not None:
        return _fail(problem)
    if args.command == "ledger":
        from host.config import ConfigError

        try:
            key_file = _key_file(args)
        except ConfigError as exc:
            return _fail(f"bad config: {exc}")
        if args.ledger_command == "anchor":
            return ledger_anchor(args.db, key_file, args.chain)
        return ledger_verify(args.db, key_file, args.anchor)
    # Each command imports what it runs when it runs: the host needs no console and no key
    # tools, and a key or report command no server.
    if args.command == "report":
        from host.cli_report import run_report

        return run_report(args)
    if args.command == "keys":
        from host.keys_cli import run_keys

        return run_keys(args)
    if args.command == "openapi":
        from host.admin.openapi import document_text

        return _print_to_a_reader_that_may_leave(document_text())
    if args.command == "console":
        from host.console.cli import run_console

        return run_console(args)
    return serve(args)


def _print_to_a_reader_that_may_leave(text: str) -> int:
    """Print ``text``; when the reader has gone (``... | head``) stop quietly, no traceback."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python flushes stdout again at exit: give that flush somewhere harmless to go.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


def _key_file(args: argparse.Namespace) -> Path:
    """Where the chain key is: ``--key-file``, else as the host finds it (``[host]
    chain_key_file`` of ``--config`` under ``$POSLAB_CHAIN_KEY_FILE``, else the default).

    Raises :class:`host.config.ConfigError` for a bad ``--config``."""
    from host.ledger import key_path

    if args.key_file:
        return Path(args.key_file)
    configured = None
    if args.config:
        from host.config import load_config

        configured = load_config(args.config).host.chain_key_file
    return key_path(args.db, configured)


def ledger_verify(db: str, key_file: Path | None = None, anchor: str | None = None) -> int:
    """Print each invariant violation of the ledger at ``db``; 0 clean, 1 violations, 2 error."""
    if "://" not in db and not Path(db).is_file():
        return _fail(f"no database file at {db}")
    try:
        from host.ledger import AnchorError, ChainKeyError, key_path, parse_anchors, read_key
        from host.store_verify import verify_host_database

        anchored = parse_anchors(anchor) if anchor is not None else None
        key = read_key(key_file or key_path(db))
    except (AnchorError, ChainKeyError) as exc:
        return _fail(str(exc))
    try:
        report = verify_host_database(db, key, anchor=anchored)
    except Exception as exc:
        return _fail(f"cannot verify the ledger in {safe_url(db)}: {first_line(exc)}")
    for violation in report.get("violations", []):
        print(f"{violation.get('invariant', '?')}: {violation.get('detail', '')}")
    checked = ", ".join(f"{k}={v}" for k, v in (report.get("checked") or {}).items())
    if report.get("ok") and not report.get("violations"):
        print(f"ledger OK ({checked})" if checked else "ledger OK")
        return 0
    print(f"{len(report.get('violations', []))} violation(s) found", file=sys.stderr)
    return 1


def ledger_anchor(db: str, key_file: Path | None = None, chain: str = "main") -> int:
    """Print the head of ``chain`` in the ledger at ``db`` as an anchor line; 0, or 2 on an
    error (a chain the ledger does not hold is one)."""
    if "://" not in db and not Path(db).is_file():
        return _fail(f"no database file at {db}")
    try:
        from host.ledger import ChainKeyError, key_path, read_anchor, read_key

        key = read_key(key_file or key_path(db))
    except ChainKeyError as exc:
        return _fail(str(exc))
    try:
        print(read_anchor(db, key, chain))
    except Exception as exc:
        return _fail(f"cannot anchor the ledger in {safe_url(db)}: {first_line(exc)}")
    return 0


def _clock(args: argparse.Namespace) -> Any:
    from datetime import UTC

    from host.clock import ManualClock, SystemClock

    if args.clock == "simulated":
        return ManualClock(args.start or datetime.now(UTC).replace(microsecond=0),
                           speed=args.speed or 0.0)
    return SystemClock()


def write_ready_file(path: str, payload: dict[str, object]) -> None:
    """Write ``payload`` as JSON to ``path`` atomically (tmp + rename), readable by us only."""
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
        fh.write("\n")
    os.replace(tmp, path)


def serve(args: argparse.Namespace) -> int:
    """Load the config, install the reactor, run the host until SIGTERM/SIGINT."""
    if args.start is not None and args.clock != "simulated":
        return _fail("--start needs --clock simulated")
    if args.speed is not None and args.clock != "simulated":
        return _fail("--speed needs --clock simulated")
    try:
        from host.config import ConfigError, load_config
    except ImportError as exc:
        return _fail(f"the host engine is not installed: {first_line(exc)}")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(f"bad config: {exc}")
    except OSError as exc:
        return _fail(f"cannot read config {args.config}: {exc.strerror or exc}")
    if args.front_processes is not None:
        config = config.model_copy(update={"server": config.server.model_copy(
            update={"front_processes": args.front_processes})})
    try:
        config = apply_tls_flags(config, args)
        from host.tls import TlsSetupError, check

        check(config)  # a bad certificate file stops the host before it opens the database
    except ConfigError as exc:
        return _fail(f"bad config: {exc}")
    except TlsSetupError as exc:
        return _fail(f"TLS: {exc}")

    from host.logs import MessageLog

    try:
        log = (MessageLog.to_file(args.log_file, with_fields=args.log_fields)
               if args.log_file else MessageLog(sys.stderr, with_fields=args.log_fields))
    except OSError as exc:
        return _fail(f"cannot open log file {args.log_file}: {exc.strerror or exc}")
    try:
        return _run_reactor(args, config, log)
    finally:
        log.close()


def _run_reactor(args: argparse.Namespace, config: Any, log: Any) -> int:
    # Standalone host (docs/design-notes.md): bind Twisted to an explicit new loop before anything
    # imports twisted.internet.reactor.
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)  # type: ignore[no-untyped-call]
    from twisted.internet import reactor as _reactor
    from twisted.internet.defer import Deferred

    from host.runtime import HostRuntime, StartError

    reactor: Any = _reactor
    outcome = {"code": 0}

    def fatal(code: int) -> None:  # the host cannot go on (a failed WAL sync): stop, exit code
        outcome["code"] = code
        reactor.stop()

    runtime = HostRuntime(log=log, on_fatal=fatal)

    async def boot() -> None:
        try:
            iso_port, admin_port = await runtime.start(
                config, args.db, _clock(args), listen=args.listen, admin=args.admin,
                profile=args.profile or config.host.profile or DEFAULT_PROFILE,
                strict=args.strict,
                allow_unknown_terminals=args.allow_unknown_terminals)
            started()
            if args.ready_file:
                write_ready_file(args.ready_file, {
                    "iso_port": iso_port, "admin_port": admin_port, "pid": os.getpid(),
                    "admin_token": runtime.admin_token})
        except (StartError, OSError) as exc:
            outcome["code"] = _fail(str(exc) if isinstance(exc, StartError)
                                    else f"cannot write the ready file: {exc}")
            reactor.stop()

    def stop() -> Deferred[None]:
        return Deferred.fromFuture(asyncio.ensure_future(runtime.stop(), loop=loop))

    reactor.callWhenRunning(lambda: asyncio.ensure_future(boot(), loop=loop))
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.run()
    loop.close()
    return outcome["code"]
