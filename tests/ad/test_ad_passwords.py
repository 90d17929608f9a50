"""Initial passwords (an export rule's ``initial_password``) against the real directories:
an account created in the Samba domain controller gets a password that works, which is
nowhere in JIM's database or logs; no password goes over a connection without TLS; a
password the directory's policy refuses is a clear error without it; a failed create
gets a new password when it is retried (none was kept)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import ldap3
import pytest
from django.db import connection
from django.utils import timezone
from ldap3.core.exceptions import LDAPBindError

from connectors.backends.ldap import LdapConnector
from connectors.base import (
    ExportAttributeChange,
    ExportChange,
    ExportResult,
    ObjectTypeSpec,
    Secret,
)
from connectors.models import ConnectedSystem
from exports import passwords
from exports.models import PendingExport, PendingExportAttributeChange
from tests.builders import errors, rpeis, run, write_csv
from tests.support.cli import jim
from tests.support.samba import SambaDC
from tests.support.slapd import service_settings
from tests.test_secrets_leaks import everything_logged, logs  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

CONFIG = """
version: 1
metaverse:
  object_types:
    person:
      attributes: {{employeeId: text, accountName: text, givenName: text, sn: text,
                   displayName: text}}
connected_systems:
  - name: HR
    connector: csv
    settings: {{path: hr.csv}}
    object_types: [{{name: person, external_id: employeeId}}]
    run_profiles:
      - {{name: Full Import, type: full_import}}
      - {{name: Full Sync, type: full_sync}}
  - name: Directory
    connector: ldap
    settings:
{settings}
      bind_password: ${{JIM_TEST_DIRECTORY_PASSWORD}}
    object_types: [{{name: {object_type}, container: "{container}", external_id: dn}}]
    run_profiles: [{{name: Export, type: export}}]
sync_rules:
  - name: HR in
    connected_system: HR
    direction: import
    object_type: person
    metaverse_object_type: person
    join: [{{cs: employeeId, mv: employeeId}}]
    project: true
    flows:
      - {{mv: employeeId, from: employeeId}}
      - {{mv: accountName, from: accountName}}
      - {{mv: givenName, from: firstName}}
      - {{mv: sn, from: lastName}}
      - {{mv: displayName, expression: "cs.firstName ~ ' ' ~ cs.lastName"}}
  - name: Directory out
    connected_system: Directory
    direction: export
    object_type: {object_type}
    metaverse_object_type: person
    provision: true
    dn: "{dn}"
    deprovision: delete
    initial_password: {{attribute: {attribute}, length: 16}}
    flows:
{flows}
"""

AD_FLOWS = """\
      - {cs: sAMAccountName, from: accountName}
      - {cs: userPrincipalName, expression: "mv.accountName ~ '@example.org'"}
      - {cs: givenName, from: givenName}
      - {cs: sn, from: sn}
      - {cs: displayName, from: displayName}
      - {cs: userAccountControl, expression: "512"}
"""
OPENLDAP_FLOWS = """\
      - {cs: uid, from: accountName}
      - {cs: cn, from: displayName}
      - {cs: sn, from: sn}
"""


def apply(
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, Any],
    *,
    ad: bool,
    people: list[dict[str, str]],
) -> None:
    """`jim apply` of HR (``people``) → the directory, whose export rule sets an initial
    password: ``unicodePwd`` in AD, ``userPassword`` in OpenLDAP."""
    monkeypatch.setenv("JIM_TEST_DIRECTORY_PASSWORD", settings.pop("bind_password"))
    base = settings["base_dn"]
    container = f"OU=people,{base}" if ad else f"ou=people,{base}"
    text = CONFIG.format(
        settings="\n".join(f"      {key}: {value!r}" for key, value in settings.items()),
        object_type="user" if ad else "inetOrgPerson",
        container=container,
        dn=("CN={{ mv.displayName }}," if ad else "uid={{ mv.accountName }},") + container,
        attribute="unicodePwd" if ad else "userPassword",
        flows=AD_FLOWS if ad else OPENLDAP_FLOWS,
    )
    (folder / "jim.yaml").write_text(text)
    write_csv(folder / "hr.csv", people)
    status, _, err = jim("apply", str(folder / "jim.yaml"))
    assert status == 0, err


def provision() -> Any:
    """HR's import and sync, then the directory's export run."""
    hr = ConnectedSystem.objects.get(name="HR")
    run(hr, "Full Import")
    run(hr, "Full Sync")
    return run(ConnectedSystem.objects.get(name="Directory"), "Export")


@pytest.fixture
def generated(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password made, in order (the test's only way to learn them)."""
    made: list[str] = []
    original = passwords.generate

    def recording(length: int, avoid: Any = ()) -> str:
        made.append(original(length, avoid))
        return made[-1]

    monkeypatch.setattr(passwords, "generate", recording)
    return made


def database_texts() -> str:
    """Every row of every table of JIM's database, as text."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        tables = [name for (name,) in cursor.fetchall()]
        texts = []
        for table in tables:
            cursor.execute(f'SELECT t::text FROM "{table}" t')
            texts += [row for (row,) in cursor.fetchall()]
    return "\n".join(texts)


def assert_nowhere(password: str, logs: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """Neither the password nor its unicodePwd form in the database or the logs."""
    encoded = f'"{password}"'.encode("utf-16-le")
    stored = database_texts()
    for form in (password, encoded.hex(), password.encode().hex()):
        assert form not in stored
    assert password not in everything_logged(logs)


def person(account: str, first: str, last: str, employee_id: str = "1") -> dict[str, str]:
    return {
        "employeeId": employee_id,
        "firstName": first,
        "lastName": last,
        "accountName": account,
    }


def account() -> str:
    """A sAMAccountName no other test of the shared domain controller uses."""
    return f"pw{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- Active Directory


def test_an_account_created_in_ad_gets_a_working_password_stored_nowhere(
    samba_dc: SambaDC,
    ad_ou: str,
    ad_connection: ldap3.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    generated: list[str],
    logs: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    names = [account(), account()]
    people = [
        person(names[0], "John", "Smith", "1"),
        person(names[1], "Jane", "Doe", "2"),
    ]
    apply(tmp_path, monkeypatch, samba_dc.service_settings(ad_ou), ad=True, people=people)

    activity = provision()

    assert errors(activity) == []
    assert [i.change_type for i in rpeis(activity)] == ["provisioned", "provisioned"]
    assert len(generated) == 2 and len(set(generated)) == 2
    for name in names:
        upn = f"{name}@example.org"
        assert ad_connection.search(
            f"OU=people,{ad_ou}",
            f"(sAMAccountName={name})",
            attributes=["userAccountControl", "pwdLastSet"],
        )
        entry = ad_connection.entries[0]
        assert str(entry.userAccountControl.value) == "512"  # enabled, a normal account
        # The new account binds with one of the passwords made, and no other.
        working = [p for p in generated if _binds(samba_dc, upn, p)]
        assert len(working) == 1
    for password in generated:
        assert_nowhere(password, logs)
    # What awaits the confirming import is what the flows sent, not the password.
    sent = PendingExportAttributeChange.objects.values_list("attribute", flat=True)
    assert sorted(set(sent)) == sorted(
        [
            "displayName",
            "givenName",
            "sAMAccountName",
            "sn",
            "userAccountControl",
            "userPrincipalName",
        ]
    )


def test_a_password_the_ad_policy_refuses_is_a_clear_error_without_it(
    samba_dc: SambaDC, ad_ou: str, ad_connection: ldap3.Connection
) -> None:
    dn = f"CN=Too Short,OU=people,{ad_ou}"
    weak = "Zq7!x"  # under Samba's default 7 characters
    with LdapConnector(samba_dc.service_settings(ad_ou)) as connector:
        (result,) = connector.export([_create(dn, "unicodePwd", weak, sAMAccountName=account())])

    assert not result.ok
    assert result.error.startswith(
        f"add {dn!r} failed: the directory's password policy refused the initial password in "
        "unicodePwd (constraintViolation (19): 0000052D"
    ), result.error
    assert "give the rule's initial_password a length the policy accepts" in result.error
    assert weak not in result.error
    assert not ad_connection.search(dn, "(objectClass=*)", ldap3.BASE)


# --------------------------------------------------------------------------- OpenLDAP


def test_no_password_goes_over_ldap_without_tls(slapd: Any, ldap_ou: str) -> None:
    dn = f"uid=plain,ou=people,{ldap_ou}"
    with LdapConnector(service_settings(slapd, base_dn=ldap_ou)) as connector:
        (result,) = connector.export([_create(dn, "userPassword", "Secret-Pa55-word", uid="plain")])

    assert not result.ok
    assert result.error == (
        f"cannot create {dn!r}: userPassword: refusing to send a password over {slapd.url} "
        "without TLS; use an ldaps:// url or start_tls: true"
    )
    assert "Secret-Pa55-word" not in result.error
    connection = slapd.connection()
    try:
        assert not connection.search(dn, "(objectClass=*)", ldap3.BASE)  # nothing was sent
    finally:
        connection.unbind()


def test_a_create_refused_over_plain_ldap_gets_a_new_password_when_retried(
    slapd: Any,
    ldap_ou: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    generated: list[str],
    logs: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    settings = service_settings(slapd, base_dn=ldap_ou)
    apply(tmp_path, monkeypatch, settings, ad=False, people=[person("jsmith", "John", "Smith")])

    refused = provision()

    assert [i.error_type for i in rpeis(refused)] == ["export_failed"]
    assert "refusing to send a password over" in rpeis(refused)[0].message
    (pending,) = PendingExport.objects.all()
    assert (pending.status, pending.error_count) == ("export_not_confirmed", 1)

    # StartTLS on, the retry due: the create goes, with a password made for it.
    directory = ConnectedSystem.objects.get(name="Directory")
    directory.settings = {**directory.settings, "start_tls": True, "ca_file": str(slapd.ca_file)}
    directory.save()
    PendingExport.objects.update(next_retry_at=timezone.now())
    sent = run(directory, "Export")

    assert errors(sent) == []
    assert len(generated) == 2 and generated[0] != generated[1]
    dn = f"uid=jsmith,ou=people,{ldap_ou}"
    assert _binds_slapd(slapd, dn, generated[1])
    assert not _binds_slapd(slapd, dn, generated[0])
    for password in generated:
        assert_nowhere(password, logs)


def test_a_password_a_connector_echoes_in_an_error_is_masked() -> None:
    change = _create("uid=x,ou=people,dc=example,dc=org", "userPassword", "Echo-Pa55-word")
    results = [
        ExportResult(1, ok=False, error="add failed: bad value 'Echo-Pa55-word' for userPassword")
    ]
    passwords.scrub(results, [change])
    assert results[0].error == "add failed: bad value 'Secret(********)' for userPassword"


# --------------------------------------------------------------------------- helpers


def _create(dn: str, attribute: str, password: str, **values: str) -> ExportChange:
    ad = attribute == "unicodePwd"
    spec = ObjectTypeSpec("user" if ad else "inetOrgPerson", "dn")
    changes = [ExportAttributeChange(name, "update", [value]) for name, value in values.items()]
    if not ad:
        changes += [ExportAttributeChange("sn", "update", ["Plain"])]
    changes.append(ExportAttributeChange(attribute, "add", [Secret(password)]))
    return ExportChange(1, "create", spec, dn=dn, attribute_changes=changes)


def _binds(samba_dc: SambaDC, user: str, password: str) -> bool:
    try:
        samba_dc.connection(user, password).unbind()
    except LDAPBindError:
        return False
    return True


def _binds_slapd(slapd: Any, dn: str, password: str) -> bool:
    server = ldap3.Server("127.0.0.1", port=slapd.port, get_info=ldap3.NONE)
    connection = ldap3.Connection(server, dn, password)
    try:
        return bool(connection.bind())
    finally:
        connection.unbind()
