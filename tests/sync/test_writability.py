"""Target attribute writability honoured by export flows (issue 15; seed 001, edge
case 2): ``read_only`` is never exported (refused by ``jim apply`` when known, skipped
with an error at run time otherwise); ``write_once`` is sent at creation, or while the
target has no value, and never updated afterwards — drift correction included.
"""

from __future__ import annotations

import pytest

from connectors.models import ConnectedSystemAttribute, ConnectedSystemObjectType
from exports.models import PendingExport
from tests.builders import add_attribute
from tests.support.cli import jim
from tests.support.configuration import config_state, example, write_config
from tests.sync.scenario import Scenario, build_scenario, changes, provisioned, rpeis

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario() -> Scenario:
    return build_scenario()


def _writability(scenario: Scenario, attribute: str, value: str) -> None:
    ConnectedSystemAttribute.objects.filter(object_type=scenario.dir_person, name=attribute).update(
        writability=value
    )


# --------------------------------------------------------------------------- write once


def test_a_write_once_attribute_is_sent_in_the_create(scenario):
    _writability(scenario, "mail", "write_once")
    scenario.hr_row("1001")

    scenario.sync()

    pe = scenario.export_of("1001")
    assert pe.change_type == "create"
    assert changes(pe)[("mail", "update")] == ["john.smith@example.org"]


def test_a_write_once_attribute_is_never_updated(scenario):
    _writability(scenario, "mail", "write_once")
    target = provisioned(scenario)
    scenario.update_hr("1001", lastName="Jones")

    scenario.sync()

    pe = PendingExport.objects.get(cs_object=target)
    assert ("mail", "update") not in changes(pe)
    assert changes(pe)[("sn", "update")] == ["Jones"]


def test_a_write_once_attribute_changed_in_the_target_is_not_corrected(scenario):
    """Drift of a write-once attribute is left alone, even when the rule enforces state."""
    _writability(scenario, "mail", "write_once")
    target = provisioned(scenario)
    target.attributes["mail"] = ["changed@example.org"]
    target.attributes["cn"] = ["Hacked"]
    target.sync_pending = True
    target.save()

    scenario.sync(scenario.directory)

    assert changes(PendingExport.objects.get(cs_object=target)) == {
        ("cn", "update"): ["John Smith"]
    }


def test_a_write_once_attribute_the_target_lacks_is_sent_once(scenario):
    _writability(scenario, "mail", "write_once")
    target = provisioned(scenario)
    del target.attributes["mail"]
    target.save()
    scenario.update_hr("1001", department="Sales")

    scenario.sync()

    pe = PendingExport.objects.get(cs_object=target)
    assert changes(pe) == {("mail", "update"): ["john.smith@example.org"]}


def test_a_create_not_sent_yet_takes_the_latest_write_once_value(scenario):
    _writability(scenario, "mail", "write_once")
    scenario.hr_row("1001")
    scenario.sync()
    scenario.update_hr("1001", lastName="Jones")

    scenario.sync()

    pe = scenario.export_of("1001")
    assert pe.change_type == "create"
    assert changes(pe)[("mail", "update")] == ["john.jones@example.org"]


# --------------------------------------------------------------------------- read only


def test_a_read_only_attribute_is_skipped_at_run_time_with_an_error(scenario):
    """The attribute became read-only after apply (a schema refresh): the flow is
    skipped, the others still flow, and each object says why."""
    _writability(scenario, "mail", "read_only")
    scenario.hr_row("1001")

    activity = scenario.sync()

    pe = scenario.export_of("1001")
    assert pe.change_type == "create"
    assert "mail" not in {attribute for attribute, _ in changes(pe)}
    assert changes(pe)[("cn", "update")] == ["John Smith"]
    [error] = [i for i in rpeis(activity) if i.error_type]
    assert error.error_type == "invalid_data"
    assert error.message == (
        "sync rule 'Directory people out': mail is read-only in Directory "
        "(writability: read_only): its export flow is skipped; remove the flow"
    )


def test_a_read_only_attribute_is_not_sent_in_an_update(scenario):
    target = provisioned(scenario)
    _writability(scenario, "mail", "read_only")
    scenario.update_hr("1001", lastName="Jones")

    scenario.sync()

    pe = PendingExport.objects.get(cs_object=target)
    assert ("mail", "update") not in changes(pe)
    assert changes(pe)[("sn", "update")] == ["Jones"]


def _directory_attributes(data, **attributes):
    data["connected_systems"][1]["object_types"][0]["attributes"] = attributes


def test_apply_rejects_an_export_flow_to_a_read_only_attribute(tmp_path, monkeypatch):
    monkeypatch.setenv("JIM_LDAP_PASSWORD", "pw")
    data = example()
    _directory_attributes(data, mail={"writability": "read_only"})

    status, _, err = jim("apply", str(write_config(tmp_path, data)))

    assert status == 2
    assert (
        "sync_rules[2].flows[3].cs: mail of inetOrgPerson of Directory is read-only "
        "(writability: read_only): an export flow cannot write it" in err
    ), err
    assert all(not rows for rows in config_state().values())


def test_apply_rejects_a_flow_to_an_attribute_stored_as_read_only(tmp_path, monkeypatch):
    """The file does not say; the database does (a schema discovery stored it)."""
    monkeypatch.setenv("JIM_LDAP_PASSWORD", "pw")
    data = example()
    status, _, err = jim("apply", str(write_config(tmp_path, data)))
    assert status == 0, err
    add_attribute(
        ConnectedSystemObjectType.objects.get(
            connected_system__name="Directory", name="inetOrgPerson"
        ),
        "cn",
        {"writability": "read_only"},
    )

    status, _, err = jim("apply", str(write_config(tmp_path, data)))

    assert status == 2
    assert "sync_rules[2].flows[1].cs: cn of inetOrgPerson of Directory is read-only" in err, err


def test_apply_accepts_write_once_and_read_write(tmp_path, monkeypatch):
    monkeypatch.setenv("JIM_LDAP_PASSWORD", "pw")
    data = example()
    _directory_attributes(
        data, mail={"writability": "write_once"}, cn={"writability": "read_write"}
    )

    status, _, err = jim("apply", str(write_config(tmp_path, data)))

    assert status == 0, err
