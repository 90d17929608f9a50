"""An outage of the target directory fails runs, never exports (issue 10, item 7).

Real CSV source, real slapd (stopped and started), real PostgreSQL: while the
directory is down, every export run fails naming the directory and the cause, and no
pending export counts an attempt or moves toward ``failed``; once it is back,
everything is exported and confirmed. An answer about one object still counts.
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from connectors.models import ConnectedSystem, RunProfile
from exports import export_processor
from exports.models import PendingExport
from runs.runner import execute, start_activity
from tests.scenarios.estate import person

pytestmark = pytest.mark.django_db

PEOPLE = [
    person("1001", "Ada", "Lovelace", "alovelace"),
    person("1002", "Grace", "Hopper", "ghopper"),
    person("1003", "Alan", "Turing", "aturing"),
]


def _staged(estate) -> None:
    estate.write_people(PEOPLE)
    estate.run("HR", "Full Import")
    estate.run("HR", "Full Sync")
    assert PendingExport.objects.filter(status="pending").count() == 3


def _states() -> set[tuple[str, int]]:
    return set(PendingExport.objects.values_list("status", "error_count"))


def _jim_run(system: str, profile: str) -> tuple[int, dict]:
    out = io.StringIO()
    try:
        call_command("jim", "run", system, profile, "--json", stdout=out, stderr=io.StringIO())
        status = 0
    except SystemExit as exit_:
        status = int(exit_.code)
    return status, json.loads(out.getvalue())


def test_a_stopped_directory_fails_runs_but_no_export(estate, slapd):
    _staged(estate)
    slapd.stop()
    try:
        for _ in range(5):  # longer than max_retries (3)
            status, summary = _jim_run("Directory", "Export")
            assert status == 2
            assert summary["status"] == "failed"
            message = summary["message"]
            assert message.startswith("export to Directory stopped: ") and slapd.url in message
            assert message.endswith(
                "no attempt was counted against the exports not sent; the next run sends them"
            )
            [error] = summary["errors"]  # the run's, none of an object
            assert error["error_type"] == "connector_error" and error["message"] == message
            assert _states() == {("pending", 0)}
            assert not PendingExport.objects.exclude(next_retry_at=None).exists()
    finally:
        slapd.start()

    exported = estate.run("Directory", "Export")

    assert exported.status == "complete" and exported.counts == {"provisioned": 3}
    assert estate.run("Directory", "Full Import").status == "complete"
    assert PendingExport.objects.count() == 0
    assert estate.entry(f"uid=ghopper,ou=people,{estate.base}")["cn"] == ["Grace Hopper"]


def test_the_directory_lost_between_batches(estate, slapd, monkeypatch):
    _staged(estate)
    monkeypatch.setattr(export_processor, "BATCH_SIZE", 1)

    def stop_after_the_first_batch(recorder) -> None:
        if recorder.processed >= 1:
            slapd.stop()

    system = ConnectedSystem.objects.get(name="Directory")
    activity = start_activity(
        system, RunProfile.objects.get(connected_system=system, name="Export")
    )
    try:
        lost = execute(activity, on_progress=stop_after_the_first_batch)
    finally:
        slapd.start()

    assert lost.status == "failed"
    assert lost.message.startswith("export to Directory stopped: ")
    assert sorted(PendingExport.objects.values_list("status", "error_count")) == [
        ("exported", 0),
        ("pending", 0),
        ("pending", 0),
    ]
    assert estate.run("Directory", "Export").counts == {"provisioned": 2}
    estate.run("Directory", "Full Import")
    assert PendingExport.objects.count() == 0


def test_an_answer_about_one_object_counts_toward_max_retries(estate, slapd):
    # mail is IA5 (ASCII): the directory refuses this one entry, and only it.
    estate.write_people([*PEOPLE, person("1004", "Zoë", "Smith", "zsmith")])
    estate.run("HR", "Full Import")
    estate.run("HR", "Full Sync")

    first = estate.run("Directory", "Export")

    assert first.status == "complete_with_errors"
    assert first.counts == {"provisioned": 3}
    zoe = PendingExport.objects.get(status="export_not_confirmed")
    assert zoe.error_count == 1 and zoe.next_retry_at > timezone.now()
    assert "zsmith" in zoe.cs_object.secondary_external_id
    slapd.stop()  # an outage in between changes nothing
    try:
        PendingExport.objects.filter(pk=zoe.pk).update(next_retry_at=timezone.now())
        assert estate.run("Directory", "Export").status == "failed"
    finally:
        slapd.start()
    zoe.refresh_from_db()
    assert (zoe.status, zoe.error_count) == ("export_not_confirmed", 1)
    for _ in range(2):
        PendingExport.objects.filter(pk=zoe.pk).update(next_retry_at=timezone.now())
        estate.run("Directory", "Export")
    zoe.refresh_from_db()
    assert (zoe.status, zoe.error_count) == ("failed", 3)
    assert "mail" in zoe.last_error
