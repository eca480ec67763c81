"""Time the bundled scenario library on this machine: ``python -m scenarios.bench [--jobs N]``.

Runs ``poslab-scenarios run scenarios/library`` (each scenario on its own fresh in-process
host) and prints the wall time with the scenario count and the command, for the README. The
figure is reported, never asserted: shared machines are noisy.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

LIBRARY = Path(__file__).parent / "library"


def main(argv: list[str] | None = None) -> int:
    """Run the library once and print how long it took."""
    parser = argparse.ArgumentParser(prog="python -m scenarios.bench")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    from scenarios.cli import main as cli_main

    out = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, out
    started = time.perf_counter()
    try:
        status = cli_main(["run", str(LIBRARY), "-q", "--jobs", str(args.jobs)])
    finally:
        sys.stdout = sys_stdout
    elapsed = time.perf_counter() - started
    summary = next((ln for ln in out.getvalue().splitlines() if "scenarios:" in ln), "")
    print(f"{summary}; {elapsed:.2f} s wall on {os.cpu_count()} CPUs "
          f"(python -m scenarios.bench --jobs {args.jobs}); exit {status}")
    if status:
        print(out.getvalue())
    return status


if __name__ == "__main__":
    sys.exit(main())
