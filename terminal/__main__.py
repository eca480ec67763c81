"""`python -m terminal` runs poslab-terminal."""

import sys

from terminal.cli import main

sys.exit(main())
