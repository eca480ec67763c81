"""``poslab-terminal``: parse the command line, optionally start a host, run the TUI (or,
with ``--serve``, serve one terminal per browser tab).

Every failure a user can cause (bad option, unreachable host, a host that will not start, a
broken journal file) ends in one readable line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from dataclasses import replace
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

from protocol.money import currency as find_currency
from protocol.specs import PROFILES
from terminal import i18n
from terminal.cards import DeckError
from terminal.config import TerminalConfig
from terminal.hostproc import HostProcess, HostStartError
from terminal.journal import JournalError
from terminal.recording import Recorder, RecordError, RecordSink, load_recorder
from terminal.security.keystore import KeyStoreError
from terminal.serve import (
    ServeError,
    ServeOptions,
    SessionPlan,
    check_bind,
    serve,
    session_command,
)
from terminal.tidpool import DEFAULT_POOL, PoolError, parse_pool
from terminal.tls import ClientTlsError, client_tls
from webshell import add_listen_arguments, port_problem


class UsageError(ValueError):
    """A command-line value is wrong; the text says which and why."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="poslab-terminal",
        usage="%(prog)s [options] [--serve [--port N]] [--with-host [-- HOST-OPTIONS...]]\n"
              "       %(prog)s keys {import,dukpt,show} ... (the terminal's keys)",
        description="POS terminal simulator: a countertop terminal talking ISO 8583 to a host.",
        epilog="Keys: 1-8 menu, 0-9 amount, Enter OK, Esc back, F2 message inspector, "
               "F5 reconnect, Ctrl+Q quit.")
    d = TerminalConfig()
    p.add_argument("--version", action="version", version=f"%(prog)s {version('poslab')}")
    p.add_argument("--host", default=f"{d.host}:{d.port}", metavar="HOST:PORT",
                   help="the host's ISO 8583 address (default %(default)s)")
    p.add_argument("--profile", default=d.profile, choices=sorted(PROFILES),
                   help="wire profile (default %(default)s); cup: a China UnionPay terminal "
                        "(sign-on batches, 0220 refunds, CUP settlement and upload)")
    p.add_argument("--tid", help=f"terminal id, 8 characters (default {d.terminal_id})")
    p.add_argument("--mid", default=d.merchant_id, help="merchant id, 15 characters")
    p.add_argument("--currency", default=d.currency, help="currency (default %(default)s)")
    p.add_argument("--data-dir", default="data/terminal", metavar="DIR",
                   help="journal, receipts and the embedded host's database live here "
                        "(default %(default)s)")
    p.add_argument("--timeout", type=float, default=d.timeout_s_response, metavar="S",
                   help="response timeout in seconds before a reversal (default %(default)s)")
    p.add_argument("--reversal-repeats", type=int, default=d.reversal_repeats, metavar="N",
                   help="0401 repeats after an unanswered 0400; on cup, times an unanswered "
                        "0400 or 0220 is sent again (default %(default)s)")
    p.add_argument("--echo", type=float, default=d.echo_interval_s, metavar="S",
                   help="echo test period in seconds, 0 = off (default %(default)s)")
    p.add_argument("--supervisor-password", default=d.supervisor_password, metavar="PW",
                   help="asked before refunds and voids (default %(default)s)")
    p.add_argument("--no-supervisor", action="store_true",
                   help="do not ask for the supervisor password")
    p.add_argument("--lang", choices=i18n.LANGUAGES,
                   help="language of screens and receipts: en or zh-CN (Simplified Chinese); "
                        "default from LC_ALL / LC_MESSAGES / LANG (zh_CN chooses Chinese), "
                        "else en")
    p.add_argument("--tls", action="store_true",
                   help="connect to the host over TLS (implied by the other --tls options)")
    p.add_argument("--tls-ca", metavar="FILE",
                   help="PEM CA certificate that signs the host's (default: the system's CAs)")
    p.add_argument("--tls-cert", metavar="FILE",
                   help="this terminal's PEM certificate, for hosts that require one")
    p.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
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
    serve = p.add_argument_group(
        "browser classroom", "serve the terminal to web browsers, one terminal per tab, each "
        "with its own terminal id from the pool and its own folder DATA-DIR/<TID>")
    serve.add_argument("--serve", action="store_true",
                       help="serve terminals over HTTP instead of running one here")
    add_listen_arguments(serve, SERVE_PORT)
    serve.add_argument("--tid-pool", metavar="SPEC",
                       help="--serve: the terminal ids handed to tabs, a range and/or a list "
                            f"such as TERM0001-TERM0008,SPARE001 (default {DEFAULT_POOL})")
    serve.add_argument("--ready-file", metavar="PATH",
                       help="--serve: write the URL and port here (JSON) once listening")
    # what each tab's process runs: one terminal, its id claimed from --tid-pool
    serve.add_argument("--serve-session", action="store_true", help=argparse.SUPPRESS)
    return p


SERVE_PORT = 8000
_SERVE_ONLY = ("port", "bind", "allow_remote", "tid_pool", "ready_file")


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
    tid = TerminalConfig.terminal_id if args.tid is None else args.tid
    if len(tid) != 8 or not tid.isprintable():
        raise UsageError(f"--tid must be exactly 8 characters, got {tid!r}")
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
    try:
        tls = client_tls(args.tls_ca, args.tls_cert, args.tls_key, args.tls)
    except ClientTlsError as exc:
        raise UsageError(str(exc)) from None
    return TerminalConfig(
        host=host, port=int(port_text), profile=args.profile, terminal_id=tid,
        merchant_id=args.mid, currency=cur, data_dir=Path(args.data_dir),
        timeout_s_response=args.timeout, reversal_repeats=args.reversal_repeats,
        echo_interval_s=args.echo, supervisor_password=args.supervisor_password,
        supervisor_for_refund=not args.no_supervisor, supervisor_for_void=not args.no_supervisor,
        tls=tls, lang=args.lang or i18n.from_environment(os.environ))


def serve_options(args: argparse.Namespace) -> tuple[ServeOptions, tuple[str, ...]]:
    """The web server's options and the TID pool, or :class:`UsageError`.

    Serve-only options without ``--serve`` and one-terminal options with it are refused, so a
    forgotten flag never silently runs something else than asked.
    """
    serving = args.serve or args.serve_session
    if not serving:
        given = [f"--{name.replace('_', '-')}" for name in _SERVE_ONLY
                 if getattr(args, name) not in (None, False)]
        if given:
            raise UsageError(f"{given[0]} only applies with --serve")
        return ServeOptions(), ()
    if args.tid is not None:
        raise UsageError("--tid names one terminal; with --serve each tab takes an id from "
                         "--tid-pool")
    if args.record is not None:
        raise UsageError("--record records one terminal; it cannot be used with --serve")
    port = SERVE_PORT if args.port is None else args.port
    problem = port_problem(port)
    if problem is not None:
        raise UsageError(problem)
    try:
        tids = parse_pool(DEFAULT_POOL if args.tid_pool is None else args.tid_pool)
    except PoolError as exc:
        raise UsageError(f"--tid-pool: {exc}") from None
    options = ServeOptions(bind=args.bind or "127.0.0.1", port=port,
                           allow_remote=args.allow_remote,
                           ready_file=Path(args.ready_file) if args.ready_file else None)
    return options, tids


def session_arguments(args: argparse.Namespace, config: TerminalConfig) -> list[str]:
    """The terminal options every tab's process gets: ``config`` (its host resolved, its data
    folder absolute) and the pool, as command-line arguments."""
    argv = ["--host", config.address, "--profile", config.profile,
            "--mid", config.merchant_id, "--currency", config.currency,
            "--data-dir", str(config.data_dir.resolve()),
            "--timeout", repr(config.timeout_s_response),
            "--reversal-repeats", str(config.reversal_repeats),
            "--echo", repr(config.echo_interval_s),
            "--supervisor-password", config.supervisor_password, "--lang", config.lang]
    if args.no_supervisor:
        argv.append("--no-supervisor")
    if args.tid_pool is not None:
        argv += ["--tid-pool", args.tid_pool]
    if args.tls:
        argv.append("--tls")
    for flag, path in (("--tls-ca", args.tls_ca), ("--tls-cert", args.tls_cert),
                       ("--tls-key", args.tls_key)):
        if path is not None:
            argv += [flag, str(Path(path).resolve())]
    return argv


def classroom_host_arguments(host_args: list[str]) -> list[str]:
    """The embedded host's arguments for ``--serve``: the pool's ids are not in the default
    host configuration, so unless the trainer brings a ``--config`` (which should list them),
    the host enrols terminals on first contact."""
    if any(a == "--config" or a.startswith("--config=") for a in host_args):
        return host_args
    if "--allow-unknown-terminals" in host_args:
        return host_args
    return [*host_args, "--allow-unknown-terminals"]


def main(argv: list[str] | None = None) -> int:
    """Run the terminal; the exit status is 0 on a normal quit, 2 on a usage or start error."""
    host: HostProcess | None = None
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["keys"]:
        from terminal.security.cli import run as keys

        return keys(arguments[1:])
    session = False
    try:
        args, host_args = parse_command_line(arguments)
        session = args.serve_session
        config = build_config(args)
        options, tids = serve_options(args)
        if session:
            from terminal.serve_session import run_session

            return run_session(config, tids, _run)
        if args.serve:
            check_bind(options)  # refuse before a host is started for nothing
            if args.with_host:
                host = HostProcess(config.data_dir, classroom_host_arguments(host_args),
                                   config.profile)
                config = replace(config, host="127.0.0.1", port=host.start())
            plan = SessionPlan(session_command(session_arguments(args, config)), tids,
                               config.address)
            return serve(plan, options)
        record = Path(args.record) if args.record is not None else None
        recorder = load_recorder() if record is not None else None
        if recorder is not None and record is not None:
            recorder.check(record)
        if args.with_host:
            host = HostProcess(config.data_dir, host_args, config.profile)
            port = host.start()
            config = replace(config, host="127.0.0.1", port=port)
        return _run(config, record, recorder)
    except (UsageError, ServeError, HostStartError, JournalError, DeckError, RecordError,
            KeyStoreError, OSError) as exc:
        print(f"poslab-terminal: {exc}", file=sys.stderr, flush=True)
        if session:  # a browser tab: its screen is the only place its user looks
            from terminal.serve_session import show_notice

            show_notice(f"This terminal cannot start: {exc}")
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
