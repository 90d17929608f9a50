"""How imported values are stored and compared.

External ids are compared in one text form everywhere (``str(value).strip()``, a
number as its digits): a connector that gives ``1001`` and a CSO that holds ``"1001"``
are the same object (the "numeric ids" pitfall). Attribute values are stored as JSON
(datetimes as ISO 8601 text, binary as base64). Multi-valued attributes compare as
sets: the order of values carries no meaning.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

_PLAIN_TYPES = (str, int, bool, float)


def external_id_key(value: Any) -> str:
    """The normalised text form of an external id ("" when there is none)."""
    if type(value) is str:
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value).strip()


def json_value(value: Any) -> Any:
    """A value as stored in a CSO's attribute document."""
    if isinstance(value, _PLAIN_TYPES):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def data_type_of(value: Any) -> str:
    """The attribute data type a value suggests (for attributes the schema lacks)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, dt.datetime | dt.date):
        return "datetime"
    if isinstance(value, bytes | bytearray):
        return "binary"
    return "text"


def json_values(values: list[Any]) -> list[Any]:
    """Every value of a list as stored (a copy; ``None`` values dropped)."""
    return [
        value if type(value) is str else json_value(value) for value in values if value is not None
    ]


def same_values(old: list[Any] | None, new: list[Any] | None) -> bool:
    """True when two stored value lists mean the same (multi-valued: as sets)."""
    if old == new:
        return True
    if not old or not new:
        return not old and not new
    if len(old) == 1 and len(new) == 1:
        return False
    return {_hashable(v) for v in old} == {_hashable(v) for v in new}


def _hashable(value: Any) -> Any:
    # bool and int compare equal in Python (True == 1); keep them apart.
    return (type(value), value) if isinstance(value, _PLAIN_TYPES) else repr(value)


def changed_attributes(old: dict[str, list[Any]], new: dict[str, list[Any]]) -> list[str]:
    """The names of the attributes whose values differ between two documents."""
    if old == new:
        return []
    return sorted(
        name for name in old.keys() | new.keys() if not same_values(old.get(name), new.get(name))
    )
