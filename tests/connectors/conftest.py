"""Fixtures of the connector and import tests."""

from __future__ import annotations

import pytest

from connectors import registry
from tests.builders import make_connected_system
from tests.connectors.scripted_connector import ScriptedConnector


@pytest.fixture
def scripted(monkeypatch):
    """A connected system whose connector serves the pages a test scripts."""
    monkeypatch.setitem(
        registry.CONNECTORS, "scripted", "tests.connectors.scripted_connector:ScriptedConnector"
    )
    ScriptedConnector.reset()
    return make_connected_system(
        "Directory",
        "scripted",
        object_type="person",
        external_id="id",
        secondary_external_id="dn",
        profiles=("full_import", "delta_import"),
        deletion_threshold="100%",
    )
