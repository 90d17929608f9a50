"""Housekeeping (runs/housekeeping.py): every pruner runs, one that fails is reported
and does not stop the others, and the nightly schedule exists."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from runs import housekeeping

pytestmark = pytest.mark.django_db

CALLS: list[str] = []


def prune_some(now) -> int:
    CALLS.append("some")
    return 3


def prune_broken(now) -> int:
    raise RuntimeError("disk on fire")


def jim(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("jim", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_the_nightly_schedule_exists():
    schedule = Schedule.objects.get(name=housekeeping.SCHEDULE_NAME)
    assert schedule.func == housekeeping.TASK
    assert schedule.cron == "17 3 * * *"


def test_a_failing_pruner_is_reported_and_the_others_still_run(monkeypatch, caplog):
    CALLS.clear()
    monkeypatch.setattr(
        housekeeping,
        "PRUNERS",
        {"broken": f"{__name__}:prune_broken", "some": f"{__name__}:prune_some"},
    )
    code, out, err = jim("housekeeping", "--json")
    assert code == 2
    assert json.loads(out) == {"broken": -1, "some": 3}
    assert CALLS == ["some"]
    assert "broken" in err
    assert "disk on fire" in caplog.text


def test_every_registered_pruner_can_be_imported():
    for dotted in housekeeping.PRUNERS.values():
        assert callable(housekeeping._pruner(dotted))
