"""Fill a ledger with N approved sales, in-process and in large batches, for the "refund with a
big ledger" measurement: ``python -m scenarios.loadgen.prefill --db PATH --count N``.

It drives :class:`host.service.HostService` directly (no sockets) with the shipped default
config and development enrolment, through the same group-commit batch runner the server uses,
so every row is what a real run would have written. Progress goes to stderr every 10,000.
"""

from __future__ import annotations

import argparse
import sys
import time

from protocol import Codec
from scenarios.loadgen.workload import DEFAULT_PAN, build_plans


def main(argv: list[str] | None = None) -> int:
    """Prefill; exit 0 when done."""
    parser = argparse.ArgumentParser(prog="python -m scenarios.loadgen.prefill")
    parser.add_argument("--db", required=True, help="ledger path or database URL")
    parser.add_argument("--count", type=int, required=True, help="sales to book")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--terminals", type=int, default=100)
    args = parser.parse_args(argv)
    if args.count < 1 or args.batch < 1 or args.terminals < 1:
        parser.error("--count, --batch and --terminals must be >= 1")

    from host.clock import SystemClock
    from host.config import load_config
    from host.group_commit import batch_runner
    from host.service import HostService

    service = HostService(load_config(None), args.db, SystemClock(),
                          allow_unknown_terminals=True)
    run = batch_runner(service)
    if run is None:
        parser.error("this service cannot run batches (POSLAB_GROUP_COMMIT=0?)")
    codec = Codec()
    plans = build_plans(codec, args.terminals, {"sale": 1}, mid="BENCHMERCHANT01",
                        currency="CNY", pan=DEFAULT_PAN, seed=7, tid_prefix="PF")
    done, started = 0, time.monotonic()
    while done < args.count:
        batch = []
        for _ in range(min(args.batch, args.count - done)):
            plan = plans[done % len(plans)]
            batch.append(codec.decode(plan.templates["sale"].render(plan.next_stan()))[1])
            done += 1
        run(batch)
        if done % 10_000 < args.batch:
            rate = done / (time.monotonic() - started)
            print(f"{done} sales booked ({rate:.0f}/s)", file=sys.stderr, flush=True)
    service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
