"""The admin's labels read as people say them: "CSO", "DN", "No error" — not "Cs object",
"Dn" or "None" (issue 14); ``/favicon.ico`` answers on every page; the list of MVOs
tells three people called Heidi Jones apart."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from connectors.models import RunProfileExecutionItem
from exports.models import PendingExport
from tests.sync.scenario import build_scenario

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced():
    """A person projected and provisioned: RPEIs without errors, a pending create."""
    scenario = build_scenario()
    scenario.hr_row("1001", firstName="Heidi", lastName="Jones", accountName="hjones")
    scenario.sync()
    return scenario


def _page(client, name: str, pk: int) -> str:
    response = client.get(reverse(f"admin:{name}_change", args=[pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_an_rpei_says_cso_and_no_error(operator_client, synced):
    item = RunProfileExecutionItem.objects.filter(cs_object__isnull=False).first()
    html = _page(operator_client, "connectors_runprofileexecutionitem", item.pk)
    assert "CSO:" in html and "External ID:" in html and "No error" in html
    assert "Cs object" not in html and "External id" not in html


def test_a_pending_export_says_dn_and_cso(operator_client, synced):
    export = PendingExport.objects.get()
    html = _page(operator_client, "exports_pendingexport", export.pk)
    assert "DN:" in html and "CSO:" in html
    assert "Dn:" not in html and "Cs object" not in html


def test_a_sync_rule_names_its_object_types_and_attributes_in_full(operator_client, synced):
    html = _page(operator_client, "metaverse_syncrule", synced.dir_out.pk)
    for label in ("Connected system object type:", "Metaverse object type:", "DN template:"):
        assert label in html
    assert "Cs object type" not in html and "Mv object type" not in html
    html = _page(operator_client, "metaverse_syncrule", synced.hr_in.pk)
    assert "Connected system attribute" in html and "Metaverse attribute" in html


def test_a_system_without_approvals_says_so(operator_client, synced):
    html = operator_client.get(reverse("admin:connectors_connectedsystem_changelist")).content
    assert b"No approval" in html


def test_favicon_ico_is_jims_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("jim/favicon.svg")


def _heidis(scenario, count: int) -> None:
    for n in range(count):
        scenario.hr_row(
            str(2000 + n),
            firstName="Heidi",
            lastName="Jones",
            accountName=f"heidi{n}",
            department=f"Department {n}",
        )
    scenario.sync()


def _mvo_list(client) -> tuple[str, int]:
    url = reverse("admin:metaverse_metaverseobject_changelist") + "?q=Heidi"
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return response.content.decode(), len(queries)


def test_the_mvo_list_tells_people_of_one_name_apart_in_one_query(operator_client):
    scenario = build_scenario()
    _heidis(scenario, 3)
    html, few = _mvo_list(operator_client)
    # Join attributes first (they identify), then the type's other text attributes; the
    # display name, which an expression computes, is not repeated.
    headers = re.findall(
        r'column-jim_attribute_\d[^"]*">\s*<div class="text">\s*<a [^>]*>([^<]+)</a>', html
    )
    assert headers[:3] == ["EmployeeId", "AccountName", "Department"]
    for values in [("2000", "heidi0", "Department 0"), ("2002", "heidi2", "Department 2")]:
        assert all(f">{value}<" in html for value in values)

    _heidis(scenario, 12)
    html, many = _mvo_list(operator_client)
    assert "Department 11" in html
    assert many == few  # the values come with the rows: no query per row

    by_department = operator_client.get(
        reverse("admin:metaverse_metaverseobject_changelist") + "?q=Heidi&o=-4"
    ).content.decode()
    assert by_department.index("Department 9") < by_department.index("Department 11")
