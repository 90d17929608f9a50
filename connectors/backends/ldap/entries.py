"""Raw LDAP entries of one object type read into import objects and pages: values
converted by data type (the object type's declaration first, else the schema's),
Active Directory's objectGUID as its canonical GUID text, password attributes left
out unless declared, a value that cannot be converted an import error naming the
entry and the attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from connectors.backends.ldap.ranges import UNREAD
from connectors.backends.ldap.schema import Schema
from connectors.backends.ldap.values import IMPORT_CONVERTERS, decode_text
from connectors.base import ImportObject, ImportObjectError, ImportPage, ObjectTypeSpec

#: Attributes not imported unless the object type declares them.
SECRET_ATTRIBUTES = frozenset({"userpassword", "authpassword"})
#: Active Directory's GUIDs: Octet String in its schema, always read as GUID text (the
#: external id's canonical form, whatever data type is declared).
GUID_ATTRIBUTES = frozenset({"objectguid"})


class EntryReader:
    """Turns the raw entries of one object type into import objects."""

    def __init__(self, spec: ObjectTypeSpec, schema: Schema) -> None:
        self.spec = spec
        self.schema = schema
        self.declared = {name.lower(): attribute for name, attribute in spec.attributes.items()}
        self.id_attribute = spec.external_id_attribute
        self._converters: dict[str, Callable[[bytes], Any] | None] = {}

    def converter(self, name: str) -> Callable[[bytes], Any] | None:
        """How values of ``name`` are converted; None when the attribute is not imported."""
        lowered = name.lower()
        base_name = lowered.split(";", 1)[0]
        declared = self.declared.get(lowered) or self.declared.get(base_name)
        if base_name in GUID_ATTRIBUTES:
            data_type: str | None = "guid"
        elif declared is not None:
            data_type = declared.data_type
        elif base_name in SECRET_ATTRIBUTES:
            data_type = None
        else:
            attribute = self.schema.attribute(name)
            data_type = attribute.data_type if attribute else "text"
        converter = IMPORT_CONVERTERS.get(data_type, decode_text) if data_type else None
        self._converters[name] = converter
        return converter

    def read(self, entry: dict[str, Any]) -> ImportObject | ImportObjectError:
        dn = entry["dn"]
        attributes: dict[str, list[Any]] = {}
        problem = entry.get(UNREAD, "")  # its ranges could not be read to the end
        converters = self._converters
        for name, encoded in entry["raw_attributes"].items():
            convert = converters[name] if name in converters else self.converter(name)
            if convert is None or not encoded:
                continue
            try:
                if convert is decode_text:  # most values: no call per value
                    attributes[name] = [raw.decode("utf-8") for raw in encoded]
                else:
                    attributes[name] = [convert(raw) for raw in encoded]
            except UnicodeDecodeError:
                problem = problem or f"{name}: a value is not valid UTF-8 text"
            except ValueError as exc:
                problem = problem or f"{name}: {exc}"
        external_id = self._external_id(dn, attributes)
        if problem:
            return ImportObjectError(problem, location=dn, external_id=external_id or "")
        return ImportObject(
            object_type=self.spec.name,
            attributes=attributes,
            external_id=external_id,
            secondary_external_id=dn,
            location=dn,
        )

    def _external_id(self, dn: str, attributes: dict[str, list[Any]]) -> str | None:
        if self.id_attribute.lower() == "dn":
            return dn
        values = attributes.get(self.id_attribute)
        if values is None:
            values = next(
                (v for k, v in attributes.items() if k.lower() == self.id_attribute.lower()), None
            )
        return str(values[0]) if values else None


def page_of(reader: EntryReader, entries: list[dict[str, Any]]) -> ImportPage:
    page = ImportPage()
    for entry in entries:
        item = reader.read(entry)
        if isinstance(item, ImportObjectError):
            page.errors.append(item)
        else:
            page.objects.append(item)
    return page


def pages_of(objects: list[ImportObject], page_size: int) -> Iterator[ImportPage]:
    for start in range(0, len(objects), page_size):
        yield ImportPage(objects=objects[start : start + page_size])
