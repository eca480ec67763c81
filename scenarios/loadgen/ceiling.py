"""The ceiling server: deframe, decode, encode, answer 00 with the same codec. No rules, no ledger.

Runs the way the host runs (Twisted on the asyncio reactor, one process, the shared
:class:`protocol.transport.FramedProtocol`), so host throughput divided by this server's is the
share of the machine the host's own work leaves. Start it with
``python -m scenarios.loadgen.ceiling --ready-file PATH [--profile NAME]``; SIGTERM exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from protocol import Codec, ProtocolError, response_mti
from protocol.transport import FramedProtocol

_ECHO = ("3", "4", "11", "41", "42", "49", "7", "12", "13")


class CeilingProtocol(FramedProtocol):
    """Answer every decodable request with an approval and a fresh RRN."""

    codec: Codec
    rrns: itertools.count[int]

    def frameReceived(self, payload: bytes) -> None:  # noqa: N802 - Twisted naming
        """Decode (with validation, as the host does), build and encode the answer."""
        try:
            tpdu, fields = self.codec.decode(payload)
        except ProtocolError:
            transport: Any = self.transport
            transport.loseConnection()
            return
        out = {k: fields[k] for k in _ECHO if k in fields}
        out["t"] = response_mti(fields["t"])
        out["37"] = f"{next(self.rrns):012d}"
        out["38"] = "A00001"
        out["39"] = "00"
        self.sendFrame(self.codec.encode(out, tpdu.reply if tpdu else None))


def serve(profile: str, ready_file: str, listen: str = "127.0.0.1") -> int:
    """Listen on port 0, write the ready file, serve until SIGTERM/SIGINT."""
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)  # type: ignore[no-untyped-call]
    from twisted.internet import reactor as _reactor
    from twisted.internet.protocol import Factory

    reactor: Any = _reactor  # the installed reactor's interfaces confuse mypy's zope view

    codec = Codec(profile)
    factory = Factory.forProtocol(CeilingProtocol)
    CeilingProtocol.codec = codec
    CeilingProtocol.rrns = itertools.count(1)
    CeilingProtocol.length_header = codec.profile.length_header
    port = reactor.listenTCP(0, factory, interface=listen)
    tmp = Path(ready_file + ".tmp")
    tmp.write_text(json.dumps({"iso_port": port.getHost().port, "pid": os.getpid()}))
    tmp.replace(ready_file)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: reactor.callFromThread(reactor.stop))
    reactor.run(installSignalHandlers=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line of the ceiling server."""
    parser = argparse.ArgumentParser(prog="python -m scenarios.loadgen.ceiling")
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--profile", default="iso87-ascii")
    args = parser.parse_args(argv)
    try:
        Codec(args.profile)
    except ValueError as exc:
        parser.error(str(exc))
    return serve(args.profile, args.ready_file)


if __name__ == "__main__":
    sys.exit(main())
