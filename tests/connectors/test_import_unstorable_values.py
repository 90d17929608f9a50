"""Values PostgreSQL cannot store, from any connector (issue 11): the import processor
rejects that object alone (``invalid_data``, naming where it came from, the attribute
and the cause) and imports the rest. The objects come from the in-test
ScriptedConnector, as an LDAP directory could return them; PostgreSQL is real."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.base import ImportObject, ImportObjectError, ImportPage
from connectors.importing.values import storable_text, unstorable
from tests.builders import changes, csos, errors, rpeis, run
from tests.connectors.scripted_connector import ScriptedConnector, obj, page

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("hostile", "cause"),
    [
        ({"cn": "Ann\x00"}, "attribute 'cn' holds a NUL character (U+0000) at character 4"),
        ({"cn": "\ud800x"}, "attribute 'cn' holds a surrogate code point (U+D800) at character 1"),
        ({"mail": ["a@x", "b\udfff@x"]}, "value 2 of attribute 'mail' holds a surrogate"),
        ({"ratio": float("nan")}, "attribute 'ratio' holds the number nan, which JSON cannot"),
        ({"ratio": float("-inf")}, "attribute 'ratio' holds the number -inf"),
        ({"c\x00n": "Ann"}, "the attribute name 'c\\x00n' holds a NUL character"),
        ({"dn": "cn=A\x00,o=x"}, "its secondary external id holds a NUL character"),
    ],
)
def test_an_unstorable_value_rejects_that_object_only(scripted, hostile, cause):
    ScriptedConnector.reset([page(obj("person", "u1", cn="A"), obj("person", "u2", **hostile))])

    activity = run(scripted)

    assert activity.status == "complete_with_errors", activity.message
    assert changes(activity) == [("added", "u1")]
    assert errors(activity) == [("invalid_data", "u2")]
    [item] = [item for item in rpeis(activity) if item.error_type]
    assert cause in item.message
    assert item.message.endswith("the object is skipped until the source is fixed")
    assert sorted(csos(scripted)) == ["u1"]


def test_the_location_names_the_object_even_when_it_holds_a_nul(scripted):
    hostile = ImportObject(
        "person", {"cn": ["\x00"]}, external_id="u\x002", location="ldap: cn=\x00,o=x"
    )
    ScriptedConnector.reset([page(obj("person", "u1"), hostile)])

    activity = run(scripted)

    assert errors(activity) == [("invalid_data", "u\\x002")]
    [item] = [item for item in rpeis(activity) if item.error_type]
    assert item.message.startswith("ldap: cn=\\x00,o=x: its external id holds a NUL character")


def test_an_error_the_connector_reports_with_a_nul_is_recorded_escaped(scripted):
    unreadable = ImportObjectError(
        "cannot decode cn\x00", location="ldap: cn=\x00,o=x", external_id="u\x009"
    )
    ScriptedConnector.reset([ImportPage([obj("person", "u1")], [unreadable])])

    activity = run(scripted)

    assert activity.status == "complete_with_errors"
    assert errors(activity) == [("invalid_data", "")]  # the id cannot be a CSO's: unnamed
    [item] = [item for item in rpeis(activity) if item.error_type]
    assert item.message == "ldap: cn=\\x00,o=x: cannot decode cn\\x00"
    assert "deletion detection was skipped" in activity.message


def test_a_rejected_object_keeps_its_cso_and_deletion_detection_spares_it(scripted):
    ScriptedConnector.reset([page(obj("person", "u1", cn="A"), obj("person", "u2", cn="B"))])
    run(scripted)
    ScriptedConnector.reset([page(obj("person", "u1", cn="A"), obj("person", "u2", cn="B\udc80"))])

    activity = run(scripted)

    assert errors(activity) == [("invalid_data", "u2")]
    assert changes(activity) == []
    assert csos(scripted)["u2"].status == "normal"
    assert csos(scripted)["u2"].attributes == {"cn": ["B"]}


@pytest.mark.parametrize(
    "value",
    ["text", "é😀", 7, True, 1.5, b"\x00\xff", dt.datetime(2024, 1, 31, tzinfo=dt.UTC), None],
)
def test_storable_values_pass(value):
    assert unstorable(ImportObject("person", {"a": [value]}, external_id="x")) is None


def test_storable_text_escapes_only_what_cannot_be_stored():
    assert storable_text("a\x00b\ud800c é") == "a\\x00b\\ud800c é"
    assert storable_text("plain") == "plain"
