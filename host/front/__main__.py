"""`python -m host.front` runs one front process (started by poslab-host, host.front.engine)."""

import sys

from host.front.process import main

sys.exit(main())
