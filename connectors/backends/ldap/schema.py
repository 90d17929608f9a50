"""The directory's schema, read from its subschema entry: object classes become object
types, attribute syntaxes become data types.

Structural and auxiliary classes are object types whose attributes are the MUST and
MAY attributes of the class and its superclasses, and those its DIT content rule adds
(the rule's own, and its auxiliary classes' — Active Directory publishes ``user``'s
``objectSid`` only there), plus ``entryUUID`` and ``modifyTimestamp``; SINGLE-VALUE
makes an attribute single-valued, and an attribute's equality rule says whether the
directory compares its values ignoring case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ldap3.core.exceptions import LDAPSchemaError

from connectors.backends.ldap.internals import (
    AttributeTypeInfo,
    DitContentRuleInfo,
    ObjectClassInfo,
)
from connectors.base import AttributeSpec, ConnectorError, ObjectTypeSpec

#: LDAP syntax OID → JIM data type (anything else is text).
SYNTAX_DATA_TYPES = {
    "1.3.6.1.4.1.1466.115.121.1.12": "reference",  # DN
    "1.3.6.1.4.1.1466.115.121.1.27": "integer",
    "1.3.6.1.4.1.1466.115.121.1.7": "boolean",
    "1.3.6.1.4.1.1466.115.121.1.24": "datetime",  # GeneralizedTime
    "1.3.6.1.4.1.1466.115.121.1.53": "datetime",  # UTCTime
    "1.3.6.1.4.1.1466.115.121.1.40": "binary",  # Octet String
    "1.3.6.1.4.1.1466.115.121.1.28": "binary",  # JPEG
    "1.3.6.1.4.1.1466.115.121.1.5": "binary",  # Binary
    "1.3.6.1.4.1.1466.115.121.1.4": "binary",  # Audio
    "1.3.6.1.4.1.1466.115.121.1.8": "binary",  # Certificate
    "1.3.6.1.4.1.1466.115.121.1.9": "binary",  # Certificate List
    "1.3.6.1.4.1.1466.115.121.1.10": "binary",  # Certificate Pair
    "1.3.6.1.4.1.1466.115.121.1.23": "binary",  # Fax
    "1.3.6.1.4.1.1466.115.121.1.49": "binary",  # Supported Algorithm
    "1.3.6.1.1.16.1": "guid",  # UUID
}
#: Operational attributes every import asks for.
OPERATIONAL_ATTRIBUTES = ("entryUUID", "modifyTimestamp")


@dataclass(frozen=True)
class AttributeType:
    """An attribute type of the directory's schema, resolved along its SUP chain."""

    name: str
    data_type: str
    multivalued: bool
    writable: bool
    operational: bool
    case_insensitive: bool

    def spec(self) -> AttributeSpec:
        return AttributeSpec(
            self.name,
            data_type=self.data_type,
            multivalued=self.multivalued,
            writable=self.writable,
        )


@dataclass(frozen=True)
class ObjectClass:
    name: str
    kind: str  # STRUCTURAL, AUXILIARY, ABSTRACT
    superiors: tuple[str, ...]
    must: tuple[str, ...]
    may: tuple[str, ...]


@dataclass(frozen=True)
class ContentRule:
    """A DIT content rule: what entries of a structural class may have beyond the class."""

    auxiliaries: tuple[str, ...]
    must: tuple[str, ...]
    may: tuple[str, ...]


class Schema:
    """The directory's object classes and attribute types, by any of their names."""

    def __init__(
        self,
        object_classes: list[str],
        attribute_types: list[str],
        content_rules: Sequence[str] = (),
    ) -> None:
        try:
            raw_types = AttributeTypeInfo.from_definition(attribute_types)
            raw_classes = ObjectClassInfo.from_definition(object_classes)
            raw_rules = DitContentRuleInfo.from_definition(list(content_rules))
        except LDAPSchemaError as exc:
            raise ConnectorError(f"the directory's schema cannot be read: {exc}") from None
        infos = {id(info): info for info in raw_types.values()}
        by_name: dict[str, Any] = {}
        for info in infos.values():
            for name in [*(info.name or []), info.oid]:
                by_name[name.lower()] = info
        self._attribute_types: dict[str, AttributeType] = {}
        for key, info in by_name.items():
            self._attribute_types[key] = self._resolve(info, by_name)
        self._classes: dict[str, ObjectClass] = {}
        for info in {id(i): i for i in raw_classes.values()}.values():
            names = [*(info.name or []), info.oid]
            object_class = ObjectClass(
                name=names[0],
                kind=info.kind or "STRUCTURAL",
                superiors=tuple(info.superior or ()),
                must=tuple(info.must_contain or ()),
                may=tuple(info.may_contain or ()),
            )
            for name in names:
                self._classes[name.lower()] = object_class
        self._content_rules: dict[str, ContentRule] = {}
        for rule in {id(r): r for r in raw_rules.values()}.values():
            content_rule = ContentRule(
                auxiliaries=tuple(rule.auxiliary_classes or ()),
                must=tuple(rule.must_contain or ()),
                may=tuple(rule.may_contain or ()),
            )
            for name in [*(rule.name or []), rule.oid]:
                self._content_rules[name.lower()] = content_rule

    @staticmethod
    def _resolve(info: Any, by_name: dict[str, Any]) -> AttributeType:
        syntax, equality, current, seen = None, None, info, set()
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            syntax = syntax or current.syntax
            equality = equality or (current.equality[0] if current.equality else None)
            superior = current.superior[0].lower() if current.superior else None
            current = by_name.get(superior) if superior else None
        operational = info.usage not in (None, "USER_APPLICATION")
        return AttributeType(
            name=(info.name or [info.oid])[0],
            data_type=SYNTAX_DATA_TYPES.get(syntax or "", "text"),
            multivalued=not info.single_value,
            writable=not (operational or info.no_user_modification),
            operational=operational,
            case_insensitive=bool(equality)
            and ("ignore" in equality.lower() or equality.lower() == "distinguishednamematch"),
        )

    def attribute(self, name: str) -> AttributeType | None:
        return self._attribute_types.get(name.split(";", 1)[0].lower())

    def object_class(self, name: str) -> ObjectClass | None:
        return self._classes.get(name.lower())

    def class_chain(self, name: str) -> list[str]:
        """The class and all its superclasses, superclasses first (``top`` … ``name``)."""
        chain: list[str] = []

        def visit(class_name: str) -> None:
            object_class = self.object_class(class_name)
            if object_class is None or object_class.name in chain:
                return
            for superior in object_class.superiors:
                visit(superior)
            chain.append(object_class.name)

        visit(name)
        return chain

    def _attribute_names(self, object_class: ObjectClass) -> list[str]:
        """The MUST and MAY attributes of the class and its superclasses, then those of
        its DIT content rule and the rule's auxiliary classes (with theirs)."""
        classes = self.class_chain(object_class.name)
        rule = self._content_rules.get(object_class.name.lower())
        if rule is not None:
            for auxiliary in rule.auxiliaries:
                classes.extend(c for c in self.class_chain(auxiliary) if c not in classes)
        names = [
            name
            for class_name in classes
            for member in [self.object_class(class_name)]
            if member is not None
            for name in (*member.must, *member.may)
        ]
        if rule is not None:
            names.extend((*rule.must, *rule.may))
        return names

    def object_type_specs(self) -> list[ObjectTypeSpec]:
        """Structural and auxiliary classes as object types, by name."""
        specs = []
        for object_class in {id(c): c for c in self._classes.values()}.values():
            if object_class.kind == "ABSTRACT":
                continue
            attributes: dict[str, AttributeSpec] = {}
            for attribute_name in self._attribute_names(object_class):
                attribute = self.attribute(attribute_name)
                if attribute is not None:
                    attributes.setdefault(attribute.name, attribute.spec())
            for attribute_name in OPERATIONAL_ATTRIBUTES:
                attribute = self.attribute(attribute_name)
                if attribute is not None:
                    attributes.setdefault(attribute.name, attribute.spec())
            specs.append(
                ObjectTypeSpec(
                    name=object_class.name,
                    external_id_attribute="entryUUID",
                    secondary_external_id_attribute="dn",
                    attributes=attributes,
                )
            )
        return sorted(specs, key=lambda spec: spec.name.lower())
