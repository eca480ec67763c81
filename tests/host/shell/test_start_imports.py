"""What a process does before it serves: it imports what its command runs, and collects no garbage
while it starts."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

from host.startup_gc import started

# Run in a fresh interpreter: the test process has imported everything already.
SCRIPT = """
import json, sys
import host.front.process
front = sorted(sys.modules)
import host.cli
print(json.dumps({"front": front, "cli": sorted(sys.modules)}))
"""

# What the front process has no use for: it keeps no database, no config models, no keys.
NOT_IN_A_FRONT = ("sqlalchemy", "pydantic", "host.config", "host.security.gate", "host.ledger")

# What poslab-host loads only for the command that needs it: the server and admin API (with
# its event stream), the key store, the console app, TLS.
NOT_IN_THE_CLI = ("host.runtime", "host.admin", "host.admin.events", "host.event_sse",
                  "host.security.tmk_store", "host.console.app", "host.tls", "OpenSSL",
                  "sqlalchemy")


def test_the_front_and_the_cli_load_only_what_they_run() -> None:
    """Importing the front process or poslab-host's CLI loads none of the other parts' modules."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env=env, check=True, timeout=60).stdout
    loaded = json.loads(out)
    assert [m for m in NOT_IN_A_FRONT if m in loaded["front"]] == []
    assert [m for m in NOT_IN_THE_CLI if m in loaded["cli"]] == []


def test_started_turns_the_collector_back_on_only_where_start_up_turned_it_off() -> None:
    """After a start with the collector off, started() freezes start-up and turns it on; with
    the collector on (a test, the console script) it changes nothing."""
    frozen = gc.get_freeze_count()
    started()
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    gc.disable()
    try:
        started()
        assert gc.isenabled() and gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.enable()
