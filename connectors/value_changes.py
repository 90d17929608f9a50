"""What an RPEI records of a change: each changed attribute's values, old and new.

The import and sync processors have both documents of an object in memory when they
find what changed; :func:`value_changes` turns the changed attributes into the
``changes`` of the RPEI's details (beside ``attributes``, their names), so the console
can show each attribute once, old → new, without asking anyone what it was before:

* a single-valued attribute: ``{"old": [value], "new": [value]}`` (``[]`` for none);
* a multi-valued one: ``{"added": [...], "removed": [...], "multivalued": true}`` —
  a group of 5,000 members that gained one records that one, not 10,000 values;
* a reference attribute also has ``"ref": "cso"`` (values are connector-space object
  ids, or the DN or external id as the system gave it while it is unresolved) or
  ``"ref": "mvo"`` (metaverse object ids): the page resolves names, in one query;
* ``"rule"``: the sync rule that made the change, when the processor knows it.

A record stays small whatever the object holds: at most :data:`MAX_VALUES` values per
side (``more_added``/``more_removed``/``more_old``/``more_new`` count those left out)
and text cut at :data:`MAX_TEXT` characters with an ellipsis. Secrets are never
recorded: an attribute whose name looks like one (``userPassword``, ``unicodePwd``,
the audit trail's secret names) records :data:`MASK` for a value, ``[]`` for none —
that it changed, never what it is.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache
from typing import Any

from audit.recording import MASK, is_secret_name

#: Values recorded per side of a change.
MAX_VALUES = 20
#: Characters of a text value recorded; longer text is cut, with an ellipsis.
MAX_TEXT = 200
#: Attribute names listed in an RPEI's message before "and N more".
MESSAGE_NAMES = 3

Document = Mapping[str, list[Any]]


def value_changes(
    names: Iterable[str],
    old: Document,
    new: Document,
    *,
    multivalued: Collection[str] = (),
    references: Collection[str] = (),
    reference_kind: str = "",
    rules: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The record of each named attribute's change from ``old`` to ``new``.

    ``references`` are the reference attributes, whose values are ids of objects of
    ``reference_kind`` (``"cso"`` or ``"mvo"``); ``rules`` the sync rule behind each
    change, by attribute.
    """
    record: dict[str, dict[str, Any]] = {}
    for name in names:
        before, after = old.get(name) or [], new.get(name) or []
        if is_secret(name):
            entry: dict[str, Any] = {"old": _masked(before), "new": _masked(after)}
        elif name in multivalued or len(before) > 1 or len(after) > 1:
            entry = _set_change(before, after)
        else:
            entry = {}
            _bounded(entry, "old", before)
            _bounded(entry, "new", after)
        if name in references:
            entry["ref"] = reference_kind
        if rules and name in rules:
            entry["rule"] = rules[name]
        record[name] = entry
    return record


@lru_cache(maxsize=4096)  # a run asks about the same few names for every object
def is_secret(name: str) -> bool:
    """True for an attribute whose values are never recorded (passwords and the like)."""
    return is_secret_name(name) or "pwd" in name.lower()


def changes_message(names: list[str]) -> str:
    """A short line for an RPEI's message: "lastName, title changed", or
    "5 attributes changed: department, lastName, title and 2 more"."""
    if not names:
        return ""
    if len(names) <= MESSAGE_NAMES:
        return f"{', '.join(names)} changed"
    listed = ", ".join(names[:MESSAGE_NAMES])
    return f"{len(names)} attributes changed: {listed} and {len(names) - MESSAGE_NAMES} more"


def _set_change(before: list[Any], after: list[Any]) -> dict[str, Any]:
    """A multi-valued attribute's change as the values added and removed (the order of
    values carries no meaning)."""
    old_keys = {_key(value) for value in before}
    new_keys = {_key(value) for value in after}
    entry: dict[str, Any] = {"multivalued": True}
    _bounded(entry, "added", [value for value in after if _key(value) not in old_keys])
    _bounded(entry, "removed", [value for value in before if _key(value) not in new_keys])
    return entry


def _bounded(entry: dict[str, Any], side: str, values: list[Any]) -> None:
    entry[side] = [_short(value) for value in values[:MAX_VALUES]]
    if len(values) > MAX_VALUES:
        entry[f"more_{side}"] = len(values) - MAX_VALUES


def _short(value: Any) -> Any:
    if type(value) is str:
        return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _masked(values: list[Any]) -> list[str]:
    return [MASK] if values else []


def _key(value: Any) -> Any:
    # bool and int compare equal in Python (True == 1); keep them apart.
    return (type(value), value) if isinstance(value, str | int | float | bool) else repr(value)
