"""The data the API tests read and act on, made the way JIM makes it.

HR → Directory (:mod:`tests.sync.scenario`, the Directory on the memory connector,
every create awaiting approval): five people synced, two of their creates approved
and exported — the directory refuses one (failed), takes the other — and three still
awaiting approval. Beside it "Vault", an LDAP system whose bind password is
:data:`SECRET`, which no API answer may contain. Run profiles, a schedule, activities
with their execution items, two entries on the audit trail; a second metaverse object
type and a second (disabled) schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, User

from connectors.choices import RunProfileType
from connectors.models import ConnectedSystem, RunProfile, Schedule, ScheduleStep
from exports.approval import decide
from exports.models import PendingExport
from metaverse.models import MetaverseObjectType
from tests.builders import add_run_profile, make_connected_system
from tests.exports.exporting import export
from tests.exports.failures import dn
from tests.exports.memory_connector import MemoryConnector
from tests.sync.scenario import Scenario, build_scenario

#: Vault's bind password: recognisable, so that finding it anywhere is certain.
SECRET = "Vault-bind-S3cret-7f2c9d"
PEOPLE = 5


@dataclass
class World:
    scenario: Scenario
    vault: ConnectedSystem
    import_profile: RunProfile
    export_profile: RunProfile
    schedule: Schedule
    administrator: User

    def awaiting(self) -> list[PendingExport]:
        return list(PendingExport.objects.filter(approval="awaiting_approval").order_by("pk"))

    def failed(self) -> PendingExport:
        return PendingExport.objects.get(status="failed")


def user_in(role: str, username: str | None = None) -> User:
    """A user holding one of the four roles (fetched again: no permission cache)."""
    user = User.objects.create_user(username or role.lower(), password="pw")
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


def hr_people(scenario: Scenario, count: int, start: int = 1001) -> None:
    for n in range(start, start + count):
        scenario.hr_row(str(n), accountName=f"user{n}", mail=f"user{n}@example.org")


def build_world() -> World:
    MemoryConnector.reset()
    scenario = build_scenario(
        connector="memory", approval_mode="creates_and_deletes", export_max_retries=1
    )
    administrator = user_in("Administrators", "root")
    hr_people(scenario, PEOPLE)
    scenario.sync()
    first, second = PendingExport.objects.order_by("pk")[:2]
    decide([first, second], administrator, approve=True, reason="new starters")
    MemoryConnector.fail_dns[first.dn or dn("user1001")] = "constraint violation"
    export(scenario)
    vault = make_connected_system(
        "Vault",
        "ldap",
        {"url": "ldaps://vault.example.org", "base_dn": "dc=example,dc=org", "bind_dn": "cn=jim"},
        object_type="inetOrgPerson",
        external_id="entryUUID",
        profiles=(RunProfileType.FULL_IMPORT,),
        secret_settings={"bind_password": SECRET},
    )
    import_profile = add_run_profile(scenario.hr, RunProfileType.FULL_IMPORT)
    export_profile = add_run_profile(scenario.directory, RunProfileType.EXPORT)
    MetaverseObjectType.objects.create(name="group")
    Schedule.objects.create(name="Weekly", cron="0 3 * * 0", enabled=False)
    schedule = Schedule.objects.create(name="Nightly", cron="0 2 * * *")
    ScheduleStep.objects.create(schedule=schedule, order=1, run_profile=import_profile)
    ScheduleStep.objects.create(schedule=schedule, order=2, run_profile=export_profile)
    return World(scenario, vault, import_profile, export_profile, schedule, administrator)
