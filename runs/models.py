"""What a preview run found it would do to pending exports (runs/preview.py)."""

from __future__ import annotations

from django.db import models

from exports.choices import ApprovalState, PendingExportChangeType, PendingExportStatus


class PreviewEffect(models.TextChoices):
    CREATED = "created", "would be created"
    CHANGED = "changed", "would change"
    REMOVED = "removed", "would be removed"


class PreviewedExport(models.Model):
    """A pending export as a preview run would have left it: created, changed or removed.

    The objects it concerns may not exist (a CSO the run would provision, an MVO it
    would project), so the target is kept as text; the links are set when they exist.
    ``changes`` is the attribute changes the run would leave (as
    :class:`~exports.models.PendingExportAttributeChange` rows: attribute, change_type,
    values, previous_values, status); ``before`` is the pending export as it was, for
    one the run would change or remove.
    """

    activity = models.ForeignKey(
        "connectors.Activity", on_delete=models.CASCADE, related_name="previewed_exports"
    )
    connected_system = models.ForeignKey(
        "connectors.ConnectedSystem", on_delete=models.CASCADE, related_name="+"
    )
    effect = models.CharField(max_length=10, choices=PreviewEffect.choices)
    pending_export = models.ForeignKey(
        "exports.PendingExport",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The stored pending export a change or removal concerns.",
    )
    cs_object = models.ForeignKey(
        "connectors.ConnectorSpaceObject",
        verbose_name="CSO",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    metaverse_object = models.ForeignKey(
        "metaverse.MetaverseObject",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    target = models.CharField(max_length=2000, help_text="DN or external id of the object.")
    change_type = models.CharField(max_length=10, choices=PendingExportChangeType.choices)
    status = models.CharField(max_length=30, choices=PendingExportStatus.choices)
    approval = models.CharField(max_length=30, choices=ApprovalState.choices)
    changes = models.JSONField(default=list, blank=True)
    before = models.JSONField(default=dict, blank=True)
    reference_names = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the reference values of the changes named when the preview ran "
        "(CSO id → name): a CSO the run would provision never exists.",
    )

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["activity", "effect"], name="previewed_export_idx")]

    def __str__(self) -> str:
        return f"{self.get_effect_display()}: {self.change_type} {self.target}"
