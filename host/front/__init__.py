"""Front processes: the ISO 8583 sockets and codec in N processes, the ledger in one engine.

Opt-in with ``[server] front_processes = N`` or ``poslab-host --front-processes N``
(docs/performance.md). :mod:`host.front.engine` runs in the host process (the engine);
:mod:`host.front.process` is each front; :mod:`host.front.link` is what they say to each other.
"""
