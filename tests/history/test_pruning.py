"""Value history older than JIM_HISTORY_RETENTION_DAYS is pruned by housekeeping."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from history import pruning
from history.models import ValueChange
from history.recording import Source, row, write
from runs.housekeeping import run_housekeeping

pytestmark = pytest.mark.django_db


def entries(ages_in_days: list[int], now: dt.datetime) -> None:
    write(
        [
            row("mvo", n, "updated", now - dt.timedelta(days=days), Source(None), {})
            for n, days in enumerate(ages_in_days)
        ]
    )


def test_housekeeping_prunes_history_older_than_the_retention_in_chunks(settings, monkeypatch):
    settings.JIM_HISTORY_RETENTION_DAYS = 30
    monkeypatch.setattr(pruning, "CHUNK", 2)
    now = timezone.now()
    entries([1, 29, 31, 40, 400], now)

    removed = run_housekeeping(now)

    assert removed["history"] == 3
    assert sorted(ValueChange.objects.values_list("object_id", flat=True)) == [0, 1]
    assert run_housekeeping(now)["history"] == 0
