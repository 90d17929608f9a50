"""The LDAP connector's connection, TLS, errors and schema discovery, against a real
slapd (tests/support/slapd.py); and its DN and value helpers."""

from __future__ import annotations

import datetime as dt

import ldap3
import pytest

from connectors.backends.ldap import LdapConnector
from connectors.backends.ldap.values import (
    generalized_time_to_iso,
    to_generalized_time,
    to_ldap_value,
)
from connectors.base import ConnectionFailed, ConnectorConfigurationError, ConnectorError
from core.dn import (
    DNError,
    build_dn,
    escape_rdn_value,
    first_rdn,
    format_dn,
    is_within,
    normalise_dn,
    parent_dn,
    parse_dn,
    parse_dn_in_full,
    split_dn,
)
from tests.support.slapd import service_settings


def add_user(slapd, ou: str, uid: str, password: str) -> str:
    """A person who can bind (not the rootdn: limits and ACLs apply)."""
    dn = f"uid={uid},ou=people,{ou}"
    connection = slapd.connection(raise_exceptions=True)
    try:
        connection.add(
            dn,
            ["inetOrgPerson"],
            {"cn": uid, "sn": uid, "uid": uid, "userPassword": password},
        )
    finally:
        connection.unbind()
    return dn


# --------------------------------------------------------------------------- DNs


def test_parse_dn_resolves_escapes_and_tolerates_spaces():
    assert parse_dn(r"CN = Doe\, John + UID=jd , OU=People,dc=example,dc=org") == [
        [("CN", "Doe, John"), ("UID", "jd")],
        [("OU", "People")],
        [("dc", "example")],
        [("dc", "org")],
    ]
    assert parse_dn(r"cn=Doe\2C John\c3\a9,o=x") == [[("cn", "Doe, John\u00e9")], [("o", "x")]]
    assert parse_dn(r"cn=\ lead and trail\ ,o=x") == [[("cn", " lead and trail ")], [("o", "x")]]
    assert parse_dn('cn="Doe, John",o=x') == [[("cn", "Doe, John")], [("o", "x")]]
    assert parse_dn("cn=#04024869,o=x") == [[("cn", "#04024869")], [("o", "x")]]
    assert parse_dn("") == []


@pytest.mark.parametrize(
    "text",
    [
        "uid=jdoe,ou=people,dc=example,dc=org",
        " CN = John  Doe , OU=People ,dc=org ",
        "cn=Zo\u00eb,o=x",
        "cn=,o=x",
        "uid=a",
    ],
)
def test_the_quick_path_reads_plain_dns_as_the_parser_does(text):
    assert parse_dn(text) == parse_dn_in_full(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("cn", "without '='"),
        ("=x,o=y", "is not an attribute type"),
        ("c n=x", "is not an attribute type"),
        (r"cn=a\zz", "backslash"),
        ('cn="never closed', "never closed"),
        (r"cn=\ff\fe", "not UTF-8"),
        ("cn=#123", "even number"),
        ("cn=a,", "without '='"),
    ],
)
def test_invalid_dns_say_why(text, problem):
    with pytest.raises(DNError, match=problem):
        parse_dn(text)


def test_normalised_dns_compare_case_spacing_escaping_and_aliases():
    key = normalise_dn(r"cn=Doe\, John,ou=People,dc=Example,dc=org")
    assert normalise_dn(r"CN=doe\2c john, OU = people ,DC=example,DC=ORG") == key
    assert normalise_dn(r"commonName=DOE\, JOHN,2.5.4.11=people,dc=example,dc=org") == key
    assert normalise_dn(r'cn="Doe, John",ou=people,dc=example,dc=org') == key
    assert normalise_dn("cn=John   Doe,o=x") == normalise_dn("cn=john doe,o=x")
    assert normalise_dn("cn=a+uid=b,o=x") == normalise_dn("UID=B+CN=A,o=x")
    assert normalise_dn("cn=a,o=x") != normalise_dn("cn=b,o=x")


def test_a_normalised_dn_has_commas_only_between_rdns():
    key = normalise_dn(r"cn=x\,ou=people,dc=org")
    assert key == r"cn=x\2cou\3dpeople,dc=org"
    assert not is_within(key, normalise_dn("ou=people,dc=org"))
    assert is_within(normalise_dn("cn=x,ou=People,dc=org"), normalise_dn("ou=people,dc=ORG"))
    assert is_within(normalise_dn("ou=people,dc=org"), normalise_dn("ou=people,dc=org"))
    assert not is_within(normalise_dn("cn=x,ou=peoplex,dc=org"), normalise_dn("ou=people,dc=org"))


def test_escape_build_split_and_parent():
    assert escape_rdn_value(' #Doe, "J" <x>;+=\\ ') == r"\ #Doe\, \"J\" \<x\>\;\+\=\\\ "
    assert escape_rdn_value("#x") == r"\#x"
    assert escape_rdn_value("a\x00b") == r"a\00b"
    dn = build_dn("cn", "Doe, John", "ou=people,dc=example,dc=org")
    assert dn == r"cn=Doe\, John,ou=people,dc=example,dc=org"
    assert parse_dn(dn)[0] == [("cn", "Doe, John")]
    assert split_dn(dn) == (r"cn=Doe\, John", "ou=people,dc=example,dc=org")
    assert parent_dn(dn) == "ou=people,dc=example,dc=org"
    assert parent_dn("dc=org") == ""
    assert first_rdn("cn=a+uid=b,o=x") == [("cn", "a"), ("uid", "b")]
    assert format_dn(parse_dn(r"CN=Doe\2C John,O=x")) == r"CN=Doe\, John,O=x"
    assert build_dn("cn", "x", "") == "cn=x"


# --------------------------------------------------------------------------- values


def test_generalized_time_reads_as_iso_8601():
    assert generalized_time_to_iso("20240131093000Z") == "2024-01-31T09:30:00+00:00"
    assert generalized_time_to_iso("20240131093000.5Z") == "2024-01-31T09:30:00.500000+00:00"
    assert generalized_time_to_iso("202401310930+0100") == "2024-01-31T09:30:00+01:00"
    assert generalized_time_to_iso("2024013109") == "2024-01-31T09:00:00"
    assert generalized_time_to_iso("240131093000Z") == "2024-01-31T09:30:00+00:00"
    with pytest.raises(ValueError, match="not a GeneralizedTime"):
        generalized_time_to_iso("yesterday")


def test_values_are_written_in_ldap_syntax():
    assert to_ldap_value(True, "boolean") == "TRUE"
    assert to_ldap_value("no", "boolean") == "FALSE"
    assert to_ldap_value(42, "integer") == "42"
    assert to_ldap_value("2024-01-31T10:30:00+01:00", "datetime") == "20240131093000Z"
    assert to_ldap_value(dt.date(2024, 1, 31), "text") == "20240131000000Z"
    assert to_generalized_time("20240131093000Z") == "20240131093000Z"
    assert to_ldap_value("AAEC", "binary") == b"\x00\x01\x02"
    assert to_ldap_value("cn=x,o=y", "reference") == "cn=x,o=y"
    with pytest.raises(ValueError, match="base64"):
        to_ldap_value("not base64!", "binary")
    with pytest.raises(ValueError, match="not a boolean"):
        to_ldap_value("perhaps", "boolean")


# --------------------------------------------------------------------------- connecting


def test_bind_and_secondary_ids(slapd):
    with LdapConnector(service_settings(slapd)) as connector:
        assert connector.secondary_id_key("UID=X, OU=People,DC=Example,DC=org") == (
            "uid=x,ou=people,dc=example,dc=org"
        )
        assert connector.secondary_id_key("not a dn") == "not a dn"
        assert connector.secondary_id_error("uid=x,ou=people,dc=example,dc=org") == ""
        assert connector.secondary_id_error(" ") == "it is empty"
        assert "not a valid DN" in connector.secondary_id_error("uid=x,,dc=org")
        assert connector.secondary_id_error("uid=,ou=people,dc=org") == "uid= has no value"


def test_a_wrong_password_names_the_bind_dn(slapd):
    with pytest.raises(ConnectionFailed) as failure:
        LdapConnector(service_settings(slapd, bind_password="wrong")).open()
    message = str(failure.value)
    assert slapd.service_dn in message and "invalidCredentials" in message
    assert not failure.value.transient


def test_a_stopped_server_cannot_be_reached(slapd):
    slapd.stop()
    try:
        with pytest.raises(ConnectionFailed, match=f"cannot reach {slapd.url}: ") as failure:
            LdapConnector(service_settings(slapd, timeout=3)).open()
        assert failure.value.transient
        assert "Traceback" not in str(failure.value)
    finally:
        slapd.start()
    with LdapConnector(service_settings(slapd)):
        pass


def test_a_base_dn_that_does_not_exist_is_a_configuration_error(slapd):
    missing = f"ou=nowhere,{slapd.base_dn}"
    with pytest.raises(ConnectorConfigurationError, match="base_dn 'ou=nowhere,dc=example"):
        LdapConnector(service_settings(slapd, base_dn=missing)).open()
    with pytest.raises(ConnectorConfigurationError, match="not a valid DN"):
        LdapConnector(service_settings(slapd, base_dn="nonsense")).open()


def test_an_anonymous_bind_that_may_not_see_the_base_says_so(slapd):
    settings = service_settings(slapd, bind_dn="", bind_password="")
    with pytest.raises(ConnectorConfigurationError, match="an anonymous bind cannot see it"):
        LdapConnector(settings).open()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"url": "http://localhost"}, "is not an LDAP URL"),
        ({"url": ""}, "needs a 'url'"),
        ({"url": "ldap://localhost:notaport"}, "invalid port"),
        ({"base_dn": ""}, "needs a 'base_dn'"),
        ({"bind_password": ""}, "bind_password is empty"),
        ({"page_size": 0}, "page_size must be a positive"),
        ({"timeout": "soon"}, "timeout must be a positive"),
        ({"range_size": "lots"}, "range_size must be a positive"),
        ({"delta_method": "changelog"}, "delta_method must be"),
        ({"delta_method": "usn"}, "delta_method usn does not work on OpenLDAP"),
        ({"directory": "novell"}, "directory must be auto, openldap, active_directory"),
        ({"directory": "active_directory"}, "directory is active_directory .* but ldap://"),
        ({"start_tls": "maybe"}, "start_tls must be true or false"),
        ({"ca_file": "/nonexistent/ca.pem", "start_tls": True}, "no such file"),
    ],
)
def test_bad_settings_are_configuration_errors(slapd, overrides, message):
    with pytest.raises(ConnectorConfigurationError, match=message):
        LdapConnector(service_settings(slapd, **overrides)).open()


def test_starttls_on_an_ldaps_url_is_refused(slapd):
    settings = service_settings(slapd, url=slapd.ldaps_url, start_tls=True, ca_file=slapd.ca_file)
    with pytest.raises(ConnectorConfigurationError, match="already uses TLS"):
        LdapConnector(settings).open()


# --------------------------------------------------------------------------- TLS


def test_ldaps_with_the_ca_file(slapd):
    settings = service_settings(slapd, url=slapd.ldaps_url, ca_file=str(slapd.ca_file))
    with LdapConnector(settings) as connector:
        assert connector.connection.server.ssl
        assert any(spec.name == "inetOrgPerson" for spec in connector.discover_schema())


def test_starttls_with_the_ca_file(slapd):
    settings = service_settings(slapd, start_tls=True, ca_file=str(slapd.ca_file))
    with LdapConnector(settings) as connector:
        assert connector.connection.tls_started
        assert connector.discover_schema()


def test_a_relative_ca_file_is_found_beside_the_configuration(slapd):
    settings = service_settings(slapd, url=slapd.ldaps_url, ca_file=slapd.ca_file.name)
    with LdapConnector(settings, base_dir=slapd.ca_file.parent):
        pass


@pytest.mark.parametrize("mode", ["ldaps", "start_tls"])
def test_an_untrusted_certificate_is_refused(slapd, mode):
    settings = (
        service_settings(slapd, url=slapd.ldaps_url)
        if mode == "ldaps"
        else service_settings(slapd, start_tls=True)
    )
    with pytest.raises(
        ConnectionFailed, match=r"certificate is not trusted.*set ca_file"
    ) as failure:
        LdapConnector(settings).open()
    assert not failure.value.transient


def test_tls_verify_false_connects_without_checking(slapd):
    with LdapConnector(service_settings(slapd, url=slapd.ldaps_url, tls_verify=False)):
        pass


# --------------------------------------------------------------------------- schema


@pytest.fixture(scope="module")
def discovered(slapd):
    with LdapConnector(service_settings(slapd)) as connector:
        return {spec.name: spec for spec in connector.discover_schema()}


def test_object_classes_become_object_types_with_inherited_attributes(discovered):
    person = discovered["inetOrgPerson"]
    assert (person.external_id_attribute, person.secondary_external_id_attribute) == (
        "entryUUID",
        "dn",
    )
    # From person (sn, cn), organizationalPerson (ou), inetOrgPerson (givenName, mail).
    assert {"cn", "sn", "ou", "givenName", "mail", "uid", "objectClass"} <= set(person.attributes)
    assert "top" not in discovered  # abstract
    assert "posixAccount" in discovered  # auxiliary (nis)


def test_attribute_syntaxes_become_data_types(discovered):
    person = discovered["inetOrgPerson"].attributes
    member = discovered["groupOfNames"].attributes["member"]
    assert (member.data_type, member.multivalued) == ("reference", True)
    assert (person["uid"].data_type, person["uid"].multivalued) == ("text", True)
    assert person["manager"].data_type == "reference"
    assert person["jpegPhoto"].data_type == "binary"
    assert person["userCertificate"].data_type == "binary"
    assert (person["entryUUID"].data_type, person["entryUUID"].writable) == ("guid", False)
    assert person["modifyTimestamp"].data_type == "datetime"
    assert discovered["posixAccount"].attributes["uidNumber"].data_type == "integer"
    for single in ("employeeNumber", "displayName", "preferredLanguage"):
        assert person[single].multivalued is False, single
    assert person["mail"].multivalued is True


# --------------------------------------------------------------------------- limits


def test_an_exceeded_size_limit_is_a_clear_error(slapd, ldap_ou):
    """A bind DN with a total paged-results limit meets it: the import says so."""
    user = add_user(slapd, ldap_ou, "limited", "limited-Pa55")
    connection = slapd.connection(raise_exceptions=True)
    for n in range(12):
        connection.add(f"cn=e{n},ou=groups,{ldap_ou}", ["organizationalRole"], {"cn": f"e{n}"})
    limits = "olcLimits"
    rule = f'dn.exact="{user}" size.soft=5 size.hard=5 size.prtotal=5'
    connection.modify("olcDatabase={2}mdb,cn=config", {limits: [(ldap3.MODIFY_ADD, [rule])]})
    try:
        settings = service_settings(slapd, bind_dn=user, bind_password="limited-Pa55")
        with LdapConnector(settings) as connector:
            spec = next(s for s in connector.discover_schema() if s.name == "organizationalRole")
            spec.container = f"ou=groups,{ldap_ou}"
            stream = connector.import_objects([spec], delta=False, persisted_data={}, page_size=3)
            with pytest.raises(ConnectorError, match="size limit was exceeded") as failure:
                list(stream.pages)
        assert "limited" in str(failure.value)
    finally:
        connection.modify("olcDatabase={2}mdb,cn=config", {limits: [(ldap3.MODIFY_DELETE, [rule])]})
        connection.unbind()
