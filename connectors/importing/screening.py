"""Screening an import before anything is written: lost attributes and the change
threshold (spec "Safety").

An import stages its whole source first and spools what it would write
(:mod:`connectors.importing.spool`); while it stages, a :class:`ChangeTally` counts,
per object type and attribute, the existing objects the import would change and the
attributes the source still has. Only an import that passes both checks below writes
anything, so a refused import changes nothing (not even the objects it read first):

* **A lost attribute** — the source no longer has an attribute that the connector
  space holds values for: a CSV file without a column that earlier imports filled
  (told by its header, before a row is read), or, where the connector cannot tell its
  columns (a directory omits absent attributes), an attribute that every existing
  object of a full import had (two at least) and none has now. Importing would blank
  it on every object and export the blanks, so the run is refused with
  ``attribute_lost`` — unless the attribute is marked ``optional``.
* **The change threshold** — one attribute would change on more objects of a type than
  the system's ``change_threshold`` allows (:meth:`ConnectedSystem.change_limit` of the
  number of CSOs of that type): refused with ``change_threshold_exceeded``, naming the
  attribute, the counts and a few examples with their values.

An activity that allows changes (``jim run … --allow-changes``) goes through both.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count

from connectors.activity import RunFailed
from connectors.choices import CsoStatus, RpeiErrorType
from connectors.models import ConnectedSystem, ConnectorSpaceObject, describe_limit

#: Examples kept per attribute for the message of a refused import.
EXAMPLES = 3
#: Attributes named in one message at most.
MESSAGE_ATTRIBUTES = 5
#: Characters of one value shown in an example.
VALUE_PREVIEW = 40
#: Fewest existing objects for "every object had it, none has it now" to mean a lost
#: attribute (one object losing one value is an ordinary change).
LOST_MINIMUM = 2

_REMEDY = (
    'run again with --allow-changes (or use "Run again, allowing these changes" on this '
    "activity's page)"
)


@dataclass(frozen=True)
class ScreenedType:
    """What screening needs to know of an imported object type."""

    id: int
    name: str
    external_id_attribute: str
    #: attributes the schema knows for the type
    known: frozenset[str]
    #: attributes the source may lose without the import being refused
    optional: frozenset[str]


@dataclass
class _Example:
    external_id: str
    before: list[Any]
    after: list[Any]

    def __str__(self) -> str:
        return f"{self.external_id} ({_values(self.before)} → {_values(self.after)})"


@dataclass
class _TypeTally:
    #: existing CSOs the import met, changed or not
    matched: int = 0
    #: attribute → CSOs among those that had a value for it
    had: Counter[str] = field(default_factory=Counter)
    #: attribute → CSOs among those whose value it would change
    changed: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[_Example]] = field(default_factory=dict)
    #: attributes at least one imported object has
    present: set[str] = field(default_factory=set)


class ChangeTally:
    """What a staged import would change, per object type and attribute."""

    def __init__(self) -> None:
        self._types: dict[str, _TypeTally] = {}

    def _of(self, object_type: str) -> _TypeTally:
        tally = self._types.get(object_type)
        if tally is None:
            tally = self._types[object_type] = _TypeTally()
        return tally

    def imported(self, object_type: str, attributes: dict[str, list[Any]]) -> None:
        """An object read from the source (new or existing)."""
        self._of(object_type).present.update(attributes.keys())

    def existing(
        self,
        object_type: str,
        external_id: str,
        before: dict[str, list[Any]],
        after: dict[str, list[Any]],
        changed: list[str],
    ) -> None:
        """An existing CSO the import met, with the attributes it would change."""
        tally = self._of(object_type)
        tally.matched += 1
        tally.had.update(before.keys())
        if not changed:
            return
        tally.changed.update(changed)
        for name in changed:
            examples = tally.examples.setdefault(name, [])
            if len(examples) < EXAMPLES:
                examples.append(_Example(external_id, before.get(name, []), after.get(name, [])))

    def lost(self, screened: ScreenedType) -> list[tuple[str, int]]:
        """(attribute, objects that had it) for attributes every existing object had
        and no imported object has."""
        tally = self._types.get(screened.name)
        if tally is None or tally.matched < LOST_MINIMUM:
            return []
        return sorted(
            (name, count)
            for name, count in tally.had.items()
            if count == tally.matched
            and name not in tally.present
            and name not in screened.optional
            and name != screened.external_id_attribute
        )

    def over(self, object_type: str, limit: int) -> list[tuple[str, int, list[_Example]]]:
        """(attribute, objects it would change on, examples) above ``limit``, most first."""
        tally = self._types.get(object_type)
        if tally is None:
            return []
        return [
            (name, count, tally.examples.get(name, []))
            for name, count in tally.changed.most_common()
            if count > limit
        ]


# --------------------------------------------------------------------------- checks


def refuse_missing_columns(
    system: ConnectedSystem,
    types: list[ScreenedType],
    columns: dict[str, frozenset[str]],
) -> None:
    """Before any row is read: refuse a source whose columns lack an attribute the
    connector space holds values for (one query per missing column)."""
    problems = []
    for screened in types:
        present = columns.get(screened.name)
        if present is None:
            continue
        missing = sorted(screened.known - present - screened.optional)
        csos = ConnectorSpaceObject.objects.filter(
            connected_system=system, object_type_id=screened.id
        ).exclude(status=CsoStatus.OBSOLETE)
        for name in missing:
            holding = csos.filter(attributes__has_key=name).count()
            if holding:
                problems.append(
                    f"the source has no column {name!r} any more, and {holding} "
                    f"{screened.name} object(s) have values for it"
                )
    if problems:
        _refuse_lost(system, problems)


def screen(
    system: ConnectedSystem,
    types: list[ScreenedType],
    tally: ChangeTally,
    *,
    full: bool,
    columns_known: bool,
) -> None:
    """After the whole source is staged: refuse lost attributes and changes above the
    change threshold (raises :class:`RunFailed`)."""
    if full and not columns_known:
        problems = [
            f"no {screened.name} object has {name!r} any more, though all {count} had it"
            for screened in types
            for name, count in tally.lost(screened)
        ]
        if problems:
            _refuse_lost(system, problems)
    existing = _existing_counts(system, types)
    violations = []
    for screened in types:
        count = existing.get(screened.id, 0)
        limit = system.change_limit(count)
        for name, changed, examples in tally.over(screened.name, limit):
            limit_text = describe_limit(system.change_threshold, count, kind="change")
            violations.append(
                f"{name} on {changed} of {count} {screened.name} objects, more than the "
                f"limit {limit} ({limit_text})"
                + (f"; for example {', '.join(str(e) for e in examples)}" if examples else "")
            )
    if violations:
        shown = violations[:MESSAGE_ATTRIBUTES]
        more = len(violations) - len(shown)
        raise RunFailed(
            f"{system.name}: this import would change "
            + " — and ".join(shown)
            + (f"; and {more} more attribute(s)" if more else "")
            + ". Nothing was written. Check the source; if the changes are intended, "
            f"{_REMEDY}, or raise the system's change_threshold.",
            error_type=RpeiErrorType.CHANGE_THRESHOLD_EXCEEDED,
        )


def _refuse_lost(system: ConnectedSystem, problems: list[str]) -> None:
    raise RunFailed(
        f"{system.name}: " + "; ".join(problems) + ". Importing would remove those values "
        "from every object and export the removal, so nothing was written. Fix the "
        "source; if the attribute was dropped on purpose, mark it optional "
        f"(object_types[].attributes.NAME.optional: true) or {_REMEDY}.",
        error_type=RpeiErrorType.ATTRIBUTE_LOST,
    )


def _existing_counts(system: ConnectedSystem, types: list[ScreenedType]) -> dict[int, int]:
    """Object type id → its CSOs that are not obsolete (one query)."""
    rows = (
        ConnectorSpaceObject.objects.filter(
            connected_system=system, object_type_id__in=[t.id for t in types]
        )
        .exclude(status=CsoStatus.OBSOLETE)
        .values_list("object_type_id")
        .annotate(count=Count("id"))
    )
    return dict(rows)


def _values(values: list[Any]) -> str:
    if not values:
        return "none"
    text = ", ".join(str(value) for value in values)
    return repr(text if len(text) <= VALUE_PREVIEW else text[: VALUE_PREVIEW - 1] + "…")
