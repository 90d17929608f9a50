"""Previews through the API: a preview run queued with ``"preview": true`` and read back
(its counts and the pending exports it would leave), a preview's previewed exports
listed and filtered, and what-if on one MVO or CSO — changing nothing, with the run
permission, 409 while a sync runs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from access.roles import ADMINISTRATORS, APPROVERS, OPERATORS, ROLES, VIEWERS
from connectors.models import Activity, ConnectorSpaceObject, RunProfile
from exports.models import PendingExport
from metaverse.models import MetaverseObject
from runs.tasks import execute_activity
from tests.api.endpoints import API
from tests.api.world import user_in
from tests.previews.fidelity import assert_unchanged, database_state
from tests.previews.test_preview_runs import PEOPLE
from tests.previews.test_what_if import synced
from tests.scenarios.estate import Estate, make_estate, person
from tests.support.runs import held

pytestmark = pytest.mark.django_db

NO_EXPORTS = {"created": 0, "changed": 0, "removed": 0}


@pytest.fixture
def estate(tmp_path, slapd, ldap_ou, monkeypatch) -> Estate:
    return make_estate(tmp_path, slapd, ldap_ou, monkeypatch)


def client(role: str) -> APIClient:
    api = APIClient()
    api.force_login(user_in(role))
    return api


def profile(system: str, name: str) -> RunProfile:
    return RunProfile.objects.get(connected_system__name=system, name=name)


def preview_of(api: APIClient, system: str, name: str) -> dict:
    """Queue a preview of the run profile through the API and run it as a worker would;
    the finished activity as the API reads it."""
    queued = api.post(
        f"{API}run-profiles/{profile(system, name).pk}/run/", {"preview": True}, format="json"
    )
    assert queued.status_code == 202, queued.json()
    assert queued.json()["preview"] is True
    execute_activity(queued.json()["id"])
    return api.get(queued["Location"]).json()


def test_a_preview_run_is_queued_run_by_the_workers_and_read_back(estate):
    estate.write_people(PEOPLE)
    estate.run("HR", "Full Import")
    operator = client(OPERATORS)
    url = f"{API}run-profiles/{profile('HR', 'Full Sync').pk}/run/"
    before = database_state()

    queued = operator.post(url, {"preview": True}, format="json")

    assert queued.status_code == 202, queued.json()
    body = queued.json()
    assert (body["status"], body["preview"], body["pending_exports"]) == (
        "queued",
        True,
        NO_EXPORTS,
    )
    assert Activity.objects.get(pk=body["id"]).preview
    assert execute_activity(body["id"]) == "complete"
    preview = Activity.objects.get(pk=body["id"])
    assert_unchanged(before, database_state(but=preview))
    assert not MetaverseObject.objects.exists()

    read = operator.get(queued["Location"]).json()
    assert (read["status"], read["preview"]) == ("complete", True)
    assert read["counts"]["projected"] == 3
    assert read["pending_exports"] == {"created": 3, "changed": 0, "removed": 0}
    # A real run reads as one: not a preview, no counts of previewed exports.
    real = Activity.objects.get(profile_name="Full Import", preview=False)
    assert operator.get(f"{API}activities/{real.pk}/").json()["pending_exports"] is None
    assert operator.get(f"{API}activities/{real.pk}/").json()["preview"] is False
    # The list filters previews in or out.
    previews = operator.get(f"{API}activities/", {"preview": "true"}).json()["results"]
    runs = operator.get(f"{API}activities/", {"preview": "false"}).json()["results"]
    assert [a["id"] for a in previews] == [preview.pk]
    assert preview.pk not in [a["id"] for a in runs] and real.pk in [a["id"] for a in runs]


def test_an_export_run_cannot_be_previewed(estate):
    response = client(OPERATORS).post(
        f"{API}run-profiles/{profile('Directory', 'Export').pk}/run/",
        {"preview": True},
        format="json",
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert "'Export' is an export run, which cannot be previewed" in error["message"]
    assert not Activity.objects.exists()


def test_the_previewed_exports_of_a_preview_are_listed_paged_and_filtered(estate):
    estate.write_people(PEOPLE)
    estate.run("HR", "Full Import")
    estate.run("HR", "Full Sync")  # three creates await the export
    estate.write_people([person("1001", "Ada", "King", "alovelace"), *PEOPLE[1:]])
    estate.run("HR", "Full Import")
    viewer = client(VIEWERS)
    ada = PendingExport.objects.get(dn__startswith="uid=alovelace,")

    preview = preview_of(client(OPERATORS), "HR", "Full Sync")

    assert preview["status"] == "complete", preview["message"]
    assert preview["pending_exports"] == {"created": 0, "changed": 1, "removed": 0}
    url = f"{API}activities/{preview['id']}/previewed-exports/"
    listed = viewer.get(url)
    assert listed.status_code == 200, listed.json()
    [changed] = listed.json()["results"]
    assert (changed["effect"], changed["change_type"], changed["pending_export"]) == (
        "changed",
        "create",
        ada.pk,
    )
    assert changed["activity"] == preview["id"]
    assert changed["connected_system_name"] == "Directory"
    assert changed["target"] == f"uid=alovelace,ou=people,{estate.base}"
    sn = next(c for c in changed["changes"] if c["attribute"] == "sn")
    assert sn["values"] == ["King"]
    was = next(c for c in changed["before"]["changes"] if c["attribute"] == "sn")
    assert was["values"] == ["Lovelace"]
    assert changed["before"]["change_type"] == "create"

    assert viewer.get(url, {"effect": "changed"}).json()["results"] == [changed]
    assert viewer.get(url, {"effect": "created"}).json()["results"] == []
    assert viewer.get(url, {"change_type": "create"}).json()["results"] == [changed]
    assert viewer.get(url, {"change_type": "delete"}).json()["results"] == []
    bad = viewer.get(url, {"effect": "exploded"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"


def test_previewed_exports_are_paged_by_cursor(estate):
    estate.write_people(PEOPLE)
    estate.run("HR", "Full Import")
    preview = preview_of(client(OPERATORS), "HR", "Full Sync")
    url = f"{API}activities/{preview['id']}/previewed-exports/"
    viewer = client(VIEWERS)

    first = viewer.get(url, {"page_size": 2}).json()
    second = viewer.get(first["next"]).json()

    targets = [e["target"] for e in first["results"] + second["results"]]
    assert sorted(targets) == sorted(
        f"uid={account},ou=people,{estate.base}" for account in ("alovelace", "ghopper", "aturing")
    )
    created = first["results"][0]
    assert (created["effect"], created["change_type"], created["before"]) == (
        "created",
        "create",
        None,
    )
    # Neither the CSO it would provision nor the MVO it would project exists.
    assert created["cs_object"] is None and created["metaverse_object"] is None
    assert second["next"] is None


def test_previewed_exports_of_a_real_run_or_of_no_activity_are_a_404(estate):
    real = estate.run("HR", "Full Import")
    viewer = client(VIEWERS)

    response = viewer.get(f"{API}activities/{real.pk}/previewed-exports/")

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert f"Activity {real.pk} is not a preview" in error["message"]
    assert f"created_by_activity={real.pk}" in error["message"]
    unknown = viewer.get(f"{API}activities/{real.pk + 1000}/previewed-exports/")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"].startswith(f"No activity has id {real.pk + 1000}")
    huge = viewer.get(f"{API}activities/{2**63}/previewed-exports/")
    assert huge.status_code == 404


def test_what_if_of_an_mvo_shows_its_changes_and_its_export_and_changes_nothing(estate):
    synced(estate)
    estate.write_people([person("1001", "Ada", "King", "alovelace"), *PEOPLE[1:]])
    estate.run("HR", "Full Import")
    ada = MetaverseObject.objects.get(attributes__employeeId=["1001"])
    operator = client(OPERATORS)
    before = database_state()

    response = operator.post(f"{API}metaverse-objects/{ada.pk}/what-if/")

    assert response.status_code == 200, response.json()
    body = response.json()
    activity = body["activity"]
    assert (activity["preview"], activity["status"]) == (True, "complete"), activity["message"]
    assert activity["pending_exports"] == {"created": 1, "changed": 0, "removed": 0}
    assert_unchanged(before, database_state(but=Activity.objects.get(pk=activity["id"])))
    hr = next(item for item in body["items"] if item["external_id"] == "1001")
    assert hr["metaverse_object"] == ada.pk
    assert (hr["changes"]["sn"]["old"], hr["changes"]["sn"]["new"]) == (["Lovelace"], ["King"])
    assert hr["changes"]["displayName"]["new"] == ["Ada King"]
    [update] = body["pending_exports"]
    directory_cso = ada.cs_objects.get(connected_system__name="Directory")
    assert (update["effect"], update["change_type"], update["cs_object"]) == (
        "created",
        "update",
        directory_cso.pk,
    )
    sn = next(c for c in update["changes"] if c["attribute"] == "sn")
    assert sn["values"] == ["King"]
    # The same preview, read as an activity.
    listed = operator.get(f"{API}activities/{activity['id']}/previewed-exports/").json()
    assert listed["results"] == [update]


def test_what_if_of_an_unjoined_cso_shows_its_projection_and_provisioning(estate):
    estate.write_people(PEOPLE)
    estate.run("HR", "Full Import")
    grace = ConnectorSpaceObject.objects.get(external_id="1002")
    operator = client(OPERATORS)
    before = database_state()

    response = operator.post(f"{API}connector-space-objects/{grace.pk}/what-if/")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["activity"]["status"] == "complete", body["activity"]["message"]
    assert body["activity"]["counts"]["projected"] == 1
    assert_unchanged(before, database_state(but=Activity.objects.get(pk=body["activity"]["id"])))
    [item] = body["items"]
    assert (item["external_id"], item["change_type"], item["cs_object"]) == (
        "1002",
        "projected",
        grace.pk,
    )
    assert item["metaverse_object"] is None  # the MVO it would project never exists
    assert item["changes"]["sn"]["new"] == ["Hopper"]
    [create] = body["pending_exports"]
    assert (create["effect"], create["change_type"], create["cs_object"]) == (
        "created",
        "create",
        None,
    )
    assert create["target"] == f"uid=ghopper,ou=people,{estate.base}"


# --------------------------------------------------------------------------- permissions
# (the world of tests/api: no directory needed)

RUNNERS = {OPERATORS, ADMINISTRATORS}


def _mvo() -> MetaverseObject:
    return MetaverseObject.objects.filter(cs_objects__isnull=False).order_by("pk").first()


@pytest.mark.parametrize("role", ROLES)
def test_what_if_and_preview_runs_need_the_run_permission(world, role):
    api = client(role)
    mvo = _mvo()
    cso = mvo.cs_objects.order_by("pk").first()
    answers = [
        api.post(f"{API}metaverse-objects/{mvo.pk}/what-if/"),
        api.post(f"{API}connector-space-objects/{cso.pk}/what-if/"),
        api.post(
            f"{API}run-profiles/{world.import_profile.pk}/run/", {"preview": True}, format="json"
        ),
    ]
    for response in answers:
        if role in RUNNERS:
            assert response.status_code in (200, 202), response.json()
        else:
            assert response.status_code == 403, response.json()
            assert "connectors.run_runprofile" in response.json()["error"]["message"]
    if role not in RUNNERS:
        assert not Activity.objects.filter(preview=True).exists()


@pytest.mark.parametrize("role", [VIEWERS, APPROVERS])
def test_every_role_reads_previewed_exports(world, role):
    preview = client(ADMINISTRATORS).post(f"{API}metaverse-objects/{_mvo().pk}/what-if/").json()
    response = client(role).get(f"{API}activities/{preview['activity']['id']}/previewed-exports/")
    assert response.status_code == 200, response.json()


def test_reading_previewed_exports_needs_the_pending_exports_view_permission(world, client_for):
    reader = User.objects.create_user("reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_activity"))
    preview = client(ADMINISTRATORS).post(f"{API}metaverse-objects/{_mvo().pk}/what-if/").json()
    response = client_for(User.objects.get(pk=reader.pk)).get(
        f"{API}activities/{preview['activity']['id']}/previewed-exports/"
    )
    assert response.status_code == 403
    assert "exports.view_pendingexport" in response.json()["error"]["message"]


def test_what_if_while_a_sync_runs_is_a_409(world):
    mvo = _mvo()
    sync = Activity.objects.create(
        connected_system=world.scenario.hr,
        profile_type="full_sync",
        profile_name="Full Sync",
        status="in_progress",
    )
    with held(sync):
        response = client(OPERATORS).post(f"{API}metaverse-objects/{mvo.pk}/what-if/")
    assert response.status_code == 409
    assert f"activity #{sync.pk}" in response.json()["error"]["message"]
