"""The admin API against its own OpenAPI document: schemathesis drives a live poslab-host
subprocess through every operation (bounded examples, fixed seed); no answer may be a 500,
break its documented schema, status or content type."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from host.admin.openapi import document
from scenarios import admin as api
from scenarios.admin import AdminCallError, BlockingAdminClient
from scenarios.loadgen.hostctl import start_host
from scenarios.loadgen.procs import ServerProcess, python_module

SEED = 20261204
EXAMPLES = 12
CONFIG = schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True},
    "phases": {"coverage": {"enabled": False}},
})
SCHEMA = schemathesis.openapi.from_dict(document(), config=CONFIG)
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance]


@pytest.fixture(scope="module")
def live_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One poslab-host on a simulated clock and a fresh SQLite ledger for the module."""
    db = tmp_path_factory.mktemp("openapi") / "ledger.db"
    host = start_host(db, extra=["--clock", "simulated", "--start", "2026-11-26T09:00:00+08:00"])
    yield host
    host.stop()


def _base(host: ServerProcess) -> str:
    return f"http://127.0.0.1:{int(host.ready['admin_port'])}"


@SCHEMA.parametrize()
def test_every_operation_keeps_its_contract(case: Any, live_host: ServerProcess) -> None:
    """Generated calls (valid and invalid) get a documented status, content type and body."""
    case.call_and_validate(base_url=_base(live_host), checks=CHECKS,
                           headers={"Authorization": f"Bearer {live_host.ready['admin_token']}"})


def test_the_served_document_is_the_generated_one(live_host: ServerProcess) -> None:
    """GET /openapi.json answers without a token, and `poslab-host openapi` prints the same."""
    anonymous = BlockingAdminClient(int(live_host.ready["admin_port"]), token="")
    served = anonymous.get("/openapi.json")
    printed = subprocess.run([*python_module("host"), "openapi"], capture_output=True,
                             text=True, check=True, timeout=60).stdout
    assert served == json.loads(printed) == document()
    assert set(served["paths"]) >= {"/health", "/transactions/{rrn}", "/faults", "/clock"}


def test_typed_client_reads_a_live_host(live_host: ServerProcess) -> None:
    """The typed admin client returns each answer as its model, attributes filled in."""
    client = BlockingAdminClient(int(live_host.ready["admin_port"]),
                                 str(live_host.ready["admin_token"]))
    health = client.fetch(api.health())
    assert (health.status, health.database, health.transactions) == ("ok", "sqlite", 0)
    assert client.fetch(api.verify()).ok is True
    page = client.fetch(api.transactions(tid="NOSUCHTID", limit=1))
    assert (page.transactions, page.next) == ([], None)
    before = datetime.fromisoformat(client.fetch(api.clock()).now)
    after = client.fetch(api.advance_clock(hours=1))
    assert after.mode == "simulated"
    assert datetime.fromisoformat(after.now) - before == timedelta(hours=1)
    with pytest.raises(AdminCallError) as missing:
        client.fetch(api.transaction("999999999999"))
    assert missing.value.status == 404


def test_openapi_into_a_reader_that_leaves_early_is_quiet() -> None:
    """`poslab-host openapi | head -c 1` exits 0 with nothing on stderr (no BrokenPipe trace)."""
    reader = subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL)
    assert reader.stdin is not None
    printed = subprocess.run([*python_module("host"), "openapi"], stdout=reader.stdin,
                             stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    reader.stdin.close()
    reader.wait(timeout=60)
    assert (printed.returncode, printed.stderr) == (0, "")
