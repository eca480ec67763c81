"""`python -m host` runs poslab-host."""

import sys

from host.entry import main

sys.exit(main())
