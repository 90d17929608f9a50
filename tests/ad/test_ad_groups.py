"""Big groups in Active Directory (the run's Samba domain controller, JIM bound as its
service account): a group of 10,000 members created by export in chunks, read whole in
ranges by full and delta imports, changed by export (2,000 members added, 2,000
removed), and a create cut off partway completed by its retry.

Samba hands out ranges only when asked to (Windows does beyond its MaxValRange, 1,500):
``range_size: 1500`` makes the connector ask, so Samba answers as Windows does.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import ldap3
import pytest

from connectors.backends.ldap import LdapConnector
from connectors.backends.ldap.ranges import Range, ValueChunks, parse_range
from connectors.base import (
    AttributeSpec,
    ExportAttributeChange,
    ExportChange,
    ImportObject,
    ObjectTypeSpec,
)
from jim_project.devservers.samba import SambaDC
from tests.ad.conftest import MEMBERS

_names = itertools.count(1)


def _spec(ad_ou: str) -> ObjectTypeSpec:
    return ObjectTypeSpec(
        "group",
        "dn",
        "dn",
        container=f"OU=groups,{ad_ou}",
        attributes={
            "member": AttributeSpec("member", "reference", multivalued=True),
            "sAMAccountName": AttributeSpec("sAMAccountName"),
        },
    )


def _connector(samba_dc: SambaDC, ad_ou: str, **settings: Any) -> LdapConnector:
    return LdapConnector(
        samba_dc.service_settings(ad_ou) | {"delta_method": "modify_timestamp", **settings}
    )


def _group_change(
    change_id: int, kind: str, spec: ObjectTypeSpec, dn: str, *changes: tuple[str, str, list]
) -> ExportChange:
    """A create or update of the group ``dn``; ``changes`` are (attribute, kind, values)."""
    return ExportChange(
        change_id,
        kind,
        spec,
        external_id=None if kind == "create" else dn,
        dn=dn,
        attribute_changes=[ExportAttributeChange(*change) for change in changes],
    )


def _create(change_id: int, spec: ObjectTypeSpec, dn: str, members: list[str]) -> ExportChange:
    name = f"big{os.getpid() % 100000}x{next(_names)}"
    return _group_change(
        change_id,
        "create",
        spec,
        dn,
        ("sAMAccountName", "update", [name]),
        ("member", "add", members),
    )


def _read(
    connector: LdapConnector, spec: ObjectTypeSpec, **delta: Any
) -> tuple[dict[str, Any], dict[str, ImportObject]]:
    """The watermark and the groups of an import (full, or delta with ``persisted``)."""
    stream = connector.import_objects(
        [spec], delta=bool(delta), persisted_data=delta.get("persisted", {})
    )
    groups: dict[str, ImportObject] = {}
    for page in stream.pages:
        assert not page.errors, page.errors[:3]
        groups.update((item.secondary_external_id or "", item) for item in page.objects)
    return stream.watermark, groups


def _members(group: ImportObject) -> set[str]:
    return {dn.lower() for dn in group.attributes.get("member", [])}


def _expected(dns: list[str]) -> set[str]:
    return {dn.lower() for dn in dns}


def test_a_group_of_10000_members_is_created_read_in_ranges_and_changed_by_export(
    samba_dc: SambaDC, ad_ou: str, big_group_members: list[str]
) -> None:
    assert len(big_group_members) == MEMBERS
    spec = _spec(ad_ou)
    dn = f"CN=Everyone big,OU=groups,{ad_ou}"
    first, added = big_group_members[:10_000], big_group_members[10_000:12_000]
    with _connector(samba_dc, ad_ou, range_size=1500) as connector:
        # The create goes as the add of the group with 5,000 members, then a modify.
        (created,) = connector.export([_create(1, spec, dn, first)])
        assert created.ok, created.error
        assert created.external_id == dn

        # What a search for the group answers: a range, as Windows answers (no plain member).
        session = connector.session
        raw = session.wait(
            session.send_search(dn, "(objectClass=*)", ["*", "member;range=0-1499"], what="t"),
            "t",
        ).entries[0]["raw_attributes"]
        assert len(raw["member;range=0-1499"]) == 1500
        assert "member" not in raw

        watermark, groups = _read(connector, spec)
        assert _members(groups[dn]) == _expected(first)

        update = _group_change(
            2, "update", spec, dn, ("member", "add", added), ("member", "remove", first[:2000])
        )
        (result,) = connector.export([update])
        assert result.ok, result.error
        # Sent again (an answer lost): every value is there or gone already; the values
        # read back to find that out are read in ranges too.
        (again,) = connector.export([update])
        assert again.ok, again.error
        # Members removed already (Samba: noSuchAttribute) are no error either.
        gone = _group_change(3, "update", spec, dn, ("member", "remove", first[:10]))
        assert connector.export([gone])[0].ok

        # A delta re-reads the changed group, in ranges as well.
        _, changed = _read(connector, spec, persisted=watermark)
        assert _members(changed[dn]) == _expected(first[2000:] + added)

    # Without range_size Samba answers every value at once; the import is the same.
    with _connector(samba_dc, ad_ou) as connector:
        _, groups = _read(connector, spec)
    assert _members(groups[dn]) == _expected(first[2000:] + added)


def test_a_create_cut_off_partway_is_completed_by_its_retry(
    samba_dc: SambaDC, ad_ou: str, ad_connection: ldap3.Connection, big_group_members: list[str]
) -> None:
    spec = _spec(ad_ou)
    dn = f"CN=Cut off,OU=groups,{ad_ou}"
    late = f"CN=late,OU=people,{ad_ou}"  # not there yet: the second request fails
    members = [*big_group_members[:5999], late]
    create = _create(1, spec, dn, members)
    with _connector(samba_dc, ad_ou, range_size=1500) as connector:
        (failed,) = connector.export([create])
        # The add carried 5,000 values: objectClass (2), cn, sAMAccountName and the
        # first 4,996 members; the modify adding the other 1,004 was refused.
        assert not failed.ok
        assert failed.error and "noSuchObject" in failed.error
        assert "5000 of the change's 6004 values were written" in failed.error
        _, groups = _read(connector, spec)
        assert _members(groups[dn]) == _expected(members[:4996])

        assert ad_connection.add(late, ["contact"]), ad_connection.result
        (retried,) = connector.export([create])
        assert retried.ok, retried.error
        assert retried.external_id == dn
        _, groups = _read(connector, spec)
    assert _members(groups[dn]) == _expected(members)


# --------------------------------------------------------------------------- splitting


def _chunks(size: int = 3) -> ValueChunks:
    return ValueChunks(None, lambda name, values: set(values), chunk_values=size)


def test_a_modify_is_split_in_order_and_a_big_replace_becomes_replace_then_adds() -> None:
    changes = {
        "member": [(ldap3.MODIFY_REPLACE, list("abcde")), (ldap3.MODIFY_DELETE, ["x"])],
        "description": [(ldap3.MODIFY_REPLACE, [])],
    }
    assert _chunks().modify_chunks(changes) == [
        {"member": [(ldap3.MODIFY_REPLACE, ["a", "b", "c"])]},
        {
            "member": [(ldap3.MODIFY_ADD, ["d", "e"]), (ldap3.MODIFY_DELETE, ["x"])],
            "description": [(ldap3.MODIFY_REPLACE, [])],
        },
    ]
    small = {"member": [(ldap3.MODIFY_ADD, ["a"]), (ldap3.MODIFY_DELETE, ["b", "c"])]}
    assert _chunks().modify_chunks(small) == [small]


def test_an_add_carries_the_small_attributes_whole_and_the_first_values_of_a_big_one() -> None:
    first, rest = _chunks(4).add_chunks({"member": list("abcdef"), "cn": ["g"]})
    assert first == {"member": ["a", "b", "c"], "cn": ["g"]}
    assert rest == {"member": [(ldap3.MODIFY_ADD, ["d", "e", "f"])]}


def test_a_range_option_is_read_from_an_attribute_description() -> None:
    assert parse_range("member;range=0-1499") == Range("member", 0, 1499)
    assert parse_range("Member;Range=1500-*") == Range("Member", 1500, None)
    assert parse_range("member") is None
    with pytest.raises(ValueError, match="not a valid range"):
        parse_range("member;range=a-b")
