"""No N+1: a page of 100 objects of every list costs as many queries as a page of 10,
and the number is the one written here (authentication and permissions included: the
session, the user, the user's permissions and the groups' permissions)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectedSystemAttribute,
    ConnectedSystemObjectType,
    RunProfile,
    Schedule,
    ScheduleStep,
)
from exports.approval import decide
from metaverse.models import (
    MetaverseAttribute,
    MetaverseObjectType,
    SyncRule,
    SyncRuleFlow,
    SyncRuleJoin,
)
from tests.api.endpoints import API, CURSOR_PAGED, RESOURCES
from tests.api.world import World, hr_people

pytestmark = pytest.mark.django_db

PAGE = 100
#: Every request: the session, the user, the user's and the groups' permissions.
REQUEST = 4
#: list URL → the queries of one page beyond :data:`REQUEST`, whatever its size: the
#: page, the count (limit-offset pages), one per prefetched relation
QUERIES = {
    f"{API}connected-systems/": 2,
    f"{API}object-types/": 3,  # attributes
    f"{API}metaverse-object-types/": 4,  # attributes, authoritative systems
    f"{API}sync-rules/": 4,  # joins, flows
    f"{API}run-profiles/": 2,
    f"{API}schedules/": 3,  # steps
    f"{API}activities/": 1,
    f"{API}execution-items/": 1,
    f"{API}connector-space-objects/": 1,
    f"{API}metaverse-objects/": 2,  # joined CSOs
    f"{API}pending-exports/": 2,  # attribute changes
    f"{API}approval-audit/": 1,
}


def many(world: World) -> None:
    """At least 100 objects of every resource."""
    hr_people(world.scenario, PAGE, start=2001)
    world.scenario.sync()
    decide(world.awaiting(), world.administrator, approve=True, reason="bulk")
    person = world.scenario.person
    systems = ConnectedSystem.objects.bulk_create(
        ConnectedSystem(name=f"System {n}", connector="csv", settings={"path": f"{n}.csv"})
        for n in range(PAGE)
    )
    types = ConnectedSystemObjectType.objects.bulk_create(
        ConnectedSystemObjectType(connected_system=s, name="row", external_id_attribute="id")
        for s in systems
    )
    ConnectedSystemAttribute.objects.bulk_create(
        ConnectedSystemAttribute(object_type=t, name=name) for t in types for name in ("id", "x")
    )
    mv_types = MetaverseObjectType.objects.bulk_create(
        MetaverseObjectType(name=f"type {n}") for n in range(PAGE)
    )
    MetaverseAttribute.objects.bulk_create(
        MetaverseAttribute(object_type=t, name="a") for t in mv_types
    )
    for t in mv_types[:3]:
        t.authoritative_systems.add(*systems[:2])
    rules = SyncRule.objects.bulk_create(
        SyncRule(
            name=f"rule {n}",
            connected_system=s,
            direction="import",
            cs_object_type=t,
            mv_object_type=person,
        )
        for n, (s, t) in enumerate(zip(systems, types, strict=True))
    )
    SyncRuleJoin.objects.bulk_create(
        SyncRuleJoin(sync_rule=r, cs_attribute="id", mv_attribute="employeeId") for r in rules
    )
    SyncRuleFlow.objects.bulk_create(
        SyncRuleFlow(sync_rule=r, source="x", target="department") for r in rules
    )
    profiles = RunProfile.objects.bulk_create(
        RunProfile(connected_system=s, name="Full Import", profile_type="full_import")
        for s in systems
    )
    schedules = Schedule.objects.bulk_create(
        Schedule(name=f"schedule {n}", cron="0 * * * *", enabled=False) for n in range(PAGE)
    )
    ScheduleStep.objects.bulk_create(
        ScheduleStep(schedule=s, run_profile=p) for s, p in zip(schedules, profiles, strict=True)
    )
    Activity.objects.bulk_create(
        Activity(connected_system=s, run_profile=p, profile_type="full_import", profile_name=p.name)
        for s, p in zip(systems, profiles, strict=True)
    )


def queries(client, url: str, size: int) -> tuple[int, int]:
    """(queries, objects) of the first page of ``url`` with ``size`` objects."""
    param = "page_size" if url in CURSOR_PAGED else "limit"
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, {param: size})
    assert response.status_code == 200
    return len(captured), len(response.json()["results"])


@pytest.mark.parametrize("url", RESOURCES)
def test_a_page_costs_the_same_queries_whatever_its_size(world, admin_client, url):
    many(world)
    small, ten = queries(admin_client, url, 10)
    large, hundred = queries(admin_client, url, PAGE)
    assert (ten, hundred) == (10, PAGE)
    assert large == small == REQUEST + QUERIES[url]
