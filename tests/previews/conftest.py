"""Fixtures of the preview tests: the scenario estate (HR file → slapd)."""

from __future__ import annotations

import pytest

from tests.scenarios.estate import Estate, make_estate
from tests.support import held_runs


@pytest.fixture
def estate(tmp_path, slapd, ldap_ou, monkeypatch) -> Estate:
    return make_estate(tmp_path, slapd, ldap_ou, monkeypatch)


@pytest.fixture
def demo_config(tmp_path, monkeypatch):
    """The fault tests' estate: the demo's CSV configuration, 200 people."""
    return held_runs.demo_config(tmp_path, monkeypatch, 200)
