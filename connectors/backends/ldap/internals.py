"""Every use of ldap3's internals by the LDAP connector, in one place.

The connector uses ldap3 (2.9.1) to connect, secure (ldaps, StartTLS) and bind the
connection, with ldap3's SYNC strategy: all in the calling thread. After that, its
own transport (``connectors.backends.ldap.transport.Transport``) owns the socket, so it needs
a few things ldap3 does not offer as public API: the socket itself, the server's
message-id counter, the pyasn1 encoding of a request and the BER framing and fast
decoding of a response. They are here, and nowhere else; this module checks that
the installed ldap3 is the one they were written for, and refuses to load
otherwise (a newer ldap3 may have moved or changed them: read it, adjust this module
and :data:`LDAP3_VERSION`).
"""

from __future__ import annotations

import socket
from typing import Any

import ldap3

#: The ldap3 release whose internals this module was written against.
LDAP3_VERSION = "2.9.1"


class Ldap3VersionError(ImportError):
    """The installed ldap3 is not the release this module was written for."""


def check_version(installed: str = ldap3.__version__) -> None:
    """Raise :class:`Ldap3VersionError` unless ``installed`` is :data:`LDAP3_VERSION`."""
    if installed != LDAP3_VERSION:
        raise Ldap3VersionError(
            f"JIM's LDAP connector uses internals of ldap3 {LDAP3_VERSION} "
            f"(connectors/backends/ldap/internals.py), but ldap3 {installed} is installed: "
            f"install ldap3=={LDAP3_VERSION}, or review that module against ldap3 {installed}."
        )


check_version()

# Imported only once the version is known to be the right one.
from ldap3.operation.delete import delete_operation  # noqa: E402
from ldap3.operation.modifyDn import modify_dn_operation  # noqa: E402
from ldap3.operation.search import (  # noqa: E402
    search_operation,
    search_result_entry_response_to_dict_fast,
)
from ldap3.protocol.convert import build_controls_list  # noqa: E402
from ldap3.protocol.rfc2696 import paged_search_control  # noqa: E402
from ldap3.protocol.rfc4511 import Control, LDAPMessage, MessageID, ProtocolOp  # noqa: E402
from ldap3.protocol.rfc4512 import (  # noqa: E402
    AttributeTypeInfo,
    DitContentRuleInfo,
    ObjectClassInfo,
)
from ldap3.protocol.rfc4527 import post_read_control  # noqa: E402
from ldap3.strategy.base import BaseStrategy  # noqa: E402
from ldap3.utils.asn1 import decode_message_fast, encode  # noqa: E402
from ldap3.utils.conv import to_unicode  # noqa: E402

#: Used as they are: the pyasn1 control class (what ``post_read_control`` returns),
#: the schema definition parsers, and ldap3's text conversion of a value.
__all__ = [
    "AttributeTypeInfo",
    "Control",
    "DitContentRuleInfo",
    "ObjectClassInfo",
    "post_read_control",
    "to_unicode",
]

#: The protocolOp number of a searchResEntry.
SEARCH_RESULT_ENTRY = 4


# --------------------------------------------------------------------------- the session


def socket_of(connection: ldap3.Connection) -> socket.socket:
    """The connection's socket (an ``ssl.SSLSocket`` once TLS is on)."""
    return connection.socket


def next_message_id(connection: ldap3.Connection) -> int:
    """The next message id of the connection's server (ldap3 counts per server)."""
    return connection.server.next_message_id()


def close_socket(connection: ldap3.Connection) -> None:
    """Close the connection's socket in the calling thread, without an unbind, and
    mark the ldap3 connection closed (ldap3's SYNC strategy has no other thread)."""
    connection.strategy.close()


# --------------------------------------------------------------------------- requests


def encode_request(
    message_id: int, kind: str, request: Any, controls: list[Any] | None = None
) -> bytes:
    """An LDAPMessage as ldap3's ``BaseStrategy.send`` builds and encodes it (pyasn1)."""
    message = LDAPMessage()
    message["messageID"] = MessageID(message_id)
    message["protocolOp"] = ProtocolOp().setComponentByName(kind, request)
    built = build_controls_list(controls)
    if built is not None:
        message["controls"] = built
    return encode(message)


def search_message(
    message_id: int,
    base: str,
    search_filter: str,
    scope: str,
    attributes: list[str],
    *,
    size_limit: int = 0,
    time_limit: int = 0,
    paged_size: int | None = None,
    paged_cookie: bytes | None = None,
    controls: list[tuple[str, bool, bytes | None]] | None = None,
) -> bytes:
    """A search request as ldap3's ``Connection.search`` sends it (no schema, names not
    checked, aliases always dereferenced, values auto-escaped and encoded); ``controls``
    are (OID, criticality, value) sent besides the paged-results control."""
    request = search_operation(
        base,
        search_filter,
        scope,
        ldap3.DEREF_ALWAYS,
        attributes or [ldap3.NO_ATTRIBUTES],
        size_limit,
        time_limit,
        False,
        True,
        True,
        None,
        validator=None,
        check_names=False,
    )
    sent: list[Any] = list(controls or [])
    if paged_size is not None:
        sent.append(paged_search_control(False, paged_size, paged_cookie))
    return encode_request(message_id, "searchRequest", request, sent or None)


def delete_message(message_id: int, dn: str) -> bytes:
    return encode_request(message_id, "delRequest", delete_operation(dn))


def modify_dn_message(message_id: int, dn: str, new_rdn: str, new_superior: str | None) -> bytes:
    """A modify DN request that deletes the old RDN's value."""
    request = modify_dn_operation(dn, new_rdn, True, new_superior)
    return encode_request(message_id, "modDNRequest", request)


# --------------------------------------------------------------------------- responses


def message_size(data: bytes | bytearray) -> int:
    """The size of the BER-encoded LDAPMessage at the start of ``data`` (its definite
    length plus tag and length octets); -1 while too few bytes say it."""
    return BaseStrategy.compute_ldap_message_size(data)


def decode_message(connection: ldap3.Connection, data: bytes) -> tuple[int, dict[str, Any]]:
    """One LDAPMessage's message id and ldap3's dict of it (``decode_response_fast``),
    search entries decoded by :func:`decode_entry_lean` where they can be."""
    message = decode_message_fast(data)
    response = None
    if message["protocolOp"] == SEARCH_RESULT_ENTRY and not message["controls"]:
        response = decode_entry_lean(message["payload"])
    if response is None:
        response = connection.strategy.decode_response_fast(message)
    return message["messageID"], response


def is_partial(response: dict[str, Any]) -> bool:
    """True for an entry, reference or intermediate response: more is to come."""
    return response["type"] in ("searchResEntry", "searchResRef", "intermediateResponse")


def decode_entry_lean(payload: list) -> dict[str, Any] | None:
    """A searchResEntry's ``dn`` and ``raw_attributes`` only (None: use ldap3's decoder).

    ldap3 also builds a second, text-decoded copy of every attribute (``attributes``)
    in case-insensitive dicts; the connector reads raw values only, and skipping that
    copy reads entries about 1.5 times faster. Anything unusual (a ranged attribute,
    a structure not as expected, a name that is not UTF-8) is left to ldap3.
    """
    try:
        attributes = {
            bytes(item[3][0][3]).decode("utf-8"): [bytes(v[3]) for v in item[3][1][3]]
            for item in payload[1][3]
        }
        if any(";range=" in name.lower() for name in attributes):
            return None
        return {
            "type": "searchResEntry",
            "dn": bytes(payload[0][3]).decode("utf-8"),
            "raw_attributes": attributes,
        }
    except (IndexError, KeyError, TypeError, UnicodeDecodeError):
        return None


def decode_entry_ldap3(payload: list) -> dict[str, Any]:
    """A searchResEntry as ldap3's own fast decoder makes it (for comparison)."""
    return search_result_entry_response_to_dict_fast(payload, None, None, False)


def decode_payload(data: bytes) -> tuple[int, int, list]:
    """A message's id, protocolOp number and raw payload (ldap3's fast BER decoder)."""
    message = decode_message_fast(data)
    return message["messageID"], message["protocolOp"], message["payload"]
