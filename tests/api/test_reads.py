"""Reading every resource, and the filters of each list."""

from __future__ import annotations

import pytest

from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectorSpaceObject,
    RunProfileExecutionItem,
)
from exports.models import ApprovalAuditEntry, PendingExport
from metaverse.models import MetaverseObject
from tests.api.endpoints import API, CURSOR_PAGED, RESOURCES, ids, results

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", RESOURCES)
def test_every_list_and_detail(world, admin_client, url):
    model = RESOURCES[url]
    listed = ids(admin_client.get(url))
    assert listed == set(model.objects.values_list("pk", flat=True))
    assert listed
    pk = min(listed)
    detail = admin_client.get(f"{url}{pk}/")
    assert detail.status_code == 200
    assert detail.json()["id"] == pk


@pytest.mark.parametrize("url", RESOURCES)
def test_lists_are_paged(world, admin_client, url):
    body = admin_client.get(url, {"page_size": 1, "limit": 1}).json()
    assert len(body["results"]) == 1
    assert body["next"]
    assert ("count" in body) == (url not in CURSOR_PAGED)
    following = admin_client.get(body["next"]).json()
    assert following["results"][0]["id"] != body["results"][0]["id"]


def test_connected_system_shows_settings_and_run_profiles_link_by_id(world, admin_client):
    body = admin_client.get(f"{API}connected-systems/{world.vault.pk}/").json()
    assert body["connector"] == "ldap"
    assert body["settings"] == {
        "url": "ldaps://vault.example.org",
        "base_dn": "dc=example,dc=org",
        "bind_dn": "cn=jim",
    }
    profiles = results(
        admin_client.get(f"{API}run-profiles/", {"connected_system": world.vault.pk})
    )
    assert [(p["name"], p["connected_system_name"]) for p in profiles] == [("Full Import", "Vault")]


def test_object_types_carry_their_attributes(world, admin_client):
    directory = world.scenario.directory
    [dir_type] = results(
        admin_client.get(f"{API}object-types/", {"connected_system": directory.pk})
    )
    assert dir_type["name"] == "inetOrgPerson"
    assert {"uid", "mail", "manager"} <= {a["name"] for a in dir_type["attributes"]}
    [person] = results(admin_client.get(f"{API}metaverse-object-types/", {"name": "person"}))
    assert "employeeId" in {a["name"] for a in person["attributes"]}


def test_sync_rules_carry_joins_and_flows(world, admin_client):
    [rule] = results(admin_client.get(f"{API}sync-rules/", {"name": "HR people in"}))
    assert rule["direction"] == "import"
    assert rule["joins"] == [
        {"order": 0, "cs_attribute": "employeeId", "mv_attribute": "employeeId"}
    ]
    assert {"source": "employeeId", "target": "employeeId"}.items() <= rule["flows"][0].items()
    exports = results(admin_client.get(f"{API}sync-rules/", {"direction": "export"}))
    assert exports and all(r["direction"] == "export" for r in exports)


def test_schedules_list_their_steps(world, admin_client):
    [schedule] = results(admin_client.get(f"{API}schedules/", {"enabled": "true"}))
    assert schedule["steps"] == [
        {"order": 1, "run_profile": world.import_profile.pk},
        {"order": 2, "run_profile": world.export_profile.pk},
    ]


def test_activities_filter_by_system_profile_status_date_and_error_type(world, admin_client):
    url = f"{API}activities/"
    export = Activity.objects.get(profile_type="export")
    directory = world.scenario.directory
    assert ids(admin_client.get(url, {"connected_system": directory.pk})) == set(
        Activity.objects.filter(connected_system=directory).values_list("pk", flat=True)
    )
    assert ids(admin_client.get(url, {"error_type": "export_failed"})) == {export.pk}
    assert ids(admin_client.get(url, {"has_errors": "true"})) == {export.pk}
    assert ids(admin_client.get(url, {"profile_type": "export"})) == {export.pk}
    assert ids(admin_client.get(url, {"status": ["complete", "failed"]})) == set(
        Activity.objects.values_list("pk", flat=True)
    )
    assert ids(admin_client.get(url, {"status": "queued"})) == set()
    after = export.created_at.isoformat()
    assert export.pk in ids(admin_client.get(url, {"created_after": after}))
    assert ids(admin_client.get(url, {"created_before": after})) == set(
        Activity.objects.filter(created_at__lt=export.created_at).values_list("pk", flat=True)
    )
    queued = admin_client.post(f"{API}run-profiles/{world.import_profile.pk}/run/").json()
    assert ids(admin_client.get(url, {"run_profile": world.import_profile.pk})) == {queued["id"]}


def test_execution_items_filter_by_activity_error_and_change(world, admin_client):
    url = f"{API}execution-items/"
    export = Activity.objects.get(profile_type="export")
    [failure] = results(admin_client.get(url, {"activity": export.pk, "has_error": "true"}))
    assert failure["error_type"] == "export_failed"
    assert "constraint violation" in failure["message"]
    assert ids(admin_client.get(url, {"error_type": "export_failed"})) == {failure["id"]}
    provisioned = ids(admin_client.get(url, {"change_type": "provisioned", "activity": export.pk}))
    assert provisioned == set(
        RunProfileExecutionItem.objects.filter(
            activity=export, change_type="provisioned"
        ).values_list("pk", flat=True)
    )
    hr_items = ids(admin_client.get(url, {"connected_system": world.scenario.hr.pk}))
    assert hr_items == set(
        RunProfileExecutionItem.objects.filter(
            activity__connected_system=world.scenario.hr
        ).values_list("pk", flat=True)
    )


def test_csos_by_attribute_value_and_search(world, admin_client):
    url = f"{API}connector-space-objects/"
    hr = world.scenario.hr
    ann = ConnectorSpaceObject.objects.get(connected_system=hr, external_id="1003")
    assert ids(admin_client.get(url, {"attribute": "mail", "value": "user1003@example.org"})) == {
        ann.pk
    }
    assert (
        ids(admin_client.get(url, {"attribute": "mail", "value": "USER1003@example.org"})) == set()
    )
    assert ids(admin_client.get(url, {"attribute": "employeeId", "value": "1003"})) == {ann.pk}
    assert ids(admin_client.get(url, {"search": "user1004,ou=people"})) == set(
        ConnectorSpaceObject.objects.filter(
            secondary_external_id__icontains="user1004,ou=people"
        ).values_list("pk", flat=True)
    )
    assert ids(admin_client.get(url, {"connected_system": hr.pk, "external_id": "1003"})) == {
        ann.pk
    }
    pending = ids(admin_client.get(url, {"status": "pending_provisioning"}))
    assert pending == set(
        ConnectorSpaceObject.objects.filter(status="pending_provisioning").values_list(
            "pk", flat=True
        )
    )
    assert ids(admin_client.get(url, {"metaverse_object": ann.metaverse_object_id})) == set(
        ConnectorSpaceObject.objects.filter(metaverse_object=ann.metaverse_object_id).values_list(
            "pk", flat=True
        )
    )


def test_mvos_by_attribute_value_and_search(world, admin_client):
    url = f"{API}metaverse-objects/"
    mvo = world.scenario.mvo_of("1002")
    assert ids(admin_client.get(url, {"attribute": "accountName", "value": "user1002"})) == {mvo.pk}
    assert ids(admin_client.get(url, {"search": "1002"})) == {mvo.pk}  # a join key
    assert ids(admin_client.get(url, {"search": str(mvo.pk)})) >= {mvo.pk}
    assert ids(admin_client.get(url, {"search": "john smi"})) == set(
        MetaverseObject.objects.values_list("pk", flat=True)
    )
    [body] = results(admin_client.get(url, {"attribute": "employeeId", "value": "1002"}))
    assert {c["connected_system"] for c in body["connector_space_objects"]} == {
        world.scenario.hr.pk,
        world.scenario.directory.pk,
    }


@pytest.mark.parametrize(
    "query",
    [{"attribute": "mail"}, {"value": "x"}, {"attribute": "a b", "value": "x"}],
    ids=["attribute alone", "value alone", "not a name"],
)
def test_attribute_search_needs_a_name_and_a_value(world, admin_client, query):
    response = admin_client.get(f"{API}metaverse-objects/", query)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_pending_exports_filter_by_system_status_approval_and_change_type(world, admin_client):
    url = f"{API}pending-exports/"
    awaiting = {pe.pk for pe in world.awaiting()}
    assert ids(admin_client.get(url, {"approval": "awaiting_approval"})) == awaiting
    assert ids(admin_client.get(url, {"status": "failed"})) == {world.failed().pk}
    assert ids(admin_client.get(url, {"change_type": "create"})) == set(
        PendingExport.objects.values_list("pk", flat=True)
    )
    assert ids(admin_client.get(url, {"change_type": "delete"})) == set()
    assert ids(admin_client.get(url, {"connected_system": world.scenario.hr.pk})) == set()
    failed = admin_client.get(f"{url}{world.failed().pk}/").json()
    assert failed["last_error"].endswith("constraint violation")
    assert failed["target"] == "uid=user1001,ou=people,dc=example,dc=org"
    assert {c["attribute"] for c in failed["attribute_changes"]} >= {"uid", "mail"}
    assert failed["approved_by_name"] == "root"


def test_approval_audit_filters(world, admin_client):
    url = f"{API}approval-audit/"
    entries = set(ApprovalAuditEntry.objects.values_list("pk", flat=True))
    assert len(entries) == 2
    assert ids(admin_client.get(url, {"action": "approved", "username": "root"})) == entries
    assert ids(admin_client.get(url, {"action": "rejected"})) == set()
    ref = world.failed().pk
    [entry] = results(admin_client.get(url, {"pending_export": ref}))
    assert entry["reason"] == "new starters"


def test_an_unknown_choice_is_a_400_naming_it(world, admin_client):
    response = admin_client.get(f"{API}pending-exports/", {"status": "lost"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "status" in error["details"]
    assert "status" in error["message"]


def test_a_connected_system_count_is_given_for_configuration_lists(world, admin_client):
    body = admin_client.get(f"{API}connected-systems/").json()
    assert body["count"] == ConnectedSystem.objects.count()
