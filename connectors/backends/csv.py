"""The CSV connector: one object type per file, read and written as real files."""

from __future__ import annotations

from connectors.base import Connector, SettingSpec


class CsvConnector(Connector):
    """Imports a CSV file (header discovery, declared types and references) and exports
    the whole resulting file atomically."""

    name = "csv"
    label = "CSV file"
    settings_spec = (
        SettingSpec("path", required=True, help="The CSV file; relative to the config file."),
        SettingSpec("delimiter", default=",", help="Field delimiter."),
        SettingSpec("multivalue_separator", default=";", help="Separator of multi-valued columns."),
        SettingSpec("encoding", default="utf-8-sig", help="File encoding (BOM or not)."),
    )
    supports_full_import = True
    supports_export = True
    supports_schema_discovery = True
