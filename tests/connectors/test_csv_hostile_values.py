"""Hostile bytes in an HR file (issue 11): real files through the real import processor
on PostgreSQL. A value PostgreSQL cannot store (a NUL) or a line in another encoding
than the configured one fails that row alone, named by file and line; the rest of the
file imports, and the object's CSO is neither changed nor taken for deleted."""

from __future__ import annotations

import pytest

from connectors.base import ConnectorError
from connectors.models import ConnectedSystemAttribute
from connectors.schema import refresh_schema
from tests.builders import (
    changes,
    csos,
    errors,
    make_csv_system,
    people,
    person,
    rpeis,
    run,
    write_csv,
)

pytestmark = pytest.mark.django_db


def error_messages(activity) -> list[str]:
    return [item.message for item in rpeis(activity) if item.error_type]


def test_a_nul_in_one_cell_rejects_that_row_only(tmp_path):
    rows = [person("1001"), person("1002", department="Sa\x00les"), person("1003")]
    system = make_csv_system(tmp_path, rows)

    activity = run(system)

    assert activity.status == "complete_with_errors", activity.message
    assert changes(activity) == [("added", "1001"), ("added", "1003")]
    assert errors(activity) == [("invalid_data", "1002")]
    [message] = error_messages(activity)
    assert message.startswith("hr.csv line 3: attribute 'department' holds a NUL character")
    assert "(U+0000) at character 3" in message
    assert sorted(csos(system)) == ["1001", "1003"]


def test_an_object_rejected_for_a_nul_is_still_seen_and_keeps_its_cso(tmp_path):
    system = make_csv_system(tmp_path, people(3), deletion_threshold="100%")
    run(system)
    before = csos(system)["1002"].attributes
    write_csv(
        tmp_path / "hr.csv", [person("1001"), person("1002", lastName="\x00"), person("1003")]
    )

    activity = run(system)

    assert activity.status == "complete_with_errors", activity.message
    assert errors(activity) == [("invalid_data", "1002")]
    assert changes(activity) == []  # nothing marked deleted, nothing updated
    cso = csos(system)["1002"]
    assert (cso.status, cso.attributes) == ("normal", before)
    assert activity.message == ""  # deletion detection ran: 1002 was seen


def test_a_nul_in_the_external_id_is_rejected_and_deletion_detection_is_skipped(tmp_path):
    system = make_csv_system(tmp_path, people(3), deletion_threshold="100%")
    run(system)
    write_csv(tmp_path / "hr.csv", [person("1001"), person("10\x0002"), person("1003")])

    activity = run(system)

    assert activity.status == "complete_with_errors", activity.message
    assert errors(activity) == [("invalid_data", "10\\x0002")]
    [message] = error_messages(activity)
    assert message.startswith("hr.csv line 3: attribute 'employeeId' holds a NUL character")
    # The object cannot be named, so 1002's CSO may be it: it is not marked deleted.
    assert "could not be read, so deletion detection was skipped" in activity.message
    assert {key: cso.status for key, cso in csos(system).items()} == dict.fromkeys(
        ["1001", "1002", "1003"], "normal"
    )


def test_a_nul_in_the_id_of_a_malformed_row_is_an_unidentified_row(tmp_path):
    (tmp_path / "hr.csv").write_bytes(
        b"employeeId,firstName,age\n1001,Ann,40\n10\x0002,Bob,forty\n1003,Cy,30\n"
    )
    system = make_csv_system(tmp_path, None, attributes={"age": "integer"})

    activity = run(system)

    assert activity.status == "complete_with_errors", activity.message
    assert changes(activity) == [("added", "1001"), ("added", "1003")]
    assert errors(activity) == [("invalid_data", "")]
    assert error_messages(activity) == ["hr.csv line 3: column 3 (age): 'forty' is not an integer"]


def test_a_nul_in_a_column_name_fails_the_run_naming_the_header(tmp_path):
    (tmp_path / "hr.csv").write_bytes(b"employeeId,dep\x00t\n1001,Sales\n1002,IT\n")
    system = make_csv_system(tmp_path, None)

    activity = run(system)

    assert activity.status == "failed"
    assert "hr.csv line 1: column 2 ('dep\\x00t') holds a NUL character" in activity.message
    assert csos(system) == {}
    assert not ConnectedSystemAttribute.objects.filter(name__contains="dep").exists()
    with pytest.raises(ConnectorError, match="holds a NUL character"):
        refresh_schema(system)


def test_a_latin1_line_in_a_utf8_file_names_the_line_and_the_rest_imports(tmp_path):
    (tmp_path / "hr.csv").write_bytes(
        "employeeId,firstName,lastName\n1001,Ann,Lee\n1002,Zoë,Müller\n1003,Cy,Ng\n".encode().replace(
            "Zoë,Müller".encode(), "Zoë,Müller".encode("latin-1")
        )
    )
    system = make_csv_system(tmp_path, None)

    activity = run(system)

    assert activity.status == "complete_with_errors", activity.message
    assert changes(activity) == [("added", "1001"), ("added", "1003")]
    assert errors(activity) == [("invalid_data", "1002")]
    assert error_messages(activity) == ["hr.csv line 3: line 3 is not valid utf-8 text"]


def test_latin1_bytes_in_an_external_id_leave_the_object_unidentified(tmp_path):
    system = make_csv_system(
        tmp_path, [person("1001"), person("Zoë"), person("1003")], deletion_threshold="100%"
    )
    run(system)
    (tmp_path / "hr.csv").write_bytes((tmp_path / "hr.csv").read_text().encode("latin-1"))

    activity = run(system)

    assert activity.status == "complete_with_errors", activity.message
    assert errors(activity) == [("invalid_data", "")]  # Zo?: not Zoë, nor anyone else
    assert error_messages(activity) == ["hr.csv line 3: line 3 is not valid utf-8 text"]
    assert "deletion detection was skipped" in activity.message
    assert csos(system)["Zoë"].status == "normal"


def test_a_header_in_another_encoding_fails_the_run_naming_line_1(tmp_path):
    (tmp_path / "hr.csv").write_bytes("employeeId,prénom\n1001,Ann\n".encode("latin-1"))
    system = make_csv_system(tmp_path, None)

    activity = run(system)

    assert activity.status == "failed"
    assert "hr.csv line 1: the header is not valid utf-8" in activity.message
    assert csos(system) == {}
