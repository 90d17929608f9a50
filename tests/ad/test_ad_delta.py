"""AD's delta import (``delta_method: usn``, connectors/backends/ldap/usn.py) against the
real domain controller, through JIM's import processor: changes made directly in AD
(as Administrator) are seen by a delta import that binds as JIM's service account —
creates, changes, renames, moves into, out of and within the container, deletes — and
none is lost when it is made while the delta pages; a watermark the DC no longer
knows, or an account that cannot read the deleted objects, fails the delta clearly.
"""

from __future__ import annotations

import uuid

import ldap3
import pytest

from connectors.backends.ldap import LdapConnector
from connectors.backends.ldap.usn import SHOW_DELETED
from connectors.base import ConnectorConfigurationError, ObjectTypeSpec
from connectors.models import ConnectedSystem
from tests.ad.ad_entries import (
    USER_CLASSES,
    ad_system,
    add_user,
    between_pages,
    csos_by_guid,
    errors,
    guid_of,
    highest_usn,
    live,
    sam_name,
)
from tests.builders import add_object_type, run

pytestmark = pytest.mark.django_db

#: LDAP_SERVER_TREE_DELETE_OID: delete an entry and everything beneath it.
TREE_DELETE = "1.2.840.113556.1.4.805"


def persisted(system: ConnectedSystem) -> dict:
    return ConnectedSystem.objects.get(pk=system.pk).persisted_connector_data


def test_a_full_import_keeps_the_usn_watermark_taken_before_its_first_page(
    samba_dc, ad_ou, ad_connection
):
    add_user(ad_connection, f"OU=people,{ad_ou}", "First")
    before = highest_usn(ad_connection)
    system = ad_system(samba_dc, ad_ou)

    activity = run(system)

    assert activity.status == "complete", activity.message
    watermark = persisted(system)
    assert watermark["delta_method"] == "usn"
    assert before <= watermark["usn"] <= highest_usn(ad_connection)
    assert watermark["server"].startswith("CN=NTDS Settings,")
    assert str(uuid.UUID(watermark["invocation_id"])) == watermark["invocation_id"]
    (cso,) = csos_by_guid(system).values()
    assert cso.external_id == guid_of(ad_connection, f"CN=First,OU=people,{ad_ou}")


def test_usn_is_the_delta_method_of_active_directory_when_none_is_set(
    samba_dc, ad_ou, ad_connection
):
    system = ad_system(samba_dc, ad_ou, delta_method="")
    assert run(system).status == "complete"
    assert persisted(system)["delta_method"] == "usn"
    dn = add_user(ad_connection, f"OU=people,{ad_ou}", "later")

    activity = run(system, "Delta Import")

    assert (activity.status, activity.counts) == ("complete", {"added": 1}), activity.message
    assert guid_of(ad_connection, dn) in live(system)


def test_a_delta_sees_creates_changes_renames_moves_and_deletes_made_in_ad(
    samba_dc, ad_ou, ad_connection
):
    people, disabled = f"OU=people,{ad_ou}", f"OU=disabled,{ad_ou}"
    assert ad_connection.add(f"OU=sub,{people}", ["organizationalUnit"])
    dns = {name: add_user(ad_connection, people, name) for name in ("a", "b", "c", "d", "e")}
    dns["f"] = add_user(ad_connection, disabled, "f")  # outside the container
    dns["h"] = add_user(ad_connection, disabled, "h")
    guids = {name: guid_of(ad_connection, dn) for name, dn in dns.items()}
    system = ad_system(samba_dc, ad_ou)
    assert run(system).status == "complete"
    before = csos_by_guid(system)
    assert set(before) == {guids[name] for name in "abcde"}

    connection = ad_connection
    assert connection.modify(dns["a"], {"description": [(ldap3.MODIFY_REPLACE, ["changed"])]})
    assert connection.modify_dn(dns["b"], "CN=b2")  # renamed
    assert connection.modify_dn(dns["c"], "CN=c", new_superior=disabled)  # moved out
    assert connection.modify_dn(dns["d"], "CN=d", new_superior=f"OU=sub,{people}")  # within
    assert connection.delete(dns["e"])
    assert connection.modify_dn(dns["f"], "CN=f", new_superior=people)  # moved in
    assert connection.delete(dns["h"])  # deleted outside: JIM never held it
    g = add_user(connection, people, "g")

    activity = run(system, "Delta Import")

    assert activity.status == "complete", (activity.message, errors(activity))
    after = csos_by_guid(system)
    assert after[guids["a"]].attributes["description"] == ["changed"]
    assert after[guids["b"]].secondary_external_id == f"CN=b2,{people}"
    assert after[guids["d"]].secondary_external_id == f"CN=d,OU=sub,{people}"
    assert after[guids["c"]].status == after[guids["e"]].status == "obsolete"
    assert after[guids["f"]].secondary_external_id == f"CN=f,{people}"
    assert after[guid_of(connection, g)].secondary_external_id == g
    assert guids["h"] not in after
    assert set(live(system)) == {guids[n] for n in "abdf"} | {guid_of(connection, g)}
    counts = activity.counts
    assert (counts.get("added"), counts.get("updated"), counts.get("deleted")) == (2, 3, 2)

    again = run(system, "Delta Import")  # nothing changed since: nothing to do

    assert (again.status, again.counts) == ("complete", {}), again.message


def test_deletions_are_seen_wherever_the_object_went(samba_dc, ad_ou, ad_connection):
    people, disabled = f"OU=people,{ad_ou}", f"OU=disabled,{ad_ou}"
    assert ad_connection.add(f"OU=team,{people}", ["organizationalUnit"])
    in_team = add_user(ad_connection, f"OU=team,{people}", "t")
    leaver = add_user(ad_connection, people, "l")
    stays = add_user(ad_connection, people, "s")
    guids = {dn: guid_of(ad_connection, dn) for dn in (in_team, leaver, stays)}
    system = ad_system(samba_dc, ad_ou)
    assert run(system).status == "complete"
    # A sub-OU deleted with what is in it (its users' last parent is the OU's own
    # tombstone); a user moved out of the container, then deleted.
    assert ad_connection.delete(f"OU=team,{people}", controls=[(TREE_DELETE, True, None)])
    assert ad_connection.modify_dn(leaver, "CN=l", new_superior=disabled)
    assert ad_connection.delete(f"CN=l,{disabled}")

    activity = run(system, "Delta Import")

    assert activity.status == "complete", (activity.message, errors(activity))
    assert set(live(system)) == {guids[stays]}
    assert activity.counts == {"deleted": 2}


def test_an_object_two_object_types_could_claim_is_one_change(samba_dc, ad_ou, ad_connection):
    """A computer is a user too: users come from OU=people, computers from OU=disabled."""
    people, disabled = f"OU=people,{ad_ou}", f"OU=disabled,{ad_ou}"
    person = add_user(ad_connection, people, "p")
    computer = f"CN=pc,{disabled}"
    assert ad_connection.add(
        computer, [*USER_CLASSES, "computer"], {"sAMAccountName": sam_name("pc")[:15] + "$"}
    ), ad_connection.result
    system = ad_system(samba_dc, ad_ou)
    add_object_type(
        system,
        "computer",
        external_id="objectGUID",
        secondary_external_id="dn",
        container=disabled,
        attributes={"objectSid": "binary"},
    )
    assert run(system).status == "complete"
    pc = guid_of(ad_connection, computer)
    assert live(system)[pc].object_type.name == "computer"
    for dn in (person, computer):
        assert ad_connection.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, ["new"])]})

    changed = run(system, "Delta Import")  # not a delete from the users' side

    assert changed.status == "complete", (changed.message, errors(changed))
    assert changed.counts == {"updated": 2}
    assert ad_connection.delete(computer)

    deleted = run(system, "Delta Import")  # one delete, not one per class

    assert deleted.status == "complete", (deleted.message, errors(deleted))
    assert deleted.counts == {"deleted": 1}
    assert pc not in live(system)


def test_a_change_made_while_the_delta_pages_is_not_lost(
    samba_dc, ad_ou, ad_connection, monkeypatch
):
    people = f"OU=people,{ad_ou}"
    dns = [add_user(ad_connection, people, f"p{n}") for n in range(6)]
    system = ad_system(samba_dc, ad_ou, page_size=2)
    assert run(system).status == "complete"
    for dn in dns:
        assert ad_connection.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, ["v1"])]})
    during: dict[str, int] = {}

    def change_what_was_read(pages) -> None:
        # The delta has read the first page (and asked for the second): change an
        # entry it has read already, and one it has not.
        read = pages[0].objects[0].secondary_external_id
        unread = next(dn for dn in dns if all(o.location != dn for p in pages for o in p.objects))
        for dn in (read, unread):
            assert ad_connection.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, ["v2"])]})
        during.update(read=read, unread=unread, usn=highest_usn(ad_connection))

    between_pages(monkeypatch, 1, change_what_was_read)
    first = run(system, "Delta Import")
    monkeypatch.undo()

    assert first.status == "complete", first.message
    assert persisted(system)["usn"] < during["usn"]  # taken before the change
    by_dn = {cso.secondary_external_id: cso for cso in live(system).values()}
    assert by_dn[during["read"]].attributes["description"] == ["v1"]  # read before it

    second = run(system, "Delta Import")

    assert second.status == "complete", second.message
    by_dn = {cso.secondary_external_id: cso for cso in live(system).values()}
    assert {dn: cso.attributes["description"] for dn, cso in by_dn.items()} == {
        dn: ["v2"] if dn in (during["read"], during["unread"]) else ["v1"] for dn in dns
    }


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (
            lambda w: {**w, "invocation_id": str(uuid.uuid4())},
            "was restored or re-provisioned, and the changes since the watermark cannot be "
            "read by USN. Run a full import.",
        ),
        (
            lambda w: {**w, "usn": w["usn"] + 1_000_000},
            "is below the watermark",
        ),
        (
            lambda w: {**w, "server": w["server"].replace("CN=DC1,", "CN=DC2,")},
            "USNs are counted per domain controller",
        ),
    ],
    ids=["invocation-id-changed", "usn-went-backwards", "another-dc"],
)
def test_a_watermark_the_dc_no_longer_knows_fails_the_delta(
    samba_dc, ad_ou, ad_connection, tamper, expected
):
    add_user(ad_connection, f"OU=people,{ad_ou}", "x")
    system = ad_system(samba_dc, ad_ou)
    assert run(system).status == "complete"
    stale = tamper(persisted(system))
    ConnectedSystem.objects.filter(pk=system.pk).update(persisted_connector_data=stale)

    activity = run(system, "Delta Import")

    assert activity.status == "failed"
    assert expected in activity.message
    assert "Run a full import" in activity.message
    assert persisted(system) == stale  # kept: a full import replaces it

    assert run(system).status == "complete"  # the remedy
    assert run(system, "Delta Import").status == "complete"


def test_a_delta_without_a_usn_watermark_asks_for_a_full_import(samba_dc, ad_ou):
    system = ad_system(samba_dc, ad_ou)

    activity = run(system, "Delta Import")

    assert activity.status == "failed"
    assert "There is no usn watermark yet" in activity.message
    assert "run a full import first" in activity.message


def test_an_account_that_cannot_read_deleted_objects_fails_the_delta(
    samba_dc, ad_ou, ad_connection
):
    # An account like JIM's service account, but without the LCRP right on Deleted
    # Objects: it can read the OU (every authenticated user can).
    password = "Str0ng-Passw0rd-Nodel!"
    account = add_user(ad_connection, ad_ou, "nodel", sAMAccountName=sam_name("nd"))
    utf16 = f'"{password}"'.encode("utf-16-le")
    assert ad_connection.modify(account, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [utf16])]})
    assert ad_connection.modify(account, {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["512"])]})
    deleted = f"CN=Deleted Objects,{samba_dc.base_dn}"
    unprivileged = samba_dc.connection(account, password)
    assert unprivileged.search(
        deleted,
        "(objectClass=*)",
        ldap3.SUBTREE,
        attributes=["objectGUID"],
        controls=[SHOW_DELETED],
    )
    # What Samba shows it: the container alone, none of its attributes, no tombstone.
    shown = [
        (e["dn"], {k: v for k, v in e["raw_attributes"].items() if v})
        for e in unprivileged.response
    ]
    assert shown == [(deleted, {})]
    unprivileged.unbind()
    add_user(ad_connection, f"OU=people,{ad_ou}", "y")
    system = ad_system(samba_dc, ad_ou, bind_dn=account, bind_password=password)
    assert run(system).status == "complete"  # a full import needs no such right

    activity = run(system, "Delta Import")

    assert activity.status == "failed"
    assert f"bind DN {account!r} cannot read the deleted objects in {deleted!r}" in (
        activity.message
    )
    assert "a delta import would miss deletions" in activity.message
    assert f'dsacls "{deleted}" /G DOMAIN\\<account>:LCRP' in activity.message


def test_usn_needs_an_external_id_that_survives_a_rename(samba_dc, ad_ou):
    settings = {**samba_dc.service_settings(ad_ou), "delta_method": "usn"}
    with LdapConnector(settings) as connector:
        connector.import_objects(
            [ObjectTypeSpec("user", "objectGUID", "dn")], delta=False, persisted_data={}
        )
        watermark = connector._watermark()
        spec = ObjectTypeSpec("user", "dn", "dn", container=f"OU=people,{ad_ou}")
        with pytest.raises(ConnectorConfigurationError, match="uses the DN as its external id"):
            connector.import_objects([spec], delta=True, persisted_data=watermark)
