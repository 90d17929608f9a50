"""Builders for the console page tests: activities, CSOs and MVOs made with the ORM, as
runs leave them (connected systems and run profiles: :mod:`tests.builders`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.utils import timezone

from connectors.choices import ActivityStatus
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectorSpaceObject,
    RunProfile,
)
from metaverse.models import MetaverseObject, MetaverseObjectType

#: What a read-only operator may see: the console pages, nothing to change.
VIEW_PERMISSIONS = (
    "view_connectedsystem",
    "view_activity",
    "view_metaverseobject",
    "view_connectorspaceobject",
    "view_pendingexport",
)

#: Headers of an HTMX request (what makes ``request.htmx`` true).
HTMX = {"HX-Request": "true"}


def make_activity(
    run_profile: RunProfile,
    *,
    status: str = ActivityStatus.COMPLETE,
    started_seconds_ago: float = 60,
    duration: float | None = 30,
    **fields: Any,
) -> Activity:
    """An activity of ``run_profile``; finished ``duration`` seconds after it started.

    A queued activity has not started; a running one has not finished.
    """
    started = timezone.now() - timedelta(seconds=started_seconds_ago)
    finished = started + timedelta(seconds=duration) if duration is not None else None
    if status in (ActivityStatus.IN_PROGRESS, ActivityStatus.QUEUED):
        finished = None
    if status == ActivityStatus.QUEUED:
        started = None
    return Activity.objects.create(
        connected_system=run_profile.connected_system,
        run_profile=run_profile,
        profile_type=run_profile.profile_type,
        profile_name=run_profile.name,
        status=status,
        started_at=started,
        finished_at=finished,
        **fields,
    )


def make_cso(
    system: ConnectedSystem,
    external_id: str,
    *,
    mvo: MetaverseObject | None = None,
    **fields: Any,
) -> ConnectorSpaceObject:
    return ConnectorSpaceObject.objects.create(
        connected_system=system,
        object_type=system.object_types.get(),
        external_id=external_id,
        metaverse_object=mvo,
        join_type="joined" if mvo else "not_joined",
        **fields,
    )


def make_mvo(display_name: str, **attributes: list[Any]) -> MetaverseObject:
    person, _ = MetaverseObjectType.objects.get_or_create(name="person")
    return MetaverseObject.objects.create(
        object_type=person, display_name=display_name, attributes=attributes
    )


def require_admin_for(*models: type) -> None:
    """Skip the calling test while the admin does not register ``models`` (no pages to link)."""
    missing = [m._meta.label for m in models if not admin.site.is_registered(m)]
    if missing:
        pytest.skip(f"the admin does not register {', '.join(missing)} yet")
