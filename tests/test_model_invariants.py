"""The invariants the database itself enforces, and the deletion threshold rules."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from connectors.models import (
    DEFAULT_DELETION_THRESHOLD_COUNT,
    Activity,
    ConnectedSystem,
    ConnectorSpaceObject,
    change_limit,
    deletion_limit,
    validate_change_threshold,
    validate_deletion_threshold,
)
from exports.models import PendingExport
from metaverse.models import MetaverseObject, MetaverseObjectType, SyncRule, SyncRuleFlow
from tests.builders import make_connected_system


def make_cso(system: ConnectedSystem, **fields) -> ConnectorSpaceObject:
    return ConnectorSpaceObject.objects.create(
        connected_system=system, object_type=system.object_types.get(), **fields
    )


def make_mvo() -> MetaverseObject:
    person, _ = MetaverseObjectType.objects.get_or_create(name="person")
    return MetaverseObject.objects.create(object_type=person)


def make_activity(system: ConnectedSystem, profile_type: str, status: str) -> Activity:
    return Activity.objects.create(
        connected_system=system, profile_type=profile_type, profile_name=profile_type, status=status
    )


def violates(constraint: str):
    """Expect the statement inside to break the named database constraint."""
    return pytest.raises(IntegrityError, match=constraint)


@pytest.fixture
def hr(db) -> ConnectedSystem:
    return make_connected_system("HR", profiles=())


@pytest.fixture
def directory(db) -> ConnectedSystem:
    return make_connected_system("Directory", profiles=())


# -- connector space ----------------------------------------------------------------


def test_one_cso_per_system_per_mvo(hr, directory):
    mvo = make_mvo()
    make_cso(hr, external_id="E1", join_type="projected", metaverse_object=mvo)
    make_cso(directory, external_id="u1", join_type="joined", metaverse_object=mvo)

    with transaction.atomic(), violates("one_cso_per_system_per_mvo"):
        make_cso(hr, external_id="E2", join_type="joined", metaverse_object=mvo)


def test_external_id_is_unique_per_system(hr, directory):
    make_cso(hr, external_id="E1")
    make_cso(directory, external_id="E1")

    with transaction.atomic(), violates("unique_cso_external_id_per_system"):
        make_cso(hr, external_id="E1")


def test_many_csos_without_external_id_are_allowed(directory):
    for _ in range(3):
        make_cso(directory, external_id=None, status="pending_provisioning")

    assert directory.cs_objects.filter(external_id__isnull=True).count() == 3


@pytest.mark.parametrize(
    ("join_type", "joined"),
    [("not_joined", True), ("joined", False), ("projected", False), ("provisioned", False)],
)
def test_join_type_agrees_with_the_metaverse_object(hr, join_type, joined):
    mvo = make_mvo() if joined else None
    with transaction.atomic(), violates("cso_join_type_matches_join"):
        make_cso(hr, external_id="E1", join_type=join_type, metaverse_object=mvo)


@pytest.mark.parametrize(
    ("join_type", "joined"),
    [("not_joined", False), ("joined", True), ("projected", True), ("provisioned", True)],
)
def test_consistent_join_types_are_accepted(hr, join_type, joined):
    mvo = make_mvo() if joined else None
    cso = make_cso(hr, external_id="E1", join_type=join_type, metaverse_object=mvo)
    assert cso.pk


# -- activities -----------------------------------------------------------------------


def test_one_running_activity_per_system(hr, directory):
    make_activity(hr, "full_import", "in_progress")
    make_activity(hr, "full_import", "queued")
    make_activity(hr, "full_import", "complete")
    make_activity(directory, "full_import", "in_progress")

    with transaction.atomic(), violates("one_running_activity_per_system"):
        make_activity(hr, "export", "in_progress")


@pytest.mark.parametrize("second", ["full_sync", "delta_sync"])
def test_one_running_sync_overall(hr, directory, second):
    make_activity(hr, "delta_sync", "in_progress")

    with transaction.atomic(), violates("one_running_sync"):
        make_activity(directory, second, "in_progress")


def test_a_sync_may_run_beside_other_systems_imports_and_exports(hr, directory):
    third = make_connected_system("Payroll", profiles=())
    make_activity(hr, "full_sync", "in_progress")
    make_activity(directory, "delta_import", "in_progress")
    make_activity(third, "export", "in_progress")
    make_activity(hr, "full_sync", "queued")

    assert Activity.objects.filter(status="in_progress").count() == 3


# -- pending exports ------------------------------------------------------------------


def test_one_pending_export_per_cso(directory):
    cso = make_cso(directory, external_id=None, status="pending_provisioning")
    PendingExport.objects.create(connected_system=directory, cs_object=cso, change_type="create")

    with transaction.atomic(), pytest.raises(IntegrityError, match="cs_object_id"):
        PendingExport.objects.create(
            connected_system=directory, cs_object=cso, change_type="update"
        )


# -- sync rule flows ------------------------------------------------------------------


@pytest.fixture
def sync_rule(hr) -> SyncRule:
    return SyncRule.objects.create(
        name="HR people in",
        connected_system=hr,
        direction="import",
        cs_object_type=hr.object_types.get(),
        mv_object_type=MetaverseObjectType.objects.create(name="person"),
    )


@pytest.mark.parametrize(
    ("kind", "source", "expression"),
    [
        ("direct", "", ""),
        ("direct", "", "{{ cs.givenName }}"),
        ("expression", "givenName", ""),
        ("expression", "", ""),
    ],
)
def test_a_flow_needs_the_field_its_kind_reads(sync_rule, kind, source, expression):
    with transaction.atomic(), violates("flow_has_source_or_expression"):
        SyncRuleFlow.objects.create(
            sync_rule=sync_rule, kind=kind, source=source, expression=expression, target="x"
        )


def test_direct_and_expression_flows_are_accepted(sync_rule):
    SyncRuleFlow.objects.create(sync_rule=sync_rule, kind="direct", source="sn", target="sn")
    SyncRuleFlow.objects.create(
        sync_rule=sync_rule,
        kind="expression",
        expression="{{ cs.givenName }} {{ cs.sn }}",
        target="displayName",
    )
    assert sync_rule.flows.count() == 2


# -- deletion threshold ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "existing", "limit"),
    [
        ("", 100_000, DEFAULT_DELETION_THRESHOLD_COUNT),  # 10 % is 10,000: the count wins
        ("", 1_000, 100),  # 10 % of 1,000 is smaller than 500
        ("", 9, 0),
        ("", 0, 0),
        ("50", 10, 50),
        ("20%", 1_000, 200),
        (" 20 % ", 1_000, 200),
        ("100%", 1_234, 1_234),
        ("0", 1_000, 0),
        ("33%", 10, 3),  # rounds down
    ],
)
def test_deletion_limit(threshold, existing, limit):
    assert deletion_limit(threshold, existing) == limit


@pytest.mark.parametrize(
    ("threshold", "existing", "limit"),
    [
        ("", 100_000, DEFAULT_DELETION_THRESHOLD_COUNT),  # as the deletion threshold…
        ("", 1_000, 100),
        ("", 99, 10),  # …but never below the floor, so a small system can change a few
        ("", 0, 10),
        ("5", 1_000, 5),  # an explicit value replaces the default and its floor
        ("0", 1_000, 0),
        ("1%", 99, 0),
        ("100%", 1_234, 1_234),
    ],
)
def test_change_limit(threshold, existing, limit):
    assert change_limit(threshold, existing) == limit
    assert ConnectedSystem(change_threshold=threshold).change_limit(existing) == limit


def test_an_invalid_change_threshold_is_named_as_one():
    with pytest.raises(ValidationError, match="'often' is not a change threshold"):
        validate_change_threshold("often")
    with pytest.raises(ValidationError, match="a percentage cannot exceed 100%"):
        validate_change_threshold("120%")


@pytest.mark.parametrize("threshold", ["", "0", "500", "20%", "100%", " 7 % "])
def test_valid_deletion_thresholds(threshold):
    validate_deletion_threshold(threshold)


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        ("lots", "is not a deletion threshold"),
        ("-5", "is not a deletion threshold"),
        ("20%%", "is not a deletion threshold"),
        ("1.5%", "is not a deletion threshold"),
        ("101%", "a percentage cannot exceed 100%"),
    ],
)
def test_invalid_deletion_thresholds_name_the_value(threshold, message):
    with pytest.raises(ValidationError, match=message) as error:
        validate_deletion_threshold(threshold)
    assert repr(threshold) in str(error.value)


@pytest.mark.django_db
def test_a_connected_system_with_a_bad_threshold_does_not_validate():
    system = ConnectedSystem(name="HR", connector="csv", deletion_threshold="half")

    with pytest.raises(ValidationError) as error:
        system.full_clean()

    assert "deletion_threshold" in error.value.message_dict


def test_a_connected_system_uses_its_own_threshold():
    assert ConnectedSystem(deletion_threshold="25%").deletion_limit(400) == 100
    assert ConnectedSystem(deletion_threshold="").deletion_limit(400) == 40
