"""CPU cost of the host's log path alone: ``python -m scenarios.loadgen.profile_log
[--count N]``.

Writes ``--count`` requests' worth of message lines (one ``in``, one ``out`` with context and
latency, a PAN in each) through :class:`host.logs.MessageLog` to a stream that discards them,
five times, and prints the best CPU microseconds per request. Compare it with the service's
cost per message (``scenarios.loadgen.profile_service``); figures are for reading, not
asserting (docs/performance.md).
"""

from __future__ import annotations

import argparse
import io
import time

from host.logs import MessageLog

_IN = {"t": "0200", "2": "4761739001010119", "3": "000000", "4": "000000001000", "11": "000123",
       "22": "012", "41": "TERM0001", "42": "MERCHANT0000001", "49": "156"}
_OUT = {"t": "0210", "3": "000000", "4": "000000001000", "11": "000123", "37": "000000000123",
        "38": "A1B2C3", "39": "00", "41": "TERM0001", "42": "MERCHANT0000001", "49": "156"}
_CONTEXT = {"kind": "sale", "rule": None, "rrn": "000000000123"}


class _Discard(io.StringIO):
    """A text stream that keeps nothing."""

    def write(self, text: str) -> int:
        return len(text)


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; exit 0."""
    parser = argparse.ArgumentParser(prog="python -m scenarios.loadgen.profile_log")
    parser.add_argument("--count", type=int, default=20000, help="requests to log per round")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    log = MessageLog(_Discard())
    rounds = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(args.count):
            log.message("in", 7, _IN)
            log.message("out", 7, _OUT, _CONTEXT, latency_ms=1.234)
        rounds.append((time.process_time() - start) / args.count * 1e6)
    print(f"log path: {min(rounds):.1f} µs CPU per request (an in and an out line), "
          f"best of 5 rounds of {args.count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
