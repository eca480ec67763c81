"""``poslab-terminal``: parse the command line, optionally start a host, run the TUI.

Every failure a user can cause (bad option, unreachable host, a host that will not start, a
broken journal file) ends in one readable line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from dataclasses import replace
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

from protocol.money import currency as find_currency
from protocol.specs import PROFILES
from terminal.cards import DeckError
from terminal.config import TerminalConfig
from terminal.hostproc import HostProcess, HostStartError
from terminal.journal import JournalError
from terminal.recording import Recorder, RecordError, RecordSink, load_recorder
from terminal.security.keystore import KeyStoreError


class UsageError(ValueError):
    """A command-line value is wrong; the text says which and why."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="poslab-terminal",
        usage="%(prog)s [options] [--with-host [-- HOST-OPTIONS...]]\n"
              "       %(prog)s keys {import,dukpt,show} ... (the terminal's keys)",
        description="POS terminal simulator: a countertop terminal talking ISO 8583 to a host.",
        epilog="Keys: 1-8 menu, 0-9 amount, Enter OK, Esc back, F2 message inspector, "
               "F5 reconnect, Ctrl+Q quit.")
    d = TerminalConfig()
    p.add_argument("--version", action="version", version=f"%(prog)s {version('poslab')}")
    p.add_argument("--host", default=f"{d.host}:{d.port}", metavar="HOST:PORT",
                   help="the host's ISO 8583 address (default %(default)s)")
    p.add_argument("--profile", default=d.profile, choices=sorted(PROFILES),
                   help="wire profile (default %(default)s)")
    p.add_argument("--tid", default=d.terminal_id, help="terminal id, 8 characters")
    p.add_argument("--mid", default=d.merchant_id, help="merchant id, 15 characters")
    p.add_argument("--currency", default=d.currency, help="currency (default %(default)s)")
    p.add_argument("--data-dir", default="data/terminal", metavar="DIR",
                   help="journal, receipts and the embedded host's database live here "
                        "(default %(default)s)")
    p.add_argument("--timeout", type=float, default=d.timeout_s_response, metavar="S",
                   help="response timeout in seconds before a reversal (default %(default)s)")
    p.add_argument("--reversal-repeats", type=int, default=d.reversal_repeats, metavar="N",
                   help="0401 repeats after an unanswered 0400 (default %(default)s)")
    p.add_argument("--echo", type=float, default=d.echo_interval_s, metavar="S",
                   help="echo test period in seconds, 0 = off (default %(default)s)")
    p.add_argument("--supervisor-password", default=d.supervisor_password, metavar="PW",
                   help="asked before refunds and voids (default %(default)s)")
    p.add_argument("--no-supervisor", action="store_true",
                   help="do not ask for the supervisor password")
    p.add_argument("--record", metavar="FILE",
                   help="write what you do and what the host answers as a scenario file "
                        "(rewritten after every transaction); replay it with "
                        "poslab-scenarios run FILE")
    p.add_argument("--with-host", action="store_true",
                   help="start poslab-host on free loopback ports and stop it on exit; "
                        "options for it go after -- (e.g. --with-host -- --strict) or in "
                        "--host-arg")
    p.add_argument("--host-arg", action="append", default=[], metavar="ARG",
                   help="one argument for the --with-host host, repeatable; write options "
                        "with = (--host-arg=--strict)")
    return p


def parse_command_line(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The terminal's options and the embedded host's arguments.

    Everything after the first ``--`` belongs to the host, as do ``--host-arg`` values; every
    other argument is the terminal's, wherever ``--with-host`` stands among them.
    """
    cut = argv.index("--") if "--" in argv else len(argv)
    args = _parser().parse_args(argv[:cut])
    host_args = [*args.host_arg, *argv[cut + 1 :]]
    if host_args and not args.with_host:
        raise UsageError("host arguments (after -- or in --host-arg) need --with-host")
    return args, host_args


def build_config(args: argparse.Namespace) -> TerminalConfig:
    """Turn parsed options into a config, or raise :class:`UsageError`."""
    host, sep, port_text = str(args.host).rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--host expects HOST:PORT such as 127.0.0.1:8583, got {args.host!r}")
    if len(args.tid) != 8 or not args.tid.isprintable():
        raise UsageError(f"--tid must be exactly 8 characters, got {args.tid!r}")
    if len(args.mid) != 15 or not args.mid.isprintable():
        raise UsageError(f"--mid must be exactly 15 characters, got {args.mid!r}")
    try:
        cur = find_currency(args.currency).alpha
    except ValueError as exc:
        raise UsageError(f"--currency: {exc}") from None
    if not 0 < args.timeout <= 300:
        raise UsageError(f"--timeout must be between 0 and 300 seconds, got {args.timeout:g}")
    if not 0 <= args.reversal_repeats <= 10:
        raise UsageError("--reversal-repeats must be between 0 and 10")
    if args.echo < 0:
        raise UsageError("--echo must be 0 (off) or a positive number of seconds")
    return TerminalConfig(
        host=host, port=int(port_text), profile=args.profile, terminal_id=args.tid,
        merchant_id=args.mid, currency=cur, data_dir=Path(args.data_dir),
        timeout_s_response=args.timeout, reversal_repeats=args.reversal_repeats,
        echo_interval_s=args.echo, supervisor_password=args.supervisor_password,
        supervisor_for_refund=not args.no_supervisor, supervisor_for_void=not args.no_supervisor)


def main(argv: list[str] | None = None) -> int:
    """Run the terminal; the exit status is 0 on a normal quit, 2 on a usage or start error."""
    host: HostProcess | None = None
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["keys"]:
        from terminal.security.cli import run as keys

        return keys(arguments[1:])
    try:
        args, host_args = parse_command_line(arguments)
        config = build_config(args)
        record = Path(args.record) if args.record is not None else None
        recorder = load_recorder() if record is not None else None
        if recorder is not None and record is not None:
            recorder.check(record)
        if args.with_host:
            host = HostProcess(config.data_dir, host_args, config.profile)
            port = host.start()
            config = replace(config, host="127.0.0.1", port=port)
        return _run(config, record, recorder)
    except (UsageError, HostStartError, JournalError, DeckError, RecordError, KeyStoreError,
            OSError) as exc:
        print(f"poslab-terminal: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if host is not None:
            host.stop()


def _run(config: TerminalConfig, record: Path | None = None,
         recorder: Recorder | None = None) -> int:
    from terminal import runtime

    loop = runtime.install()
    from terminal.app import PosApp  # imports the reactor lazily, after the install

    sink: RecordSink | None = None
    try:
        app = PosApp(config)
        if record is not None:
            sink = (recorder or load_recorder()).open(record, config, datetime.now().astimezone())
            app.engine.observers.append(sink)
        # SIGTERM or a closed terminal window quit like Ctrl+Q, so the finally blocks run and
        # an embedded host is stopped rather than orphaned.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, AttributeError):
                loop.add_signal_handler(sig, app.exit)
        app.run(loop=loop)
    finally:
        runtime.shutdown()
    if sink is not None and sink.error:
        raise RecordError(sink.error)
    return app.return_code or 0
