"""The ISO 8583 server over real sockets: round trips, ordering, malformed input, limits."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from typing import Any

import iso8583
import iso8583.specs
import pytest
from shell_helpers import PAN, IsoClient, echo, refund, sale

from protocol import Codec


@pytest.mark.parametrize("profile", ["iso87-ascii", "iso87-ascii-4a", "iso87-ascii-tpdu"])
def test_sale_refund_echo_round_trip(start_host: Any, run: Any, profile: str) -> None:
    """A sale, a refund of it and an echo are answered over TCP in each wire profile."""
    host = start_host(profile)

    async def scenario() -> list[dict[str, str]]:
        client = await IsoClient.connect(host.iso_port, profile)
        answers = [await client.request(sale()), None, await client.request(echo())]
        answers[1] = await client.request(refund(answers[0]["37"]))
        client.close()
        return answers  # type: ignore[return-value]

    sold, refunded, echoed = run(scenario())
    assert (sold["t"], sold["39"], sold["11"]) == ("0210", "00", "000001")
    assert (refunded["t"], refunded["3"], refunded["39"]) == ("0210", "200000", "00")
    assert (echoed["t"], echoed["39"], echoed["70"]) == ("0810", "00", "301")


def test_tpdu_swapped_in_response(start_host: Any, run: Any) -> None:
    """The response TPDU carries the request's source and destination swapped."""
    host = start_host("iso87-ascii-tpdu")

    async def scenario() -> bytes:
        client = await IsoClient.connect(host.iso_port, "iso87-ascii-tpdu")
        client.send(echo(), tpdu=bytes.fromhex("6000120034"))
        payload = await client.read_payload()
        client.close()
        return payload

    assert run(scenario())[:5] == bytes.fromhex("6000340012")


def test_responses_keep_request_order_and_one_worker_thread(start_host: Any, run: Any) -> None:
    """Pipelined requests are answered in order, all by one non-loop worker thread."""
    host = start_host()

    async def scenario() -> list[str]:
        client = await IsoClient.connect(host.iso_port)
        for n in range(1, 21):
            client.send(sale(stan=f"{n:06d}") if n % 3 else echo(stan=f"{n:06d}"))
        stans = [(await client.receive())["11"] for _ in range(20)]
        client.close()
        return stans

    assert run(scenario()) == [f"{n:06d}" for n in range(1, 21)]
    assert len(host.service.threads) == 1
    assert threading.main_thread().name not in host.service.threads


def test_pyiso8583_client_gets_an_answer(start_host: Any, run: Any) -> None:
    """An independent ISO 8583 client (pyiso8583's default spec, 2-byte length) is answered."""
    host = start_host()
    doc = {"t": "0200", "2": PAN, "3": "000000", "4": "000000001250", "7": "0314103000",
           "11": "000777", "12": "103000", "13": "0314", "14": "2812", "22": "012",
           "25": "00", "41": "TERM0001", "42": "MERCHANT0000001", "49": "840"}
    body, _ = iso8583.encode(dict(doc), iso8583.specs.default)

    async def scenario() -> dict[str, Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", host.iso_port)
        writer.write(struct.pack("!H", len(body)) + bytes(body))
        (n,) = struct.unpack("!H", await reader.readexactly(2))
        answer, _ = iso8583.decode(await reader.readexactly(n), iso8583.specs.default)
        writer.close()
        return answer

    answer = run(scenario())
    assert (answer["t"], answer["11"], answer["39"], answer["4"]) == ("0210", "000777", "00",
                                                                      "000000001250")
    assert len(answer["37"]) == 12


def _bad_amount() -> bytes:
    # Letters in DE4: pyiso8583 encodes it, poslab's validator must answer 30.
    import copy

    fields: dict[str, Any] = sale(stan="000042")
    fields["4"] = "00000000100A"
    spec = copy.deepcopy(iso8583.specs.default)
    body, _ = iso8583.encode(fields, spec)
    return bytes(body)


def test_malformed_frames_closed_or_answered_30_while_healthy_link_works(
        start_host: Any, run: Any) -> None:
    """Zero length, oversize and garbage close their connection; bad content gets 30; a
    healthy terminal keeps getting answers throughout."""
    host = start_host()

    async def scenario() -> dict[str, object]:
        healthy = await IsoClient.connect(host.iso_port)
        outcome: dict[str, object] = {}
        attacks = {
            "zero_length": b"\x00\x00",
            "oversize": b"\xff\xff" + b"A" * 64,
            "garbage_body": struct.pack("!H", 12) + b"\x00\x01garbage!!!",
            "unknown_mti_bytes": struct.pack("!H", 10) + b"ZZZZ\x00\x00\x00\x00\x00\x00",
        }
        for n, (name, data) in enumerate(attacks.items(), start=1):
            bad = await IsoClient.connect(host.iso_port)
            bad.send_raw(data)
            outcome[name] = await bad.closed_by_host()
            answer = await healthy.request(sale(stan=f"{n:06d}"))
            assert answer["39"] == "00"
        bad = await IsoClient.connect(host.iso_port)
        bad.send_body(_bad_amount())
        answered = await bad.receive()
        outcome["bad_content"] = (answered["t"], answered["39"], answered["11"])
        outcome["after_30_still_open"] = (await bad.request(echo()))["39"]
        bad.close()
        outcome["healthy_last"] = (await healthy.request(echo()))["39"]
        healthy.close()
        return outcome

    outcome = run(scenario())
    assert outcome == {"zero_length": True, "oversize": True, "garbage_body": True,
                       "unknown_mti_bytes": True, "bad_content": ("0210", "30", "000042"),
                       "after_30_still_open": "00", "healthy_last": "00"}
    closes = [json.loads(line) for line in host.log_lines() if '"event":"close"' in line]
    assert {c["reason"] for c in closes} >= {"framing", "decode"}


def test_non_digit_4a_header_closes(start_host: Any, run: Any) -> None:
    """A 4-ASCII-digit profile closes a connection whose header is not digits."""
    host = start_host("iso87-ascii-4a")

    async def scenario() -> bool:
        bad = await IsoClient.connect(host.iso_port, "iso87-ascii-4a")
        bad.send_raw(b"00x1" + b"0" * 20)
        return await bad.closed_by_host()

    assert run(scenario())


def test_unreadable_invalid_message_closes(start_host: Any, run: Any) -> None:
    """A message that decodes but has no readable STAN/TID cannot be answered: closed."""
    host = start_host()
    body, _ = iso8583.encode({"t": "0200", "4": "00000000100A"}, iso8583.specs.default)

    async def scenario() -> bool:
        bad = await IsoClient.connect(host.iso_port)
        bad.send_body(bytes(body))
        return await bad.closed_by_host()

    assert run(scenario())


def test_slow_sender_closed_by_frame_deadline(start_host: Any, run: Any) -> None:
    """A frame left incomplete past frame_deadline_s is closed although bytes arrived."""
    host = start_host(frame_deadline_s=0.2, idle_timeout_s=60)

    async def scenario() -> tuple[bool, str]:
        healthy = await IsoClient.connect(host.iso_port)
        slow = await IsoClient.connect(host.iso_port)
        slow.send_raw(b"\x00\x40" + b"\x02\x00")  # 64 bytes announced, 2 sent
        closed = await slow.closed_by_host()
        rc = (await healthy.request(echo()))["39"]
        healthy.close()
        return closed, rc

    assert run(scenario(), timeout=5) == (True, "00")
    assert any('"reason":"frame_deadline"' in line for line in host.log_lines())


def test_idle_connection_closed(start_host: Any, run: Any) -> None:
    """A connection with no traffic for idle_timeout_s is closed."""
    host = start_host(idle_timeout_s=0.2)

    async def scenario() -> bool:
        quiet = await IsoClient.connect(host.iso_port)
        return await quiet.closed_by_host()

    assert run(scenario(), timeout=5)
    assert any('"reason":"idle_timeout"' in line for line in host.log_lines())


def test_connection_cap(start_host: Any, run: Any) -> None:
    """Connections over max_connections are closed at once; the others keep working."""
    host = start_host(max_connections=2)

    async def scenario() -> tuple[bool, list[str]]:
        first = await IsoClient.connect(host.iso_port)
        second = await IsoClient.connect(host.iso_port)
        # A round trip on each proves the host has accepted both before the third arrives.
        for c in (first, second):
            await c.request(echo())
        third = await IsoClient.connect(host.iso_port)
        closed = await third.closed_by_host()
        rcs = [(await c.request(sale()))["39"] for c in (first, second)]
        for c in (first, second):
            c.close()
        return closed, rcs

    assert run(scenario()) == (True, ["00", "00"])
    assert host.runtime.metrics.closed.get(reason="over_limit") == 1


def test_log_lines_carry_message_facts_and_mask_the_pan(start_host: Any, run: Any) -> None:
    """Each message in and out is one JSON line with MTI/STAN/TID/RC/latency; no full PAN."""
    host = start_host(with_fields=True)

    async def scenario() -> None:
        client = await IsoClient.connect(host.iso_port)
        await client.request(sale(stan="000123"))
        client.close()

    run(scenario())
    messages = [json.loads(line) for line in host.log_lines() if '"event":"message"' in line]
    inbound, outbound = messages
    assert (inbound["direction"], inbound["mti"], inbound["stan"], inbound["tid"]) == \
        ("in", "0200", "000123", "TERM0001")
    assert (outbound["direction"], outbound["mti"], outbound["rc"]) == ("out", "0210", "00")
    assert outbound["latency_ms"] >= 0 and inbound["pan"] == "476173******0119"
    assert any("Primary account number" in f for f in inbound["fields"])
    assert PAN not in host.log.getvalue()


def test_codec_rejects_what_the_host_sends_nothing_for() -> None:
    """Sanity: the test's bad-amount body really is a validation error under our codec."""
    from protocol import ValidationError

    with pytest.raises(ValidationError):
        Codec().decode(_bad_amount())


def test_real_service_sale_partial_refund_over_refund(run: Any, tmp_path: Any) -> None:
    """With the real HostService: a sale, a partial refund (00) and an over-refund (13)."""
    pytest.importorskip("host.service")
    import io
    from datetime import UTC, datetime

    from host.clock import ManualClock
    from host.config import load_config
    from host.logs import MessageLog
    from host.runtime import HostRuntime

    runtime = HostRuntime(log=MessageLog(io.StringIO()))
    run(runtime.start(load_config(None), str(tmp_path / "real.db"),
                      ManualClock(datetime(2025, 3, 14, 10, 30, tzinfo=UTC)),
                      allow_unknown_terminals=True))

    async def scenario() -> list[str]:
        client = await IsoClient.connect(runtime.iso_port)
        sold = await client.request(sale(stan="000001", amount_minor=1000))
        part = await client.request(refund(sold["37"], stan="000002", amount_minor=400))
        over = await client.request(refund(sold["37"], stan="000003", amount_minor=700))
        client.close()
        return [sold["39"], part["39"], over["39"]]

    try:
        assert run(scenario()) == ["00", "00", "13"]
    finally:
        run(runtime.stop())
