"""The LDAP connector's transport and its use of ldap3's internals, against a real
slapd: the ldap3 version check, the lean entry decoder against ldap3's own on real
answers, TLS (ldaps and StartTLS) for bulk exports and paged imports, and the design
rule that no thread but the caller's touches the socket."""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path

import ldap3
import pytest

from connectors.backends.ldap import LdapConnector
from connectors.backends.ldap import internals as ldap_internals
from connectors.backends.ldap import wire as ldap_wire
from connectors.base import ConnectionFailed
from tests.connectors.ldap_entries import add_entries, new_person, people_spec, person
from tests.support.slapd import service_settings

# --------------------------------------------------------------------------- version


def test_the_installed_ldap3_is_the_one_the_internals_were_written_for():
    assert ldap3.__version__ == ldap_internals.LDAP3_VERSION
    ldap_internals.check_version()


def test_another_ldap3_version_is_refused_with_a_clear_message():
    with pytest.raises(ldap_internals.Ldap3VersionError) as failure:
        ldap_internals.check_version("2.10.0")
    message = str(failure.value)
    assert "ldap3 2.9.1" in message and "ldap3 2.10.0 is installed" in message
    assert "connectors/backends/ldap/internals.py" in message


# --------------------------------------------------------------------------- decoding

JPEG = bytes(range(256)) * 3
ODD_ENTRIES = {
    "multi": {"mail": ["a@example.org", "b@example.org", "c@example.org"], "title": ["x", "y"]},
    "binary": {"jpegPhoto": JPEG, "audio": b"\x00"},
    "utf8": {"cn": "Zoë Ærø 日本語", "description": ["naïve", "ØÆÅ ✓"], "sn": "Ærø"},
    "short": {"description": "x", "title": " y", "postalCode": "0", "audio": b""},
}


def raw_messages(connector: LdapConnector, base: str, attributes: list[str]) -> list[bytes]:
    """The raw LDAPMessages slapd answers to a subtree search, as they came."""
    transport = connector._session()
    build = partial(
        ldap_internals.search_message,
        base=base,
        search_filter="(objectClass=inetOrgPerson)",
        scope=ldap3.SUBTREE,
        attributes=attributes,
    )
    transport.send(build, "a test search")
    sock = transport._socket
    sock.settimeout(10)
    data, messages = b"", []
    while not messages or ldap_internals.decode_payload(messages[-1])[1] != 5:  # searchResDone
        data += sock.recv(65536)
        while (size := ldap_internals.message_size(data)) > 0 and len(data) >= size:
            messages.append(data[:size])
            data = data[size:]
    return messages


def test_the_lean_decoder_reads_real_entries_as_ldap3_does(slapd, ldap_ou):
    add_entries(slapd, [person(ldap_ou, uid, **values) for uid, values in ODD_ENTRIES.items()])
    with LdapConnector(service_settings(slapd)) as connector:
        messages = raw_messages(connector, ldap_ou, ["*", "+"])
        connector.close()  # the test read the socket itself: the session is spent
    entries = [m for m in messages if ldap_internals.decode_payload(m)[1] == 4]
    assert len(entries) == len(ODD_ENTRIES)
    for message in entries:
        _, _, payload = ldap_internals.decode_payload(message)
        lean = ldap_internals.decode_entry_lean(payload)
        ldap3_entry = ldap_internals.decode_entry_ldap3(payload)
        assert lean == {
            "type": "searchResEntry",
            "dn": ldap3_entry["dn"],
            "raw_attributes": dict(ldap3_entry["raw_attributes"]),
        }
    by_uid = {
        lean["dn"].split(",")[0]: lean["raw_attributes"]
        for lean in (
            ldap_internals.decode_entry_lean(ldap_internals.decode_payload(m)[2]) for m in entries
        )
    }
    assert by_uid["uid=binary"]["jpegPhoto"] == [JPEG]
    assert by_uid["uid=utf8"]["cn"] == ["Zoë Ærø 日本語".encode()]
    assert len(by_uid["uid=multi"]["mail"]) == 3
    assert "entryUUID" in by_uid["uid=short"]  # operational attributes too


def test_a_ranged_attribute_is_left_to_ldap3():
    """Active Directory answers large attributes in ranges (``member;range=0-1499``):
    the lean decoder hands such entries to ldap3's decoder."""
    attribute = ldap_wire.encode_sequence(
        ldap_wire.encode_octet_string(b"member;range=0-1")
        + ldap_wire.encode_set(
            ldap_wire.encode_octet_string(b"cn=a") + ldap_wire.encode_octet_string(b"cn=b")
        )
    )
    entry = ldap_wire.tlv(
        0x64,  # [APPLICATION 4] SearchResultEntry
        ldap_wire.encode_octet_string(b"cn=g,o=x") + ldap_wire.encode_sequence(attribute),
    )
    message = ldap_wire.ldap_message(7, entry)
    _, _, payload = ldap_internals.decode_payload(message)
    assert ldap_internals.decode_entry_lean(payload) is None

    with_ldap3 = ldap_internals.decode_entry_ldap3(payload)
    assert with_ldap3["raw_attributes"]["member;range=0-1"] == [b"cn=a", b"cn=b"]


# --------------------------------------------------------------------------- TLS


@pytest.fixture(params=["ldaps", "start_tls"])
def tls_settings(request, slapd):
    if request.param == "ldaps":
        return service_settings(slapd, url=slapd.ldaps_url, ca_file=str(slapd.ca_file))
    return service_settings(slapd, start_tls=True, ca_file=str(slapd.ca_file))


def test_bulk_exports_and_paged_imports_over_tls(slapd, ldap_ou, tls_settings):
    people = f"ou=people,{ldap_ou}"
    photo = ("update", [base64.b64encode(JPEG).decode()])
    changes = [
        new_person(n, f"uid=t{n:04d},{people}", cn=("update", [f"T {n}"]), jpegPhoto=photo)
        for n in range(600)
    ]
    with LdapConnector(tls_settings | {"export_window": 200}) as connector:
        results = connector.export(changes)
        assert [result.error for result in results if not result.ok] == []
        stream = connector.import_objects(
            [people_spec(ldap_ou)], delta=False, persisted_data={}, page_size=50
        )
        imported = [obj for page in stream.pages for obj in page.objects]
    assert len(imported) == 600
    assert {obj.external_id for obj in imported} == {result.external_id for result in results}


def test_no_thread_but_the_callers_touches_the_socket(slapd, ldap_ou, tls_settings):
    """The connector starts no thread: connecting, TLS, requests and closing all happen
    in the caller's thread (ldap3's ASYNC receiver thread could outlive its socket and
    read the next connection's bytes; see docs/architecture.md)."""
    before = threading.enumerate()
    with LdapConnector(tls_settings) as connector:
        connector.export([new_person(1, f"uid=one,ou=people,{ldap_ou}")])
        assert threading.enumerate() == before
    assert threading.enumerate() == before


def test_tls_and_plain_connections_opened_and_closed_in_turn(slapd, ldap_ou, tls_settings):
    """The pattern that made ldap3's ASYNC strategy fail by chance: a TLS connection
    closed, and the next connection opened at once on the same descriptor number."""
    plain = service_settings(slapd)
    for _ in range(30):
        with LdapConnector(tls_settings) as connector:
            connector.directory_schema()
        with LdapConnector(plain) as connector:
            connector.directory_schema()


def freeze(pid: int) -> None:
    """SIGSTOP ``pid`` and return once every one of its threads is stopped (a signal
    takes effect asynchronously: a running thread could still answer a request)."""
    os.kill(pid, signal.SIGSTOP)
    tasks = Path(f"/proc/{pid}/task")
    deadline = time.monotonic() + 10
    while not all(_stopped(task) for task in tasks.iterdir()):
        assert time.monotonic() < deadline, f"slapd {pid} did not stop"
        time.sleep(0.001)


def _stopped(task: Path) -> bool:
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except FileNotFoundError:  # the thread has exited
        return True


def test_a_server_that_stops_answering_is_a_lost_connection(slapd, ldap_ou):
    """slapd frozen (SIGSTOP): no answer within ``timeout`` closes the connection and
    fails the export with ConnectionFailed (transient); nothing waits for ever."""
    people = f"ou=people,{ldap_ou}"
    with LdapConnector(service_settings(slapd, timeout=2)) as connector:
        connector.directory_schema()
        freeze(slapd.pid)
        try:
            with pytest.raises(ConnectionFailed, match="did not answer within 2 s") as failure:
                connector.export([new_person(1, f"uid=frozen,{people}")])
        finally:
            os.kill(slapd.pid, signal.SIGCONT)
        assert failure.value.transient
        with pytest.raises(ConnectionFailed, match="no answer within 2 s"):
            connector.export([new_person(2, f"uid=after,{people}")])
