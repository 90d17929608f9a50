"""The test rig itself: the database is PostgreSQL, and the private slapd behaves like
the directory the LDAP connector will meet (accesslog, restarts, TLS, size limits), set
up as docs/openldap.md tells an administrator to: JIM binds as a service account
that is not the rootdn, under OpenLDAP's default size limit."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import ldap3
import pytest
from django.db import connection
from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError

from bench.directory import start_directory
from connectors.backends.ldap import LdapConnector
from connectors.base import ConnectorError, ObjectTypeSpec
from tests.support import slapd as slapd_module
from tests.support.postgres import subprocess_database_url
from tests.support.slapd import Slapd, SlapdError, delete_subtree, start_slapd

REPO = Path(__file__).resolve().parent.parent
SIZE_LIMIT_EXCEEDED = 4


def _person(connection: ldap3.Connection, dn: str, **attributes: str) -> None:
    uid = dn.split(",")[0].split("=")[1]
    assert connection.add(dn, ["inetOrgPerson"], {"cn": uid, "sn": uid, **attributes}), (
        connection.result
    )


def _read(connection: ldap3.Connection, dn: str, attributes: list[str]) -> dict:
    assert connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=attributes), (
        connection.result
    )
    return connection.response[0]["attributes"]


def _accesslog(connection: ldap3.Connection, slapd: Slapd, query: str) -> list[dict]:
    connection.search(slapd.accesslog_base, query, attributes=["*"])
    entries = [e["attributes"] for e in connection.response if e["type"] == "searchResEntry"]
    return sorted(entries, key=lambda entry: entry["reqStart"])


@pytest.mark.django_db
def test_database_is_postgresql():
    assert connection.vendor == "postgresql"
    assert connection.settings_dict["NAME"].startswith("test_")


@pytest.mark.django_db
def test_a_subprocess_reaches_the_test_database():
    script = (
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('SELECT current_database(), count(*) FROM django_migrations')\n"
        "    print(*cursor.fetchone())"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--verbosity", "0", "-c", script],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": subprocess_database_url()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    name, migrations = result.stdout.split()
    assert name == connection.settings_dict["NAME"]
    assert int(migrations) > 0


def test_admin_adds_an_entry_and_reads_it_back(ldap_connection, ldap_ou):
    dn = f"uid=jsmith,ou=people,{ldap_ou}"
    _person(ldap_connection, dn, givenName="John", mail="jsmith@example.org")

    attributes = _read(ldap_connection, dn, ["givenName", "mail", "entryUUID"])

    assert attributes["givenName"] == ["John"]
    assert attributes["mail"] == ["jsmith@example.org"]
    assert len(attributes["entryUUID"][0]) == 36  # operational: returned because asked for


def test_accesslog_records_add_modify_and_rename(slapd, ldap_connection, ldap_ou):
    dn = f"uid=jdoe,ou=people,{ldap_ou}"
    _person(ldap_connection, dn)
    (entry_uuid,) = _read(ldap_connection, dn, ["entryUUID"])["entryUUID"]
    assert ldap_connection.modify(dn, {"sn": [(ldap3.MODIFY_REPLACE, ["Doe"])]})
    assert ldap_connection.modify_dn(dn, "uid=jdoe2", new_superior=f"ou=groups,{ldap_ou}"), (
        ldap_connection.result
    )

    log = _accesslog(ldap_connection, slapd, f"(reqEntryUUID={entry_uuid})")

    assert [entry["reqType"] for entry in log] == [["add"], ["modify"], ["modrdn"]]
    add, modify, rename = log
    assert add["reqDN"] == [dn]
    assert "sn:+ jdoe" in add["reqMod"]
    assert "sn:= Doe" in modify["reqMod"]
    assert rename["reqNewRDN"] == ["uid=jdoe2"]
    assert rename["reqNewSuperior"] == [f"ou=groups,{ldap_ou}"]
    assert add["reqStart"] < modify["reqStart"] < rename["reqStart"]


def test_accesslog_is_readable_by_the_service_account_not_by_other_users(
    slapd, ldap_connection, ldap_ou
):
    reader_dn = f"uid=reader,{ldap_ou}"
    _person(ldap_connection, reader_dn, userPassword="reader-Pa55")
    reader = slapd.connection(reader_dn, "reader-Pa55")
    service = slapd.connection(slapd.service_dn, slapd.service_password)

    reader.search(slapd.accesslog_base, "(objectClass=*)")

    assert reader.response == []
    assert _accesslog(service, slapd, f"(reqDN={reader_dn})")
    assert _accesslog(ldap_connection, slapd, f"(reqDN={reader_dn})")


def test_stop_and_start_keep_the_ports_and_the_data(slapd, ldap_ou):
    dn = f"uid=survivor,ou=people,{ldap_ou}"
    _person(slapd.connection(), dn)
    port, ldaps_port = slapd.port, slapd.ldaps_port

    slapd.stop()
    try:
        assert not slapd.is_running()
        with pytest.raises(LDAPSocketOpenError):
            slapd.connection()
    finally:
        slapd.start()

    assert slapd.is_running()
    assert (slapd.port, slapd.ldaps_port) == (port, ldaps_port)
    assert _read(slapd.connection(), dn, ["cn"])["cn"] == ["survivor"]


def _tls(ca_file: Path | None) -> ldap3.Tls:
    if ca_file is None:  # the system's CAs only, which don't include the test CA
        return ldap3.Tls(validate=ssl.CERT_REQUIRED)
    return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(ca_file))


def test_ldaps_with_the_ca_binds(slapd):
    server = slapd.server(ldaps=True, tls=_tls(slapd.ca_file))
    connection = ldap3.Connection(
        server, slapd.admin_dn, slapd.admin_password, auto_bind=True, receive_timeout=10
    )
    assert connection.bound
    assert slapd.ldaps_url.startswith("ldaps://")
    assert connection.extend.standard.who_am_i() == f"dn:{slapd.admin_dn}"


def test_ldaps_without_the_ca_is_refused(slapd):
    server = slapd.server(ldaps=True, tls=_tls(None))
    with pytest.raises(LDAPSocketOpenError, match=r"(?i)certificate verify failed"):
        ldap3.Connection(server, slapd.admin_dn, slapd.admin_password, auto_bind=True)


def test_start_tls_checks_the_certificate(slapd):
    trusted = ldap3.Connection(
        slapd.server(tls=_tls(slapd.ca_file)), slapd.admin_dn, slapd.admin_password
    )
    trusted.open()
    assert trusted.start_tls()
    assert trusted.bind()

    untrusted = ldap3.Connection(slapd.server(tls=_tls(None)), slapd.admin_dn, slapd.admin_password)
    untrusted.open()
    with pytest.raises(LDAPException, match=r"(?i)certificate verify failed"):
        untrusted.start_tls()


def test_size_limit_in_the_request_is_exceeded(ldap_connection, ldap_ou):
    for uid in ("a", "b", "c"):
        _person(ldap_connection, f"uid={uid},ou=people,{ldap_ou}")

    ldap_connection.search(f"ou=people,{ldap_ou}", "(uid=*)", size_limit=2)

    assert ldap_connection.result["result"] == SIZE_LIMIT_EXCEEDED
    assert len(ldap_connection.response) == 2


def _config(ldap_connection: ldap3.Connection, dn: str, attribute: str) -> list[str]:
    """The values of one attribute of a cn=config entry (the admin is its rootdn)."""
    assert ldap_connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[attribute]), (
        ldap_connection.result
    )
    values = ldap_connection.response[0]["raw_attributes"].get(attribute, [])
    return [value.decode() for value in values]


def test_jim_binds_as_a_service_account_that_is_not_the_rootdn(slapd, ldap_connection):
    """The rig is the directory of docs/openldap.md ("Configuring OpenLDAP for
    JIM"): JIM's connected systems bind as cn=jim-sync, which is nobody's rootdn, and
    OpenLDAP's default size limit stays on for it on both databases."""
    assert slapd.service_dn == slapd_module.SERVICE_DN != slapd.admin_dn
    for database in (slapd_module.DATA_DATABASE_DN, slapd_module.ACCESSLOG_DATABASE_DN):
        assert _config(ldap_connection, database, "olcRootDN") == [slapd.admin_dn]
        assert _config(ldap_connection, database, "olcSizeLimit") == []  # the default, 500
        assert _config(ldap_connection, database, "olcLimits") == [
            "{0}" + slapd_module.SERVICE_LIMITS
        ]
    assert _config(ldap_connection, "olcDatabase={-1}frontend,cn=config", "olcSizeLimit") == []
    limits = slapd_module.SERVICE_LIMITS
    assert limits == f'dn.exact="{slapd.service_dn}" size.prtotal=unlimited'
    service = slapd.connection(slapd.service_dn, slapd.service_password)
    assert service.extend.standard.who_am_i() == f"dn:{slapd.service_dn}"


def test_the_service_account_meets_the_size_limit_of_500_on_both_databases(
    slapd, ldap_connection, ldap_ou
):
    """Plain searches stop at 500 entries, in the data and in the accesslog; paged
    searches go on for the service account only (its ``size.prtotal=unlimited``)."""
    reader_dn = f"uid=reader,{ldap_ou}"
    _person(ldap_connection, reader_dn, userPassword="reader-Pa55")
    (reader_added,) = _accesslog(ldap_connection, slapd, f"(reqDN={reader_dn})")
    for number in range(500):
        _person(ldap_connection, f"uid=p{number},ou=people,{ldap_ou}")
    service = slapd.connection(slapd.service_dn, slapd.service_password)
    people = (ldap_ou, "(uid=*)")  # the reader and 500 people
    since = reader_added["reqStart"][0]
    log = (slapd.accesslog_base, f"(&(objectClass=auditAdd)(reqStart>={since}))")  # 501 adds

    for base, query in (people, log):
        service.search(base, query, attributes=["1.1"])
        assert service.result["result"] == SIZE_LIMIT_EXCEEDED, (base, service.result)
        assert len(service.response) == 500
        entries = service.extend.standard.paged_search(
            base, query, attributes=["1.1"], paged_size=200, generator=False
        )
        assert (service.result["result"], len(entries)) == (0, 501), base

    reader = slapd.connection(reader_dn, "reader-Pa55")
    entries = reader.extend.standard.paged_search(
        *people, attributes=["1.1"], paged_size=200, generator=False
    )
    assert (reader.result["result"], len(entries)) == (SIZE_LIMIT_EXCEEDED, 500)


def test_without_its_limits_line_the_service_account_imports_500_entries_at_most(
    slapd, ldap_connection, ldap_ou
):
    """Why the rig (and docs/openldap.md) gives the service account
    ``size.prtotal=unlimited``: paged searches are otherwise bounded by the hard limit."""
    for number in range(501):
        _person(ldap_connection, f"uid=p{number},ou=people,{ldap_ou}")
    limits = {"olcLimits": [(ldap3.MODIFY_DELETE, ["{0}" + slapd_module.SERVICE_LIMITS])]}
    assert ldap_connection.modify(slapd_module.DATA_DATABASE_DN, limits), ldap_connection.result
    try:
        spec = ObjectTypeSpec("inetOrgPerson", "entryUUID", "dn", container=f"ou=people,{ldap_ou}")
        with LdapConnector(slapd_module.service_settings(slapd)) as connector:
            stream = connector.import_objects([spec], delta=False, persisted_data={})
            with pytest.raises(ConnectorError, match="its size limit was exceeded"):
                list(stream.pages)
    finally:
        limits = {"olcLimits": [(ldap3.MODIFY_ADD, ["{0}" + slapd_module.SERVICE_LIMITS])]}
        assert ldap_connection.modify(slapd_module.DATA_DATABASE_DN, limits)
    with LdapConnector(slapd_module.service_settings(slapd)) as connector:
        stream = connector.import_objects([spec], delta=False, persisted_data={})
        assert sum(len(page.objects) for page in stream.pages) == 501


def test_the_service_account_writes_the_data_and_nothing_else(slapd, ldap_connection, ldap_ou):
    service = slapd.connection(slapd.service_dn, slapd.service_password)
    dn = f"uid=made,ou=people,{ldap_ou}"

    assert service.add(dn, ["inetOrgPerson"], {"cn": "m", "sn": "m", "userPassword": "m-Pa55"})
    assert service.modify(dn, {"title": [(ldap3.MODIFY_ADD, ["Dr"])]})
    assert _read(service, dn, ["title", "userPassword"]) == {"title": ["Dr"], "userPassword": []}
    assert service.delete(dn)
    assert service.add(f"ou=jim-made,{slapd.base_dn}", ["organizationalUnit"])  # a container
    assert service.delete(f"ou=jim-made,{slapd.base_dn}")

    denied = [
        service.modify(slapd.base_dn, {"description": [(ldap3.MODIFY_ADD, ["x"])]}),
        service.modify(slapd.service_dn, {"description": [(ldap3.MODIFY_ADD, ["x"])]}),
        service.add(f"cn=other,{slapd_module.SERVICES_OU}", ["organizationalRole"]),
        service.add(f"reqStart=20000101000000.000000Z,{slapd.accesslog_base}", ["auditAdd"]),
    ]
    assert denied == [False] * 4
    assert not service.search("cn=config", "(objectClass=*)", ldap3.BASE)


def test_the_benchmarks_slapd_syncs_every_commit(slapd, ldap_connection):
    """The suite's slapd may skip syncing to disk; the benchmarks' may not."""
    for database in (slapd_module.DATA_DATABASE_DN, slapd_module.ACCESSLOG_DATABASE_DN):
        assert _config(ldap_connection, database, "olcDbNoSync") == ["TRUE"]
    bench_slapd = start_directory()
    try:
        admin = bench_slapd.connection()
        for database in (slapd_module.DATA_DATABASE_DN, slapd_module.ACCESSLOG_DATABASE_DN):
            assert _config(admin, database, "olcDbNoSync") in ([], ["FALSE"])
            assert _config(admin, database, "olcLimits") == ["{0}" + slapd_module.SERVICE_LIMITS]
        admin.unbind()
    finally:
        bench_slapd.destroy()


def test_delete_subtree_removes_escaped_and_nested_entries(ldap_connection, ldap_ou):
    parent = f"ou=people,{ldap_ou}"
    assert ldap_connection.add(f"ou=nested,{parent}", ["organizationalUnit"])
    _person(ldap_connection, f"uid=deep,ou=nested,{parent}")
    assert ldap_connection.add(f"cn=Smith\\, John,{parent}", ["inetOrgPerson"], {"sn": "Smith"}), (
        ldap_connection.result
    )

    assert delete_subtree(ldap_connection, parent) == 4
    assert delete_subtree(ldap_connection, parent) == 0
    ldap_connection.search(ldap_ou, "(objectClass=*)", ldap3.SUBTREE, attributes=[])
    assert [entry["dn"] for entry in ldap_connection.response] == [ldap_ou, f"ou=groups,{ldap_ou}"]


def test_a_start_failure_shows_slapd_own_output(slapd):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        second = Slapd(
            host=slapd.host,
            port=blocker.getsockname()[1],
            ldaps_port=slapd.ldaps_port,
            data_dir=slapd.data_dir,
            ca_file=slapd.ca_file,
        )
        with pytest.raises(SlapdError, match="Address already in use") as failure:
            second.start()
    assert "slapd exited with status" in str(failure.value)
    assert slapd.is_running()


def test_a_missing_slapd_fails_with_install_instructions(monkeypatch, tmp_path):
    monkeypatch.setattr(slapd_module, "SLAPD", tmp_path / "no-slapd")

    with pytest.raises(SlapdError, match="apt-get install slapd ldap-utils"):
        start_slapd()


def test_private_postgresql_is_started_when_none_answers(tmp_path):
    """The fresh-machine path: nothing on the probed port, so the rig runs its own."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        probe = f"127.0.0.1:{closed.getsockname()[1]}"  # bound, not listening
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in {"DATABASE_URL", "PYTEST_ADDOPTS"}
            and not name.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))
        }
        env["JIM_TEST_PG_PROBE"] = probe
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "tests/test_rig.py::test_database_is_postgresql",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "database: a private PostgreSQL" in result.stdout
    assert f"nothing answered on {probe}" in result.stdout
    assert "1 passed" in result.stdout
