"""Python's cycle collector, paused while a run streams objects through."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off for the block, back on after (if it was on).

    Only the cycle collector stops: reference counting still frees every object the
    moment its last reference goes. The runner runs every import, sync and export
    under it. A run allocates a few dicts, lists and model instances per attribute of
    every object and frees them by reference counting — it makes no reference cycles,
    so peak memory is the same without the collector — yet the collector's passes
    scan every young object alive, and a sync keeps a whole batch alive: with the
    collector on, even with the objects alive at the start frozen and the youngest
    generation collected only every 100,000 allocations, its passes took about a
    tenth of a sync's CPU (1.0 s of 8.8 s for 20,000 people). An import frees as it
    goes and seldom reaches a pass.

    The price: a reference cycle built under it stays in memory until the block ends.
    Code that runs under it must not build cycles per object — ``prefetch_related``
    does (each row caches the other; see :func:`exports.changes.changes_by_export`);
    ``tests/connectors/test_import_memory.py`` and
    ``tests/exports/test_export_memory.py`` check that runs leave none.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
