"""The terminal's side of payment security: its keys on disk, sign-on key exchange, MACs on
financial messages, PIN blocks and DUKPT.

Modules: :mod:`~terminal.security.keystore` (TMK and DUKPT state files in the data directory,
mode 0600), :mod:`~terminal.security.state` (the keys one session holds and what it builds from
them), :mod:`~terminal.security.guard` (sealing requests and checking responses at the
link's encode boundary), :mod:`~terminal.security.cli` (``poslab-terminal keys``).
The primitives themselves are :mod:`protocol.security`'s.
"""
