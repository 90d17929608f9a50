"""`jim retry` and `jim discard`: exit codes, messages, --all/--system, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from connectors.models import Activity, ConnectorSpaceObject
from exports.models import ApprovalAuditEntry, PendingExport
from tests.exports.failures import dn, failed_creates, user_with
from tests.support.cli import jim
from tests.support.runs import held

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def test_pending_exports_shows_the_last_error_of_failed_exports(failing):
    [failed] = failed_creates(failing, "first")

    _, text, _ = jim("pending-exports")
    _, listing, _ = jim("pending-exports", "--json")

    assert f"        last error: {dn('first')}: constraint violation\n" in text
    [entry] = json.loads(listing)
    assert (entry["id"], entry["status"], entry["last_error"]) == (
        failed.pk,
        "failed",
        f"{dn('first')}: constraint violation",
    )


def test_retry_by_id_lists_what_it_retried(failing, intervener):
    first, second = failed_creates(failing, "first", "second")

    status, out, err = jim("retry", str(first.pk), "--user", "olga", "--reason", "ACL fixed")

    assert (status, err) == (0, "")
    assert f"{first.pk:>6}  Directory        create  {dn('first')}\n" in out
    assert out.endswith("Retried 1 pending export(s): the next export run sends them.\n")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.error_count, second.status) == ("pending", 0, "failed")
    entry = ApprovalAuditEntry.objects.get()
    assert (entry.action, entry.username, entry.reason) == ("retried", "olga", "ACL fixed")


def test_retry_all_of_a_system(failing, intervener):
    failed_creates(failing, "first", "second")

    assert jim("retry", "--all", "--system", "HR", "--user", "olga")[:2] == (
        0,
        "No failed pending exports.\n",
    )
    assert PendingExport.objects.filter(status="failed").count() == 2

    status, out, _ = jim("retry", "--all", "--system", "Directory", "--user", "olga")

    assert status == 0 and "Retried 2 pending export(s)" in out
    assert not PendingExport.objects.filter(status="failed").exists()


def test_discard_all(failing, intervener):
    failed_creates(failing, "first", "second")
    failing.hr_row("2001", accountName="newbie")
    failing.sync()

    status, out, err = jim("discard", "--all", "--user", "olga", "--reason", "bad template")

    assert (status, err) == (0, "")
    assert out.endswith(
        "Discarded 2 pending export(s): the next sync evaluates their objects afresh.\n"
    )
    assert list(PendingExport.objects.values_list("status", flat=True)) == ["pending"]
    assert ConnectorSpaceObject.objects.filter(status="pending_provisioning").count() == 1
    assert ApprovalAuditEntry.objects.filter(action="discarded").count() == 2


def test_a_named_export_that_is_not_failed_is_refused_and_nothing_is_done(failing, intervener):
    [failed] = failed_creates(failing, "first")
    failing.hr_row("2001", accountName="newbie")
    failing.sync()
    pending = failing.export_of("2001")

    status, out, err = jim(
        "discard", str(failed.pk), str(pending.pk), "--user", "olga", "--reason", "x"
    )

    assert (status, out) == (2, "")
    assert (
        f"jim: pending export {pending.pk} (Directory create {dn('newbie')}) is pending, "
        "not failed: only failed exports can be retried or discarded\n"
    ) in err
    assert err.endswith("jim: nothing was done\n")
    assert PendingExport.objects.count() == 2
    assert not ApprovalAuditEntry.objects.exists()


def test_unknown_ids_are_refused_and_nothing_is_done(failing, intervener):
    [failed] = failed_creates(failing, "first")

    status, _, err = jim("retry", str(failed.pk), "999", "--user", "olga")

    assert status == 2
    assert err == "jim: no pending export 999; nothing was done\n"
    assert PendingExport.objects.get().status == "failed"

    status, _, err = jim("retry", str(failed.pk), "--system", "HR", "--user", "olga")
    assert (status, err) == (2, f"jim: no pending export {failed.pk} in HR; nothing was done\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "olga"], "jim: give pending export ids or --all (not both)\n"),
        (["--all", "1", "--user", "olga"], "jim: give pending export ids or --all (not both)\n"),
        (["--all", "--user", "nobody"], "jim: no user named 'nobody'\n"),
        (["--all", "--system", "Nowhere", "--user", "olga"], "jim: no connected system named"),
        (["--all", "--user", "alice"], "jim: alice may not retry or discard pending exports"),
    ],
    ids=["no ids", "ids and --all", "unknown user", "unknown system", "no permission"],
)
@pytest.mark.parametrize("command", ["retry", "discard"])
def test_refusals_exit_2_and_change_nothing(failing, intervener, command, args, message):
    failed_creates(failing, "first")
    user_with("alice", "approve_pendingexport")

    status, out, err = jim(command, *args, "--reason", "x")

    assert (status, out) == (2, "")
    assert err.startswith(message)
    assert PendingExport.objects.get().status == "failed"
    assert not ApprovalAuditEntry.objects.exists()


def test_discard_needs_a_reason(failing, intervener):
    [failed] = failed_creates(failing, "first")

    with pytest.raises(CommandError, match="--reason"):
        jim("discard", str(failed.pk), "--user", "olga")
    status, _, err = jim("discard", str(failed.pk), "--user", "olga", "--reason", " ")

    assert status == 2
    assert err == (
        "jim: give a reason for discarding (it is kept on the audit trail); nothing was done\n"
    )
    assert PendingExport.objects.get().status == "failed"


def test_discard_while_a_sync_runs_is_refused(failing, intervener):
    [failed] = failed_creates(failing, "first")
    sync = Activity.objects.create(
        connected_system=failing.hr,
        profile_type="full_sync",
        profile_name="Full Sync",
        status="in_progress",
    )

    with held(sync):
        status, _, err = jim("discard", "--all", "--user", "olga", "--reason", "x")

    assert status == 2
    assert err == (
        f"jim: a sync is running (activity #{sync.pk}, HR — Full Sync) and may be changing "
        "these exports; discard them when it has finished; nothing was done\n"
    )
    assert PendingExport.objects.get(pk=failed.pk).status == "failed"


def test_discard_without_a_reason_in_a_process_exits_2_with_the_usage():
    done = subprocess.run(
        [sys.executable, "manage.py", "jim", "discard", "--all", "--user", "olga"],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    assert "the following arguments are required: --reason" in done.stderr
    assert "Traceback" not in done.stderr
