"""The scenario estate with ``deprovision: disable`` on its people export rule: the
helpers of tests/sync/test_disable_then_delete.py and of the preview fidelity tests."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.utils import timezone

from connectors.models import ConnectorSpaceObject
from exports.models import PendingExport
from tests.scenarios.estate import CONFIG, Estate, person

#: The scenario estate's people rule, deprovisioning by disabling: a marker in
#: ``employeeType`` (also a normal flow: 'active') and ``description`` (only written
#: by the disable), and a move to ou=disabled. The people container is the test's
#: OU, so that the disabled OU is still imported.
DISABLE = """\
    deprovision: disable
    disable:
      flows:
        - {{cs: employeeType, expression: "'disabled'"}}
        - {{cs: description, expression: "'disabled by JIM: ' ~ mv.employeeStatus"}}
      dn: "uid={{{{ mv.accountName }}}},ou=disabled,{base}"
    delete_after_days: 30
    enforce_state: true
    flows:
      - {{cs: employeeType, expression: "'active'"}}
"""


def make_estate(
    tmp_path: Path,
    slapd: Any,
    ldap_ou: str,
    monkeypatch: Any,
    approval: str = "none",
    disable: str = DISABLE,
):
    monkeypatch.setenv("JIM_TEST_LDAP_PASSWORD", slapd.service_password)
    connection = slapd.connection(raise_exceptions=True)
    try:
        connection.add(f"ou=disabled,{ldap_ou}", ["organizationalUnit"])
    finally:
        connection.unbind()
    estate = Estate(tmp_path, ldap_ou, slapd)
    estate.write_people([])
    estate.write_groups([])
    config = CONFIG.replace(
        "    deprovision: delete\n    enforce_state: true\n    flows:\n", disable, 1
    ).replace("        container: ou=people,{base}\n", "        container: {base}\n", 1)
    assert "deprovision: disable" in config
    (tmp_path / "jim.yaml").write_text(
        textwrap.dedent(
            config.format(
                url=slapd.url, service_dn=slapd.service_dn, base=ldap_ou, approval=approval
            )
        )
    )
    call_command("jim", "apply", str(tmp_path / "jim.yaml"))
    return estate


ADA = person("1", "Ada", "Lovelace", "ada")
ALAN = person("2", "Alan", "Turing", "alan")


def provisioned(estate: Estate, people: list[dict]) -> None:
    """People in HR, provisioned to the directory and confirmed by an import."""
    estate.write_people(people)
    estate.run("HR", "Full Import")
    estate.run("HR", "Full Sync")
    assert estate.run("Directory", "Export").counts == {"provisioned": len(people)}
    estate.run("Directory", "Full Import")
    estate.run("Directory", "Full Sync")
    assert not PendingExport.objects.exists()


def people_dn(estate: Estate, uid: str) -> str:
    return f"uid={uid},ou=people,{estate.base}"


def disabled_dn(estate: Estate, uid: str) -> str:
    return f"uid={uid},ou=disabled,{estate.base}"


def cso_of(estate: Estate, uid: str) -> ConnectorSpaceObject:
    return ConnectorSpaceObject.objects.get(
        connected_system__name="Directory", attributes__uid=[uid]
    )


def days_pass(estate: Estate, uid: str, days: int) -> None:
    """Move the clock: the account was disabled ``days`` ago."""
    cso = cso_of(estate, uid)
    assert cso.disabled_at is not None
    cso.disabled_at = timezone.now() - dt.timedelta(days=days)
    cso.save(update_fields=["disabled_at"])


def leave(estate: Estate, status: str = "Suspended") -> None:
    """Ada leaves the export rule's scope (HR still has her: the MVO stays)."""
    estate.write_people([person("1", "Ada", "Lovelace", "ada", status=status), ALAN])
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")


def remove_alan(estate: Estate) -> None:
    """Alan's HR record is gone: his HR CSO leaves, and his MVO's deletion rule fires."""
    estate.write_people([ADA])
    assert estate.run("HR", "Full Import", allow_deletions=True).counts == {"deleted": 1}
    estate.run("HR", "Delta Sync")


def disabled_and_confirmed(estate: Estate, uid: str) -> dict:
    assert estate.run("Directory", "Export").counts == {"exported": 1}
    estate.run("Directory", "Full Import")
    estate.run("Directory", "Full Sync")
    entry = estate.entry(disabled_dn(estate, uid))
    assert entry is not None
    return entry
