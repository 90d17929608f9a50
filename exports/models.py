"""Pending exports, their attribute changes, and the audit trail of what people did to
them: approvals and rejections, retries and discards (seed 003)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from exports.choices import (
    ApprovalAction,
    ApprovalState,
    AttributeChangeStatus,
    AttributeChangeType,
    PendingExportChangeType,
    PendingExportStatus,
)


class PendingExport(models.Model):
    """A change JIM wants to make to one CSO in its connected system.

    There is at most one pending export per CSO: new changes merge into it. ``dn`` is
    the DN to create the object with, or for an update the DN to rename/move it to
    (blank when the DN does not change).
    """

    # Indexed by pe_status_idx and pe_approval_idx, which lead with it.
    connected_system = models.ForeignKey(
        "connectors.ConnectedSystem",
        on_delete=models.CASCADE,
        related_name="pending_exports",
        db_index=False,
    )
    cs_object = models.OneToOneField(
        "connectors.ConnectorSpaceObject",
        on_delete=models.CASCADE,
        related_name="pending_export",
        verbose_name="CSO",
    )
    metaverse_object = models.ForeignKey(
        "metaverse.MetaverseObject",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="pending_exports",
    )
    sync_rule = models.ForeignKey(
        "metaverse.SyncRule", on_delete=models.SET_NULL, null=True, blank=True
    )
    change_type = models.CharField(max_length=10, choices=PendingExportChangeType.choices)
    status = models.CharField(
        max_length=30, choices=PendingExportStatus.choices, default=PendingExportStatus.PENDING
    )
    dn = models.CharField("DN", max_length=2000, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    max_retries = models.PositiveIntegerField(default=5)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    approval = models.CharField(
        max_length=30, choices=ApprovalState.choices, default=ApprovalState.NOT_REQUIRED
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    approval_reason = models.TextField(blank=True)
    created_by_activity = models.ForeignKey(
        "connectors.Activity", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    staged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The person who staged it by hand (an undo of an export run); with "
        "separation of duties they may not approve it.",
    )
    identity = models.JSONField(
        default=dict,
        blank=True,
        help_text="A delete's (or a disable's) snapshot of whom it deprovisions, taken "
        "when sync staged it: the MVO's id, name, object type and identifying values, and "
        "why (metaverse_object_deleted or out_of_scope). Empty for other changes.",
    )
    disables = models.BooleanField(
        default=False,
        help_text="An update that disables the account (deprovision: disable): sending it "
        "records when the account was disabled on its CSO.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        permissions = [
            ("approve_pendingexport", "Can approve or reject pending exports"),
            ("intervene_pendingexport", "Can retry or discard failed pending exports"),
        ]
        indexes = [
            models.Index(fields=["connected_system", "status"], name="pe_status_idx"),
            models.Index(fields=["connected_system", "approval"], name="pe_approval_idx"),
            # The dashboard's most recent failures: failed exports are few.
            models.Index(
                fields=["-updated_at"],
                condition=models.Q(status=PendingExportStatus.FAILED),
                name="pe_failed_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.change_type} {self.dn or self.cs_object}"

    @property
    def target(self) -> str:
        """The DN to create or move to, else the CSO's DN or external id (what people
        know the object by)."""
        cso = self.cs_object
        return self.dn or cso.secondary_external_id or cso.external_id or f"CSO {cso.pk}"


class PendingExportAttributeChange(models.Model):
    """One attribute's change in a pending export, with its own confirmation status.

    Multi-valued attributes change value by value (``add``/``remove``), never by
    replacing the whole list from a partial view. ``previous_values`` is what the CSO
    held when the change was staged, shown to approvers as before → after.
    """

    # Indexed by the unique constraint below, which leads with it.
    pending_export = models.ForeignKey(
        PendingExport, on_delete=models.CASCADE, related_name="attribute_changes", db_index=False
    )
    attribute = models.CharField(max_length=200)
    change_type = models.CharField(max_length=20, choices=AttributeChangeType.choices)
    values = models.JSONField(default=list, blank=True)
    previous_values = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=40, choices=AttributeChangeStatus.choices, default=AttributeChangeStatus.PENDING
    )

    class Meta:
        ordering = ["pending_export", "attribute", "change_type"]
        constraints = [
            models.UniqueConstraint(
                fields=["pending_export", "attribute", "change_type"],
                name="one_change_per_attribute_and_type",
            )
        ]

    def __str__(self) -> str:
        return f"{self.change_type} {self.attribute}"


class ApprovalAuditEntry(models.Model):
    """What a person did to a pending export — approved, rejected, retried or
    discarded it — kept after the pending export itself is gone.

    The entry holds what the export was (system, change type, target, changes, last
    error), so a discarded export is still described when its row is deleted. Written
    once by the approval and intervention workflows; read-only everywhere else.
    """

    pending_export = models.ForeignKey(
        PendingExport, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit"
    )
    pending_export_ref = models.PositiveBigIntegerField(help_text="Id of the pending export.")
    connected_system_name = models.CharField(max_length=200)
    change_type = models.CharField(max_length=10, choices=PendingExportChangeType.choices)
    target = models.CharField(max_length=2000, help_text="DN or external id of the object.")
    action = models.CharField(max_length=10, choices=ApprovalAction.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    username = models.CharField(max_length=150)
    reason = models.TextField(blank=True)
    changes = models.JSONField(default=list, blank=True, help_text="The changes decided on.")
    last_error = models.TextField(
        blank=True, help_text="The export's last error when it was retried or discarded."
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.username} {self.action} {self.change_type} {self.target}"

    @classmethod
    def of(cls, pe: PendingExport, user: Any, action: str, reason: str) -> ApprovalAuditEntry:
        """An (unsaved) entry recording ``action`` on ``pe``, with what ``pe`` is now.

        ``pe`` comes with its connected system, CSO and attribute changes loaded.
        """
        return cls(
            pending_export=pe,
            pending_export_ref=pe.pk,
            connected_system_name=pe.connected_system.name,
            change_type=pe.change_type,
            target=pe.target,
            action=action,
            user=user,
            username=user.get_username(),
            reason=reason,
            changes=[
                {
                    "attribute": c.attribute,
                    "change_type": c.change_type,
                    "before": c.previous_values,
                    "after": c.values,
                }
                for c in pe.attribute_changes.all()
            ],
            last_error=pe.last_error,
        )


class ExportedChange(models.Model):
    """What an export run sent to one object, kept so that the run can be undone
    (:mod:`exports.undo`) until ``JIM_EXPORT_RETENTION_DAYS`` have passed.

    Written by the export run in the transaction that records the export's success:
    the attribute changes with their values *and* the values they replaced, and for a
    delete the object's last known values and type, so that it can be re-created.
    ``cso_ref`` is the CSO's id, not a foreign key: a delete removes the CSO, and the
    record outlives it. Reference values are CSO ids, as in a pending export.
    """

    activity = models.ForeignKey(
        "connectors.Activity", on_delete=models.CASCADE, related_name="exported_changes"
    )
    connected_system = models.ForeignKey(
        "connectors.ConnectedSystem", on_delete=models.CASCADE, related_name="+"
    )
    cso_ref = models.PositiveBigIntegerField("CSO id", db_index=True)
    object_type = models.ForeignKey(
        "connectors.ConnectedSystemObjectType",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    change_type = models.CharField(max_length=10, choices=PendingExportChangeType.choices)
    dn = models.CharField(
        "DN", max_length=2000, blank=True, help_text="The object's DN when it was sent."
    )
    new_dn = models.CharField(
        "new DN", max_length=2000, blank=True, help_text="The DN an update moved it to."
    )
    external_id = models.CharField("external ID", max_length=500, blank=True)
    changes = models.JSONField(
        default=list,
        blank=True,
        help_text="[{attribute, change_type, values, previous_values}] as sent.",
    )
    last_values = models.JSONField(
        default=dict,
        blank=True,
        help_text="A delete's last known attribute values of the object (secrets left out).",
    )
    exported_at = models.DateTimeField(db_index=True)
    disabled = models.BooleanField(
        default=False,
        help_text="The update disabled the account (deprovision: disable); undoing it "
        "re-enables it and clears the CSO's disabled_at.",
    )
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["exported_at", "id"]
        permissions = [("undo_exportedchange", "Can roll back an export run")]

    def __str__(self) -> str:
        return f"{self.change_type} {self.target}"

    @property
    def target(self) -> str:
        return self.dn or self.external_id or f"CSO {self.cso_ref}"
