"""The cyclic garbage collector around a process's start-up (``poslab-host``, the fronts).

Start-up imports and builds some 300,000 objects that live as long as the process. With the
collector on, it walks them again and again while they come, and once more at exit: about a
fifth of the CPU a test host spends from start to stop (0.3 s of 1.0 s). So ``poslab-host``
(its console script and ``python -m host``, both through :mod:`host.entry`) and ``python -m
host.front`` turn the collector off before their first import (:func:`starting`), and
:func:`started` freezes what start-up built (``gc.freeze``: the collector skips those objects
from then on, exit included) and turns it back on for the rest.

A process whose collector was on when it started (a test calling ``host.cli.main``) keeps it
as it is: :func:`started` changes nothing there.

The price: a start-up object that later becomes garbage inside a reference cycle stays in
memory until the process ends (objects freed by their reference count go as before). What
start-up builds is meant to live that long: modules, the configuration, the service.
"""

from __future__ import annotations

import gc


def starting() -> None:
    """Turn the collector off for the start-up (the caller then imports the program)."""
    gc.disable()


def started() -> None:
    """Start-up is over: freeze what it built and turn the collector back on, if
    :func:`starting` turned it off."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
