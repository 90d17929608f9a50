"""The connector interface: what every connector (CSV, LDAP, …) offers the processors.

A connector does I/O only. It is built from a connected system's settings, opens a
connection, streams pages of objects (import), applies a batch of changes and reports
one result per change (export), and discovers its schema. It knows nothing of the
ORM, the metaverse or sync rules; the processors hand it plain descriptions
(:class:`ObjectTypeSpec`) and get plain data back.

Adding a connector is one module with a :class:`Connector` subclass and a line in
:mod:`connectors.registry`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal

# --------------------------------------------------------------------------- errors


class ConnectorError(Exception):
    """A connector could not do what was asked. ``transient`` errors are worth retrying."""

    transient: bool = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient


class ConnectorConfigurationError(ConnectorError):
    """The settings are wrong (missing path, bad base DN, unknown setting…)."""


class ConnectionFailed(ConnectorError):
    """The connected system cannot be reached or refused the credentials."""

    transient = True


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class SettingSpec:
    """A setting a connector declares. Secret settings are encrypted and never shown back."""

    name: str
    type: type = str
    required: bool = False
    secret: bool = False
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] = ()


# --------------------------------------------------------------------------- schema


@dataclass
class AttributeSpec:
    """An attribute of an object type, as the connector sees it."""

    name: str
    data_type: str = "text"  # connectors.choices.AttributeDataType values
    multivalued: bool = False
    writable: bool = True
    references: str = ""  # object type a reference points to, when known


@dataclass
class ObjectTypeSpec:
    """An object type to import or export, with what the processor knows of it."""

    name: str
    external_id_attribute: str
    secondary_external_id_attribute: str = ""
    container: str = ""
    attributes: dict[str, AttributeSpec] = field(default_factory=dict)


# --------------------------------------------------------------------------- import

ImportChange = Literal["upsert", "delete"]


@dataclass
class ImportObject:
    """One object read from a connected system.

    ``attributes`` maps attribute names to lists of values (already converted to the
    declared data type; reference values are the external id or DN the system gives).
    ``change`` is ``delete`` only in a delta import, for an object the system deleted;
    then ``external_id``/``secondary_external_id`` say which one.
    ``location`` says where the object came from (``hr.csv line 12``) for messages.
    """

    object_type: str
    attributes: dict[str, list[Any]]
    change: ImportChange = "upsert"
    external_id: str | None = None
    secondary_external_id: str | None = None
    location: str = ""
    duplicate_attribute_names: tuple[str, ...] = ()


@dataclass
class ImportObjectError:
    """An object the connector could not read (a malformed CSV row, a bad value)."""

    message: str
    location: str = ""
    external_id: str = ""
    error_type: str = "invalid_data"


@dataclass
class ImportPage:
    objects: list[ImportObject] = field(default_factory=list)
    errors: list[ImportObjectError] = field(default_factory=list)


@dataclass
class ImportStream:
    """The result of opening an import.

    ``watermark`` is the persisted connector data to save once every page has been
    processed; it is taken before the first page is read, so the next delta import
    sees exactly the changes made since. ``pages`` is a lazy iterator; a
    :class:`ConnectorError` raised while iterating fails the import.
    ``total`` is the number of objects expected, when the connector knows it.
    ``attribute_names`` says, per object type, which attributes the source has at all
    (a CSV file's header), when the connector can tell: the import refuses a source
    that lost one before reading a row.
    """

    watermark: dict[str, Any]
    pages: Iterator[ImportPage]
    total: int | None = None
    attribute_names: dict[str, frozenset[str]] | None = None


# --------------------------------------------------------------------------- export

ExportChangeType = Literal["create", "update", "delete"]
AttributeChangeKind = Literal["add", "update", "remove", "remove_all"]


class Secret:
    """A value to send that must never be shown (an initial password): its text is
    :meth:`reveal`'s only; printed or formatted it is a mask. A connector
    sends it over an encrypted connection or not at all."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    def reveal(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return "Secret(********)"

    __str__ = __repr__


@dataclass
class ExportAttributeChange:
    attribute: str
    change_type: AttributeChangeKind
    values: list[Any] = field(default_factory=list)


@dataclass
class ExportChange:
    """One pending export as the connector sees it.

    ``id`` is the pending export's id, echoed in the result. ``dn`` is the DN to
    create with; ``new_dn`` (update only) the DN to rename/move to. Reference values
    are already the target system's identifiers (DNs, external ids).
    """

    id: int
    change_type: ExportChangeType
    object_type: ObjectTypeSpec
    external_id: str | None = None
    dn: str | None = None
    new_dn: str | None = None
    attribute_changes: list[ExportAttributeChange] = field(default_factory=list)


@dataclass
class ExportResult:
    """The outcome of one :class:`ExportChange`."""

    id: int
    ok: bool
    external_id: str | None = None
    dn: str | None = None
    error: str = ""
    transient: bool = False


# --------------------------------------------------------------------------- connector


class Connector:
    """Base class of every connector. Use as a context manager around a session."""

    #: Registry name, e.g. ``"csv"``.
    name: ClassVar[str] = ""
    #: Human-readable name.
    label: ClassVar[str] = ""
    settings_spec: ClassVar[tuple[SettingSpec, ...]] = ()

    supports_full_import: ClassVar[bool] = True
    supports_delta_import: ClassVar[bool] = False
    supports_export: ClassVar[bool] = False
    supports_paging: ClassVar[bool] = False
    supports_schema_discovery: ClassVar[bool] = False
    #: Sends a create's initial password (a :class:`Secret`) where it belongs.
    supports_passwords: ClassVar[bool] = False

    def __init__(self, settings: dict[str, Any], *, base_dir: Path | None = None) -> None:
        """``settings`` are the connected system's settings and secrets, merged.

        ``base_dir`` is where relative file paths are resolved.
        """
        self.settings = {
            spec.name: spec.default for spec in self.settings_spec if spec.default is not None
        }
        self.settings.update(settings)
        self.base_dir = base_dir or Path.cwd()

    # -- session --------------------------------------------------------------

    def open(self) -> None:
        """Open the connection. Raises :class:`ConnectionFailed` when it cannot."""

    def close(self) -> None:
        """Close the connection; safe to call when not open."""

    def __enter__(self) -> Connector:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- capabilities -----------------------------------------------------------

    @classmethod
    def secret_setting_names(cls) -> frozenset[str]:
        return frozenset(spec.name for spec in cls.settings_spec if spec.secret)

    def secondary_id_key(self, value: str) -> str:
        """The normalised form of a secondary external id, for comparison.

        The LDAP connector normalises DNs (case, spacing, escaping); others compare
        the text as it is.
        """
        return value

    def secondary_id_error(self, value: str) -> str:
        """Why ``value`` is not a valid secondary external id ("" when it is).

        Sync asks this before provisioning with a generated DN, so an invalid one is an
        ``invalid_generated_external_id`` error on that object, not a failed export.
        """
        return "" if value.strip() else "it is empty"

    def discover_schema(self) -> list[ObjectTypeSpec]:
        raise ConnectorError(f"The {self.name} connector cannot discover its schema.")

    def import_objects(
        self,
        object_types: list[ObjectTypeSpec],
        *,
        delta: bool,
        persisted_data: dict[str, Any],
        page_size: int | None = None,
    ) -> ImportStream:
        """Start an import of the given object types; see :class:`ImportStream`."""
        raise NotImplementedError

    def export(self, changes: list[ExportChange]) -> list[ExportResult]:
        """Apply a batch of changes; one result per change, in any order.

        One failing change never stops the others. Raise :class:`ConnectionFailed`
        only when the system cannot be reached at all.
        """
        raise ConnectorError(f"The {self.name} connector cannot export.")

    # -- value lookup -----------------------------------------------------------

    #: True when :meth:`values_in_use` can ask the system which values are taken.
    supports_value_lookup: ClassVar[bool] = False

    def values_in_use(self, object_type: str, attribute: str, candidates: list[str]) -> set[str]:
        """Which of ``candidates`` an object of the system already has as a value of
        ``attribute`` — compared case-insensitively, returned as given in
        ``candidates``. Call on an open connector.

        Used by ``unique(..., check_target=true)`` to find values that exist in the
        system but not (yet) in its connector space. Each connector documents its cost
        (the LDAP connector: one search per 50 candidates; CSV: one read of the file
        per attribute and connector).
        """
        raise ConnectorError(
            f"The {self.name} connector cannot look up the values in use in the system."
        )
