"""An export run's changes to its CSOs are in their value history: the values sent,
as the target holds them now, and a deprovisioned object's deletion."""

from __future__ import annotations

import pytest

from connectors.models import ConnectorSpaceObject
from history.models import ValueChange
from tests.scenarios.estate import make_estate, person

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate(tmp_path, slapd, ldap_ou, monkeypatch):
    return make_estate(tmp_path, slapd, ldap_ou, monkeypatch)


def test_an_export_run_records_what_it_sent_and_what_it_deleted(estate):
    estate.write_people([person("1001", "Ada", "Lovelace", "alovelace")])
    for system, profile in [("HR", "Full Import"), ("HR", "Full Sync")]:
        estate.run(system, profile)
    exported = estate.run("Directory", "Export")
    assert exported.status == "complete", exported.message
    cso = ConnectorSpaceObject.objects.get(connected_system__name="Directory")
    [sent] = ValueChange.objects.filter(object_kind="cso", object_id=cso.pk)
    assert sent.event == "updated" and sent.activity_id == exported.pk
    assert sent.changes["cn"]["new"] == ["Ada Lovelace"] and sent.changes["cn"]["old"] == []
    assert sent.run == "Directory: Export"

    estate.write_people([person("1001", "Ada", "Lovelace", "alovelace", status="Terminated")])
    for system, profile in [("HR", "Full Import"), ("HR", "Delta Sync")]:
        estate.run(system, profile)
    deleted = estate.run("Directory", "Export")
    assert deleted.counts == {"deprovisioned": 1}, deleted.message
    last = ValueChange.objects.filter(object_kind="cso", object_id=cso.pk).latest("at", "pk")
    assert (last.event, last.activity_id) == ("deleted", deleted.pk)
