"""Export runs and confirming imports of the sync scenario's Directory, on the memory
connector (:mod:`tests.exports.memory_connector`)."""

from __future__ import annotations

from typing import Any

from connectors.activity import ActivityRecorder
from connectors.choices import ActivityStatus, RunProfileType
from connectors.models import Activity, ConnectorSpaceObject
from exports.confirmation import confirm_exports
from exports.export_processor import run_export
from exports.models import PendingExport, PendingExportAttributeChange
from tests.exports.memory_connector import MemoryConnector
from tests.sync.scenario import Scenario, run_processor

#: The DN of the scenario's usual joiner (account ``jsmith``).
DN = "uid=jsmith,ou=people,dc=example,dc=org"


def export(scenario: Scenario) -> Activity:
    """An export run of the Directory."""
    return run_processor(scenario.directory, "export", run_export)


def confirming_import(scenario: Scenario) -> None:
    """What a confirming import of the directory does: its CSOs take the values the
    directory holds, then the exports are confirmed against them."""
    csos = list(ConnectorSpaceObject.objects.filter(connected_system=scenario.directory))
    for cso in csos:
        entry = MemoryConnector.directory.get(cso.secondary_external_id)
        if entry is not None:
            cso.attributes = entry["attributes"]
            cso.status = "normal"
            cso.save()
    activity = Activity.objects.create(
        connected_system=scenario.directory,
        profile_type=RunProfileType.FULL_IMPORT,
        profile_name="confirming import",
        status=ActivityStatus.IN_PROGRESS,
    )
    recorder = ActivityRecorder(activity)
    confirm_exports(
        scenario.directory,
        csos,
        recorder,
        multivalued=lambda _type: frozenset(),
        dn_key=str.lower,
    )
    recorder.flush()
    Activity.objects.filter(pk=activity.pk).update(status=ActivityStatus.COMPLETE)


def hr_marked(scenario: Scenario, employee_id: str = "1001") -> bool:
    """Whether the HR CSO waits for the next sync."""
    return ConnectorSpaceObject.objects.get(
        connected_system=scenario.hr, external_id=employee_id
    ).sync_pending


def assert_converged(scenario: Scenario, last_name: str) -> None:
    """The directory holds the latest value, sent once, and nothing is left open."""
    assert MemoryConnector.directory[DN]["attributes"]["sn"] == [last_name]
    assert not PendingExport.objects.exists()
    assert not PendingExportAttributeChange.objects.exists()
    assert not hr_marked(scenario)
    creates = [c for call in MemoryConnector.calls for c in call if c.change_type == "create"]
    assert len(creates) == 1


def sent_values(attribute: str) -> list[list[Any]]:
    """The values of ``attribute`` in every change sent to the directory, in order."""
    return [
        a.values
        for call in MemoryConnector.calls
        for change in call
        for a in change.attribute_changes
        if a.attribute == attribute
    ]
