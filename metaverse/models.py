"""The metaverse schema and objects, and the sync rules that fill and read them."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from connectors.choices import AttributeDataType
from exports.passwords import validate_policy
from metaverse.choices import (
    DeletionRule,
    DeprovisionAction,
    FlowKind,
    MvoStatus,
    SyncRuleDirection,
)


class MetaverseObjectType(models.Model):
    """A metaverse object type (person, group) and its MVO deletion rule."""

    name = models.CharField(max_length=200, unique=True)
    deletion_rule = models.CharField(
        max_length=40, choices=DeletionRule.choices, default=DeletionRule.LAST_CONNECTOR_REMOVED
    )
    authoritative_systems = models.ManyToManyField(
        "connectors.ConnectedSystem",
        blank=True,
        related_name="authoritative_for",
        help_text="With authoritative_connector_removed: the systems whose leaving deletes.",
    )
    deletion_grace_period_days = models.PositiveIntegerField(
        default=0, help_text="> 0: the MVO is kept, scheduled for deletion, until then."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MetaverseAttribute(models.Model):
    """An attribute of a metaverse object type."""

    object_type = models.ForeignKey(
        MetaverseObjectType, on_delete=models.CASCADE, related_name="attributes"
    )
    name = models.CharField(max_length=200)
    data_type = models.CharField(
        max_length=20, choices=AttributeDataType.choices, default=AttributeDataType.TEXT
    )
    multivalued = models.BooleanField(default=False)

    class Meta:
        ordering = ["object_type", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["object_type", "name"], name="unique_mv_attribute_per_type"
            )
        ]

    def __str__(self) -> str:
        return f"{self.object_type.name}.{self.name}"


class MetaverseObject(models.Model):
    """An MVO: the one joined-up identity.

    ``attributes`` holds ``{"name": [values…]}`` (a reference value is another MVO's
    id); ``attribute_sources`` holds ``{"name": {"system": id, "rule": id}}``: which
    connected system and sync rule contributed each attribute's values.
    """

    object_type = models.ForeignKey(
        MetaverseObjectType, on_delete=models.PROTECT, related_name="metaverse_objects"
    )
    display_name = models.CharField(max_length=500, blank=True, db_index=True)
    attributes = models.JSONField(default=dict, blank=True)
    attribute_sources = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=30, choices=MvoStatus.choices, default=MvoStatus.NORMAL)
    deletion_due_at = models.DateTimeField(
        null=True, blank=True, help_text="When a scheduled deletion becomes due."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "metaverse object"
        permissions = [
            (
                "manage_metaverseobject",
                "Can delete a metaverse object now, disconnect its objects, re-evaluate it",
            )
        ]
        indexes = [
            models.Index(
                fields=["deletion_due_at"],
                condition=Q(status="deletion_scheduled"),
                name="mvo_deletion_due_idx",
            )
        ]

    def __str__(self) -> str:
        return self.display_name or f"{self.object_type.name} {self.pk}"


class SyncRule(models.Model):
    """How one connected-system object type and one metaverse object type relate.

    Import rules scope, join, project and flow CS → MV; export rules scope, provision,
    flow MV → CS and deprovision. ``precedence`` orders rules: the lowest number wins
    an attribute that several import rules flow into.
    """

    name = models.CharField(max_length=200, unique=True)
    connected_system = models.ForeignKey(
        "connectors.ConnectedSystem", on_delete=models.CASCADE, related_name="sync_rules"
    )
    direction = models.CharField(max_length=10, choices=SyncRuleDirection.choices)
    cs_object_type = models.ForeignKey(
        "connectors.ConnectedSystemObjectType",
        on_delete=models.CASCADE,
        related_name="sync_rules",
        verbose_name="connected system object type",
    )
    mv_object_type = models.ForeignKey(
        MetaverseObjectType,
        on_delete=models.CASCADE,
        related_name="sync_rules",
        verbose_name="metaverse object type",
    )
    precedence = models.PositiveIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    scope = models.TextField(blank=True, help_text="Jinja2 expression; false = out of scope.")
    project = models.BooleanField(default=False, help_text="Import: no join → new MVO.")
    provision = models.BooleanField(default=False, help_text="Export: in scope, no CSO → create.")
    dn_template = models.TextField(
        "DN template", blank=True, help_text="Export: Jinja2 template of the DN."
    )
    deprovision_action = models.CharField(
        max_length=20, choices=DeprovisionAction.choices, default=DeprovisionAction.DISCONNECT
    )
    enforce_state = models.BooleanField(default=False)
    initial_password = models.JSONField(
        null=True,
        blank=True,
        default=None,
        validators=[validate_policy],
        help_text="Export: the password policy of the accounts it creates, e.g. "
        '{"attribute": "unicodePwd", "length": 16}; the password is made when the '
        "create is sent and never stored.",
    )
    disable_flows = models.JSONField(
        default=list,
        blank=True,
        help_text="deprovision disable: the flows that disable the account, as "
        '[{"target": …, "source": …} or {"target": …, "expression": …}].',
    )
    disable_dn_template = models.TextField(
        "disable DN template",
        blank=True,
        help_text="deprovision disable: Jinja2 template of the DN a disabled account moves to.",
    )
    delete_after_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="deprovision disable: days after the disable was sent until the account "
        "is deleted; empty = it stays disabled until it comes back.",
    )

    class Meta:
        ordering = ["precedence", "name"]

    def __str__(self) -> str:
        return self.name


class SyncRuleJoin(models.Model):
    """A join rule: CS attribute equals MV attribute. Tried in ``order``."""

    sync_rule = models.ForeignKey(SyncRule, on_delete=models.CASCADE, related_name="joins")
    order = models.PositiveIntegerField(default=0)
    cs_attribute = models.CharField("connected system attribute", max_length=200)
    mv_attribute = models.CharField("metaverse attribute", max_length=200)

    class Meta:
        ordering = ["sync_rule", "order"]

    def __str__(self) -> str:
        return f"{self.cs_attribute} = {self.mv_attribute}"


class SyncRuleFlow(models.Model):
    """An attribute flow of a sync rule: a direct copy or a Jinja2 expression.

    ``target`` is the MV attribute for an import rule and the CS attribute for an
    export rule; ``source`` is the attribute on the other side for a direct flow.
    """

    sync_rule = models.ForeignKey(SyncRule, on_delete=models.CASCADE, related_name="flows")
    order = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=20, choices=FlowKind.choices, default=FlowKind.DIRECT)
    source = models.CharField(max_length=200, blank=True)
    expression = models.TextField(blank=True)
    target = models.CharField(max_length=200)

    class Meta:
        ordering = ["sync_rule", "order"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="direct") & ~Q(source=""))
                | (Q(kind="expression") & ~Q(expression="")),
                name="flow_has_source_or_expression",
            )
        ]

    def __str__(self) -> str:
        origin = self.source if self.kind == FlowKind.DIRECT else self.expression
        return f"{self.target} ← {origin}"


class MetaverseObjectKey(models.Model):
    """An indexed copy of an MVO's join-attribute values, for join lookups.

    MVO attributes live in one JSON document; the values that import join rules
    look up (``employeeId``, ``accountName``…) are copied here, normalised
    (:func:`metaverse.sync.keys.normalise_key`), so a join finds its MVO with an
    index lookup whose cost grows with the objects being synced, not with the
    metaverse. Maintained by the sync processor whenever it writes an MVO.
    """

    # Indexed by the unique constraint below, which leads with it.
    metaverse_object = models.ForeignKey(
        MetaverseObject, on_delete=models.CASCADE, related_name="keys", db_index=False
    )
    attribute = models.CharField(max_length=200)
    value = models.CharField(max_length=500)

    class Meta:
        indexes = [models.Index(fields=["attribute", "value"], name="mvo_key_lookup_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["metaverse_object", "attribute", "value"], name="unique_mvo_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.attribute}={self.value}"
