"""A connected system's schema as the connector sees it, and back.

Processors hand connectors plain descriptions (:class:`~connectors.base.ObjectTypeSpec`),
never ORM objects. This module turns the database's object types and attributes into
those descriptions, builds a system's connector, and stores what a connector
discovered (schema discovery, attributes seen by an import) back into the database in
bulk.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from connectors.base import AttributeSpec, Connector, ConnectorError, ObjectTypeSpec
from connectors.choices import AttributeWritability
from connectors.models import ConnectedSystem, ConnectedSystemAttribute, ConnectedSystemObjectType
from connectors.registry import get_connector_class

logger = logging.getLogger(__name__)


def connector_for(system: ConnectedSystem) -> Connector:
    """The system's connector, with its settings and secrets, relative paths resolved
    against the folder of the configuration file that defined the system."""
    connector_class = get_connector_class(system.connector)
    base_dir = Path(system.config_base_dir) if system.config_base_dir else None
    return connector_class(system.all_settings(), base_dir=base_dir)


def object_type_spec(object_type: ConnectedSystemObjectType) -> ObjectTypeSpec:
    """The connector-side description of a database object type.

    Prefetch ``attributes`` when converting many object types.
    """
    return ObjectTypeSpec(
        name=object_type.name,
        external_id_attribute=object_type.external_id_attribute,
        secondary_external_id_attribute=object_type.secondary_external_id_attribute,
        container=object_type.container,
        attributes={
            attribute.name: AttributeSpec(
                name=attribute.name,
                data_type=attribute.data_type,
                multivalued=attribute.multivalued,
                writable=attribute.writability != AttributeWritability.READ_ONLY,
                references=attribute.references,
            )
            for attribute in object_type.attributes.all()
        },
    )


def selected_object_types(system: ConnectedSystem) -> list[ConnectedSystemObjectType]:
    """The system's object types selected for import, with their attributes prefetched."""
    return list(
        ConnectedSystemObjectType.objects.filter(connected_system=system, selected=True)
        .prefetch_related("attributes")
        .order_by("name")
    )


def add_attributes(
    object_type_id: int, data_types: Mapping[str, str], *, multivalued: Iterable[str] = ()
) -> int:
    """Add the attributes an import saw that the schema does not know yet.

    ``data_types`` maps each name to the type its values suggested (text for
    strings); new attributes are multi-valued when multiple values were seen.
    Existing attributes are left as they are (their declaration wins). Returns how
    many were added. One query to read, one to write.
    """
    multi = set(multivalued)
    known = set(
        ConnectedSystemAttribute.objects.filter(object_type_id=object_type_id).values_list(
            "name", flat=True
        )
    )
    new = [
        ConnectedSystemAttribute(
            object_type_id=object_type_id,
            name=name,
            data_type=data_types[name],
            multivalued=name in multi,
        )
        for name in sorted(set(data_types) - known)
    ]
    ConnectedSystemAttribute.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def discovered_attributes(
    connector: Connector, object_type_names: list[str]
) -> dict[str, dict[str, AttributeSpec]]:
    """What the connector's schema says of the attributes of these object types
    (object type → attribute → spec); empty when it cannot discover its schema.

    A connector with one discovered type and one type asked for (a CSV file) answers
    for it whatever the names.
    """
    if not connector.supports_schema_discovery:
        return {}
    try:
        discovered = connector.discover_schema()
    except ConnectorError:
        logger.warning(
            "%s: schema discovery failed; new attributes are typed by value",
            connector.name,
            exc_info=True,
        )
        return {}
    if len(discovered) == 1 and len(object_type_names) == 1:
        return {object_type_names[0]: discovered[0].attributes}
    return {spec.name: spec.attributes for spec in discovered if spec.name in object_type_names}


def store_discovered_schema(system: ConnectedSystem, discovered: list[ObjectTypeSpec]) -> int:
    """Add the attributes of discovered object types to the matching database types.

    A discovered type matches the database type of the same name; a system with one
    object type and one discovered type (a CSV file) matches them whatever the names.
    Discovered data types and multiplicity are kept for new attributes; declared ones
    are never overwritten. Returns how many attributes were added.
    """
    types = {t.name: t for t in ConnectedSystemObjectType.objects.filter(connected_system=system)}
    if len(types) == 1 and len(discovered) == 1:
        pairs = [(next(iter(types.values())), discovered[0])]
    else:
        pairs = [(types[spec.name], spec) for spec in discovered if spec.name in types]
    added = 0
    for object_type, spec in pairs:
        known = set(object_type.attributes.values_list("name", flat=True))
        new = [
            ConnectedSystemAttribute(
                object_type=object_type,
                name=attribute.name,
                data_type=attribute.data_type,
                multivalued=attribute.multivalued,
                writability=(
                    AttributeWritability.READ_WRITE
                    if attribute.writable
                    else AttributeWritability.READ_ONLY
                ),
                references=attribute.references,
            )
            for attribute in spec.attributes.values()
            if attribute.name not in known
        ]
        ConnectedSystemAttribute.objects.bulk_create(new, ignore_conflicts=True)
        added += len(new)
    return added


def refresh_schema(system: ConnectedSystem) -> int:
    """Discover the system's schema through its connector and store new attributes.

    Raises :class:`~connectors.base.ConnectorError` when the connector cannot.
    """
    with connector_for(system) as connector:
        discovered = connector.discover_schema()
    return store_discovered_schema(system, discovered)
