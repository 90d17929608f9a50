"""Export runs and what they sent, built directly, for the tests of undoing them
(:mod:`exports.undo`): a directory on the memory connector, finished export runs, CSOs,
and :class:`~exports.models.ExportedChange` rows."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.utils import timezone

from connectors.choices import ActivityStatus, RunProfileType
from connectors.models import Activity, ConnectedSystem, ConnectorSpaceObject
from exports.models import ExportedChange
from tests.builders import make_connected_system

BASE = "ou=people,dc=example,dc=org"


def make_directory() -> ConnectedSystem:
    """A directory whose deletes await approval; ``memory`` must be registered."""
    return make_connected_system(
        "Directory",
        "memory",
        object_type="inetOrgPerson",
        external_id="entryUUID",
        secondary_external_id="dn",
        attributes={
            "cn": "text",
            "title": "text",
            "entryUUID": "text",
            "member": {"type": "text", "multivalued": True},
            "modifyTimestamp": {"type": "text", "writability": "read_only"},
        },
        profiles=[RunProfileType.EXPORT],
        approval_mode="deletes",
    )


def user_in(name: str, role: str) -> User:
    user = User.objects.create_user(name)
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


def export_run(system: ConnectedSystem, **fields: Any) -> Activity:
    now = timezone.now()
    return Activity.objects.create(
        connected_system=system,
        profile_type=fields.pop("profile_type", RunProfileType.EXPORT),
        profile_name="Export",
        status=fields.pop("status", ActivityStatus.COMPLETE),
        finished_at=now,
        **fields,
    )


def cso(system: ConnectedSystem, uid: str, **attributes: list[Any]) -> ConnectorSpaceObject:
    dn = f"uid={uid},{BASE}"
    return ConnectorSpaceObject.objects.create(
        connected_system=system,
        object_type=system.object_types.get(),
        external_id=f"uuid-{uid}",
        secondary_external_id=dn,
        secondary_external_id_key=dn,
        attributes=attributes,
    )


def sent(
    activity: Activity,
    target: ConnectorSpaceObject | int,
    change_type: str,
    *changes: tuple[str, str, list[Any], list[Any]],
    **fields: Any,
) -> ExportedChange:
    """What ``activity`` sent to ``target`` (a CSO, or the id of one since deleted)."""
    is_cso = isinstance(target, ConnectorSpaceObject)
    return ExportedChange.objects.create(
        activity=activity,
        connected_system=activity.connected_system,
        cso_ref=target.pk if is_cso else target,
        object_type=activity.connected_system.object_types.get(),
        change_type=change_type,
        dn=fields.pop("dn", target.secondary_external_id if is_cso else ""),
        changes=[
            {"attribute": a, "change_type": k, "values": v, "previous_values": p}
            for a, k, v, p in changes
        ],
        exported_at=fields.pop("exported_at", timezone.now()),
        **fields,
    )
