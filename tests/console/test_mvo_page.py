"""The MVO page: attributes and their sources, joined CSOs, pending exports, history."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from connectors.models import ConnectorSpaceObject, RunProfileExecutionItem
from exports.models import PendingExport, PendingExportAttributeChange
from history.recording import Source, row, write
from metaverse.models import MetaverseAttribute, MetaverseObject, SyncRule
from tests.builders import add_run_profile, make_connected_system
from tests.console.builders import make_activity, make_cso, make_mvo, require_admin_for

pytestmark = pytest.mark.django_db


def mvo_url(mvo: MetaverseObject) -> str:
    return reverse("console:mvo", args=[mvo.pk])


@pytest.fixture
def world():
    """Jane, sourced from HR, joined in HR and the Directory, with her manager Bob."""
    hr = make_connected_system("HR", profiles=())
    directory = make_connected_system("Directory", "ldap", profiles=())
    bob = make_mvo("Bob Boss", employeeId=["E0"])
    jane = make_mvo(
        "Jane Doe",
        employeeId=["E1"],
        displayName=["Jane Doe"],
        manager=[bob.pk],
        mail=["jane@example.org"],
    )
    MetaverseAttribute.objects.create(
        object_type=jane.object_type, name="manager", data_type="reference"
    )
    hr_in = SyncRule.objects.create(
        name="HR people in",
        connected_system=hr,
        direction="import",
        cs_object_type=hr.object_types.get(),
        mv_object_type=jane.object_type,
        project=True,
    )
    jane.attribute_sources = {
        "employeeId": {"system": hr.pk, "rule": hr_in.pk},
        "displayName": {"system": hr.pk, "rule": hr_in.pk},
        "manager": {"system": hr.pk, "rule": hr_in.pk},
    }
    jane.save()
    hr_cso = make_cso(hr, "E1", mvo=jane)
    dir_cso = make_cso(
        directory,
        "8c1f-uuid",
        mvo=jane,
        secondary_external_id="uid=jdoe,ou=people,dc=example,dc=org",
    )
    return {
        "hr": hr,
        "directory": directory,
        "jane": jane,
        "bob": bob,
        "hr_in": hr_in,
        "hr_cso": hr_cso,
        "dir_cso": dir_cso,
    }


# -- access ------------------------------------------------------------------------------


def test_anonymous_user_is_sent_to_the_admin_login(client, world):
    response = client.get(mvo_url(world["jane"]))

    assert response.status_code == 302
    assert response.url == f"{reverse('admin:login')}?next={mvo_url(world['jane'])}"


def test_user_who_is_not_staff_is_sent_to_the_login(client, outsider, world):
    client.force_login(outsider)

    assert client.get(mvo_url(world["jane"])).url.startswith(reverse("admin:login"))


def test_staff_without_view_permission_on_mvos_is_refused(client, world):
    client.force_login(User.objects.create_user("bare", password="x", is_staff=True))

    assert client.get(mvo_url(world["jane"])).status_code == 403


def test_unknown_mvo_is_404(viewer_client):
    assert viewer_client.get("/metaverse/999999/").status_code == 404


# -- attributes --------------------------------------------------------------------------


def test_attributes_show_the_system_and_rule_that_contributed_them(viewer_client, world):
    response = viewer_client.get(mvo_url(world["jane"]))

    rows = {row.name: row for row in response.context["attributes"]}
    assert list(rows) == ["displayName", "employeeId", "mail", "manager"]
    assert rows["employeeId"].system == world["hr"]
    assert rows["employeeId"].rule == world["hr_in"]
    assert rows["mail"].system is None  # no recorded source
    assert '<span class="jim-value">jane@example.org</span>' in response.text
    assert "HR people in" in response.text


def test_reference_values_link_to_the_referenced_mvo_by_display_name(viewer_client, world):
    html = viewer_client.get(mvo_url(world["jane"])).text

    assert f'<a class="jim-reference" href="{mvo_url(world["bob"])}">Bob Boss</a>' in html


def test_reference_to_a_missing_mvo_is_shown_raw(viewer_client, world):
    jane = world["jane"]
    jane.attributes["manager"] = [987654]
    jane.save()

    html = viewer_client.get(mvo_url(jane)).text

    assert '<span class="jim-unresolved" title="No such metaverse object">987654</span>' in html


def test_references_are_looked_up_in_one_query(viewer_client, world):
    jane = world["jane"]
    with CaptureQueriesContext(connection) as one:
        viewer_client.get(mvo_url(jane))

    MetaverseAttribute.objects.create(
        object_type=jane.object_type, name="member", data_type="reference", multivalued=True
    )
    jane.attributes["member"] = [make_mvo(f"Member {i}").pk for i in range(20)]
    jane.save()
    with CaptureQueriesContext(connection) as many:
        html = viewer_client.get(mvo_url(jane)).text

    assert len(many) == len(one)
    assert html.count('class="jim-reference"') == 21


def test_system_and_rule_link_to_the_admin(viewer_client, world):
    require_admin_for(SyncRule)

    html = viewer_client.get(mvo_url(world["jane"])).text

    assert reverse("admin:metaverse_syncrule_change", args=[world["hr_in"].pk]) in html


# -- joined CSOs -------------------------------------------------------------------------


def test_joined_csos_in_every_system(viewer_client, world):
    response = viewer_client.get(mvo_url(world["jane"]))
    html = response.text

    assert [c.connected_system.name for c in response.context["cs_objects"]] == [
        "Directory",
        "HR",
    ]
    assert "uid=jdoe,ou=people,dc=example,dc=org" in html
    assert "8c1f-uuid" in html
    assert "<td>Joined</td>" in html


def test_csos_of_other_mvos_are_not_listed(viewer_client, world):
    make_cso(world["hr"], "E0", mvo=world["bob"])

    response = viewer_client.get(mvo_url(world["jane"]))

    assert "E0" not in [c.external_id for c in response.context["cs_objects"]]


def test_cso_links_to_its_admin_page(viewer_client, world):
    require_admin_for(ConnectorSpaceObject)

    html = viewer_client.get(mvo_url(world["jane"])).text

    assert reverse("admin:connectors_connectorspaceobject_change", args=[world["hr_cso"].pk]) in (
        html
    )


# -- pending exports ---------------------------------------------------------------------


def test_pending_exports_show_changes_before_and_after(viewer_client, world):
    export = PendingExport.objects.create(
        connected_system=world["directory"],
        cs_object=world["dir_cso"],
        metaverse_object=world["jane"],
        change_type="update",
        approval="awaiting_approval",
    )
    PendingExportAttributeChange.objects.create(
        pending_export=export,
        attribute="mail",
        change_type="update",
        values=["jane.doe@example.org"],
        previous_values=["jane@example.org"],
    )

    html = viewer_client.get(mvo_url(world["jane"])).text

    assert '<span class="jim-old">jane@example.org</span>' in html
    assert '<span class="jim-new">jane.doe@example.org</span>' in html
    assert "Awaiting Approval" in html
    assert "in Directory" in html


def test_pending_export_of_a_joined_cso_is_shown_without_an_mvo_link(viewer_client, world):
    PendingExport.objects.create(
        connected_system=world["directory"], cs_object=world["dir_cso"], change_type="delete"
    )

    response = viewer_client.get(mvo_url(world["jane"]))

    assert [e.change_type for e in response.context["pending_exports"]] == ["delete"]


def test_no_pending_exports_says_so(viewer_client, world):
    assert "Nothing pending." in viewer_client.get(mvo_url(world["jane"])).text


# -- history -----------------------------------------------------------------------------


def test_history_lists_the_items_naming_the_mvo_or_its_csos_newest_first(viewer_client, world):
    profile = add_run_profile(world["hr"], "full_import")
    older = make_activity(profile, started_seconds_ago=600)
    newer = make_activity(profile, started_seconds_ago=60)
    RunProfileExecutionItem.objects.create(
        activity=older, change_type="added", cs_object=world["hr_cso"], external_id="E1"
    )
    RunProfileExecutionItem.objects.create(
        activity=newer, change_type="attribute_flow", metaverse_object=world["jane"]
    )
    RunProfileExecutionItem.objects.create(
        activity=newer, change_type="projected", metaverse_object=world["bob"]
    )

    response = viewer_client.get(mvo_url(world["jane"]))

    assert [(i.activity_id, i.change_type) for i in response.context["history"]] == [
        (newer.pk, "attribute_flow"),
        (older.pk, "added"),
    ]
    assert f'href="{reverse("console:activity", args=[older.pk])}"' in response.text


# -- queries -----------------------------------------------------------------------------


def test_page_runs_a_bounded_number_of_queries(viewer_client, world, django_assert_max_num_queries):
    export = PendingExport.objects.create(
        connected_system=world["directory"], cs_object=world["dir_cso"], change_type="update"
    )
    PendingExportAttributeChange.objects.create(
        pending_export=export, attribute="mail", change_type="update", values=["x"]
    )
    # Value history: its entries, the activities still kept, the references' names.
    manager = {"manager": {"old": [], "new": [world["bob"].pk], "ref": "mvo"}}
    write([row("mvo", world["jane"].pk, "updated", timezone.now(), Source(1), manager)])

    with django_assert_max_num_queries(17):
        response = viewer_client.get(mvo_url(world["jane"]))

    assert response.status_code == 200
