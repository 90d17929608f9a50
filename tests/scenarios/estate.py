"""An HR CSV file and a private slapd configured as the spec's example (by `jim apply`):
the estate the scenario tests run against (the ``estate`` fixture: ``conftest.py``)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from django.core.management import call_command

from connectors.models import ConnectedSystem, ConnectorSpaceObject
from tests.builders import run, write_csv

CONFIG = """
version: 1
metaverse:
  object_types:
    person:
      attributes:
        employeeId: text
        accountName: text
        givenName: text
        sn: text
        displayName: text
        department: text
        employeeStatus: text
        manager: reference
    group:
      attributes:
        name: text
        member: {{type: reference, multivalued: true}}
connected_systems:
  - name: HR
    connector: csv
    settings: {{path: hr.csv}}
    object_types:
      - name: person
        external_id: employeeId
        attributes:
          managerId: {{type: reference, references: person}}
    run_profiles:
      - {{name: Full Import, type: full_import}}
      - {{name: Full Sync, type: full_sync}}
      - {{name: Delta Sync, type: delta_sync}}
  - name: Groups
    connector: csv
    settings: {{path: groups.csv}}
    object_types:
      - name: group
        external_id: name
    run_profiles:
      - {{name: Full Import, type: full_import}}
      - {{name: Full Sync, type: full_sync}}
  - name: Directory
    connector: ldap
    settings:
      url: {url}
      bind_dn: {service_dn}
      bind_password: ${{JIM_TEST_LDAP_PASSWORD}}
      base_dn: {base}
      page_size: 50
    object_types:
      - name: inetOrgPerson
        container: ou=people,{base}
        external_id: entryUUID
        secondary_external_id: dn
      - name: groupOfNames
        container: ou=groups,{base}
        external_id: entryUUID
        secondary_external_id: dn
    export: {{approval: {approval}, max_retries: 3, retry_backoff_seconds: 60}}
    run_profiles:
      - {{name: Full Import, type: full_import}}
      - {{name: Delta Import, type: delta_import}}
      - {{name: Full Sync, type: full_sync}}
      - {{name: Delta Sync, type: delta_sync}}
      - {{name: Export, type: export}}
sync_rules:
  - name: HR people in
    connected_system: HR
    direction: import
    object_type: person
    metaverse_object_type: person
    scope: "cs.status != 'Terminated'"
    join: [{{cs: employeeId, mv: employeeId}}]
    project: true
    flows:
      - {{mv: employeeId, from: employeeId}}
      - {{mv: givenName, from: firstName}}
      - {{mv: sn, from: lastName}}
      - {{mv: displayName, expression: "cs.firstName ~ ' ' ~ cs.lastName"}}
      - {{mv: accountName, from: accountName}}
      - {{mv: department, from: department}}
      - {{mv: employeeStatus, from: status}}
      - {{mv: manager, from: managerId}}
  - name: Groups in
    connected_system: Groups
    direction: import
    object_type: group
    metaverse_object_type: group
    join: [{{cs: name, mv: name}}]
    project: true
    flows:
      - {{mv: name, from: name}}
  - name: Directory people join
    connected_system: Directory
    direction: import
    object_type: inetOrgPerson
    metaverse_object_type: person
    join: [{{cs: uid, mv: accountName}}]
    project: false
    flows: []
  - name: Directory people out
    connected_system: Directory
    direction: export
    object_type: inetOrgPerson
    metaverse_object_type: person
    scope: "mv.employeeStatus == 'Active'"
    provision: true
    dn: "uid={{{{ mv.accountName }}}},ou=people,{base}"
    deprovision: delete
    enforce_state: true
    flows:
      - {{cs: uid, from: accountName}}
      - {{cs: cn, from: displayName}}
      - {{cs: sn, from: sn}}
      - {{cs: givenName, from: givenName}}
      - {{cs: mail, expression: "(mv.givenName ~ '.' ~ mv.sn) | lower ~ '@example.org'"}}
      - {{cs: departmentNumber, from: department}}
      - {{cs: manager, from: manager}}
  - name: Directory groups out
    connected_system: Directory
    direction: export
    object_type: groupOfNames
    metaverse_object_type: group
    provision: true
    dn: "cn={{{{ mv.name }}}},ou=groups,{base}"
    deprovision: delete
    flows:
      - {{cs: cn, from: name}}
      - {{cs: member, from: member}}
"""

PEOPLE_HEADER = [
    "employeeId",
    "firstName",
    "lastName",
    "accountName",
    "department",
    "status",
    "managerId",
]


@dataclass
class Estate:
    """The HR file, the groups file, the directory, and how to run things."""

    folder: Path
    base: str
    ldap: object

    def write_people(self, rows: list[dict]) -> None:
        write_csv(self.folder / "hr.csv", rows, header=PEOPLE_HEADER)

    def write_groups(self, rows: list[dict]) -> None:
        write_csv(self.folder / "groups.csv", rows, header=["name"])

    def run(self, system: str, profile: str, **kwargs):
        return run(ConnectedSystem.objects.get(name=system), profile, **kwargs)

    def entry(self, dn: str) -> dict | None:
        connection = self.ldap.connection()
        try:
            if not connection.search(
                dn, "(objectClass=*)", search_scope="BASE", attributes=["*", "entryUUID"]
            ):
                return None
            return {
                k: list(v) if isinstance(v, list) else [v]
                for k, v in connection.entries[0].entry_attributes_as_dict.items()
            }
        finally:
            connection.unbind()

    def modify(self, dn: str, changes: dict) -> None:
        connection = self.ldap.connection()
        try:
            assert connection.modify(dn, changes), connection.result
        finally:
            connection.unbind()

    def directory_csos(self) -> list[ConnectorSpaceObject]:
        return list(
            ConnectorSpaceObject.objects.filter(connected_system__name="Directory").order_by("pk")
        )


def person(
    employee_id: str, first: str, last: str, account: str, manager: str = "", **extra
) -> dict:
    """A row of the HR file (``PEOPLE_HEADER``); ``extra``: department, status."""
    return {
        "employeeId": employee_id,
        "firstName": first,
        "lastName": last,
        "accountName": account,
        "department": extra.get("department", "Engineering"),
        "status": extra.get("status", "Active"),
        "managerId": manager,
    }


def make_estate(tmp_path, slapd, ldap_ou, monkeypatch, approval: str = "none") -> Estate:
    """The configuration applied with empty files, the directory under ``ldap_ou``;
    ``approval`` is the directory's export approval policy."""
    monkeypatch.setenv("JIM_TEST_LDAP_PASSWORD", slapd.service_password)
    estate = Estate(tmp_path, ldap_ou, slapd)
    estate.write_people([])
    estate.write_groups([])
    config = tmp_path / "jim.yaml"
    config.write_text(
        textwrap.dedent(
            CONFIG.format(
                url=slapd.url, service_dn=slapd.service_dn, base=ldap_ou, approval=approval
            )
        )
    )
    call_command("jim", "apply", str(config))
    return estate
