"""The spec's example configuration, and what the `jim apply` tests check against it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connectors.models import (
    ConnectedSystem,
    ConnectedSystemAttribute,
    ConnectedSystemObjectType,
    RunProfile,
    Schedule,
    ScheduleStep,
)
from metaverse.models import (
    MetaverseAttribute,
    MetaverseObjectType,
    SyncRule,
    SyncRuleFlow,
    SyncRuleJoin,
)

#: The spec's example (HR CSV → LDAP directory); its bind password comes from
#: ``JIM_LDAP_PASSWORD``.
EXAMPLE = Path(settings.BASE_DIR) / "examples" / "hr-to-ldap.yaml"
#: What the tests set ``JIM_LDAP_PASSWORD`` to (the ``ldap_password`` fixture).
PASSWORD = "s3cret-Passw0rd"

#: Every model `jim apply` writes.
CONFIG_MODELS = (
    MetaverseObjectType,
    MetaverseAttribute,
    ConnectedSystem,
    ConnectedSystemObjectType,
    ConnectedSystemAttribute,
    RunProfile,
    SyncRule,
    SyncRuleJoin,
    SyncRuleFlow,
    Schedule,
    ScheduleStep,
)


def example() -> dict[str, Any]:
    """The example file's data, to change and write elsewhere."""
    return yaml.safe_load(EXAMPLE.read_text())


def write_config(folder: Path, data: dict[str, Any] | str, name: str = "jim.yaml") -> Path:
    """Write a configuration (data or YAML text) next to a copy of the example's hr.csv."""
    (folder / "hr.csv").write_text((EXAMPLE.parent / "hr.csv").read_text())
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def config_state() -> dict[str, list[dict[str, Any]]]:
    """Every row of every configuration model, for 'nothing changed' assertions."""
    state: dict[str, list[dict[str, Any]]] = {
        model.__name__: list(model.objects.order_by("pk").values()) for model in CONFIG_MODELS
    }
    state["authoritative"] = list(
        MetaverseObjectType.authoritative_systems.through.objects.order_by("pk").values()
    )
    state["secrets"] = [
        {"name": s.name, "secrets": s.secret_settings}
        for s in ConnectedSystem.objects.order_by("pk")
    ]
    return state


@contextmanager
def no_writes() -> Iterator[None]:
    """Assert that the block runs no INSERT, UPDATE or DELETE."""
    with CaptureQueriesContext(connection) as queries:
        yield
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    assert writes == []
