"""The change threshold of an export run: refuse to send a mass change.

Before an export run sends anything it counts what its executable pending exports
would do to the objects the target holds:

* per attribute, the update exports that change it (a rename counts as a change of
  ``DN``);
* the delete exports (deprovisioning).

Creates do not count: they add objects and change none. When one count exceeds the
system's change limit (:meth:`~connectors.models.ConnectedSystem.change_limit`) and
the activity does not allow changes, the run fails with ``change_threshold_exceeded``
before anything is claimed or sent — a sync rule's scope that went wrong, or an
import that blanked a column, stops here instead of in the directory.

The limit is taken of the system's ``normal`` CSOs: the objects JIM knows to exist in
the target now. Objects still to be provisioned do not exist there yet and obsolete
ones are already gone, so neither is something an update or a deprovisioning could
damage; a share of them would make the threshold larger the more a run creates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from connectors.activity import RunFailed
from connectors.choices import CsoStatus, RpeiErrorType
from connectors.models import ConnectedSystem, ConnectorSpaceObject, describe_limit
from exports.choices import AttributeChangeStatus, PendingExportChangeType
from exports.models import PendingExport, PendingExportAttributeChange

#: What the counts call deprovisioning and renaming (never an attribute's name).
DELETIONS = "deletions"
RENAME = "DN"
#: Objects named as examples of a change over the threshold.
EXAMPLES = 3


@dataclass
class ExportChangeCounts:
    """How many objects an export run would change, per attribute and in all."""

    existing: int
    limit: int
    by_attribute: dict[str, int] = field(default_factory=dict)
    deletions: int = 0

    def exceeded(self) -> list[tuple[str, int]]:
        """(attribute or :data:`DELETIONS`, count) over the limit, the largest first."""
        counts = [*self.by_attribute.items(), (DELETIONS, self.deletions)]
        over = [(what, n) for what, n in counts if n > self.limit]
        return sorted(over, key=lambda item: (-item[1], item[0]))


def count_changes(
    system: ConnectedSystem, executable: QuerySet[PendingExport]
) -> ExportChangeCounts:
    """Count what the ``executable`` pending exports (a queryset) would change: three
    aggregate queries, however many exports there are."""
    existing = ConnectorSpaceObject.objects.filter(
        connected_system=system, status=CsoStatus.NORMAL
    ).count()
    counts = ExportChangeCounts(existing=existing, limit=system.change_limit(existing))
    updates = executable.filter(change_type=PendingExportChangeType.UPDATE)
    per_attribute = (
        PendingExportAttributeChange.objects.filter(pending_export__in=updates)
        .exclude(status=AttributeChangeStatus.EXPORTED_PENDING_CONFIRMATION)
        .order_by()
        .values_list("attribute")
        .annotate(n=Count("pending_export_id", distinct=True))
    )
    counts.by_attribute = dict(per_attribute)
    totals = executable.aggregate(
        deletions=Count("pk", filter=Q(change_type=PendingExportChangeType.DELETE)),
        renames=Count("pk", filter=Q(change_type=PendingExportChangeType.UPDATE) & ~Q(dn="")),
    )
    counts.deletions = totals["deletions"]
    if totals["renames"]:
        counts.by_attribute[RENAME] = totals["renames"]
    return counts


def check_change_threshold(
    system: ConnectedSystem, executable: QuerySet[PendingExport], *, allowed: bool
) -> None:
    """Raise :class:`RunFailed` (``change_threshold_exceeded``) when the ``executable``
    pending exports would change more objects than the system's change threshold,
    unless the run is ``allowed`` to."""
    if allowed:
        return
    counts = count_changes(system, executable)
    exceeded = counts.exceeded()
    if exceeded:
        what = exceeded[0][0]
        raise RunFailed(
            threshold_message(system, counts, exceeded, _examples(executable, what)),
            error_type=RpeiErrorType.CHANGE_THRESHOLD_EXCEEDED,
        )


def threshold_message(
    system: ConnectedSystem,
    counts: ExportChangeCounts,
    exceeded: list[tuple[str, int]],
    examples: list[str],
) -> str:
    """The refusal: what would change and on how many objects, the limit and how it was
    worked out, a few of the objects, and what to do."""
    changes = "; ".join(_describe(what, n, counts.existing) for what, n in exceeded)
    how = describe_limit(system.change_threshold, counts.existing, kind="change")
    return (
        f"{system.name}: this export run would {changes}, more than the change threshold "
        f"{counts.limit} ({how}); nothing was "
        f"sent. For example: {', '.join(examples)}. Check the sync rules and the source "
        'data; if the changes are intended, run with --allow-changes (or use "Run '
        "again, allowing these changes\" on this activity's page), or raise the "
        "system's change_threshold."
    )


def _describe(what: str, n: int, existing: int) -> str:
    if what == DELETIONS:
        return f"deprovision (delete) {n} of {existing} objects"
    if what == RENAME:
        return f"rename or move {n} of {existing} objects"
    return f"change {what} on {n} of {existing} objects"


def _examples(executable: QuerySet[PendingExport], what: str) -> list[str]:
    """DN (or external id) of a few of the objects behind the largest count."""
    if what == DELETIONS:
        chosen = executable.filter(change_type=PendingExportChangeType.DELETE)
    elif what == RENAME:
        chosen = executable.filter(change_type=PendingExportChangeType.UPDATE).exclude(dn="")
    else:
        chosen = executable.filter(
            change_type=PendingExportChangeType.UPDATE, attribute_changes__attribute=what
        ).distinct()
    rows = chosen.order_by("pk").values_list(
        "cs_object__secondary_external_id", "cs_object__external_id", "cs_object_id"
    )[:EXAMPLES]
    return [dn or external_id or f"CSO {pk}" for dn, external_id, pk in rows]
