"""Connected systems, their schema, the connector space, run profiles and activities.

Attribute values of a CSO are one JSON document per object (``{"attr": [values…]}``)
with the columns that are looked up — external id, secondary external id (DN), status,
object type, join — as real indexed columns (see docs/architecture.md for why).
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from connectors.choices import (
    ActivityPhase,
    ActivityStatus,
    ApprovalMode,
    AttributeDataType,
    AttributeWritability,
    CsoStatus,
    JoinType,
    ObjectChangeType,
    RpeiErrorType,
    RunProfileType,
)
from core.crypto import EncryptedJSONField

#: Default deletion threshold: 500 objects or 10 %, whichever is smaller (spec "Safety").
DEFAULT_DELETION_THRESHOLD_COUNT = 500
DEFAULT_DELETION_THRESHOLD_PERCENT = 10
#: Default change threshold: as the deletion threshold, but never below this many
#: objects, so that a small system can still change a few of its objects.
DEFAULT_CHANGE_THRESHOLD_FLOOR = 10

_THRESHOLD_RE = re.compile(r"^\s*(\d+)\s*(%?)\s*$")


def _validate_threshold(value: str, what: str) -> None:
    if value and not _THRESHOLD_RE.match(value):
        raise ValidationError(
            f"{value!r} is not a {what} threshold: use a count (500) or a percentage (20%)."
        )
    match = _THRESHOLD_RE.match(value or "")
    if match and match.group(2) and int(match.group(1)) > 100:
        raise ValidationError(f"{value!r}: a percentage cannot exceed 100%.")


def validate_deletion_threshold(value: str) -> None:
    """A threshold is blank (the default), a count (``500``) or a percentage (``20%``)."""
    _validate_threshold(value, "deletion")


def validate_change_threshold(value: str) -> None:
    """Same form as the deletion threshold."""
    _validate_threshold(value, "change")


def _explicit_limit(threshold: str, existing: int) -> int | None:
    match = _THRESHOLD_RE.match(threshold or "")
    if not match:
        return None
    number = int(match.group(1))
    return existing * number // 100 if match.group(2) else number


def deletion_limit(threshold: str, existing: int) -> int:
    """How many objects a full import may mark obsolete out of ``existing`` CSOs."""
    limit = _explicit_limit(threshold, existing)
    if limit is not None:
        return limit
    return min(
        DEFAULT_DELETION_THRESHOLD_COUNT, existing * DEFAULT_DELETION_THRESHOLD_PERCENT // 100
    )


def describe_limit(threshold: str, existing: int, *, kind: str) -> str:
    """How a deletion or change limit (``kind``) was worked out, for messages."""
    if threshold:
        return f"{kind}_threshold {threshold}"
    floor = f", but at least {DEFAULT_CHANGE_THRESHOLD_FLOOR}" if kind == "change" else ""
    return (
        f"the default: {DEFAULT_DELETION_THRESHOLD_COUNT} objects or "
        f"{DEFAULT_DELETION_THRESHOLD_PERCENT}% of {existing}, whichever is smaller{floor}"
    )


def change_limit(threshold: str, existing: int) -> int:
    """On how many of ``existing`` objects one run may change one attribute (an import)
    or update or deprovision objects (an export run)."""
    limit = _explicit_limit(threshold, existing)
    if limit is not None:
        return limit
    return max(DEFAULT_CHANGE_THRESHOLD_FLOOR, deletion_limit("", existing))


class ConnectedSystem(models.Model):
    """A system that holds identities (an HR file, an LDAP directory…) and its settings."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    connector = models.CharField(
        max_length=50, help_text="Connector type from the registry: csv, ldap, …"
    )
    settings = models.JSONField(default=dict, blank=True, help_text="Non-secret settings.")
    secret_settings = EncryptedJSONField(
        blank=True,
        default=dict,
        help_text="Secret settings (bind passwords), encrypted at rest, never shown back.",
    )
    persisted_connector_data = models.JSONField(
        default=dict,
        blank=True,
        help_text="The connector's delta watermark, saved after a successful import.",
    )
    approval_mode = models.CharField(
        max_length=30, choices=ApprovalMode.choices, default=ApprovalMode.NONE
    )
    separate_duties = models.BooleanField(
        default=False,
        help_text="Separation of duties: nobody may approve an export that their own run "
        "or configuration change produced (docs/configuration.md).",
    )
    export_max_retries = models.PositiveIntegerField(default=5)
    export_retry_backoff_seconds = models.PositiveIntegerField(
        default=60, help_text="First retry delay; doubles on each failure."
    )
    deletion_threshold = models.CharField(
        max_length=20,
        blank=True,
        validators=[validate_deletion_threshold],
        help_text="A count (500) or a percentage (20%). Blank: 500 objects or 10%, "
        "whichever is smaller.",
    )
    change_threshold = models.CharField(
        max_length=20,
        blank=True,
        validators=[validate_change_threshold],
        help_text="How many objects (500) or what share (20%) one import may change one "
        "attribute on, or one export run may update or deprovision. Blank: 500 objects or "
        "10%, whichever is smaller, but at least 10.",
    )
    config_base_dir = models.CharField(
        max_length=1000,
        blank=True,
        help_text="Folder relative file paths in settings are resolved against "
        "(the folder of the configuration file that defined this system).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def deletion_limit(self, existing: int) -> int:
        return deletion_limit(self.deletion_threshold, existing)

    def change_limit(self, existing: int) -> int:
        return change_limit(self.change_threshold, existing)

    def all_settings(self) -> dict[str, Any]:
        """Settings and secret settings merged, for handing to the connector.

        Keys starting with ``_`` are JIM's bookkeeping (e.g. which environment variable
        a secret came from), not connector settings.
        """
        merged = {**self.settings, **self.secret_settings}
        return {key: value for key, value in merged.items() if not key.startswith("_")}


class ConnectedSystemObjectType(models.Model):
    """An object type of a connected system's schema (an LDAP object class, a CSV file)."""

    connected_system = models.ForeignKey(
        ConnectedSystem, on_delete=models.CASCADE, related_name="object_types"
    )
    name = models.CharField(max_length=200)
    selected = models.BooleanField(
        default=True, help_text="Only selected object types are imported."
    )
    external_id_attribute = models.CharField("external ID attribute", max_length=200)
    secondary_external_id_attribute = models.CharField(
        "secondary external ID attribute",
        max_length=200,
        blank=True,
        help_text="'dn' for LDAP: the name known before the id.",
    )
    container = models.CharField(
        max_length=1000, blank=True, help_text="Where objects of this type are read and written."
    )

    class Meta:
        ordering = ["connected_system__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["connected_system", "name"], name="unique_object_type_per_system"
            )
        ]

    def __str__(self) -> str:
        return f"{self.connected_system.name}/{self.name}"


class ConnectedSystemAttribute(models.Model):
    """An attribute of a connected-system object type."""

    object_type = models.ForeignKey(
        ConnectedSystemObjectType, on_delete=models.CASCADE, related_name="attributes"
    )
    name = models.CharField(max_length=200)
    data_type = models.CharField(
        max_length=20, choices=AttributeDataType.choices, default=AttributeDataType.TEXT
    )
    multivalued = models.BooleanField(default=False)
    writability = models.CharField(
        max_length=20, choices=AttributeWritability.choices, default=AttributeWritability.READ_WRITE
    )
    references = models.CharField(
        max_length=200,
        blank=True,
        help_text="For reference attributes: the object type referred to (CSV: 'person').",
    )
    optional = models.BooleanField(
        default=False,
        help_text="The source may lose this attribute (a CSV column, an LDAP attribute "
        "no object has any more) without the import being refused.",
    )

    class Meta:
        ordering = ["object_type", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["object_type", "name"], name="unique_attribute_per_object_type"
            )
        ]

    def __str__(self) -> str:
        return f"{self.object_type}.{self.name}"


class ConnectorSpaceObject(models.Model):
    """A CSO: JIM's copy of one object of a connected system.

    ``attributes`` holds ``{"name": [values…]}``; a reference value is the id of the
    referenced CSO, and a reference not yet resolved is kept in
    ``unresolved_references`` as the external id (or DN) the system gave.
    ``secondary_external_id_key`` is the normalised DN used for lookups.
    ``sync_pending`` is set when an import changed the CSO and cleared by sync: delta
    sync reads only those.
    """

    # Indexed by cso_type_idx and cso_secondary_id_idx, which lead with it.
    connected_system = models.ForeignKey(
        ConnectedSystem, on_delete=models.CASCADE, related_name="cs_objects", db_index=False
    )
    object_type = models.ForeignKey(
        ConnectedSystemObjectType, on_delete=models.CASCADE, related_name="cs_objects"
    )
    # NULL, not '': a pending-provisioning CSO has no external id yet, and the
    # uniqueness constraint below must not count those as duplicates.
    external_id = models.CharField(  # noqa: DJ001
        "external ID", max_length=500, null=True, blank=True
    )
    secondary_external_id = models.CharField(  # noqa: DJ001
        "secondary external ID", max_length=2000, null=True, blank=True
    )
    secondary_external_id_key = models.CharField(  # noqa: DJ001
        "secondary external ID key", max_length=2000, null=True, blank=True
    )
    status = models.CharField(max_length=30, choices=CsoStatus.choices, default=CsoStatus.NORMAL)
    join_type = models.CharField(
        max_length=20, choices=JoinType.choices, default=JoinType.NOT_JOINED
    )
    metaverse_object = models.ForeignKey(
        "metaverse.MetaverseObject",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="cs_objects",
    )
    joined_at = models.DateTimeField(null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    unresolved_references = models.JSONField(default=dict, blank=True)
    sync_pending = models.BooleanField(default=True)
    disconnected_by_hand = models.BooleanField(
        default=False,
        help_text="An administrator disconnected it from its metaverse object: sync neither "
        "joins nor projects it until an administrator re-joins it or releases it to sync, "
        "or it is imported anew.",
    )
    disconnected_from_mvo = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="The id of the metaverse object an administrator disconnected it from "
        "(a number, not a link: that object may be gone since), offered when re-joining it.",
    )
    disabled_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When JIM disabled the account (deprovision: disable): the disabling "
        "export was sent. Cleared when the person comes back.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "connector space object"
        constraints = [
            models.UniqueConstraint(
                fields=["connected_system", "external_id"],
                condition=Q(external_id__isnull=False),
                name="unique_cso_external_id_per_system",
            ),
            models.UniqueConstraint(
                fields=["connected_system", "metaverse_object"],
                condition=Q(metaverse_object__isnull=False),
                name="one_cso_per_system_per_mvo",
            ),
            models.CheckConstraint(
                condition=Q(join_type="not_joined", metaverse_object__isnull=True)
                | (~Q(join_type="not_joined") & Q(metaverse_object__isnull=False)),
                name="cso_join_type_matches_join",
            ),
        ]
        indexes = [
            models.Index(
                fields=["connected_system", "secondary_external_id_key"],
                name="cso_secondary_id_idx",
            ),
            models.Index(fields=["connected_system", "object_type", "status"], name="cso_type_idx"),
            models.Index(
                fields=["connected_system"],
                condition=Q(sync_pending=True),
                name="cso_sync_pending_idx",
            ),
            models.Index(
                fields=["object_type", "disabled_at"],
                condition=Q(disabled_at__isnull=False),
                name="cso_disabled_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.secondary_external_id or self.external_id or f"CSO {self.pk}"


class RunProfile(models.Model):
    """A named step that moves data: full/delta import, full/delta sync, export."""

    connected_system = models.ForeignKey(
        ConnectedSystem, on_delete=models.CASCADE, related_name="run_profiles"
    )
    name = models.CharField(max_length=200)
    profile_type = models.CharField(max_length=20, choices=RunProfileType.choices)
    page_size = models.PositiveIntegerField(
        null=True, blank=True, help_text="Objects per page; the connector's default when blank."
    )

    class Meta:
        ordering = ["connected_system__name", "name"]
        permissions = [("run_runprofile", "Can run run profiles")]
        constraints = [
            models.UniqueConstraint(
                fields=["connected_system", "name"], name="unique_run_profile_per_system"
            )
        ]

    def __str__(self) -> str:
        return f"{self.connected_system.name} — {self.name}"


class Activity(models.Model):
    """One execution of a run profile, with its progress and outcome.

    Status and progress are written with ``filter(pk=…).update(…)`` as the run goes, so
    the live page, ``jim activity`` and a crashed worker's recovery all read the truth.
    """

    connected_system = models.ForeignKey(
        ConnectedSystem, on_delete=models.CASCADE, related_name="activities"
    )
    run_profile = models.ForeignKey(
        RunProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="activities"
    )
    profile_type = models.CharField(max_length=20, choices=RunProfileType.choices)
    profile_name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=30, choices=ActivityStatus.choices, default=ActivityStatus.QUEUED
    )
    phase = models.CharField(
        max_length=30, choices=ActivityPhase.choices, default=ActivityPhase.WAITING
    )
    message = models.TextField(blank=True, help_text="Why the run failed, when it did.")
    objects_total = models.PositiveIntegerField(null=True, blank=True)
    objects_processed = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True, help_text="RPEIs by change type.")
    error_count = models.PositiveIntegerField(default=0)
    allow_deletions = models.BooleanField(default=False)
    allow_changes = models.BooleanField(
        default=False, help_text="The run may exceed the system's change threshold."
    )
    cancel_requested = models.BooleanField(default=False)
    preview = models.BooleanField(
        default=False,
        help_text="A preview: the run changed nothing and records what it would have done "
        "(runs/preview.py). Kept for JIM_PREVIEW_RETENTION_DAYS.",
    )
    initiated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    initiated_by_name = models.CharField(max_length=200, blank=True)
    task_id = models.CharField("task ID", max_length=64, blank=True)
    schedule = models.ForeignKey(
        "Schedule",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="activities",
        help_text="The schedule whose step started this run, if any.",
    )
    overrides = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="overridden_by",
        help_text="The activity, failed at a threshold, that this run repeats with the "
        "threshold lifted by the user who started it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "activities"
        ordering = ["-created_at"]
        permissions = [
            ("override_threshold", "Can let a run exceed its deletion or change threshold")
        ]
        indexes = [
            models.Index(fields=["connected_system", "status"], name="activity_status_idx"),
            # Housekeeping's pruning of previews (few, next to real runs).
            models.Index(
                fields=["finished_at"], condition=Q(preview=True), name="activity_preview_idx"
            ),
        ]
        constraints = [
            # The database, not memory, enforces the concurrency rules: one running
            # activity per connected system, and one sync (which writes the
            # metaverse) at a time across the installation.
            models.UniqueConstraint(
                fields=["connected_system"],
                condition=Q(status="in_progress"),
                name="one_running_activity_per_system",
            ),
            models.UniqueConstraint(
                fields=["status"],
                condition=Q(status="in_progress", profile_type__in=["full_sync", "delta_sync"]),
                name="one_running_sync",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.connected_system.name} — {self.profile_name}"

    @property
    def duration_seconds(self) -> float | None:
        if not self.started_at:
            return None
        from django.utils import timezone

        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()


class RunProfileExecutionItem(models.Model):
    """An RPEI: what one run did to one object, or the error it met on it."""

    # Indexed by rpei_change_idx and rpei_error_idx, which lead with it.
    activity = models.ForeignKey(
        Activity, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    change_type = models.CharField(
        max_length=30, choices=ObjectChangeType.choices, default=ObjectChangeType.NONE
    )
    error_type = models.CharField(
        max_length=50, choices=RpeiErrorType.choices, default=RpeiErrorType.NONE, blank=True
    )
    message = models.TextField(blank=True)
    external_id = models.CharField("external ID", max_length=2000, blank=True)
    cs_object = models.ForeignKey(
        ConnectorSpaceObject,
        verbose_name="CSO",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="execution_items",
    )
    metaverse_object = models.ForeignKey(
        "metaverse.MetaverseObject",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="execution_items",
    )
    pending_export = models.ForeignKey(
        "exports.PendingExport",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="execution_items",
    )
    details = models.JSONField(default=dict, blank=True, help_text="Attribute changes etc.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "run-profile execution item"
        ordering = ["id"]
        indexes = [
            models.Index(fields=["activity", "change_type"], name="rpei_change_idx"),
            models.Index(fields=["activity", "error_type"], name="rpei_error_idx"),
        ]

    def __str__(self) -> str:
        what = self.error_type or self.change_type
        return f"{what}: {self.external_id}"


def validate_cron(value: str) -> None:
    """A five-field cron expression (minute hour day-of-month month day-of-week)."""
    from croniter import croniter

    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValidationError(
            f"{value!r} is not a cron expression (five fields: minute hour day month weekday, "
            "e.g. '*/15 * * * *')."
        )


class Schedule(models.Model):
    """An ordered list of run-profile steps run on a cron schedule by the django-q2 cluster.

    For example: HR Full Import → HR Delta Sync → Directory Export → Directory Delta
    Import → Directory Delta Sync, every 15 minutes.
    """

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    cron = models.CharField(max_length=100, validators=[validate_cron])
    enabled = models.BooleanField(default=True)
    stop_on_failure = models.BooleanField(
        default=True, help_text="Stop at a failed step; otherwise go on with the next one."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ScheduleStep(models.Model):
    """One step of a schedule: a run profile, run in ``order``."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveIntegerField(default=0)
    run_profile = models.ForeignKey(RunProfile, on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["schedule", "order", "pk"]

    def __str__(self) -> str:
        return f"{self.order}. {self.run_profile}"
