"""The admin as the identity administrator's console: every page renders, filters and
search find the right rows, big changelists run a fixed number of queries, and what
the engine records (runs, CSOs, MVOs, audit entries) is read-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from connectors.choices import (
    ActivityStatus,
    CsoStatus,
    JoinType,
    ObjectChangeType,
    RpeiErrorType,
    RunProfileType,
)
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectedSystemAttribute,
    ConnectedSystemObjectType,
    ConnectorSpaceObject,
    RunProfile,
    RunProfileExecutionItem,
    Schedule,
    ScheduleStep,
)
from console.admin.metaverse import SyncRuleFlowForm, SyncRuleForm
from exports.choices import ApprovalAction, ApprovalState, PendingExportStatus
from exports.models import (
    ApprovalAuditEntry,
    ExportedChange,
    PendingExport,
    PendingExportAttributeChange,
)
from metaverse.models import (
    MetaverseAttribute,
    MetaverseObject,
    MetaverseObjectKey,
    MetaverseObjectType,
    SyncRule,
    SyncRuleFlow,
    SyncRuleJoin,
)
from tests.builders import add_run_profile, make_connected_system

pytestmark = pytest.mark.django_db

JIM_APPS = {"connectors", "metaverse", "exports"}


def admin_url(model: type[Model], view: str, *args: Any) -> str:
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


def listed(response: Any) -> list[Any]:
    """The objects a changelist response shows."""
    return list(response.context["cl"].result_list)


@dataclass
class World:
    """A small installation: HR (CSV) joined to a directory (LDAP) through the metaverse."""

    hr: ConnectedSystem
    directory: ConnectedSystem
    hr_person: ConnectedSystemObjectType
    dir_person: ConnectedSystemObjectType
    boss_cso: ConnectorSpaceObject
    worker_cso: ConnectorSpaceObject
    dir_cso: ConnectorSpaceObject
    boss: MetaverseObject
    worker: MetaverseObject
    import_rule: SyncRule
    export_rule: SyncRule
    activity: Activity
    export: PendingExport
    audit: ApprovalAuditEntry


def make_cso(system: ConnectedSystem, object_type: Any, external_id: str, **fields: Any) -> Any:
    mvo = fields.get("metaverse_object")
    fields.setdefault("join_type", JoinType.JOINED if mvo else JoinType.NOT_JOINED)
    return ConnectorSpaceObject.objects.create(
        connected_system=system, object_type=object_type, external_id=external_id, **fields
    )


@pytest.fixture
def world() -> World:
    person = MetaverseObjectType.objects.create(name="person")
    MetaverseAttribute.objects.create(object_type=person, name="employeeId")
    MetaverseAttribute.objects.create(object_type=person, name="manager", data_type="reference")
    hr = make_connected_system(
        "HR",
        "csv",
        {"path": "hr.csv"},
        attributes={
            "employeeId": "text",
            "managerId": {"type": "reference", "references": "person"},
        },
        profiles=(),
    )
    directory = make_connected_system(
        "Directory",
        "ldap",
        {"url": "ldap://127.0.0.1:3890", "base_dn": "dc=example,dc=org"},
        object_type="inetOrgPerson",
        external_id="entryUUID",
        secondary_external_id="dn",
        profiles=(),
        secret_settings={"bind_password": "never-shown"},
    )
    hr_person, dir_person = hr.object_types.get(), directory.object_types.get()
    import_rule = SyncRule.objects.create(
        name="HR people in",
        connected_system=hr,
        direction="import",
        cs_object_type=hr_person,
        mv_object_type=person,
        project=True,
    )
    SyncRuleJoin.objects.create(
        sync_rule=import_rule, cs_attribute="employeeId", mv_attribute="employeeId"
    )
    SyncRuleFlow.objects.create(sync_rule=import_rule, source="employeeId", target="employeeId")
    SyncRuleFlow.objects.create(
        sync_rule=import_rule, order=1, source="managerId", target="manager"
    )
    export_rule = SyncRule.objects.create(
        name="Directory people out",
        connected_system=directory,
        direction="export",
        cs_object_type=dir_person,
        mv_object_type=person,
        provision=True,
        dn_template="uid={{ mv.employeeId }},ou=people,dc=example,dc=org",
    )
    SyncRuleFlow.objects.create(
        sync_rule=export_rule, kind="expression", expression="mv.employeeId", target="uid"
    )
    sources = {"employeeId": {"system": hr.pk, "rule": import_rule.pk}}
    boss = MetaverseObject.objects.create(
        object_type=person,
        display_name="Alice Boss",
        attributes={"employeeId": ["1001"]},
        attribute_sources=sources,
    )
    worker = MetaverseObject.objects.create(
        object_type=person,
        display_name="Bob Worker",
        attributes={"employeeId": ["1002"], "manager": [boss.pk]},
        attribute_sources={**sources, "manager": {"system": hr.pk, "rule": import_rule.pk}},
    )
    MetaverseObjectKey.objects.create(metaverse_object=boss, attribute="employeeId", value="1001")
    MetaverseObjectKey.objects.create(metaverse_object=worker, attribute="employeeId", value="1002")
    boss_cso = make_cso(
        hr, hr_person, "1001", metaverse_object=boss, attributes={"employeeId": ["1001"]}
    )
    worker_cso = make_cso(
        hr,
        hr_person,
        "1002",
        metaverse_object=worker,
        join_type=JoinType.PROJECTED,
        attributes={"employeeId": ["1002"], "managerId": [boss_cso.pk]},
        unresolved_references={"buddyId": ["9999"]},
    )
    dir_cso = make_cso(
        directory,
        dir_person,
        "uuid-1002",
        secondary_external_id="uid=1002,ou=people,dc=example,dc=org",
        metaverse_object=worker,
        join_type=JoinType.PROVISIONED,
        status=CsoStatus.NORMAL,
    )
    profile = add_run_profile(hr, RunProfileType.FULL_IMPORT)
    add_run_profile(directory, RunProfileType.EXPORT)
    schedule = Schedule.objects.create(name="Every 15 minutes", cron="*/15 * * * *")
    ScheduleStep.objects.create(schedule=schedule, run_profile=profile)
    started = timezone.now() - timedelta(minutes=5)
    activity = Activity.objects.create(
        connected_system=hr,
        run_profile=profile,
        profile_type=profile.profile_type,
        profile_name=profile.name,
        status=ActivityStatus.COMPLETE_WITH_ERRORS,
        started_at=started,
        finished_at=started + timedelta(seconds=95),
        objects_processed=3,
        objects_total=3,
        error_count=1,
    )
    RunProfileExecutionItem.objects.bulk_create(
        [
            RunProfileExecutionItem(
                activity=activity, change_type="added", external_id="1001", cs_object=boss_cso
            ),
            RunProfileExecutionItem(
                activity=activity, change_type="added", external_id="1002", cs_object=worker_cso
            ),
            RunProfileExecutionItem(
                activity=activity,
                error_type=RpeiErrorType.INVALID_DATA,
                external_id="1003",
                message="hr.csv line 4: age 'x' is not an integer",
            ),
        ]
    )
    export = PendingExport.objects.create(
        connected_system=directory,
        cs_object=dir_cso,
        metaverse_object=worker,
        sync_rule=export_rule,
        change_type="update",
        approval=ApprovalState.AWAITING_APPROVAL,
    )
    PendingExportAttributeChange.objects.create(
        pending_export=export,
        attribute="title",
        change_type="update",
        previous_values=["Clerk"],
        values=["Manager"],
    )
    audit = ApprovalAuditEntry.objects.create(
        pending_export=export,
        pending_export_ref=export.pk,
        connected_system_name="Directory",
        change_type="update",
        target=dir_cso.secondary_external_id,
        action=ApprovalAction.REJECTED,
        username="approver",
        reason="Not yet",
    )
    ExportedChange.objects.create(
        activity=activity,
        connected_system=directory,
        cso_ref=dir_cso.pk,
        object_type=dir_person,
        change_type="update",
        dn=dir_cso.secondary_external_id,
        changes=[
            {
                "attribute": "title",
                "change_type": "update",
                "values": ["Manager"],
                "previous_values": ["Clerk"],
            }
        ],
        exported_at=timezone.now(),
    )
    return World(
        hr=hr,
        directory=directory,
        hr_person=hr_person,
        dir_person=dir_person,
        boss_cso=boss_cso,
        worker_cso=worker_cso,
        dir_cso=dir_cso,
        boss=boss,
        worker=worker,
        import_rule=import_rule,
        export_rule=export_rule,
        activity=activity,
        export=export,
        audit=audit,
    )


def jim_models() -> list[type[Model]]:
    return [model for model in admin.site._registry if model._meta.app_label in JIM_APPS]


# --------------------------------------------------------------------------- every page


def test_every_jim_model_has_admin_pages_or_is_edited_inline() -> None:
    from django.apps import apps

    models = {m for label in JIM_APPS for m in apps.get_app_config(label).get_models()}
    inline = {i.model for a in admin.site._registry.values() for i in a.inlines}
    missing = {m._meta.label for m in models - set(jim_models()) - inline}
    assert not missing


def test_every_changelist_and_change_page_renders(admin_client: Any, world: World) -> None:
    for model in jim_models():
        response = admin_client.get(admin_url(model, "changelist"))
        assert response.status_code == 200, model._meta.label
        obj = model._default_manager.order_by("pk").first()
        assert obj is not None, f"the world has no {model._meta.label}"
        response = admin_client.get(admin_url(model, "change", obj.pk))
        assert response.status_code == 200, model._meta.label
        response = admin_client.get(admin_url(model, "history", obj.pk))
        assert response.status_code == 200, model._meta.label


def test_a_change_page_of_no_object_is_not_found_not_an_error(
    admin_client: Any, world: World
) -> None:
    # A path that is not an id (a browser resolving a relative link against a change
    # page, say) reads as "doesn't exist", like any id the admin cannot find.
    for model in jim_models():
        obj = model._default_manager.order_by("pk").first()
        url = admin_url(model, "change", obj.pk) + "widgets.css/change/"
        response = admin_client.get(url)
        assert response.status_code == 302, f"{model._meta.label}: {response.status_code}"
        response = admin_client.get(admin_url(model, "change", "not-an-id"))
        assert response.status_code == 302, f"{model._meta.label}: {response.status_code}"


def test_configuration_add_pages_render(admin_client: Any, world: World) -> None:
    for model in (
        ConnectedSystem,
        ConnectedSystemObjectType,
        ConnectedSystemAttribute,
        RunProfile,
        Schedule,
        MetaverseObjectType,
        MetaverseAttribute,
        SyncRule,
    ):
        assert admin_client.get(admin_url(model, "add")).status_code == 200, model


# --------------------------------------------------------------------------- read-only records

READ_ONLY_MODELS = (
    Activity,
    RunProfileExecutionItem,
    ConnectorSpaceObject,
    MetaverseObject,
    MetaverseObjectKey,
    PendingExport,
    PendingExportAttributeChange,
    ApprovalAuditEntry,
)


@pytest.mark.parametrize("model", READ_ONLY_MODELS, ids=lambda m: m.__name__)
def test_engine_records_cannot_be_added_changed_or_deleted(
    admin_client: Any, world: World, model: type[Model]
) -> None:
    obj = model._default_manager.order_by("pk").first()
    assert admin_client.get(admin_url(model, "add")).status_code == 403
    assert admin_client.post(admin_url(model, "add"), {}).status_code == 403
    assert admin_client.post(admin_url(model, "change", obj.pk), {}).status_code == 403
    assert admin_client.get(admin_url(model, "delete", obj.pk)).status_code == 403
    assert admin_client.post(admin_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert model._default_manager.filter(pk=obj.pk).exists()
    page = admin_client.get(admin_url(model, "change", obj.pk)).content.decode()
    assert 'name="_save"' not in page


def test_audit_entries_are_read_only_for_a_superuser(admin_client: Any, world: World) -> None:
    model_admin = admin.site._registry[ApprovalAuditEntry]
    request = admin_client.get(admin_url(ApprovalAuditEntry, "changelist")).wsgi_request
    assert request.user.is_superuser
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, world.audit)
    assert not model_admin.has_delete_permission(request, world.audit)
    assert model_admin.has_view_permission(request, world.audit)
    assert model_admin.get_actions(request) == {}


def test_a_finished_activity_cannot_be_edited(admin_client: Any, world: World) -> None:
    url = admin_url(Activity, "change", world.activity.pk)
    response = admin_client.post(url, {"status": "complete", "error_count": "0"})
    assert response.status_code == 403
    world.activity.refresh_from_db()
    assert world.activity.status == ActivityStatus.COMPLETE_WITH_ERRORS
    assert world.activity.error_count == 1


# --------------------------------------------------------------------------- CSOs


def test_cso_changelist_filters_by_system_type_status_and_join(
    admin_client: Any, world: World
) -> None:
    url = admin_url(ConnectorSpaceObject, "changelist")
    by_system = admin_client.get(url, {"connected_system__id__exact": world.directory.pk})
    assert listed(by_system) == [world.dir_cso]
    by_type = admin_client.get(url, {"object_type__id__exact": world.hr_person.pk})
    assert set(listed(by_type)) == {world.boss_cso, world.worker_cso}
    by_join = admin_client.get(url, {"join_type__exact": JoinType.PROJECTED})
    assert listed(by_join) == [world.worker_cso]
    by_status = admin_client.get(url, {"status__exact": CsoStatus.OBSOLETE})
    assert listed(by_status) == []


def test_cso_object_type_filter_names_types_with_their_system(
    admin_client: Any, world: World
) -> None:
    url = admin_url(ConnectorSpaceObject, "changelist")
    page = admin_client.get(url).content.decode()
    assert "HR/person" in page
    assert "Directory/inetOrgPerson" in page
    narrowed = admin_client.get(url, {"connected_system__id__exact": world.hr.pk})
    assert "Directory/inetOrgPerson" not in narrowed.content.decode()


def test_cso_search_by_external_id_and_dn(admin_client: Any, world: World) -> None:
    url = admin_url(ConnectorSpaceObject, "changelist")
    assert listed(admin_client.get(url, {"q": "1001"})) == [world.boss_cso]
    assert listed(admin_client.get(url, {"q": "uid=1002,ou=people"})) == [world.dir_cso]


def test_cso_changelist_shows_its_columns(admin_client: Any, world: World) -> None:
    page = admin_client.get(admin_url(ConnectorSpaceObject, "changelist")).content.decode()
    assert "uid=1002,ou=people,dc=example,dc=org" in page
    assert admin_url(MetaverseObject, "change", world.worker.pk) in page
    assert "Bob Worker" in page
    assert "inetOrgPerson" in page


def test_cso_page_shows_attributes_references_and_pending_export(
    admin_client: Any, world: World
) -> None:
    page = admin_client.get(
        admin_url(ConnectorSpaceObject, "change", world.worker_cso.pk)
    ).content.decode()
    assert "managerId" in page
    # The reference value (a CSO id) links to the referenced CSO.
    assert admin_url(ConnectorSpaceObject, "change", world.boss_cso.pk) in page
    assert "buddyId" in page and "9999" in page  # unresolved reference
    assert f"cs_object__id__exact={world.worker_cso.pk}" in page  # its RPEIs
    dir_page = admin_client.get(
        admin_url(ConnectorSpaceObject, "change", world.dir_cso.pk)
    ).content.decode()
    assert admin_url(PendingExport, "change", world.export.pk) in dir_page


def test_cso_changelist_runs_a_fixed_number_of_queries(admin_client: Any, world: World) -> None:
    url = admin_url(ConnectorSpaceObject, "changelist")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured)

    before = queries()
    person = world.boss.object_type
    for n in range(50):
        mvo = MetaverseObject.objects.create(object_type=person, display_name=f"P{n}")
        make_cso(world.hr, world.hr_person, f"x{n}", metaverse_object=mvo)
    assert queries() == before


@pytest.mark.parametrize(
    ("model", "grow"),
    [
        (RunProfileExecutionItem, "rpeis"),
        (MetaverseObject, "mvos"),
        (PendingExport, "exports"),
        (Activity, "activities"),
        (ConnectedSystem, "systems"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_big_changelists_run_a_fixed_number_of_queries(
    admin_client: Any, world: World, model: type[Model], grow: str
) -> None:
    url = admin_url(model, "changelist")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured)

    before = queries()
    for n in range(30):
        mvo = MetaverseObject.objects.create(object_type=world.boss.object_type)
        cso = make_cso(world.directory, world.dir_person, f"g{n}", metaverse_object=mvo)
        if grow == "rpeis":
            RunProfileExecutionItem.objects.create(
                activity=world.activity, cs_object=cso, metaverse_object=mvo, external_id=f"g{n}"
            )
        elif grow == "exports":
            PendingExport.objects.create(
                connected_system=world.directory, cs_object=cso, change_type="create"
            )
        elif grow == "activities":
            Activity.objects.create(
                connected_system=world.directory, profile_type="export", profile_name="Export"
            )
        elif grow == "systems":
            make_connected_system(f"S{n}", object_type=None, profiles=())
    assert queries() == before


# --------------------------------------------------------------------------- MVOs


def test_mvo_filters_and_search(admin_client: Any, world: World) -> None:
    url = admin_url(MetaverseObject, "changelist")
    by_type = admin_client.get(url, {"object_type__id__exact": world.boss.object_type_id})
    assert set(listed(by_type)) == {world.boss, world.worker}
    assert listed(admin_client.get(url, {"status__exact": "deletion_scheduled"})) == []
    assert listed(admin_client.get(url, {"q": "alice"})) == [world.boss]
    # An exact join value (employee id) finds the MVO without a display-name match.
    assert listed(admin_client.get(url, {"q": " 1002 "})) == [world.worker]
    assert listed(admin_client.get(url, {"q": str(world.boss.pk)}))[0] == world.boss


def test_mvo_page_shows_attribute_sources_and_joined_csos(admin_client: Any, world: World) -> None:
    response = admin_client.get(admin_url(MetaverseObject, "change", world.worker.pk))
    page = response.content.decode()
    assert admin_url(ConnectedSystem, "change", world.hr.pk) in page
    assert admin_url(SyncRule, "change", world.import_rule.pk) in page
    assert "Alice Boss" in page  # the manager reference, by name
    joined = response.context["inline_admin_formsets"][0].formset.queryset
    assert set(joined) == {world.worker_cso, world.dir_cso}
    assert "uid=1002,ou=people,dc=example,dc=org" in page
    assert admin_url(ConnectorSpaceObject, "change", world.dir_cso.pk) in page


def test_mvo_page_queries_do_not_grow_with_joined_csos(admin_client: Any, world: World) -> None:
    url = admin_url(MetaverseObject, "change", world.worker.pk)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured)

    before = queries()
    for n in range(5):
        system = make_connected_system(f"Extra {n}", external_id="id", profiles=())
        make_cso(system, system.object_types.get(), f"e{n}", metaverse_object=world.worker)
    assert queries() == before


# --------------------------------------------------------------------------- activities and RPEIs


def test_activity_changelist_columns_and_filters(admin_client: Any, world: World) -> None:
    url = admin_url(Activity, "changelist")
    response = admin_client.get(url)
    page = response.content.decode()
    assert "1 min 35 s" in page  # duration
    assert "3 / 3" in page  # processed
    assert listed(admin_client.get(url, {"status__exact": "failed"})) == []
    assert listed(admin_client.get(url, {"profile_type__exact": "full_import"})) == [world.activity]
    assert listed(admin_client.get(url, {"connected_system__id__exact": world.directory.pk})) == []


def test_activity_page_counts_rpeis_by_change_and_error_type(
    admin_client: Any, world: World
) -> None:
    page = admin_client.get(admin_url(Activity, "change", world.activity.pk)).content.decode()
    assert "Added" in page and "Invalid Data" in page
    assert f"activity__id__exact={world.activity.pk}" in page
    assert "hr.csv line 4" not in page  # RPEIs are counted, never listed inline
    assert reverse("console:activity", args=[world.activity.pk]) in page


def test_rpei_changelist_filtered_by_activity_and_types(admin_client: Any, world: World) -> None:
    other = Activity.objects.create(
        connected_system=world.hr, profile_type="full_sync", profile_name="Full Sync"
    )
    RunProfileExecutionItem.objects.create(activity=other, change_type="projected")
    url = admin_url(RunProfileExecutionItem, "changelist")
    mine = admin_client.get(url, {"activity__id__exact": world.activity.pk})
    assert len(listed(mine)) == 3
    assert str(world.activity) in mine.content.decode()  # the chosen activity is named
    errors = admin_client.get(
        url, {"activity__id__exact": world.activity.pk, "error_type__exact": "invalid_data"}
    )
    assert [i.external_id for i in listed(errors)] == ["1003"]
    added = admin_client.get(url, {"change_type__exact": ObjectChangeType.ADDED})
    assert {i.external_id for i in listed(added)} == {"1001", "1002"}
    assert [i.external_id for i in listed(admin_client.get(url, {"q": "not an integer"}))] == [
        "1003"
    ]
    assert listed(admin_client.get(url, {"activity__id__exact": "nonsense"})) == []


# --------------------------------------------------------------------------- pending exports


def test_pending_export_filters_and_page(admin_client: Any, world: World) -> None:
    url = admin_url(PendingExport, "changelist")
    for params in (
        {"connected_system__id__exact": world.directory.pk},
        {"status__exact": PendingExportStatus.PENDING},
        {"change_type__exact": "update"},
        {"approval__exact": ApprovalState.AWAITING_APPROVAL},
        {"q": "uid=1002"},
    ):
        assert listed(admin_client.get(url, params)) == [world.export], params
    assert listed(admin_client.get(url, {"connected_system__id__exact": world.hr.pk})) == []
    page = admin_client.get(admin_url(PendingExport, "change", world.export.pk)).content.decode()
    assert '<span class="jim-old">Clerk</span>' in page  # the story: title old → new
    assert '<span class="jim-new">Manager</span>' in page
    assert "title" in page


def test_a_change_of_many_values_is_shortened_on_the_export_page(
    admin_client: Any, world: World
) -> None:
    members = [f"uid=u{n},ou=people,dc=example,dc=org" for n in range(1000)]
    change = PendingExportAttributeChange.objects.create(
        pending_export=world.export, attribute="member", change_type="add", values=members
    )
    page = admin_client.get(admin_url(PendingExport, "change", world.export.pk)).content.decode()
    assert "uid=u0,ou=people" in page
    assert "uid=u999,ou=people" not in page
    assert "+980 more" in page
    full = admin_client.get(admin_url(PendingExportAttributeChange, "change", change.pk))
    assert "uid=u999,ou=people" in full.content.decode()


# --------------------------------------------------------------------------- configuration


def test_sync_rule_changelist_filters(admin_client: Any, world: World) -> None:
    url = admin_url(SyncRule, "changelist")
    assert listed(admin_client.get(url, {"direction__exact": "export"})) == [world.export_rule]
    assert listed(admin_client.get(url, {"connected_system__id__exact": world.hr.pk})) == [
        world.import_rule
    ]
    person = world.boss.object_type_id
    assert len(listed(admin_client.get(url, {"mv_object_type__id__exact": person}))) == 2


def test_sync_rule_page_lists_joins_and_flows_in_order(admin_client: Any, world: World) -> None:
    response = admin_client.get(admin_url(SyncRule, "change", world.import_rule.pk))
    joins, flows = (f.formset for f in response.context["inline_admin_formsets"])
    assert [f.instance.target for f in flows.forms] == ["employeeId", "manager"]
    assert [f.instance.cs_attribute for f in joins.forms] == ["employeeId"]


def _rule_data(world: World, **changes: Any) -> dict[str, Any]:
    data = {
        "name": "New rule",
        "connected_system": world.hr.pk,
        "direction": "import",
        "cs_object_type": world.hr_person.pk,
        "mv_object_type": world.boss.object_type_id,
        "precedence": 0,
        "enabled": True,
        "deprovision_action": "disconnect",
    }
    data.update(changes)
    return data


def test_sync_rule_form_rejects_another_systems_object_type(world: World) -> None:
    form = SyncRuleForm(_rule_data(world, cs_object_type=world.dir_person.pk))
    assert not form.is_valid()
    assert "belongs to another connected system" in str(form.errors["cs_object_type"])


def test_sync_rule_form_rejects_expressions_that_do_not_parse(world: World) -> None:
    form = SyncRuleForm(_rule_data(world, scope="cs.status ==", dn_template="{{ mv.x"))
    assert not form.is_valid()
    assert "scope" in form.errors and "dn_template" in form.errors
    assert SyncRuleForm(_rule_data(world, scope="cs.status != 'Terminated'")).is_valid()


def test_sync_rule_form_rejects_provisioning_import_rule(world: World) -> None:
    form = SyncRuleForm(_rule_data(world, provision=True))
    assert not form.is_valid()
    assert "provision" in form.errors


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "direct", "source": "", "target": "mail"}, "source"),
        ({"kind": "expression", "expression": "", "target": "mail"}, "expression"),
        ({"kind": "expression", "expression": "cs.a ~", "target": "mail"}, "expression"),
    ],
)
def test_flow_form_rejects_incomplete_flows(data: dict[str, str], field: str) -> None:
    form = SyncRuleFlowForm({"order": 0, **data})
    assert not form.is_valid()
    assert field in form.errors


def test_connected_system_changelist_counts_objects(admin_client: Any, world: World) -> None:
    response = admin_client.get(admin_url(ConnectedSystem, "changelist"))
    rows = {system.name: system for system in listed(response)}
    assert rows["HR"].cso_total == 2
    assert rows["Directory"].cso_total == 1
    assert rows["Directory"].pending_export_total == 1
    ordered = admin_client.get(admin_url(ConnectedSystem, "changelist"), {"o": "-4"})
    assert ordered.status_code == 200
    assert [s.name for s in listed(ordered)] == ["HR", "Directory"]


def test_deleting_a_system_confirms_with_counts(admin_client: Any, world: World) -> None:
    page = admin_client.get(admin_url(ConnectedSystem, "delete", world.hr.pk)).content.decode()
    assert "2 connector space objects" in page
    assert "Are you sure" in page
    assert "1001" not in page  # CSOs are counted, not listed
    response = admin_client.post(admin_url(ConnectedSystem, "delete", world.hr.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not ConnectedSystem.objects.filter(pk=world.hr.pk).exists()
    assert not ConnectorSpaceObject.objects.filter(connected_system_id=world.hr.pk).exists()


def test_a_metaverse_type_with_objects_cannot_be_deleted(admin_client: Any, world: World) -> None:
    person = world.boss.object_type
    page = admin_client.get(admin_url(MetaverseObjectType, "delete", person.pk)).content.decode()
    assert "2 metaverse objects" in page
    admin_client.post(admin_url(MetaverseObjectType, "delete", person.pk), {"post": "yes"})
    assert MetaverseObjectType.objects.filter(pk=person.pk).exists()
