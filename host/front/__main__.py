"""`python -m host.front` runs one front process (started by poslab-host, host.front.engine)."""

import sys

from host.startup_gc import starting

starting()  # the collector is off until the front serves (host.startup_gc)

from host.front.process import main  # noqa: E402 - imported with the collector off

sys.exit(main())
