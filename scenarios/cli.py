"""``poslab-scenarios``: run, validate and create refund scenarios.

::

    poslab-scenarios run PATH... [-k EXPR] [--tags T,U] [--junit FILE] [--json FILE]
                     [--seed N] [--jobs N] [--profile NAME]
                     [--host HOST:PORT [--admin URL] [--token T]
                     [--tid ID] [--mid ID] [--currency CUR] [--tls-ca FILE]
                     [--tls-cert FILE --tls-key FILE]] [--time] [-q]
                     [--lesson [--no-wait]]
    poslab-scenarios validate PATH...
    poslab-scenarios new NAME [--dir DIR]

Exit status: 0 every scenario passed (skipped steps allowed), 1 some failed or broke, 2 a
scenario file is invalid (every problem listed with file:line:column; nothing is run) or the
command line is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TextIO, cast

from protocol.specs import PROFILES
from scenarios.loader import Loaded, load_paths
from scenarios.outcome import ScenarioOutcome
from scenarios.report import (
    progress_mark,
    render_failure,
    summary_table,
    totals_line,
    write_json,
    write_junit,
)
from scenarios.schema import Scenario
from scenarios.template import render_template, slug

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``poslab-scenarios``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_INVALID
    handler: Any = {"run": cmd_run, "validate": cmd_validate, "new": cmd_new}[args.command]
    # Each scenario's in-process host is thrown away with its ledger, so its start-up notices
    # (a chain key generated beside a temporary database) are noise here; what a host decides
    # reaches the user through its answers and the report.
    logging.getLogger("host").addHandler(logging.NullHandler())
    try:
        return int(handler(args, cast(TextIO, ReaderMayLeave(sys.stdout))))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_FAILED


class ReaderMayLeave:
    """Standard output that goes quiet once its reader has gone (``... | head``).

    The run carries on, so its JUnit and JSON reports are still written and the exit status
    still says whether every scenario passed; there is no BrokenPipeError traceback.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        """Write ``text``, or drop it when nobody reads any more."""
        if not self.reader_gone:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        """Flush, or do nothing when nobody reads any more."""
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self) -> None:
        self.reader_gone = True
        # Python flushes stdout once more at exit: point the descriptor at /dev/null so that
        # last flush has somewhere to go instead of printing "Exception ignored ...".
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poslab-scenarios",
        description="Run refund scenarios (YAML) against a fresh in-process poslab host or a "
                    "running ISO 8583 host.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('poslab')}")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run scenarios")
    run.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or directories")
    run.add_argument("-k", dest="keyword", metavar="EXPR",
                     help="only scenarios whose name, file or tags match (and/or/not, like pytest)")
    run.add_argument("--tags", help="only scenarios with one of these comma-separated tags")
    run.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report")
    run.add_argument("--json", type=Path, metavar="FILE", help="write a JSON report")
    run.add_argument("--seed", type=int, help="seed for every scenario (default: its own)")
    run.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                     help="run in N worker processes (default 1)")
    run.add_argument("--profile", choices=sorted(PROFILES),
                     help="the wire profile every scenario's terminal speaks, whatever its "
                          "terminal.profile says (cup: China UnionPay)")
    run.add_argument("--host", metavar="HOST:PORT", help="use this running ISO 8583 host")
    run.add_argument("--admin", metavar="URL", help="its admin API, e.g. http://127.0.0.1:8584")
    run.add_argument("--token", help="admin token (default $POSLAB_ADMIN_TOKEN)")
    run.add_argument("--tid", help="terminal id for --host (default from the host config)")
    run.add_argument("--mid", help="merchant id for --host")
    run.add_argument("--currency", help="currency for --host")
    run.add_argument("--tls-ca", metavar="FILE",
                     help="connect to --host (and an https --admin) over TLS, trusting this "
                          "PEM CA")
    run.add_argument("--tls-cert", metavar="FILE",
                     help="client certificate (PEM) for a host that requires one")
    run.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
    run.add_argument("--time", action="store_true", help="print each scenario's duration")
    run.add_argument("-q", "--quiet", action="store_true", help="no summary table")
    run.add_argument("--lesson", action="store_true",
                     help="play step by step against --host: say each step's 'say:' line, "
                          "wait for Enter, send, show the effect")
    run.add_argument("--no-wait", action="store_true",
                     help="with --lesson: do not wait for Enter (tests, CI)")
    val = sub.add_parser("validate", help="check scenario files without running them")
    val.add_argument("paths", nargs="+", metavar="PATH")
    new = sub.add_parser("new", help="write a commented scenario template")
    new.add_argument("name", help="the scenario's name")
    new.add_argument("--dir", type=Path, default=Path("."), help="where to write it")
    return parser


def _load(paths: Sequence[str], out: TextIO) -> list[Loaded] | None:
    loaded, problems = load_paths(paths)
    if problems:
        for problem in problems:
            print(problem, file=out)
        print(f"{len(problems)} problem(s) in scenario files; nothing was run", file=out)
        return None
    if not loaded:
        print("no scenario files found in " + " ".join(paths), file=out)
        return None
    return loaded


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    """Check files; list every problem."""
    loaded = _load(args.paths, out)
    if loaded is None:
        return EXIT_INVALID
    files = len({item.path for item in loaded})
    print(f"{len(loaded)} scenarios in {files} files: valid", file=out)
    return EXIT_OK


def cmd_new(args: argparse.Namespace, out: TextIO) -> int:
    """Write a commented template named after the scenario."""
    path = args.dir / f"{slug(args.name)}.yaml"
    if path.exists():
        print(f"{path} exists; not overwritten", file=out)
        return EXIT_FAILED
    args.dir.mkdir(parents=True, exist_ok=True)
    path.write_text(render_template(args.name), encoding="utf-8")
    print(f"wrote {path}; run it with: poslab-scenarios run {path}", file=out)
    return EXIT_OK


def select(items: list[Loaded], keyword: str | None, tags: str | None) -> list[Loaded]:
    """Apply ``-k`` and ``--tags``."""
    if tags:
        wanted = {t.strip() for t in tags.split(",") if t.strip()}
        items = [i for i in items if wanted & set(i.scenario.tags)]
    if keyword:
        match = keyword_matcher(keyword)
        items = [i for i in items if match(f"{i.name} {i.where} {' '.join(i.scenario.tags)}")]
    return items


def keyword_matcher(expr: str) -> Any:
    """A pytest-like ``-k`` expression: words (substring, case-insensitive), and/or/not, ()."""
    tokens = re.findall(r"\(|\)|[^\s()]+", expr)
    if not tokens:
        raise ValueError("empty -k expression")
    code = []
    for tok in tokens:
        if tok in ("and", "or", "not", "(", ")"):
            code.append(tok)
        else:
            code.append(f"_m({tok.lower()!r})")
    source = " ".join(code)

    def match(text: str) -> bool:
        low = text.lower()
        return bool(eval(source, {"__builtins__": {}, "_m": lambda w: w in low}))  # noqa: S307

    try:
        match("")
    except SyntaxError:
        raise ValueError(f"bad -k expression {expr!r}") from None
    return match


PROGRESS_WIDTH = 50
"""Scenarios per progress line."""


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    """Run scenarios and report."""
    loaded = _load(args.paths, out)
    if loaded is None:
        return EXIT_INVALID
    try:
        items = select(loaded, args.keyword, args.tags)
    except ValueError as exc:
        print(exc, file=out)
        return EXIT_INVALID
    conflict = _option_conflict(args)
    if conflict:
        print(conflict, file=out)
        return EXIT_INVALID
    if not items:
        print(f"0 of {len(loaded)} scenarios selected", file=out)
        return EXIT_OK
    if args.profile:  # the command line wins over the files
        items = [replace(i, scenario=i.scenario.on_profile(args.profile)) for i in items]
    try:
        remote = _remote_args(args)
    except ValueError as exc:  # terminal.tls.ClientTlsError: a bad --tls-* file
        print(exc, file=out)
        return EXIT_INVALID
    started = time.monotonic()
    outcomes: list[ScenarioOutcome] = []

    def done(outcome: ScenarioOutcome) -> None:
        outcomes.append(outcome)
        if args.time:
            print(f"{progress_mark(outcome)} {outcome.duration_s:6.2f}s {outcome.name}", file=out)
        else:
            # pytest-style progress: a mark per scenario, the count at each line's end
            out.write(progress_mark(outcome))
            if len(outcomes) % PROGRESS_WIDTH == 0 or len(outcomes) == len(items):
                out.write(f" [{len(outcomes):>{len(str(len(items)))}}/{len(items)}]\n")
            out.flush()

    if args.lesson:
        from scenarios.lesson import LessonPace, run_lessons
        from scenarios.loop import release_threads, run_sync

        pace = LessonPace(out, wait=not args.no_wait, seeded=args.seed is not None)
        try:
            outcomes = run_sync(run_lessons(items, make_target_factory(remote), args.seed, pace))
        finally:
            release_threads()
    elif args.jobs > 1:
        order = {id(item): n for n, item in enumerate(items)}
        results = _run_parallel(items, args.seed, remote, args.jobs, done)
        outcomes = [results[order[id(i)]] for i in items]
    else:
        from scenarios.loop import release_threads, run_sync
        from scenarios.runner import run_all

        try:
            run_sync(run_all(items, make_target_factory(remote), args.seed, done))
        finally:
            release_threads()
    elapsed = time.monotonic() - started
    for outcome in outcomes:
        if outcome.status in ("failed", "error"):
            print("\n" + render_failure(outcome), file=out)
    print("\n" + (totals_line(outcomes) if args.quiet else summary_table(outcomes)), file=out)
    print(f"ran in {elapsed:.2f} s", file=out)
    if args.junit:
        write_junit(outcomes, args.junit)
    if args.json:
        write_json(outcomes, args.json)
    failed = any(o.status in ("failed", "error") for o in outcomes)
    return EXIT_FAILED if failed else EXIT_OK


def _option_conflict(args: argparse.Namespace) -> str | None:
    """What is wrong with how ``run``'s options combine, or None."""
    if args.admin and not args.host:
        return "--admin needs --host"
    if (args.tls_ca or args.tls_cert or args.tls_key) and not args.host:
        return "--tls-ca, --tls-cert and --tls-key need --host"
    if args.lesson and not (args.host and args.admin):
        return "--lesson plays against a running host: give --host HOST:PORT and --admin URL"
    if args.no_wait and not args.lesson:
        return "--no-wait belongs to --lesson"
    if args.lesson and args.jobs > 1:
        return "--lesson plays one step at a time: --jobs cannot be used with it"
    return None


def _remote_args(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.host:
        return None
    from terminal.tls import client_tls

    return {"address": args.host, "admin_url": args.admin,
            "token": args.token or os.environ.get("POSLAB_ADMIN_TOKEN"), "tid": args.tid,
            "mid": args.mid, "currency": args.currency,
            "tls": client_tls(args.tls_ca, args.tls_cert, args.tls_key)}


def make_target_factory(remote: dict[str, Any] | None) -> Any:
    """An async ``(scenario, start) -> Target``: fresh in-process host, or the remote one."""
    from scenarios import targets

    async def factory(scenario: Scenario, start: datetime) -> targets.Target:
        if remote is None:
            return await targets.start_local(scenario, start)
        return targets.remote(scenario=scenario, **remote)

    return factory


def _run_one(item: Loaded, seed: int | None, remote: dict[str, Any] | None) -> ScenarioOutcome:
    """Worker-process body: run one scenario on this process's own loop and reactor."""
    from scenarios.loop import run_sync
    from scenarios.runner import run_scenario

    return run_sync(run_scenario(item, make_target_factory(remote), seed))


def _run_parallel(items: list[Loaded], seed: int | None, remote: dict[str, Any] | None,
                  jobs: int, done: Any) -> dict[int, ScenarioOutcome]:
    import multiprocessing

    results: dict[int, ScenarioOutcome] = {}
    # spawn: each worker starts clean and installs its own loop and reactor.
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_run_one, item, seed, remote): n for n, item in enumerate(items)}
        for future in as_completed(futures):
            outcome = future.result()
            results[futures[future]] = outcome
            done(outcome)
    return results
