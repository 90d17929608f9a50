"""The CSV connector: one object type per file, read and written as real files.

Import
    The header line names the columns; each is an attribute, text unless the object
    type declares another data type (integer, boolean, datetime, guid, binary,
    reference). Reference values are the external ids of the referenced objects.
    Declared multi-valued columns are split on ``multivalue_separator``. A blank cell
    means the attribute is absent. The file is streamed in pages and never loaded
    whole. A malformed row (wrong number of values, bad quoting, a value that does not
    convert to its declared type, bytes that are not valid in the encoding) becomes an
    :class:`~connectors.base.ImportObjectError` naming the file, line and column, and
    the rest of the file is still read; a file in another encoding than the configured
    one is reported so, line by line (a header that does not decode fails the run). A
    row whose external id cannot be read for sure (an undecodable byte, a NUL) gives
    its error without an external id, so deletion detection is skipped rather than
    taking its object for deleted. A NUL in a cell is read as it is; the import
    processor rejects the object (``invalid_data``), as PostgreSQL cannot store it.
    A NUL in the header is a configuration error, as below.
    A missing or unreadable file, a missing external id column or an empty file is a
    :class:`~connectors.base.ConnectorConfigurationError`: the run fails, nothing is
    guessed. UTF-8 files may start with a byte order mark or not.

Export
    :meth:`CsvConnector.export` reads the current file, applies the changes by external
    id and writes the whole resulting file atomically (a temporary file in the same
    folder, fsync, ``os.replace``): readers see the old file or the new one, never half
    a file. A cell is quoted when it holds the delimiter, a double quote, a carriage
    return or a line feed, whatever the file's line ending. What is written reads back
    unchanged: a value that would not is refused (that change fails, with the reason)
    rather than written as something else: a value of only whitespace (a blank cell is
    no value; one that starts with a TAB or CR is escaped, below, and kept), and in a
    multi-valued column a value containing the separator or starting or ending with
    whitespace (values are split and stripped), and a character the file's encoding
    lacks. An empty value is no value.

Spreadsheet formula injection
    A value written by JIM that starts with ``=``, ``+``, ``-``, ``@``, a TAB, a
    carriage return or the fullwidth forms of the first four (U+FF1D, U+FF0B, U+FF0D,
    U+FF20) is prefixed with a single quote (``'=SUM(A1)``) so that spreadsheet
    programs show it instead of running it; a value that starts with a quote followed
    by one of those characters or by another quote gets one more quote, so the
    escaping is reversible. Import removes that one quote again (``'=SUM(A1)`` is read
    as ``=SUM(A1)``, ``'-5`` in an integer column as ``-5``), so a value survives an
    export/import round trip unchanged. Other values, including a single leading quote
    before anything else (``'quoted'``), are read and written as they are. In a
    multi-valued column each value is escaped.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import os
import re
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

from connectors.base import (
    AttributeSpec,
    Connector,
    ConnectorConfigurationError,
    ConnectorError,
    ExportAttributeChange,
    ExportChange,
    ExportResult,
    ImportObject,
    ImportObjectError,
    ImportPage,
    ImportStream,
    ObjectTypeSpec,
    SettingSpec,
)

DEFAULT_PAGE_SIZE = 1000

#: First characters that make a spreadsheet program evaluate a cell (TAB and CR before
#: a formula, and the fullwidth forms of = + - @ that some programs also accept).
FORMULA_TRIGGERS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
_ESCAPED_AFTER_QUOTE = FORMULA_TRIGGERS | {"'"}

_INTEGER_RE = re.compile(r"^[+-]?\d+$")
_TRUE = frozenset({"true", "yes", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "f"})
_UTF8_BOM = b"\xef\xbb\xbf"


# --------------------------------------------------------------------------- escaping


def escape_formula(text: str) -> str:
    """``text`` as written to a file: prefixed with ``'`` when a spreadsheet would run it."""
    if text[:1] in FORMULA_TRIGGERS or (text[:1] == "'" and text[1:2] in _ESCAPED_AFTER_QUOTE):
        return "'" + text
    return text


def unescape_formula(text: str) -> str:
    """The value of a cell written by :func:`escape_formula` (other cells unchanged)."""
    if text[:1] == "'" and text[1:2] in _ESCAPED_AFTER_QUOTE:
        return text[1:]
    return text


# --------------------------------------------------------------------------- conversion


def _to_integer(text: str) -> int:
    text = text.strip()
    if not _INTEGER_RE.match(text):
        raise ValueError(f"{text!r} is not an integer")
    return int(text)


def _to_boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{text.strip()!r} is not a boolean (use true or false)")


def _to_datetime(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text.strip()!r} is not an ISO 8601 date or date and time "
            "(e.g. 2024-01-31 or 2024-01-31T09:00:00Z)"
        ) from None


def _to_guid(text: str) -> str:
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a GUID") from None


def _to_binary(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise ValueError(f"{text.strip()[:40]!r} is not base64-encoded binary") from None


def _to_reference(text: str) -> str:
    return text.strip()


#: data type → converter of a cell's text (text itself needs none).
CONVERTERS: dict[str, Callable[[str], Any]] = {
    "integer": _to_integer,
    "boolean": _to_boolean,
    "datetime": _to_datetime,
    "guid": _to_guid,
    "binary": _to_binary,
    "reference": _to_reference,
}


def format_value(value: Any) -> str:
    """A value as the text of a cell (before formula escaping)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


# --------------------------------------------------------------------------- reading


class _Lines:
    """The decoded physical lines of a file, fed to :func:`csv.reader`.

    Remembers the lines of the record being read (for line numbers and error
    messages) and can push lines back, so that after a malformed record spanning
    several lines (an unclosed quote) reading resumes at the line after its first.
    """

    def __init__(self, raw: IO[bytes], encoding: str, first_number: int) -> None:
        self._raw = raw
        self.encoding = encoding
        self._next_number = first_number
        self._pushed: deque[tuple[int, str, bool]] = deque()
        #: (line number, text, decoded cleanly) of the current record's lines.
        self.record: list[tuple[int, str, bool]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._pushed:
            line = self._pushed.popleft()
        else:
            raw = self._raw.readline()
            if not raw:
                raise StopIteration
            try:
                line = (self._next_number, raw.decode(self.encoding), True)
            except UnicodeDecodeError:
                line = (self._next_number, raw.decode(self.encoding, errors="replace"), False)
            self._next_number += 1
        self.record.append(line)
        return line[1]

    def push_back_all_but_first(self) -> None:
        self._pushed.extendleft(reversed(self.record[1:]))
        del self.record[1:]


@dataclass
class _Record:
    """One record of the file: its fields, or why it could not be parsed."""

    line: int
    fields: list[str]
    error: str = ""
    error_column: int = 0  # 1-based; 0 when unknown


def _scan_quote_problem(text: str, delimiter: str) -> tuple[int, str, list[str]]:
    """Find where a line's quoting goes wrong (the csv module does not say).

    Returns the 1-based column, a description, and the values before that column.
    """
    fields: list[str] = []
    position, length = 0, len(text)
    while True:
        column = len(fields) + 1
        if text[position : position + 1] == '"':
            value, cursor = [], position + 1
            while True:
                close = text.find('"', cursor)
                if close == -1:
                    return column, "a quoted value is never closed", fields
                value.append(text[cursor:close])
                if text[close + 1 : close + 2] == '"':
                    value.append('"')
                    cursor = close + 2
                    continue
                after = text[close + 1 : close + 2]
                if after not in (delimiter, "", "\r", "\n"):
                    return column, f"unexpected {after!r} after a closing quote", fields
                fields.append("".join(value))
                position = close + 1
                break
        else:
            end = text.find(delimiter, position)
            stop = length if end == -1 else end
            fields.append(text[position:stop].rstrip("\r\n"))
            position = stop
        if position >= length or text[position] != delimiter:
            return 0, "", fields
        position += 1


def _records(lines: _Lines, delimiter: str) -> Iterator[_Record]:
    """The records of a file; malformed ones become error records, reading goes on."""
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    while True:
        lines.record = []
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if not lines.record:
                return
            number, text, _ = lines.record[0]
            lines.push_back_all_but_first()
            column, problem, before = _scan_quote_problem(text, delimiter)
            yield _Record(number, before, error=problem or str(exc), error_column=column)
            continue
        if not "".join(fields).strip():
            continue  # a blank line
        record = lines.record
        if len(record) == 1 and record[0][2]:
            yield _Record(record[0][0], fields)  # the common case: one clean line
            continue
        bad = next((n for n, _, clean in record if not clean), 0)
        if bad:
            yield _Record(
                record[0][0], fields, error=f"line {bad} is not valid {lines.encoding} text"
            )
            continue
        yield _Record(record[0][0], fields)


@dataclass
class _Header:
    """The header line: column names (stripped), byte order mark, line ending."""

    names: list[str]
    bom: bool
    newline: str


class _Column(NamedTuple):
    """A named column and how its cells become values."""

    index: int
    name: str
    convert: Callable[[str], Any] | None
    multivalued: bool


def _object(
    record: _Record,
    spec: ObjectTypeSpec,
    columns: list[_Column],
    id_index: int,
    separator: str,
    location: str,
) -> ImportObject | ImportObjectError:
    """The object of a well-formed row, or the error of its first unconvertible value."""
    fields = record.fields
    attributes: dict[str, list[Any]] = {}
    for index, name, convert, multivalued in columns:
        cell = fields[index]
        if not cell or cell.isspace():
            continue
        try:
            if multivalued:
                parts = [part.strip() for part in cell.split(separator)]
                values = [unescape_formula(part) for part in parts if part]
                if convert is not None:
                    values = [convert(value) for value in values]
                if values:
                    attributes[name] = values
            else:
                if cell[0] == "'":
                    cell = unescape_formula(cell)
                attributes[name] = [cell if convert is None else convert(cell)]
        except ValueError as exc:
            return _row_error(f"column {index + 1} ({name}): {exc}", location, fields[id_index])
    return ImportObject(object_type=spec.name, attributes=attributes, location=location)


def _row_error(message: str, location: str, id_cell: str) -> ImportObjectError:
    """The error of a row, as it can be recorded: a NUL (which PostgreSQL refuses) in
    the message is written ``\\x00``, and the external id is given only when the cell
    names the object for sure — not when it holds a NUL or an undecodable byte (read
    as U+FFFD): then the object is unidentified, and deletion detection, which could
    take its CSO for deleted, is skipped.
    """
    external_id = unescape_formula(id_cell.strip())
    if "\x00" in external_id or "\ufffd" in external_id:
        external_id = ""
    return ImportObjectError(message.replace("\x00", "\\x00"), location, external_id)


def _record_error(
    record: _Record, names: list[str], id_index: int, location: str
) -> ImportObjectError:
    """A row the csv parser rejected (quoting, encoding), with the column when known.

    The external id is given when it was read before the problem, so that deletion
    detection knows the object is still there.
    """
    where = ""
    if record.error_column:
        name = names[record.error_column - 1] if record.error_column <= len(names) else ""
        where = f"column {record.error_column}" + (f" ({name})" if name else "") + ": "
    readable = record.fields[id_index] if id_index < len(record.fields) else ""
    return _row_error(f"{where}{record.error}", location, readable)


def _width_error(
    record: _Record, names: list[str], id_index: int, location: str
) -> ImportObjectError:
    """A row with more or fewer values than the header has columns."""
    found, expected = len(record.fields), len(names)
    if found > expected:
        detail = f"column {expected + 1} is beyond the header's {expected} columns"
    else:
        missing = ", ".join(names[found:])
        columns = (
            f"column {expected}" if found + 1 == expected else f"columns {found + 1} to {expected}"
        )
        detail = f"{columns} ({missing}) missing"
    readable = record.fields[id_index] if id_index < found else ""
    return _row_error(
        f"{found} values where the header has {expected} columns: {detail}", location, readable
    )


# --------------------------------------------------------------------------- connector


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
    supports_value_lookup = True

    def __init__(self, settings: dict[str, Any], *, base_dir: Path | None = None) -> None:
        super().__init__(settings, base_dir=base_dir)
        self._open_files: list[IO[bytes]] = []
        #: the values of each column asked for by :meth:`values_in_use`, case-folded
        self._values_in_use: dict[str, frozenset[str]] = {}

    # -- settings -------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The file, a relative path resolved against ``base_dir``."""
        value = str(self.settings.get("path") or "").strip()
        if not value:
            raise ConnectorConfigurationError("The csv connector needs a 'path' setting.")
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def delimiter(self) -> str:
        delimiter = str(self.settings.get("delimiter") or ",")
        if delimiter == "\\t":
            delimiter = "\t"
        if len(delimiter) != 1:
            raise ConnectorConfigurationError(
                f"delimiter must be one character, not {delimiter!r}."
            )
        return delimiter

    @property
    def separator(self) -> str:
        separator = str(self.settings.get("multivalue_separator") or ";")
        if separator == self.delimiter:
            raise ConnectorConfigurationError(
                "multivalue_separator must differ from the delimiter."
            )
        return separator

    @property
    def encoding(self) -> str:
        """The codec lines are decoded with (a UTF-8 byte order mark is handled apart)."""
        encoding = str(self.settings.get("encoding") or "utf-8-sig")
        if self._bom_encoding or encoding.lower().replace("_", "-") in ("utf8", "utf-8"):
            return "utf-8"
        try:
            "".encode(encoding)
        except LookupError:
            raise ConnectorConfigurationError(f"unknown encoding {encoding!r}.") from None
        return encoding

    @property
    def _bom_encoding(self) -> bool:
        """True for ``utf-8-sig``: new files are written with a byte order mark."""
        encoding = str(self.settings.get("encoding") or "utf-8-sig")
        return encoding.lower().replace("_", "-") in ("utf-8-sig", "utf8-sig")

    # -- session --------------------------------------------------------------------

    def open(self) -> None:
        """Check the settings; raises ConnectorConfigurationError when they are wrong."""
        self.path  # noqa: B018 - validates the setting
        self.separator  # noqa: B018
        self.encoding  # noqa: B018

    def close(self) -> None:
        """Close files left open by an import that was not read to its end."""
        while self._open_files:
            self._open_files.pop().close()

    def _open_for_reading(self) -> IO[bytes]:
        path = self.path
        try:
            raw = path.open("rb")
        except FileNotFoundError:
            raise ConnectorConfigurationError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise ConnectorConfigurationError(f"{path} is a folder, not a file") from None
        except OSError as exc:
            raise ConnectorConfigurationError(f"{path}: cannot read: {exc.strerror}") from None
        self._open_files.append(raw)
        return raw

    def _release(self, raw: IO[bytes]) -> None:
        raw.close()
        if raw in self._open_files:
            self._open_files.remove(raw)

    def _read_header(self, raw: IO[bytes]) -> _Header:
        first = raw.readline()
        bom = first.startswith(_UTF8_BOM)
        if bom:
            first = first[len(_UTF8_BOM) :]
        if not first.strip():
            raise ConnectorConfigurationError(f"{self.path.name} is empty: it has no header line")
        try:
            text = first.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise ConnectorConfigurationError(
                f"{self.path.name} line 1: the header is not valid {self.encoding} ({exc.reason})"
            ) from None
        try:
            names = next(csv.reader([text], delimiter=self.delimiter, strict=True))
        except csv.Error as exc:
            raise ConnectorConfigurationError(
                f"{self.path.name} line 1: the header cannot be read: {exc}"
            ) from None
        for number, name in enumerate(names, start=1):
            if "\x00" in name:
                raise ConnectorConfigurationError(
                    f"{self.path.name} line 1: column {number} ({name!r}) holds a NUL "
                    "character, which cannot name an attribute; fix the header"
                )
        newline = "\r\n" if first.endswith(b"\r\n") else "\n"
        return _Header([name.strip() for name in names], bom, newline)

    # -- schema ---------------------------------------------------------------------

    def discover_schema(self) -> list[ObjectTypeSpec]:
        """One object type named after the file; every header column a text attribute.

        The external id is taken to be the first column; a configuration names it.
        """
        raw = self._open_for_reading()
        try:
            header = self._read_header(raw)
        finally:
            self._release(raw)
        names = [name for name in dict.fromkeys(header.names) if name]
        return [
            ObjectTypeSpec(
                name=self.path.stem,
                external_id_attribute=names[0],
                attributes={name: AttributeSpec(name=name) for name in names},
            )
        ]

    # -- import ---------------------------------------------------------------------

    def import_objects(
        self,
        object_types: list[ObjectTypeSpec],
        *,
        delta: bool,
        persisted_data: dict[str, Any],
        page_size: int | None = None,
    ) -> ImportStream:
        """Stream the file in pages of ``page_size`` rows (objects and errors).

        The watermark is ``{}``: a CSV file has no change log; every import reads it
        all. ``total`` counts the file's lines, for progress.
        """
        if delta:
            raise ConnectorConfigurationError(
                "The csv connector has no delta import; run a full import."
            )
        if len(object_types) != 1:
            named = ", ".join(spec.name for spec in object_types) or "none"
            raise ConnectorConfigurationError(
                f"A CSV file holds one object type; {len(object_types)} were selected ({named})."
            )
        spec = object_types[0]
        raw = self._open_for_reading()
        try:
            header = self._read_header(raw)
            columns = self._columns(header.names, spec)
        except BaseException:
            self._release(raw)
            raise
        pages = self._pages(raw, spec, header.names, columns, page_size or DEFAULT_PAGE_SIZE)
        return ImportStream(
            watermark={},
            pages=pages,
            total=max(self._count_lines() - 1, 0),
            attribute_names={spec.name: frozenset(column.name for column in columns)},
        )

    def values_in_use(self, object_type: str, attribute: str, candidates: list[str]) -> set[str]:
        """The candidates found in the file's column ``attribute`` (every value of a
        multi-valued cell counts). The file is read once per column and connector —
        once per sync run — and a file without that column uses none."""
        used = self._values_in_use.get(attribute)
        if used is None:
            used = self._values_in_use[attribute] = self._column_values(attribute)
        return {candidate for candidate in candidates if candidate.casefold() in used}

    def _column_values(self, attribute: str) -> frozenset[str]:
        if not self.path.exists():
            return frozenset()
        raw = self._open_for_reading()
        try:
            header = self._read_header(raw)
            if attribute not in header.names:
                return frozenset()
            index = header.names.index(attribute)
            separator = self.separator
            values: set[str] = set()
            for record in _records(_Lines(raw, self.encoding, 2), self.delimiter):
                if index < len(record.fields):
                    cell = unescape_formula(record.fields[index].strip())
                    values.update(v.strip().casefold() for v in cell.split(separator) if v.strip())
            return frozenset(values)
        finally:
            self._release(raw)

    def _count_lines(self) -> int:
        """Physical lines in the file: the expected object count for progress (cheap)."""
        count, last = 0, b"\n"
        with self.path.open("rb") as raw:
            while chunk := raw.read(1 << 20):
                count += chunk.count(b"\n")
                last = chunk[-1:]
        return count + (last != b"\n")

    def _columns(self, names: list[str], spec: ObjectTypeSpec) -> list[_Column]:
        if spec.external_id_attribute not in names:
            raise ConnectorConfigurationError(
                f"{self.path.name} has no column {spec.external_id_attribute!r} "
                f"(the external id of {spec.name}); its columns are: "
                + ", ".join(name for name in names if name)
            )
        columns, seen = [], set()
        for index, name in enumerate(names):
            if not name or name in seen:
                continue  # unnamed columns are ignored; duplicates are reported per object
            seen.add(name)
            attribute = spec.attributes.get(name) or AttributeSpec(name)
            converter = CONVERTERS.get(attribute.data_type)
            columns.append(_Column(index, name, converter, attribute.multivalued))
        return columns

    def _pages(
        self,
        raw: IO[bytes],
        spec: ObjectTypeSpec,
        names: list[str],
        columns: list[_Column],
        page_size: int,
    ) -> Iterator[ImportPage]:
        file_name = self.path.name
        id_index = names.index(spec.external_id_attribute)
        duplicates = tuple(sorted({name for name in names if name and names.count(name) > 1}))
        separator = self.separator
        page = ImportPage()
        try:
            for record in _records(_Lines(raw, self.encoding, 2), self.delimiter):
                location = f"{file_name} line {record.line}"
                if record.error:
                    page.errors.append(_record_error(record, names, id_index, location))
                elif len(record.fields) != len(names):
                    page.errors.append(_width_error(record, names, id_index, location))
                else:
                    item = _object(record, spec, columns, id_index, separator, location)
                    if isinstance(item, ImportObjectError):
                        page.errors.append(item)
                    else:
                        item.duplicate_attribute_names = duplicates
                        page.objects.append(item)
                if len(page.objects) + len(page.errors) >= page_size:
                    yield page
                    page = ImportPage()
            if page.objects or page.errors:
                yield page
        finally:
            self._release(raw)

    # -- export ---------------------------------------------------------------------

    def export(self, changes: list[ExportChange]) -> list[ExportResult]:
        """Apply creates, updates and deletes by external id; rewrite the file atomically.

        One result per change, in the order of ``changes``. A change that cannot be
        applied (no such row, a create whose external id exists, a value that would not
        read back: see the module doc) fails alone. When the current file cannot be read
        faithfully (bad quoting, bad encoding) no change is applied and every change
        fails with the reason: JIM never rewrites a file it could not read.
        """
        if not changes:
            return []
        plan = _ExportPlan(changes, self.separator, self.encoding)
        try:
            self._rewrite(plan)
        except _RewriteRefused as exc:
            return plan.fail_all(str(exc))
        except UnicodeEncodeError as exc:  # a new column's name (values are checked)
            text = exc.object[exc.start : exc.end]
            return plan.fail_all(f"{text!r} cannot be written in {self.path.name}'s {exc.encoding}")
        except OSError as exc:
            raise ConnectorError(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        return plan.results()

    def _rewrite(self, plan: _ExportPlan) -> None:
        """Write the resulting file beside the current one, then swap it in."""
        path = self.path
        folder = path.parent
        if not folder.is_dir():
            raise ConnectorConfigurationError(f"{folder}: no such folder")
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding=self.encoding, newline="") as out:
                if path.exists():
                    self._rewrite_existing(plan, out)
                else:
                    self._write_new(plan, out)
                out.flush()
                os.fsync(out.fileno())
            if path.exists():
                os.chmod(temp_name, path.stat().st_mode & 0o7777)
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        _fsync_folder(folder)

    def _rewrite_existing(self, plan: _ExportPlan, out: IO[str]) -> None:
        raw = self._open_for_reading()
        try:
            header = self._read_header(raw)
            if plan.id_attribute not in header.names:
                raise _RewriteRefused(
                    f"{self.path.name} has no column {plan.id_attribute!r} (the external id)"
                )
            names = header.names + [n for n in plan.attribute_names() if n not in header.names]
            if header.bom:
                out.write("\ufeff")
            writer = _Writer(out, self.delimiter, header.newline)
            writer.writerow(names)
            id_index = names.index(plan.id_attribute)
            for record in _records(_Lines(raw, self.encoding, 2), self.delimiter):
                if record.error:
                    raise _RewriteRefused(
                        f"{self.path.name} line {record.line} cannot be read ({record.error}); "
                        "fix the file before exporting to it"
                    )
                fields = record.fields + [""] * (len(names) - len(record.fields))
                external_id = unescape_formula(fields[id_index].strip())
                row = plan.apply_to_row(external_id, dict(zip(names, fields, strict=False)))
                if row is not None:
                    writer.writerow([row.get(name, "") for name in names] + fields[len(names) :])
            for row in plan.new_rows():
                writer.writerow([row.get(name, "") for name in names])
        finally:
            self._release(raw)

    def _write_new(self, plan: _ExportPlan, out: IO[str]) -> None:
        names = [plan.id_attribute] + [
            name for name in plan.attribute_names() if name != plan.id_attribute
        ]
        if self._bom_encoding:
            out.write("\ufeff")
        writer = _Writer(out, self.delimiter, "\n")
        writer.writerow(names)
        for row in plan.new_rows():
            writer.writerow([row.get(name, "") for name in names])


class _Writer:
    """Writes rows, each cell quoted when it holds the delimiter, a quote, CR or LF.

    (:func:`csv.writer` quotes only the characters of its own line ending: a lone CR
    in a file written with LF line endings was left bare, and the file could no
    longer be read.)
    """

    def __init__(self, out: IO[str], delimiter: str, newline: str) -> None:
        self._out = out
        self._delimiter = delimiter
        self._newline = newline
        self._special = (delimiter, '"', "\r", "\n")

    def writerow(self, cells: list[str]) -> None:
        self._out.write(self._delimiter.join(map(self._cell, cells)) + self._newline)

    def _cell(self, text: str) -> str:
        if any(character in text for character in self._special):
            return '"' + text.replace('"', '""') + '"'
        return text


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class _RewriteRefused(Exception):
    """The current file cannot be rewritten faithfully; no change is applied."""


class _ExportPlan:
    """The changes of one export batch, grouped by external id, and their results.

    Each external id's changes are applied in order to its row's current state: the
    row where the id is first found in the file, or nothing (then the result, if any,
    is appended at the end of the file).
    """

    def __init__(self, changes: list[ExportChange], separator: str, encoding: str) -> None:
        self.separator = separator
        self.encoding = encoding
        self.spec = changes[0].object_type
        self.id_attribute = self.spec.external_id_attribute
        self._order = [change.id for change in changes]
        self._results: dict[int, ExportResult] = {}
        self._by_id: dict[str, list[ExportChange]] = {}
        self._done: set[str] = set()
        for change in changes:
            external_id = self._external_id(change)
            if external_id:
                self._by_id.setdefault(external_id, []).append(change)
            else:
                self._fail(change, f"no value for {self.id_attribute!r}, the external id column")

    def _external_id(self, change: ExportChange) -> str:
        if change.change_type == "create":
            for attribute_change in change.attribute_changes:
                if (
                    attribute_change.attribute == self.id_attribute
                    and attribute_change.change_type in ("add", "update")
                    and attribute_change.values
                ):
                    return format_value(attribute_change.values[0]).strip()
        return (change.external_id or "").strip()

    def attribute_names(self) -> list[str]:
        """Every attribute the batch writes, in first-seen order (new columns)."""
        names: dict[str, None] = {}
        for changes in self._by_id.values():
            for change in changes:
                for attribute_change in change.attribute_changes:
                    names[attribute_change.attribute] = None
        return list(names)

    def apply_to_row(self, external_id: str, row: dict[str, str]) -> dict[str, str] | None:
        """The row after this batch's changes to it (None: deleted). Changes apply to an
        id's first row; later rows with the same id are kept as they are."""
        if external_id not in self._by_id or external_id in self._done:
            return row
        self._done.add(external_id)
        return self._apply(self._by_id[external_id], row)

    def new_rows(self) -> Iterator[dict[str, str]]:
        """Rows for the external ids not found in the file (creates), in change order."""
        for external_id, changes in self._by_id.items():
            if external_id not in self._done:
                self._done.add(external_id)
                row = self._apply(changes, None)
                if row is not None:
                    yield row

    def _apply(
        self, changes: list[ExportChange], row: dict[str, str] | None
    ) -> dict[str, str] | None:
        for change in changes:
            if change.change_type == "delete":
                row = None
                self._results[change.id] = ExportResult(change.id, ok=True)
                continue
            if change.change_type == "create" and row is not None:
                self._fail(change, f"a row with {self.id_attribute} {self._key(row)!r} exists")
                continue
            if change.change_type == "update" and row is None:
                self._fail(change, f"no row with {self.id_attribute} {change.external_id!r}")
                continue
            try:
                row = _apply_attribute_changes(
                    dict(row or {}),
                    change.attribute_changes,
                    self.spec,
                    self.separator,
                    self.encoding,
                )
            except ValueError as exc:
                self._fail(change, str(exc))
                continue
            self._results[change.id] = ExportResult(change.id, ok=True, external_id=self._key(row))
        return row

    def _key(self, row: dict[str, str]) -> str:
        return unescape_formula(row.get(self.id_attribute, "").strip())

    def _fail(self, change: ExportChange, error: str) -> None:
        self._results[change.id] = ExportResult(change.id, ok=False, error=error)

    def results(self) -> list[ExportResult]:
        return [self._results[change_id] for change_id in self._order]

    def fail_all(self, error: str) -> list[ExportResult]:
        """Every change failed (those already failed keep their own reason)."""
        return [
            self._results[change_id]
            if change_id in self._results and not self._results[change_id].ok
            else ExportResult(change_id, ok=False, error=error)
            for change_id in self._order
        ]


def _apply_attribute_changes(
    row: dict[str, str],
    attribute_changes: list[ExportAttributeChange],
    spec: ObjectTypeSpec,
    separator: str,
    encoding: str,
) -> dict[str, str]:
    """Apply add/update/remove/remove_all to a row's cells; ValueError when impossible."""
    for attribute_change in attribute_changes:
        name = attribute_change.attribute
        attribute = spec.attributes.get(name)
        multivalued = bool(attribute and attribute.multivalued)
        new = [text for v in attribute_change.values if v is not None and (text := format_value(v))]
        cell = row.get(name, "")
        if multivalued:
            current = [unescape_formula(p.strip()) for p in cell.split(separator) if p.strip()]
        else:
            current = [unescape_formula(cell)] if cell and not cell.isspace() else []
        kind = attribute_change.change_type
        if kind == "update":
            current = new
        elif kind == "add":
            current = current + [value for value in new if value not in current]
        elif kind == "remove":
            current = [value for value in current if value not in new]
        else:  # remove_all
            current = []
        if len(current) > 1 and not multivalued:
            raise ValueError(f"{name} is single-valued but was given {len(current)} values")
        cells = [escape_formula(value) for value in current]
        for value, cell in zip(current, cells, strict=True):
            _check_writable(name, value, cell, separator if multivalued else None, encoding)
        row[name] = separator.join(cells)
    return row


def _check_writable(name: str, value: str, cell: str, separator: str | None, encoding: str) -> None:
    """Raise ValueError when ``value`` (as ``cell``) would not read back unchanged.

    A blank cell is no value; in a multi-valued column (``separator`` given) values
    are split on the separator and stripped of surrounding whitespace; a character
    the file's encoding lacks cannot be written at all. Such values are refused
    rather than written as something else.
    """
    try:
        cell.encode(encoding)
    except UnicodeEncodeError as exc:
        character = exc.object[exc.start]
        raise ValueError(
            f"a value of {name} holds {character!r} (U+{ord(character):04X}), which the "
            f"file's encoding {encoding} cannot hold"
        ) from None
    if separator is not None and separator in value:
        raise ValueError(f"a value of {name} contains the multi-value separator {separator!r}")
    if cell.isspace():
        raise ValueError(f"a value of {name} is only whitespace, which reads back as no value")
    if separator is not None and cell != cell.strip():
        raise ValueError(
            f"a value of {name} ({value!r}) starts or ends with whitespace, which a "
            "multi-valued column does not keep"
        )
