"""`python -m scenarios` runs poslab-scenarios."""

import sys

from scenarios.cli import main

sys.exit(main())
