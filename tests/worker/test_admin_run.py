"""Running a profile from the admin: the Run button and action, and who may use them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django_q.conf import Conf

from connectors.models import Activity, RunProfile
from tests.builders import make_csv_system, people

pytestmark = pytest.mark.django_db


@pytest.fixture
def profile(tmp_path, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)  # django-q2 runs the task in-process
    system = make_csv_system(tmp_path, people(3))
    return RunProfile.objects.get(connected_system=system)


def _staff(client, *codenames: str) -> User:
    user = User.objects.create_user("u", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


def test_run_button_queues_the_run_and_opens_its_live_page(client, profile):
    _staff(client, "view_runprofile", "view_connectedsystem", "run_runprofile", "view_activity")
    page = client.get(
        reverse("admin:connectors_connectedsystem_change", args=[profile.connected_system_id])
    )
    assert b"Run Full Import" in page.content

    response = client.post(reverse("admin:connectors_runprofile_run", args=[profile.pk]))

    activity = Activity.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("console:activity", args=[activity.pk])
    assert activity.status == "complete" and activity.initiated_by.username == "u"


def test_run_action_on_the_changelist(client, profile):
    _staff(client, "view_runprofile", "run_runprofile")
    client.post(
        reverse("admin:connectors_runprofile_changelist"),
        {"action": "run_selected", "_selected_action": [profile.pk]},
    )
    assert Activity.objects.get().status == "complete"


def test_a_viewer_cannot_run(client, profile):
    _staff(client, "view_runprofile", "view_connectedsystem")
    page = client.get(reverse("admin:connectors_runprofile_change", args=[profile.pk]))
    assert b"Run now" not in page.content
    assert (
        b"run_selected" not in client.get(reverse("admin:connectors_runprofile_changelist")).content
    )
    assert (
        client.post(reverse("admin:connectors_runprofile_run", args=[profile.pk])).status_code
        == 403
    )
    assert not Activity.objects.exists()
