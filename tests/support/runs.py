"""Helpers for tests of runs that hold, lose or leave their run lock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from connectors import run_lock
from connectors.models import Activity


@contextmanager
def held(activity: Activity) -> Iterator[Activity]:
    """Hold the activity's run lock, as the live process running it would."""
    lock = run_lock.hold(activity.pk)
    try:
        yield activity
    finally:
        lock.release()
