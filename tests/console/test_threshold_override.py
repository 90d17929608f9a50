"""Letting a run that stopped at a threshold through from the console or the admin:
"Run again, allowing these deletions / changes", for permitted users only, audited."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django_q.conf import Conf

from connectors.models import Activity, RunProfile, RunProfileExecutionItem
from tests.builders import (
    add_run_profile,
    make_connected_system,
    make_csv_system,
    people,
    run,
    write_csv,
)
from tests.console.builders import VIEW_PERMISSIONS, make_activity
from tests.support.cli import jim

pytestmark = pytest.mark.django_db

CHANGES = "Run again, allowing these changes"
DELETIONS = "Run again, allowing these deletions"


@pytest.fixture
def profile() -> RunProfile:
    return add_run_profile(make_connected_system("Directory", profiles=()), "export")


def stopped_at(profile: RunProfile, error_type: str, **fields) -> Activity:
    """A failed activity whose run stopped at a threshold, as the runner records it."""
    activity = make_activity(
        profile, status="failed", phase="done", message="over the threshold", **fields
    )
    RunProfileExecutionItem.objects.create(
        activity=activity, change_type="none", error_type=error_type, message="over"
    )
    return activity


@pytest.fixture
def over_changes(profile) -> Activity:
    return stopped_at(profile, "change_threshold_exceeded")


@pytest.fixture
def overrider(client) -> User:
    """Staff who may view activities and override thresholds, nothing more."""
    user = User.objects.create_user("olga", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=(*VIEW_PERMISSIONS, "override_threshold"))
    )
    client.force_login(user)
    return user


def page(client, activity: Activity) -> str:
    response = client.get(reverse("console:activity", args=[activity.pk]))
    assert response.status_code == 200
    return response.content.decode()


def override(client, activity: Activity):
    return client.post(reverse("console:activity-override-threshold", args=[activity.pk]))


def test_the_permission_is_given_to_administrators_only() -> None:
    permission = Permission.objects.get(codename="override_threshold")
    assert permission.name == "Can let a run exceed its deletion or change threshold"
    assert list(permission.group_set.values_list("name", flat=True)) == ["Administrators"]


def test_a_permitted_user_sees_the_button_and_queues_the_run_again(
    client, overrider, over_changes
) -> None:
    html = page(client, over_changes)
    action = reverse("console:activity-override-threshold", args=[over_changes.pk])
    assert f'action="{action}"' in html and CHANGES in html
    assert "csrfmiddlewaretoken" in html

    response = override(client, over_changes)

    rerun = Activity.objects.exclude(pk=over_changes.pk).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("console:activity", args=[rerun.pk])
    assert (rerun.status, rerun.run_profile_id) == ("queued", over_changes.run_profile_id)
    assert (rerun.allow_changes, rerun.allow_deletions) == (True, False)
    assert rerun.initiated_by == overrider and rerun.overrides == over_changes


def test_the_rerun_is_audited_on_its_console_and_admin_pages(
    client, overrider, over_changes, admin_client
) -> None:
    override(client, over_changes)
    rerun = Activity.objects.exclude(pk=over_changes.pk).get()
    audit = f"Allowed to exceed the change threshold by olga, re-running activity {over_changes.pk}"

    assert audit in page(client, rerun)
    admin_page = admin_client.get(reverse("admin:connectors_activity_change", args=[rerun.pk]))
    assert audit in admin_page.content.decode()


def test_a_deletion_threshold_is_lifted_and_earlier_lifts_are_kept(client, overrider, profile):
    failed = stopped_at(profile, "deletion_threshold_exceeded", allow_changes=True)
    assert DELETIONS in page(client, failed)

    override(client, failed)

    rerun = Activity.objects.exclude(pk=failed.pk).get()
    assert (rerun.allow_deletions, rerun.allow_changes) == (True, True)
    assert "Allowed to exceed the deletion and change thresholds by olga" in page(client, rerun)


def test_a_user_without_the_permission_sees_no_button_and_gets_403(
    viewer_client, over_changes
) -> None:
    assert CHANGES not in page(viewer_client, over_changes)
    admin_page = viewer_client.get(
        reverse("admin:connectors_activity_change", args=[over_changes.pk])
    )
    assert CHANGES not in admin_page.content.decode()

    assert override(viewer_client, over_changes).status_code == 403
    assert Activity.objects.count() == 1


def test_the_admin_page_offers_it_to_a_permitted_user(admin_client, over_changes) -> None:
    html = admin_client.get(
        reverse("admin:connectors_activity_change", args=[over_changes.pk])
    ).content.decode()
    assert CHANGES in html
    assert reverse("console:activity-override-threshold", args=[over_changes.pk]) in html


def test_get_is_refused(client, overrider, over_changes) -> None:
    response = client.get(reverse("console:activity-override-threshold", args=[over_changes.pk]))
    assert response.status_code == 405
    assert Activity.objects.count() == 1


def test_a_csrf_less_post_is_refused(overrider, over_changes) -> None:
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(overrider)
    assert override(guarded, over_changes).status_code == 403
    assert Activity.objects.count() == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "failed", "phase": "done"},  # failed for another reason
        {"status": "complete"},
    ],
)
def test_nothing_is_offered_for_another_outcome(client, overrider, profile, fields) -> None:
    other = make_activity(profile, **fields)
    assert CHANGES not in page(client, other) and DELETIONS not in page(client, other)

    response = override(client, other)

    assert response.status_code == 302
    assert Activity.objects.count() == 1


def test_nothing_is_offered_once_the_profile_ran_again(client, overrider, over_changes) -> None:
    override(client, over_changes)  # the re-run is queued: a second click does nothing

    assert CHANGES not in page(client, over_changes)
    override(client, over_changes)
    assert Activity.objects.count() == 2


def test_the_rerun_goes_through_the_deletion_threshold(
    client, overrider, tmp_path, monkeypatch
) -> None:
    """End to end: a real import stopped at its deletion threshold, let through."""
    monkeypatch.setattr(Conf, "SYNC", True)  # django-q2 runs the task in-process
    system = make_csv_system(tmp_path, people(20))
    run(system)
    write_csv(tmp_path / "hr.csv", people(15))
    failed = run(system)
    assert failed.status == "failed"

    override(client, failed)

    rerun = Activity.objects.get(overrides=failed)
    assert rerun.status == "complete"
    assert rerun.counts.get("deleted") == 5


@pytest.mark.parametrize(
    ("flags", "allowed"),
    [
        ((), (False, False)),
        (("--allow-changes",), (False, True)),
        (("--allow-deletions", "--allow-changes"), (True, True)),
    ],
)
def test_jim_queue_passes_the_threshold_flags(profile, flags, allowed) -> None:
    status, out, err = jim("queue", "Directory", "Export", *flags)

    assert status == 0, err
    activity = Activity.objects.get(pk=int(out))
    assert (activity.allow_deletions, activity.allow_changes) == allowed
    assert activity.overrides is None


def test_the_change_threshold_and_optional_are_editable_in_the_admin(admin_client) -> None:
    system = make_connected_system("HR", profiles=())
    object_type = system.object_types.get()
    object_type.attributes.create(name="department")

    system_page = admin_client.get(
        reverse("admin:connectors_connectedsystem_change", args=[system.pk])
    )
    type_page = admin_client.get(
        reverse("admin:connectors_connectedsystemobjecttype_change", args=[object_type.pk])
    )

    assert 'name="deletion_threshold"' in system_page.content.decode()
    assert 'name="change_threshold"' in system_page.content.decode()
    assert 'name="attributes-0-optional"' in type_page.content.decode()


def test_an_import_refused_for_a_lost_attribute_is_lifted_as_a_change(client, overrider, profile):
    failed = stopped_at(profile, "attribute_lost")
    assert CHANGES in page(client, failed)

    override(client, failed)

    rerun = Activity.objects.exclude(pk=failed.pk).get()
    assert (rerun.allow_changes, rerun.allow_deletions) == (True, False)
