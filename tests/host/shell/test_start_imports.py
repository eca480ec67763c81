"""What a process does before it serves: it imports what its command runs, and collects no garbage
while it starts."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

from host.startup_gc import started

# Run in a fresh interpreter: the test process has imported everything already.
SCRIPT = """
import json, sys
from datetime import datetime, timezone
import host.front.process
front = sorted(sys.modules)
import host.cli
cli = sorted(sys.modules)
from host.clock import ManualClock
from host.config import load_config
from host.service import HostService
from host.sql_storage import SqlStorage
config = load_config(None)
clock = ManualClock(datetime(2026, 3, 10, 2, tzinfo=timezone.utc))
HostService(config, SqlStorage.open(sys.argv[1], config), clock).close()
print(json.dumps({"front": front, "cli": cli, "service": sorted(sys.modules)}))
"""

# What the front process has no use for: it keeps no database, no config models, no keys, and
# derives no DUKPT key; the TLS stack it imports only when the ISO port is on TLS.
NOT_IN_A_FRONT = ("sqlalchemy", "pydantic", "host.config", "host.security.gate", "host.ledger",
                  "pydukpt", "host.tls", "OpenSSL")

# What poslab-host loads only for the command that needs it: the server and admin API (with
# its event stream), the key store, the console app, TLS.
NOT_IN_THE_CLI = ("host.runtime", "host.admin", "host.admin.events", "host.event_sse",
                  "host.security.tmk_store", "host.console.app", "host.tls", "OpenSSL",
                  "sqlalchemy")

# What opening the service of the shipped config on a fresh SQLite file does without: every
# country's holiday tables (its merchants' calendars are built when first asked a date), and
# the TDES DUKPT library with pycryptodome (loaded by the first DUKPT derivation).
NOT_AT_SERVICE_START = ("holidays.countries", "pydukpt", "Crypto")


def test_the_front_and_the_cli_load_only_what_they_run(tmp_path: Path) -> None:
    """Importing the front process or poslab-host's CLI loads none of the other parts' modules,
    and opening the host's service loads no holiday tables or DUKPT code it was not asked for."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "ledger.db")],
                         capture_output=True, text=True, env=env, check=True, timeout=60).stdout
    loaded = json.loads(out)
    assert [m for m in NOT_IN_A_FRONT if m in loaded["front"]] == []
    assert [m for m in NOT_IN_THE_CLI if m in loaded["cli"]] == []
    assert [m for m in NOT_AT_SERVICE_START if m in loaded["service"]] == []


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


# The console script as pip generates it: load the entry point, then call it.
CONSOLE_SCRIPT = """
import gc, sys
from importlib.metadata import entry_points
sys.argv = ["poslab-host", "--version"]  # what the real program does, should it be called
(entry,) = entry_points(group="console_scripts", name="poslab-host")
run = entry.load()
loaded_first = "host.cli" in sys.modules
import host.cli
host.cli.main = lambda: print(loaded_first, gc.isenabled()) or 0
run()
"""


def test_the_console_script_imports_the_host_with_the_collector_off() -> None:
    """poslab-host's console script loads its entry point without the host program and runs
    the program with the collector off, as ``python -m host`` does."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    out = subprocess.run([sys.executable, "-c", CONSOLE_SCRIPT], capture_output=True,
                         text=True, env=env, check=True, timeout=60).stdout
    assert out.split() == ["False", "False"]
