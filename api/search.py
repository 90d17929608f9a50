"""Finding CSOs and MVOs by an attribute's value, and by a free search term.

Attribute values are one JSON document per object (``{"mail": ["a@example.org"]}``,
jsonb on PostgreSQL). ``?attribute=mail&value=a@example.org`` finds the objects that
hold that exact value among the attribute's values: jsonb containment (``@>``) on
PostgreSQL, which reads the objects of the filtered set once and counts nothing (the
lists are paged by cursor). A value that reads as a number or a boolean also matches
the number or boolean. SQLite (the demo) has no containment: there the value is found,
case-insensitively, in the attribute's JSON text.

The free ``?search=`` uses only indexed or narrow columns, as the admin's search does:
for CSOs the external id or DN (contains) or the id; for MVOs the display name
(contains), a join key (exact, any case: the indexed, normalised values sync rules
join on) or the id.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.db import connection
from django.db.models import Q

from metaverse.models import MetaverseObjectKey
from metaverse.sync.keys import normalise_key

#: What an attribute name may be (LDAP names, options such as ``;binary``, CSV headers).
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.;:-]{1,200}$")
#: The largest id a search term is taken as.
MAX_ID = 2**63 - 1


def typed_values(value: str) -> list[Any]:
    """``value`` as text, and as the number or boolean it reads as."""
    candidates: list[Any] = [value]
    if re.fullmatch(r"-?\d{1,18}", value):
        candidates.append(int(value))
    elif value in ("true", "false"):
        candidates.append(value == "true")
    return candidates


def holds_value(attribute: str, value: str) -> Q:
    """Objects whose ``attributes[attribute]`` holds ``value`` (see the module)."""
    match = Q()
    for candidate in typed_values(value):
        if connection.features.supports_json_field_contains:
            match |= Q(attributes__contains={attribute: [candidate]})
        else:
            for text in _json_texts(candidate):
                match |= Q(**{f"attributes__{attribute}__icontains": text})
    return match


def _json_texts(candidate: Any) -> list[str]:
    """How ``candidate`` can appear as an element of a JSON array's text (as Django
    writes JSON: compact when read back, ASCII with escapes)."""
    text = json.dumps(candidate)
    if isinstance(candidate, str):
        return [text]  # its quotes bound it
    return [f"[{text}]", f"[{text},", f",{text},", f",{text}]"]


def id_of(term: str) -> int | None:
    return int(term) if term.isdigit() and int(term) <= MAX_ID else None


def cso_search(term: str) -> Q:
    """CSOs whose external id or DN contains ``term``, or whose id it is."""
    match = Q(external_id__icontains=term) | Q(secondary_external_id__icontains=term)
    if (pk := id_of(term)) is not None:
        match |= Q(pk=pk)
    return match


def mvo_search(term: str) -> Q:
    """MVOs whose display name contains ``term``, whose join key it is, or whose id."""
    keys = MetaverseObjectKey.objects.filter(value=normalise_key(term)).values(
        "metaverse_object_id"
    )
    match = Q(display_name__icontains=term) | Q(pk__in=keys)
    if (pk := id_of(term)) is not None:
        match |= Q(pk=pk)
    return match
