"""Fidelity: each scenario runs its steps twice, a preview and then the real run, on
the same state. The preview must change nothing — every row of JIM's tables is as it
was — and must have predicted exactly what the real run then did: status and
message, counts, RPEIs, and the pending exports created, changed and removed
(:func:`tests.previews.fidelity.assert_predicted`).

A difference is a bug of the preview engine (runs/preview.py), never of the test."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.utils import timezone

from connectors.models import Activity, ConnectedSystem, ConnectorSpaceObject
from exports.models import PendingExport
from metaverse.models import MetaverseObject, MetaverseObjectType, SyncRuleFlow
from runs.models import PreviewedExport
from tests.previews.fidelity import assert_predicted, assert_unchanged, database_state, real_exports
from tests.scenarios.estate import CONFIG, Estate, person
from tests.sync import disabling_estate as disabling

pytestmark = pytest.mark.django_db

ADA = person("1001", "Ada", "Lovelace", "alovelace")
GRACE = person("1002", "Grace", "Hopper", "ghopper", manager="1001")
ALAN = person("1003", "Alan", "Turing", "aturing", manager="1001")
#: In HR's scope, not in the directory's (the export rule wants 'Active').
CHARLES = person("1004", "Charles", "Babbage", "cbabbage", manager="1001", status="Leave")
PEOPLE = [ADA, GRACE, ALAN]

Predict = Callable[[str, str], tuple[Activity, Activity]]


def predicted(estate: Estate, system: str, profile: str) -> tuple[Activity, Activity]:
    """Preview ``profile`` of ``system``, check it changed nothing, run it for real,
    check the preview predicted it. Returns (preview, real)."""
    before = database_state()
    preview = estate.run(system, profile, preview=True)
    assert preview.preview
    assert_unchanged(before, database_state(but=preview))
    real, exports = real_exports(lambda: estate.run(system, profile))
    assert_predicted(preview, real, exports)
    return preview, real


def first_cycle(estate: Estate, people: list[dict]) -> None:
    """HR people provisioned to the directory, confirmed, and synced: nothing pending."""
    estate.write_people(people)
    for system, profile in [
        ("HR", "Full Import"),
        ("HR", "Full Sync"),
        ("Directory", "Export"),
        ("Directory", "Full Import"),
        ("Directory", "Full Sync"),
    ]:
        activity = estate.run(system, profile)
        assert activity.status == "complete", (system, profile, activity.message)
    assert not PendingExport.objects.exists()


def allow_deletions(system: str = "HR") -> None:
    """The estate's systems are small: the default threshold (10%) refuses any removal."""
    ConnectedSystem.objects.filter(name=system).update(deletion_threshold="100%")


def reapply(estate: Estate, config: str) -> None:
    slapd = estate.ldap
    path = estate.folder / "jim.yaml"
    path.write_text(
        textwrap.dedent(
            config.format(
                url=slapd.url, service_dn=slapd.service_dn, base=estate.base, approval="none"
            )
        )
    )
    call_command("jim", "apply", str(path))


def counts(activity: Activity) -> dict[str, int]:
    return dict(activity.counts)


def effects(preview: Activity) -> list[tuple[str, str]]:
    return sorted(
        PreviewedExport.objects.filter(activity=preview).values_list("effect", "change_type")
    )


# --------------------------------------------------------------------------- scenarios


def projection_and_provisioning(estate: Estate, predict: Predict) -> None:
    """New people: imported, projected, provisioned — with manager references to MVOs
    and directory accounts that do not exist yet."""
    estate.write_people([*PEOPLE, CHARLES])
    preview, _ = predict("HR", "Full Import")
    assert counts(preview) == {"added": 4}
    preview, _ = predict("HR", "Full Sync")
    assert counts(preview)["projected"] == 4
    assert effects(preview) == [("created", "create")] * 3
    grace = preview.items.get(external_id="1002")
    assert list(grace.details["new_references"].values()) == ["Ada Lovelace"]


def join_to_an_existing_mvo(estate: Estate, predict: Predict) -> None:
    """An account made in the directory by hand joins the MVO of a person on leave."""
    first_cycle(estate, [*PEOPLE, CHARLES])
    connection = estate.ldap.connection()
    try:
        assert connection.add(
            f"uid=cbabbage,ou=people,{estate.base}",
            ["inetOrgPerson"],
            {"cn": "Charles Babbage", "sn": "Babbage", "uid": "cbabbage"},
        )
    finally:
        connection.unbind()
    preview, _ = predict("Directory", "Full Import")
    assert counts(preview) == {"added": 1}
    preview, _ = predict("Directory", "Full Sync")
    assert counts(preview) == {"joined": 1}


PHONEBOOK_SYSTEM = """\
  - name: Phonebook
    connector: csv
    settings: {{path: phonebook.csv}}
    object_types:
      - name: entry
        external_id: id
    run_profiles:
      - {{name: Full Import, type: full_import}}
      - {{name: Full Sync, type: full_sync}}
"""
PHONEBOOK_RULE = """\
  - name: Phonebook in
    connected_system: Phonebook
    direction: import
    object_type: entry
    metaverse_object_type: person
    join: [{{cs: id, mv: employeeId}}]
    project: false
    flows:
      - {{mv: department, from: dept}}
"""


def _with_phonebook(phonebook_first: bool) -> str:
    config = CONFIG.replace("  - name: Groups\n", PHONEBOOK_SYSTEM + "  - name: Groups\n", 1)
    anchor = "  - name: HR people in\n" if phonebook_first else "  - name: Groups in\n"
    return config.replace(anchor, PHONEBOOK_RULE + anchor, 1)


@pytest.fixture(params=["hr first", "phonebook first"])
def precedence(request) -> bool:
    return request.param == "phonebook first"


def flow_with_precedence(estate: Estate, predict: Predict, phonebook_first: bool) -> None:
    """Two systems flow department: the rule listed first wins; the other flows only
    where the first has no value."""
    reapply(estate, _with_phonebook(phonebook_first))
    first_cycle(estate, [ADA, person("1002", "Grace", "Hopper", "ghopper", department=""), ALAN])
    rows = [{"id": "1001", "dept": "Analytical Engines"}, {"id": "1002", "dept": "Navy"}]
    from tests.builders import write_csv

    write_csv(estate.folder / "phonebook.csv", rows, header=["id", "dept"])
    predict("Phonebook", "Full Import")
    preview, _ = predict("Phonebook", "Full Sync")
    assert counts(preview)["joined"] == 2
    flowed = sorted(
        item.external_id
        for item in preview.items.all()
        if "department" in item.details.get("changes", {})
    )
    assert flowed == (["1001", "1002"] if phonebook_first else ["1002"])


def leaving_and_entering_scope(estate: Estate, predict: Predict) -> None:
    """Grace goes on leave (out of the directory's scope: deprovisioned), Charles comes
    back (in scope: provisioned), Alan is terminated (out of HR's scope: the MVO goes
    with its last source, and his account with it); then Grace comes back before the
    export ran."""
    first_cycle(estate, [*PEOPLE, CHARLES])
    estate.write_people(
        [
            ADA,
            person("1002", "Grace", "Hopper", "ghopper", manager="1001", status="Leave"),
            person("1003", "Alan", "Turing", "aturing", manager="1001", status="Terminated"),
            person("1004", "Charles", "Babbage", "cbabbage", manager="1001"),
        ]
    )
    predict("HR", "Full Import")
    preview, _ = predict("HR", "Delta Sync")
    assert effects(preview) == [("created", "create"), ("created", "delete"), ("created", "delete")]
    # Grace is back before the export ran: her pending delete is withdrawn.
    estate.write_people(
        [
            ADA,
            GRACE,
            person("1003", "Alan", "Turing", "aturing", manager="1001", status="Terminated"),
            person("1004", "Charles", "Babbage", "cbabbage", manager="1001"),
        ]
    )
    predict("HR", "Full Import")
    preview, _ = predict("HR", "Delta Sync")
    assert ("removed", "delete") in effects(preview)


def deprovision_by_disabling(estate: Estate, predict: Predict) -> None:
    """``deprovision: disable``: a leaver's account is disabled and moved; once the
    window has passed, a sync deletes it."""
    disabling.provisioned(estate, [disabling.ADA, disabling.ALAN])
    estate.write_people([person("1", "Ada", "Lovelace", "ada", status="Suspended"), disabling.ALAN])
    predict("HR", "Full Import")
    preview, _ = predict("HR", "Delta Sync")
    assert effects(preview) == [("created", "update")]
    assert estate.run("Directory", "Export").status == "complete"
    estate.run("Directory", "Full Import")
    disabling.days_pass(estate, "ada", 31)
    preview, _ = predict("HR", "Full Sync")
    assert effects(preview) == [("created", "delete")]


@pytest.fixture(params=["last connector", "grace period", "authoritative"])
def deletion_rule(request) -> str:
    return request.param


def deletion_rules(estate: Estate, predict: Predict, rule: str) -> None:
    """A person removed from HR: the MVO goes now (and the account with it), or is
    scheduled for deletion (grace period) and goes when the period ends."""
    person_type = MetaverseObjectType.objects.get(name="person")
    if rule == "grace period":
        person_type.deletion_grace_period_days = 7
    if rule == "authoritative":
        person_type.deletion_rule = "authoritative_connector_removed"
        person_type.authoritative_systems.add(ConnectedSystem.objects.get(name="HR"))
    person_type.save()
    first_cycle(estate, PEOPLE)
    allow_deletions()
    estate.write_people([ADA, GRACE])
    preview, _ = predict("HR", "Full Import")
    assert counts(preview) == {"deleted": 1}
    preview, _ = predict("HR", "Delta Sync")
    alan = MetaverseObject.objects.filter(display_name="Alan Turing").first()
    if rule != "grace period":
        assert alan is None and effects(preview) == [("created", "delete")]
        return
    assert alan.status == "deletion_scheduled" and effects(preview) == []
    MetaverseObject.objects.filter(pk=alan.pk).update(
        deletion_due_at=timezone.now() - dt.timedelta(seconds=1)
    )
    preview, _ = predict("HR", "Delta Sync")  # its housekeeping deletes the MVO due
    assert not MetaverseObject.objects.filter(pk=alan.pk).exists()


def references(estate: Estate, predict: Predict) -> None:
    """A manager changes; a group's members are set, then changed value by value."""
    first_cycle(estate, PEOPLE)
    estate.write_people([ADA, GRACE, person("1003", "Alan", "Turing", "aturing", manager="1002")])
    predict("HR", "Full Import")
    preview, _ = predict("HR", "Delta Sync")
    [alan] = preview.items.filter(external_id="1003")
    assert alan.details["changes"]["manager"]["ref"] == "mvo"
    estate.write_groups([{"name": "engineers"}])
    predict("Groups", "Full Import")
    predict("Groups", "Full Sync")
    _set_members("engineers", "1001", "1002")
    preview, _ = predict("Groups", "Full Sync")
    assert effects(preview) == [("changed", "create")]  # the group's create gets members
    estate.run("Directory", "Export")
    estate.run("Directory", "Full Import")
    _set_members("engineers", "1001", "1003")
    preview, _ = predict("Groups", "Full Sync")
    [pe] = PreviewedExport.objects.filter(activity=preview)
    assert sorted(c["change_type"] for c in pe.changes) == ["add", "remove"]
    # The values are MVO ids, named by the MVOs' display names.
    assert sorted(pe.reference_names.values()) == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]


def _set_members(name: str, *employee_ids: str) -> None:
    """Membership as a membership source would have flowed it into the metaverse."""
    group = MetaverseObject.objects.get(display_name=name)
    group.attributes["member"] = list(
        ConnectorSpaceObject.objects.filter(
            connected_system__name="HR", external_id__in=employee_ids
        ).values_list("metaverse_object_id", flat=True)
    )
    group.save()
    ConnectorSpaceObject.objects.filter(metaverse_object=group).update(sync_pending=True)


def delta_import(estate: Estate, predict: Predict) -> None:
    """Changes made in the directory behind JIM's back: a delta import reads them, and
    the directory's delta sync puts back what the export rule enforces."""
    first_cycle(estate, PEOPLE)
    estate.modify(f"uid=ghopper,ou=people,{estate.base}", {"sn": [("MODIFY_REPLACE", ["Drift"])]})
    connection = estate.ldap.connection()
    try:
        assert connection.delete(f"uid=aturing,ou=people,{estate.base}")
    finally:
        connection.unbind()
    preview, _ = predict("Directory", "Delta Import")
    assert counts(preview) == {"updated": 1, "deleted": 1}
    predict("Directory", "Delta Sync")


def full_import(estate: Estate, predict: Predict) -> None:
    """A full import of an HR file with a person added, one changed and one gone."""
    first_cycle(estate, PEOPLE)
    allow_deletions()
    estate.write_people(
        [person("1001", "Ada", "King", "alovelace", department="Maths"), GRACE, CHARLES]
    )
    preview, _ = predict("HR", "Full Import")
    assert counts(preview) == {"added": 1, "updated": 1, "deleted": 1}
    predict("HR", "Full Sync")


def errors(estate: Estate, predict: Predict) -> None:
    """An expression that fails for one person, a duplicate row in the file."""
    SyncRuleFlow.objects.filter(target="displayName").update(
        expression="cs.firstName ~ ' ' ~ (1 / (cs.lastName | length - 8))"  # Lovelace: 8
    )
    estate.write_people([*PEOPLE, person("1003", "Alan", "Turing", "turing2")])
    preview, _ = predict("HR", "Full Import")
    assert preview.status == "complete_with_errors"
    estate.write_people(PEOPLE)
    predict("HR", "Full Import")
    preview, _ = predict("HR", "Full Sync")
    assert [i.error_type for i in preview.items.exclude(error_type="")] == ["expression_error"]


def deletion_threshold(estate: Estate, predict: Predict) -> None:
    """An import that would mark more objects obsolete than the threshold allows fails,
    and its preview fails with the same message."""
    first_cycle(estate, PEOPLE)
    estate.write_people([ADA])
    preview, _ = predict("HR", "Full Import")
    assert preview.status == "failed" and "threshold" in preview.message


def an_empty_source(estate: Estate, predict: Predict) -> None:
    """An import that finds nothing marks nothing obsolete, and says so in its message
    (the zero-import safety)."""
    first_cycle(estate, PEOPLE)
    estate.write_people([])
    _, real = predict("HR", "Full Import")
    assert real.message.startswith("Deletion detection: the import returned no objects")


SCENARIOS = {
    "projection and provisioning": projection_and_provisioning,
    "join to an existing MVO": join_to_an_existing_mvo,
    "leaving and entering scope": leaving_and_entering_scope,
    "references": references,
    "delta import": delta_import,
    "full import": full_import,
    "errors": errors,
    "deletion threshold": deletion_threshold,
    "an empty source": an_empty_source,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS), ids=list(SCENARIOS))
def test_a_preview_predicts_the_real_run(estate, scenario):
    SCENARIOS[scenario](estate, lambda system, profile: predicted(estate, system, profile))


def test_a_preview_predicts_flow_with_precedence(estate, precedence):
    flow_with_precedence(
        estate, lambda system, profile: predicted(estate, system, profile), precedence
    )


def test_a_preview_predicts_the_deletion_rules(estate, deletion_rule):
    deletion_rules(
        estate, lambda system, profile: predicted(estate, system, profile), deletion_rule
    )


def test_a_preview_predicts_deprovisioning_by_disabling(tmp_path, slapd, ldap_ou, monkeypatch):
    estate = disabling.make_estate(tmp_path, slapd, ldap_ou, monkeypatch)
    deprovision_by_disabling(estate, lambda system, profile: predicted(estate, system, profile))
