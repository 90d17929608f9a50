"""Enumerations of the connector space, run profiles and activities (seed names, snake_case)."""

from __future__ import annotations

from django.db import models


class AttributeDataType(models.TextChoices):
    """Data type of a connected-system or metaverse attribute."""

    TEXT = "text"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    REFERENCE = "reference"
    BINARY = "binary"
    GUID = "guid"


class AttributeWritability(models.TextChoices):
    """Whether JIM may export values of a connected-system attribute."""

    READ_WRITE = "read_write"
    READ_ONLY = "read_only"
    WRITE_ONCE = "write_once"


class ApprovalMode(models.TextChoices):
    """Which pending exports of a connected system need a person's approval."""

    NONE = "none", "No approval"
    DELETES = "deletes"
    CREATES_AND_DELETES = "creates_and_deletes"
    ALL = "all"


class CsoStatus(models.TextChoices):
    """ConnectedSystemObjectStatus."""

    NORMAL = "normal"
    PENDING_PROVISIONING = "pending_provisioning"
    OBSOLETE = "obsolete"


class JoinType(models.TextChoices):
    """ConnectedSystemObjectJoinType: how a CSO came to be linked to its MVO."""

    NOT_JOINED = "not_joined"
    PROJECTED = "projected"
    JOINED = "joined"
    PROVISIONED = "provisioned"


class RunProfileType(models.TextChoices):
    FULL_IMPORT = "full_import"
    DELTA_IMPORT = "delta_import"
    FULL_SYNC = "full_sync"
    DELTA_SYNC = "delta_sync"
    EXPORT = "export"


IMPORT_PROFILE_TYPES = frozenset({RunProfileType.FULL_IMPORT, RunProfileType.DELTA_IMPORT})
SYNC_PROFILE_TYPES = frozenset({RunProfileType.FULL_SYNC, RunProfileType.DELTA_SYNC})


class ActivityStatus(models.TextChoices):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    COMPLETE_WITH_ERRORS = "complete_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_ACTIVITY_STATUSES = frozenset(
    {
        ActivityStatus.COMPLETE,
        ActivityStatus.COMPLETE_WITH_ERRORS,
        ActivityStatus.FAILED,
        ActivityStatus.CANCELLED,
    }
)


class ActivityPhase(models.TextChoices):
    """What a running activity is doing now, for progress display."""

    WAITING = "waiting"
    CONNECTING = "connecting"
    IMPORTING = "importing"
    WRITING = "writing"
    DELETION_DETECTION = "deletion_detection"
    RESOLVING_REFERENCES = "resolving_references"
    RECONCILING_EXPORTS = "reconciling_exports"
    SYNCHRONISING = "synchronising"
    EVALUATING_EXPORTS = "evaluating_exports"
    EXPORTING = "exporting"
    FINISHING = "finishing"
    DONE = "done"


class ObjectChangeType(models.TextChoices):
    """ObjectChangeType of a run-profile execution item (RPEI)."""

    NONE = "none", "No change"
    ADDED = "added"
    UPDATED = "updated"
    DELETED = "deleted"
    PROJECTED = "projected"
    JOINED = "joined"
    ATTRIBUTE_FLOW = "attribute_flow"
    DISCONNECTED = "disconnected"
    PROVISIONED = "provisioned"
    EXPORTED = "exported"
    DEPROVISIONED = "deprovisioned"
    DRIFT_CORRECTION = "drift_correction"


#: The keys of the ``counts`` object in ``jim run --json``, in the spec's order.
COUNTED_CHANGE_TYPES: tuple[str, ...] = (
    ObjectChangeType.ADDED,
    ObjectChangeType.UPDATED,
    ObjectChangeType.DELETED,
    ObjectChangeType.PROJECTED,
    ObjectChangeType.JOINED,
    ObjectChangeType.ATTRIBUTE_FLOW,
    ObjectChangeType.DISCONNECTED,
    ObjectChangeType.PROVISIONED,
    ObjectChangeType.EXPORTED,
    ObjectChangeType.DEPROVISIONED,
    ObjectChangeType.DRIFT_CORRECTION,
)


class RpeiErrorType(models.TextChoices):
    """ActivityRunProfileExecutionItemErrorType, snake_case."""

    NONE = "", "No error"
    DUPLICATE_IMPORTED_ATTRIBUTES = "duplicate_imported_attributes"
    COULD_NOT_MATCH_OBJECT_TYPE = "could_not_match_object_type"
    MISSING_EXTERNAL_ID = "missing_external_id"
    DUPLICATE_OBJECT = "duplicate_object"
    INVALID_DATA = "invalid_data"
    UNRESOLVED_REFERENCE = "unresolved_reference"
    AMBIGUOUS_MATCH = "ambiguous_match"
    COULD_NOT_JOIN_DUE_TO_EXISTING_JOIN = "could_not_join_due_to_existing_join"
    EXPRESSION_ERROR = "expression_error"
    INVALID_GENERATED_EXTERNAL_ID = "invalid_generated_external_id"
    EXPORT_FAILED = "export_failed"
    EXPORT_CONFIRMATION_FAILED = "export_confirmation_failed"
    DELETION_THRESHOLD_EXCEEDED = "deletion_threshold_exceeded"
    CHANGE_THRESHOLD_EXCEEDED = "change_threshold_exceeded"
    ATTRIBUTE_LOST = "attribute_lost"
    CONNECTOR_ERROR = "connector_error"
    UNHANDLED_ERROR = "unhandled_error"
