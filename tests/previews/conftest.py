"""Fixtures of the preview tests: the scenario estate (HR file → slapd)."""

from __future__ import annotations

import pytest

from tests.scenarios.estate import Estate, make_estate
from tests.test_run_liveness import demo_config  # noqa: F401 (the fault tests' estate)


@pytest.fixture
def estate(tmp_path, slapd, ldap_ou, monkeypatch) -> Estate:
    return make_estate(tmp_path, slapd, ldap_ou, monkeypatch)
