"""An attribute's change as people read it: once, old → new.

Every page that shows what changed (RPEIs on the activity page, the MVO's history,
pending exports, the approval page) turns its own records into
:class:`AttributeChange` rows and renders them with
``console/partials/changes.html``, so a change reads the same everywhere:

* a single-valued attribute: ``old → new`` (``—`` for no value);
* a multi-valued attribute: the values added and the values removed.

Values are display text: the page resolves reference ids to names before it builds
the rows (one query for all of them), never the template.

An RPEI's rows come from what its run recorded (:mod:`connectors.value_changes`):
:func:`item_changes` turns the RPEIs of a page into rows, resolving every reference
value of the page — CSO ids to their DN (or external id), MVO ids to display names —
with one query per kind. An RPEI recorded before values were (``attributes`` without
``changes``) still shows the names of what changed. An RPEI of a preview names the
objects its run would have made, which never exist, in ``details["new_references"]``
(:mod:`runs.preview`): those read "Ada Lovelace (would be created)".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Model

from connectors.models import ConnectorSpaceObject, RunProfileExecutionItem
from metaverse.models import MetaverseObject


@dataclass(frozen=True)
class AttributeChange:
    """One attribute's change, with what (system, rule) made it when known."""

    attribute: str
    old: Sequence[str] = ()
    new: Sequence[str] = ()
    multi_valued: bool = False
    #: Where the change came from, e.g. "HR (rule: HR people → person)"; may be blank.
    source: str = ""
    #: Values not listed (the record kept only the first ones).
    more_old: int = 0
    more_new: int = 0
    links: dict[str, str] = field(default_factory=dict, compare=False)
    #: False for a record that names the attribute without its values (older RPEIs).
    recorded: bool = True
    #: A multi-valued change given as its difference: ``old`` holds the values removed
    #: and ``new`` those added (what a run records of a large group), not every value.
    difference: bool = False

    @property
    def added(self) -> list[str]:
        if self.difference:
            return list(self.new)
        old = set(self.old)
        return [value for value in self.new if value not in old]

    @property
    def removed(self) -> list[str]:
        if self.difference:
            return list(self.old)
        new = set(self.new)
        return [value for value in self.old if value not in new]

    @property
    def single_old(self) -> str:
        return ", ".join(self.old)

    @property
    def single_new(self) -> str:
        return ", ".join(self.new)


#: What a reference names when its object is gone.
GONE = "(an object since deleted)"
#: How a reference to an object a preview's run would have made reads.
WOULD_BE_CREATED = "{} (would be created)"

#: The model behind each kind of reference a run records (``"ref"`` of a change).
REFERENCED: dict[str, type[Model]] = {"cso": ConnectorSpaceObject, "mvo": MetaverseObject}


def item_changes(
    items: Iterable[RunProfileExecutionItem], *, system_of: Mapping[int, str] | None = None
) -> dict[int, list[AttributeChange]]:
    """Each RPEI's changes as rows, by RPEI id, with the page's reference values
    resolved to names (one query per kind of reference, for every RPEI at once).

    ``system_of`` names the connected system of each RPEI (by id) where a page shows
    RPEIs of several systems: the rows then say which system and rule made them.
    """
    items = list(items)
    names = reference_names(item.details for item in items)
    return {
        item.pk: changes_of(item.details, names, (system_of or {}).get(item.pk, ""))
        for item in items
    }


def changes_of(
    details: Mapping[str, Any], names: Mapping[tuple[str, int], str], system: str = ""
) -> list[AttributeChange]:
    """The rows of one RPEI's details: each changed attribute once, by name, then a
    rename."""
    recorded = details.get("changes")
    names = {**names, **_new_references(details)}
    rows = []
    if isinstance(recorded, dict):
        rows = [
            _row(attribute, recorded[attribute], names, system)
            for attribute in sorted(recorded, key=str.lower)  # jsonb keeps no order
        ]
    elif isinstance(details.get("attributes"), list):
        rows = [
            AttributeChange(str(attribute), source=system, recorded=False)
            for attribute in details["attributes"]
        ]
    dn = details.get("dn")
    if isinstance(dn, list) and len(dn) == 2:
        rows.append(AttributeChange("DN", _texts(dn[:1]), _texts(dn[1:]), source=system))
    return rows


def _new_references(details: Mapping[str, Any]) -> dict[tuple[str, int], str]:
    """The names a preview's RPEI keeps of objects its run would have made
    (``"mvo:12"`` → name), as ``(kind, id)`` → "name (would be created)"."""
    new = details.get("new_references")
    if not isinstance(new, dict):
        return {}
    names = {}
    for key, name in new.items():
        kind, _, pk = str(key).partition(":")
        if kind in REFERENCED and pk.isdigit():
            names[kind, int(pk)] = WOULD_BE_CREATED.format(name)
    return names


def reference_names(details: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], str]:
    """``(kind, id) → name`` for every reference id the details record."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for record in details:
        changes = record.get("changes")
        if not isinstance(changes, dict):
            continue
        for entry in changes.values():
            kind = entry.get("ref") if isinstance(entry, dict) else None
            if kind in REFERENCED:
                wanted[kind].update(_ids(entry))
    names: dict[tuple[str, int], str] = {}
    if wanted["cso"]:
        csos = ConnectorSpaceObject.objects.filter(pk__in=wanted["cso"])
        for pk, dn, external_id in csos.values_list("pk", "secondary_external_id", "external_id"):
            names["cso", pk] = dn or external_id or GONE
    if wanted["mvo"]:
        mvos = MetaverseObject.objects.filter(pk__in=wanted["mvo"])
        for pk, display_name in mvos.values_list("pk", "display_name"):
            names["mvo", pk] = display_name or "(an object without a name)"
    return names


def _row(
    attribute: str, entry: Any, names: Mapping[tuple[str, int], str], system: str
) -> AttributeChange:
    if not isinstance(entry, dict):
        return AttributeChange(attribute, source=system, recorded=False)
    kind = entry.get("ref")
    rule = entry.get("rule")
    source = f"rule: {rule}" if rule else ""
    if system:
        source = f"{system} ({source})" if source else system

    def shown(values: Any) -> list[str]:
        if not isinstance(values, list):
            return []
        if kind in REFERENCED:
            return [_reference(kind, value, names) for value in values]
        return _texts(values)

    if entry.get("multivalued"):
        return AttributeChange(
            attribute,
            old=shown(entry.get("removed")),
            new=shown(entry.get("added")),
            multi_valued=True,
            difference=True,
            source=source,
            more_old=entry.get("more_removed", 0),
            more_new=entry.get("more_added", 0),
        )
    return AttributeChange(
        attribute,
        old=shown(entry.get("old")),
        new=shown(entry.get("new")),
        source=source,
        more_old=entry.get("more_old", 0),
        more_new=entry.get("more_new", 0),
    )


def _reference(kind: str, value: Any, names: Mapping[tuple[str, int], str]) -> str:
    """A reference value's name: an id is looked up (never shown); text — a reference
    not resolved when it was recorded — is what the system gave."""
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get((kind, value), GONE)
    return f"{value} (unresolved)"


def _ids(entry: Mapping[str, Any]) -> Iterable[int]:
    for side in ("old", "new", "added", "removed"):
        values = entry.get(side)
        if isinstance(values, list):
            yield from (v for v in values if isinstance(v, int) and not isinstance(v, bool))


def _texts(values: Iterable[Any]) -> list[str]:
    return ["" if value is None else str(value) for value in values]
