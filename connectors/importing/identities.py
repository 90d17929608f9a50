"""The ids of the CSOs an import creates, known from the moment they are staged.

On PostgreSQL a new CSO's id is drawn from the table's sequence when its page is
staged, so references to it resolve in memory even before its page is written. A
reference from a new CSO to an object further on in the source gets the id that
object will be created with — a *reservation* — so the referring CSO is written once,
complete, instead of written unresolved and rewritten after the last page (half the
objects of an HR file refer to a manager further down).

A reservation the run does not fulfil (the object never came, or was rejected) is
undone after the last page: its referrers get the value back as an unresolved
reference, exactly as if it had never been reserved. Only new CSOs take
reservations: an existing CSO is never changed by one, so a re-run that changes
nothing writes nothing. DN references (their targets may be renamed) are not
reserved.

On other databases ids come from the insert and references to objects further on
resolve after the last page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection

from connectors.importing.references import chunks
from connectors.models import ConnectorSpaceObject
from core.bulk import allocate_ids, update_rows

#: Referring CSOs repaired per query when reservations are undone.
UNDO_BATCH = 2000


@dataclass
class RunIdentities:
    """External id → CSO id for the objects this run creates or has reserved."""

    enabled: bool = field(default_factory=lambda: connection.vendor == "postgresql")
    #: external id → id of a CSO this run is creating (until its page is committed)
    created: dict[str, int] = field(default_factory=dict)
    #: external id → id reserved for an object referred to but not read yet
    awaited: dict[str, int] = field(default_factory=dict)
    #: external id awaited → (referring CSO id, attribute) pairs
    referrers: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    def assign(self, keys: list[str]) -> list[int]:
        """Ids for new CSOs of these external ids (a reservation becomes theirs)."""
        fresh = iter(allocate_ids(ConnectorSpaceObject, sum(k not in self.awaited for k in keys)))
        ids = []
        for key in keys:
            pk = self.awaited.pop(key, None)
            if pk is None:
                pk = next(fresh)
            else:
                self.referrers.pop(key, None)  # fulfilled
            self.created[key] = pk
            ids.append(pk)
        return ids

    def committed(self, keys: list[str]) -> None:
        """These CSOs are committed: lookups find them in the database from now on, so
        they need not be remembered (memory stays bounded by the pages in flight)."""
        for key in keys:
            self.created.pop(key, None)

    def reserve(self, keys: set[str]) -> dict[str, int]:
        """Ids for objects referred to before they are read (one query for the new)."""
        new = sorted(k for k in keys if k not in self.awaited and k not in self.created)
        self.awaited.update(zip(new, allocate_ids(ConnectorSpaceObject, len(new)), strict=True))
        return {key: self.created.get(key) or self.awaited[key] for key in keys}

    def refer(self, key: str, cso_id: int, attribute: str) -> None:
        """Note that ``cso_id`` refers through ``attribute`` to a reserved id."""
        if key in self.awaited:
            self.referrers.setdefault(key, []).append((cso_id, attribute))

    def undo_unfulfilled(self) -> int:
        """Give the referrers of reservations never fulfilled their values back as
        unresolved references; returns how many CSOs were repaired."""
        repairs: dict[int, list[tuple[str, str, int]]] = {}
        for key, pairs in self.referrers.items():
            for cso_id, attribute in pairs:
                repairs.setdefault(cso_id, []).append((attribute, key, self.awaited[key]))
        self.referrers.clear()
        for batch in chunks(sorted(repairs), UNDO_BATCH):
            rows = []
            csos = ConnectorSpaceObject.objects.filter(pk__in=batch).values_list(
                "pk", "attributes", "unresolved_references"
            )
            for pk, attributes, unresolved in csos:
                for attribute, key, reserved in repairs[pk]:
                    values = [v for v in attributes.get(attribute, []) if v != reserved]
                    if values:
                        attributes[attribute] = values
                    else:
                        attributes.pop(attribute, None)
                    unresolved.setdefault(attribute, []).append(key)
                rows.append(
                    {"id": pk, "attributes": attributes, "unresolved_references": unresolved}
                )
            update_rows(ConnectorSpaceObject, rows, ("attributes", "unresolved_references"))
        return len(repairs)
