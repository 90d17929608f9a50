"""Housekeeping: removing what JIM keeps only for a while.

Each kind of record kept for a limited time — preview activities, value history,
records of what was exported — has a *pruner*: a function ``(now) -> int`` that
deletes what is older than its retention setting and returns how many rows it
removed. :data:`PRUNERS` names them (dotted, so this module imports none of the
layers below it until it runs them); :func:`run_housekeeping` runs them all.

It runs every night from the django-q2 schedule ``jim:housekeeping`` (made by
migration ``runs.0002_housekeeping_schedule``) and on demand with
``python manage.py jim housekeeping``. Each pruner deletes in chunks, so a long
backlog never holds one huge transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from importlib import import_module

from django.utils import timezone

logger = logging.getLogger(__name__)

#: what it prunes → ``"module:function"``, each ``(now) -> rows removed``
PRUNERS: dict[str, str] = {
    "previews": "runs.preview:prune_previews",
    "exports": "exports.undo:prune_exported_changes",
    "history": "history.pruning:prune",
}

#: the django-q2 schedule that runs :func:`run_housekeeping`
SCHEDULE_NAME = "jim:housekeeping"
TASK = "runs.housekeeping.run_housekeeping"


def run_housekeeping(now: dt.datetime | None = None) -> dict[str, int]:
    """Run every pruner; returns rows removed by what was pruned.

    A pruner that fails is logged and reported as ``-1``; the others still run.
    """
    now = now or timezone.now()
    removed: dict[str, int] = {}
    for name, dotted in PRUNERS.items():
        try:
            removed[name] = _pruner(dotted)(now)
        except Exception:
            logger.exception("Housekeeping: pruning %s failed", name)
            removed[name] = -1
    return removed


def _pruner(dotted: str) -> Callable[[dt.datetime], int]:
    module_name, function_name = dotted.split(":")
    return getattr(import_module(module_name), function_name)
