"""The life of people in Active Directory, end to end against the real Samba DC: HR CSV
→ import → sync → export to AD → confirming import, then movers, renames, leavers,
returners, name clashes and changes made directly in AD."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from connectors.models import ConnectorSpaceObject
from exports.models import PendingExport
from tests.ad.estate import AdEstate, person

pytestmark = pytest.mark.django_db

ENABLED, DISABLED = "512", "514"


def _joiners(estate: AdEstate) -> None:
    estate.write_people(
        [
            person("1001", "Ada", "Lovelace"),
            person("1002", "Grace", "Hopper", department="Sales"),
            person("1003", "Alan", "Turing"),
        ]
    )
    estate.cycle()


def test_joiners_are_provisioned_confirmed_and_left_alone(ad_estate: AdEstate) -> None:
    _joiners(ad_estate)

    users = ad_estate.users()
    assert set(users) == {"1001", "1002", "1003"}
    ada = users["1001"]
    assert ada["sAMAccountName"] == [f"{ad_estate.tag}alovelace"]
    assert ada["userPrincipalName"] == [f"{ad_estate.tag}1001@example.org"]
    assert ada["userAccountControl"] == [ENABLED]
    assert ada["distinguishedName"] == [f"CN=Ada Lovelace,OU=Engineering,{ad_estate.base}"]
    assert users["1002"]["distinguishedName"][0].startswith("CN=Grace Hopper,OU=Sales,")
    # Confirmed: no pending export left, every CSO joined by its objectGUID.
    assert PendingExport.objects.count() == 0
    csos = ad_estate.ad_csos()
    assert {c.status for c in csos} == {"normal"}
    assert {c.external_id for c in csos} == {u["objectGUID"][0] for u in users.values()}
    # The next cycle finds nothing to do.
    again = ad_estate.run("AD", "Full Sync")
    assert again.counts == {} and PendingExport.objects.count() == 0


def test_mover_and_rename_move_the_account_between_ous(ad_estate: AdEstate) -> None:
    _joiners(ad_estate)
    guids = {k: v["objectGUID"] for k, v in ad_estate.users().items()}
    ad_estate.write_people(
        [
            person("1001", "Ada", "King", department="Sales"),  # renamed and moved
            person("1002", "Grace", "Hopper", department="Engineering"),  # moved
            person("1003", "Alan", "Turing"),
        ]
    )
    ad_estate.cycle()

    users = ad_estate.users()
    assert users["1001"]["distinguishedName"] == [f"CN=Ada King,OU=Sales,{ad_estate.base}"]
    assert users["1002"]["distinguishedName"] == [
        f"CN=Grace Hopper,OU=Engineering,{ad_estate.base}"
    ]
    # The same accounts, moved: objectGUIDs unchanged, sAMAccountName kept.
    assert {k: v["objectGUID"] for k, v in users.items()} == guids
    assert users["1001"]["sAMAccountName"] == [f"{ad_estate.tag}alovelace"]
    assert PendingExport.objects.count() == 0


def test_leaver_is_disabled_then_deleted_and_a_returner_is_re_enabled(
    ad_estate: AdEstate,
) -> None:
    _joiners(ad_estate)
    guid = ad_estate.users()["1002"]["objectGUID"]
    leaving = [
        person("1001", "Ada", "Lovelace"),
        person("1002", "Grace", "Hopper", department="Sales", status="Terminated"),
        person("1003", "Alan", "Turing", status="Terminated"),
    ]
    ad_estate.write_people(leaving)
    ad_estate.cycle()

    users = ad_estate.users()
    for leaver in ("1002", "1003"):
        assert users[leaver]["userAccountControl"] == [DISABLED]
        assert ",OU=disabled," in users[leaver]["distinguishedName"][0]

    # Grace comes back within the window: the same account, enabled, moved back.
    ad_estate.write_people(
        [*leaving[:1], person("1002", "Grace", "Hopper", department="Sales"), leaving[2]]
    )
    ad_estate.cycle()
    users = ad_estate.users()
    assert users["1002"]["objectGUID"] == guid
    assert users["1002"]["userAccountControl"] == [ENABLED]
    assert users["1002"]["distinguishedName"][0].startswith("CN=Grace Hopper,OU=Sales,")

    # Alan's window passes: the next sync deletes his account.
    alan = ConnectorSpaceObject.objects.get(
        connected_system__name="AD", external_id=users["1003"]["objectGUID"][0]
    )
    ConnectorSpaceObject.objects.filter(pk=alan.pk).update(
        disabled_at=timezone.now() - dt.timedelta(days=31)
    )
    ad_estate.cycle()
    assert "1003" not in ad_estate.users()
    assert set(ad_estate.users()) == {"1001", "1002"}


def test_two_people_who_would_share_an_account_name_get_distinct_ones(
    ad_estate: AdEstate,
) -> None:
    ad_estate.write_people(
        [person("2001", "John", "Smith"), person("2002", "Jane", "Smith", department="Sales")]
    )
    ad_estate.cycle()

    names = sorted(u["sAMAccountName"][0] for u in ad_estate.users().values())
    assert names == [f"{ad_estate.tag}jsmith", f"{ad_estate.tag}jsmith2"]
    # And they stick: renaming the first John does not hand his name to Jane.
    ad_estate.write_people(
        [person("2001", "John", "Smyth"), person("2002", "Jane", "Smith", department="Sales")]
    )
    ad_estate.cycle()
    assert sorted(u["sAMAccountName"][0] for u in ad_estate.users().values()) == names


def test_a_change_made_directly_in_ad_is_imported_and_corrected(ad_estate: AdEstate) -> None:
    _joiners(ad_estate)
    dn = ad_estate.users()["1001"]["distinguishedName"][0]
    ad_estate.modify(dn, {"title": [("MODIFY_REPLACE", ["Countess"])]})

    imported = ad_estate.run("AD", "Delta Import")
    assert imported.status == "complete"
    assert imported.counts.get("updated") == 1, imported.counts
    ad_estate.run("AD", "Delta Sync")
    pe = PendingExport.objects.get()
    assert pe.change_type == "update"
    assert ad_estate.run("AD", "Export").status == "complete"
    assert ad_estate.users()["1001"]["title"] == ["Engineer"]
