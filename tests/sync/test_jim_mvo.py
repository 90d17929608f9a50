"""`jim mvo`: the manual actions on a metaverse object from the command line, against
the private slapd — exit codes as `jim run`, JSON as `jim run --json`, refusals that
do nothing."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from audit.models import Action, AuditEntry
from connectors.models import Activity, ConnectorSpaceObject
from metaverse.models import MetaverseObject
from tests.scenarios.estate import make_estate, person
from tests.support.cli import jim
from tests.support.runs import held

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate(tmp_path, slapd, ldap_ou, monkeypatch):
    estate = make_estate(tmp_path, slapd, ldap_ou, monkeypatch)
    estate.write_people([person("1001", "Ada", "Lovelace", "alovelace")])
    for system, profile in [
        ("HR", "Full Import"),
        ("HR", "Full Sync"),
        ("Directory", "Export"),
        ("Directory", "Full Import"),
    ]:
        assert estate.run(system, profile).status == "complete"
    User.objects.create_user("root", is_staff=True, is_superuser=True)
    User.objects.create_user("viewer", is_staff=True)
    return estate


def _ada() -> MetaverseObject:
    return MetaverseObject.objects.get(display_name="Ada Lovelace")


def _directory() -> ConnectorSpaceObject:
    return ConnectorSpaceObject.objects.get(connected_system__name="Directory")


def test_re_evaluate_prints_the_summary_jim_run_prints(estate):
    ada = _ada()
    status, out, err = jim("mvo", "re-evaluate", str(ada.pk), "--user", "root", "--json")

    assert (status, err) == (0, "")
    summary = json.loads(out)
    assert summary["status"] == "complete"
    assert summary["profile"].startswith("Manual: re-evaluate metaverse object Ada Lovelace")
    entry = AuditEntry.objects.get(action=Action.MVO_ACTION)
    assert (entry.actor.username, entry.via) == ("root", "cli")


def test_disconnect_then_rejoin_where_it_came_from(estate):
    ada, directory = _ada(), _directory()
    # Disconnecting the entry leaves the provisioning rule an error to report: exit 1.
    status, out, _ = jim(
        "mvo", "disconnect", str(ada.pk), "--cso", str(directory.pk), "--user", "root"
    )
    assert status == 1, out

    status, out, err = jim(
        "mvo", "rejoin", "--cso", str(directory.pk), "--user", "root", "--reason", "hers"
    )

    assert (status, err) == (0, ""), out
    assert "Manual: rejoin metaverse object Ada Lovelace" in out and ": complete\n" in out
    directory.refresh_from_db()
    assert directory.metaverse_object_id == ada.pk and not directory.disconnected_by_hand


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["re-evaluate", "{mvo}", "--user", "nobody"], "no user named 'nobody'"),
        (["delete", "{mvo}", "--user", "viewer"], "viewer may not act on metaverse objects"),
        (["delete", "999999", "--user", "root"], "there is no metaverse object 999999"),
        (["disconnect", "{mvo}", "--user", "root"], "jim mvo disconnect needs --cso ID"),
        (["delete", "--user", "root"], "jim mvo delete needs MVO_ID"),
        (["release", "{mvo}", "--cso", "{cso}", "--user", "root"], "release takes no MVO_ID"),
        (["release", "--cso", "{cso}", "--user", "root"], "was not disconnected by hand"),
        (["rejoin", "{mvo}", "--cso", "{cso}", "--user", "root"], "disconnect it first"),
        (["rejoin", "--cso", "999999", "--user", "root"], "no connector space object 999999"),
    ],
)
def test_refusals_exit_2_and_do_nothing(estate, args, why):
    ids = {"mvo": _ada().pk, "cso": _directory().pk}
    status, out, err = jim("mvo", *[a.format(**ids) for a in args])

    assert (status, out) == (2, "")
    assert why in err and err.endswith("; nothing was done\n"), err
    assert not Activity.objects.filter(profile_name__startswith="Manual:").exists()
    assert not AuditEntry.objects.filter(action=Action.MVO_ACTION).exists()
    assert MetaverseObject.objects.filter(pk=ids["mvo"]).exists()


def test_a_running_sync_refuses_the_action(estate):
    hr = ConnectorSpaceObject.objects.get(connected_system__name="HR").connected_system
    sync = Activity.objects.create(
        connected_system=hr,
        profile_type="full_sync",
        profile_name="Full Sync",
        status="in_progress",
    )
    with held(sync):
        status, _, err = jim("mvo", "delete", str(_ada().pk), "--user", "root")
    assert status == 2 and f"activity #{sync.pk}" in err
    assert MetaverseObject.objects.filter(display_name="Ada Lovelace").exists()
