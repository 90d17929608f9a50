"""LDAP requests encoded straight to BER, for the export's hot path.

ldap3 builds every request as a tree of pyasn1 objects, turns it back into a dict
and then has pyasn1's generic BER encoder walk the tree. For an add of a dozen
attributes that costs more CPU than the directory spends storing the entry: profiles
of large exports spent over half their time there. The export only sends adds and
modifies in bulk, and both are simple structures (RFC 4511, 4.6 and 4.7), so this
module writes their LDAPMessage bytes directly; the connector's transport sends them
(``connectors.backends.ldap.transport.Transport``). Other requests are rare and go through
ldap3's encoder (``connectors.backends.ldap.internals``).

The bytes are the ones ldap3 and pyasn1 produce for the same request (definite
lengths in their shortest form, SET OF values in the order given, a control's
criticality left out when false); the tests compare them byte for byte. This module
uses ldap3's public constants and exceptions; the rest comes through
``connectors.backends.ldap.internals``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPChangeError, LDAPControlError, LDAPObjectClassError

from connectors.backends.ldap.internals import Control as Asn1Control
from connectors.backends.ldap.internals import to_unicode

#: A request control as ldap3 takes it: (OID, criticality, encoded value or None),
#: or the pyasn1 ``Control`` that ldap3's control builders (``post_read_control``) return.
Control = tuple[str, bool, bytes | None] | Asn1Control
#: A modify request's changes: attribute → ``(operation, values)`` in order.
ChangeList = dict[str, Sequence[tuple[Any, Any]]]

# --------------------------------------------------------------------------- BER

OCTET_STRING = 0x04
INTEGER = 0x02
ENUMERATED = 0x0A
BOOLEAN = 0x01
SEQUENCE = 0x30
SET = 0x31
#: [APPLICATION 6] and [APPLICATION 8], constructed.
MODIFY_REQUEST = 0x66
ADD_REQUEST = 0x68
#: [APPLICATION 2], primitive (NULL).
UNBIND_REQUEST = 0x42
#: LDAPMessage's ``controls [0]``, constructed.
CONTROLS = 0xA0


def encode_length(length: int) -> bytes:
    """A definite length: one byte below 128, else 0x80 + the count of big-endian bytes."""
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    """One element: its (single-byte) tag, the length of ``content``, ``content``."""
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    return bytes((tag,)) + encode_length(length) + content


def encode_integer(value: int, tag: int = INTEGER) -> bytes:
    """An INTEGER (or ENUMERATED) in minimal two's complement."""
    magnitude = value if value >= 0 else ~value
    return tlv(tag, value.to_bytes(magnitude.bit_length() // 8 + 1, "big", signed=True))


def encode_enumerated(value: int) -> bytes:
    return encode_integer(value, ENUMERATED)


def encode_boolean(value: bool) -> bytes:
    """A BOOLEAN; TRUE is 0xFF, as RFC 4511 (5.1) requires and ldap3 sends."""
    return tlv(BOOLEAN, b"\xff" if value else b"\x00")


def encode_octet_string(value: bytes) -> bytes:
    return tlv(OCTET_STRING, value)


def encode_sequence(content: bytes) -> bytes:
    """A SEQUENCE (or SEQUENCE OF) of the already encoded elements in ``content``."""
    return tlv(SEQUENCE, content)


def encode_set(content: bytes) -> bytes:
    """A SET OF the already encoded elements in ``content``, in the order given
    (BER does not sort them; pyasn1's BER encoder does not either)."""
    return tlv(SET, content)


# --------------------------------------------------------------------------- values


def encode_value(value: Any) -> bytes:
    """An attribute value's bytes: text as UTF-8, bytes as they are.

    A bool is ``TRUE``/``FALSE`` (LDAP's Boolean syntax, what ldap3's Boolean
    validator sends); other values are their ``str()`` (ldap3 does the same for
    numbers). The connector has converted its values with ``to_ldap_value`` already.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        return b"TRUE" if value else b"FALSE"
    return str(value).encode("utf-8")


def _values(values: Any) -> list[Any]:
    """The values of one attribute: a sequence as it is, a single value as a list of one
    (ldap3 accepts both)."""
    return values if isinstance(values, ldap3.SEQUENCE_TYPES) else [values]


def _vals(values: Any) -> bytes:
    """``vals SET OF AttributeValue`` (empty is allowed: a REPLACE that removes all)."""
    return encode_set(b"".join(tlv(OCTET_STRING, encode_value(v)) for v in _values(values)))


def _attribute(name: str, values: Any) -> bytes:
    """``SEQUENCE { type AttributeDescription, vals SET OF value }``."""
    return encode_sequence(encode_octet_string(name.encode("utf-8")) + _vals(values))


# --------------------------------------------------------------------------- controls


def _control_fields(control: Control) -> tuple[str, bool, bytes | None]:
    if isinstance(control, Asn1Control):
        value = control["controlValue"]
        return (
            str(control["controlType"]),
            bool(control["criticality"]),
            bytes(value) if value.hasValue() else None,
        )
    if len(control) == 3 and isinstance(control[1], bool):
        return control
    raise LDAPControlError(  # ldap3's words
        "control must be a sequence of 3 elements: controlType, criticality (boolean) "
        "and controlValue (None if not provided)"
    )


def _control(control: Control) -> bytes:
    """``Control ::= SEQUENCE { controlType, criticality DEFAULT FALSE, controlValue
    OPTIONAL }``; a false criticality is the default, so it is left out."""
    oid, critical, value = _control_fields(control)
    content = encode_octet_string(oid.encode("utf-8"))
    if critical:
        content += encode_boolean(True)
    if value is not None:
        content += encode_octet_string(value)
    return encode_sequence(content)


def encode_controls(controls: Sequence[Control] | None) -> bytes:
    """LDAPMessage's ``controls [0] Controls``; nothing when there are none."""
    if not controls:
        return b""
    if not isinstance(controls, ldap3.SEQUENCE_TYPES):
        raise LDAPControlError("controls must be a sequence")
    return tlv(CONTROLS, b"".join(_control(control) for control in controls))


# --------------------------------------------------------------------------- requests


#: ModifyRequest's ``operation``, by ldap3's names and numbers.
_OPERATIONS: dict[str | int, int] = {
    ldap3.MODIFY_ADD: 0,
    ldap3.MODIFY_DELETE: 1,
    ldap3.MODIFY_REPLACE: 2,
    ldap3.MODIFY_INCREMENT: 3,
    0: 0,
    1: 1,
    2: 2,
    3: 3,
}


def add_request(dn: str, attributes: Mapping[str, Any]) -> bytes:
    """``AddRequest ::= [APPLICATION 8] SEQUENCE { entry LDAPDN, attributes
    AttributeList }``, attributes and values in the order given."""
    attribute_list = b"".join(_attribute(name, values) for name, values in attributes.items())
    return tlv(
        ADD_REQUEST, encode_octet_string(dn.encode("utf-8")) + encode_sequence(attribute_list)
    )


def modify_request(dn: str, changes: Mapping[str, Any]) -> bytes:
    """``ModifyRequest ::= [APPLICATION 6] SEQUENCE { object LDAPDN, changes SEQUENCE OF
    SEQUENCE { operation ENUMERATED, modification PartialAttribute } }``.

    ``changes`` is ldap3's: attribute → list of ``(operation, values)``, or one
    ``(operation, values)``; the changes go in that order.
    """
    return _modify_request(dn, change_list(changes))


def _modify_request(dn: str, changes: ChangeList) -> bytes:
    content = b"".join(
        encode_sequence(encode_enumerated(_OPERATIONS[operation]) + _attribute(name, values))
        for name, operations in changes.items()
        for operation, values in operations
    )
    return tlv(MODIFY_REQUEST, encode_octet_string(dn.encode("utf-8")) + encode_sequence(content))


def change_list(changes: Mapping[str, Any]) -> ChangeList:
    """``changes`` checked, and a single change put in a list, as ldap3's modify does
    (with its exceptions)."""
    if not isinstance(changes, dict):
        raise LDAPChangeError("changes must be a dictionary")
    if not changes:
        raise LDAPChangeError("no changes in modify request")
    checked: ChangeList = {}
    for name, change in changes.items():
        if isinstance(change, ldap3.SEQUENCE_TYPES) and change and _is_operation(change[0]):
            change = [change]
        if any(len(operation) != 2 or not _is_operation(operation[0]) for operation in change):
            raise LDAPChangeError("invalid change list")
        checked[name] = change
    return checked


def _is_operation(value: Any) -> bool:
    return isinstance(value, str | int) and value in _OPERATIONS


def ldap_message(message_id: int, body: bytes) -> bytes:
    """``LDAPMessage ::= SEQUENCE { messageID, protocolOp, controls OPTIONAL }``;
    ``body`` is the encoded protocolOp followed by the encoded controls, if any."""
    return encode_sequence(encode_integer(message_id) + body)


def encode_add_request(
    message_id: int,
    dn: str,
    attributes: Mapping[str, Any],
    controls: Sequence[Control] | None = None,
) -> bytes:
    """The LDAPMessage of an add request."""
    return ldap_message(message_id, add_request(dn, attributes) + encode_controls(controls))


def encode_modify_request(
    message_id: int,
    dn: str,
    changes: Mapping[str, Any],
    controls: Sequence[Control] | None = None,
) -> bytes:
    """The LDAPMessage of a modify request."""
    return ldap_message(message_id, modify_request(dn, changes) + encode_controls(controls))


def add_message(
    message_id: int,
    dn: str,
    attributes: Mapping[str, Any],
    controls: Sequence[Control] | None = None,
) -> bytes:
    """The add request's LDAPMessage as ``connection.add`` sends it: object classes as
    text and without duplicates (``LDAPObjectClassError`` without any, as ldap3)."""
    return encode_add_request(message_id, dn, unique_object_classes(attributes), controls)


def unbind_request(message_id: int) -> bytes:
    """``UnbindRequest ::= [APPLICATION 2] NULL``."""
    return ldap_message(message_id, tlv(UNBIND_REQUEST, b""))


def unique_object_classes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes with the objectClass values as text and without duplicates, as
    ldap3's add makes them (which also refuses an add without object classes)."""
    name = next((name for name in attributes if name.lower() == "objectclass"), "objectClass")
    classes = list(dict.fromkeys(to_unicode(c) for c in _values(attributes.get(name, []))))
    if not classes:
        raise LDAPObjectClassError("objectClass attribute is mandatory")
    return {**attributes, name: classes}
