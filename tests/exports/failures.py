"""Failed pending exports made the way an export run fails them (memory connector), and
the users who act on them."""

from __future__ import annotations

from django.contrib.auth.models import Permission, User

from exports.models import PendingExport
from tests.exports.exporting import export
from tests.exports.memory_connector import MemoryConnector
from tests.sync.scenario import Scenario


def dn(account: str) -> str:
    return f"uid={account},ou=people,dc=example,dc=org"


def failed_creates(scenario: Scenario, *accounts: str) -> list[PendingExport]:
    """People joined in HR whose creates the directory refuses: failed after one export."""
    for n, account in enumerate(accounts, start=1):
        scenario.hr_row(str(1000 + n), accountName=account)
        MemoryConnector.fail_dns[dn(account)] = f"{dn(account)}: constraint violation"
    scenario.sync()
    export(scenario)
    pes = list(PendingExport.objects.filter(status="failed").order_by("pk"))
    assert len(pes) == len(accounts)
    return pes


def user_with(username: str, *codenames: str, **fields) -> User:
    """A user holding these exports permissions (fetched again: no permission cache)."""
    user = User.objects.create_user(username, password="pw", **fields)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="exports", codename__in=codenames)
    )
    return User.objects.get(pk=user.pk)
