"""``poslab-host console``: a Textual console attached to a running host (docs/classroom.md).

:mod:`host.console.client` talks to the admin API and its event stream,
:mod:`host.console.model` keeps the state as plain values, :mod:`host.console.panels` renders
it and :mod:`host.console.app` wires keys and records together.
"""
