"""An HR CSV file and the run's Samba AD domain controller, configured by `jim apply` as
docs/connectors/active-directory.md shows: the estate of the AD scenario tests (the
``ad_estate`` fixture, tests/ad/conftest.py).

Under the test's OU: ``OU=Engineering`` and ``OU=Sales`` (a person's department is the
OU their account lives in, so a mover moves), ``OU=disabled`` (where leavers wait),
``OU=groups``. JIM binds as the delegated service account over LDAPS.

``sAMAccountName`` and ``userPrincipalName`` are unique in the whole domain, and the
run's tests share one domain controller: each estate's account names and UPNs start
with its own :attr:`AdEstate.tag`.
"""

from __future__ import annotations

import secrets
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management import call_command
from ldap3.core.exceptions import LDAPException

from connectors.models import Activity, ConnectedSystem, ConnectorSpaceObject
from jim_project.devservers.samba import SambaDC
from tests.builders import run, write_csv

DEPARTMENTS = ("Engineering", "Sales")

CONFIG = """
version: 1
metaverse:
  object_types:
    person:
      attributes:
        employeeId: text
        givenName: text
        sn: text
        displayName: text
        department: text
        title: text
        employeeStatus: text
connected_systems:
  - name: HR
    connector: csv
    settings: {{path: hr.csv}}
    object_types:
      - name: person
        external_id: employeeId
    run_profiles:
      - {{name: Full Import, type: full_import}}
      - {{name: Full Sync, type: full_sync}}
      - {{name: Delta Sync, type: delta_sync}}
  - name: AD
    connector: ldap
    settings:
      url: {url}
      bind_dn: {service_dn}
      bind_password: ${{JIM_TEST_AD_PASSWORD}}
      base_dn: {base}
      ca_file: {ca_file}
      page_size: 200
    object_types:
      - name: user
        container: {base}
        external_id: objectGUID
        secondary_external_id: dn
    export: {{approval: none, max_retries: 3, retry_backoff_seconds: 60}}
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
      - {{mv: department, from: department}}
      - {{mv: title, from: title}}
      - {{mv: employeeStatus, from: status}}
  - name: AD people join
    connected_system: AD
    direction: import
    object_type: user
    metaverse_object_type: person
    join: [{{cs: employeeID, mv: employeeId}}]
    project: false
    flows: []
  - name: AD people out
    connected_system: AD
    direction: export
    object_type: user
    metaverse_object_type: person
    scope: "mv.employeeStatus == 'Active'"
    provision: true
    dn: "CN={{{{ mv.displayName }}}},OU={{{{ mv.department }}}},{base}"
    deprovision: disable
    disable:
      dn: "CN={{{{ mv.displayName }}}},OU=disabled,{base}"
      flows:
        - {{cs: userAccountControl, expression: "514"}}
    delete_after_days: 30
    initial_password: {{attribute: unicodePwd, length: 16}}
    enforce_state: true
    flows:
      - {{cs: sAMAccountName, expression: "unique(('{tag}' ~ mv.givenName[:1] ~ mv.sn) | lower)"}}
      - {{cs: userPrincipalName, expression: "'{tag}' ~ mv.employeeId ~ '@example.org'"}}
      - {{cs: employeeID, from: employeeId}}
      - {{cs: givenName, from: givenName}}
      - {{cs: sn, from: sn}}
      - {{cs: displayName, from: displayName}}
      - {{cs: department, from: department}}
      - {{cs: title, from: title}}
      - {{cs: userAccountControl, expression: "512"}}
"""

PEOPLE_HEADER = ["employeeId", "firstName", "lastName", "department", "title", "status"]


def person(employee_id: str, first: str, last: str, **extra: str) -> dict[str, str]:
    """A row of the HR file; ``extra``: department, title, status."""
    return {
        "employeeId": employee_id,
        "firstName": first,
        "lastName": last,
        "department": extra.get("department", "Engineering"),
        "title": extra.get("title", "Engineer"),
        "status": extra.get("status", "Active"),
    }


@dataclass
class AdEstate:
    """The HR file, the domain controller, and how to run things and look into AD."""

    folder: Path
    base: str
    dc: SambaDC
    #: What this estate's account names and UPNs start with.
    tag: str

    def write_people(self, rows: list[dict[str, str]]) -> None:
        write_csv(self.folder / "hr.csv", rows, header=PEOPLE_HEADER)

    def run(self, system: str, profile: str, **kwargs: Any) -> Activity:
        return run(ConnectedSystem.objects.get(name=system), profile, **kwargs)

    def cycle(self) -> None:
        """HR import and sync, export to AD, confirming import: each must complete."""
        for system, profile in (
            ("HR", "Full Import"),
            ("HR", "Full Sync"),
            ("AD", "Export"),
            ("AD", "Delta Import"),
            ("AD", "Delta Sync"),
        ):
            activity = self.run(system, profile)
            errors = list(activity.items.exclude(error_type="").values_list("message", flat=True))
            assert activity.status == "complete" and not errors, (system, profile, errors)

    def users(self) -> dict[str, dict[str, list[str]]]:
        """The user accounts under the test's OU, by employeeID."""
        connection = self.dc.connection()
        try:
            connection.search(
                self.base,
                "(&(objectClass=user)(employeeID=*))",
                attributes=[
                    "employeeID",
                    "sAMAccountName",
                    "userPrincipalName",
                    "displayName",
                    "title",
                    "userAccountControl",
                    "objectGUID",
                    "distinguishedName",
                ],
            )
            return {
                entry["employeeID"].value: {
                    **{
                        name: [str(v) for v in entry[name].values]
                        for name in entry.entry_attributes
                        if name != "objectGUID"
                    },
                    "objectGUID": [str(uuid.UUID(bytes_le=entry["objectGUID"].raw_values[0]))],
                }
                for entry in connection.entries
            }
        finally:
            connection.unbind()

    def modify(self, dn: str, changes: dict[str, Any]) -> None:
        """Change an entry directly in AD, as an administrator would."""
        connection = self.dc.connection()
        try:
            assert connection.modify(dn, changes), connection.result
        finally:
            connection.unbind()

    def bind_as(self, dn: str, password: str) -> bool:
        try:
            self.dc.connection(dn, password).unbind()
        except LDAPException:
            return False
        return True

    def ad_csos(self) -> list[ConnectorSpaceObject]:
        return list(ConnectorSpaceObject.objects.filter(connected_system__name="AD").order_by("pk"))


def make_ad_estate(tmp_path: Path, dc: SambaDC, base: str, monkeypatch: Any) -> AdEstate:
    """The configuration applied with an empty HR file; the department OUs made."""
    connection = dc.connection(raise_exceptions=True)
    try:
        for department in DEPARTMENTS:
            connection.add(f"OU={department},{base}", ["organizationalUnit"])
    finally:
        connection.unbind()
    monkeypatch.setenv("JIM_TEST_AD_PASSWORD", dc.service_password)
    estate = AdEstate(tmp_path, base, dc, tag=f"t{secrets.token_hex(2)}")
    estate.write_people([])
    config = tmp_path / "jim.yaml"
    config.write_text(
        textwrap.dedent(
            CONFIG.format(
                url=dc.ldaps_url,
                service_dn=dc.service_dn,
                base=base,
                ca_file=dc.ca_file,
                tag=estate.tag,
            )
        )
    )
    call_command("jim", "apply", str(config))
    # The first import of AD is a full one: it sets the watermark the deltas start from.
    assert estate.run("AD", "Full Import").status == "complete"
    return estate
