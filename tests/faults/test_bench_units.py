"""Unit tests of poslab-bench's pieces: mix parsing, request templates, the response scanner,
and its command-line errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from host.config import load_config
from protocol import Codec, frame, get_profile, parse_request
from protocol.headers import Encoding, MessageHeader
from scenarios.loadgen.cli import main
from scenarios.loadgen.driver import LoadRun, _Terminal
from scenarios.loadgen.multihost import shares, write_configs
from scenarios.loadgen.scan import FieldScanner
from scenarios.loadgen.workload import UsageError, build_plans, parse_mix


def test_parse_mix_accepts_weights_and_rejects_nonsense() -> None:
    """The mix is KIND=WEIGHT pairs; unknown kinds, bad weights and no sales are errors."""
    assert parse_mix("sale=60,refund=30,void=10") == {"sale": 60, "refund": 30, "void": 10}
    for bad, text in [("sale=x", "whole number"), ("tip=5,sale=1", "KIND=WEIGHT"),
                      ("refund=5", "sale needs")]:
        with pytest.raises(UsageError, match=text):
            parse_mix(bad)


def test_patched_templates_equal_a_full_encode() -> None:
    """A request rendered by patching STAN and RRN decodes to exactly what was meant."""
    codec = Codec()
    [plan] = build_plans(codec, 1, {"sale": 1, "refund": 1, "void": 1}, mid="BENCHMERCHANT01",
                         currency="CNY", pan="4761739001010119", seed=3)
    assert all(t.patchable for t in plan.templates.values())
    _, fields = codec.decode(plan.templates["refund"].render("004711", "RRN000000042"))
    request = parse_request(fields)
    assert (request.stan, getattr(request, "original_rrn", None)) == ("004711", "RRN000000042")
    _, sale = codec.decode(plan.templates["sale"].render("000009"))
    assert sale["11"] == "000009" and sale["3"] == "000000"


def test_terminal_references_only_its_own_approved_sales() -> None:
    """Refunds and voids go to this terminal's approved sales; with none, it sends a sale."""
    codec = Codec()
    [plan] = build_plans(codec, 1, {"sale": 1, "void": 100}, mid="BENCHMERCHANT01",
                         currency="CNY", pan="4761739001010119", seed=1)
    kind, _, target = plan.next_request()
    assert (kind, target) == ("sale", None)
    plan.settle("sale", None, True, "RRN000000001")
    kinds = {plan.next_request()[0] for _ in range(5)}
    assert "void" in kinds


class _Wire:
    """A transport that keeps what the terminal writes."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)


def test_answer_to_another_request_is_not_taken_as_the_answer(run: Any) -> None:
    """A bench terminal counts an answer with another STAN as an error and keeps waiting; the
    answer with its own STAN completes the request."""
    codec = Codec()
    [plan] = build_plans(codec, 1, {"sale": 1}, mid="BENCHMERCHANT01", currency="CNY",
                         pan="4761739001010119", seed=5)
    load = LoadRun("127.0.0.1", 0, codec, [plan])
    load.running = load.measuring = True

    async def exchange() -> None:
        term = _Terminal(load, plan)
        term.transport = _Wire()  # type: ignore[assignment]
        term.send_next()
        stan = plan.answer_key[1]
        other = f"{int(stan) % 999_999 + 1:06d}"

        def answer(trace: str) -> bytes:
            return frame(codec.encode({"t": "0210", "3": "000000", "11": trace, "39": "00",
                                       "37": "000000000001", "41": plan.tid,
                                       "42": "BENCHMERCHANT01"}))

        term.data_received(answer(other))
        assert (load.tally.errors, load.tally.sent["sale"]) == (1, 0)
        assert term.pending is not None
        load.running = False  # no next request after this one
        term.data_received(answer(stan))
        assert (load.tally.errors, load.tally.sent["sale"]) == (1, 1)

    run(exchange())


def test_scanner_agrees_with_the_codec() -> None:
    """MTI, DE11, DE37 and DE39 sliced by the scanner equal pyiso8583's decode, secondary
    bitmap included."""
    codec = Codec()
    scanner = FieldScanner(codec)
    base = {"t": "0210", "2": "4761739001010119", "3": "000000", "4": "000000010000",
            "11": "000001", "41": "BN000001", "42": "BENCHMERCHANT01", "49": "156",
            "39": "13", "44": "REFUND_EXCEEDS_REMAINING", "12": "033612"}
    for extra in ({}, {"37": "000000000001"}, {"37": "ABC000000001", "70": "301"}):
        body = codec.encode(base | extra)
        decoded = codec.decode_body(body)
        assert scanner.scan(body) == {k: decoded[k] for k in ("t", "11", "37", "39")
                                      if k in decoded}
    assert scanner.scan(b"0210") is None


def test_scanner_declines_a_profile_with_a_message_header() -> None:
    """A message header before the MTI is a layout the scanner does not walk: it declines."""
    profile = dataclasses.replace(get_profile("iso87-ascii"), name="with-header",
                                  message_header=MessageHeader(2, Encoding.ASCII, "AB"))
    codec = Codec(profile)
    body = codec.encode({"t": "0210", "11": "000001", "39": "00", "37": "000000000001"})
    assert codec.decode_body(body)["39"] == "00"
    scanner = FieldScanner(codec)
    assert not scanner.usable and scanner.scan(body) is None


@pytest.mark.parametrize("argv, text", [
    (["--mix", "sale=1,bogus=2"], "--mix"),
    (["--profile", "nope"], "unknown wire profile"),
    (["--currency", "XXQ"], "XXQ"),
    (["--host", "127.0.0.1:1", "--db", "x.db"], "only apply with --with-host"),
    (["--duration", "-1"], "--duration"),
    (["--pan", "4761739001010118"], "--pan"),
    (["--hosts", "2"], "--hosts above 1 needs --db with a PostgreSQL URL"),
    (["--hosts", "2", "--db", "bench.db"], "SQLite has a single writer"),
    (["--hosts", "3", "--terminals", "2", "--db", "postgresql://h/db"], "at least one each"),
    (["--hosts", "2", "--host", "127.0.0.1:1"], "--hosts only applies with --with-host"),
    (["--tls-ca", "/nonexistent/ca.pem"], "--tls-ca /nonexistent/ca.pem: cannot read the file"),
    (["--tls-ca", "/nonexistent/ca.pem", "--tls-cert", "c.pem"], "go together"),
])
def test_bad_arguments_exit_2_with_a_message(argv: list[str], text: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Each bad option stops the bench with status 2 and says what is wrong, no traceback."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err


def test_unreachable_host_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    """A host that refuses the connection: exit 1 and one line saying so, no traceback."""
    assert main(["--host", "127.0.0.1:1", "--duration", "0", "--warmup", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("poslab-bench: cannot reach the host") and "Traceback" not in err


def test_each_host_of_a_several_host_run_gets_its_partition_and_merchants(tmp_path: Path) -> None:
    """--hosts 2: terminals split 26/25 with merchants ...01 and ...02; each host's config,
    based on --config, serves its own partition and lists both merchants with theirs."""
    base = tmp_path / "base.toml"
    base.write_text('[server]\nfront_processes = 1\n[[merchants]]\nid = "KEPTMERCHANT001"\n'
                    '[[merchants]]\nid = "BENCHMERCHANT02"\nname = "replaced"\n')
    every = shares(2, 51, "BENCHMERCHANT01")
    assert [(s.partition, s.terminals, s.mid, s.tid_prefix) for s in every] == [
        ("p1", 26, "BENCHMERCHANT01", "B1"), ("p2", 25, "BENCHMERCHANT02", "B2")]
    for share, path in zip(every, write_configs(str(base), every, tmp_path), strict=True):
        config = load_config(str(path))
        assert (config.partition, config.server.front_processes) == (share.partition, 1)
        assert [(m.id, m.partition) for m in config.merchants] == [
            ("KEPTMERCHANT001", None), ("BENCHMERCHANT01", "p1"), ("BENCHMERCHANT02", "p2")]
