"""`python -m host` runs poslab-host."""

import sys

from host.startup_gc import starting

starting()  # the collector is off until the host serves (host.startup_gc)

from host.cli import main  # noqa: E402 - imported with the collector off

sys.exit(main())
