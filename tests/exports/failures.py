"""Failed pending exports made the way an export run fails them (memory connector)."""

from __future__ import annotations

from exports.export_processor import run_export
from exports.models import PendingExport
from tests.exports.memory_connector import MemoryConnector
from tests.sync.scenario import Scenario, run_processor


def dn(account: str) -> str:
    return f"uid={account},ou=people,dc=example,dc=org"


def export(scenario: Scenario):
    return run_processor(scenario.directory, "export", run_export)


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
