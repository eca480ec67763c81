"""Fixtures and helpers of the host's CUP tests (the in-process CUP terminal)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
