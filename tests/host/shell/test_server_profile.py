"""The server hands the service the connection's wire profile with each request.

A strict host must require what the profile its terminals speak makes mandatory. The profile
here is the generic one with one difference, which is enough to tell the two apart: its sale
also requires DE14 (expiry date).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from shell_helpers import NOW, IsoClient, sale

from host.clock import ManualClock
from host.config import load_config
from host.service import HostService
from protocol import TxnType, get_profile
from protocol.specs import PROFILES

GENERIC = get_profile("iso87-ascii")


def _with_de14_on_sales() -> Any:
    """The generic profile whose sale route also requires DE14."""
    routes = tuple(
        dataclasses.replace(r, request_fields=r.request_fields | {"14"})
        if r.txn is TxnType.SALE else r
        for r in GENERIC.routes)
    return dataclasses.replace(GENERIC, name="strict-de14", routes=routes)


@pytest.fixture
def strict_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostService]:
    """A strict real service; the test profile registered under ``strict-de14``."""
    monkeypatch.setitem(PROFILES, "strict-de14", _with_de14_on_sales())
    svc = HostService(load_config(None), str(tmp_path / "ledger.db"), ManualClock(NOW),
                      strict=True, allow_unknown_terminals=True)
    yield svc
    svc.close()


def test_strict_host_checks_the_connection_profile(
        start_host: Callable[..., Any], run: Callable[..., Any],
        strict_service: HostService) -> None:
    """A sale without DE14 is answered 30 MISSING_FIELD:14 under a profile that requires it,
    and approved under the default profile, which does not."""
    without_expiry = {k: v for k, v in sale().items() if k != "14"}

    async def send(port: int, profile: str, fields: dict[str, str]) -> dict[str, str]:
        client = await IsoClient.connect(port, profile)
        try:
            return await client.request(fields)
        finally:
            client.close()

    host = start_host(profile="strict-de14", service=strict_service)
    answer = run(send(host.iso_port, "strict-de14", without_expiry))
    assert (answer["39"], answer["44"]) == ("30", "MISSING_FIELD:14")

    plain = start_host(profile="iso87-ascii", service=strict_service)
    answer = run(send(plain.iso_port, "iso87-ascii", dict(without_expiry, **{"11": "000002"})))
    assert answer["39"] == "00"
