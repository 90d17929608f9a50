"""Fixtures for the tests of failed pending exports and what people do about them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from connectors import registry
from tests.exports.failures import user_with
from tests.exports.memory_connector import MemoryConnector
from tests.sync.scenario import Scenario, build_scenario


@pytest.fixture
def memory_connector(monkeypatch: pytest.MonkeyPatch) -> type[MemoryConnector]:
    """The memory connector, registered as ``memory`` for the test, its directory empty."""
    monkeypatch.setitem(
        registry.CONNECTORS, "memory", "tests.exports.memory_connector:MemoryConnector"
    )
    MemoryConnector.reset()
    return MemoryConnector


@pytest.fixture
def scenario(memory_connector: type[MemoryConnector]) -> Scenario:
    """HR → Directory (:mod:`tests.sync.scenario`) with the Directory on the memory
    connector. A module that needs other export settings overrides it, calling
    ``build_scenario(connector="memory", …)``."""
    return build_scenario(connector="memory")


@pytest.fixture
def failing(memory_connector: type[MemoryConnector]) -> Scenario:
    """HR → Directory with the Directory on the memory connector, where an export the
    directory refuses is failed at its first attempt (max retries 1)."""
    return build_scenario(connector="memory", export_retry_backoff_seconds=60, export_max_retries=1)


@pytest.fixture
def intervener(db) -> User:
    """May retry and discard failed exports (and see them in the admin)."""
    return user_with(
        "olga",
        "intervene_pendingexport",
        "view_pendingexport",
        "view_pendingexportattributechange",
        "view_approvalauditentry",
        is_staff=True,
    )
