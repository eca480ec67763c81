"""GroupCommitter: requests queued while a commit runs share the next batch; replies map back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from host.group_commit import GroupCommitter
from host.worker import ServiceWorker


class BatchService:
    """Answers each request with its STAN; the first batch blocks until released."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.fail = fail

    def handle(self, fields: dict[str, str]) -> str:
        raise AssertionError("batch service must be called through handle_batch")

    def handle_batch(self, batch: list[dict[str, str]]) -> list[str]:
        self.batches.append([f["11"] for f in batch])
        self.release.wait(5)
        if self.fail:
            raise RuntimeError("commit failed")
        return [f"reply-{f['11']}" for f in batch]


class SingleService:
    """Has no handle_batch: the committer must fall back to one call per request."""

    def __init__(self) -> None:
        self.calls = 0

    def handle(self, fields: dict[str, str]) -> str:
        self.calls += 1
        return f"reply-{fields['11']}"


async def _gather(ds: list[Deferred[Any]]) -> list[Any]:
    loop = asyncio.get_running_loop()
    return await asyncio.gather(*(d.asFuture(loop) for d in ds), return_exceptions=True)


def test_requests_arriving_during_a_commit_share_the_next_one(
        worker: ServiceWorker, run: Callable[..., Any]) -> None:
    """One request starts a batch; five queued meanwhile go together in the second batch."""
    service = BatchService()
    committer = GroupCommitter(worker, service)

    async def scenario() -> list[Any]:
        first = [committer.submit({"11": "000001"})]
        while not service.batches:  # wait until the worker is inside the first commit
            await asyncio.sleep(0.001)
        rest = [committer.submit({"11": f"00000{i}"}) for i in range(2, 7)]
        service.release.set()
        return await _gather(first + rest)

    replies = run(scenario())
    assert replies == [f"reply-00000{i}" for i in range(1, 7)]
    assert service.batches == [["000001"], ["000002", "000003", "000004", "000005", "000006"]]
    assert committer.batches == 2 and committer.largest == 5


def test_a_failed_commit_fails_every_request_of_its_batch(
        worker: ServiceWorker, run: Callable[..., Any]) -> None:
    """When handle_batch raises, every Deferred of that batch errbacks (nothing is answered)."""
    service = BatchService(fail=True)
    service.release.set()
    committer = GroupCommitter(worker, service)
    results = run(_gather([committer.submit({"11": "000001"}), committer.submit({"11": "000002"})]))
    assert all(isinstance(r, RuntimeError) for r in results)


def test_service_without_batch_api_is_called_per_request(
        worker: ServiceWorker, run: Callable[..., Any]) -> None:
    """Without handle_batch each request is its own call, as before group commit."""
    service = SingleService()
    committer = GroupCommitter(worker, service)
    assert not committer.enabled
    replies = run(_gather([committer.submit({"11": f"00000{i}"}) for i in range(3)]))
    assert replies == ["reply-000000", "reply-000001", "reply-000002"] and service.calls == 3
