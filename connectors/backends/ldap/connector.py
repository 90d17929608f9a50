"""The LDAP connector: the :class:`~connectors.base.Connector` that ties the session,
the schema, import and export together (docs/connectors/ldap.md is its manual)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ldap3

from connectors.backends.ldap.dn import dn_key, dn_problem
from connectors.backends.ldap.exporting import Exporter
from connectors.backends.ldap.importing import Importer
from connectors.backends.ldap.schema import Schema
from connectors.backends.ldap.session import Session
from connectors.backends.ldap.settings import SETTINGS, LdapSettings
from connectors.backends.ldap.transport import Transport
from connectors.base import (
    Connector,
    ExportChange,
    ExportResult,
    ImportStream,
    ObjectTypeSpec,
)


class LdapConnector(Connector):
    """Imports and exports the entries of an LDAP directory (docs/connectors/ldap.md)."""

    name = "ldap"
    label = "LDAP directory"
    settings_spec = SETTINGS
    supports_full_import = True
    supports_delta_import = True
    supports_export = True
    supports_paging = True
    supports_schema_discovery = True

    def __init__(self, settings: dict[str, Any], *, base_dir: Path | None = None) -> None:
        super().__init__(settings, base_dir=base_dir)
        self.session = Session(LdapSettings(self.settings, self.base_dir))
        self._importer = Importer(self.session)
        self._exporter = Exporter(self.session)

    # -- session --------------------------------------------------------------------------

    def open(self) -> None:
        """Connect (TLS as configured), bind once, and check that ``base_dn`` exists."""
        self.session.open()

    def close(self) -> None:
        self.session.close()

    @property
    def connection(self) -> ldap3.Connection:
        """The open ldap3 connection; :class:`ConnectionFailed` once it broke."""
        return self.session.connection

    def _session(self) -> Transport:
        """The transport of the open connection."""
        return self.session.transport

    # -- schema and identifiers -----------------------------------------------------------

    def directory_schema(self) -> Schema:
        """The directory's schema, read once per connection."""
        return self.session.schema()

    def discover_schema(self) -> list[ObjectTypeSpec]:
        """The structural and auxiliary object classes, with their attributes; on
        Active Directory identified by objectGUID (read as GUID text)."""
        specs = self.directory_schema().object_type_specs()
        directory = self.session.directory
        if directory.is_active_directory:
            for spec in specs:
                spec.external_id_attribute = directory.external_id_attribute
                guid = spec.attributes.get("objectGUID")
                if guid is not None:
                    guid.data_type = "guid"
        return specs

    def secondary_id_key(self, value: str) -> str:
        """The normalised DN (:func:`~connectors.backends.ldap.dn.dn_key`)."""
        return dn_key(value)

    def secondary_id_error(self, value: str) -> str:
        """Why ``value`` cannot be an entry's DN
        (:func:`~connectors.backends.ldap.dn.dn_problem`)."""
        return dn_problem(value)

    # -- import and export ----------------------------------------------------------------

    def import_objects(
        self,
        object_types: list[ObjectTypeSpec],
        *,
        delta: bool,
        persisted_data: dict[str, Any],
        page_size: int | None = None,
    ) -> ImportStream:
        """Start a full or delta import; the watermark is taken before the first page."""
        return self._importer.import_objects(
            object_types, delta=delta, persisted_data=persisted_data, page_size=page_size
        )

    def _watermark(self) -> dict[str, Any]:
        """The watermark of an import starting now (for the next delta import)."""
        return self._importer.watermark()

    @property
    def newest_probes(self) -> int:
        """Probes the last search for a newest value took (the benchmark reports it)."""
        return self._importer.newest_probes

    def export(self, changes: list[ExportChange]) -> list[ExportResult]:
        """Apply the changes, pipelined; one result per change, in the order given."""
        return self._exporter.export(changes)
