"""Command line entry point of poslab-scenarios (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
from importlib.metadata import version


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; only --help and --version exist so far."""
    parser = argparse.ArgumentParser(prog="poslab-scenarios")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('poslab')}")
    parser.parse_args(argv)
    parser.print_help()
    return 0
