"""One object of (nearly) every model JIM's admin shows, for the permission matrix: a
connected system with its schema and profiles, activities (queued, failed at a
threshold), CSOs, an MVO, pending exports awaiting approval and failed, a schedule,
an API key, a failed sign-in and a failed django-q2 task. Made with the ORM, as runs leave them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone
from django_q.models import Schedule as QSchedule
from django_q.models import Task

from access.models import ApiKey, FailedSignIn, SignInChannel
from connectors.models import (
    Activity,
    ConnectedSystem,
    RunProfile,
    RunProfileExecutionItem,
    Schedule,
    ScheduleStep,
)
from exports.models import PendingExport, PendingExportAttributeChange
from metaverse.models import MetaverseAttribute
from tests.access.conftest import issue_key
from tests.builders import add_attribute, make_connected_system
from tests.console.builders import make_activity, make_cso, make_mvo


@dataclass
class World:
    system: ConnectedSystem
    profile: RunProfile
    queued: Activity
    over_threshold: Activity
    awaiting: PendingExport
    failed: PendingExport
    api_key: ApiKey
    failed_sign_in: FailedSignIn
    failed_task: Task


def build_world(owner: User) -> World:
    system = make_connected_system("Directory", profiles=("export", "full_import"))
    add_attribute(system.object_types.get(), "mail")
    profile = system.run_profiles.get(profile_type="export")
    queued = make_activity(system.run_profiles.get(profile_type="full_import"), status="queued")
    over_threshold = make_activity(profile, status="failed", message="over the threshold")
    RunProfileExecutionItem.objects.create(
        activity=over_threshold,
        change_type="none",
        error_type="change_threshold_exceeded",
        message="over",
    )
    mvo = make_mvo("Ada Lovelace", mail=["ada@example.org"])
    MetaverseAttribute.objects.create(object_type=mvo.object_type, name="mail")
    awaiting = PendingExport.objects.create(
        connected_system=system,
        cs_object=make_cso(system, "ada", mvo=mvo),
        metaverse_object=mvo,
        change_type="update",
        approval="awaiting_approval",
    )
    PendingExportAttributeChange.objects.create(
        pending_export=awaiting, attribute="mail", change_type="replace", values=["a@b.c"]
    )
    failed = PendingExport.objects.create(
        connected_system=system,
        cs_object=make_cso(system, "bob"),
        change_type="update",
        status="failed",
        error_count=5,
        last_error="refused",
    )
    schedule = Schedule.objects.create(name="Nightly", cron="0 2 * * *")
    ScheduleStep.objects.create(schedule=schedule, order=1, run_profile=profile)
    QSchedule.objects.create(name="tidy", func="math.floor", args="1")
    failed_task = Task.objects.create(
        id="f" * 32,
        name="failed-run",
        func="runs.tasks.execute_activity",
        args=(queued.pk,),
        started=timezone.now(),
        stopped=timezone.now(),
        success=False,
    )
    api_key, _ = issue_key(owner)
    failed_sign_in = FailedSignIn.objects.create(
        channel=SignInChannel.ADMIN,
        account="mallory",
        address="192.0.2.1",
        attempted_at=timezone.now() - timedelta(minutes=1),
    )
    return World(
        system,
        profile,
        queued,
        over_threshold,
        awaiting,
        failed,
        api_key,
        failed_sign_in,
        failed_task,
    )
