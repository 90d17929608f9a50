"""LDAP values ⇄ JIM values: GeneralizedTime, booleans, base64 binary, GUIDs (text, or
Active Directory's 16 bytes), and the raw values of an entry as the transport decodes them.

Import converts by data type (the object type's declaration first, else the
schema's); export turns JIM values back into what the directory stores.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Any

_GENERALIZED_TIME_RE = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,](\d+))?(Z|[+-]\d{2}(?:\d{2})?)?$"
)
_UTC_TIME_RE = re.compile(r"^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(Z|[+-]\d{4})$")
#: Texts read as true and false (boolean values to export, boolean settings).
TRUE_TEXTS = frozenset({"true", "yes", "1"})
FALSE_TEXTS = frozenset({"false", "no", "0"})


def generalized_time_to_iso(text: str) -> str:
    """``20240131093000Z`` → ``2024-01-31T09:30:00+00:00`` (ValueError when malformed).

    Also reads UTCTime (``240131093000Z``). A time without a zone stays naive.
    """
    match = _GENERALIZED_TIME_RE.match(text)
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        try:
            return _iso(year, month, day, hour, minute, second, fraction, zone)
        except ValueError:
            pass  # perhaps a UTCTime
    utc = _UTC_TIME_RE.match(text)
    if not utc:
        raise ValueError(f"{text!r} is not a GeneralizedTime")
    short_year, month, day, hour, minute, second, zone = utc.groups()
    year = str(1900 + int(short_year) + (100 if int(short_year) < 50 else 0))
    return _iso(year, month, day, hour, minute, second, None, zone)


def _iso(
    year: str,
    month: str,
    day: str,
    hour: str,
    minute: str | None,
    second: str | None,
    fraction: str | None,
    zone: str | None,
) -> str:
    tz = None
    if zone == "Z":
        tz = dt.UTC
    elif zone:
        sign = 1 if zone[0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5] or 0)))
    value = dt.datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute or 0),
        int(second or 0),
        int((fraction or "0")[:6].ljust(6, "0")),
        tzinfo=tz,
    )
    return value.isoformat()


def to_generalized_time(value: Any) -> str:
    """A datetime, date or ISO 8601 text as GeneralizedTime (UTC, ``…Z``).

    GeneralizedTime text is returned as it is; ValueError otherwise.
    """
    if isinstance(value, str):
        text = value.strip()
        if _GENERALIZED_TIME_RE.match(text):
            return text
        value = dt.datetime.fromisoformat(text)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{value!r} is not a date and time")
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    fraction = f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
    return value.strftime("%Y%m%d%H%M%S") + fraction + "Z"


def decode_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("a value is not valid UTF-8 text") from None


def _to_integer(raw: bytes) -> int:
    text = decode_text(raw).strip()
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None


def _to_boolean(raw: bytes) -> bool:
    text = decode_text(raw).strip().upper()
    if text in ("TRUE", "FALSE"):
        return text == "TRUE"
    raise ValueError(f"{text!r} is not TRUE or FALSE")


def _to_datetime(raw: bytes) -> str:
    return generalized_time_to_iso(decode_text(raw).strip())


def _to_binary(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def guid_text(raw: bytes) -> str:
    """A GUID's canonical lowercase text (``1b4e28ba-2fa1-11d2-883f-0016d3cca427``):
    from its text (entryUUID), or from Active Directory's 16 bytes (objectGUID, stored
    as Windows stores a GUID: its first three fields little-endian)."""
    if len(raw) == 16:
        return str(uuid.UUID(bytes_le=raw))
    return decode_text(raw).strip().lower()


#: data type → converter of a raw LDAP value.
IMPORT_CONVERTERS: dict[str, Callable[[bytes], Any]] = {
    "text": decode_text,
    "reference": decode_text,
    "integer": _to_integer,
    "boolean": _to_boolean,
    "datetime": _to_datetime,
    "binary": _to_binary,
    "guid": guid_text,
}


def to_ldap_value(value: Any, data_type: str) -> str | bytes:
    """A JIM value as sent to the directory (ValueError when it cannot be)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if data_type == "boolean" and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in TRUE_TEXTS | FALSE_TEXTS:
            return "TRUE" if lowered in TRUE_TEXTS else "FALSE"
        raise ValueError(f"{value!r} is not a boolean")
    if data_type == "datetime" or isinstance(value, dt.date):
        return to_generalized_time(value)
    if data_type == "integer":
        return _integer_text(value)
    if data_type == "binary" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError(f"{value[:40]!r} is not base64-encoded binary") from None
    return str(value)


def _integer_text(value: Any) -> str:
    """An integer as LDAP's Integer syntax writes it (``512``); a float only when it is
    whole, text only when it is an integer (``'enabled'`` is refused here, as some
    directories would store it as 0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return str(int(text))
    raise ValueError(f"{value!r} is not an integer")


def raw_values(entry: dict[str, Any], attribute: str) -> list[bytes]:
    """The raw values of an entry's attribute, whatever the case of its name."""
    raw = entry["raw_attributes"]
    values = raw.get(attribute)
    if values is None:
        lowered = attribute.lower()
        values = next((v for k, v in raw.items() if k.lower() == lowered), None)
    return values or []
