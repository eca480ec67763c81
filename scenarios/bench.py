"""Time the bundled scenario library on this machine.

``python -m scenarios.bench [--runs N] [--jobs N]`` runs ``poslab-scenarios run
scenarios/library`` N times (each scenario on its own fresh in-process host) and prints each
run's wall time, the median and the best, with the scenario count and the command, for the
README. The figure is reported, never asserted: shared machines are noisy. Exit status is the
last run's (0 when every scenario passed).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

LIBRARY = Path(__file__).parent / "library"


def _once(jobs: int) -> tuple[float, int, str, str]:
    """One run of the library: (seconds, exit status, summary line, full output)."""
    from scenarios.cli import main as cli_main

    out = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, out
    started = time.perf_counter()
    try:
        status = cli_main(["run", str(LIBRARY), "-q", "--jobs", str(jobs)])
    finally:
        sys.stdout = sys_stdout
    elapsed = time.perf_counter() - started
    summary = next((ln for ln in out.getvalue().splitlines() if "scenarios:" in ln), "")
    return elapsed, status, summary, out.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Run the library ``--runs`` times and print how long it took."""
    parser = argparse.ArgumentParser(prog="python -m scenarios.bench")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--runs", type=int, default=3, help="how many runs (default 3)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.jobs < 1:
        parser.error("--runs and --jobs must be at least 1")
    times: list[float] = []
    status, summary, output = 0, "", ""
    for n in range(1, args.runs + 1):
        elapsed, status, summary, output = _once(args.jobs)
        times.append(elapsed)
        print(f"run {n}: {elapsed:.2f} s ({summary}, exit {status})")
    print(f"{summary}; median {statistics.median(times):.2f} s, best {min(times):.2f} s "
          f"wall over {args.runs} runs on {os.cpu_count()} CPUs "
          f"(python -m scenarios.bench --runs {args.runs} --jobs {args.jobs})")
    if status:
        print(output)
    return status


if __name__ == "__main__":
    sys.exit(main())
