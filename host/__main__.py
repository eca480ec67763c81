"""`python -m host` runs poslab-host."""

import sys

from host.cli import main

sys.exit(main())
