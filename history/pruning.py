"""Pruning value history older than ``JIM_HISTORY_RETENTION_DAYS`` (a housekeeping
pruner, see :mod:`runs.housekeeping`)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction

from history.models import ValueChange

#: Rows deleted per transaction.
CHUNK = 10_000


def prune(now: dt.datetime) -> int:
    """Delete the history older than the retention setting, a chunk at a time; returns
    the rows deleted."""
    cutoff = now - dt.timedelta(days=settings.JIM_HISTORY_RETENTION_DAYS)
    removed = 0
    while True:
        with transaction.atomic():
            ids = list(
                ValueChange.objects.filter(at__lt=cutoff).values_list("pk", flat=True)[:CHUNK]
            )
            if not ids:
                return removed
            removed += ValueChange.objects.filter(pk__in=ids).delete()[0]
