"""Garbage collection of one ``cryptorun`` command: paused while loading, then out of the way.

A command first imports Dagster, pandas, pandera and pyarrow and builds the definitions and the
instance: hundreds of thousands of objects that all live until the process exits. With the
collector on, every few hundred allocations of that start-up trigger a collection, and the full
ones walk the whole growing heap again — about 0.5 s of CPU per ``schedule run`` (measured) for
nothing, since none of those objects is garbage. So :func:`paused` turns the collector off for
the command, and :func:`loaded` (called once everything long-lived exists, right before the job
runs) moves all of it to the permanent generation (``gc.freeze``) and turns collection back on:
the run's own garbage is collected as usual, without re-scanning the start-up objects.

When the command ends the previous state is restored (``gc.unfreeze``, collector on or off as
before), so calling :func:`cryptorun_pipelines.cli.main.main` in a long-lived process (the tests)
leaves no frozen objects behind.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

_state = {"paused": False, "frozen": False}


@contextmanager
def paused() -> Iterator[None]:
    """The collector off for the block (until :func:`loaded`), restored afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    _state.update(paused=True, frozen=False)
    try:
        yield
    finally:
        if _state["frozen"]:
            gc.unfreeze()
        _state.update(paused=False, frozen=False)
        if was_enabled:
            gc.enable()
        else:
            gc.disable()


def loaded() -> None:
    """Everything alive now lives for the whole command: freeze it and collect normally from here on.
    A no-op outside :func:`paused` and after the first call."""
    if _state["paused"] and not _state["frozen"]:
        gc.freeze()
        _state["frozen"] = True
        gc.enable()
