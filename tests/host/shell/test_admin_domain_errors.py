"""The core's domain errors reach admin clients as HTTP statuses (host.admin.error_answer).

The real service refuses review commands with :mod:`host.errors`; the admin layer alone turns
them into 400, 404 and 409 with the core's message.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from shell_helpers import NOW, TOKEN

from host.admin import error_answer
from host.clock import ManualClock
from host.config import load_config
from host.errors import Conflict
from host.service import HostService


@pytest.fixture
def real_service(tmp_path: Path) -> Iterator[HostService]:
    """A real service with no reviews at all."""
    svc = HostService(load_config(None), str(tmp_path / "ledger.db"), ManualClock(NOW))
    yield svc
    svc.close()


def _post(port: int, path: str, body: dict[str, str]) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST",
                                 data=json.dumps(body).encode())
    req.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())["error"]
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())["error"]


@pytest.mark.parametrize(("path", "body", "status", "error"), [
    ("/reviews/7/approve", {"approver": "alice"}, 404, "no review 7"),
    ("/reviews/7/approve", {"approver": "   "}, 400, "approver is required"),
    ("/reviews/7/reject", {"approver": "alice", "reason": " "}, 400, "a reason is required"),
])
def test_domain_errors_become_http_statuses(start_host: Any, run: Any, real_service: HostService,
                                            path: str, body: dict[str, str], status: int,
                                            error: str) -> None:
    """NotFound answers 404 and Invalid 400, each with the core's own message."""
    host = start_host(service=real_service)
    got, message = run(asyncio.to_thread(_post, host.admin_port, path, body))
    assert got == status and message.startswith(error)


def test_conflict_is_409_and_other_errors_are_not_answered() -> None:
    """Conflict maps to 409 with its message; an error that is not a domain error gets no
    answer here (the site answers it 500)."""
    mapped = error_answer(Conflict("review 3 is already approved"))
    assert mapped is not None and mapped.status == 409
    assert getattr(mapped.body, "error", None) == "review 3 is already approved"
    assert error_answer(ValueError("boom")) is None
