"""Directory safety against the real slapd: names that mean something in LDAP syntax
are only ever data.

People whose account names (the RDN ``uid``) and surnames are ``*)(uid=*``, ``a,b``,
``a+b``, ``#a``, `` a``, ``b ``, ``a\\b``, ``=`` and non-ASCII go through the whole
cycle (HR file → sync → export to slapd → confirming import → sync): each becomes
exactly the entry intended (its DN escaped per RFC 4514), some join entries that were
there before, renames move exactly them, and the import reads every value back as it
was sent. Lookups by external id (a delete without a DN) use RFC 4515-escaped filters
and never touch another entry. And certificates — and the host names in them — are
checked unless a connected system says otherwise.

`` a`` and ``b `` differ in more than their spaces: a directory compares ``uid`` values
with insignificant spaces removed (RFC 4518), so `` a`` and ``a `` would be one uid.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import textwrap
import threading
from collections.abc import Iterator

import ldap3
import pytest
from django.core.management import call_command

from connectors.backends.ldap import LdapConnector
from connectors.backends.ldap.session import Session
from connectors.backends.ldap.settings import LdapSettings
from connectors.base import ConnectionFailed, ObjectTypeSpec
from connectors.models import ConnectedSystem, ConnectorSpaceObject
from core.dn import escape_rdn_value, parse_dn
from exports.models import PendingExport
from jim_project.devservers.certificates import TlsFiles, make_server_certificate
from metaverse.models import MetaverseObject
from tests.builders import rpeis, run, write_csv
from tests.connectors.ldap_entries import Entry, add_entries, change
from tests.support.slapd import service_settings

HOSTILE = [
    "*)(uid=*",
    "a,b",
    "a+b",
    "#a",
    " a",
    "b ",
    "a\\b",
    "=",
    "Zoë Ångström",
    "李",
]
#: Accounts that exist in the directory before JIM runs: the sync joins them.
ALREADY_THERE = ["a,b", "李", "*)(uid=*"]
#: Entries nobody in HR has: a filter that matched everyone would find them too.
DECOYS = ["decoy1", "decoy2"]
#: Account renames of the second cycle.
RENAMES = {"*)(uid=*": "(uid=*)", "a+b": "a+b,ou=x", "李": "李四", "#a": "#a#"}

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
  - name: Directory
    connector: ldap
    settings:
      url: {url}
      bind_dn: {service_dn}
      bind_password: ${{JIM_TEST_LDAP_PASSWORD}}
      base_dn: {base}
    object_types:
      - name: inetOrgPerson
        container: ou=people,{base}
        external_id: entryUUID
        secondary_external_id: dn
    run_profiles:
      - {{name: Full Import, type: full_import}}
      - {{name: Full Sync, type: full_sync}}
      - {{name: Export, type: export}}
sync_rules:
  - name: HR people in
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
    provision: true
    dn: "uid={{{{ mv.accountName }}}},ou=people,{base}"
    deprovision: delete
    flows:
      - {{cs: uid, from: accountName}}
      - {{cs: cn, from: displayName}}
      - {{cs: sn, from: sn}}
      - {{cs: givenName, from: givenName}}
"""


def people_dn(base: str, uid: str) -> str:
    return f"uid={escape_rdn_value(uid)},ou=people,{base}"


def entries(base: str, accounts: list[str]) -> list[Entry]:
    """Person entries as JIM would make them, written straight to slapd."""
    return [
        (
            people_dn(base, uid),
            {"objectClass": ["inetOrgPerson"], "uid": uid, "sn": uid, "cn": f"Pat {uid}"},
        )
        for uid in accounts
    ]


def hr_rows(accounts: list[str]) -> list[dict[str, str]]:
    """One person per account; the surname is the account name too."""
    return [
        {
            "employeeId": str(1001 + n),
            "firstName": "Pat",
            "lastName": account,
            "accountName": account,
        }
        for n, account in enumerate(accounts)
    ]


def directory(slapd, base: str) -> dict[str, dict[str, list[str]]]:
    """Every entry under ``ou=people`` by the uid its DN names: its DN, uid, cn and sn."""
    connection = slapd.connection()
    try:
        connection.search(
            f"ou=people,{base}", "(objectClass=*)", ldap3.LEVEL, attributes=["uid", "cn", "sn"]
        )
        found = {}
        for entry in connection.response:
            ((rdn_type, rdn_value),) = parse_dn(entry["dn"])[0]
            assert rdn_type == "uid", entry["dn"]
            assert rdn_value not in found, f"two entries named uid={rdn_value!r}"
            attributes = entry["attributes"]
            found[rdn_value] = {
                "dn": [entry["dn"]],
                **{name: sorted(attributes.get(name) or []) for name in ("uid", "cn", "sn")},
            }
        return found
    finally:
        connection.unbind()


def cycle(*profiles: tuple[str, str]) -> None:
    for system, profile in profiles:
        activity = run(ConnectedSystem.objects.get(name=system), profile)
        problems = [
            (i.error_type, i.external_id, i.message) for i in rpeis(activity) if i.error_type
        ]
        assert activity.status == "complete", (system, profile, activity.message, problems)


def check_directory_matches(slapd, base: str, accounts: list[str]) -> None:
    """slapd holds exactly one entry per account, named and valued as intended, beside
    the decoys; JIM's connector space holds them as read back, joined to their person."""
    entries = directory(slapd, base)
    assert set(entries) == {*accounts, *DECOYS}
    for account in accounts:
        entry = entries[account]
        # slapd may write an escape its own way (``\3D`` for ``\=``): the same DN.
        assert parse_dn(entry["dn"][0]) == parse_dn(people_dn(base, account))
        assert entry["uid"] == [account]
        assert (entry["cn"], entry["sn"]) == ([f"Pat {account}"], [account])
    assert PendingExport.objects.count() == 0  # every export confirmed by the import
    csos = ConnectorSpaceObject.objects.filter(connected_system__name="Directory")
    joined = {cso.attributes["uid"][0]: cso for cso in csos if cso.metaverse_object_id}
    assert set(joined) == set(accounts)
    for account, cso in joined.items():
        assert cso.status == "normal"
        assert parse_dn(cso.secondary_external_id) == parse_dn(people_dn(base, account))
        assert cso.attributes["cn"] == [f"Pat {account}"]
        assert cso.attributes["sn"] == [account]
        assert cso.metaverse_object.attributes["accountName"] == [account]
    unjoined = {cso.attributes["uid"][0] for cso in csos if not cso.metaverse_object_id}
    assert unjoined == set(DECOYS)


@pytest.mark.django_db
def test_hostile_names_are_provisioned_joined_renamed_and_read_back(
    tmp_path, slapd, ldap_ou, monkeypatch
):
    monkeypatch.setenv("JIM_TEST_LDAP_PASSWORD", slapd.service_password)
    config = tmp_path / "jim.yaml"
    config.write_text(
        textwrap.dedent(CONFIG.format(url=slapd.url, service_dn=slapd.service_dn, base=ldap_ou))
    )
    write_csv(tmp_path / "hr.csv", hr_rows(HOSTILE))
    call_command("jim", "apply", str(config))
    add_entries(slapd, entries(ldap_ou, [*ALREADY_THERE, *DECOYS]))

    cycle(
        ("Directory", "Full Import"),
        ("HR", "Full Import"),
        ("HR", "Full Sync"),
        ("Directory", "Export"),
        ("Directory", "Full Import"),
        ("Directory", "Full Sync"),
    )

    check_directory_matches(slapd, ldap_ou, HOSTILE)
    joined = ConnectorSpaceObject.objects.filter(
        connected_system__name="Directory", join_type="joined"
    )
    assert {cso.attributes["uid"][0] for cso in joined} == set(ALREADY_THERE)
    assert MetaverseObject.objects.count() == len(HOSTILE)

    renamed = [RENAMES.get(account, account) for account in HOSTILE]
    write_csv(tmp_path / "hr.csv", hr_rows(renamed))
    cycle(
        ("HR", "Full Import"),
        ("HR", "Full Sync"),
        ("Directory", "Export"),
        ("Directory", "Full Import"),
        ("Directory", "Full Sync"),
    )

    check_directory_matches(slapd, ldap_ou, renamed)


# --------------------------------------------------------------------------- lookups


@pytest.mark.parametrize("target", HOSTILE)
def test_a_lookup_by_external_id_finds_that_entry_only(slapd, ldap_ou, target):
    """A delete without a DN finds its entry by external id (here ``uid``): the filter
    is escaped, so ``*)(uid=*`` or ``a\\b`` find only their own entry."""
    add_entries(slapd, entries(ldap_ou, [*HOSTILE, *DECOYS]))
    spec = ObjectTypeSpec("inetOrgPerson", "uid", container=f"ou=people,{ldap_ou}")

    with LdapConnector(service_settings(slapd)) as connector:
        (result,) = connector.export([change(1, "delete", spec, external_id=target)])

    assert result.ok, result.error
    assert set(directory(slapd, ldap_ou)) == {*HOSTILE, *DECOYS} - {target}


def test_a_lookup_of_an_id_nobody_has_deletes_nothing(slapd, ldap_ou):
    add_entries(slapd, entries(ldap_ou, DECOYS))
    spec = ObjectTypeSpec("inetOrgPerson", "uid", container=f"ou=people,{ldap_ou}")

    with LdapConnector(service_settings(slapd)) as connector:
        results = connector.export(
            [
                change(n, "delete", spec, external_id=value)
                for n, value in enumerate(["*", "decoy*", "*)(|(uid=*"])
            ]
        )

    assert all(result.ok for result in results), results  # already gone: nothing to do
    assert set(directory(slapd, ldap_ou)) == set(DECOYS)


# --------------------------------------------------------------------------- certificates


def test_certificates_are_checked_unless_the_settings_say_otherwise(slapd, tmp_path):
    settings = LdapSettings(service_settings(slapd, url=slapd.ldaps_url), tmp_path)
    tls = Session(settings)._tls()
    assert tls.validate == ssl.CERT_REQUIRED


@pytest.mark.django_db
def test_a_connected_system_without_tls_settings_refuses_an_untrusted_certificate(slapd):
    system = ConnectedSystem.objects.create(
        name="Directory",
        connector="ldap",
        settings={"url": slapd.ldaps_url, "bind_dn": slapd.service_dn, "base_dn": slapd.base_dn},
        secret_settings={"bind_password": slapd.service_password},
    )
    with pytest.raises(ConnectionFailed, match=r"certificate is not trusted.*set ca_file"):
        LdapConnector(system.all_settings()).open()


@contextlib.contextmanager
def tls_server(files: TlsFiles) -> Iterator[int]:
    """A TLS server on 127.0.0.1 that completes one handshake with ``files``' certificate
    and hangs up; yields its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert_file, files.key_file)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        client, _ = listener.accept()
        with contextlib.suppress(OSError), context.wrap_socket(client, server_side=True):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(timeout=10)
        listener.close()


def test_a_certificate_for_another_host_is_refused(tmp_path):
    """The CA is trusted, the certificate names another host: not the directory's."""
    files = make_server_certificate(tmp_path, names=("directory.example.org",))
    with tls_server(files) as port:
        settings = {
            "url": f"ldaps://127.0.0.1:{port}",
            "base_dn": "dc=example,dc=org",
            "ca_file": str(files.ca_file),
            "timeout": 5,
        }
        with pytest.raises(
            ConnectionFailed,
            match=r"the server's certificate names another host \(.*"
            r"directory\.example\.org.*doesn't match any name in \['127\.0\.0\.1'\]",
        ) as failure:
            LdapConnector(settings).open()
    assert str(failure.value).endswith("put a name the certificate holds in url")
    assert not failure.value.transient
