"""Every resource of the API: its list URL and the model behind it."""

from __future__ import annotations

from django.db.models import Model

from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectedSystemObjectType,
    ConnectorSpaceObject,
    RunProfile,
    RunProfileExecutionItem,
    Schedule,
)
from exports.models import ApprovalAuditEntry, PendingExport
from metaverse.models import MetaverseObject, MetaverseObjectType, SyncRule

API = "/api/v1/"

#: list URL → model
RESOURCES: dict[str, type[Model]] = {
    f"{API}connected-systems/": ConnectedSystem,
    f"{API}object-types/": ConnectedSystemObjectType,
    f"{API}metaverse-object-types/": MetaverseObjectType,
    f"{API}sync-rules/": SyncRule,
    f"{API}run-profiles/": RunProfile,
    f"{API}schedules/": Schedule,
    f"{API}activities/": Activity,
    f"{API}execution-items/": RunProfileExecutionItem,
    f"{API}connector-space-objects/": ConnectorSpaceObject,
    f"{API}metaverse-objects/": MetaverseObject,
    f"{API}pending-exports/": PendingExport,
    f"{API}approval-audit/": ApprovalAuditEntry,
}
#: The lists paged by cursor (the others by limit and offset).
CURSOR_PAGED = {
    f"{API}activities/",
    f"{API}execution-items/",
    f"{API}connector-space-objects/",
    f"{API}metaverse-objects/",
    f"{API}pending-exports/",
    f"{API}approval-audit/",
}


def detail_urls() -> list[str]:
    """The detail URL of every object of every resource."""
    return [
        f"{url}{pk}/"
        for url, model in RESOURCES.items()
        for pk in model.objects.values_list("pk", flat=True)
    ]


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


def ids(response) -> set[int]:
    return {item["id"] for item in results(response)}
