"""The one way the tests build connected systems, CSV files and runs.

They build what ``jim apply`` would (systems, object types, attributes, run
profiles) with the ORM, and run profiles the way ``jim run`` does, so tests read as
"given this file, a full import does that". Every test that makes a connected system
with the ORM makes it here (the scenario tests that go through ``jim apply`` on
purpose use YAML instead); :mod:`tests.sync.scenario` builds its HR → Directory
configuration from these.

``attributes`` follow the YAML form: ``{"age": "integer", "managerId": {"type":
"reference", "references": "person"}, "groups": {"multivalued": True}}``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from connectors.choices import RunProfileType
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectedSystemAttribute,
    ConnectedSystemObjectType,
    ConnectorSpaceObject,
    RunProfile,
    RunProfileExecutionItem,
)
from runs.runner import execute, start_activity

#: The spec's run profile names, by type.
PROFILE_NAMES = {
    RunProfileType.FULL_IMPORT: "Full Import",
    RunProfileType.DELTA_IMPORT: "Delta Import",
    RunProfileType.FULL_SYNC: "Full Sync",
    RunProfileType.DELTA_SYNC: "Delta Sync",
    RunProfileType.EXPORT: "Export",
}

AttributeDeclarations = Mapping[str, str | Mapping[str, Any]]


def make_connected_system(
    name: str = "HR",
    connector: str = "csv",
    settings: dict[str, Any] | None = None,
    *,
    object_type: str | None = "person",
    external_id: str = "employeeId",
    secondary_external_id: str = "",
    container: str = "",
    attributes: AttributeDeclarations | None = None,
    profiles: Iterable[str] = (RunProfileType.FULL_IMPORT,),
    page_size: int | None = None,
    deletion_threshold: str = "",
    base_dir: Path | None = None,
    **fields: Any,
) -> ConnectedSystem:
    """A connected system with one object type (none when ``object_type`` is None), its
    declared attributes and run profiles; ``fields`` are other fields of the system
    (``secret_settings``, ``approval_mode``, ``export_max_retries``…)."""
    system = ConnectedSystem.objects.create(
        name=name,
        connector=connector,
        settings=settings or {},
        deletion_threshold=deletion_threshold,
        config_base_dir=str(base_dir) if base_dir else "",
        **fields,
    )
    if object_type is not None:
        add_object_type(
            system,
            object_type,
            external_id=external_id,
            secondary_external_id=secondary_external_id,
            container=container,
            attributes=attributes,
        )
    for profile_type in profiles:
        add_run_profile(system, profile_type, page_size=page_size)
    return system


def add_run_profile(
    system: ConnectedSystem,
    profile_type: str,
    name: str | None = None,
    *,
    page_size: int | None = None,
) -> RunProfile:
    """A run profile of ``system``, named as the spec names its type unless ``name``."""
    return RunProfile.objects.create(
        connected_system=system,
        name=name or PROFILE_NAMES[profile_type],
        profile_type=profile_type,
        page_size=page_size,
    )


def add_object_type(
    system: ConnectedSystem,
    name: str,
    *,
    external_id: str,
    secondary_external_id: str = "",
    container: str = "",
    attributes: AttributeDeclarations | None = None,
    selected: bool = True,
) -> ConnectedSystemObjectType:
    """An object type of ``system`` with its declared attributes."""
    object_type = ConnectedSystemObjectType.objects.create(
        connected_system=system,
        name=name,
        external_id_attribute=external_id,
        secondary_external_id_attribute=secondary_external_id,
        container=container,
        selected=selected,
    )
    for attribute, declaration in (attributes or {}).items():
        add_attribute(object_type, attribute, declaration)
    return object_type


def add_attribute(
    object_type: ConnectedSystemObjectType,
    name: str,
    declaration: str | Mapping[str, Any] = "text",
) -> ConnectedSystemAttribute:
    """An attribute of ``object_type``, declared as in YAML: a type, or a mapping of
    ``type``, ``multivalued``, ``references``, ``writability``."""
    spec = {"type": declaration} if isinstance(declaration, str) else dict(declaration)
    extra = {key: spec[key] for key in ("writability",) if key in spec}
    return ConnectedSystemAttribute.objects.create(
        object_type=object_type,
        name=name,
        data_type=spec.get("type", "text"),
        multivalued=bool(spec.get("multivalued", False)),
        references=spec.get("references", ""),
        **extra,
    )


def write_csv(
    path: Path,
    rows: Iterable[Mapping[str, Any]],
    *,
    header: list[str] | None = None,
    bom: bool = False,
    delimiter: str = ",",
) -> Path:
    """Write rows (dicts) under a header (default: the first row's keys)."""
    rows = list(rows)
    if header is None:
        header = list(rows[0]) if rows else ["employeeId"]
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if row.get(n) is None else row.get(n) for n in header])
    return path


def person(employee_id: Any, **attributes: Any) -> dict[str, Any]:
    """A row of the usual HR file."""
    row = {
        "employeeId": employee_id,
        "firstName": attributes.pop("firstName", "John"),
        "lastName": attributes.pop("lastName", f"Smith{employee_id}"),
        "department": attributes.pop("department", "Sales"),
    }
    row.update(attributes)
    return row


def people(count: int, start: int = 1001, **attributes: Any) -> list[dict[str, Any]]:
    return [person(str(start + n), **attributes) for n in range(count)]


def make_csv_system(
    tmp_path: Path,
    rows: Iterable[Mapping[str, Any]] | None = (),
    *,
    header: list[str] | None = None,
    name: str = "HR",
    file_name: str = "hr.csv",
    attributes: AttributeDeclarations | None = None,
    page_size: int | None = None,
    deletion_threshold: str = "",
    settings: dict[str, Any] | None = None,
    **options: Any,
) -> ConnectedSystem:
    """A CSV connected system reading ``tmp_path/file_name`` (written from ``rows``,
    unless ``rows`` is None and the file is written by the test)."""
    if rows is not None:
        write_csv(tmp_path / file_name, rows, header=header)
    return make_connected_system(
        name,
        "csv",
        {"path": file_name, **(settings or {})},
        attributes=attributes,
        page_size=page_size,
        deletion_threshold=deletion_threshold,
        base_dir=tmp_path,
        **options,
    )


def run(
    system: ConnectedSystem,
    profile: str = "Full Import",
    *,
    allow_deletions: bool = False,
    allow_changes: bool = False,
    preview: bool = False,
) -> Activity:
    """Run a profile of ``system`` to its end, as ``jim run`` does (``--preview``)."""
    run_profile = RunProfile.objects.get(connected_system=system, name=profile)
    activity = start_activity(
        system,
        run_profile,
        initiated_by_name="tests",
        allow_deletions=allow_deletions,
        allow_changes=allow_changes,
        preview=preview,
    )
    return execute(activity)


def csos(system: ConnectedSystem) -> dict[str, ConnectorSpaceObject]:
    """The system's CSOs by external id."""
    return {
        cso.external_id: cso
        for cso in ConnectorSpaceObject.objects.filter(connected_system=system).order_by("pk")
    }


def rpeis(activity: Activity) -> list[RunProfileExecutionItem]:
    return list(activity.items.order_by("pk"))


def errors(activity: Activity) -> list[tuple[str, str]]:
    """(error type, external id) of the activity's error RPEIs, in order."""
    return [(i.error_type, i.external_id) for i in rpeis(activity) if i.error_type]


def changes(activity: Activity) -> list[tuple[str, str]]:
    """(change type, external id) of the activity's change RPEIs, in order."""
    return [(i.change_type, i.external_id) for i in rpeis(activity) if not i.error_type]
