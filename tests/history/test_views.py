"""An object's value history in the API (``GET …/{id}/history/``) and as the MVO page's
timeline, newest first, a page at a time."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from connectors.models import Activity, ConnectorSpaceObject
from console import value_history
from history.models import ValueChange
from history.recording import Source, row, write
from tests.api.world import user_in
from tests.sync.scenario import build_scenario

pytestmark = pytest.mark.django_db

API = "/api/v1/"


@pytest.fixture
def synced():
    """Jane projected by a sync, then renamed by a second one."""
    scenario = build_scenario()
    scenario.hr_row("1001", firstName="Jane", lastName="Doe")
    scenario.sync()
    scenario.update_hr("1001", lastName="Roe")
    scenario.sync(delta=True)
    return scenario


def api_client(role: str) -> APIClient:
    client = APIClient()
    client.force_login(user_in(role))
    return client


def test_the_api_gives_an_mvo_s_history_newest_first_by_cursor(synced):
    mvo = synced.mvo_of("1001")
    client = api_client("Viewers")

    first = client.get(f"{API}metaverse-objects/{mvo.pk}/history/?page_size=1")
    second = client.get(first.json()["next"])

    assert first.status_code == 200, first.content
    [renamed] = first.json()["results"]
    assert renamed["event"] == "updated" and renamed["object_kind"] == "mvo"
    assert renamed["changes"]["sn"] == {"old": ["Doe"], "new": ["Roe"], "rule": "HR people in"}
    assert renamed["run"] == "HR: delta_sync"
    [created] = second.json()["results"]
    assert created["event"] == "created"


def test_the_api_gives_a_cso_s_history_and_a_deleted_object_s(synced):
    cso = ConnectorSpaceObject.objects.get(connected_system=synced.hr)
    now = timezone.now()
    write([row("cso", cso.pk, "updated", now, Source(None, person="ann"), {"x": {"old": []}})])
    client = api_client("Viewers")

    url = f"{API}connector-space-objects/{cso.pk}/history/"
    answer = client.get(url)
    cso.delete()
    after = client.get(url)

    assert [r["person"] for r in answer.json()["results"]] == ["ann"]
    assert after.json()["results"] == answer.json()["results"]


def test_the_api_s_history_needs_the_object_s_view_permission(synced):
    mvo = synced.mvo_of("1001")
    client = APIClient()
    client.force_login(User.objects.create_user("nobody"))

    answer = client.get(f"{API}metaverse-objects/{mvo.pk}/history/")

    assert answer.status_code == 403
    assert "metaverse.view_metaverseobject" in answer.json()["error"]["message"]


@pytest.fixture
def operator_client(client):
    client.force_login(User.objects.create_superuser("op", "op@example.org", "pw"))
    return client


def test_the_mvo_page_shows_the_timeline_with_old_and_new_values_and_the_run(
    synced, operator_client
):
    mvo = synced.mvo_of("1001")
    renamer = Activity.objects.order_by("pk").last()

    page = operator_client.get(reverse("console:mvo", args=[mvo.pk])).content.decode()

    section = page[page.index('id="value-history"') :]
    section = section[: section.index("</section>")]
    assert section.index("Updated") < section.index("Created")  # newest first
    assert reverse("console:activity", args=[renamer.pk]) in section
    assert "Doe" in section and "Roe" in section and "rule: HR people in" in section


def test_the_timeline_shows_older_entries_a_page_at_a_time(synced, operator_client, monkeypatch):
    monkeypatch.setattr(value_history, "PAGE_SIZE", 1)
    mvo = synced.mvo_of("1001")
    page = operator_client.get(reverse("console:mvo", args=[mvo.pk])).content.decode()
    assert "Created" not in page[page.index('id="value-history"') :]
    older = reverse("console:mvo-value-history", args=[mvo.pk])
    [entry] = ValueChange.objects.filter(object_id=mvo.pk, event="updated")
    assert f"{older}?before={entry.pk}" in page

    fragment = operator_client.get(f"{older}?before={entry.pk}", HTTP_HX_REQUEST="true")
    whole = operator_client.get(f"{older}?before={entry.pk}")

    assert "Created" in fragment.content.decode() and "<html" not in fragment.content.decode()
    assert "Created" in whole.content.decode() and "<html" in whole.content.decode()


def test_a_run_no_longer_kept_is_named_without_a_link(synced, operator_client):
    mvo = synced.mvo_of("1001")
    Activity.objects.all().delete()

    page = operator_client.get(reverse("console:mvo", args=[mvo.pk])).content.decode()

    assert "no longer kept" in page and "HR: delta_sync" in page


def test_a_cso_s_timeline_is_linked_from_its_admin_page(synced, operator_client):
    cso = ConnectorSpaceObject.objects.get(connected_system=synced.hr)
    write([row("cso", cso.pk, "updated", timezone.now(), Source(None), {"sn": {"old": ["A"]}})])
    url = reverse("console:cso-value-history", args=[cso.pk])

    admin_page = operator_client.get(
        reverse("admin:connectors_connectorspaceobject_change", args=[cso.pk])
    )
    timeline_page = operator_client.get(url).content.decode()

    assert url in admin_page.content.decode()
    assert "Updated" in timeline_page and "A" in timeline_page


def test_a_viewer_without_the_cso_permission_is_refused_its_timeline(synced, client):
    cso = ConnectorSpaceObject.objects.get(connected_system=synced.hr)
    client.force_login(User.objects.create_user("staff", is_staff=True))

    answer = client.get(reverse("console:cso-value-history", args=[cso.pk]))

    assert answer.status_code == 403
