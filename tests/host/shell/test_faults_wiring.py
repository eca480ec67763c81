"""Fault rules added through the admin API act on live ISO traffic, in request order."""

from __future__ import annotations

import json
from typing import Any

from shell_helpers import IsoClient, echo, sale
from test_admin import http


def add_fault(run: Any, host: Any, rule: dict[str, object]) -> None:
    """POST one rule to /faults."""
    status, text, _ = http(run, host.admin_port, "POST", "/faults", rule)
    assert status == 201, text


def test_respond_fault_forces_a_code_once(start_host: Any, run: Any) -> None:
    """A one-shot `respond` rule answers 91 without processing; the next sale is normal."""
    host = start_host()
    add_fault(run, host, {"action": "respond", "process": False, "response_code": "91",
                          "mti": "0200", "count": 1})

    async def scenario() -> list[str]:
        client = await IsoClient.connect(host.iso_port)
        rcs = [(await client.request(sale(stan=f"{n:06d}")))["39"] for n in (1, 2)]
        client.close()
        return rcs

    assert run(scenario()) == ["91", "00"]
    status, text, _ = http(run, host.admin_port, "GET", "/metrics")
    assert 'poslab_faults_applied_total{action="respond"' in text


def test_delay_and_drop_keep_response_order(start_host: Any, run: Any) -> None:
    """A delayed answer still precedes later answers; a dropped one leaves no gap filler."""
    host = start_host()
    add_fault(run, host, {"action": "delay", "process": True, "delay_ms": 50,
                          "mti": "0200", "count": 1})
    add_fault(run, host, {"action": "drop", "process": False, "mti": "0800", "count": 1})

    async def scenario() -> list[str]:
        client = await IsoClient.connect(host.iso_port)
        client.send(sale(stan="000001"))   # delayed
        client.send(echo(stan="000002"))   # dropped
        client.send(echo(stan="000003"))
        stans = [(await client.receive())["11"] for _ in range(2)]
        client.close()
        return stans

    assert run(scenario()) == ["000001", "000003"]
    faults = [json.loads(x) for x in host.log_lines() if '"event":"fault"' in x]
    assert [f["stan"] for f in faults] == ["000001", "000002"]
