"""The Samba AD domain controller of the test rig is set up as production has it
(docs/connectors/active-directory.md, "Setting up Active Directory for JIM")."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import ldap3
import pytest
from ldap3.core.exceptions import LDAPSocketOpenError
from ldap3.protocol.microsoft import show_deleted_control

from jim_project.devservers.samba import DELETED_OBJECTS_DN, SambaDC
from tests.support import samba


def _service(samba_dc: SambaDC) -> ldap3.Connection:
    return samba_dc.connection(samba_dc.service_dn, samba_dc.service_password)


def test_the_service_account_is_no_administrator(samba_dc: SambaDC) -> None:
    connection = _service(samba_dc)
    assert connection.search(
        samba_dc.service_dn, "(objectClass=*)", ldap3.BASE, attributes=["memberOf", "adminCount"]
    )
    entry = connection.entries[0]
    assert not entry.memberOf.values
    assert not entry.adminCount.value
    # Outside the OU it manages, it cannot write.
    assert not connection.add(f"OU=elsewhere,{samba_dc.base_dn}", "organizationalUnit")
    assert connection.result["description"] == "insufficientAccessRights"


def test_the_service_account_manages_its_ou_and_sees_deletions(
    samba_dc: SambaDC, ad_ou: str
) -> None:
    connection = _service(samba_dc)
    dn = f"CN=Smith\\, John,OU=people,{ad_ou}"
    assert connection.add(
        dn, ["top", "person", "organizationalPerson", "user"], {"sAMAccountName": "rig-jsmith"}
    ), connection.result
    password = '"Str0ng-Passw0rd!"'.encode("utf-16-le")
    assert connection.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [password])]}), (
        connection.result
    )
    assert connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
    guid = uuid.UUID(bytes_le=connection.entries[0].objectGUID.raw_values[0])
    assert connection.delete(dn), connection.result
    assert connection.search(
        DELETED_OBJECTS_DN,
        f"(objectGUID={_escaped_guid(guid)})",
        ldap3.SUBTREE,
        attributes=["isDeleted"],
        controls=[show_deleted_control(criticality=True)],
    ), connection.result
    assert connection.entries[0].isDeleted.value == "TRUE"


def test_ldaps_checks_the_certificate(samba_dc: SambaDC) -> None:
    untrusted = ldap3.Server(
        samba_dc.host, port=636, use_ssl=True, tls=ldap3.Tls(validate=2), connect_timeout=5
    )
    with pytest.raises(LDAPSocketOpenError):
        ldap3.Connection(untrusted, samba_dc.service_dn, samba_dc.service_password, auto_bind=True)


def _escaped_guid(guid: uuid.UUID) -> str:
    return "".join(f"\\{byte:02x}" for byte in guid.bytes_le)


def test_a_pytest_started_by_a_test_leaves_the_runs_dc_alone(
    samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It inherits the run's variables (tests/test_rig.py starts one); its end must not
    stop the DC the other tests use."""
    monkeypatch.setenv(samba.OWNER_VARIABLE, str(os.getppid()))  # not this process
    run_dir = Path(os.environ[samba.RUN_DIR_VARIABLE])

    samba.finish_run()

    assert run_dir.is_dir() and samba_dc.answers()
    assert os.environ[samba.RUN_DIR_VARIABLE] == str(run_dir)
