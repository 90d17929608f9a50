"""The LDAP connector against a real Active Directory domain controller (Samba,
tests/support/samba.py), bound as JIM's delegated service account: which directory it
is, objectGUID as the external id, the exports AD needs, AD's refusals in words, and
LDAPS and StartTLS with the certificate checked. Each test works in its own ``ad_ou``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest

from connectors.backends.ldap import LdapConnector
from connectors.backends.ldap.ad_errors import Request, explain, value_conflict
from connectors.backends.ldap.transport import Response
from connectors.base import (
    AttributeSpec,
    ConnectionFailed,
    ConnectorConfigurationError,
    ExportAttributeChange,
    ExportChange,
    ExportResult,
    ObjectTypeSpec,
)
from jim_project.devservers.certificates import make_server_certificate
from tests.support.samba import SambaDC
from tests.support.slapd import Slapd, service_settings

PASSWORD = "Str0ng-Passw0rd!"


def user_type(container: str = "") -> ObjectTypeSpec:
    return ObjectTypeSpec("user", "objectGUID", "dn", container=container)


def change(
    number: int,
    kind: str,
    *,
    dn: str | None = None,
    new_dn: str | None = None,
    guid: str | None = None,
    **attributes: tuple[str, list[Any]],
) -> ExportChange:
    """An export change of a user; ``attributes`` are (change type, values)."""
    return ExportChange(
        number,
        kind,  # type: ignore[arg-type]
        user_type(),
        external_id=guid,
        dn=dn,
        new_dn=new_dn,
        attribute_changes=[
            ExportAttributeChange(name, operation, values)  # type: ignore[arg-type]
            for name, (operation, values) in attributes.items()
        ],
    )


def unicode_password(text: str) -> bytes:
    return f'"{text}"'.encode("utf-16-le")


@pytest.fixture
def service(samba_dc: SambaDC) -> Iterator[ldap3.Connection]:
    """A connection bound as JIM's service account, for setting up and reading back."""
    connection = samba_dc.connection(samba_dc.service_dn, samba_dc.service_password)
    try:
        yield connection
    finally:
        connection.unbind()


@pytest.fixture
def connector(samba_dc: SambaDC, ad_ou: str) -> Iterator[LdapConnector]:
    with LdapConnector(samba_dc.service_settings(ad_ou)) as connector:
        yield connector


def read(connection: ldap3.Connection, dn: str, *attributes: str) -> dict[str, list[bytes]] | None:
    """The raw values of an entry (None when it does not exist)."""
    if not connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=list(attributes)):
        return None
    return dict(connection.response[0]["raw_attributes"])


def guid_of(connection: ldap3.Connection, dn: str) -> str:
    entry = read(connection, dn, "objectGUID")
    assert entry is not None, dn
    return str(uuid.UUID(bytes_le=entry["objectGUID"][0]))


def add_user(connection: ldap3.Connection, dn: str, sam: str, **attributes: Any) -> str:
    """Add a user as the service account; its objectGUID."""
    assert connection.add(dn, ["user"], {"sAMAccountName": sam, **attributes}), connection.result
    return guid_of(connection, dn)


def one(connector: LdapConnector, item: ExportChange) -> ExportResult:
    (result,) = connector.export([item])
    return result


# --------------------------------------------------------------------------- which directory


def test_auto_finds_active_directory_and_takes_its_defaults(samba_dc, ad_ou, connector):
    directory = connector.session.directory
    assert (directory.kind, directory.external_id_attribute) == ("active_directory", "objectGUID")
    assert connector.session.settings.delta_method() == "usn"
    user = next(spec for spec in connector.discover_schema() if spec.name == "user")
    assert (user.external_id_attribute, user.secondary_external_id_attribute) == (
        "objectGUID",
        "dn",
    )
    assert user.attributes["objectGUID"].data_type == "guid"


def test_attributes_of_auxiliary_classes_are_typed_from_the_content_rule(connector):
    """AD lists ``user``'s ``objectSid`` (class securityPrincipal) only in its DIT
    content rule: typed as text, the next import could not read its bytes."""
    user = next(spec for spec in connector.discover_schema() if spec.name == "user")
    assert user.attributes["objectSid"].data_type == "binary"
    assert user.attributes["sAMAccountName"].data_type == "text"
    assert "uidNumber" in user.attributes  # posixAccount, an auxiliary class of user


def test_a_directory_setting_that_fits_the_server_is_taken(samba_dc, ad_ou, slapd: Slapd):
    settings = samba_dc.service_settings(ad_ou) | {"directory": "active_directory"}
    with LdapConnector(settings) as connector:
        assert connector.session.directory.is_active_directory
    with LdapConnector(service_settings(slapd, directory="openldap")) as connector:
        assert connector.session.directory.kind == "openldap"
        assert connector.session.settings.delta_method() == "accesslog"
    with LdapConnector(service_settings(slapd)) as connector:
        assert connector.session.directory.external_id_attribute == "entryUUID"


def test_a_directory_setting_that_contradicts_the_server_names_both(samba_dc, ad_ou, slapd: Slapd):
    settings = samba_dc.service_settings(ad_ou) | {"directory": "openldap"}
    with pytest.raises(ConnectorConfigurationError) as raised:
        LdapConnector(settings).open()
    assert str(raised.value).startswith(
        f"directory is openldap (OpenLDAP (a standard LDAP directory)), but "
        f"{samba_dc.ldaps_url} is Active Directory: its root DSE lists the Active "
        "Directory capability 1.2.840.113556.1.4.800."
    )
    with pytest.raises(ConnectorConfigurationError) as raised:
        LdapConnector(service_settings(slapd, directory="active_directory")).open()
    message = str(raised.value)
    assert message.startswith(f"directory is active_directory (Active Directory), but {slapd.url}")
    assert "is OpenLDAP (a standard LDAP directory): its root DSE lists no Active" in message


def test_a_delta_method_that_cannot_work_on_active_directory_is_refused(samba_dc, ad_ou):
    settings = samba_dc.service_settings(ad_ou) | {"delta_method": "accesslog"}
    with pytest.raises(ConnectorConfigurationError, match="delta_method accesslog does not work"):
        LdapConnector(settings).open()
    settings["delta_method"] = "modify_timestamp"
    with LdapConnector(settings) as connector:
        assert connector.session.settings.delta_method() == "modify_timestamp"


# --------------------------------------------------------------------------- import


def test_a_full_import_identifies_users_by_object_guid(samba_dc, ad_ou, service, connector):
    people = f"OU=people,{ad_ou}"
    guids = {
        f"CN=Smith\\, John,{people}": add_user(service, f"CN=Smith\\, John,{people}", "imp-js"),
        f"CN=Zoë Åström,{people}": add_user(service, f"CN=Zoë Åström,{people}", "imp-za"),
    }

    # Declared binary (as an older discovery made it), objectGUID is still GUID text.
    spec = user_type(people)
    spec.attributes["objectGUID"] = AttributeSpec("objectGUID", data_type="binary")
    stream = connector.import_objects([spec], delta=False, persisted_data={})
    pages = list(stream.pages)
    objects = [item for page in pages for item in page.objects]
    assert [error for page in pages for error in page.errors] == []

    assert {item.secondary_external_id: item.external_id for item in objects} == guids
    for item in objects:
        assert item.attributes["objectGUID"] == [item.external_id]
        assert item.external_id == item.external_id.lower()
        assert isinstance(item.attributes["userAccountControl"][0], int)


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize(
    ("rdn", "cn"),
    [
        ("Smith\\, John", "Smith, John"),
        ("\\#1 Fan", "#1 Fan"),
        ("Ann\\+Bob", "Ann+Bob"),
        ("Zoë Åström", "Zoë Åström"),
    ],
)
def test_a_user_is_created_with_an_escaped_cn_and_its_account_names(
    samba_dc, ad_ou, service, connector, rdn, cn
):
    dn = f"CN={rdn},OU=people,{ad_ou}"
    sam = f"new{abs(hash(cn)) % 100000}"
    result = one(
        connector,
        change(
            1,
            "create",
            dn=dn,
            cn=("update", [cn]),
            sAMAccountName=("update", [sam]),
            userPrincipalName=("update", [f"{sam}@example.org"]),
            userAccountControl=("update", [514]),
        ),
    )

    assert result.ok, result.error
    assert (result.external_id, result.dn) == (guid_of(service, dn), dn)
    entry = read(service, dn, "cn", "sAMAccountName", "userPrincipalName", "userAccountControl")
    assert entry == {
        "cn": [cn.encode()],
        "sAMAccountName": [sam.encode()],
        "userPrincipalName": [f"{sam}@example.org".encode()],
        "userAccountControl": [b"514"],
    }


def test_an_account_is_enabled_and_disabled_through_user_account_control(
    samba_dc, ad_ou, service, connector
):
    dn = f"CN=Enable Me,OU=people,{ad_ou}"
    guid = add_user(service, dn, "uac-me", userAccountControl="514")
    assert service.modify(
        dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [unicode_password(PASSWORD)])]}
    ), service.result

    # Found by its objectGUID (<GUID=…>), the value written as an integer whatever form
    # the flow gives it in.
    for value, expected in ((512, b"512"), ("514", b"514"), (512.0, b"512")):
        result = one(
            connector, change(1, "update", guid=guid, userAccountControl=("update", [value]))
        )
        assert result.ok, result.error
        assert read(service, dn, "userAccountControl") == {"userAccountControl": [expected]}

    result = one(
        connector, change(2, "update", guid=guid, userAccountControl=("update", ["enabled"]))
    )
    assert not result.ok and not result.transient
    assert result.error == f"cannot modify {dn!r}: userAccountControl: 'enabled' is not an integer"


def test_a_user_is_renamed_and_moved_between_ous(samba_dc, ad_ou, service, connector):
    dn = f"CN=Old Name,OU=people,{ad_ou}"
    guid = add_user(service, dn, "ren-old")
    renamed = f"CN=Smith\\, Jane,OU=people,{ad_ou}"
    moved = f"CN=Smith\\, Jane,OU=disabled,{ad_ou}"

    result = one(connector, change(1, "update", dn=dn, new_dn=renamed, guid=guid))
    assert (result.ok, result.dn, result.error) == (True, renamed, "")
    assert guid_of(service, renamed) == guid and read(service, dn) is None

    result = one(
        connector,
        change(2, "update", dn=renamed, new_dn=moved, guid=guid, description=("update", ["x"])),
    )
    assert (result.ok, result.dn, result.error) == (True, moved, "")
    assert read(service, moved, "objectGUID", "cn", "description") == {
        "objectGUID": [uuid.UUID(guid).bytes_le],
        "cn": [b"Smith, Jane"],
        "description": [b"x"],
    }

    # Retried after its answer was lost: the entry is where it should be already.
    result = one(connector, change(3, "update", dn=renamed, new_dn=moved, guid=guid))
    assert (result.ok, result.dn) == (True, moved)


def test_a_user_is_found_by_its_guid_wherever_it_went_and_deleted(
    samba_dc, ad_ou, service, connector
):
    dn = f"CN=Leaver,OU=people,{ad_ou}"
    guid = add_user(service, dn, "del-leaver")
    # Moved directly in AD, out of the object type's container.
    assert service.modify_dn(dn, "CN=Leaver", new_superior=f"OU=disabled,{ad_ou}")

    result = one(connector, change(1, "update", guid=guid, description=("update", ["gone"])))
    assert result.ok, result.error
    assert read(service, f"CN=Leaver,OU=disabled,{ad_ou}", "description") == {
        "description": [b"gone"]
    }

    assert one(connector, change(2, "delete", guid=guid)).ok
    assert read(service, f"CN=Leaver,OU=disabled,{ad_ou}") is None
    assert one(connector, change(3, "delete", guid=guid)).ok  # already gone

    stranger = str(uuid.uuid4())
    result = one(connector, change(4, "update", guid=stranger, description=("update", ["x"])))
    assert not result.ok
    assert result.error == f"no entry with objectGUID {stranger!r} on {samba_dc.ldaps_url}"


def test_a_create_retried_after_it_got_through_succeeds(samba_dc, ad_ou, service, connector):
    dn = f"CN=Twice,OU=people,{ad_ou}"
    create = change(
        1,
        "create",
        dn=dn,
        sAMAccountName=("update", ["retry-twice"]),
        userAccountControl=("update", [514]),
    )
    first = one(connector, create)
    assert first.ok, first.error
    # The account name in another case is the same name to AD.
    create.attribute_changes[0].values = ["RETRY-Twice"]
    again = one(connector, create)
    assert (again.ok, again.external_id, again.dn) == (True, first.external_id, dn)


def test_members_added_twice_or_removed_when_absent_are_harmless(
    samba_dc, ad_ou, service, connector
):
    member = f"CN=Member,OU=people,{ad_ou}"
    add_user(service, member, "grp-member")
    stranger = f"CN=Stranger,OU=people,{ad_ou}"
    add_user(service, stranger, "grp-stranger")
    group = f"CN=Staff,OU=groups,{ad_ou}"
    assert service.add(group, ["group"], {"sAMAccountName": "grp-staff", "member": [member]})
    group_guid = guid_of(service, group)
    groups = ObjectTypeSpec("group", "objectGUID", "dn")

    (result,) = connector.export(
        [
            ExportChange(
                1,
                "update",
                groups,
                external_id=group_guid,
                dn=group,
                attribute_changes=[
                    ExportAttributeChange("member", "add", [member.upper()]),
                    ExportAttributeChange("member", "remove", [stranger]),
                ],
            )
        ]
    )

    assert result.ok, result.error
    assert read(service, group, "member") == {"member": [member.encode()]}


# --------------------------------------------------------------------------- refusals


def test_ads_refusals_name_the_object_and_the_cause(samba_dc, ad_ou, service, connector):
    people, disabled = f"OU=people,{ad_ou}", f"OU=disabled,{ad_ou}"
    add_user(service, f"CN=Taken,{people}", "ref-taken", userPrincipalName="taken@example.org")
    mover = f"CN=Mover,{people}"
    mover_guid = add_user(service, mover, "ref-mover")
    add_user(service, f"CN=Inside,{disabled}", "ref-inside")

    results = connector.export(
        [
            change(1, "create", dn=f"CN=Second,{people}", sAMAccountName=("update", ["ref-taken"])),
            change(
                2,
                "create",
                dn=f"CN=Third,{people}",
                userPrincipalName=("update", ["taken@example.org"]),
            ),
            change(3, "create", dn=f"CN=Orphan,OU=nowhere,{ad_ou}"),
            change(4, "create", dn=f"CN=Intruder,CN=Users,{samba_dc.base_dn}"),
            change(
                5,
                "update",
                dn=mover,
                guid=mover_guid,
                unicodePwd=("update", [unicode_password("short")]),
            ),
            change(6, "delete", dn=disabled),
            change(7, "create", dn=f"CN=Slash,{people}", sAMAccountName=("update", ["a/b"])),
            change(8, "update", dn=mover, guid=mover_guid, new_dn=f"CN=Mover,OU=nowhere,{ad_ou}"),
            change(
                9, "update", dn=mover, guid=mover_guid, sAMAccountName=("update", ["ref-taken"])
            ),
        ]
    )

    errors = {result.id: result.error for result in results}
    assert not any(result.ok or result.transient for result in results)
    assert errors[1].startswith(
        f"add 'CN=Second,{people}' failed: sAMAccountName 'ref-taken' is already used by "
        "another account in the domain"
    )
    assert errors[1].endswith(
        "(Active Directory: entryAlreadyExists (68): 00002071: samldb: samAccountName "
        "'ref-taken' already in use!)"
    )
    assert errors[2].startswith(
        f"add 'CN=Third,{people}' failed: userPrincipalName 'taken@example.org' is already "
        "used by another account in the forest"
    )
    assert errors[3].startswith(
        f"add 'CN=Orphan,OU=nowhere,{ad_ou}' failed: the parent 'OU=nowhere,{ad_ou}' does "
        "not exist: create that OU or container first"
    )
    assert errors[4].startswith(
        f"add 'CN=Intruder,CN=Users,{samba_dc.base_dn}' failed: bind DN "
        f"{samba_dc.service_dn!r} may not create objects in 'CN=Users,{samba_dc.base_dn}': "
        "AD refused it for lack of rights"
    )
    assert errors[5].startswith(
        f"modify {mover!r} failed: the password does not meet the domain's password policy "
        "(length, complexity, history or minimum age): the password is too short. It "
        "should be equal or longer than 7 characters (Active Directory: "
    )
    assert errors[6].startswith(
        f"delete {disabled!r} failed: {disabled!r} still holds other objects, and AD "
        "deletes only objects with nothing beneath them"
    )
    assert errors[7].startswith(
        f"add 'CN=Slash,{people}' failed: sAMAccountName 'a/b' contains the character '/', "
        "which AD forbids in account names"
    )
    # Samba answers this one with result 80 (other), which is otherwise retried.
    assert errors[8].startswith(
        f"rename {mover!r} to 'CN=Mover,OU=nowhere,{ad_ou}' failed: the parent "
        f"'OU=nowhere,{ad_ou}' does not exist"
    )
    assert "(Active Directory: other (80): " in errors[8]
    assert errors[9].startswith(
        f"modify {mover!r} failed: sAMAccountName 'ref-taken' is already used by another "
        "account in the domain"
    )


@pytest.mark.parametrize(
    ("result", "message", "request_", "cause", "transient"),
    [
        (
            68,
            "00000524: UpdErr: DSID-031A11E2, problem 6005 (ENTRY_EXISTS), data 0",
            Request("add", "CN=J,OU=x,DC=e", sent={"sAMAccountName": ["jsmith"]}),
            "sAMAccountName 'jsmith' is already used by another account in the domain",
            False,
        ),
        (
            19,
            "000021C8: AtrErr: DSID-03200BBA, #1:\n\t0: 000021C8: DSID-03200BBA, problem 1005 "
            "(CONSTRAINT_ATT_TYPE), data 0, Att 90290 (userPrincipalName)",
            Request("add", "CN=J,OU=x,DC=e", sent={"userPrincipalName": ["j@e.org"]}),
            "userPrincipalName 'j@e.org' is already used by another account in the forest",
            False,
        ),
        (
            32,
            "0000208D: NameErr: DSID-03100241, problem 2001 (NO_OBJECT), data 0, best match "
            "of:\n\t'DC=e'",
            Request("add", "CN=J,OU=x,DC=e"),
            "the parent 'OU=x,DC=e' does not exist",
            False,
        ),
        (
            50,
            "00002098: SecErr: DSID-03150F94, problem 4003 (INSUFF_ACCESS_RIGHTS), data 0",
            Request("modify", "CN=J,OU=x,DC=e", who="bind DN 'CN=svc'"),
            "bind DN 'CN=svc' may not modify 'CN=J,OU=x,DC=e': AD refused it for lack of rights",
            False,
        ),
        (
            53,
            "0000001F: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM), data 0",
            Request("modify", "CN=J,OU=x,DC=e", sent={"unicodePwd": [b"x"]}),
            "AD refused the password (unicodePwd): it takes passwords only over an encrypted",
            False,
        ),
        (
            19,
            "0000052D: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM), data 0",
            Request("modify", "CN=J,OU=x,DC=e", sent={"unicodePwd": [b"x"]}),
            "the password does not meet the domain's password policy",
            False,
        ),
        (
            80,
            "00002010: SvcErr: DSID-031A0FC4, problem 5012 (DIR_ERROR), data 0",
            Request("add", "CN=J,OU=x,DC=e"),
            "the domain controller has no identifiers (RIDs) left",
            True,
        ),
    ],
)
def test_windows_refusals_are_explained_too(result, message, request_, cause, transient):
    refusal = explain(Response(result, message), request_)
    assert refusal is not None and refusal.cause.startswith(cause)
    assert refusal.transient is transient


def test_a_refusal_ad_does_not_explain_keeps_the_servers_words():
    assert explain(Response(1, "00002020: Operations error"), Request("add", "CN=J,DC=e")) is None


def test_ads_own_answers_to_a_value_there_already_or_absent_are_recognised():
    assert value_conflict(Response(68, "Attribute member already exists for target GUID 97c6"))
    windows = "00000561: SvcErr: DSID-031A1021, problem 5003 (WILL_NOT_PERFORM), data 0"
    assert value_conflict(Response(53, windows))
    assert not value_conflict(Response(53, "00002035: Unwilling to perform"))


# --------------------------------------------------------------------------- TLS


def test_starttls_on_port_389_checks_the_certificate(samba_dc, ad_ou):
    settings = samba_dc.service_settings(ad_ou) | {"url": samba_dc.url, "start_tls": True}
    with LdapConnector(settings) as connector:
        assert connector.session.directory.is_active_directory
        stream = connector.import_objects([user_type(ad_ou)], delta=False, persisted_data={})
        assert [item for page in stream.pages for item in page.objects] == []


def test_a_certificate_of_another_ca_is_refused(samba_dc, ad_ou, tmp_path: Path):
    other_ca = make_server_certificate(tmp_path / "other").ca_file
    for overrides in (
        {"ca_file": str(other_ca)},
        {"ca_file": str(other_ca), "url": samba_dc.url, "start_tls": True},
    ):
        settings = samba_dc.service_settings(ad_ou) | overrides
        with pytest.raises(ConnectionFailed, match="certificate is not trusted") as raised:
            LdapConnector(settings).open()
        assert not raised.value.transient


def test_a_password_bind_without_tls_is_refused_with_the_remedy(samba_dc, ad_ou):
    settings = samba_dc.service_settings(ad_ou) | {"url": samba_dc.url}
    with pytest.raises(ConnectionFailed, match="only over an encrypted connection") as raised:
        LdapConnector(settings).open()
    assert "use an ldaps:// url or set start_tls: true" in str(raised.value)
    assert not raised.value.transient
