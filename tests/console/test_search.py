"""The console search: people, CSOs and pending exports found by name, employee id,
account, DN or ``attribute:value``, in rows that tell people apart.

The metaverse is filled by a real sync (:mod:`tests.sync.scenario`): HR people are
projected, their join values kept as keys, and the Directory provisions them — so
the DNs, their keys and the pending exports are what JIM itself writes.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from connectors.backends.ldap.dn import dn_key
from connectors.models import ConnectorSpaceObject
from console.search import RESULTS_PER_KIND
from exports.models import PendingExport
from tests.console.builders import require_admin_for
from tests.sync.scenario import Scenario, build_scenario

pytestmark = pytest.mark.django_db

SEARCH = reverse("console:search")

#: Three people called Heidi Jones, and one other: (employee id, account, department).
HEIDIS = [("1042", "hjones", "Sales"), ("1043", "hjones2", "Legal"), ("2001", "heidij", "Research")]
#: A directory entry whose DN needs escaping (a comma in its cn).
ESCAPED_DN = r"cn=Jones\, Heidi,ou=people,dc=example,dc=org"


def hire(scenario: Scenario, employee_id: str, account: str, department: str, **names: str):
    scenario.hr_row(
        employee_id,
        firstName=names.get("first", "Heidi"),
        lastName=names.get("last", "Jones"),
        accountName=account,
        department=department,
    )


@pytest.fixture
def world() -> Scenario:
    """Three Heidi Jones and Ada Lovelace, synced: projected, and provisioned to the
    Directory (pending creates); plus a directory entry with an escaped DN, not joined."""
    scenario = build_scenario()
    for employee_id, account, department in HEIDIS:
        hire(scenario, employee_id, account, department)
    hire(scenario, "1001", "alovelace", "Engineering", first="Ada", last="Lovelace")
    scenario.sync()
    ConnectorSpaceObject.objects.create(
        connected_system=scenario.directory,
        object_type=scenario.dir_person,
        external_id="6f1c0d2e-uuid",
        secondary_external_id=ESCAPED_DN,
        secondary_external_id_key=dn_key(ESCAPED_DN),
        attributes={"cn": ["Jones, Heidi"]},
        sync_pending=False,
    )
    return scenario


def search(client, q: str):
    response = client.get(SEARCH, {"q": q})
    assert response.status_code == 200
    return response


def mvo_rows(response) -> list:
    return [row for table in response.context["results"].mvos for row in table.rows]


def employee_ids(response) -> list[str]:
    return sorted(
        cell.values[0]
        for row in mvo_rows(response)
        for cell in row.cells
        if cell.label == "employeeId"
    )


def cso_rows(response) -> list[ConnectorSpaceObject]:
    return response.context["results"].csos.rows


def export_rows(response) -> list[PendingExport]:
    return response.context["results"].exports.rows


def rendered_rows(response, kind: str) -> list[str]:
    """The HTML of each result row of ``kind`` (mvo, cso, export)."""
    html = response.content.decode()
    return re.findall(rf'<tr class="jim-result-{kind}">(.*?)</tr>', html, re.S)


# -- finding ------------------------------------------------------------------------


def test_a_name_finds_everyone_so_named_any_case(viewer_client, world):
    response = search(viewer_client, "heidi JONES")

    assert employee_ids(response) == ["1042", "1043", "2001"]
    for row, mvo in zip(rendered_rows(response, "mvo"), mvo_rows(response), strict=True):
        assert f'href="{reverse("console:mvo", args=[mvo.mvo.pk])}"' in row


def test_part_of_a_name_is_enough(viewer_client, world):
    assert employee_ids(search(viewer_client, "lovel")) == ["1001"]


def test_an_employee_id_finds_the_person_their_hr_record_and_their_export(viewer_client, world):
    response = search(viewer_client, "1043")

    assert employee_ids(response) == ["1043"]
    [cso] = cso_rows(response)
    assert (cso.connected_system.name, cso.external_id) == ("HR", "1043")
    [export] = export_rows(response)
    assert export.metaverse_object == world.mvo_of("1043")
    assert export.change_type == "create"


def test_an_account_name_finds_its_person_in_any_case(viewer_client, world):
    assert employee_ids(search(viewer_client, "HJones2")) == ["1043"]


def test_a_dn_finds_the_directory_object_and_its_pending_create(viewer_client, world):
    for typed in (
        "uid=hjones,ou=people,dc=example,dc=org",
        "UID=HJones, OU=People, DC=Example, DC=Org",
    ):
        response = search(viewer_client, typed)

        [cso] = cso_rows(response)
        assert cso == world.dir_cso_of("1042")
        assert cso.mvo_url == reverse("console:mvo", args=[world.mvo_of("1042").pk])
        [export] = export_rows(response)
        assert export.cs_object_id == cso.pk
        assert export.target == "uid=hjones,ou=people,dc=example,dc=org"


def test_an_escaped_dn_is_found_however_it_is_escaped(viewer_client, world):
    for typed in (
        ESCAPED_DN,
        r"CN=Jones\2C Heidi, OU=people, DC=example, DC=org",
        r"cn=jones\2c heidi,ou=people,dc=example,dc=org",
    ):
        [cso] = cso_rows(search(viewer_client, typed))
        assert cso.secondary_external_id == ESCAPED_DN
        assert cso.mvo_url == ""


def test_attribute_value_searches_one_attribute(viewer_client, world):
    # A join attribute: exact, through its keys.
    assert employee_ids(search(viewer_client, "employeeId:1043")) == ["1043"]
    assert employee_ids(search(viewer_client, "employeeid:104")) == []
    # Any other attribute: a value contains the text, any case.
    assert employee_ids(search(viewer_client, "department:LEG")) == ["1043"]
    # A connected system's attribute, and its DN attribute.
    hr_records = cso_rows(search(viewer_client, "firstName:heid"))
    assert sorted(c.external_id for c in hr_records) == ["1042", "1043", "2001"]
    [cso] = cso_rows(search(viewer_client, "dn:uid=heidij,ou=people,dc=example,dc=org"))
    assert cso == world.dir_cso_of("2001")


def test_an_attribute_value_with_accents_is_found(viewer_client, world):
    hire(world, "3001", "zmuller", "Sales", first="Zoë", last="Müller")
    world.sync()

    assert employee_ids(search(viewer_client, "sn:müll")) == ["3001"]
    assert employee_ids(search(viewer_client, "zoë")) == ["3001"]


def test_an_unknown_attribute_is_searched_as_text_and_said_so(viewer_client, world):
    response = search(viewer_client, "colour:blue")

    assert response.context["results"].query.unknown_attribute == "colour"
    assert "No attribute is called “colour”" in response.content.decode()


def test_nothing_found_says_so(viewer_client, world):
    response = search(viewer_client, "nobody-is-called-this")

    assert response.context["results"].nothing
    assert "Nothing found for “nobody-is-called-this”" in response.content.decode()


def test_without_a_query_the_page_says_how_to_search(viewer_client, world):
    response = viewer_client.get(SEARCH)

    assert response.status_code == 200
    assert response.context["results"] is None
    assert "<code>attribute:value</code>" in response.content.decode()


# -- rows that tell people apart ----------------------------------------------------------


def test_three_people_with_the_same_name_are_told_apart(viewer_client, world):
    response = search(viewer_client, "Heidi Jones")

    [table] = response.context["results"].mvos
    assert table.object_type == "person"
    # The join attributes first, then the well-known attributes the type has.
    assert table.columns[:2] == ["employeeId", "accountName"]
    assert "department" in table.columns
    assert "employeeStatus" in table.columns
    rows = rendered_rows(response, "mvo")
    assert len(rows) == 3
    for (employee_id, account, department), row in zip(HEIDIS, sorted(rows), strict=True):
        assert "Heidi Jones" in row
        assert employee_id in row and account in row and department in row
    # No two rows read the same.
    assert len(set(rows)) == 3
    # Each shows the systems the person is joined to, linking to the CSO there.
    for row in mvo_rows(response):
        assert [join.system for join in row.joins] == ["Directory", "HR"]
        assert all(join.url.startswith("/") for join in row.joins)


def test_csos_and_exports_rows_say_what_they_are(viewer_client, world):
    require_admin_for(ConnectorSpaceObject, PendingExport)
    response = search(viewer_client, "uid=hjones,ou=people,dc=example,dc=org")

    [cso_row] = rendered_rows(response, "cso")
    cso = world.dir_cso_of("1042")
    for text in ("directory", "inetorgperson", "pending provisioning", "provisioned"):
        assert text in cso_row.lower()
    assert reverse("admin:connectors_connectorspaceobject_change", args=[cso.pk]) in cso_row
    [export_row] = rendered_rows(response, "export")
    export = world.export_of("1042")
    for text in ("directory", "create", "pending", "not required", "uid=hjones"):
        assert text in export_row.lower()
    assert reverse("admin:exports_pendingexport_change", args=[export.pk]) in export_row


# -- access -----------------------------------------------------------------------------


def test_anonymous_user_is_sent_to_the_login(client, world):
    response = client.get(SEARCH, {"q": "heidi"})

    assert response.status_code == 302
    assert response.url.startswith(f"{reverse('admin:login')}?next=")


def test_user_who_is_not_staff_is_sent_to_the_login(client, outsider, world):
    client.force_login(outsider)

    response = client.get(SEARCH, {"q": "heidi"})

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_staff_see_only_the_kinds_they_may_view(client, world):
    user = User.objects.create_user("mvo-only", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_metaverseobject"))
    client.force_login(user)

    response = search(client, "1042")

    results = response.context["results"]
    assert employee_ids(response) == ["1042"]
    assert results.csos is None and results.exports is None
    assert 'id="search-csos"' not in response.content.decode()


# -- bounded --------------------------------------------------------------------------------


def count_queries(client, q: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        search(client, q)
    return len(queries)


def test_queries_are_bounded_however_many_match(viewer_client, world):
    few = count_queries(viewer_client, "Heidi Jones")
    for n in range(RESULTS_PER_KIND + 5):
        hire(world, str(5000 + n), f"hj{n}", "Sales")
    world.sync()

    many = count_queries(viewer_client, "Heidi Jones")
    response = search(viewer_client, "Heidi Jones")

    assert many == few
    found = response.context["results"].mvo_found
    assert len(found.rows) == RESULTS_PER_KIND and found.more
    assert found.count == f"{RESULTS_PER_KIND}+"
    assert "More metaverse objects…" in response.content.decode()
    assert found.more_url.endswith("?q=Heidi+Jones")


def test_past_the_bound_an_attribute_read_from_documents_asks_for_a_narrower_search(
    viewer_client, world
):
    for n in range(RESULTS_PER_KIND + 5):
        hire(world, str(5000 + n), f"hj{n}", "Sales")
    world.sync()

    response = search(viewer_client, "department:sales")

    found = response.context["results"].mvo_found
    assert len(found.rows) == RESULTS_PER_KIND and found.more
    assert found.more_url == ""  # the admin's list cannot search a department
    assert "make the search narrower" in response.content.decode()
