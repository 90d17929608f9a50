"""A way out of ``failed`` against real slapd: a create the directory refuses (its OU
does not exist) fails; once the OU exists a retry sends it, and once a wrong DN
template is fixed a discard lets the next delta sync provision the person afresh."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

from connectors.models import ConnectedSystem
from exports.intervention import discard, retry
from exports.models import ApprovalAuditEntry, PendingExport
from metaverse.models import SyncRule
from tests.scenarios.estate import Estate, make_estate, person

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator() -> User:
    user = User.objects.create_user("olga")
    user.user_permissions.add(Permission.objects.get(codename="intervene_pendingexport"))
    return User.objects.get(pk=user.pk)


def refused_create(estate: Estate) -> PendingExport:
    """Ada's create, failed at its one attempt: its DN's OU does not exist."""
    ConnectedSystem.objects.filter(name="Directory").update(export_max_retries=1)
    estate.write_people([person("1", "Ada", "Lovelace", "ada")])
    estate.run("HR", "Full Import")
    estate.run("HR", "Full Sync")
    activity = estate.run("Directory", "Export")
    [error] = activity.items.exclude(error_type="")
    assert error.error_type == "export_failed"
    pe = PendingExport.objects.get()
    assert (pe.change_type, pe.status) == ("create", "failed")
    return pe


def _ldap(estate: Estate, method: str, *args) -> None:
    connection = estate.ldap.connection()
    try:
        assert getattr(connection, method)(*args), connection.result
    finally:
        connection.unbind()


def test_retry_sends_the_create_once_the_directory_can_take_it(
    tmp_path, slapd, ldap_ou, monkeypatch, operator
):
    estate = make_estate(tmp_path, slapd, ldap_ou, monkeypatch)
    _ldap(estate, "delete", f"ou=people,{estate.base}")
    pe = refused_create(estate)
    _ldap(estate, "add", f"ou=people,{estate.base}", ["organizationalUnit"])

    retry([pe], operator, reason="ou=people restored")
    assert estate.run("Directory", "Export").counts == {"provisioned": 1}
    estate.run("Directory", "Full Import")

    assert estate.entry(f"uid=ada,ou=people,{estate.base}")["cn"] == ["Ada Lovelace"]
    assert not PendingExport.objects.exists()  # confirmed
    [cso] = estate.directory_csos()
    assert cso.status == "normal"


def test_discard_lets_the_next_delta_sync_provision_the_person_afresh(
    tmp_path, slapd, ldap_ou, monkeypatch, operator
):
    estate = make_estate(tmp_path, slapd, ldap_ou, monkeypatch)
    SyncRule.objects.filter(name="Directory people out").update(
        dn_template=f"uid={{{{ mv.accountName }}}},ou=staff,{estate.base}"
    )
    pe = refused_create(estate)
    assert pe.dn == f"uid=ada,ou=staff,{estate.base}"
    SyncRule.objects.filter(name="Directory people out").update(
        dn_template=f"uid={{{{ mv.accountName }}}},ou=people,{estate.base}"
    )

    discard([pe], operator, reason="wrong OU in the DN template; fixed")
    assert estate.directory_csos() == []
    estate.run("HR", "Delta Sync")
    again = PendingExport.objects.get()
    assert (again.change_type, again.dn) == ("create", f"uid=ada,ou=people,{estate.base}")
    assert estate.run("Directory", "Export").counts == {"provisioned": 1}
    estate.run("Directory", "Full Import")

    assert estate.entry(f"uid=ada,ou=people,{estate.base}")["cn"] == ["Ada Lovelace"]
    assert not PendingExport.objects.exists()
    entry = ApprovalAuditEntry.objects.get()
    assert (entry.action, entry.target, entry.pending_export_ref) == (
        "discarded",
        f"uid=ada,ou=staff,{estate.base}",
        pe.pk,
    )
    assert entry.last_error  # the directory's answer
