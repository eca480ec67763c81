"""Serve a command-line program to web browsers, one process per browser tab.

``poslab-host console --serve`` and ``poslab-terminal --serve`` both put a Textual program in
a browser page through textual-serve. What they share lives here, so that ``host`` and
``terminal``, which may not import each other, use one implementation:

- :mod:`webshell.binding`: the listening address and the policy that refuses a non-loopback
  address unless asked on purpose. No web imports, so a command line can check its options
  without loading a web server.
- :mod:`webshell.server`: the web server itself (imports aiohttp and textual-serve).

This package imports nothing of poslab's: it knows commands, addresses and files, not hosts or
terminals.
"""

from webshell.binding import (
    Listen,
    ServeError,
    add_listen_arguments,
    is_loopback,
    port_problem,
    remote_bind_warning,
)

__all__ = ["Listen", "ServeError", "add_listen_arguments", "is_loopback", "port_problem",
           "remote_bind_warning"]
