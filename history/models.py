"""Value history: every change to an MVO's or a CSO's attributes, with the values before
and after and the run (or person) that made it.

One row per object per change — not per attribute — written in bulk, in the
transaction of the change it records (by the import for CSOs, by the sync and the
manual actions for MVOs; :mod:`history.recording` builds the rows). ``changes`` has the
shape of an RPEI's (:mod:`connectors.value_changes`): bounded, secrets masked.

The object and the run are named by id and label, not by foreign key: history outlives
the objects it describes and the activities that changed them, until the retention
setting ``JIM_HISTORY_RETENTION_DAYS`` prunes it (:func:`history.pruning.prune`).
"""

from __future__ import annotations

from django.db import models


class ObjectKind(models.TextChoices):
    MVO = "mvo", "metaverse object"
    CSO = "cso", "connector space object"


class Event(models.TextChoices):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


class ValueChange(models.Model):
    """What one run (or person) changed of one object's values."""

    object_kind = models.CharField(max_length=3, choices=ObjectKind.choices)
    object_id = models.BigIntegerField()
    event = models.CharField(max_length=10, choices=Event.choices)
    at = models.DateTimeField()
    activity_id = models.BigIntegerField(
        null=True, blank=True, help_text="The run that made the change (it may be gone)."
    )
    run = models.CharField(
        max_length=300, blank=True, help_text="The run as it was called: system and profile."
    )
    person = models.CharField(
        max_length=200, blank=True, help_text="Who started the run or action, when a person did."
    )
    changes = models.JSONField(
        default=dict, blank=True, help_text="{attribute: old/new or added/removed}, as an RPEI's."
    )

    class Meta:
        indexes = [
            models.Index(fields=["object_kind", "object_id", "id"], name="history_timeline"),
            models.Index(fields=["at"], name="history_at"),
        ]

    def __str__(self) -> str:
        return f"{self.object_kind} {self.object_id} {self.event} at {self.at:%Y-%m-%d %H:%M:%S}"
