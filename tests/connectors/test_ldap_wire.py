"""The export's direct BER encoding of adds and modifies (connectors.backends.ldap.wire):
byte for byte what ldap3 and pyasn1 send (ldap3's own encoder is the oracle), and the
same behaviour against a real slapd."""

from __future__ import annotations

from typing import Any

import ldap3
import pytest
from ldap3.core.exceptions import LDAPChangeError, LDAPControlError, LDAPObjectClassError
from ldap3.operation.add import add_operation
from ldap3.operation.modify import modify_operation
from ldap3.operation.unbind import unbind_operation
from ldap3.protocol.convert import build_controls_list
from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
from ldap3.protocol.rfc4527 import post_read_control
from ldap3.utils.asn1 import encode
from pyasn1.codec.ber import decoder

from connectors.backends.ldap import LdapConnector
from connectors.backends.ldap import wire as ldap_wire
from connectors.base import ConnectionFailed
from tests.connectors.ldap_entries import (
    GROUP,
    add_entries,
    change,
    group,
    new_person,
    person,
    read,
)
from tests.support.slapd import service_settings

MESSAGE_IDS = [1, 127, 128, 255, 256, 65535, 70000, 2**31 - 1]
POST_READ = post_read_control(["entryUUID"])
DN = "uid=jdoe,ou=people,ou=t1,dc=example,dc=org"


def ldap3_bytes(message_id: int, kind: str, request: Any, controls: Any = None) -> bytes:
    """The LDAPMessage as ldap3's ``BaseStrategy.send`` builds and encodes it."""
    message = LDAPMessage()
    message["messageID"] = MessageID(message_id)
    message["protocolOp"] = ProtocolOp().setComponentByName(kind, request)
    built = build_controls_list(controls)
    if built is not None:
        message["controls"] = built
    return encode(message)


def ldap3_add(message_id: int, dn: str, attributes: dict, controls: Any = None) -> bytes:
    request = add_operation(dn, attributes, True, None, check_names=False)
    return ldap3_bytes(message_id, "addRequest", request, controls)


def ldap3_modify(message_id: int, dn: str, changes: dict, controls: Any = None) -> bytes:
    request = modify_operation(dn, changes, True, None, check_names=False)
    return ldap3_bytes(message_id, "modifyRequest", request, controls)


ATTRIBUTE_SETS = {
    "typical": {
        "objectClass": ["inetOrgPerson", "organizationalPerson", "person", "top"],
        "cn": ["John Doe"],
        "sn": ["Doe"],
        "mail": ["jdoe@example.org", "john@example.org", "j@example.org"],
        "employeeNumber": ["42"],
    },
    "non-ascii": {"cn": ["Zoë Ærøskøbing", "日本語"], "description": "façade ✓"},
    "bytes": {"jpegPhoto": [bytes(range(256)), b""], "userCertificate;binary": [b"\x30\x00"]},
    "long values": {"description": ["x" * 127, "y" * 128, "z" * 300, "é" * 40000]},
    "very long": {"audio": [bytes(70000)], "cn": ["a"]},
    "numbers": {"uidNumber": [1000], "gidNumber": 0, "x": [-1, 2.5]},
    "empty": {"member": []},
}
CONTROL_SETS = {
    "no controls": None,
    "post-read": [POST_READ],
    "tuples": [("1.2.840.113556.1.4.417", True, None), ("1.3.6.1.1.13.2", False, b"0\x00")],
    "mixed": [POST_READ, ("1.2.3.4", False, None), ("1.2.3.5", True, b"")],
}


# --------------------------------------------------------------------------- BER


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, "00"),
        (127, "7f"),
        (128, "8180"),
        (255, "81ff"),
        (256, "820100"),
        (65535, "82ffff"),
        (65536, "83010000"),
    ],
)
def test_lengths_take_the_short_form_below_128_else_the_shortest_long_form(length, encoded):
    assert ldap_wire.encode_length(length).hex() == encoded


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "020100"),
        (127, "02017f"),
        (128, "02020080"),
        (256, "02020100"),
        (-1, "0201ff"),
        (-128, "020180"),
        (-129, "0202ff7f"),
    ],
)
def test_integers_are_minimal_twos_complement(value, encoded):
    assert ldap_wire.encode_integer(value).hex() == encoded
    assert ldap_wire.encode_enumerated(value).hex() == "0a" + encoded[2:]


def test_booleans_and_values():
    assert (ldap_wire.encode_boolean(True), ldap_wire.encode_boolean(False)) == (
        b"\x01\x01\xff",
        b"\x01\x01\x00",
    )
    assert [ldap_wire.encode_value(v) for v in ("é", b"\x00", 7, True, False)] == [
        "é".encode(),
        b"\x00",
        b"7",
        b"TRUE",
        b"FALSE",
    ]


# --------------------------------------------------------------------------- add


@pytest.mark.parametrize("message_id", MESSAGE_IDS)
@pytest.mark.parametrize("controls", CONTROL_SETS.values(), ids=CONTROL_SETS.keys())
def test_an_add_is_what_ldap3_sends(message_id, controls):
    attributes = ATTRIBUTE_SETS["typical"]
    ours = ldap_wire.encode_add_request(message_id, DN, attributes, controls)
    assert ours == ldap3_add(message_id, DN, attributes, controls)


@pytest.mark.parametrize("attributes", ATTRIBUTE_SETS.values(), ids=ATTRIBUTE_SETS.keys())
@pytest.mark.parametrize("message_id", [5, 300])
def test_adds_of_every_kind_of_value_are_what_ldap3_sends(attributes, message_id):
    for controls in (None, [POST_READ]):
        ours = ldap_wire.encode_add_request(message_id, "cn=Zoë,o=x", attributes, controls)
        assert ours == ldap3_add(message_id, "cn=Zoë,o=x", attributes, controls)


def test_a_boolean_is_sent_as_ldap_booleans_are_written():
    """ldap3 without a schema would send ``True`` (its ``str()``), which the Boolean
    syntax refuses; with one, its validator sends ``TRUE``. The connector converts
    booleans itself (``to_ldap_value``); the encoder does what the validator does."""
    ours = ldap_wire.encode_add_request(9, DN, {"flag": [True, False]})
    assert ours == ldap3_add(9, DN, {"flag": ["TRUE", "FALSE"]})


def test_an_encoded_add_decodes_as_the_request_it_is():
    attributes = ATTRIBUTE_SETS["long values"] | ATTRIBUTE_SETS["bytes"]
    message, rest = decoder.decode(
        ldap_wire.encode_add_request(70000, DN, attributes, [POST_READ]), asn1Spec=LDAPMessage()
    )
    assert rest == b""
    assert int(message["messageID"]) == 70000
    request = message["protocolOp"]["addRequest"]
    assert bytes(request["entry"]).decode() == DN
    decoded = {
        str(attribute["type"]): [bytes(v) for v in attribute["vals"]]
        for attribute in request["attributes"]
    }
    assert decoded == {
        name: [ldap_wire.encode_value(v) for v in values] for name, values in attributes.items()
    }
    assert str(message["controls"][0]["controlType"]) == "1.3.6.1.1.13.2"


def test_malformed_controls_are_refused_as_ldap3_refuses_them():
    for controls in ([("1.2.3", "yes", None)], [("1.2.3",)], "1.2.3"):
        with pytest.raises(LDAPControlError):
            build_controls_list(controls)
        with pytest.raises(LDAPControlError):
            ldap_wire.encode_add_request(1, DN, {"cn": ["x"]}, controls)


# --------------------------------------------------------------------------- modify

CHANGE_SETS = {
    "each operation": {
        "member": [
            (ldap3.MODIFY_ADD, ["uid=a,o=x", "uid=b,o=x"]),
            (ldap3.MODIFY_DELETE, ["uid=c,o=x"]),
        ],
        "description": [(ldap3.MODIFY_REPLACE, ["new ✓"])],
        "uidNumber": [(ldap3.MODIFY_INCREMENT, [1])],
    },
    "replace with no values": {
        "title": [(ldap3.MODIFY_REPLACE, [])],
        "street": [(ldap3.MODIFY_DELETE, [])],
    },
    "numbered operations": {"cn": [(0, ["a"]), (1, ["b"]), (2, ["c"])]},
    "long values": {"jpegPhoto": [(ldap3.MODIFY_REPLACE, [bytes(range(256)) * 300])]},
    "a single value": {"cn": [(ldap3.MODIFY_REPLACE, "x")]},
}


@pytest.mark.parametrize("changes", CHANGE_SETS.values(), ids=CHANGE_SETS.keys())
@pytest.mark.parametrize("message_id", MESSAGE_IDS)
def test_a_modify_is_what_ldap3_sends(changes, message_id):
    ours = ldap_wire.encode_modify_request(message_id, DN, changes)
    assert ours == ldap3_modify(message_id, DN, changes)


def test_a_single_change_is_taken_as_ldap3_takes_it():
    """``connection.modify`` puts a lone ``(operation, values)`` in a list."""
    ours = ldap_wire.encode_modify_request(3, DN, {"cn": (ldap3.MODIFY_REPLACE, ["x", "y"])})
    assert ours == ldap3_modify(3, DN, {"cn": [(ldap3.MODIFY_REPLACE, ["x", "y"])]})


def test_a_modify_with_controls_is_what_ldap3_sends():
    changes = CHANGE_SETS["each operation"]
    for controls in CONTROL_SETS.values():
        ours = ldap_wire.encode_modify_request(256, DN, changes, controls)
        assert ours == ldap3_modify(256, DN, changes, controls)


def test_invalid_changes_are_refused_as_ldap3_refuses_them():
    for changes in ({}, [("cn", "x")], {"cn": [("MODIFY_NOTHING", ["x"])]}, {"cn": [(0,)]}):
        with pytest.raises(LDAPChangeError):
            ldap_wire.encode_modify_request(1, DN, changes)


# --------------------------------------------------------------------------- sending


@pytest.fixture
def connector(slapd):
    with LdapConnector(service_settings(slapd)) as connector:
        yield connector


@pytest.fixture
def wire_only(connector, monkeypatch):
    """The connector, whose adds and modifies must not go through ldap3's own."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("sent through ldap3, not ldap_wire")

    monkeypatch.setattr(connector.connection, "add", refuse)
    monkeypatch.setattr(connector.connection, "modify", refuse)
    return connector


def test_exports_through_the_wire_create_and_update(slapd, ldap_ou, wire_only):
    people = f"ou=people,{ldap_ou}"
    members = [f"uid=m{n},{people}" for n in range(3)]
    add_entries(slapd, [person(ldap_ou, f"m{n}") for n in range(3)])
    add_entries(slapd, [group(ldap_ou, "g", members[:1])])
    g = f"cn=g,ou=groups,{ldap_ou}"

    results = wire_only.export(
        [
            new_person(
                1,
                f"uid=zoë,{people}",
                sn="Ærø",
                cn=("update", ["Zoë Ærø"]),
                mail=("add", ["z@example.org", "zoe@example.org"]),
                employeeNumber=("update", [7]),
            ),
            new_person(2, f"uid=two,{people}", employeeNumber=("update", [1, 2])),
            new_person(
                3, f"uid=three,{people}", cn=("update", ["T"]), manager=("update", ["not a DN"])
            ),
            change(
                4, "update", GROUP, dn=g, member=("add", members[1:]), description=("update", ["d"])
            ),
        ]
    )

    assert results[0].ok, results[0].error
    entry = read(slapd, f"uid=zoë,{people}", "*", "entryUUID")
    assert results[0].external_id == entry["entryUUID"][0]  # from the post-read control
    assert entry["cn"] == ["Zoë Ærø"] and entry["sn"] == ["Ærø"]
    assert entry["mail"] == ["z@example.org", "zoe@example.org"]
    assert "constraintViolation (19)" in results[1].error  # single-valued
    assert "invalidAttributeSyntax (21)" in results[2].error
    assert not (results[1].ok or results[1].transient or results[2].ok or results[2].transient)
    assert results[3].ok, results[3].error
    assert read(slapd, g, "member", "description") == {
        "member": sorted(members),
        "description": ["d"],
    }

    results = wire_only.export(
        [
            change(5, "update", GROUP, dn=g, member=("remove", members[:2])),
            change(
                6,
                "update",
                GROUP,
                dn=g,
                member=("add", [members[2]]),
                description=("remove_all", []),
            ),
            change(7, "update", dn=f"uid=ghost,{people}", title=("update", ["x"])),
        ]
    )
    assert results[0].ok and results[1].ok, results  # 6: member m2 is there already
    assert read(slapd, g, "member", "description") == {"member": [members[2]]}
    assert results[2].error.startswith(f"modify 'uid=ghost,{people}' failed: noSuchObject (32)")


def test_an_add_keeps_object_classes_unique_as_ldap3_does():
    attributes = {"objectclass": ["inetOrgPerson", b"inetOrgPerson"], "cn": ["c"], "sn": ["s"]}
    ours = ldap_wire.add_message(12, DN, attributes)
    assert ours == ldap3_add(12, DN, {**attributes, "objectclass": ["inetOrgPerson"]})
    assert attributes["objectclass"] == ["inetOrgPerson", b"inetOrgPerson"]  # not changed
    with pytest.raises(LDAPObjectClassError, match="objectClass attribute is mandatory"):
        ldap_wire.add_message(13, DN, {"cn": ["x"]})


@pytest.mark.parametrize("message_id", MESSAGE_IDS)
def test_an_unbind_is_what_ldap3_sends(message_id):
    expected = ldap3_bytes(message_id, "unbindRequest", unbind_operation())
    assert ldap_wire.unbind_request(message_id) == expected


class _Unsendable:
    """A socket that breaks when written to (and otherwise is the real one)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def send(self, data: bytes) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_failed_send_is_a_lost_connection(slapd, ldap_ou, connector, monkeypatch):
    connector.directory_schema()
    transport = connector._session()
    monkeypatch.setattr(transport, "_socket", _Unsendable(transport._socket))
    with pytest.raises(ConnectionFailed, match=r"lost the connection to ldap://.* while add"):
        connector.export([new_person(1, f"uid=x,ou=people,{ldap_ou}")])
    assert read(slapd, f"uid=x,ou=people,{ldap_ou}") is None
