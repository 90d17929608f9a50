"""A small HR → Directory configuration, built with the ORM, for sync tests.

It mirrors the spec's example (examples/hr-to-ldap.yaml): HR people project persons,
the Directory joins pre-existing entries on uid, and an export rule provisions active
people as inetOrgPerson entries with a DN template. CSOs are written directly, as an
import would leave them, so these tests exercise sync alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.activity import ActivityRecorder, RunFailed
from connectors.choices import ActivityStatus, CsoStatus, RunProfileType
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectedSystemObjectType,
    ConnectorSpaceObject,
    RunProfileExecutionItem,
)
from exports.models import PendingExport
from metaverse.models import (
    MetaverseAttribute,
    MetaverseObject,
    MetaverseObjectType,
    SyncRule,
    SyncRuleFlow,
    SyncRuleJoin,
)
from metaverse.sync import run_delta_sync, run_full_sync
from tests.builders import make_connected_system

PERSON_ATTRIBUTES = {
    "employeeId": ("text", False),
    "accountName": ("text", False),
    "givenName": ("text", False),
    "sn": ("text", False),
    "displayName": ("text", False),
    "mail": ("text", False),
    "department": ("text", False),
    "employeeStatus": ("text", False),
    "manager": ("reference", False),
    "phone": ("text", False),
}


@dataclass
class Scenario:
    hr: ConnectedSystem
    hr_person: ConnectedSystemObjectType
    directory: ConnectedSystem
    dir_person: ConnectedSystemObjectType
    person: MetaverseObjectType
    hr_in: SyncRule
    dir_join: SyncRule
    dir_out: SyncRule

    # -- CSOs as an import leaves them ---------------------------------------------

    def hr_row(self, employee_id: str, **attributes: Any) -> ConnectorSpaceObject:
        values = {
            "employeeId": [employee_id],
            "firstName": [attributes.pop("firstName", "John")],
            "lastName": [attributes.pop("lastName", "Smith")],
            "accountName": [attributes.pop("accountName", f"u{employee_id}")],
            "status": [attributes.pop("status", "Active")],
        }
        for name, value in attributes.items():
            values[name] = value if isinstance(value, list) else [value]
        values = {k: v for k, v in values.items() if v not in ([None], [])}
        cso, _ = ConnectorSpaceObject.objects.update_or_create(
            connected_system=self.hr,
            external_id=employee_id,
            defaults={"object_type": self.hr_person, "attributes": values, "sync_pending": True},
        )
        return cso

    def update_hr(self, employee_id: str, **changes: Any) -> ConnectorSpaceObject:
        cso = ConnectorSpaceObject.objects.get(connected_system=self.hr, external_id=employee_id)
        for name, value in changes.items():
            if value is None:
                cso.attributes.pop(name, None)
            else:
                cso.attributes[name] = value if isinstance(value, list) else [value]
        cso.sync_pending = True
        cso.save()
        return cso

    def obsolete_hr(self, employee_id: str) -> None:
        ConnectorSpaceObject.objects.filter(
            connected_system=self.hr, external_id=employee_id
        ).update(status="obsolete", sync_pending=True)

    def directory_entry(self, uid: str, dn: str | None = None, **attributes: Any):
        dn = dn or f"uid={uid},ou=people,dc=example,dc=org"
        values = {
            "uid": [uid],
            **{k: v if isinstance(v, list) else [v] for k, v in attributes.items()},
        }
        return ConnectorSpaceObject.objects.create(
            connected_system=self.directory,
            object_type=self.dir_person,
            external_id=f"uuid-{uid}",
            secondary_external_id=dn,
            secondary_external_id_key=dn.lower(),
            attributes=values,
            sync_pending=True,
        )

    # -- running ------------------------------------------------------------------

    def sync(self, system: ConnectedSystem | None = None, *, delta: bool = False) -> Activity:
        profile = RunProfileType.DELTA_SYNC if delta else RunProfileType.FULL_SYNC
        return run_processor(system or self.hr, profile, run_delta_sync if delta else run_full_sync)

    # -- reading --------------------------------------------------------------------

    def mvo_of(self, employee_id: str) -> MetaverseObject:
        cso = ConnectorSpaceObject.objects.get(connected_system=self.hr, external_id=employee_id)
        return MetaverseObject.objects.get(pk=cso.metaverse_object_id)

    def dir_cso_of(self, employee_id: str) -> ConnectorSpaceObject:
        return ConnectorSpaceObject.objects.get(
            connected_system=self.directory, metaverse_object=self.mvo_of(employee_id)
        )

    def export_of(self, employee_id: str) -> PendingExport:
        return PendingExport.objects.get(cs_object=self.dir_cso_of(employee_id))


def run_processor(system: ConnectedSystem, profile: str, processor: Any) -> Activity:
    """Run a processor function as an activity, the way the runner does, minus locking."""
    activity = Activity.objects.create(
        connected_system=system,
        profile_type=profile,
        profile_name=profile,
        status=ActivityStatus.IN_PROGRESS,
    )
    recorder = ActivityRecorder(activity)
    status = ActivityStatus.COMPLETE
    try:
        processor(activity, recorder)
    except RunFailed as exc:
        status = ActivityStatus.FAILED
        Activity.objects.filter(pk=activity.pk).update(message=str(exc))
    recorder.flush()
    Activity.objects.filter(pk=activity.pk).update(status=status)
    activity.refresh_from_db()
    return activity


def provisioned(
    scenario: Scenario, employee_id: str = "1001", account: str = "jsmith"
) -> ConnectorSpaceObject:
    """Sync a joiner, then pretend export and confirming import happened."""
    scenario.hr_row(employee_id, accountName=account)
    scenario.sync()
    target = scenario.dir_cso_of(employee_id)
    pe = PendingExport.objects.get(cs_object=target)
    target.attributes = {c.attribute: c.values for c in pe.attribute_changes.all()}
    target.status = CsoStatus.NORMAL
    target.external_id = f"uuid-{account}"
    target.sync_pending = False
    target.save()
    pe.delete()
    return target


def second_source(scenario: Scenario, precedence: int) -> tuple[ConnectedSystem, SyncRule]:
    """A phone book CSV that also flows department and phone, joined on employeeId."""
    book = make_connected_system(
        "Phonebook",
        "csv",
        {"path": "p.csv"},
        object_type="entry",
        external_id="id",
        profiles=(),
    )
    book_type = book.object_types.get()
    rule = SyncRule.objects.create(
        name="Phonebook in",
        connected_system=book,
        direction="import",
        cs_object_type=book_type,
        mv_object_type=scenario.person,
        precedence=precedence,
    )
    SyncRuleJoin.objects.create(sync_rule=rule, cs_attribute="id", mv_attribute="employeeId")
    SyncRuleFlow.objects.create(sync_rule=rule, order=0, target="department", source="dept")
    SyncRuleFlow.objects.create(sync_rule=rule, order=1, target="phone", source="phone")
    ConnectorSpaceObject.objects.create(
        connected_system=book,
        object_type=book_type,
        external_id="1001",
        attributes={"id": ["1001"], "dept": ["Phonebook dept"], "phone": ["555"]},
    )
    return book, rule


def changes(pe: PendingExport) -> dict[tuple[str, str], list[Any]]:
    return {(c.attribute, c.change_type): c.values for c in pe.attribute_changes.all()}


def rpeis(activity: Activity) -> list[RunProfileExecutionItem]:
    return list(activity.items.order_by("pk"))


def build_scenario(**directory_fields: Any) -> Scenario:
    """The HR → Directory configuration; ``directory_fields`` are fields of the
    Directory system: ``connector`` (``ldap`` unless given), ``approval_mode``…"""
    hr = make_connected_system(
        "HR",
        "csv",
        {"path": "hr.csv"},
        attributes={
            **dict.fromkeys(
                ("employeeId", "firstName", "lastName", "accountName", "status", "department"),
                "text",
            ),
            "managerId": {"type": "reference", "references": "person"},
        },
        profiles=(),
    )
    directory = make_connected_system(
        "Directory",
        directory_fields.pop("connector", "ldap"),
        {"url": "ldap://127.0.0.1:1", "base_dn": "dc=example,dc=org"},
        object_type="inetOrgPerson",
        external_id="entryUUID",
        secondary_external_id="dn",
        container="ou=people,dc=example,dc=org",
        attributes={
            **dict.fromkeys(("uid", "cn", "sn", "mail", "telephoneNumber"), "text"),
            "manager": "reference",
        },
        profiles=(),
        **directory_fields,
    )
    hr_person, dir_person = hr.object_types.get(), directory.object_types.get()
    person = MetaverseObjectType.objects.create(name="person")
    for name, (data_type, multivalued) in PERSON_ATTRIBUTES.items():
        MetaverseAttribute.objects.create(
            object_type=person, name=name, data_type=data_type, multivalued=multivalued
        )
    hr_in = SyncRule.objects.create(
        name="HR people in",
        connected_system=hr,
        direction="import",
        cs_object_type=hr_person,
        mv_object_type=person,
        precedence=0,
        project=True,
    )
    SyncRuleJoin.objects.create(
        sync_rule=hr_in, cs_attribute="employeeId", mv_attribute="employeeId"
    )
    for order, (target, source) in enumerate(
        [
            ("employeeId", "employeeId"),
            ("accountName", "accountName"),
            ("givenName", "firstName"),
            ("sn", "lastName"),
            ("employeeStatus", "status"),
            ("department", "department"),
            ("manager", "managerId"),
        ]
    ):
        SyncRuleFlow.objects.create(sync_rule=hr_in, order=order, target=target, source=source)
    SyncRuleFlow.objects.create(
        sync_rule=hr_in,
        order=10,
        target="displayName",
        kind="expression",
        expression="cs.firstName ~ ' ' ~ cs.lastName",
    )
    dir_join = SyncRule.objects.create(
        name="Directory people join",
        connected_system=directory,
        direction="import",
        cs_object_type=dir_person,
        mv_object_type=person,
        precedence=1,
    )
    SyncRuleJoin.objects.create(sync_rule=dir_join, cs_attribute="uid", mv_attribute="accountName")
    dir_out = SyncRule.objects.create(
        name="Directory people out",
        connected_system=directory,
        direction="export",
        cs_object_type=dir_person,
        mv_object_type=person,
        precedence=2,
        scope="mv.employeeStatus == 'Active'",
        provision=True,
        dn_template="uid={{ mv.accountName }},ou=people,dc=example,dc=org",
        deprovision_action="delete",
        enforce_state=True,
    )
    for order, (target, source) in enumerate(
        [("uid", "accountName"), ("cn", "displayName"), ("sn", "sn"), ("manager", "manager")]
    ):
        SyncRuleFlow.objects.create(sync_rule=dir_out, order=order, target=target, source=source)
    SyncRuleFlow.objects.create(
        sync_rule=dir_out,
        order=9,
        target="mail",
        kind="expression",
        expression="(mv.givenName ~ '.' ~ mv.sn) | lower ~ '@example.org'",
    )
    return Scenario(hr, hr_person, directory, dir_person, person, hr_in, dir_join, dir_out)
