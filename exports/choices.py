"""Enumerations of the pending export lifecycle (seed 003)."""

from __future__ import annotations

from django.db import models


class PendingExportChangeType(models.TextChoices):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class PendingExportStatus(models.TextChoices):
    PENDING = "pending"
    EXECUTING = "executing"
    EXPORTED = "exported"
    EXPORT_NOT_CONFIRMED = "export_not_confirmed"
    FAILED = "failed"


class ApprovalState(models.TextChoices):
    NOT_REQUIRED = "not_required"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"


class AttributeChangeType(models.TextChoices):
    """PendingExportAttributeChangeType: per value for multi-valued attributes."""

    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"
    REMOVE_ALL = "remove_all"


class AttributeChangeStatus(models.TextChoices):
    PENDING = "pending"
    EXPORTED_PENDING_CONFIRMATION = "exported_pending_confirmation"
    EXPORTED_NOT_CONFIRMED = "exported_not_confirmed"
    FAILED = "failed"


class ApprovalAction(models.TextChoices):
    """What a person did to a pending export, as the audit trail records it."""

    APPROVED = "approved"
    REJECTED = "rejected"
    RETRIED = "retried"
    DISCARDED = "discarded"
