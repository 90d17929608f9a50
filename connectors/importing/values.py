"""How imported values are stored and compared.

External ids are compared in one text form everywhere (``str(value).strip()``, a
number as its digits): a connector that gives ``1001`` and a CSO that holds ``"1001"``
are the same object (the "numeric ids" pitfall). Attribute values are stored as JSON
(datetimes as ISO 8601 text, binary as base64). Multi-valued attributes compare as
sets: the order of values carries no meaning.

Some values cannot be stored at all: PostgreSQL refuses the NUL character (U+0000) in
text and in JSON, text must be encodable as UTF-8 (a surrogate code point, U+D800 to
U+DFFF, is not), and JSON has no NaN or infinity. :func:`unstorable` says which part
of an imported object is such a value, so that the import rejects that object alone
instead of failing on the page's write.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.base import ImportObject

_PLAIN_TYPES = (str, int, bool, float)
#: Characters PostgreSQL cannot store in text or JSON: NUL and the surrogate code points.
_UNSTORABLE_CHARACTER = re.compile(r"[\x00\ud800-\udfff]")


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


def unstorable(obj: ImportObject) -> str | None:
    """Why ``obj`` cannot be stored (its first unstorable part), or None when it can."""
    identifiers = (
        ("its external id", obj.external_id),
        ("its secondary external id", obj.secondary_external_id),
    )
    for label, identifier in identifiers:
        problem = unstorable_text(identifier) if type(identifier) is str else None
        if problem:
            return f"{label} holds {problem}"
    for name, values in obj.attributes.items():
        if not (name.isascii() and "\x00" not in name):
            problem = unstorable_text(name)
            if problem:
                return f"the attribute name {name!r} holds {problem}"
        for number, value in enumerate(values, start=1):
            if type(value) is str and value.isascii() and "\x00" not in value:
                continue  # the common case (isascii is constant time), without a call
            problem = _unstorable_value(value)
            if problem:
                which = f"value {number} of " if len(values) > 1 else ""
                return f"{which}attribute {name!r} holds {problem}"
    return None


def _unstorable_value(value: Any) -> str | None:
    if type(value) is str:
        return unstorable_text(value)
    if value is None or isinstance(value, bool | int | bytes | bytearray | dt.date):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"the number {value}, which JSON cannot hold"
    return unstorable_text(str(value))  # stored as its text (json_value)


def unstorable_text(text: str) -> str | None:
    """Why PostgreSQL cannot store ``text``, naming the character and where it is."""
    if text.isascii():  # constant time in CPython: most text takes this path
        if "\x00" not in text:
            return None
        position = text.index("\x00")
    else:
        match = _UNSTORABLE_CHARACTER.search(text)
        if match is None:
            return None
        position = match.start()
    code = ord(text[position])
    if code == 0:
        return f"a NUL character (U+0000) at character {position + 1}, which PostgreSQL refuses"
    return (
        f"a surrogate code point (U+{code:04X}) at character {position + 1}, "
        "which is not UTF-8 text"
    )


def storable_text(text: str) -> str:
    """``text`` with each character PostgreSQL cannot store written as its escape
    (``\\x00``, ``\\ud800``): for messages and identifiers that quote such values."""
    if text.isascii() and "\x00" not in text:
        return text
    return _UNSTORABLE_CHARACTER.sub(lambda match: ascii(match.group())[1:-1], text)
