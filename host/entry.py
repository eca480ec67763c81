"""The ``poslab-host`` entry point, light enough to run before the program is imported.

The console script and ``python -m host`` both come in here, so both start with the cyclic
garbage collector off (:mod:`host.startup_gc`): the script's generated wrapper imports its
entry point's module before calling it, and were that module :mod:`host.cli`, everything the
host imports would already have been built with the collector on.
"""

from __future__ import annotations

from host.startup_gc import starting


def main() -> int:
    """Run poslab-host (:func:`host.cli.main`) with the collector off until it serves."""
    starting()
    from host.cli import main as cli_main  # imported with the collector off

    return cli_main()
