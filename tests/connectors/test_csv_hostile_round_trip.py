"""The CSV target writes files that read back (issue 11), on real files, no database.

A property test generates hostile text values (CR, LF, CRLF, delimiters, quotes,
formula triggers and their fullwidth forms, leading quotes, NUL, unicode, whitespace)
for a single-valued and a multi-valued column, exports them with the CSV connector —
creating rows, then rewriting the file with updates — and reads the file back with
the CSV connector: every value the export accepted reads back equal, the export
refuses only values a CSV cell cannot hold (whitespace a cell or a multi-valued
column does not keep, the multi-value separator), and no cell of the file, as any
CSV reader sees it, starts a spreadsheet formula.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.backends.csv import CsvConnector, escape_formula, unescape_formula
from connectors.base import (
    AttributeSpec,
    ExportAttributeChange,
    ExportChange,
    ExportResult,
    ObjectTypeSpec,
)

SPEC = ObjectTypeSpec(
    "person",
    "employeeId",
    attributes={"groups": AttributeSpec("groups", multivalued=True)},
)
#: What makes a spreadsheet run a cell, written out here rather than imported.
TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
PIECES = (
    *TRIGGERS,
    *("\n", "\r\n", "\x00", ",", ";", "|", '"', "'", "''", '""'),
    *(" ", "\u00a0", "\u3000", "\u2028", "\x1c", "\ufeff"),
    *("é", "😀", "שלום", "a", "Smith", "=1+1", '=HYPERLINK("http://x")', "@SUM(A1)", "-5"),
)
#: Hostile text: runs of the pieces above, or any text PostgreSQL could have stored.
TEXT = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=6).map("".join),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8),
)
#: External ids start with formula triggers and quotes, but carry no edge whitespace
#: (an external id is compared stripped).
ID_PREFIXES = ("", "=", "+", "-", "@", "'", "''", "\uff1d", '"', ",", ";", "|")


def exporting(folder: Path, delimiter: str, separator: str) -> CsvConnector:
    return CsvConnector(
        {"path": "target.csv", "delimiter": delimiter, "multivalue_separator": separator},
        base_dir=folder,
    )


def create(change_id: int, external_id: str, note: str, groups: list[str]) -> ExportChange:
    return ExportChange(
        id=change_id,
        change_type="create",
        object_type=SPEC,
        attribute_changes=[
            ExportAttributeChange("employeeId", "add", [external_id]),
            ExportAttributeChange("note", "update", [note]),
            ExportAttributeChange("groups", "add", groups),
        ],
    )


def update(change_id: int, external_id: str, **values: list[str]) -> ExportChange:
    return ExportChange(
        id=change_id,
        change_type="update",
        object_type=SPEC,
        external_id=external_id,
        attribute_changes=[
            ExportAttributeChange(name, "update", value) for name, value in values.items()
        ],
    )


def may_be_refused(values: list[str], separator: str | None) -> bool:
    """A value a CSV cell cannot hold: only whitespace (a blank cell is no value), or in
    a multi-valued column the separator or whitespace at an edge (values are stripped)."""
    for value in values:
        if value and value.isspace():
            return True
        if separator is not None and (separator in value or value != value.strip()):
            return True
    return False


def as_read(external_id: str, note: str, groups: list[str]) -> dict[str, list[str]]:
    """The attributes an import gives for what was exported (an empty value is none)."""
    attributes = {"employeeId": [external_id], "note": [note], "groups": [g for g in groups if g]}
    return {name: values for name, values in attributes.items() if values != [""] and values}


def read_back(connector: CsvConnector) -> dict[str, dict[str, list]]:
    stream = connector.import_objects([SPEC], delta=False, persisted_data={})
    pages = list(stream.pages)
    assert [error for page in pages for error in page.errors] == []
    objects = [obj for page in pages for obj in page.objects]
    by_id = {obj.attributes["employeeId"][0]: obj.attributes for obj in objects}
    assert len(by_id) == len(objects)
    return by_id


def cells(path: Path, delimiter: str) -> list[list[str]]:
    """The file's rows as Python's own csv reader sees them (strict)."""
    text = path.read_bytes().decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))


def check_results(results: list[ExportResult], refusable: dict[int, bool]) -> set[int]:
    """The ids of the changes applied; each refusal is one the format explains."""
    for result in results:
        if not result.ok:
            assert refusable[result.id], result
            assert "whitespace" in result.error or "separator" in result.error, result.error
    return {result.id for result in results if result.ok}


@settings(max_examples=150, derandomize=True, deadline=None, database=None)
@given(
    layout=st.sampled_from(
        [(",", ";", "\n"), (",", ";", "\r\n"), (";", "|", "\n"), ("\t", ",", "\r\n")]
    ),
    rows=st.lists(
        st.tuples(st.sampled_from(ID_PREFIXES), TEXT, st.lists(TEXT, max_size=3), TEXT),
        min_size=1,
        max_size=5,
    ),
)
def test_what_the_export_writes_reads_back_equal_and_starts_no_formula(
    tmp_path_factory, layout, rows
):
    delimiter, separator, newline = layout
    folder = tmp_path_factory.mktemp("target")
    path = folder / "target.csv"
    path.write_text(f"employeeId{delimiter}note{delimiter}groups{newline}", newline="")
    connector = exporting(folder, delimiter, separator)
    ids = [f"{prefix}{n}" for n, (prefix, _, _, _) in enumerate(rows)]

    created = check_results(
        connector.export(
            [create(n, ids[n], note, groups) for n, (_, note, groups, _) in enumerate(rows)]
        ),
        {
            n: may_be_refused([note], None) or may_be_refused(groups, separator)
            for n, (_, note, groups, _) in enumerate(rows)
        },
    )
    updated = check_results(
        connector.export([update(n, ids[n], note=[rows[n][3]]) for n in sorted(created)]),
        {n: may_be_refused([rows[n][3]], None) for n in created},
    )

    expected = {
        ids[n]: as_read(ids[n], new_note if n in updated else note, groups)
        for n, (_, note, groups, new_note) in enumerate(rows)
        if n in created
    }
    assert read_back(connector) == expected
    header, *body = cells(path, delimiter)
    assert header == ["employeeId", "note", "groups"]
    assert len(body) == len(expected)
    for row in body:
        assert all(cell[:1] not in TRIGGERS for cell in row), row


# --------------------------------------------------------------------------- examples


def test_a_carriage_return_before_a_formula_is_quoted_escaped_and_reads_back(tmp_path):
    """The case seen: an HR department of "\\r=1+1" made the target unreadable."""
    path = tmp_path / "target.csv"
    path.write_bytes(b"employeeId,department\n1,Sales\n")
    connector = exporting(tmp_path, ",", ";")

    [result] = connector.export([update(1, "1", department=["\r=1+1"])])

    assert result.ok
    assert path.read_bytes() == b'employeeId,department\n1,"\'\r=1+1"\n'
    assert read_back(connector)["1"]["department"] == ["\r=1+1"]
    [again] = connector.export([update(2, "1", department=["Sales"])])  # rewritable
    assert again.ok


@pytest.mark.parametrize(
    "value",
    ["\t=1+1", "\r=1+1", "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20SUM(A1)", "'\t", "'\uff1dx"],
)
def test_tab_carriage_return_and_fullwidth_triggers_are_escaped_reversibly(value):
    escaped = escape_formula(value)

    assert escaped == "'" + value
    assert unescape_formula(escaped) == value


def test_a_value_the_file_cannot_hold_is_refused_and_the_file_is_left_as_it_was(tmp_path):
    path = tmp_path / "target.csv"
    path.write_bytes(b"employeeId,note,groups\n1,a,x\n")
    connector = exporting(tmp_path, ",", ";")

    results = connector.export([update(1, "1", note=[" "]), update(2, "1", groups=[" y"])])

    assert [(r.ok, r.error) for r in results] == [
        (False, "a value of note is only whitespace, which reads back as no value"),
        (
            False,
            "a value of groups (' y') starts or ends with whitespace, which a multi-valued "
            "column does not keep",
        ),
    ]
    assert path.read_bytes() == b"employeeId,note,groups\n1,a,x\n"


def test_a_character_the_files_encoding_lacks_is_refused_and_the_rest_written(tmp_path):
    path = tmp_path / "target.csv"
    path.write_bytes("employeeId,note\n1,é\n2,b\n".encode("latin-1"))
    connector = CsvConnector({"path": "target.csv", "encoding": "latin-1"}, base_dir=tmp_path)

    results = connector.export([update(1, "1", note=["Zoë 😀"]), update(2, "2", note=["Zoë"])])

    assert [(r.ok, r.error) for r in results] == [
        (
            False,
            "a value of note holds '😀' (U+1F600), which the file's encoding latin-1 cannot hold",
        ),
        (True, ""),
    ]
    assert path.read_bytes() == "employeeId,note\n1,é\n2,Zoë\n".encode("latin-1")


def test_a_new_column_the_files_encoding_cannot_name_fails_the_batch_unwritten(tmp_path):
    path = tmp_path / "target.csv"
    path.write_bytes(b"employeeId,note\n1,a\n")
    connector = CsvConnector({"path": "target.csv", "encoding": "ascii"}, base_dir=tmp_path)

    [result] = connector.export([update(1, "1", prénom=["Ann"])])

    assert (result.ok, result.error) == (False, "'é' cannot be written in target.csv's ascii")
    assert path.read_bytes() == b"employeeId,note\n1,a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.csv"]
