"""Enumerations of the metaverse and sync rules."""

from __future__ import annotations

from django.db import models


class DeletionRule(models.TextChoices):
    """When an MVO is deleted (MetaverseObjectDeletionRule)."""

    LAST_CONNECTOR_REMOVED = "last_connector_removed"
    AUTHORITATIVE_CONNECTOR_REMOVED = "authoritative_connector_removed"
    MANUAL = "manual"


class MvoStatus(models.TextChoices):
    NORMAL = "normal"
    DELETION_SCHEDULED = "deletion_scheduled"


class SyncRuleDirection(models.TextChoices):
    IMPORT = "import"
    EXPORT = "export"


class DeprovisionAction(models.TextChoices):
    """What an export rule does to its CSO when the MVO leaves scope or is deleted."""

    DELETE = "delete"
    DISCONNECT = "disconnect"
    #: disable now (the rule's ``disable`` flows and DN), delete after ``delete_after_days``
    DISABLE = "disable"


class FlowKind(models.TextChoices):
    DIRECT = "direct"
    EXPRESSION = "expression"
