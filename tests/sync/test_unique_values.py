"""``unique(...)`` in export flows (issue 15; seed 001, edge case 1): the first candidate
not in use in the target's connector space, claimed in this run, or — when asked — in
the target system itself; the value chosen sticks to the person.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connectors.backends.csv import CsvConnector
from connectors.backends.ldap.connector import LdapConnector
from connectors.base import ConnectorConfigurationError
from connectors.models import ConnectedSystem
from exports.models import PendingExport
from metaverse.expressions import AttributeView, ExpressionError, compile_expression
from metaverse.models import SyncRuleFlow
from metaverse.sync import processor
from tests.builders import write_csv
from tests.support.cli import jim
from tests.support.configuration import config_state, example, write_config
from tests.support.slapd import service_settings
from tests.sync.scenario import Scenario, build_scenario, changes, provisioned, rpeis

pytestmark = pytest.mark.django_db

UNIQUE_UID = "unique(normalize(mv.givenName[:1] ~ mv.sn) | lower)"


def _uid_flow(scenario: Scenario, expression: str = UNIQUE_UID) -> None:
    SyncRuleFlow.objects.filter(sync_rule=scenario.dir_out, target="uid").update(
        kind="expression", source="", expression=expression
    )


@pytest.fixture
def scenario() -> Scenario:
    built = build_scenario()
    _uid_flow(built)
    return built


def _uid(scenario: Scenario, employee_id: str) -> list[Any]:
    return changes(scenario.export_of(employee_id)).get(("uid", "update"), [])


def _joiners(scenario: Scenario, *rows: tuple[str, str, str]) -> None:
    for employee_id, first_name, last_name in rows:
        scenario.hr_row(employee_id, firstName=first_name, lastName=last_name)


def test_two_people_with_the_same_name_get_distinct_values_in_one_run(scenario):
    _joiners(scenario, ("1001", "John", "Smith"), ("1002", "Jane", "Smith"))

    scenario.sync()

    assert _uid(scenario, "1001") == ["jsmith"]
    assert _uid(scenario, "1002") == ["jsmith2"]


def test_candidates_are_normalised_and_compared_case_insensitively(scenario):
    scenario.directory_entry("JSmith", dn="uid=JSmith,ou=people,dc=example,dc=org")
    _joiners(scenario, ("1001", "Jöhn", "Smith"))

    scenario.sync()

    assert _uid(scenario, "1001") == ["jsmith2"]


def test_a_value_already_in_the_connector_space_is_skipped(scenario):
    scenario.directory_entry("jsmith")
    scenario.directory_entry("jsmith2")
    _joiners(scenario, ("1001", "John", "Smith"))

    scenario.sync()

    assert _uid(scenario, "1001") == ["jsmith3"]


def test_a_value_staged_for_another_object_is_taken(scenario):
    """A create staged by an earlier run but not sent yet holds its value."""
    _joiners(scenario, ("1001", "John", "Smith"))
    scenario.sync()
    _joiners(scenario, ("1002", "Jane", "Smith"))

    scenario.sync()

    assert _uid(scenario, "1001") == ["jsmith"]
    assert _uid(scenario, "1002") == ["jsmith2"]


def test_a_pattern_and_a_list_of_candidates(scenario):
    _uid_flow(
        scenario,
        "unique([mv.givenName ~ '.' ~ mv.sn, mv.sn] | lower, pattern='{base}.{n}', start=1)",
    )
    _joiners(
        scenario,
        ("1001", "John", "Smith"),
        ("1002", "John", "Smith"),
        ("1003", "John", "Smith"),
    )

    scenario.sync()

    assert [_uid(scenario, e) for e in ("1001", "1002", "1003")] == [
        ["john.smith"],
        ["smith"],
        ["john.smith.1"],
    ]


def test_a_rename_keeps_the_chosen_value(scenario):
    target = provisioned(scenario, "1001", account="u1001")
    assert target.attributes["uid"] == ["jsmith"]
    scenario.update_hr("1001", lastName="Jones")

    scenario.sync()

    pe = PendingExport.objects.get(cs_object=target)
    assert ("uid", "update") not in changes(pe)
    assert changes(pe)[("sn", "update")] == ["Jones"]


def test_a_create_not_sent_yet_keeps_its_value_when_the_name_changes(scenario):
    _joiners(scenario, ("1001", "John", "Smith"))
    scenario.sync()
    scenario.update_hr("1001", lastName="Jones")

    scenario.sync()

    assert _uid(scenario, "1001") == ["jsmith"]
    assert changes(scenario.export_of("1001"))[("sn", "update")] == ["Jones"]


def test_joining_an_existing_account_keeps_its_value(scenario):
    """The import join rule (uid = accountName) finds John's account: it keeps its uid,
    and the value unique() had chosen for him is given back."""
    existing = scenario.directory_entry("u1001", sn="Smith", cn="John Smith")
    _joiners(scenario, ("1001", "John", "Smith"))

    scenario.sync()

    existing.refresh_from_db()
    assert existing.metaverse_object_id == scenario.mvo_of("1001").pk
    pe = PendingExport.objects.filter(cs_object=existing).first()
    assert pe is None or ("uid", "update") not in changes(pe)
    _joiners(scenario, ("1002", "Jane", "Smith"))
    scenario.sync()
    assert _uid(scenario, "1002") == ["jsmith"]


def test_the_objects_own_value_is_not_taken_by_another(scenario):
    """Synced again, a person keeps jsmith although a CSO (their own) has it."""
    provisioned(scenario, "1001", account="u1001")
    scenario.update_hr("1001", department="Sales")

    activity = scenario.sync()

    assert not [i for i in rpeis(activity) if i.error_type]
    assert scenario.dir_cso_of("1001").attributes["uid"] == ["jsmith"]


def test_all_candidates_in_use_is_an_error_naming_the_rule_attribute_and_candidates(scenario):
    _uid_flow(scenario, "unique(normalize(mv.givenName[:1] ~ mv.sn) | lower, max=3)")
    for uid in ("jsmith", "jsmith2", "jsmith3"):
        scenario.directory_entry(uid)
    _joiners(scenario, ("1001", "John", "Smith"))

    activity = scenario.sync()

    [error] = [i for i in rpeis(activity) if i.error_type]
    assert error.error_type == "invalid_generated_external_id"
    assert error.message == (
        "sync rule 'Directory people out': no unique value for uid in Directory: all 3 "
        "candidates (jsmith, jsmith2, jsmith3) are in use in its connector space, claimed "
        "by another object in this run; raise max or add a candidate"
    )
    assert not PendingExport.objects.exists()


def test_values_claimed_in_the_run_hold_across_batches(scenario, monkeypatch):
    monkeypatch.setattr(processor, "BATCH_SIZE", 1)
    _joiners(scenario, *((str(1001 + n), "John", "Smith") for n in range(3)))

    scenario.sync()

    assert sorted(_uid(scenario, str(1001 + n))[0] for n in range(3)) == [
        "jsmith",
        "jsmith2",
        "jsmith3",
    ]


def _sync_queries(scenario: Scenario, first: int, count: int) -> int:
    _joiners(scenario, *((str(first + n), "John", "Smith") for n in range(count)))
    with CaptureQueriesContext(connection) as captured:
        scenario.sync()
    return len(captured)


def test_no_query_per_object(scenario):
    """The values in use are read once per run, not per object: provisioning 80 John
    Smiths costs the queries of provisioning 20 (a sync that also has creates of an
    earlier run to look at)."""
    for n in range(20):
        scenario.directory_entry(f"x{n}")
    _sync_queries(scenario, 1001, 2)
    some = _sync_queries(scenario, 2001, 20)
    more = _sync_queries(scenario, 3001, 80)

    assert more <= some, (some, more)
    assert _uid(scenario, "3080") == ["jsmith102"]


# --------------------------------------------------------------------------- the target


def test_check_target_finds_a_value_in_slapd_that_jim_never_imported(scenario, slapd, ldap_ou):
    ConnectedSystem.objects.filter(pk=scenario.directory.pk).update(
        settings=service_settings(slapd, base_dn=ldap_ou)
    )
    ldap = slapd.connection(raise_exceptions=True)
    try:
        for uid in ("jsmith", "JSmith2"):
            ldap.add(
                f"uid={uid},ou=people,{ldap_ou}",
                ["inetOrgPerson"],
                {"cn": uid, "sn": "Smith"},
            )
    finally:
        ldap.unbind()
    _uid_flow(scenario, UNIQUE_UID[:-1] + ", check_target=true)")
    _joiners(scenario, ("1001", "John", "Smith"), ("1002", "Jane", "Smith"))

    scenario.sync()

    assert _uid(scenario, "1001") == ["jsmith3"]
    assert _uid(scenario, "1002") == ["jsmith4"]


def test_the_ldap_lookup_escapes_candidates_and_asks_in_chunks(slapd, ldap_ou):
    ldap = slapd.connection(raise_exceptions=True)
    try:
        for uid in ("jsmith", "jsmith77", "*"):
            ldap.add(f"cn={uid},ou=people,{ldap_ou}", ["inetOrgPerson"], {"sn": "S", "uid": uid})
    finally:
        ldap.unbind()
    candidates = ["a)(uid=*", "JSMITH", "x*", *(f"jsmith{n}" for n in range(2, 120)), "*"]

    with LdapConnector(service_settings(slapd, base_dn=ldap_ou)) as connector:
        found = connector.values_in_use("inetOrgPerson", "uid", candidates)

    assert found == {"JSMITH", "jsmith77", "*"}


def test_the_ldap_lookup_refuses_an_attribute_that_is_not_a_name(slapd, ldap_ou):
    with (
        LdapConnector(service_settings(slapd, base_dn=ldap_ou)) as connector,
        pytest.raises(ConnectorConfigurationError, match="is not an attribute name"),
    ):
        connector.values_in_use("inetOrgPerson", "uid)(cn=*", ["a"])


def test_check_target_that_cannot_connect_is_an_error_on_the_object(scenario):
    _uid_flow(scenario, UNIQUE_UID[:-1] + ", check_target=true)")
    _joiners(scenario, ("1001", "John", "Smith"), ("1002", "Jane", "Smith"))

    activity = scenario.sync()

    errors = [i for i in rpeis(activity) if i.error_type]
    assert [e.error_type for e in errors] == ["connector_error", "connector_error"]
    assert errors[0].message.startswith(
        "sync rule 'Directory people out': cannot look up the uid values in use in Directory"
    )
    assert not PendingExport.objects.exists()


def test_check_target_reads_a_csv_target(tmp_path: Path):
    scenario = build_scenario(connector="csv")
    _uid_flow(scenario, UNIQUE_UID[:-1] + ", check_target=true)")
    write_csv(tmp_path / "directory.csv", [{"entryUUID": "x", "uid": "JSMITH"}])
    ConnectedSystem.objects.filter(pk=scenario.directory.pk).update(
        settings={"path": str(tmp_path / "directory.csv")}
    )
    _joiners(scenario, ("1001", "John", "Smith"))

    scenario.sync()

    assert _uid(scenario, "1001") == ["jsmith2"]


def test_the_csv_connector_reads_the_values_in_use_from_its_file(tmp_path: Path):
    write_csv(
        tmp_path / "accounts.csv",
        [{"id": "1", "login": "JSmith"}, {"id": "2", "login": "jdoe;jd"}, {"id": "3"}],
    )
    connector = CsvConnector({"path": "accounts.csv"}, base_dir=tmp_path)

    with connector:
        found = connector.values_in_use("account", "login", ["jsmith", "jd", "jsmith2"])
        missing = connector.values_in_use("account", "nothing", ["jsmith"])

    assert (found, missing) == ({"jsmith", "jd"}, set())


# --------------------------------------------------------------------------- apply


@pytest.mark.parametrize(
    ("where", "expression", "expected"),
    [
        (
            "export",
            "unique(mv.sn) | lower",
            "sync_rules[2].flows[3].expression: unique(...) must be the whole expression",
        ),
        (
            "export",
            "unique(mv.sn, maximum=3)",
            "sync_rules[2].flows[3].expression: unique(...) has no option maximum",
        ),
        (
            "import",
            "unique(cs.firstName)",
            "sync_rules[0].flows[2].expression: unique(...) can only be used in the "
            "expression of an export flow",
        ),
    ],
)
def test_apply_rejects_unique_where_it_cannot_be_resolved(
    where, expression, expected, tmp_path, monkeypatch
):
    monkeypatch.setenv("JIM_LDAP_PASSWORD", "pw")
    data = example()
    rule, index = (data["sync_rules"][2], 3) if where == "export" else (data["sync_rules"][0], 2)
    rule["flows"][index]["expression"] = expression

    status, _, err = jim("apply", str(write_config(tmp_path, data)))

    assert status == 2
    assert expected in err, err
    assert all(not rows for rows in config_state().values())


def test_apply_accepts_unique_as_an_export_flow(tmp_path, monkeypatch):
    monkeypatch.setenv("JIM_LDAP_PASSWORD", "pw")
    data = example()
    data["sync_rules"][2]["flows"][0] = {
        "cs": "uid",
        "expression": "unique(normalize(mv.givenName[:1] ~ mv.sn) | lower, check_target=true)",
    }

    status, _, err = jim("apply", str(write_config(tmp_path, data)))

    assert status == 0, err


def test_unique_cannot_be_used_in_a_dn_template(tmp_path, monkeypatch):
    monkeypatch.setenv("JIM_LDAP_PASSWORD", "pw")
    data = example()
    data["sync_rules"][2]["dn"] = "uid={{ unique(mv.sn) }},ou=people,dc=example,dc=org"

    status, _, err = jim("apply", str(write_config(tmp_path, data)))

    assert status == 2
    assert "sync_rules[2].dn: unknown name 'unique'" in err, err


# --------------------------------------------------------------------------- the helper


def _request(expression: str, **mv: Any) -> Any:
    view = AttributeView({name: [value] for name, value in mv.items()})
    return compile_expression(expression).evaluate(mv=view)


def test_unique_proposes_the_bases_then_the_first_numbered():
    request = _request(
        "unique([mv.a, mv.b, mv.a, ''], pattern='{base}-{n}', start=0, max=2)", a="x", b="y"
    )

    assert list(request.candidates()) == ["x", "y", "x-0", "x-1", "x-2"]


def test_unique_of_no_value_is_no_value():
    assert _request("unique(mv.missing)") is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("unique('a', pattern='{base}')", "unique(): pattern '{base}' must contain {n}"),
        (
            "unique('a', pattern='{n}{x}')",
            "unique(): pattern '{n}{x}' may use only {base} and {n} as placeholders",
        ),
        ("unique('a', max=100000)", "unique(): start=2, max=100000: numbers must run from 0 up"),
        ("unique('a', start='1')", "unique(): start and max must be whole numbers"),
        ("unique('a') ~ '1'", "unique(...) gives a value only as the whole expression"),
        ("unique('a') | lower", "unique(...) gives a value only as the whole expression"),
    ],
)
def test_a_misused_unique_is_an_expression_error(expression, message):
    with pytest.raises(ExpressionError) as raised:
        _request(expression)

    assert str(raised.value).startswith(message), raised.value


def test_jinjas_unique_filter_is_still_there():
    assert _request("[mv.a, 'y', mv.a] | unique | list", a="x") == ["x", "y"]
