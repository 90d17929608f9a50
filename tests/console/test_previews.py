"""Previews in the console: the Preview button beside Run, a preview's page (marked,
its RPEIs and the pending exports it would create, change or remove, before → after),
and "What would a sync do?" on the MVO and CSO pages — against the scenario estate
(HR CSV → a real slapd), so that what the pages show is what a real preview recorded.
"""

from __future__ import annotations

import html as html_module
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_q.conf import Conf
from django_q.models import OrmQ

from audit.models import AuditEntry
from connectors.choices import RunProfileType
from connectors.models import Activity, ConnectorSpaceObject, RunProfile
from console import previews
from metaverse.models import MetaverseObject
from runs import what_if
from runs.models import PreviewedExport
from runs.runner import AlreadyRunning
from tests.builders import make_connected_system
from tests.console.builders import HTMX, make_activity
from tests.previews.fidelity import assert_unchanged, database_state
from tests.scenarios.estate import Estate, make_estate, person

pytestmark = pytest.mark.django_db

DASHBOARD = "/dashboard/"
PEOPLE = [
    person("1001", "Ada", "Lovelace", "alovelace"),
    person("1002", "Grace", "Hopper", "ghopper", manager="1001"),
    person("1003", "Alan", "Turing", "aturing", manager="1001"),
]


@pytest.fixture
def estate(tmp_path, slapd, ldap_ou, monkeypatch) -> Estate:
    return make_estate(tmp_path, slapd, ldap_ou, monkeypatch)


def preview_url(profile: RunProfile) -> str:
    return reverse("console:run-profile-preview", args=[profile.pk])


def profile(system: str, name: str) -> RunProfile:
    return RunProfile.objects.get(connected_system__name=system, name=name)


def text_of(response) -> str:
    """The page's text, tags out and spaces folded, entities decoded."""
    text = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html_module.unescape(text))


def synced(estate: Estate, people: list[dict] = PEOPLE) -> None:
    """HR imported and synced, the directory provisioned, imported and synced."""
    estate.write_people(people)
    for system, name in [
        ("HR", "Full Import"),
        ("HR", "Full Sync"),
        ("Directory", "Export"),
        ("Directory", "Full Import"),
        ("Directory", "Full Sync"),
    ]:
        assert estate.run(system, name).status == "complete"


def ada() -> MetaverseObject:
    return MetaverseObject.objects.get(attributes__employeeId=["1001"])


# --------------------------------------------------------------------------- buttons


def test_a_preview_button_beside_every_run_button_but_an_export_runs(runner):
    hr = make_connected_system(
        "HR",
        profiles=(RunProfileType.FULL_IMPORT, RunProfileType.FULL_SYNC, RunProfileType.EXPORT),
    )
    html = runner.get(DASHBOARD).text

    for profile_ in RunProfile.objects.filter(connected_system=hr):
        assert f'aria-label="Run {profile_.name} of HR"' in html
        shown = f'action="{preview_url(profile_)}"' in html
        assert shown == (profile_.profile_type != "export"), profile_.name
    assert 'aria-label="Preview Full Import of HR"' in html


def test_the_preview_button_queues_a_preview_and_says_so(runner, operator_role):
    hr = make_connected_system("HR", profiles=(RunProfileType.FULL_SYNC,))
    profile_ = RunProfile.objects.get(connected_system=hr)

    response = runner.post(preview_url(profile_), follow=True)

    activity = Activity.objects.get()
    assert (activity.status, activity.preview) == ("queued", True)
    assert (activity.run_profile, activity.initiated_by) == (profile_, operator_role)
    assert response.redirect_chain == [(f"/activities/{activity.pk}/", 302)]
    queued = [(q.task["func"], q.task["args"]) for q in OrmQ.objects.all()]
    assert queued == [("runs.tasks.execute_activity", (activity.pk,))]
    entry = AuditEntry.objects.get(action="run_started", object_id=str(activity.pk))
    assert (entry.actor, entry.via) == (operator_role, "console")
    text = text_of(response)
    assert f"Queued a preview of Full Sync of HR as activity #{activity.pk}" in text
    assert "nothing will be changed" in text
    assert "Preview — nothing was changed." in text
    # Queued, it shows in the running panel as a preview.
    runs = runner.get(reverse("console:dashboard-runs")).text
    assert f'id="active-run-{activity.pk}"' in runs and "jim-preview-tag" in runs


def test_a_forged_preview_of_an_export_run_is_refused_with_why(runner):
    hr = make_connected_system("HR", profiles=(RunProfileType.EXPORT,))
    export = RunProfile.objects.get(connected_system=hr)

    response = runner.post(preview_url(export), follow=True)

    assert response.redirect_chain == [(DASHBOARD, 302)]
    assert "'Export' is an export run, which cannot be previewed" in text_of(response)
    assert not Activity.objects.exists() and not OrmQ.objects.exists()


def test_the_preview_button_is_post_only_and_a_missing_profile_is_404(runner):
    hr = make_connected_system("HR", profiles=(RunProfileType.FULL_SYNC,))
    assert runner.get(preview_url(RunProfile.objects.get(connected_system=hr))).status_code == 405
    assert runner.post("/run-profiles/999999/preview/").status_code == 404
    assert not Activity.objects.exists()


def test_readers_get_no_preview_nor_what_if_buttons_and_are_refused(reader):
    hr = make_connected_system("HR", profiles=(RunProfileType.FULL_SYNC,))
    profile_ = RunProfile.objects.get(connected_system=hr)
    mvo = MetaverseObject.objects.create(
        object_type=_person_type(), display_name="Ada Lovelace", attributes={}
    )
    cso = ConnectorSpaceObject.objects.create(
        connected_system=hr, object_type=hr.object_types.get(), external_id="1001"
    )

    assert "/preview/" not in reader.get(DASHBOARD).text
    assert "What would a sync do?" not in reader.get(reverse("console:mvo", args=[mvo.pk])).text
    cso_page = reverse("admin:connectors_connectorspaceobject_change", args=[cso.pk])
    assert "What would a sync do?" not in reader.get(cso_page).text
    assert reader.post(preview_url(profile_)).status_code == 403
    assert reader.post(reverse("console:mvo-what-if", args=[mvo.pk])).status_code == 403
    assert reader.post(reverse("console:cso-what-if", args=[cso.pk])).status_code == 403
    assert not Activity.objects.exists()


def _person_type():
    from metaverse.models import MetaverseObjectType

    return MetaverseObjectType.objects.get_or_create(name="person")[0]


def test_the_admin_offers_preview_beside_run_except_for_an_export(runner, operator_role, estate):
    sync = profile("Directory", "Full Sync")
    export = profile("Directory", "Export")
    system_page = runner.get(
        reverse("admin:connectors_connectedsystem_change", args=[sync.connected_system_id])
    ).text
    assert ">Preview Full Sync</button>" in system_page
    assert ">Run Export</button>" in system_page and ">Preview Export</button>" not in system_page
    sync_page = runner.get(reverse("admin:connectors_runprofile_change", args=[sync.pk])).text
    assert ">Preview</button>" in sync_page
    export_page = runner.get(reverse("admin:connectors_runprofile_change", args=[export.pk])).text
    assert ">Run now</button>" in export_page and ">Preview</button>" not in export_page

    response = runner.post(reverse("admin:connectors_runprofile_preview", args=[sync.pk]))
    activity = Activity.objects.get()
    assert activity.preview and response["Location"] == f"/activities/{activity.pk}/"
    assert AuditEntry.objects.get(action="run_started").via == "admin"
    activities = runner.get(reverse("admin:connectors_activity_changelist")).text
    assert "Full Sync (preview)" in activities

    refused = runner.post(
        reverse("admin:connectors_runprofile_preview", args=[export.pk]), follow=True
    )
    assert "is an export run, which cannot be previewed" in text_of(refused)
    assert Activity.objects.count() == 1


# --------------------------------------------------------------------------- a preview's page


def test_a_preview_page_shows_what_the_sync_would_do_marked_as_a_preview(
    runner, estate, monkeypatch
):
    monkeypatch.setattr(Conf, "SYNC", True)  # django-q2 runs the queued preview in-process
    estate.write_people(PEOPLE)
    estate.run("HR", "Full Import")
    before = database_state()

    runner.post(preview_url(profile("HR", "Full Sync")))

    preview = Activity.objects.get(preview=True)
    assert preview.status == "complete", preview.message
    assert_unchanged(before, database_state(but=preview))
    response = runner.get(reverse("console:activity", args=[preview.pk]))
    assert response.status_code == 200
    text = text_of(response)
    assert "Preview — nothing was changed." in text
    assert f"Activity #{preview.pk} (preview)" in text
    assert "Changes it would make" in text and "Projected 3" in text
    # RPEIs: the projected MVOs have no page; the manager they would get is named.
    assert "what the run would do" in text
    assert text.count("new MVO (would be projected)") == 3
    assert "manager rule: HR people in — → Ada Lovelace (would be created)" in text
    # The pending exports it would create, with each attribute's before → after.
    assert "Pending exports it would create, change or remove" in text
    assert "Would be created: 3 · Would change: 0 · Would be removed: 0" in text
    target = f"uid=ghopper,ou=people,{estate.base}"
    assert f"{target} (would be created)" in text
    assert "cn — → Grace Hopper" in text
    assert "manager — → Ada Lovelace (would be created)" in text
    # The live page's last poll brings the pending exports in with the RPEIs.
    poll = runner.get(reverse("console:activity", args=[preview.pk]), headers=HTMX)
    assert 'id="previewed-exports" class="module jim-previewed-exports" hx-swap-oob="true"' in (
        poll.text
    )
    assert f"{target} (would be created)" in text_of(poll)


def test_a_preview_page_filters_and_pages_its_pending_exports_in_fixed_queries(
    runner, estate, monkeypatch
):
    estate.write_people(PEOPLE)
    estate.run("HR", "Full Import")
    preview = estate.run("HR", "Full Sync", preview=True)
    page = reverse("console:activity", args=[preview.pk])

    changed = text_of(runner.get(page, {"exports-effect": "changed"}))
    assert "No pending export would be created, changed or removed that matches" in changed
    created = runner.get(page, {"exports-effect": "created", "exports-change_type": "create"})
    assert created.context["previewed_exports"].paginator.count == 3
    assert runner.get(page, {"exports-effect": "gone"}).status_code == 400

    monkeypatch.setattr(previews, "EXPORTS_PER_PAGE", 1)
    first = runner.get(page, {"change_type": "projected"})
    assert first.context["previewed_exports"].paginator.num_pages == 3
    # The pages keep the RPEI list's filter, and the RPEI filter keeps theirs.
    assert "?change_type=projected&amp;exports_page=2" in first.text
    second = runner.get(page, {"change_type": "projected", "exports-effect": "created"})
    assert '<input type="hidden" name="exports-effect" value="created">' in second.text
    assert '<input type="hidden" name="change_type" value="projected">' in second.text

    monkeypatch.setattr(previews, "EXPORTS_PER_PAGE", 3)
    with CaptureQueriesContext(connection) as three:
        runner.get(page)
    monkeypatch.setattr(previews, "EXPORTS_PER_PAGE", 1)
    with CaptureQueriesContext(connection) as one:
        runner.get(page, {"exports_page": 2})  # Grace: a manager, as on the page of three
    assert len(three.captured_queries) == len(one.captured_queries)


def test_a_preview_page_shows_a_pending_export_it_would_change_before_and_after(runner, estate):
    synced(estate)
    estate.write_people([person("1001", "Ada", "King", "alovelace"), *PEOPLE[1:]])
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")  # sn → King, pending (not exported)
    estate.write_people([person("1001", "Ada", "Byron", "alovelace"), *PEOPLE[1:]])
    estate.run("HR", "Full Import")

    preview = estate.run("HR", "Delta Sync", preview=True)

    row = PreviewedExport.objects.get(activity=preview)
    assert (row.effect, row.change_type) == ("changed", "update")
    text = text_of(runner.get(reverse("console:activity", args=[preview.pk])))
    assert "sn rule: HR people in King → Byron" in text  # the RPEI
    assert "Would change update Directory" in text
    assert "sn Lovelace → Byron" in text  # the directory holds Lovelace; it would get Byron
    assert "Pending now, before this run" in text and "sn Lovelace → King" in text


def test_previews_are_not_last_runs_nor_run_history_nor_an_objects_history(runner, estate):
    synced(estate)
    real = Activity.objects.filter(run_profile=profile("HR", "Full Sync")).get()
    preview = estate.run("HR", "Full Sync", preview=True)
    what_if.what_if_mvo(ada(), "tester")

    [summary] = [s for s in runner.get(DASHBOARD).context["summaries"] if s.system.name == "HR"]
    [sync] = [p for p in summary.run_profiles if p.run_profile.name == "Full Sync"]
    assert sync.last_activity == real
    history = runner.get(reverse("console:run-profile-history", args=[real.run_profile_id]))
    assert [run.activity_id for run in history.context["runs"]] == [real.pk]
    mvo_page = runner.get(reverse("console:mvo", args=[ada().pk]))
    assert all(not item.activity.preview for item in mvo_page.context["history"])
    assert preview.pk not in {item.activity_id for item in mvo_page.context["history"]}


# --------------------------------------------------------------------------- what if


def test_what_if_on_an_mvo_shows_old_to_new_values_and_the_update_it_would_make(runner, estate):
    synced(estate)
    estate.write_people([person("1001", "Ada", "King", "alovelace"), *PEOPLE[1:]])
    estate.run("HR", "Full Import")
    page = runner.get(reverse("console:mvo", args=[ada().pk])).text
    assert "What would a sync do?" in page
    assert f'hx-post="{reverse("console:mvo-what-if", args=[ada().pk])}"' in page
    before = database_state()

    response = runner.post(reverse("console:mvo-what-if", args=[ada().pk]), headers=HTMX)

    preview = Activity.objects.get(preview=True)
    assert_unchanged(before, database_state(but=preview))
    assert response.status_code == 200
    text = text_of(response)
    assert "Preview — nothing was changed." in text
    assert "What if: sync metaverse object Ada Lovelace" in text
    assert "HR Attribute Flow 1001" in text
    assert "sn rule: HR people in Lovelace → King" in text
    assert "displayName rule: HR people in Ada Lovelace → Ada King" in text
    assert "Pending exports it would create, change or remove" in text
    target = f"uid=alovelace,ou=people,{estate.base}"
    assert f"Would be created update Directory {target}" in text
    assert "sn Lovelace → King" in text
    assert "Nothing would change" not in text
    assert f'href="/activities/{preview.pk}/"' in response.text

    # Without HTMX (or JavaScript): the outcome on a page of its own.
    again = runner.post(reverse("console:mvo-what-if", args=[ada().pk]))
    latest = Activity.objects.filter(preview=True).latest("pk")
    assert again["Location"] == f"/what-if/{latest.pk}/"
    own_page = text_of(runner.get(again["Location"]))
    assert "sn rule: HR people in Lovelace → King" in own_page
    assert "sn Lovelace → King" in own_page
    # And the preview's activity page leads there.
    activity_page = runner.get(reverse("console:activity", args=[latest.pk])).text
    assert f'href="/what-if/{latest.pk}/"' in activity_page


def test_what_if_says_plainly_when_nothing_would_change(runner, estate):
    synced(estate)
    before = database_state()

    response = runner.post(reverse("console:mvo-what-if", args=[ada().pk]), headers=HTMX)

    preview = Activity.objects.get(preview=True)
    assert_unchanged(before, database_state(but=preview))
    text = text_of(response)
    assert "Nothing would change." in text
    assert "What the sync would do" not in text


def test_what_if_on_a_cso_page_previews_its_projection(runner, estate):
    estate.write_people(PEOPLE)
    estate.run("HR", "Full Import")
    grace = ConnectorSpaceObject.objects.get(external_id="1002")
    cso_page = runner.get(reverse("admin:connectors_connectorspaceobject_change", args=[grace.pk]))
    assert f'action="{reverse("console:cso-what-if", args=[grace.pk])}"' in cso_page.text
    before = database_state()

    response = runner.post(reverse("console:cso-what-if", args=[grace.pk]), follow=True)

    preview = Activity.objects.get(preview=True)
    assert_unchanged(before, database_state(but=preview))
    assert response.redirect_chain == [(f"/what-if/{preview.pk}/", 302)]
    text = text_of(response)
    assert "What if: sync connector space object" in text
    assert "Projected" in text and "new MVO (would be projected)" in text
    assert "givenName rule: HR people in — → Grace" in text
    target = f"uid=ghopper,ou=people,{estate.base}"
    assert f"Would be created create Directory {target} (would be created)" in text
    assert "uid — → ghopper" in text


def test_what_if_while_a_sync_runs_names_the_run_in_the_way(runner, estate, monkeypatch):
    synced(estate)
    running = make_activity(profile("HR", "Full Sync"), status="in_progress")

    def busy(*args, **kwargs):
        raise AlreadyRunning(
            f"a sync is already running: activity #{running.pk} (HR — Full Sync)", running
        )

    monkeypatch.setattr(what_if, "what_if_mvo", busy)
    url = reverse("console:mvo-what-if", args=[ada().pk])

    inline = runner.post(url, headers=HTMX)
    assert inline.status_code == 200
    assert "Could not preview a sync of Ada Lovelace: a sync is already running" in text_of(inline)
    assert f'href="/activities/{running.pk}/"' in inline.text

    page = runner.post(url, follow=True)
    assert page.redirect_chain == [(f"/metaverse/{ada().pk}/", 302)]
    assert f"activity #{running.pk}" in text_of(page)
    assert f'href="/activities/{running.pk}/"' in page.text


def test_what_if_needs_the_permission_to_see_the_object_too(estate):
    estate.write_people(PEOPLE[:1])
    estate.run("HR", "Full Import")
    cso = ConnectorSpaceObject.objects.get()
    blind = User.objects.create_user("blind", password="x", is_staff=True)
    blind.user_permissions.add(Permission.objects.get(codename="run_runprofile"))
    client = Client()
    client.force_login(blind)

    assert client.post(reverse("console:cso-what-if", args=[cso.pk])).status_code == 403
    assert not Activity.objects.filter(preview=True).exists()


def test_what_if_of_a_cso_no_system_holds_says_why(runner, estate, monkeypatch):
    estate.write_people(PEOPLE[:1])
    estate.run("HR", "Full Import")
    cso = ConnectorSpaceObject.objects.get()

    def homeless(*args, **kwargs):
        raise ValueError("this object is in no connected system")

    monkeypatch.setattr(what_if, "what_if_cso", homeless)
    response = runner.post(reverse("console:cso-what-if", args=[cso.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse(
        "admin:connectors_connectorspaceobject_change", args=[cso.pk]
    )
    assert "this object is in no connected system" in text_of(response)


def test_the_what_if_page_is_only_for_what_if_previews(runner):
    hr = make_connected_system("HR", profiles=(RunProfileType.FULL_SYNC,))
    sync = RunProfile.objects.get(connected_system=hr)
    real = make_activity(sync)
    assert runner.get(reverse("console:what-if", args=[real.pk])).status_code == 404
    full_preview = make_activity(sync, preview=True)
    assert runner.get(reverse("console:what-if", args=[full_preview.pk])).status_code == 404


def test_a_preview_stopped_at_a_threshold_offers_no_run_again(client):
    """ "Run again, allowing these deletions" would run for real what a preview tried."""
    admin_user = User.objects.create_superuser("root", "root@example.org", "pw")
    client.force_login(admin_user)
    hr = make_connected_system("HR", profiles=(RunProfileType.FULL_SYNC,))
    stopped = make_activity(
        RunProfile.objects.get(connected_system=hr),
        status="failed",
        phase="done",
        message="over the deletion threshold",
        preview=True,
    )
    stopped.items.create(change_type="none", error_type="deletion_threshold_exceeded")

    assert "Run again" not in client.get(reverse("console:activity", args=[stopped.pk])).text
    admin_page = reverse("admin:connectors_activity_change", args=[stopped.pk])
    assert "Run again" not in client.get(admin_page).text
    refused = client.post(
        reverse("console:activity-override-threshold", args=[stopped.pk]), follow=True
    )
    assert f"Activity #{stopped.pk} is a preview, which changed nothing" in text_of(refused)
    assert Activity.objects.count() == 1
