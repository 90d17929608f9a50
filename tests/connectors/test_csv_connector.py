"""The CSV connector on real files: reading (types, references, paging, malformed rows)
and writing (atomic rewrite, formula escaping, round trips). No database involved."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors.backends.csv import CsvConnector, escape_formula, unescape_formula
from connectors.base import (
    AttributeSpec,
    ConnectorConfigurationError,
    ExportAttributeChange,
    ExportChange,
    ObjectTypeSpec,
)

PERSON = ObjectTypeSpec(
    "person",
    "employeeId",
    attributes={
        "age": AttributeSpec("age", "integer"),
        "active": AttributeSpec("active", "boolean"),
        "startDate": AttributeSpec("startDate", "datetime"),
        "groups": AttributeSpec("groups", multivalued=True),
        "managerId": AttributeSpec("managerId", "reference", references="person"),
    },
)


def connector(tmp_path: Path, **settings) -> CsvConnector:
    return CsvConnector({"path": "hr.csv", **settings}, base_dir=tmp_path)


def write(tmp_path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path = tmp_path / "hr.csv"
    path.write_bytes(text.encode(encoding))
    return path


def read_all(tmp_path: Path, spec: ObjectTypeSpec = PERSON, page_size: int | None = None, **s):
    stream = connector(tmp_path, **s).import_objects(
        [spec], delta=False, persisted_data={}, page_size=page_size
    )
    pages = list(stream.pages)
    objects = [o for p in pages for o in p.objects]
    errors = [e for p in pages for e in p.errors]
    return pages, objects, errors


# --------------------------------------------------------------------------- reading


def test_header_columns_are_discovered_as_text_attributes(tmp_path):
    write(tmp_path, "employeeId,firstName,lastName\n1,Ann,Lee\n")

    [discovered] = connector(tmp_path).discover_schema()

    assert discovered.name == "hr"
    assert discovered.external_id_attribute == "employeeId"
    assert list(discovered.attributes) == ["employeeId", "firstName", "lastName"]
    assert {a.data_type for a in discovered.attributes.values()} == {"text"}


def test_declared_types_references_and_multivalued_columns_are_converted(tmp_path):
    write(
        tmp_path,
        "employeeId,age,active,startDate,groups,managerId,note\n"
        "1001,42,true,2024-01-31,staff; vpn ;,1000,  spaced  \n",
    )

    _, [person], errors = read_all(tmp_path)

    assert errors == []
    assert person.attributes["age"] == [42]
    assert person.attributes["active"] == [True]
    assert person.attributes["startDate"][0].isoformat() == "2024-01-31T00:00:00"
    assert person.attributes["groups"] == ["staff", "vpn"]
    assert person.attributes["managerId"] == ["1000"]  # an external id, resolved later
    assert person.attributes["note"] == ["  spaced  "]  # text is kept as written
    assert person.location == "hr.csv line 2"


def test_blank_cells_are_absent_attributes(tmp_path):
    write(tmp_path, "employeeId,age,groups,note\n1001,, ;  , \n")

    _, [person], _ = read_all(tmp_path)

    assert person.attributes == {"employeeId": ["1001"]}


def test_a_file_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    write(tmp_path, "\ufeffemployeeId,firstName\r\n1001,Zoë\r\n", encoding="utf-8")

    _, [person], errors = read_all(tmp_path)

    assert errors == []
    assert person.attributes == {"employeeId": ["1001"], "firstName": ["Zoë"]}


def test_a_file_without_byte_order_mark_reads_the_same(tmp_path):
    write(tmp_path, "employeeId,firstName\n1001,Zoë\n")

    _, [person], _ = read_all(tmp_path)

    assert person.attributes == {"employeeId": ["1001"], "firstName": ["Zoë"]}


def test_pages_hold_page_size_rows_and_stream_in_order(tmp_path):
    rows = "".join(f"{n},Name{n}\n" for n in range(1, 8))
    write(tmp_path, "employeeId,firstName\n" + rows)

    pages, objects, _ = read_all(tmp_path, page_size=3)

    assert [len(p.objects) for p in pages] == [3, 3, 1]
    assert [o.attributes["employeeId"][0] for o in objects] == [str(n) for n in range(1, 8)]


def test_the_stream_is_lazy_and_announces_its_total(tmp_path):
    write(tmp_path, "employeeId\n" + "".join(f"{n}\n" for n in range(100)))

    stream = connector(tmp_path).import_objects(
        [PERSON], delta=False, persisted_data={}, page_size=10
    )

    assert stream.total == 100
    assert stream.watermark == {}
    assert len(next(stream.pages).objects) == 10


def test_malformed_rows_are_reported_with_file_line_and_column_and_the_rest_imports(tmp_path):
    write(
        tmp_path,
        "employeeId,firstName,age\n"
        "1,Ann,30\n"
        "2,Bob\n"  # too few values
        "3,Cy,40,extra\n"  # too many
        '4,"Di"ane,50\n'  # text after a closing quote
        "5,Ed,fifty\n"  # not an integer
        '6,"Fay,60\n'  # a quote never closed: swallows the lines below
        "7,Gus,70\n"
        "8,Hal,80\n",
    )

    _, objects, errors = read_all(tmp_path)

    assert [o.attributes["employeeId"] for o in objects] == [["1"], ["7"], ["8"]]
    messages = {e.location: (e.external_id, e.message) for e in errors}
    assert messages == {
        "hr.csv line 3": (
            "2",
            "2 values where the header has 3 columns: column 3 (age) missing",
        ),
        "hr.csv line 4": (
            "3",
            "4 values where the header has 3 columns: column 4 is beyond the header's 3 columns",
        ),
        "hr.csv line 5": ("4", "column 2 (firstName): unexpected 'a' after a closing quote"),
        "hr.csv line 6": ("5", "column 3 (age): 'fifty' is not an integer"),
        "hr.csv line 7": ("6", "column 2 (firstName): a quoted value is never closed"),
    }


def test_bytes_not_valid_in_the_encoding_reject_that_row_only(tmp_path):
    path = tmp_path / "hr.csv"
    path.write_bytes(b"employeeId,firstName\n1,Ann\n2,B\xffb\n3,Cy\n")

    _, objects, [error] = read_all(tmp_path)

    assert [o.attributes["employeeId"] for o in objects] == [["1"], ["3"]]
    assert error.location == "hr.csv line 3"
    assert "not valid utf-8" in error.message


def test_duplicate_header_names_are_reported_on_every_object(tmp_path):
    write(tmp_path, "employeeId,mail,mail\n1,a@x,b@x\n")

    _, [person], _ = read_all(tmp_path)

    assert person.duplicate_attribute_names == ("mail",)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: (p / "hr.csv").write_text(""), "empty: it has no header line"),
        (lambda p: (p / "hr.csv").mkdir(), "is a folder"),
        (lambda p: (p / "hr.csv").write_text("id,name\n1,a\n"), "no column 'employeeId'"),
    ],
)
def test_a_file_that_cannot_be_imported_is_a_configuration_error(tmp_path, setup, message):
    setup(tmp_path)

    with pytest.raises(ConnectorConfigurationError, match=message):
        read_all(tmp_path)


def test_relative_paths_are_resolved_against_the_base_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "hr.csv").write_text("employeeId\n1\n")

    stream = CsvConnector({"path": "data/hr.csv"}, base_dir=tmp_path).import_objects(
        [PERSON], delta=False, persisted_data={}
    )

    assert len(next(stream.pages).objects) == 1


def test_the_csv_connector_has_no_delta_import(tmp_path):
    write(tmp_path, "employeeId\n1\n")

    with pytest.raises(ConnectorConfigurationError, match="no delta import"):
        connector(tmp_path).import_objects([PERSON], delta=True, persisted_data={})


def test_a_semicolon_delimited_file(tmp_path):
    write(tmp_path, "employeeId;groups\n1;a|b\n")

    _, [person], _ = read_all(tmp_path, delimiter=";", multivalue_separator="|")

    assert person.attributes["groups"] == ["a", "b"]


# --------------------------------------------------------------------------- formulas


@pytest.mark.parametrize(
    "value",
    ["=SUM(A1)", "+44 20 7946 0000", "-5", "@cmd", "'=x", "''", "'quoted'", "'", "plain", ""],
)
def test_formula_escaping_is_reversible(value):
    escaped = escape_formula(value)

    assert unescape_formula(escaped) == value
    assert escaped[:1] not in ("=", "+", "-", "@")


def test_an_escaped_value_in_a_file_is_read_without_its_quote(tmp_path):
    write(tmp_path, "employeeId,age,formula\n1,'-5,'=HYPERLINK(x)\n")

    _, [person], _ = read_all(tmp_path)

    assert person.attributes["age"] == [-5]
    assert person.attributes["formula"] == ["=HYPERLINK(x)"]


# --------------------------------------------------------------------------- export


def change(change_id, change_type, external_id=None, **attributes):
    return ExportChange(
        id=change_id,
        change_type=change_type,
        object_type=PERSON,
        external_id=external_id,
        attribute_changes=[
            ExportAttributeChange(name, kind, values) for name, (kind, values) in attributes.items()
        ],
    )


def test_export_creates_updates_and_deletes_rows_by_external_id(tmp_path):
    path = write(tmp_path, "employeeId,firstName,groups\r\n1,Ann,a;b\r\n2,Bob,\r\n3,Cy,\r\n")

    results = connector(tmp_path).export(
        [
            change(1, "update", "1", firstName=("update", ["Anne"]), groups=("add", ["c"])),
            change(2, "delete", "2"),
            change(3, "create", employeeId=("add", ["4"]), firstName=("add", ["Di"])),
            change(4, "update", "3", groups=("remove_all", []), title=("update", ["CTO"])),
        ]
    )

    assert [(r.id, r.ok, r.external_id, r.error) for r in results] == [
        (1, True, "1", ""),
        (2, True, None, ""),
        (3, True, "4", ""),
        (4, True, "3", ""),
    ]
    assert path.read_bytes().decode() == (
        "employeeId,firstName,groups,title\r\n1,Anne,a;b;c,\r\n3,Cy,,CTO\r\n4,Di,,\r\n"
    )


def test_export_reports_each_impossible_change_and_applies_the_others(tmp_path):
    path = write(tmp_path, "employeeId,groups\n1,a\n")

    results = connector(tmp_path).export(
        [
            change(1, "update", "9", groups=("add", ["x"])),
            change(2, "create", employeeId=("add", ["1"])),
            change(3, "create", groups=("add", ["x"])),
            change(4, "update", "1", groups=("add", ["b;c"])),
            change(5, "update", "1", groups=("add", ["d"])),
        ]
    )

    assert [(r.ok, r.error) for r in results] == [
        (False, "no row with employeeId '9'"),
        (False, "a row with employeeId '1' exists"),
        (False, "no value for 'employeeId', the external id column"),
        (False, "a value of groups contains the multi-value separator ';'"),
        (True, ""),
    ]
    assert path.read_text() == "employeeId,groups\n1,a;d\n"


def test_export_escapes_formulas_and_the_file_reads_back_the_same_values(tmp_path):
    write(tmp_path, "employeeId,note,groups,age\n")
    tricky = ["=1+1", "+44 20", "-x", "@SUM(A1)", "'=kept", "plain"]

    connector(tmp_path).export(
        [
            change(
                n,
                "create",
                employeeId=("add", [f"-{n}"]),
                note=("update", [value]),
                groups=("add", [value, "other"]),
                age=("update", [-n]),
            )
            for n, value in enumerate(tricky, start=1)
        ]
    )

    text = (tmp_path / "hr.csv").read_text()
    for line in text.splitlines()[1:]:
        assert all(cell[:1] not in "=+-@" or cell == "" for cell in line.split(","))
    _, objects, errors = read_all(tmp_path)
    assert errors == []
    assert [o.attributes["note"] for o in objects] == [[value] for value in tricky]
    assert [o.attributes["groups"] for o in objects] == [[value, "other"] for value in tricky]
    assert [o.attributes["employeeId"] for o in objects] == [[f"-{n}"] for n in range(1, 7)]
    assert [o.attributes["age"] for o in objects] == [[-n] for n in range(1, 7)]


def test_export_writes_a_new_file_when_there_is_none(tmp_path):
    results = connector(tmp_path).export(
        [change(1, "create", employeeId=("add", ["1"]), firstName=("add", ["Ann"]))]
    )

    assert results[0].ok
    assert (tmp_path / "hr.csv").read_bytes() == b"\xef\xbb\xbfemployeeId,firstName\n1,Ann\n"


def test_export_replaces_the_file_atomically_and_leaves_no_half_file(tmp_path, monkeypatch):
    path = write(tmp_path, "employeeId,firstName\n1,Ann\n")
    before = path.read_bytes()

    def broken_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(Exception, match="cannot write: No space left on device"):
        connector(tmp_path).export([change(1, "update", "1", firstName=("update", ["X"]))])

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.csv"]  # no temp file left


def test_export_keeps_the_file_mode_and_byte_order_mark(tmp_path):
    path = write(tmp_path, "\ufeffemployeeId,firstName\n1,Ann\n")
    path.chmod(0o640)

    connector(tmp_path).export([change(1, "update", "1", firstName=("update", ["Anne"]))])

    assert path.read_bytes() == b"\xef\xbb\xbfemployeeId,firstName\n1,Anne\n"
    assert path.stat().st_mode & 0o777 == 0o640


def test_export_refuses_to_rewrite_a_file_it_cannot_read(tmp_path):
    path = write(tmp_path, 'employeeId,firstName\n1,"An"n\n2,Bob\n')
    before = path.read_bytes()

    results = connector(tmp_path).export([change(1, "update", "2", firstName=("update", ["B"]))])

    assert not results[0].ok
    assert "hr.csv line 2 cannot be read" in results[0].error
    assert path.read_bytes() == before
