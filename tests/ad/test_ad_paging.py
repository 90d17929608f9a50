"""Seed 002's paging defences against what Samba's paged searches really do when entries
change between pages.

What Samba (4.10 and later; the rig runs 4.17) does, shown first with raw ldap3: its
paged_results module finds the GUIDs of every matching entry when the first page is
asked for, then reads each entry by GUID when its page is asked for, with the search's
filter but not its scope. So an entry is never returned twice (no cross-page
duplicate, whatever is renamed or moved between pages), an entry renamed before its
page comes with its new DN, one deleted before its page is left out, one added after
the first page is not returned — and one moved out of the search base before its page
is returned all the same, with a DN outside the base.

JIM's defences, through its import processor: the paged search leaves out entries
outside its base (connectors/backends/ldap/session.py), so a full import made while
entries move stays consistent and the next delta import brings the rest (nothing lost,
no crash); and a cross-page duplicate — which JIM's own delta produces against Samba
when an entry moves out of the container between the container's pages and the
search for moved-out entries — is the processor's ``duplicate_object`` RPEI, the copy
skipped, and the next delta import completes the move.
"""

from __future__ import annotations

import uuid

import ldap3
import pytest
from ldap3.protocol.rfc2696 import paged_search_control

from connectors.models import ConnectedSystem
from tests.ad.ad_entries import (
    ad_system,
    add_user,
    between_pages,
    errors,
    guid_of,
    live,
)
from tests.builders import run
from tests.support.samba import SambaDC

PAGED_RESULTS = "1.2.840.113556.1.4.319"


def _page(
    connection: ldap3.Connection, base: str, size: int, cookie: bytes | None
) -> tuple[list[tuple[str, str]], bytes | None]:
    """One page of ``(objectClass=user)`` under ``base``: its (GUID, DN)s and the cookie."""
    assert (
        connection.search(
            base,
            "(objectClass=user)",
            ldap3.SUBTREE,
            attributes=["objectGUID"],
            controls=[paged_search_control(False, size, cookie)],
        )
        or connection.result["description"] == "success"
    ), connection.result
    entries = [
        (str(uuid.UUID(bytes_le=e["raw_attributes"]["objectGUID"][0])), e["dn"])
        for e in connection.response
        if e["type"] == "searchResEntry"
    ]
    return entries, connection.result["controls"][PAGED_RESULTS]["value"]["cookie"] or None


def test_what_samba_returns_when_entries_change_between_pages(
    samba_dc: SambaDC, ad_ou, ad_connection
):
    people, disabled = f"OU=people,{ad_ou}", f"OU=disabled,{ad_ou}"
    assert ad_connection.add(f"OU=sub,{people}", ["organizationalUnit"])
    guids = {
        guid_of(ad_connection, add_user(ad_connection, people, f"u{n:02d}")): n for n in range(12)
    }
    service = samba_dc.connection(samba_dc.service_dn, samba_dc.service_password)

    first, cookie = _page(service, people, 3, None)
    seen = [guid for guid, _ in first]
    unseen = [guid for guid in guids if guid not in seen]
    dn = {guid: f"CN=u{n:02d},{people}" for guid, n in guids.items()}
    # Entries already returned: changed and moved within the base (on Windows, an entry
    # that moves in the index a paged search walks can come back on a later page).
    assert ad_connection.modify(dn[seen[0]], {"description": [(ldap3.MODIFY_REPLACE, ["x"])]})
    assert ad_connection.modify_dn(dn[seen[1]], "CN=moved", new_superior=f"OU=sub,{people}")
    # Entries not returned yet: renamed, moved within, moved out, deleted; one added.
    renamed, within, moved_out, deleted = unseen[:4]
    assert ad_connection.modify_dn(dn[renamed], "CN=renamed")
    assert ad_connection.modify_dn(dn[within], "CN=within", new_superior=f"OU=sub,{people}")
    assert ad_connection.modify_dn(dn[moved_out], "CN=out", new_superior=disabled)
    assert ad_connection.delete(dn[deleted])
    added = guid_of(ad_connection, add_user(ad_connection, people, "added"))
    returned = list(first)
    while cookie:
        entries, cookie = _page(service, people, 3, cookie)
        returned.extend(entries)
    service.unbind()

    returned_guids = [guid for guid, _ in returned]
    assert len(returned_guids) == len(set(returned_guids))  # never twice
    assert set(returned_guids) == set(guids) - {deleted}  # the deleted one left out
    assert added not in returned_guids  # not there at the first page: not returned
    by_guid = dict(returned)
    assert by_guid[renamed] == f"CN=renamed,{people}"
    assert by_guid[within] == f"CN=within,OU=sub,{people}"
    assert by_guid[moved_out] == f"CN=out,{disabled}"  # outside the search base


@pytest.mark.django_db
def test_a_full_import_while_entries_change_between_pages_loses_nothing(
    samba_dc, ad_ou, ad_connection, monkeypatch
):
    people, disabled = f"OU=people,{ad_ou}", f"OU=disabled,{ad_ou}"
    dns = [add_user(ad_connection, people, f"u{n:02d}") for n in range(12)]
    system = ad_system(samba_dc, ad_ou, page_size=3)

    def change_entries(pages) -> None:
        # The first page is read and the second asked for (JIM reads ahead): the
        # changes show from the third page on. Seven of the nine entries not read yet
        # move out, so at least four of them are on pages Samba has still to read.
        read = {o.secondary_external_id for page in pages for o in page.objects}
        unread = [dn for dn in dns if dn not in read]
        assert ad_connection.modify_dn(unread[0], "CN=renamed")
        assert ad_connection.delete(unread[1])
        for n, dn in enumerate(unread[2:]):
            assert ad_connection.modify_dn(dn, f"CN=out{n}", new_superior=disabled)
        add_user(ad_connection, people, "added")
        assert ad_connection.modify_dn(pages[0].objects[0].secondary_external_id, "CN=moved-read")

    between_pages(monkeypatch, 1, change_entries)
    full = run(system)
    monkeypatch.undo()

    assert full.status == "complete", (full.message, errors(full))
    imported = live(system)
    # Samba returned the entries moved out with DNs outside the base: left out.
    assert all(cso.secondary_external_id.endswith(f",{people}") for cso in imported.values())
    assert len(imported) <= 12 - 4

    delta = run(system, "Delta Import")

    assert delta.status == "complete", (delta.message, errors(delta))
    assert _state_of(system) == _users_in(ad_connection, people)


@pytest.mark.django_db
def test_a_cross_page_duplicate_is_skipped_and_the_next_delta_completes_it(
    samba_dc, ad_ou, ad_connection, monkeypatch
):
    people, disabled = f"OU=people,{ad_ou}", f"OU=disabled,{ad_ou}"
    dns = [add_user(ad_connection, people, f"u{n}") for n in range(3)]
    system = ad_system(samba_dc, ad_ou)
    assert run(system).status == "complete"
    for dn in dns:
        assert ad_connection.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, ["v1"])]})
    leaver = guid_of(ad_connection, dns[0])

    def move_out(pages) -> None:
        # The container's changed entries are read (one page); the search for entries
        # moved out has not started: it will find this one outside, already imported.
        assert {o.secondary_external_id for o in pages[0].objects} == set(dns)
        assert ad_connection.modify_dn(dns[0], "CN=u0", new_superior=disabled)

    between_pages(monkeypatch, 1, move_out)
    delta = run(system, "Delta Import")
    monkeypatch.undo()

    assert delta.status == "complete_with_errors", delta.message
    ((error_type, message),) = errors(delta)
    assert error_type == "duplicate_object"
    assert f"external id {leaver!r} was already imported from an earlier page" in message
    assert "the copy is skipped" in message
    assert leaver in live(system)  # the delete was the skipped copy
    assert all(cso.attributes["description"] == ["v1"] for cso in live(system).values())

    again = run(system, "Delta Import")  # the move is after the watermark: read again

    assert again.status == "complete", (again.message, errors(again))
    assert leaver not in live(system)
    assert _state_of(system) == _users_in(ad_connection, people)


def _state_of(system: ConnectedSystem) -> dict[str, str]:
    """JIM's live CSOs: GUID → DN."""
    return {guid: cso.secondary_external_id for guid, cso in live(system).items()}


def _users_in(connection: ldap3.Connection, base: str) -> dict[str, str]:
    """The users under ``base`` now: GUID → DN."""
    entries = connection.extend.standard.paged_search(
        base, "(objectClass=user)", attributes=["objectGUID"], paged_size=500, generator=False
    )
    return {
        str(uuid.UUID(bytes_le=e["raw_attributes"]["objectGUID"][0])): e["dn"]
        for e in entries
        if e["type"] == "searchResEntry"
    }
